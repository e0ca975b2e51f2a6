"""How well the per-layer latency table predicts unit cuts, against a + b * MACs.

For each recipe: random unit cuts (10-70% of the prunable units removed, at random within
every channel group), each applied and removed by `tfimp.shrink`, converted to int8 and timed
in LiteRT on this machine (1 thread, XNNPACK; interleaved repeats, median). Predictions:

- table: the dense model's measured latency plus the `LatencyTable`'s change (what a device
  run predicts);
- a + b * MACs: the line through the two points a run has after its first unit round (the
  dense model and the cut with the fewest units removed), as device runs predicted before;
  also pooled over every cut taken in turn as that point ("any_fit_cut"; "unusable_fits":
  lines whose slope is not positive, where the old policy stopped).

Errors are relative, |predicted - measured| / measured, over the cuts other than that fitting
point (and for the table also over all cuts). The table is measured into an empty cache
(first run), then read back by a new table object (second run).

    nice -n 10 python bench/latency_table.py --recipes lenet_300_100 ds_cnn --cuts 10 \
        --out bench/results/latency_table.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfimp.device import DeviceBudget, LatencyTable  # noqa: E402
from tfimp.device import cost  # noqa: E402
from tfimp.device.units import Units  # noqa: E402
from tfimp.pipeline import runner  # noqa: E402
from tfimp.pipeline.recipe import load_recipe  # noqa: E402
from tfimp.structure.shrink import shrink  # noqa: E402


def random_cuts(units: Units, n: int, rng) -> list[tuple[float, np.ndarray]]:
    """`n` keep vectors, each removing a share in [0.1, 0.7] of every group's units."""
    cuts = []
    for share in rng.uniform(0.1, 0.7, n):
        keep = units.alive.copy()
        for classes in units.groups():
            k = min(len(classes) - 1, int(round(share * len(classes))))
            keep[rng.choice(classes, k, replace=False)] = False
        cuts.append((float(share), keep))
    return cuts


def export(units: Units, keep, calibration) -> bytes:
    undo = units.apply(keep)
    try:
        return cost.export_int8(shrink(units.model), calibration)
    finally:
        undo()


def timed(files: list[bytes], budget, repeats: int) -> tuple[list[float], list[float]]:
    """Median latency (ms) of every file over `repeats` interleaved rounds of timings, and
    the relative spread (max - min) / median of each file's timings."""
    times = [[] for _ in files]
    for _ in range(repeats):
        for i, data in enumerate(files):
            times[i].append(cost.latency_ms(data, budget))
    return [float(np.median(t)) for t in times], [float(np.ptp(t) / np.median(t))
                                                  for t in times]


def _macs_line(macs0, ms0, macs1, ms1, macs) -> list:
    """latency = a + b * MACs through two measured points (None where b <= 0: the old
    policy then stopped, "the measured latency does not fall with the multiply-adds")."""
    slope = (ms1 - ms0) / (macs1 - macs0)
    return [ms0 + slope * (m - macs0) if slope > 0 else None for m in macs]


def _errors(pred, meas) -> dict:
    rel = [abs(p - m) / m for p, m in zip(pred, meas) if p is not None]
    if not rel:
        return {"median": None, "max": None, "n": 0}
    return {"median": round(float(np.median(rel)), 4), "max": round(float(np.max(rel)), 4),
            "n": len(rel)}


def run_recipe(name: str, cuts: int, repeats: int, seed: int, cache: Path) -> dict:
    recipe = load_recipe(name)
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, offline=True))
    data = runner.load_data(recipe)
    calibration = np.asarray(data.x_train[:cost.CALIBRATION_SAMPLES])
    model = runner.make_builder(recipe, data)()
    units = Units(model)
    rng = np.random.default_rng(seed)
    plan = random_cuts(units, cuts, rng)
    files = [export(units, units.alive, calibration)] + [export(units, k, calibration)
                                                          for _, k in plan]
    budget = DeviceBudget(latency_ms=1e3, runtime="litert")
    measured, spread = timed(files, budget, repeats)
    dense_ms, cut_ms = measured[0], measured[1:]

    start = time.perf_counter()
    table = LatencyTable(cache=cache)
    pred_table = [table.predict_ms(units, k, units.alive, dense_ms) for _, k in plan]
    first = {"seconds": round(time.perf_counter() - start, 2), **table.stats()}
    start = time.perf_counter()
    again, fresh = LatencyTable(cache=cache), Units(model)
    pred_again = [again.predict_ms(fresh, k, units.alive, dense_ms) for _, k in plan]
    second = {"seconds": round(time.perf_counter() - start, 2), **again.stats()}
    assert pred_again == pred_table

    macs = [units.estimate(k)["macs"] for _, k in plan]
    dense_macs = units.estimate(units.alive)["macs"]
    fit = int(np.argmin([s for s, _ in plan]))  # a run's first cut removes the least
    pred_macs = _macs_line(dense_macs, dense_ms, macs[fit], cut_ms[fit], macs)
    others = [i for i in range(len(plan)) if i != fit]
    pooled, unusable = [], 0
    for j in range(len(plan)):  # every cut in turn as the run's one measured cut
        line = _macs_line(dense_macs, dense_ms, macs[j], cut_ms[j], macs)
        unusable += line[0] is None
        pooled += [(line[i], cut_ms[i]) for i in range(len(plan)) if i != j]
    return {
        "recipe": name, "cuts": len(plan), "repeats": repeats, "dense_ms": round(dense_ms, 6),
        "timing_spread_median": round(float(np.median(spread)), 4),
        "fit_cut": fit,
        "table_error": _errors([pred_table[i] for i in others], [cut_ms[i] for i in others]),
        "macs_error": _errors([pred_macs[i] for i in others], [cut_ms[i] for i in others]),
        "table_error_all_cuts": _errors(pred_table, cut_ms),
        "macs_error_any_fit_cut": {**_errors(*zip(*pooled)), "unusable_fits": unusable},
        "table_first_run": first, "table_second_run": second,
        "rows": [{"share": round(s, 3), "units_left": int(k[units.prunable].sum()),
                  "macs": int(m), "measured_ms": round(ms, 6), "table_ms": round(pt, 6),
                  "macs_ms": None if pm is None else round(pm, 6)}
                 for (s, k), m, ms, pt, pm in zip(plan, macs, cut_ms, pred_table, pred_macs)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["lenet_300_100", "ds_cnn"])
    p.add_argument("--cuts", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/latency_table.json")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.recipes:
            r = run_recipe(name, args.cuts, args.repeats, args.seed, Path(cache) / name)
            print(json.dumps({k: x for k, x in r.items() if k != "rows"}, indent=1))
            results.append(r)
    Path(args.out).write_text(json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()} "
                   "(2-core Intel Xeon VM, shared)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "nice -n 10 python bench/latency_table.py " + " ".join(
            f"--{k} {' '.join(map(str, x)) if isinstance(x, list) else x}"
            for k, x in vars(args).items()),
        "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
