"""What removing channels buys on the device: dense vs channel-pruned and shrunk models.

For each MLPerf Tiny / pruning-literature builder, prunes a fraction of the channels in one
shot (`tfimp.prune(..., granularity="channel")`), shrinks the model (`tfimp.shrink`), checks
that the shrunk model computes what the masked one does, and measures both the dense and the
shrunk model in the same run: parameters and MACs (`tfimp.structure.structure_report`), int8
file bytes (`tfimp.export.to_tflite`), LiteRT latency (`tfimp.profile.litert`, 1 and 2
threads) and the TFLite Micro arena (`tfimp.profile.micro`). The weights are untrained (size,
latency and arena do not depend on their values); accuracy needs channel IMP on real data.

    python bench/channel_shrink.py [--models lenet5,resnet8,ds_cnn,mobilenet_v1]
                                   [--sparsity 0.5] [--runs 200]
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
from tfimp.export import to_tflite  # noqa: E402
from tfimp.structure.report import structure_report  # noqa: E402
from tfimp.structure.shrink import shrink  # noqa: E402

BUILDERS = {
    "lenet5": lambda: tfimp.models.lenet5(classifier_activation=None),
    "resnet8": lambda: tfimp.models.resnet8(classifier_activation=None),
    "ds_cnn": lambda: tfimp.models.ds_cnn(classifier_activation=None),
    "mobilenet_v1": lambda: tfimp.models.mobilenet_v1(classifier_activation=None),
}


def measure(model: keras.Model, x: np.ndarray, runs: int) -> dict:
    art = to_tflite(model, quantization="int8", representative_data=x, verify=(x[:16], None))
    out = {"int8_bytes": art.report.tflite_bytes}
    for threads in (1, 2):
        bench = tfimp.profile.litert(art.model_bytes, threads=threads, runs=runs)
        out[f"litert_{threads}t_us"] = bench.median_us
    out["arena_bytes"] = tfimp.profile.micro(art.model_bytes).arena_bytes
    return out


def run(name: str, sparsity: float, runs: int) -> dict:
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    x = np.random.default_rng(0).random((64, *model.input_shape[1:])).astype("float32")
    pruned = tfimp.prune(model, sparsity, granularity="channel")
    small = shrink(pruned)
    a, b = pruned.predict(x, verbose=0), small.predict(x, verbose=0)
    report = structure_report(small, reference=model)
    row = {"model": name, "sparsity": sparsity,
           "max_rel_diff": float(np.abs(a - b).max() / np.abs(a).max()),
           "params": (report.params_before, report.params_after),
           "macs": (report.macs_before, report.macs_after)}
    dense, shrunk = measure(model, x, runs), measure(small, x, runs)
    for key in dense:
        row[key] = (dense[key], shrunk[key])
    return row


def show(row: dict) -> None:
    print(f"\n{row['model']} ({row['sparsity']:.0%} of channels removed; shrunk vs masked "
          f"max relative difference {row['max_rel_diff']:.1e})")
    for key, value in row.items():
        if isinstance(value, tuple):
            dense, small = value
            ratio = f"{small / dense:.3f}" if dense else "-"
            print(f"  {key:14s} dense {dense:>12,.0f}  shrunk {small:>12,.0f}  ratio {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BUILDERS))
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(f"{platform.node()} {platform.processor() or platform.machine()} "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    for name in args.models.split(","):
        show(run(name, args.sparsity, args.runs))


if __name__ == "__main__":
    main()
