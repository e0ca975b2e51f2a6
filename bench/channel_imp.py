"""Channel IMP on LeNet-5 (digits resized to 28x28, offline): accuracy, size and speed.

Trains LeNet-5 dense, then runs IMP with whole channels (`granularity="channel"`): each round
removes `rate` of the remaining channels of every layer (layer scope), rewinds the learning
rate and retrains. The sparsest round within `--budget` of the dense accuracy is shrunk
(`tfimp.shrink`) and both it and the dense model are exported to int8 and timed in LiteRT in
the same run.

    python bench/channel_imp.py [--rounds 6] [--rate 0.2] [--epochs 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.data import digits  # noqa: E402
from tfimp.export import to_tflite  # noqa: E402
from tfimp.structure.report import structure_report  # noqa: E402
from tfimp.structure.shrink import shrink  # noqa: E402


def builder(steps: int):
    def build() -> keras.Model:
        model = tfimp.models.lenet5()
        lr = keras.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.1)
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    return build


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    print(f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    data = digits(size=28, flatten=False, seed=args.seed)
    (x, y), (x_val, y_val) = (data.x_train, data.y_train), (data.x_test, data.y_test)
    steps = args.epochs * int(np.ceil(len(x) / 60))
    result = tfimp.imp(builder(steps), (x, y), (x_val, y_val), rounds=args.rounds,
                       rate=args.rate, scope="layer", granularity="channel", rewind="lr",
                       epochs_per_round=args.epochs, batch_size=60, budget=args.budget,
                       stop_at_budget=False, seed=args.seed, workdir=tempfile.mkdtemp(),
                       verbose=2)
    for row in result.history:
        print(f"round {row['round']}: channels removed {row.get('channel_sparsity', 0):.1%}, "
              f"val_accuracy {row['val_accuracy']:.4f}")
    dense, best = result.model(0), result.best()
    small = shrink(best)
    print(structure_report(small, reference=dense))
    print(f"accuracy dense {accuracy(dense, x_val, y_val):.4f}, shrunk "
          f"{accuracy(small, x_val, y_val):.4f}")
    for name, model in (("dense", dense), ("shrunk", small)):
        art = to_tflite(model, quantization="int8", representative_data=x[:256],
                        verify=(x_val, y_val))
        bench = tfimp.profile.litert(art.model_bytes, threads=1, runs=args.runs)
        print(f"{name}: int8 {art.report.tflite_bytes:,} bytes, LiteRT int8 accuracy "
              f"{art.report.verification.accuracy_tflite:.4f}, 1 thread median "
              f"{bench.median_us:.1f} us")


if __name__ == "__main__":
    main()
