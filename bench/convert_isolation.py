"""What does converting in a child process cost?

`tfimp.export.to_tflite` runs the TFLite converter in a long-lived child process, so that a
converter crash is an error instead of the end of the caller. This compares, on LeNet-5 and
in interleaved repeats, the converter run in this process (as `from_keras_model`) with the
same conversions through the child (SavedModel written here, converted there); it prints the
medians, their difference, and the one-off start of the child (importing TensorFlow there).

Usage: python bench/convert_isolation.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import keras
    import numpy as np

    from tfimp import models
    from tfimp.export import _converter, quantization

    keras.utils.set_random_seed(0)
    model = models.lenet5(input_shape=(28, 28, 1), num_classes=10)
    x = np.random.default_rng(0).random((64, 28, 28, 1)).astype("float32")
    samples = [[x[i:i + 1]] for i in range(len(x))]
    cases = {
        "float32": ([_converter.Job(quantization.Float32().get_config(), False)], None),
        "int8 (64 samples)": ([_converter.Job(quantization.Int8().get_config(), False)], samples),
        "float32 dense + sparse": ([_converter.Job(quantization.Float32().get_config(), s)
                                    for s in (False, True)], None),
    }
    _converter._in_process(model, *cases["float32"])  # traces the model once
    start = time.perf_counter()
    _converter.convert(model, *cases["float32"])
    print(f"first conversion through the child (starts it): {time.perf_counter() - start:.2f} s")
    for name, (jobs, data) in cases.items():
        times: dict[str, list[float]] = {"in process": [], "child": []}
        for _ in range(args.repeats):
            for how, fn in (("in process", _converter._in_process), ("child", _converter.convert)):
                start = time.perf_counter()
                results = fn(model, jobs, data)
                times[how].append(time.perf_counter() - start)
                assert all(isinstance(r, bytes) for r in results), results
        a, b = statistics.median(times["in process"]), statistics.median(times["child"])
        print(f"LeNet-5 {name}: in process {a:.2f} s, child {b:.2f} s, "
              f"difference {b - a:+.2f} s (medians of {args.repeats})")


if __name__ == "__main__":
    main()
