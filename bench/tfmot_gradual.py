"""Gradual magnitude pruning with tfmot itself (tf_keras), for bench/imp_vs_gradual.py.

Runs in tfmot's own virtualenv (tfmot 0.8.1 only prunes tf_keras models):

    TFMOT_PYTHON DATA.npz OUT.json --epochs 40 --targets 0.9 0.95 0.97 0.98 --seed 0

DATA.npz holds x_train, y_train, x_test, y_test (written by the caller, so both sides see the
same data). The model is LeNet-300-100 (784-300-100-10, ReLU), Adam at 1.2e-3 with cosine
decay to 1.2e-4 over the run, batch 60: tfimp's lenet_300_100 recipe. The schedule is tfmot's
PolynomialDecay from 0 to each target over the first half of the steps, pruning every
min(100, steps per epoch) steps, global ranking not being available in tfmot (per layer).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402


def build(seed: int, steps: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(300, activation="relu"),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    lr = keras.optimizers.schedules.CosineDecay(1.2e-3, steps, alpha=0.1)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def run(data, target: float, epochs: int, seed: int) -> dict:
    x, y = data["x_train"].reshape(len(data["x_train"]), -1), data["y_train"]
    xt, yt = data["x_test"].reshape(len(data["x_test"]), -1), data["y_test"]
    per_epoch = -(-len(x) // 60)
    steps = per_epoch * epochs
    model = build(seed, steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, target, begin_step=0, end_step=steps // 2, frequency=min(100, per_epoch))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(model.optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    pruned.fit(x, y, batch_size=60, epochs=epochs, verbose=0, shuffle=True,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    seconds = time.time() - start
    plain = tfmot.sparsity.keras.strip_pruning(pruned)
    plain.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    acc = float(plain.evaluate(xt, yt, verbose=0)[1])
    kernels = [w for w in plain.get_weights() if w.ndim == 2]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    return {"target": target, "sparsity": zeros, "accuracy": acc, "epochs": epochs,
            "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--targets", nargs="+", type=float, default=[0.9, 0.95, 0.97, 0.98])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with np.load(args.data) as f:
        data = {k: f[k] for k in f.files}
    rows = [run(data, t, args.epochs, args.seed) for t in args.targets]
    with open(args.out, "w") as f:
        json.dump({"tensorflow": tf.__version__, "tfmot": tfmot.__version__, "runs": rows}, f)


if __name__ == "__main__":
    main()
