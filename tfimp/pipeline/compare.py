"""`tfimp run RECIPE --compare gradual`: the recipe's IMP run beside gradual magnitude
pruning trained on the same data for the same number of epochs.

Gradual pruning reaches one sparsity per run, so it runs once per comparison sparsity
(90/95/97/98% and the sparsity IMP chose), each from scratch with tfmot's PolynomialDecay
values and as many epochs as the whole IMP run spent; its dense reference is IMP's round 0,
so both are measured against the same dense model.
"""

from __future__ import annotations

import dataclasses
import time

from tfimp._util.tables import markdown_table

__all__ = ["COMPARE_TARGETS", "STRATEGIES", "compare_gradual", "comparison_markdown"]

COMPARE_TARGETS = (0.90, 0.95, 0.97, 0.98)
STRATEGIES = ("gradual",)


def _first_at_or_above(history: list[dict], target: float) -> dict | None:
    rows = sorted((h for h in history if h["round"] > 0 and h["sparsity"] >= target - 1e-3),
                  key=lambda h: h["sparsity"])
    return rows[0] if rows else None


def compare_gradual(recipe, data, imp_result, workdir, build, verbose: int = 0) -> dict:
    """Runs gradual pruning at each comparison sparsity with the IMP run's epochs."""
    from tfimp.lottery.driver import imp

    metric = recipe.imp.metric
    history = list(imp_result.history)
    epochs = sum(h["epochs"] for h in history)
    chosen = imp_result.best_round(recipe.imp.budget)["sparsity"]
    targets = sorted({*COMPARE_TARGETS, round(chosen, 4)} - {0.0})
    base = {"seed": recipe.seed, "strategy": "gradual", "rewind": "init", "rate": 0.2,
            "rounds": None, "final_qat_epochs": 0, "distill": None, "total_epochs": epochs,
            "dense_epochs": None, "patience": None, "stop_at_budget": False}
    dense = imp_result.model(0)
    rows, start = [], time.perf_counter()
    for target in targets:
        config = dataclasses.replace(recipe.imp, **base, target_sparsity=target)
        result = imp(build, (data.x_train, data.y_train), (data.x_test, data.y_test),
                     config, initial_model=dense, workdir=str(workdir), verbose=verbose)
        g = result.history[-1]
        i = _first_at_or_above(history, target)
        rows.append({"target": target,
                     "imp_sparsity": None if i is None else i["sparsity"],
                     "imp": None if i is None else i[f"val_{metric}"],
                     "imp_epochs": None if i is None else i.get("epochs_total"),
                     "gradual_sparsity": g["sparsity"], "gradual": g[f"val_{metric}"],
                     "gradual_epochs": g["epochs"], "gradual_seconds": g["seconds"]})
    budget = recipe.imp.budget or 0.0
    dense_metric = imp_result.dense_metric
    drop = recipe.imp.drop
    within = [r["gradual_sparsity"] for r in rows if drop(dense_metric, r["gradual"])
              <= budget + 1e-12]
    return {"metric": metric, "budget": budget, "dense": dense_metric, "rows": rows,
            "imp_epochs": epochs, "imp_seconds": round(sum(h["seconds"] for h in history), 1),
            "imp_sparsest": chosen,
            "gradual_sparsest": max(within) if within else 0.0,
            "gradual_seconds": round(time.perf_counter() - start, 1)}


def comparison_markdown(c: dict) -> list[str]:
    """The report section of a comparison."""
    def acc(value):
        return "—" if value is None else f"{value:.4f} ({100 * (value - c['dense']):+.2f} pt)"

    header = ["sparsity", f"IMP {c['metric']}", "IMP round sparsity", "IMP epochs so far",
              f"gradual {c['metric']}", "gradual epochs"]
    rows = [[f"{100 * r['target']:.2f}%", acc(r["imp"]),
             "—" if r["imp_sparsity"] is None else f"{100 * r['imp_sparsity']:.2f}%",
             r["imp_epochs"] if r["imp_epochs"] is not None else "—", acc(r["gradual"]),
             r["gradual_epochs"]] for r in c["rows"]]
    return ["## IMP vs gradual magnitude pruning (equal epochs)", "",
            f"Dense {c['metric']} (round 0, the reference of both): {c['dense']:.4f}. IMP "
            f"spent {c['imp_epochs']} epochs in all ({c['imp_seconds']:.0f} s); each gradual "
            f"run trains as many, from scratch (tfmot's PolynomialDecay: cubic from 0 over "
            f"the first half), {c['gradual_seconds']:.0f} s for all of them. IMP's row is "
            "its first round at or above the sparsity.", "",
            *markdown_table(header, rows), "",
            f"- sparsest within the budget {c['budget']:g}: IMP "
            f"**{100 * c['imp_sparsest']:.2f}%**, gradual **{100 * c['gradual_sparsest']:.2f}%**"
            " (of the sparsities tried)", ""]
