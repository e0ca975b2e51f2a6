"""The device part of a run report: the budget against what was measured, per round and on
the files written for the device (checked again on the artefact itself)."""

from __future__ import annotations

from pathlib import Path

from tfimp.device import cost
from tfimp.export.boards import MicroBoard

__all__ = ["as_board", "check_artifact", "device_markdown", "device_summary"]

_HUGE = 2 ** 31 - 1


def as_board(budget) -> MicroBoard:
    """The budget as a `MicroBoard` for `to_micro(board=...)` (a free resource: no limit)."""
    return MicroBoard(budget.name or "budget", budget.ram or _HUGE, budget.flash or _HUGE,
                      "", f"DeviceBudget: {budget.describe()}")


def check_artifact(model, budget, choice: dict, data, out: Path) -> dict:
    """Exports `model` (shrunk) for the device and measures the files written: TFLite Micro
    C source in the chosen encoding, checked against the budget by `to_micro`; or the int8
    .tflite timed in LiteRT."""
    from tfimp.export import to_micro
    from tfimp.export.micro_run import MicroError

    blob = cost.export_int8(model, data.x_train)
    if budget.runtime == "litert":
        ms = cost.latency_ms(blob, budget)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_int8.tflite").write_bytes(blob)
        fits = budget.latency_ms is None or ms <= budget.latency_ms
        fits = fits and (budget.flash is None or len(blob) <= budget.flash)
        return {"files": [str(out / "model_int8.tflite")], "flash": len(blob),
                "latency_ms": ms, "fits": fits}
    compression = None if choice["encoding"] == "none" else choice["encoding"]
    board = as_board(budget) if choice["fits"] else None
    try:
        art = to_micro(blob, out, inputs=data.x_test[:64], compression=compression,
                       board=board, margin=budget.margin)
    except MicroError as e:
        return {"fits": False, "error": str(e).splitlines()[0]}
    fits = (budget.flash is None or art.model_bytes <= budget.flash) and \
        (budget.ram is None or art.arena_size <= budget.ram)
    return {"files": list(art.files), "flash": art.model_bytes, "ram": art.arena_size,
            "arena_bytes": art.arena_bytes, "encoding": art.compression, "fits": fits}


def device_summary(policy, result, int8_path, data, out: Path) -> dict:
    """Budget, the chosen round (fitting or nearest miss), every round's measurement, and
    the check of the exported files."""
    from tfimp.structure.shrink import shrink

    choice = result.device
    rounds = [{"round": h["round"], "action": h.get("device_action", "dense"),
               "metric": h.get(f"val_{result.metric}"), "units_removed": h.get("units_removed"),
               **{k: h["device"][k] for k in ("flash", "ram", "latency_ms", "encoding", "fits")}}
              for h in result.history if "device" in h]
    model = shrink(result.model(choice["round"]))
    checked = check_artifact(model, policy.budget, choice, data, out)
    return {"budget": policy.budget.get_config(), "limits": policy.budget.limits(),
            "describe": policy.budget.describe(), "allocation": policy.allocation,
            "choice": choice, "rounds": rounds, "checked": checked}


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if kind == "latency_ms" else f"{int(value):,} B"


def _retiming(choice: dict, limits: dict) -> str:
    """What timing the chosen round's file again at the end of the run found."""
    if "retimed" not in choice:
        return ""
    again = choice["retimed"]
    text = f"; timed again at the end: {again['latency_ms']:.4f} ms " \
        f"({'within' if again['fits'] else 'over'} the {limits['latency_ms']:g} ms budget)"
    for r in choice.get("rejected_on_retiming", ()):
        text += f"; round {r['round']} fitted in the run but took {r['latency_ms']:.4f} ms " \
            "when timed again"
    return text


def device_markdown(d: dict) -> list[str]:
    """The report's "Device budget" section."""
    choice, limits, checked = d["choice"], d["limits"], d["checked"]
    kinds = list(limits)
    label = "fits" if choice["fits"] else f"NEAREST MISS ({choice['binding']} over by " \
        f"{100 * choice['over_by']:.1f}%)"
    label += _retiming(choice, limits)
    lines = ["## Device budget", "", f"Budget: {d['describe']}. Round {choice['round']} is "
             f"written: {label}; exported files checked: "
             f"{'fit' if checked.get('fits') else 'do not fit'}.", "",
             "| round | action | metric | " + " | ".join(kinds) + " | encoding | fits |",
             "|---|---|---|" + "---|" * len(kinds) + "---|---|",
             "| budget | | | " + " | ".join(_cell(limits[k], k) for k in kinds) + " | | |"]
    for r in d["rounds"]:
        cells = " | ".join(_cell(r.get(k), k) for k in kinds)
        lines.append(f"| {r['round']} | {r['action']} | {r['metric']:.4f} | {cells} | "
                     f"{r['encoding']} | {'yes' if r['fits'] else 'no'} |")
    cells = " | ".join(_cell(checked.get(k), k) for k in kinds)
    lines.append(f"| exported | | | {cells} | {checked.get('encoding', '')} | "
                 f"{'yes' if checked.get('fits') else 'no'} |")
    if checked.get("error"):
        lines.append(f"\nExport check failed: {checked['error']}")
    return lines + [""]
