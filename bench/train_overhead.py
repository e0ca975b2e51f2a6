"""Training overhead of tfimp's masks: step time and peak memory, masked vs dense.

Step time: one process holds the dense and the masked model and trains them in
alternating chunks (`--rounds` of them, `--steps` timed steps each, after `--warmup`
untimed ones), so each masked chunk is paired with a dense chunk that saw the same machine
load. Per-step wall time and process CPU time include the callbacks (UpdateMasks for the
masked model, whose schedule prunes every 100 steps throughout). Reported: the median of
the per-round masked/dense ratios, of per-chunk medians and of per-chunk means.

Peak memory: every run of a variant in a fresh subprocess (ru_maxrss), variants
interleaved over `--memory-rounds`; also the growth over the RSS right after importing
TensorFlow ("training memory").

    python bench/train_overhead.py
    python bench/train_overhead.py --tfmot-python /path/to/venv-with-tfmot/bin/python

The tfmot half (optional) runs tfmot 0.8.1 on the same network with the legacy tf_keras,
in the interpreter given by --tfmot-python, because tfmot does not accept Keras 3 models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

MODELS = ("lenet", "conv")
BATCH = {"lenet": 60, "conv": 32}
FINAL_SPARSITY = 0.9
FREQUENCY = 100


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build(keras, model: str):
    L = keras.layers
    if model == "lenet":
        return keras.Sequential([
            keras.Input((784,)),
            L.Dense(300, activation="relu"),
            L.Dense(100, activation="relu"),
            L.Dense(10),
        ])
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(16, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        L.Dense(10),
    ])


def _data(model: str, steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    n = steps * BATCH[model]
    shape = (n, 784) if model == "lenet" else (n, 28, 28, 1)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, size=n)


def _compile(keras, model):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit_times(keras, model, x, y, batch: int, callbacks: list) -> dict:
    """Wall and process-CPU time of each training step, callbacks (UpdateMasks) included.

    CPU time (all threads of this process) is the steadier measure on a shared machine;
    wall time is what a user waits for.
    """
    times: dict = {"wall": [], "cpu": []}

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, batch, logs=None):
            times["wall"].append(time.perf_counter() - self.start[0])
            times["cpu"].append(time.process_time() - self.start[1])

    # The timer's begin runs first and its end last: UpdateMasks' work is inside.
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
              callbacks=[StepTimer(), *callbacks])
    return times


def _variant_keras3(model_name: str, variant: str, total_steps: int) -> tuple:
    import keras

    import tfimp

    keras.utils.set_random_seed(0)
    model = _build(keras, model_name)
    if variant == "dense":
        return keras, _compile(keras, model), []
    schedule = tfimp.PolynomialDecay(0.0, FINAL_SPARSITY, begin_step=0, end_step=total_steps,
                                     frequency=FREQUENCY)
    return keras, _compile(keras, tfimp.prune(model, schedule)), [tfimp.callbacks.UpdateMasks()]


def _variant_tfmot(model_name: str, variant: str, total_steps: int) -> tuple:
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    sparsity = tfmot.sparsity.keras
    keras.utils.set_random_seed(0)
    model = _build(keras, model_name)
    if variant == "dense":
        return keras, _compile(keras, model), []
    schedule = sparsity.PolynomialDecay(0.0, FINAL_SPARSITY, begin_step=0, end_step=total_steps,
                                        frequency=FREQUENCY)
    model = sparsity.prune_low_magnitude(model, pruning_schedule=schedule)
    return keras, _compile(keras, model), [sparsity.UpdatePruningStep()]


def _variant(framework: str, model_name: str, variant: str, total_steps: int) -> tuple:
    """(keras module, compiled model, callbacks) for one variant."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if framework == "tfmot":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return _variant_tfmot(model_name, variant, total_steps)
    return _variant_keras3(model_name, variant, total_steps)


def timing_worker(args) -> dict:
    """Both variants in one process, trained in alternating chunks of `steps` steps.

    Alternating in one process pairs every masked chunk with a dense chunk that saw the
    same machine load, which matters on a shared machine. The first `warmup` steps of
    each chunk (tracing, callback set-up) are not timed.
    """
    chunk = args.warmup + args.steps
    variants = {v: _variant(args.framework, args.model, v, chunk * args.rounds)
                for v in ("dense", "masked")}
    x, y = _data(args.model, chunk)
    out: dict = {f"{clock}_{stat}": {"dense": [], "masked": []}
                 for clock in ("wall", "cpu") for stat in ("median", "mean")}
    for r in range(args.rounds):
        for name in (("dense", "masked") if r % 2 == 0 else ("masked", "dense")):
            keras, model, callbacks = variants[name]
            times = _fit_times(keras, model, x, y, BATCH[args.model], callbacks)
            for clock, values in times.items():
                values = [1000 * t for t in values[args.warmup:]]
                out[f"{clock}_median"][name].append(statistics.median(values))
                out[f"{clock}_mean"][name].append(statistics.fmean(values))
    return out


def memory_worker(args) -> dict:
    """Peak RSS of one training run of one variant, in this fresh process."""
    import tensorflow  # noqa: F401  (the baseline below includes TensorFlow itself)

    base = _rss_mb()
    steps = args.warmup + args.steps
    keras, model, callbacks = _variant(args.framework, args.model, args.variant, steps)
    x, y = _data(args.model, steps)
    _fit_times(keras, model, x, y, BATCH[args.model], callbacks)
    return {"peak_rss_mb": _peak_rss_mb(), "train_rss_mb": _peak_rss_mb() - base}


def _spawn(python: str, worker: str, framework: str, model: str, args, variant="") -> dict:
    command = [python, os.path.abspath(__file__), "--worker", worker, "--framework", framework,
               "--model", model, "--variant", variant, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--rounds", str(args.rounds)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _configs(args) -> list[tuple[str, str, str]]:
    configs = [(sys.executable, "keras3", m) for m in args.models]
    if args.tfmot_python:
        configs += [(args.tfmot_python, "tfmot", m) for m in args.tfmot_models]
    return configs


def measure(python: str, framework: str, model: str, args) -> dict:
    """Timing (one process, alternating) and memory (fresh processes, interleaved)."""
    timing = _spawn(python, "timing", framework, model, args)
    memory: dict = {"dense": [], "masked": []}
    for r in range(args.memory_rounds):
        for variant in (("dense", "masked") if r % 2 == 0 else ("masked", "dense")):
            memory[variant].append(_spawn(python, "memory", framework, model, args, variant))
    return {"timing": timing, "memory": memory}


def summarize(framework: str, model: str, result: dict) -> dict:
    """Medians per variant and masked/dense ratios (median of paired ratios)."""
    timing, memory = result["timing"], result["memory"]
    med = statistics.median
    paired = lambda pair: med(m / d for m, d in zip(pair["masked"], pair["dense"]))
    row = {"framework": framework, "model": model, "batch": BATCH[model],
           "dense_step_ms": med(timing["wall_median"]["dense"]),
           "masked_step_ms": med(timing["wall_median"]["masked"])}
    for key, values in timing.items():
        row[f"{key}_ratio"] = paired(values)
    for key in ("peak_rss_mb", "train_rss_mb"):
        pair = {v: [r[key] for r in memory[v]] for v in memory}
        row[f"dense_{key}"], row[f"masked_{key}"] = med(pair["dense"]), med(pair["masked"])
        row[f"{key}_ratio"] = paired(pair)
    return row


def to_markdown(rows: list[dict]) -> str:
    header = ("| framework | model | batch | dense ms/step | masked ms/step | step ratio, wall "
              "median | wall mean | CPU median | CPU mean | peak RSS MB dense / masked "
              "| peak ratio | training-memory ratio |\n" + "|---" * 12 + "|")
    lines = [
        f"| {r['framework']} | {r['model']} | {r['batch']} | {r['dense_step_ms']:.2f} | "
        f"{r['masked_step_ms']:.2f} | **{r['wall_median_ratio']:.3f}** | "
        f"{r['wall_mean_ratio']:.3f} | {r['cpu_median_ratio']:.3f} | {r['cpu_mean_ratio']:.3f} | "
        f"{r['dense_peak_rss_mb']:.0f} / {r['masked_peak_rss_mb']:.0f} | "
        f"**{r['peak_rss_mb_ratio']:.3f}** | {r['train_rss_mb_ratio']:.3f} |"
        for r in rows
    ]
    return "\n".join([header, *lines])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing chunks")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per chunk")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per chunk")
    parser.add_argument("--memory-rounds", type=int, default=3,
                        help="fresh-process runs per variant for peak memory")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--tfmot-python", default=None,
                        help="a python with tensorflow-model-optimization and tf-keras")
    parser.add_argument("--tfmot-models", nargs="+", choices=MODELS, default=["lenet"])
    parser.add_argument("--json", default=None, help="also write the summary rows here")
    parser.add_argument("--worker", choices=("timing", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--framework", default="keras3", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="lenet", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in ("rounds", "steps", "memory_rounds"):
        if getattr(args, name) < 1:
            raise SystemExit(f"Argument `--{name.replace('_', '-')}` must be >= 1. "
                             f"Received: {name}={getattr(args, name)}")
    if args.worker:
        work = timing_worker if args.worker == "timing" else memory_worker
        print(json.dumps(work(args)))
        return 0
    rows = []
    for python, framework, model in _configs(args):
        rows.append(summarize(framework, model, measure(python, framework, model, args)))
        print(to_markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print(to_markdown(rows))
    if args.json:
        with open(args.json + ".tmp", "w") as out:
            json.dump(rows, out, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
