"""Does `tfimp.profile.litert` distort what it measures?

Compares the median latency that `tfimp.profile.litert()` reports (child process) with a
minimal `interpreter.invoke()` loop timed in this process, on the same models, in interleaved
repeats; prints the medians and their ratio. Also times a whole LeNet profile (100 runs).

Usage: python bench/litert_overhead.py [--repeats 7] [--runs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _models(folder: str) -> dict[str, str]:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    L = keras.layers
    specs = {
        "mlp-64-32-10": keras.Sequential([keras.Input((64,)), L.Dense(32, activation="relu"),
                                          L.Dense(10)]),
        "lenet-5": keras.Sequential([
            keras.Input((28, 28, 1)), L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(),
            L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(), L.Flatten(),
            L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10)]),
    }
    paths = {}
    for name, model in specs.items():
        paths[name] = os.path.join(folder, f"{name}.tflite")
        with contextlib.redirect_stdout(io.StringIO()):  # the converter's "Saved artifact"
            blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        with open(paths[name], "wb") as f:
            f.write(blob)
    return paths


def _in_process_median(path: str, runs: int, warmup: int) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], np.random.uniform(-1, 1, d["shape"]).astype(d["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1000.0)
    return statistics.median(times)


def overhead(path: str, repeats: int, runs: int, warmup: int = 10) -> tuple[float, float]:
    """Median over interleaved repeats of (litert() median, in-process median), in us."""
    from tfimp.profile import litert

    ours, plain = [], []
    for _ in range(repeats):
        ours.append(litert(path, threads=1, runs=runs, warmup=warmup).median_us)
        plain.append(_in_process_median(path, runs, warmup))
    return statistics.median(ours), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    from tfimp.profile import litert

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}")
    print(f"{'model':<14}{'litert() median':>17}{'in-process':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        paths = _models(folder)
        for name, path in paths.items():
            ours, plain = overhead(path, args.repeats, args.runs)
            print(f"{name:<14}{ours:>14.2f} us{plain:>9.2f} us{ours / plain:>8.3f}")
        walls = []
        for _ in range(3):
            start = time.monotonic()
            litert(paths["lenet-5"], runs=100, warmup=10)
            walls.append(time.monotonic() - start)
        print(f"whole LeNet profile (100 runs + 10 warm-up, child process): "
              f"median {statistics.median(walls):.2f} s of {[round(w, 2) for w in walls]}")


if __name__ == "__main__":
    main()
