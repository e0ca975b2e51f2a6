"""Does `rate="adaptive"` end where an exhaustive sweep says the budget allows?

For each seed: the recipe's budgeted IMP with `rate="adaptive"` (the accuracy budget decides
how far it goes), and the sweep a user would run by hand: the same recipe at fixed rates
(`--sweep-rates`, rounds enough to pass 98%), each with the same total epochs and the same
dense round, run past the budget. All measure the budget against the same dense round 0.
Prints the sparsest round within the budget of adaptive and of the best fixed rate, how many
20% steps apart they are (adaptive is "within one step" when this is >= -1), and the epochs
spent.

    python bench/adaptive_sweep.py --recipe lenet_300_100 --seeds 0 1 2

`--sweep-from FILE` takes the fixed-rate runs of an earlier run of this script (same recipe
and seeds) instead of training them again: they do not depend on the adaptive controller, so
a change to it is measured against the same sweep. The dense round of each seed is compared
with the one recorded there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfimp  # noqa: E402
from tfimp.pipeline import runner  # noqa: E402
from tfimp.pipeline.recipe import load_recipe  # noqa: E402

STEP = 0.2


def _run(recipe, data, workdir, **overrides):
    import dataclasses

    config = tfimp.IMPConfig.from_kwargs(
        dataclasses.replace(recipe.imp, seed=recipe.seed, stop_at_budget=False), **overrides)
    start = time.time()
    result = tfimp.imp(runner.make_builder(recipe, data), (data.x_train, data.y_train),
                       (data.x_test, data.y_test), config, workdir=workdir, verbose=0)
    return result, time.time() - start


def _sweep(recipe, data, tmp, rates, plan, budget) -> dict:
    """The fixed-rate runs: rounds enough to pass 98%, the same epochs and dense round."""
    runs, seconds = [], 0.0
    for rate in rates:
        rounds = math.ceil(math.log(0.02) / math.log(1 - rate))
        run, t = _run(recipe, data, f"{tmp}/s{rate}", rate=rate, rounds=rounds,
                      dense_epochs=plan.dense, total_epochs=plan.total)
        runs.append(run)
        seconds += t
    best = [run.best_round(budget)["sparsity"] for run in runs]
    return {"dense": [run.dense_metric for run in runs],
            "sweep_by_rate": dict(zip(map(str, rates), best)), "sweep_sparsity": max(best),
            "sweep_epochs": sum(h["epochs"] for run in runs for h in run.history),
            "sweep_seconds": round(seconds)}


def _earlier(path: str, recipe: str) -> dict:
    """The seeds' rows of an earlier output of this script, for the same recipe."""
    runs = json.loads(Path(path).read_text())
    argv = runs["meta"]["argv"]
    if f"--recipe {recipe}" not in argv and not (recipe == "lenet_300_100"
                                                  and "--recipe" not in argv):
        raise SystemExit(f"--sweep-from {path} is a run of another recipe ({argv})")
    return {row["seed"]: row for row in runs["runs"]}


def _reused(earlier: dict, seed: int) -> dict:
    """The sweep of `seed` from an earlier run; its dense round is checked where recorded."""
    if seed not in earlier:
        raise SystemExit(f"--sweep-from has no run of seed {seed}")
    row = earlier[seed]
    if not row["dense_equal"]:
        raise SystemExit(f"--sweep-from: seed {seed}'s sweep did not share its dense round")
    return {"dense": [row["dense"]] if "dense" in row else None,
            **{k: row[k] for k in ("sweep_by_rate", "sweep_sparsity", "sweep_epochs",
                                   "sweep_seconds")}, "sweep_reused": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="lenet_300_100")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--sweep-rates", nargs="+", type=float, default=[0.2, 0.3, 0.45, 0.6])
    parser.add_argument("--out", default="bench/results/adaptive_sweep.json")
    parser.add_argument("--sweep-from", help="an earlier output of this script to reuse the "
                        "fixed-rate runs of")
    args = parser.parse_args()
    earlier = _earlier(args.sweep_from, args.recipe) if args.sweep_from else None
    recipe = load_recipe(args.recipe).override("data.offline=true")
    data = runner.load_data(recipe)
    plan = recipe.imp.epoch_plan
    rows = []
    for seed in args.seeds:
        r = recipe.override(seed=seed)
        budget = recipe.imp.budget
        with tempfile.TemporaryDirectory() as tmp:
            adaptive, t_a = _run(r, data, f"{tmp}/a", rate="adaptive", rounds=None)
            if earlier is None:
                sweep = _sweep(r, data, tmp, args.sweep_rates, plan, budget)
            else:
                sweep = _reused(earlier, seed)
        a = adaptive.best_round(budget)["sparsity"]
        s = sweep["sweep_sparsity"]
        steps = math.log((1 - a) / (1 - s)) / math.log(1 - STEP) if s < 1 else 0.0
        dense = sweep.pop("dense")
        row = {"seed": seed, "dense": adaptive.dense_metric,
               # None: an earlier sweep that did not record its dense metric
               "dense_equal": None if dense is None else all(
                   d == adaptive.dense_metric for d in dense),
               **sweep, "adaptive_sparsity": a, "steps_short": round(steps, 2),
               "adaptive_rounds": len(adaptive.history) - 1,
               "adaptive_rejected": sum(1 for h in adaptive.history if h.get("accepted") is
                                        False),
               "adaptive_epochs": sum(h["epochs"] for h in adaptive.history),
               "adaptive_seconds": round(t_a)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"machine": f"{platform.platform()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"), "argv": " ".join(os.sys.argv),
            "sweep_from": args.sweep_from}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    print("| seed | adaptive: sparsest within budget | best fixed rate | steps short | "
          "adaptive rounds (retried) | epochs adaptive / sweep |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['seed']} | {100 * row['adaptive_sparsity']:.2f}% | "
              f"{100 * row['sweep_sparsity']:.2f}% | {row['steps_short']:+.2f} | "
              f"{row['adaptive_rounds']} ({row['adaptive_rejected']}) | "
              f"{row['adaptive_epochs']} / {row['sweep_epochs']} |")


if __name__ == "__main__":
    main()
