"""IMP quality on LeNet-300-100 (784 inputs) with the offline digits data, several seeds.

Global magnitude ranking, rate 0.2 per round (output layer 0.1, as in the lottery-ticket
paper), Adam 1.2e-3 with cosine decay to 1.2e-4 over each round, batch 60. Compares weight
rewinding to initialization, learning-rate rewinding and fine-tuning; prints a markdown table
(mean ± std over seeds) of validation accuracy per round, the sparsest round within 0.5
points of the dense model, the driver's own share of each round's wall time and the
retraining time of each mode (distillation runs the teacher on every batch).

    python bench/imp_quality.py --seeds 0 1 2 --rounds 16 --epochs 20 --out bench/imp_quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp import data, models  # noqa: E402

OUTPUT = models.lenet_300_100().layers[-1].name
MODES = {"weight rewinding (init)": "init", "learning-rate rewinding": "lr", "fine-tuning": "none",
         "learning-rate rewinding + distillation from the dense round": "lr+distill"}


def builder(steps_per_round: int):
    def build():
        model = models.lenet_300_100()
        lr = keras.optimizers.schedules.CosineDecay(1.2e-3, steps_per_round, alpha=0.1)
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    return build


def run(mode: str, seed: int, rounds: int, epochs: int, workdir: str) -> list[dict]:
    ds = data.digits(size=28, flatten=True)
    steps = epochs * -(-len(ds.x_train) // 60)
    rewind, _, distill = mode.partition("+")
    result = tfimp.imp(builder(steps), (ds.x_train, ds.y_train), (ds.x_test, ds.y_test),
                       rounds=rounds,
                       rate=0.2, layer_rates={OUTPUT: 0.1},
                       epochs_per_round=epochs, batch_size=60, rewind=rewind, scope="global",
                       distill="dense" if distill else None,
                       seed=seed, workdir=workdir, verbose=0)
    return result.history


def summarize(runs: dict, budget: float) -> str:
    lines = []
    for label, per_seed in runs.items():
        rounds = min(len(h) for h in per_seed)
        lines += [f"\n**{label}**\n", "| round | weights remaining | val accuracy (mean ± std) |"
                  " delta vs dense (pp) |", "|---:|---:|---:|---:|"]
        dense = np.array([h[0]["val_accuracy"] for h in per_seed])
        for r in range(rounds):
            acc = np.array([h[r]["val_accuracy"] for h in per_seed])
            remaining = np.mean([1 - h[r]["sparsity"] for h in per_seed])
            delta = 100 * (acc - dense)
            lines.append(f"| {r} | {remaining:.2%} | {100 * acc.mean():.2f} ± {100 * acc.std():.2f}"
                         f" | {delta.mean():+.2f} ± {delta.std():.2f} |")
        best = []
        for h in per_seed:
            ok = [row for row in h if h[0]["val_accuracy"] - row["val_accuracy"] <= budget + 1e-9]
            best.append(max(row["sparsity"] for row in ok))
        mean_acc = np.array([[h[r]["val_accuracy"] for h in per_seed] for r in range(rounds)])
        ok_mean = [r for r in range(rounds) if dense.mean() - mean_acc[r].mean() <= budget + 1e-9]
        sparsest = max(ok_mean)
        kept = np.mean([1 - h[sparsest]["sparsity"] for h in per_seed])
        lines.append(f"\nSparsest round whose mean accuracy is within {100 * budget:.1f} pp of "
                     f"dense: round {sparsest} ({kept:.2%} of weights). Per seed, best sparsity "
                     "within the budget: "
                     f"{', '.join(f'{b:.2%}' for b in best)}.")
    return "\n".join(lines)


def overhead(runs: dict) -> str:
    shares = [1 - (row["fit_seconds"] + row["eval_seconds"]) / row["seconds"]
              for per_seed in runs.values() for h in per_seed for row in h]
    seconds = [row["seconds"] for per_seed in runs.values() for h in per_seed for row in h]
    return (f"Driver share of round wall time (checkpoints, masks, reports; everything but "
            f"fit and evaluate): median {np.median(shares):.1%}, p90 "
            f"{np.percentile(shares, 90):.1%} over {len(shares)} rounds (median round "
            f"{np.median(seconds):.2f} s).")


def fit_time_ratios(runs: dict) -> str:
    """Median retraining time per pruned round of each mode, relative to the first mode."""
    medians = {label: np.median([row["fit_seconds"] for h in per_seed for row in h[1:]])
               for label, per_seed in runs.items()}
    first = next(iter(medians.values()))
    return "Retraining time per pruned round (median fit seconds; ratio to the first mode): " + \
        "; ".join(f"{label}: {m:.2f} s ({m / first:.2f}x)" for label, m in medians.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.005)
    parser.add_argument("--modes", nargs="+", default=list(MODES.values()))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs, start = {}, time.time()
    for label, mode in MODES.items():
        if mode not in args.modes:
            continue
        runs[label] = [run(mode, seed, args.rounds, args.epochs, tempfile.mkdtemp())
                       for seed in args.seeds]
        print(f"{label}: done after {time.time() - start:.0f} s", flush=True)
    text = summarize(runs, args.budget) + "\n\n" + overhead(runs) + "\n\n" + fit_time_ratios(runs)
    print(text)
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} cores; "
          f"total {time.time() - start:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
