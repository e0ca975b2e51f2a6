"""Channel IMP on LeNet-5, then int8 by post-training quantization vs a QAT finishing stage.

For each seed: `tfimp run lenet5 --option channel,qat` (plus `distill` with `--distill`):
IMP removes 20% of each layer's remaining channels per round for 6 rounds (74% of channels
gone), the sparsest round within the 1-point budget is shrunk (`tfimp.shrink`), a 5-epoch
quantization-aware stage trains the shrunk model, and the run writes two int8 files of it in
the same run: post-training (`int8_ptq`) and from the QAT model (`int8`), both verified in
LiteRT on the 360 test images. Reported per seed: channels removed, accuracy of the dense
model, of the shrunk float model and of both int8 files, how often each int8 file predicts
what the float model predicts, int8 bytes of the dense and shrunk models, and the cost of QAT
training on the shrunk model: a QAT step / a plain float step (interleaved chunks, median),
measured after the run on the same shrunk model.

    python bench/channel_qat.py [--seeds 0 1 2] [--distill] [--set KEY=VALUE ...]
                                [--workdir DIR] [--out F.json]

A finished run in `--workdir` is resumed (IMP is not repeated; export and profiling are).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfimp  # noqa: E402
from tfimp.pipeline import load_recipe  # noqa: E402
from tfimp.pipeline.runner import load_data, make_builder, run  # noqa: E402
from tfimp.quantization import quantize_aware  # noqa: E402
from tfimp.structure.shrink import shrink  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from qat import BATCH, step_time_ratio  # noqa: E402


def run_seed(seed: int, args) -> dict:
    options = ["channel", "qat"] + (["distill"] if args.distill else [])
    recipe = load_recipe("lenet5").with_options(*options).override(f"seed={seed}", *args.set)
    tag = "_".join(w.replace("=", "") for w in args.set)
    workdir = Path(args.workdir) / f"{'distill_' if args.distill else ''}{tag}s{seed}"
    report = run(recipe, workdir=workdir, command=f"tfimp run lenet5 --option "
                 f"{','.join(options)} seed={seed} {' '.join(args.set)}".strip())
    exports = {e.target: e for e in report.exports}
    q, best = report.qat, report.best_round
    # The cost of QAT on the shrunk model: the same IMP run, resumed (nothing retrains).
    data = load_data(recipe)
    config = dataclasses.replace(recipe.imp, seed=recipe.seed)
    result = tfimp.imp(make_builder(recipe, data), (data.x_train, data.y_train),
                       (data.x_test, data.y_test), config, workdir=str(workdir), verbose=0)
    small = shrink(result.best(budget=recipe.imp.budget))
    qat = quantize_aware(small, representative_data=data.x_train[:256])
    for model in (small, qat):
        model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    ratio = step_time_ratio(small, qat, data, args.rounds, args.steps)
    return {
        "seed": seed, "round": best["round"], "channels_removed": best["channel_sparsity"],
        "dense_accuracy": report.dense_metric, "float_accuracy": q.get("float_accuracy"),
        "ptq_int8_accuracy": q.get("ptq_int8_accuracy"),
        "qat_int8_accuracy": q.get("qat_int8_accuracy"),
        "ptq_agreement_float": q.get("ptq_int8_agreement_float"),
        "qat_agreement_float": q.get("qat_int8_agreement_float"),
        "qat_agreement_qat_model": q.get("qat_int8_agreement"),
        "dense_int8_bytes": exports["dense_int8"].bytes, "ptq_int8_bytes":
        exports["int8_ptq"].bytes, "qat_int8_bytes": exports["int8"].bytes,
        "qat_step_ratio": ratio, "qat_epoch_vs_round_epoch": q.get("epoch_cost_ratio"),
        "report": str(Path(report.report_dir) / "report.md"),
    }


def _stat(rows, key, scale=100.0, digits=2) -> str:
    values = [r[key] * scale for r in rows if r[key] is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(rows: list[dict]) -> str:
    keys = [("channels removed %", "channels_removed"), ("dense acc %", "dense_accuracy"),
            ("shrunk float acc %", "float_accuracy"), ("PTQ int8 acc %", "ptq_int8_accuracy"),
            ("QAT int8 acc %", "qat_int8_accuracy"),
            ("PTQ int8 = float %", "ptq_agreement_float"),
            ("QAT int8 = float %", "qat_agreement_float"),
            ("QAT int8 = QAT model %", "qat_agreement_qat_model")]
    head = ["seed"] + [k for k, _ in keys] + ["int8 B dense -> shrunk (PTQ / QAT)",
                                                 "QAT step / float step"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["seed"])] + [f"{100 * r[k]:.2f}" if r[k] is not None else "-"
                                    for _, k in keys]
        cells += [f"{r['dense_int8_bytes']:,} -> {r['ptq_int8_bytes']:,} / "
                  f"{r['qat_int8_bytes']:,}", f"{r['qat_step_ratio']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean"] + [_stat(rows, k) for _, k in keys] + ["", _stat(rows, "qat_step_ratio",
                                                                     1.0) + "x"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--distill", action="store_true",
                        help="also distil from the dense round 0 in every round and in QAT")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides, e.g. imp.rounds=10 imp.budget=0.05")
    parser.add_argument("--workdir", default="runs/bench_channel_qat")
    parser.add_argument("--rounds", type=int, default=12, help="step-time chunks per model")
    parser.add_argument("--steps", type=int, default=40, help="training steps per chunk")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    began = time.time()
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args))
        print(f"seed {seed}: {json.dumps(rows[-1])}", flush=True)
    print()
    print(table(rows))
    words = sys.argv[1:] if argv is None else argv
    print(f"\ncommand: python bench/channel_qat.py {' '.join(words)}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; Keras {keras.__version__}; batch {BATCH} for step times; "
          f"date {datetime.date.today()}; {time.time() - began:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
