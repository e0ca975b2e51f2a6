"""The report folder of `tfimp run`: Markdown, JSON, history tables and plots."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from tfimp.data import SYNTHETIC_NOTE
from tfimp.imp_report import write_history, write_plots
from tfimp.runs import atomic_write_text


def write(report, out: str | os.PathLike) -> None:
    """Writes report.md, report.json, history.csv/json, sparsity.txt and the plots into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", report.markdown())
    atomic_write_text(out / "report.json",
                      json.dumps(report.to_dict(), indent=2, default=_json_default))
    atomic_write_text(out / "sparsity.txt", report.sparsity_table + "\n")
    write_history(out, list(report.history))
    write_plots(out, list(report.history), report.metric, report.dense_metric)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _label(target: str) -> str:
    return "float32, dense round 0 (baseline)" if target == "dense_float32" else target


def _pct(x) -> str:
    return "" if x is None else f"{100 * float(x):.2f}%"


def _num(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def markdown(report) -> str:
    """The human-readable report: accuracy, rounds, layers, sizes, latency, micro."""
    r = report
    lines = [f"# tfimp run: {r.recipe.name}", ""]
    if r.synthetic:
        lines += [f"> **{SYNTHETIC_NOTE}**", ""]
    lines += [f"Command: `{r.command}`  ", f"Recipe digest: `{r.recipe.digest()}`, seed "
              f"{r.recipe.seed}, {r.seconds:.0f} s  ",
              f"Data: {r.data.get('name')} ({r.data.get('source', '')}), "
              f"{r.data.get('train_samples')} train / {r.data.get('test_samples')} test  ",
              f"Model: {r.recipe.model.name}, {r.params:,} parameters", ""]
    lines += _accuracy_section(r) + _rounds_section(r)
    lines += ["## Per-layer sparsity (best model)", "", "```", r.sparsity_table, "```", ""]
    lines += _export_section(r) + _latency_section(r) + _micro_section(r)
    if r.errors:
        lines += ["## Failed stages", ""] + [f"- {e}" for e in r.errors] + [""]
    return "\n".join(lines)


def _accuracy_section(r) -> list[str]:
    m = r.metric
    row = r.best_round
    delta = r.best_metric - r.dense_metric
    return ["## Accuracy", "",
            f"- dense {m}: **{r.dense_metric:.4f}**",
            f"- best within budget {r.budget:g}: round {row.get('round')}, sparsity "
            f"**{_pct(row.get('sparsity'))}**, {m} **{r.best_metric:.4f}** "
            f"({100 * delta:+.2f} points vs dense)", ""]


def _rounds_section(r) -> list[str]:
    from tfimp.runner import metric_of

    header = ["round", "sparsity", "remaining", f"val {r.metric}", "delta", "epochs", "seconds"]
    rows = []
    for h in r.history:
        delta = metric_of(h, r.metric) - r.dense_metric
        rows.append([h.get("round"), _pct(h.get("sparsity")), h.get("remaining", ""),
                     f"{metric_of(h, r.metric):.4f}", f"{100 * delta:+.2f} pt",
                     h.get("epochs", ""), _num(h.get("seconds"), 1)])
    return ["## IMP rounds", ""] + _table(header, rows) + [""]


def _export_section(r) -> list[str]:
    header = ["model", "encoding", "bytes", "gzip bytes", "dense float32 bytes", "ratio",
              "Keras acc", "TFLite acc", "agreement", "other encodings tried"]
    rows = []
    for e in r.exports:
        e = dataclasses.replace(e, target=_label(e.target))
        if e.error:
            rows.append([e.target, "failed: " + e.error] + [""] * 8)
            continue
        tried = ", ".join(f"{'sparse' if c['sparse'] else 'dense'} {c['bytes']:,} B"
                          f"{'' if c['runs'] else ' (refused)'}"
                          for c in e.candidates if c["sparse"] != e.sparse)
        rows.append([e.target, "sparse" if e.sparse else "dense", f"{e.bytes:,}",
                     f"{e.gzip_bytes:,}", f"{e.dense_float32_bytes:,}",
                     f"{e.dense_float32_bytes / e.bytes:.1f}x", _num(e.accuracy_keras),
                     _num(e.accuracy_tflite), _num(e.agreement), tried])
    return ["## Exported models (.tflite)", ""] + _table(header, rows) + [""]


def _latency_section(r) -> list[str]:
    header = ["model", "threads", "median us", "p90 us", "mean us"]
    rows = [[_label(x.target), x.threads, "failed: " + x.error if x.error else _num(x.median_us, 1),
             _num(x.p90_us, 1), _num(x.avg_us, 1)] for x in r.latency]
    return ["## Latency (LiteRT, XNNPACK, this machine)", ""] + _table(header, rows) + [""]


def _micro_section(r) -> list[str]:
    m = r.micro
    if m is None:
        return []
    lines = ["## TFLite Micro (int8 model)", ""]
    if m.get("arena_bytes") is None:
        reason = m.get("arena_error") or m.get("error")
        return lines + [f"Not runnable on TFLite Micro: {reason}", ""]
    lines += [f"- tensor arena: {m['arena_bytes']:,} bytes",
              f"- flash (model): {m['flash_bytes']:,} bytes"]
    v = m.get("verdict")
    if v:
        word = {True: "fits", False: "does NOT fit", None: "unknown"}[v["fits"]]
        lines.append(f"- {v['board']}: {word} (RAM margin {v['ram_margin_bytes']:,} B, flash "
                     f"margin {v['flash_margin_bytes']:,} B)")
    if m.get("c_files"):
        lines.append(f"- C array: {', '.join(m['c_files'])}")
    return lines + [""]
