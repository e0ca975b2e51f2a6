"""The report folder of `tfimp run`: Markdown, JSON, history tables and plots."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

SYNTHETIC_NOTE = "synthetic data: accuracy is meaningless; sizes and latencies hold"


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically (a temp file in the same folder, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(report, out: str | os.PathLike) -> list[str]:
    """Writes report.md, report.json, history.csv/json, sparsity.txt and plots into `out`.

    Returns:
        The paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": report.markdown(),
        "report.json": json.dumps(report.to_dict(), indent=2, default=_json_default),
        "history.json": json.dumps(list(report.history), indent=2, default=_json_default),
        "history.csv": history_csv(report.history),
        "sparsity.txt": report.sparsity_table + "\n",
    }
    for name, text in files.items():
        write_text(out / name, text)
    written = [str(out / name) for name in files]
    return written + plots(report, out)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def history_csv(history) -> str:
    """The IMP history as CSV, one row per round, columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _scalar(row.get(k)) for k in columns})
    return buf.getvalue()


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def plots(report, out: Path) -> list[str]:
    """PNG plots: metric vs remaining weights with the dense line; per-layer sparsity.

    Returns the paths written; none when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    from tfimp.runner import metric_of

    paths = []
    remaining = [100 * (1 - float(r["sparsity"])) for r in report.history]
    values = [metric_of(r, report.metric) for r in report.history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(remaining, values, "o-", label="IMP rounds")
    ax.axhline(report.dense_metric, color="gray", ls="--", label="dense")
    ax.axhline(report.dense_metric - report.budget, color="red", ls=":", label="budget")
    ax.set(xscale="log", xlabel="remaining weights (%)", ylabel=f"validation {report.metric}",
           title=report.recipe.name + (" (synthetic data)" if report.synthetic else ""))
    ax.invert_xaxis()
    ax.legend()
    paths.append(_save(fig, out / "metric_vs_remaining.png"))
    rows = report.sparsity["rows"]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1.5))
    ax.barh([r["layer"] for r in rows], [100 * r["sparsity"] for r in rows])
    ax.set(xlabel="sparsity (%)", xlim=(0, 100), title="per-layer sparsity of the best model")
    ax.invert_yaxis()
    paths.append(_save(fig, out / "layer_sparsity.png"))
    plt.close("all")
    return paths


def _save(fig, path: Path) -> str:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return str(path)


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
    rows = [[x.target, x.threads, "failed: " + x.error if x.error else _num(x.median_us, 1),
             _num(x.p90_us, 1), _num(x.avg_us, 1)] for x in r.latency]
    return ["## Latency (LiteRT, XNNPACK, this machine)", ""] + _table(header, rows) + [""]


def _micro_section(r) -> list[str]:
    m = r.micro
    if m is None:
        return []
    if not m.get("runnable"):
        return ["## TFLite Micro", "", f"int8 model not runnable on TFLite Micro: "
                f"{m.get('reason')}", ""]
    keys = [k for k in ("arena_bytes", "flash_bytes", "board", "fits", "ops") if k in m]
    return ["## TFLite Micro (int8)", ""] + [f"- {k}: {m[k]}" for k in keys] + [""]
