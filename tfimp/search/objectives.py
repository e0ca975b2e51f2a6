"""What a search minimizes, read from an ordinary run's report, and one trial's run.

Objectives (all minimized): `drop` (the best round's metric drop below the dense model),
`bytes` (the int8 .tflite file), `flash` (the TFLite Micro flash of the int8 model, in the
encoding written), `latency` (LiteRT median microseconds of the int8 file, one thread),
`density` (the share of weights kept), `epochs` (epochs trained in all).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from tfimp._util import validate as v
from tfimp.pipeline.recipe import Recipe, format_value

__all__ = ["OBJECTIVES", "constraints", "measure", "parse_objectives", "round_value",
           "run_trial"]

OBJECTIVES = ("drop", "bytes", "flash", "latency", "density", "epochs")
DEFAULT = ("drop", "bytes", "latency")


def parse_objectives(text) -> tuple[str, ...]:
    """`"drop,bytes"` -> ("drop", "bytes"); raises ValueError for unknown or repeated names."""
    names = tuple(t.strip() for t in (text.split(",") if isinstance(text, str) else text))
    if not names or not all(names) or len(set(names)) != len(names) \
            or any(n not in OBJECTIVES for n in names):
        v.fail("objective", text, f"distinct names among {', '.join(OBJECTIVES)}, comma "
               "separated (several: a Pareto front; one: minimized within the accuracy budget)")
    return names


def measure(report) -> dict:
    """Every objective's value (None where the run did not measure it) and the board verdict."""
    rows = {e.target: e for e in report.exports if not e.error}
    int8 = rows.get("int8")
    micro = report.micro or {}
    compression = micro.get("compression") or {}
    latency = [r.median_us for r in report.latency
               if r.target == "int8" and r.threads == 1 and not r.error]
    last = report.history[-1] if report.history else {}
    return {
        "drop": report.recipe.imp.drop(report.dense_metric, report.best_metric),
        "bytes": int8.bytes if int8 else None,
        "flash": compression.get("flash_bytes") or micro.get("flash_bytes"),
        "latency": latency[0] if latency else None,
        "density": 1.0 - float(report.best_round.get("sparsity", 0.0)),
        "epochs": int(last.get("epochs_total", 0)) + int((report.qat or {}).get("epochs", 0)),
        "sparsity": float(report.best_round.get("sparsity", 0.0)),
        "metric": report.best_metric,
        "dense_metric": report.dense_metric,
        "fits": (micro.get("verdict") or {}).get("fits"),
    }


def constraints(metrics: dict, budget: float | None, single: bool) -> dict:
    """Optuna's constraints (<= 0 is feasible): the accuracy budget when one objective is
    minimized, and the board's memory when the run checked a board."""
    out = {}
    if single and budget is not None:
        out["accuracy_budget"] = metrics["drop"] - budget
    if metrics.get("fits") is not None:
        out["device_budget"] = 0.0 if metrics["fits"] else 1.0
    return out


def round_value(objective: str, row: dict, dense: float, recipe: Recipe, state: dict) -> float:
    """What a finished round says of a single `objective`, for Optuna's pruner: the round's
    drop, or the density of the sparsest round within the budget so far (1 before any)."""
    imp = recipe.imp
    metric = row.get(f"val_{imp.metric}")
    drop = imp.drop(dense, metric) if metric is not None and dense is not None else 1.0
    if objective == "drop":
        return float(drop)
    if imp.budget is None or drop <= imp.budget:
        state["density"] = min(state.get("density", 1.0), 1.0 - float(row.get("sparsity", 0)))
    return state.get("density", 1.0)


def run_trial(recipe: Recipe, workdir: Path, on_round=None, log: Path | None = None):
    """Runs `recipe` as an ordinary `tfimp run` into `workdir`, its printout into `log`."""
    from tfimp.pipeline import runner

    command = f"tfimp run {recipe.name} --workdir {workdir}"
    # Keras' retracing warnings of many trials in one worker would bury the trial lines.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.time()
    with contextlib.ExitStack() as stack:
        if log is not None:
            out = stack.enter_context(open(log, "a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(out))
        report = runner.run(recipe, workdir=workdir, command=command, on_round=on_round)
    return report, time.time() - start


def overrides_text(kept: dict) -> list[str]:
    return [f"{k}={format_value(val)}" for k, val in kept.items()]
