"""Dense test accuracy of a recipe's model under several training settings and seeds.

Each setting is a space-separated list of recipe overrides; the dense round 0 trains exactly
as `tfimp run RECIPE rounds=0 seed=S SETTING` trains it (same builder, optimizer, schedule and
IMP driver), without the export and profiling stages. Prints a markdown table: accuracy per
seed, mean ± std, epochs and training seconds (mean over seeds).

    python bench/recipe_dense.py mnist1d_cnn --seeds 0 1 2 \\
        --settings "lr=1e-2 batch_size=64 epochs_per_round=30" "lr=3e-3 epochs_per_round=30"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.pipeline.recipe import load_recipe  # noqa: E402
from tfimp.pipeline.runner import load_data, make_builder  # noqa: E402


def dense_round(name: str, setting: str, seed: int) -> dict:
    recipe = load_recipe(name).override("rounds=0", f"seed={seed}", *setting.split())
    data = load_data(recipe)
    config = dataclasses.replace(recipe.imp, seed=seed)
    with tempfile.TemporaryDirectory() as workdir:
        result = tfimp.imp(make_builder(recipe, data), (data.x_train, data.y_train),
                           (data.x_test, data.y_test), config, workdir=workdir, verbose=0)
    row = result.history[0]
    return {"setting": setting, "seed": seed, "accuracy": row[f"val_{recipe.imp.metric}"],
            "epochs": row["epochs"], "fit_seconds": row["fit_seconds"]}


def table(rows: list[dict], seeds: list[int]) -> str:
    lines = ["| setting | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean ± std | epochs | training s |", "|---" * (len(seeds) + 4) + "|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        acc = np.array([r["accuracy"] for r in mine]) * 100
        label = f"`{setting}`" if setting else "the recipe's settings"
        lines.append(f"| {label} | " + " | ".join(f"{a:.1f}%" for a in acc)
                     + f" | {acc.mean():.2f} ± {acc.std():.2f}% | {mine[0]['epochs']} | "
                     f"{np.mean([r['fit_seconds'] for r in mine]):.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=[""])
    parser.add_argument("--out", help="also write the rows as JSON")
    args = parser.parse_args()
    start = time.time()
    rows = [dense_round(args.recipe, s, seed) for s in args.settings for seed in args.seeds]
    print(table(rows, args.seeds))
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.time() - start:.0f} s in all")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
