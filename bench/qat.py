"""A QAT finishing stage vs post-training int8 quantization on a 60%-pruned LeNet-5.

LeNet-5 (`tfimp.models.lenet5`) on scikit-learn's digits resized to 28x28 (offline). For
each seed: train the dense model, prune `--sparsity` (60%) of every layer's weights
(unstructured, one shot),
fine-tune with the masks fixed; then three int8 files, all written by
`tfimp.export.to_tflite(quantization="int8")` and run in LiteRT:

- PTQ: the fine-tuned model, calibrated on 256 training images;
- PTQ +N: the same after N more float epochs (the training budget of the QAT stage);
- QAT: `tfimp.quantize_aware` on the fine-tuned model, trained N epochs, converted.

Reported per variant: test accuracy of the int8 file, argmax agreement of the int8 file with
the float model it came from (for QAT: the fine-tuned float model before QAT, and the QAT
weights run in float), of the QAT int8 file with the QAT Keras model (and the largest output
difference in output quantization steps), the training
step-time ratio QAT / plain masked training (interleaved chunks, median), and optionally
tfmot's pruning-preserving QAT (PQAT) on the same network in a tf_keras virtualenv.

    python bench/qat.py [--seeds 0 1 2] [--sparsity 0.6] [--epochs 10] [--finetune 5]
                        [--qat-epochs 2] [--tfmot-python VENV/bin/python]

VENV: a virtualenv with tensorflow, tf-keras and tensorflow-model-optimization==0.8.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.export import run_litert, to_tflite  # noqa: E402
from tfimp.quantization import quantize_aware, unquantized  # noqa: E402

BATCH = 64
CALIBRATION = 256


def _compile(model, lr: float) -> keras.Model:
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _fit(model, data, epochs: int) -> None:
    model.fit(data.x_train, data.y_train, batch_size=BATCH, epochs=epochs, verbose=0)


def _accuracy(model, data) -> float:
    return float(np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test))


def _int8(model, data) -> dict:
    """Converts to int8, runs the file in LiteRT on the test set."""
    art = to_tflite(model, quantization="int8", representative_data=data.x_train[:CALIBRATION])
    out = run_litert(art.model_bytes, data.x_test)[0]
    zeros = [t.zero_fraction for t in tfimp.export.inspect(art.model_bytes).constants
             if t.dtype == "int8"]
    return {"outputs": out, "accuracy": float(np.mean(out.argmax(1) == data.y_test)),
            "kernel_zeros": zeros}


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def run_seed(seed: int, data, args) -> dict:
    keras.utils.set_random_seed(seed)
    dense = _compile(tfimp.models.lenet5(), 1e-3)
    _fit(dense, data, args.epochs)
    pruned = _compile(tfimp.prune(dense, args.sparsity), 1e-3)
    _fit(pruned, data, args.finetune)
    result = {"seed": seed, "dense_float": _accuracy(dense, data),
              "pruned_float": _accuracy(pruned, data)}
    float_out = pruned.predict(data.x_test, verbose=0)

    ptq = _int8(pruned, data)
    result["ptq"] = {"int8": ptq["accuracy"], "agree_float": _agreement(ptq["outputs"], float_out)}

    qat = _compile(quantize_aware(pruned, representative_data=data.x_train[:CALIBRATION]),
                   args.qat_lr)
    longer = _compile(tfimp.prune(tfimp.strip(pruned)), args.qat_lr)
    tfimp.set_masks(longer, tfimp.get_masks(pruned))
    start = time.perf_counter()
    _fit(longer, data, args.qat_epochs)
    plain_seconds = time.perf_counter() - start
    more = _int8(longer, data)
    longer_out = longer.predict(data.x_test, verbose=0)
    result["ptq_more"] = {"float": _accuracy(longer, data), "int8": more["accuracy"],
                          "agree_float": _agreement(more["outputs"], longer_out)}

    start = time.perf_counter()
    _fit(qat, data, args.qat_epochs)
    qat_seconds = time.perf_counter() - start
    q = _int8(qat, data)
    keras_out = qat.predict(data.x_test, verbose=0)
    with unquantized():
        qat_float = keras.ops.convert_to_numpy(qat(data.x_test, training=False))
    step = qat.layers[-1].params()[0]
    result["qat"] = {
        "keras": _accuracy(qat, data), "int8": q["accuracy"],
        "agree_float": _agreement(q["outputs"], float_out),
        "float_weights": float(np.mean(qat_float.argmax(1) == data.y_test)),
        "agree_own_float": _agreement(q["outputs"], qat_float),
        "agree_keras": _agreement(q["outputs"], keras_out),
        "max_diff_steps": float(np.abs(q["outputs"] - keras_out).max() / step),
        "fit_seconds_ratio": qat_seconds / plain_seconds,
        "min_kernel_zeros": min(q["kernel_zeros"]),
    }
    result["step_ratio"] = step_time_ratio(longer, qat, data, args.rounds, args.steps)
    return result


def step_time_ratio(plain, qat, data, rounds: int, steps: int) -> float:
    """Median over rounds of (QAT chunk time / plain chunk time); the chunks alternate, and
    which model goes first alternates too, so both see the same machine load."""
    batches = [(data.x_train[i:i + BATCH], data.y_train[i:i + BATCH])
               for i in range(0, len(data.x_train) - BATCH + 1, BATCH)]
    for model in (plain, qat):
        for x, y in batches[:5]:
            model.train_on_batch(x, y)
    ratios = []
    for r in range(rounds):
        times = {}
        for model in ((plain, qat) if r % 2 == 0 else (qat, plain)):
            start = time.perf_counter()
            for k in range(steps):
                model.train_on_batch(*batches[k % len(batches)])
            times[id(model)] = time.perf_counter() - start
        ratios.append(times[id(qat)] / times[id(plain)])
    return statistics.median(ratios)


def run_tfmot(python: str, data, args) -> list[dict]:
    """tfmot's prune -> fine-tune -> PQAT in its own interpreter (it needs tf_keras)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qat_tfmot_peer.py")
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "digits.npz")
        np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                 y_test=data.y_test)
        cmd = [python, script, npz, "--sparsity", str(args.sparsity), "--seeds",
               *map(str, args.seeds), "--epochs",
               str(args.epochs), "--finetune", str(args.finetune), "--qat-epochs",
               str(args.qat_epochs), "--qat-lr", str(args.qat_lr)]
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tfmot peer failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mean(values) -> str:
    values = list(values)
    text = f"{100 * statistics.mean(values):.2f}"
    return text + (f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")


def report(results: list[dict], peer: list[dict] | None, args) -> str:
    get = lambda *keys: [_dig(r, keys) for r in results]  # noqa: E731
    n = args.qat_epochs
    rows = [
        ("dense float", _mean(get("dense_float")), "", ""),
        (f"pruned {args.sparsity:.0%} float (fine-tuned {args.finetune} ep)",
         _mean(get("pruned_float")), "", ""),
        ("PTQ int8", "", _mean(get("ptq", "int8")), _mean(get("ptq", "agree_float"))),
        (f"PTQ int8 after {n} more float ep", _mean(get("ptq_more", "float")),
         _mean(get("ptq_more", "int8")), _mean(get("ptq_more", "agree_float"))),
        (f"QAT {n} ep, int8 (float column: QAT Keras model)", _mean(get("qat", "keras")),
         _mean(get("qat", "int8")), _mean(get("qat", "agree_float"))),
        ("QAT weights run in float (vs its int8 file)", _mean(get("qat", "float_weights")), "",
         _mean(get("qat", "agree_own_float"))),
    ]
    if peer:
        rows += [
            ("tfmot: pruned float", _mean(p["pruned_float"] for p in peer), "", ""),
            ("tfmot: PTQ int8", "", _mean(p["ptq_int8"] for p in peer),
             _mean(p["ptq_agree_float"] for p in peer)),
            (f"tfmot: PQAT {n} ep, int8", _mean(p["pqat_keras"] for p in peer),
             _mean(p["pqat_int8"] for p in peer), _mean(p["pqat_agree_float"] for p in peer)),
        ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'variant':<{width}}  {'float/Keras acc %':>18}  {'int8 acc %':>14}  "
             f"{'int8 vs float argmax %':>22}"]
    lines += [f"{a:<{width}}  {b:>18}  {c:>14}  {d:>22}" for a, b, c, d in rows]
    lines += [
        "",
        f"QAT int8 file vs QAT Keras model: argmax agreement {_mean(get('qat', 'agree_keras'))} %,"
        f" max |diff| {max(get('qat', 'max_diff_steps')):.1f} output steps (1/256 of softmax)",
        f"training step time QAT / plain masked: median {statistics.median(get('step_ratio')):.2f}x"
        f" (per seed {', '.join(f'{v:.2f}' for v in get('step_ratio'))}); whole-epoch fit "
        f"time ratio {statistics.median(get('qat', 'fit_seconds_ratio')):.2f}x",
        "smallest zero fraction of an int8 kernel in the QAT files: "
        f"{min(get('qat', 'min_kernel_zeros')):.4f}",
    ]
    if peer:
        zeros = [p["pqat_min_kernel_zeros"] for p in peer]
        lines.append(f"tfmot PQAT int8 kernels: smallest zero fraction {min(zeros):.3f}")
    return "\n".join(lines)


def _dig(d, keys):
    for k in keys:
        d = d[k]
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune", type=int, default=5)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--sparsity", type=float, default=0.6)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tfmot-python", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    began = time.time()
    data = tfimp.data.digits(size=28, flatten=False)
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, data, args))
        print(f"seed {seed}: {json.dumps(results[-1])}", flush=True)
    peer = run_tfmot(args.tfmot_python, data, args) if args.tfmot_python else None
    if peer:
        print(f"tfmot: {json.dumps(peer)}", flush=True)
    print()
    print(report(results, peer, args))
    print(f"\ncommand: python bench/qat.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; TF {_version('tensorflow')}, Keras {keras.__version__}; "
          f"date {datetime.date.today()}; {time.time() - began:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results, "tfmot": peer}, f, indent=1)
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
