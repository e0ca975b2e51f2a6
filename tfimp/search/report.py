"""The report of a search (`WORKDIR/report/`): `search.md`, `search.json`, `trials.csv` and
`pareto.png`: every slot's trial, the Pareto front, and the best point per accuracy budget.

`load(DIR)` reads `search.json` back (for `tfimp run --from-search DIR`)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from tfimp._util import validate as v
from tfimp._util.io import atomic_write_text
from tfimp._util.tables import markdown_table

__all__ = ["SearchReport", "fmt", "load", "pareto", "rerun_words", "write"]

BUDGETS = (0.005, 0.01, 0.02, 0.05)
_SIZE = ("bytes", "flash", "density", "latency", "epochs")


@dataclasses.dataclass(frozen=True)
class SearchReport:
    """What a search found: `trials` (one row per slot), `pareto` and `best` (slots)."""

    settings: dict
    storage: str
    study: str
    trials: tuple
    pareto: tuple
    best: dict
    report_dir: str
    budget: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def markdown(self) -> str:
        return markdown(self)


def fmt(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("drop", "density", "sparsity", "metric", "dense_metric"):
        return f"{100 * value:.2f}%"
    if name == "latency":
        return f"{value:.1f} us"
    if name in ("bytes", "flash"):
        return f"{int(value):,}"
    return str(value)


def rows(study, settings: dict) -> list[dict]:
    """One row per slot: the trial that settled it (or the last attempt)."""
    from tfimp.search import study as study_lib

    out = []
    for slot, ts in sorted(study_lib.slots(study.get_trials(), settings["trials"]).items()):
        t = study_lib.final(ts) or ts[-1]
        out.append({"slot": slot, "number": t.number, "state": t.state.name.lower(),
                    "attempts": len(ts), "overrides": t.user_attrs.get("overrides", []),
                    "metrics": t.user_attrs.get("metrics", {}),
                    "feasible": all(c <= 0 for c in
                                    t.user_attrs.get("constraints", {}).values()),
                    "run_dir": t.user_attrs.get("run_dir"),
                    "seconds": t.user_attrs.get("seconds"),
                    "error": t.user_attrs.get("error", "")})
    return out


def pareto(table: list[dict], objectives) -> list[int]:
    """Slots of the completed, feasible rows no other such row dominates."""
    done = [r for r in table if r["state"] == "complete" and r["feasible"]]
    vals = {r["slot"]: [r["metrics"][o] for o in objectives] for r in done}

    def dominated(a):
        return any(all(x <= y for x, y in zip(b, vals[a])) and vals[a] != b
                   for s, b in vals.items() if s != a)

    return [s for s in vals if not dominated(s)]


def best_per_budget(table: list[dict], objectives, budget: float | None) -> dict:
    """Per accuracy budget, the completed row with the smallest size objective whose drop is
    within it (ties: the smaller drop)."""
    size = next((o for o in objectives if o != "drop"), "bytes")
    budgets = sorted(set(BUDGETS) | ({budget} if budget is not None else set()))
    out = {}
    for b in budgets:
        ok = [r for r in table if r["state"] == "complete" and r["feasible"]
              and r["metrics"].get("drop") is not None and r["metrics"]["drop"] <= b + 1e-12
              and r["metrics"].get(size) is not None]
        if ok:
            best = min(ok, key=lambda r: (r["metrics"][size], r["metrics"]["drop"]))
            out[f"{b:g}"] = best["slot"]
    return out


def write(plan, study) -> SearchReport:
    """Writes the report folder of `plan`'s study and returns it."""
    from tfimp.search.study import _safe_url

    settings = dict(plan.settings.meta(), trials=plan.settings.trials)
    table = rows(study, settings)
    objectives = settings["objectives"]
    out = plan.workdir / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = SearchReport(settings, _safe_url(plan.storage), plan.study, tuple(table),
                          tuple(pareto(table, objectives)),
                          best_per_budget(table, objectives, plan.space.recipe.imp.budget),
                          str(out), plan.space.recipe.imp.budget)
    atomic_write_text(out / "search.json", json.dumps(report.to_dict(), indent=2,
                                                      default=str))
    atomic_write_text(out / "trials.csv", _csv(table))
    _plot(report, out / "pareto.png")
    atomic_write_text(out / "search.md", report.markdown())
    return report


def _csv(table: list[dict]) -> str:
    keys = sorted({k for r in table for k in r["metrics"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["slot", "state", "attempts", *keys, "overrides", "run_dir", "error"])
    for r in table:
        w.writerow([r["slot"], r["state"], r["attempts"], *(r["metrics"].get(k) for k in keys),
                    " ".join(r["overrides"]), r["run_dir"], r["error"]])
    return buf.getvalue()


def rerun_words(settings: dict, row: dict) -> list[str]:
    """The `tfimp run` arguments that rerun one trial."""
    return [settings["recipe"], *settings.get("fixed", []), *row["overrides"],
            *(["--smoke"] if settings.get("smoke") else [])]


def markdown(r: SearchReport) -> str:
    s, objectives = r.settings, r.settings["objectives"]
    done = [t for t in r.trials if t["state"] == "complete"]
    kind = ("Pareto front (NSGA-II)" if len(objectives) > 1
            else "one objective within the accuracy budget (TPE, median pruner)")
    lines = [f"# Search: {s['recipe']}", "",
             f"{len(r.trials)} of {s['trials']} trials settled, {len(done)} complete; "
             f"objectives (minimized): {', '.join(objectives)}; {kind}; seed {s['seed']}"
             f"{'; smoke trials' if s['smoke'] else ''}.", "",
             f"Storage: `{r.storage}`, study `{r.study}`.", "",
             "Space: " + ", ".join(f"`{k}`" for k in s["space"]), ""]
    if (Path(r.report_dir) / "pareto.png").exists():
        lines += ["![Trials: accuracy drop against size](pareto.png)", ""]
    shown = [*objectives, *(["drop"] if "drop" not in objectives else [])]
    lines += ["## Trials", "", *markdown_table(
        ["slot", "state", *shown, "sparsity", "epochs", "front", "settings"],
        [[t["slot"], t["state"] + (f" ({t['attempts']} attempts)" if t["attempts"] > 1 else ""),
          *(fmt(o, t["metrics"].get(o)) for o in shown),
          fmt("sparsity", t["metrics"].get("sparsity")), t["metrics"].get("epochs", "-"),
          "*" if t["slot"] in r.pareto else "",
          " ".join(t["overrides"]) or t["error"][:80]] for t in r.trials]), ""]
    if r.best:
        lines += ["## Best point per accuracy budget", "", *markdown_table(
            ["budget", "slot", *shown, "sparsity", "rerun"],
            [[fmt("drop", float(b)), slot, *(fmt(o, _row(r, slot)["metrics"].get(o))
                                             for o in shown),
              fmt("sparsity", _row(r, slot)["metrics"].get("sparsity")),
              f"`tfimp run --from-search {Path(r.report_dir).parent} --trial {slot}`"]
             for b, slot in r.best.items()]), ""]
    failed = [t for t in r.trials if t["state"] == "fail"]
    if failed:
        lines += ["## Failed trials", ""] + [f"- slot {t['slot']}: {t['error'] or 'worker lost'}"
                                             for t in failed] + [""]
    return "\n".join(lines)


def _row(r: SearchReport, slot: int) -> dict:
    return next(t for t in r.trials if t["slot"] == slot)


def _plot(r: SearchReport, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    objectives = r.settings["objectives"]
    done = [t for t in r.trials if t["state"] == "complete"]
    if not done:
        return
    x_name = "drop"
    y_name = next((o for o in objectives if o != x_name), next(
        o for o in _SIZE if done[0]["metrics"].get(o) is not None))
    c_name = next((o for o in objectives if o not in (x_name, y_name)), None)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    xs = [100 * t["metrics"][x_name] for t in done]
    ys = [t["metrics"][y_name] for t in done]
    if c_name:
        sc = ax.scatter(xs, ys, c=[t["metrics"][c_name] for t in done], cmap="viridis", s=36,
                        label="trials")
        fig.colorbar(sc, ax=ax, label=c_name)
    else:
        ax.scatter(xs, ys, s=36, label="trials")
    front = sorted((x, y) for t, x, y in zip(done, xs, ys) if t["slot"] in r.pareto)
    if front:
        ax.plot(*zip(*front), "o", mfc="none", mec="tab:red", ms=11, label="Pareto front")
    for t, x, y in zip(done, xs, ys):
        ax.annotate(str(t["slot"]), (x, y), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("accuracy drop (points)")
    ax.set_ylabel({"bytes": "int8 .tflite bytes", "flash": "TFLite Micro flash bytes"}.get(
        y_name, y_name))
    ax.set_title(f"{r.settings['recipe']}: {len(done)} trials")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load(folder) -> dict:
    """The `search.json` of a search folder (or of its `report/`)."""
    folder = Path(folder)
    for path in (folder / "report" / "search.json", folder / "search.json"):
        if path.is_file():
            return json.loads(path.read_text())
    v.fail("from_search", str(folder), "a search folder with report/search.json (the "
           "--workdir of a `tfimp search`)")


def trial_recipe(folder, slot: int | None = None):
    """The recipe that trial `slot` of the search in `folder` ran (default: the best point
    within the recipe's accuracy budget), and that trial's row."""
    from tfimp.pipeline.recipe import load_recipe

    data = load(folder)
    row = choose(data, slot)
    settings = data["settings"]
    recipe = load_recipe(settings["recipe"]).override(*settings.get("fixed", []),
                                                      *row["overrides"])
    return (recipe.smoke_recipe() if settings.get("smoke") else recipe), row


def choose(data: dict, slot: int | None) -> dict:
    """The trial row `slot` of a loaded search, or the best within the recipe's budget."""
    trials = {t["slot"]: t for t in data["trials"] if t["state"] == "complete"}
    if slot is None:
        if not data["best"]:
            v.fail("from_search", data["report_dir"], "a search with a completed trial")
        budget = data.get("budget") or 0.01
        key = min(data["best"], key=lambda b: (abs(float(b) - budget), float(b)))
        slot = data["best"][key]
    if slot not in trials:
        v.fail("trial", slot, f"a completed trial of the search: one of {sorted(trials)}")
    return trials[slot]
