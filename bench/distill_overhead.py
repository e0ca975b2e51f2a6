"""Step time of IMP retraining with distillation vs plain retraining (LeNet-300-100, 90% pruned).

Both trainers live in one process and alternate in chunks of `--steps` steps (after untimed
warm-up steps), so load on a shared machine hits both alike; the result is the median ratio
of the chunk times over `--rounds` pairs. The distiller runs the dense teacher once per batch,
in inference mode, with no gradient.

    python bench/distill_overhead.py --rounds 9 --steps 100
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp import models  # noqa: E402
from tfimp.lottery.distill import Distiller  # noqa: E402


def _compiled(model):
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def trainers(batch: int):
    keras.utils.set_random_seed(0)
    teacher = _compiled(models.lenet_300_100())
    plain = _compiled(tfimp.prune(models.lenet_300_100(), 0.9))
    student = _compiled(tfimp.prune(models.lenet_300_100(), 0.9))
    distiller = Distiller(student, teacher).compile_like(student)
    return {"plain": plain, "distill": distiller}


def chunk_seconds(model, x, y, batch: int, steps: int, warmup: int) -> float:
    n = batch * (steps + warmup)
    model.fit(x[:batch * warmup], y[:batch * warmup], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x[:n - batch * warmup], y[:n - batch * warmup], batch_size=batch, epochs=1,
              verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.batch * (args.steps + args.warmup)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    models_ = trainers(args.batch)
    times = {k: [] for k in models_}
    for _ in range(args.rounds):
        for name, model in models_.items():
            times[name].append(chunk_seconds(model, x, y, args.batch, args.steps, args.warmup))
    ratios = np.array(times["distill"]) / np.array(times["plain"])
    per_step = {k: 1e3 * np.median(v) / args.steps for k, v in times.items()}
    print(f"step time: plain {per_step['plain']:.3f} ms, distill {per_step['distill']:.3f} ms; "
          f"distill/plain median {np.median(ratios):.3f}x (min {ratios.min():.3f}, max "
          f"{ratios.max():.3f}) over {args.rounds} alternating chunks of {args.steps} steps")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores; load "
          f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
