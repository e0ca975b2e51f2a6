"""The report folder of `tfimp run`: Markdown, JSON, history tables and plots."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from tfimp._util.io import atomic_write_text
from tfimp._util.tables import markdown_table
from tfimp.data.base import SYNTHETIC_NOTE
from tfimp.lottery.report import write_history, write_plots
from tfimp.pipeline.compare import comparison_markdown
from tfimp.pipeline.recipe import Recipe

__all__ = ["ExportRow", "LatencyRow", "PTQ_TARGET", "RunReport", "is_baseline", "markdown",
           "metric_of", "write"]

# The post-training int8 file written beside a QAT stage's int8 file, for comparison.
PTQ_TARGET = "int8_ptq"


@dataclasses.dataclass(frozen=True)
class ExportRow:
    """One exported .tflite model: sizes, the encoding chosen, and its verification."""

    target: str
    path: str | None = None
    sparse: bool | None = None
    bytes: int | None = None
    gzip_bytes: int | None = None
    dense_float32_bytes: int | None = None
    candidates: tuple = ()
    accuracy_keras: float | None = None
    accuracy_tflite: float | None = None
    agreement: float | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class LatencyRow:
    """LiteRT latency of one exported model at one thread count, in microseconds."""

    target: str
    threads: int
    median_us: float | None = None
    p90_us: float | None = None
    avg_us: float | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class RunReport:
    """Everything a run measured; `markdown()` is the human report, `to_dict()` the JSON."""

    recipe: Recipe
    command: str
    workdir: str
    report_dir: str
    data: dict
    params: int
    metric: str
    dense_metric: float
    history: tuple
    budget: float
    best_round: dict
    best_metric: float
    sparsity: dict
    sparsity_table: str
    exports: tuple[ExportRow, ...] = ()
    latency: tuple[LatencyRow, ...] = ()
    micro: dict | None = None
    seconds: float = 0.0
    structure: dict | None = None
    structure_table: str = ""
    qat: dict | None = None
    comparison: dict | None = None
    device: dict | None = None

    @property
    def synthetic(self) -> bool:
        return bool(self.data.get("synthetic"))

    @property
    def smallest_litert(self) -> ExportRow | None:
        """The smallest verified file of the pruned model among those LiteRT runs (not the
        baselines: the dense model's files, and post-training int8 beside a QAT stage)."""
        rows = [e for e in self.exports if not e.error and not is_baseline(e.target)]
        return min(rows, key=lambda e: e.bytes) if rows else None

    @property
    def errors(self) -> list[str]:
        """Stages that failed, as 'stage: message' lines (empty when all ran)."""
        out = [f"export {e.target}: {e.error}" for e in self.exports if e.error]
        out += [f"latency {r.target}@{r.threads}: {r.error}" for r in self.latency if r.error]
        if self.micro and self.micro.get("error"):
            out.append(f"micro: {self.micro['error']}")
        if self.device and self.device["checked"].get("error"):
            out.append(f"device: {self.device['checked']['error']}")
        return out

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["recipe"] = self.recipe.get_config()
        out["exports"] = [dataclasses.asdict(e) for e in self.exports]
        out["latency"] = [dataclasses.asdict(r) for r in self.latency]
        out["history"] = list(self.history)
        out["synthetic"] = self.synthetic
        out["errors"] = self.errors
        best = self.smallest_litert
        out["smallest_litert"] = None if best is None else {
            "target": best.target, "sparse": best.sparse, "bytes": best.bytes, "path": best.path}
        return out

    def markdown(self) -> str:
        return markdown(self)


def metric_of(row: dict, metric: str) -> float:
    """The validation metric in a history row (`val_accuracy` or `accuracy`)."""
    for key in (f"val_{metric}", metric):
        if key in row:
            return float(row[key])
    raise KeyError(f"History row has no `{metric}`; keys: {sorted(row)}")




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


def is_baseline(target: str) -> bool:
    """Whether an exported target is a baseline for comparison (the dense round-0 model's
    files, post-training int8 beside a QAT stage), not a file of the pruned model to ship."""
    return target.startswith("dense_") or target == PTQ_TARGET


def _label(target: str) -> str:
    if target == PTQ_TARGET:
        return "int8_ptq, post-training (baseline of the QAT stage)"
    if target.startswith("dense_"):
        return f"{target[len('dense_'):]}, dense round 0 (baseline)"
    return target


def _pct(x) -> str:
    return "" if x is None else f"{100 * float(x):.2f}%"


def _num(x, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


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
    lines += _accuracy_section(r)
    if r.device:
        from tfimp.device.report import device_markdown

        lines += device_markdown(r.device)
    lines += _rounds_section(r)
    lines += ["## Per-layer sparsity (best model)", "", "```", r.sparsity_table, "```", ""]
    if r.structure_table:
        lines += ["## Channels, parameters and MACs (dense round 0 -> shrunk best model)", "",
                  "The exported models are the shrunk model: the pruned channels are gone.", "",
                  "```", r.structure_table, "```", ""]
    lines += _export_section(r) + _quantization_section(r) + _latency_section(r)
    lines += _micro_section(r)
    if r.comparison:
        lines += comparison_markdown(r.comparison)
    if r.errors:
        lines += ["## Failed stages", ""] + [f"- {e}" for e in r.errors] + [""]
    return "\n".join(lines)


def _accuracy_section(r) -> list[str]:
    m = r.metric
    row = r.best_round
    delta = r.best_metric - r.dense_metric
    removed = (f"**{_pct(row['channel_sparsity'])}** of channels removed, weight "
               if "channel_sparsity" in row else "")
    lines = ["## Accuracy", "",
             f"- dense {m}: **{r.dense_metric:.4f}**",
             f"- best within budget {r.budget:g}: round {row.get('round')}, {removed}sparsity "
             f"**{_pct(row.get('sparsity'))}**, {m} **{r.best_metric:.4f}** "
             f"({100 * delta:+.2f} points vs dense)"]
    spent = sum(h.get("epochs", 0) for h in r.history)
    lines.append(f"- training: {row.get('epochs_total', '?')} epochs to reach that round, "
                 f"{spent} in the whole run, {_training_seconds(r):.0f} s "
                 f"({_strategy(r.recipe.imp)})")
    imp = r.recipe.imp
    if imp.distill:
        teacher = "the dense round 0" if imp.distill == "dense" else "a given teacher"
        lines.append(f"- retraining distilled from {teacher} (weight {imp.distill_weight:g}, "
                     f"temperature {imp.distill_temperature:g})")
    return lines + [""]


def _training_seconds(r) -> float:
    return sum(h.get("seconds", 0.0) for h in r.history)


def _strategy(imp) -> str:
    """How the run pruned, in a few words."""
    if imp.strategy == "gradual":
        return f"gradual pruning to {_pct(imp.gradual_sparsity)}"
    rate = "adaptive rate" if imp.adaptive else f"{_pct(imp.rate)} per round"
    budget = f", budget {imp.total_epochs} epochs" if imp.total_epochs else ""
    return f"IMP, {rate}, {imp.scope} ranking, rewind {imp.rewind}{budget}"


def _rounds_section(r) -> list[str]:
    channels = any("channel_sparsity" in h for h in r.history)
    header = ["round", *(["channels removed"] if channels else []), "sparsity", "remaining",
              f"val {r.metric}", "delta", "epochs", "epochs spent", "seconds"]
    rows = []
    for h in r.history:
        delta = metric_of(h, r.metric) - r.dense_metric
        rows.append([h.get("round"), *([_pct(h.get("channel_sparsity", 0.0))] if channels
                                        else []),
                     _pct(h.get("sparsity")), h.get("remaining", ""),
                     f"{metric_of(h, r.metric):.4f}", f"{100 * delta:+.2f} pt",
                     h.get("epochs", ""), h.get("epochs_total", ""),
                     _num(h.get("seconds"), 1)])
    return ["## IMP rounds", ""] + markdown_table(header, rows) + [""]


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
    lines = ["## Exported models (.tflite)", ""] + markdown_table(header, rows) + [""]
    best = r.smallest_litert
    if best is not None:
        lines += [f"Smallest verified file for LiteRT (phones, Raspberry Pi): **{_name(best)}, "
                  f"{best.bytes:,} bytes** (gzip {best.gzip_bytes:,} bytes; "
                  f"{best.dense_float32_bytes / best.bytes:.1f}x smaller than dense float32).",
                  ""]
    return lines


def _name(e: ExportRow) -> str:
    return f"{e.target}{' + sparse' if e.sparse else ''}"


def _quantization_section(r) -> list[str]:
    """The QAT finishing stage against post-training int8 of the same model."""
    q = r.qat
    if not q:
        return []
    shrunk = ", shrunk" if q.get("shrunk") else ""
    distill = {"dense": ", distilling from the dense round 0",
               "teacher": ", distilling from the given teacher"}.get(q.get("distill"), "")
    header = ["model", "accuracy", "agrees with float model", "agrees with its Keras model"]
    rows = [["float (best round, Keras)", _num(q.get("float_accuracy")), "", ""],
            ["int8, post-training quantization (int8_ptq)", _num(q.get("ptq_int8_accuracy")),
             _num(q.get("ptq_int8_agreement_float")), _num(q.get("ptq_int8_agreement"))],
            ["int8, quantization-aware stage (int8)", _num(q.get("qat_int8_accuracy")),
             _num(q.get("qat_int8_agreement_float")), _num(q.get("qat_int8_agreement"))]]
    lines = ["## Quantization: post-training vs quantization-aware (int8)", "",
             f"QAT stage: {q['epochs']} epoch(s) on round {q['round']}{shrunk}{distill}, "
             f"val {r.metric} {_num(q.get(f'val_{r.metric}'))} (fake-quantized Keras model), "
             f"{_num(q.get('fit_seconds'), 1)} s of training."]
    if q.get("epoch_cost_ratio") is not None:
        what = "of the shrunk model " if q.get("shrunk") else ""
        than = " (the masked full-size model)" if q.get("shrunk") else ""
        lines.append(f"A QAT epoch {what}took {q['epoch_cost_ratio']:.2f}x a retraining epoch "
                     f"of round {q['round']}{than} in this run.")
    return lines + ["", "Accuracy of the LiteRT int8 files on the verify samples:", ""] + \
        markdown_table(header, rows) + [""]


def _latency_section(r) -> list[str]:
    header = ["model", "threads", "median us", "p90 us", "mean us"]
    rows = [[_label(x.target), x.threads, "failed: " + x.error if x.error else _num(x.median_us, 1),
             _num(x.p90_us, 1), _num(x.avg_us, 1)] for x in r.latency]
    return (["## Latency (LiteRT, XNNPACK, this machine)", ""] + markdown_table(header, rows)
            + [""] + _fastest_lines(r) + _ship_lines(r))


def _fastest_lines(r) -> list[str]:
    """The fastest file of the pruned model at one thread, set against the dense baselines:
    the smallest file is not always the fastest (sparse kernels can lose to dense XNNPACK)."""
    one = [x for x in r.latency if x.threads == 1 and not x.error and x.median_us]
    pruned = [x for x in one if not is_baseline(x.target)]
    if not pruned:
        return []
    best = min(pruned, key=lambda x: x.median_us)
    lines = [f"Fastest file of the pruned model at 1 thread: **{best.target}, "
             f"{best.median_us:.1f} us** (median)."]
    dense = [x for x in one if x.target.startswith("dense_")]
    fastest = min(dense, key=lambda x: x.median_us, default=None)
    if fastest is not None and fastest.median_us < best.median_us:
        lines.append(f"The dense round-0 model's {fastest.target[len('dense_'):]} file "
                     f"runs faster still ({fastest.median_us:.1f} us): on this machine the "
                     "pruned files win on size, not on speed.")
    return lines + [""]


# Below this latency a phone app does not feel the model, so the file's size decides.
_UNFELT_US = 1000.0
# A smallest file slower than this many times the fastest pruned one gives way to it.
_SLOWER_THAN = 1.5


def _ship_lines(r) -> list[str]:
    """The smallest and the fastest verified file side by side (bytes, gzip bytes, 1-thread
    latency), the dense int8 baseline beside them, and the file a phone app would ship."""
    files = {e.target: e for e in r.exports if not e.error}
    one = {x.target: x.median_us for x in r.latency
           if x.threads == 1 and not x.error and x.median_us and x.target in files}
    smallest = r.smallest_litert
    if smallest is None or smallest.target not in one:
        return []
    fastest = files[min(one, key=one.get)]

    def describe(e: ExportRow) -> str:
        return (f"{_label(e.target)}{' + sparse' if e.sparse else ''}: {e.bytes:,} B, gzip "
                f"{e.gzip_bytes:,} B, {one[e.target]:.1f} us")

    lines = ["### Which file to ship", "", "File size, download size (gzip) and median "
             "latency at 1 thread:", "", f"- smallest: {describe(smallest)}",
             f"- fastest: {describe(fastest)}"]
    if "dense_int8" in one and "dense_int8" not in (smallest.target, fastest.target):
        lines.append(f"- dense int8 baseline: {describe(files['dense_int8'])}")
    quick = min((files[t] for t in one if not is_baseline(t)), key=lambda e: one[e.target])
    ship, why = _ship(smallest, quick, one)
    # Apps keep .tflite files uncompressed (LiteRT maps them), so the file size is what the
    # app holds; stores and servers compress it for the download.
    return lines + ["", f"A phone app would ship **{_name(ship)}** ({ship.bytes:,} B in the "
                    f"app, {ship.gzip_bytes:,} B to download): {why}.", ""]


def _ship(smallest: ExportRow, quick: ExportRow, one: dict) -> tuple[ExportRow, str]:
    """The smallest pruned file, unless a user could notice its latency and the fastest
    pruned file (`quick`) is much faster; and why."""
    us, best = one[smallest.target], one[quick.target]
    if us <= _UNFELT_US:
        return smallest, (f"it runs in {us:.1f} us, under the {_UNFELT_US:,.0f} us a user "
                          "could notice, so size decides")
    if us <= _SLOWER_THAN * best:
        return smallest, (f"it runs in {us:.1f} us, within {_SLOWER_THAN:g}x of the fastest "
                          f"pruned file ({_name(quick)}, {best:.1f} us)")
    return quick, f"the smallest file takes {us:.1f} us, {us / best:.1f}x this one"


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
    if m.get("dense_arena_bytes") is not None:
        lines.append(f"- dense round-0 int8 model: tensor arena {m['dense_arena_bytes']:,} "
                     "bytes")
    c = m.get("compression")
    if c and c["written"] != "none":
        lines.append(f"- C array ({c['written']}): flash {c['flash_bytes']:,} bytes, tensor "
                     f"arena {c['arena_bytes']:,} bytes (see below)")
    v = m.get("verdict")
    if v:
        word = {True: "fits", False: "does NOT fit", None: "unknown"}[v["fits"]]
        lines.append(f"- {v['board']}: {word} (RAM margin {v['ram_margin_bytes']:,} B, flash "
                     f"margin {v['flash_margin_bytes']:,} B)")
    if m.get("c_files"):
        lines.append(f"- C array: {', '.join(m['c_files'])}")
    lines += _emulated_lines(m.get("emulated"))
    return lines + [""] + _compression_lines(m.get("compression"))


def _emulated_lines(e: dict | None) -> list[str]:
    """Instructions per inference of the C array's model on the emulated core."""
    if not e:
        return []
    where = (f"on an emulated {e['core'].replace('cortex', 'Cortex').replace('-m', '-M')} "
             "(QEMU, TFLite Micro reference kernels; instruction counts are not cycles)")
    if e.get("instructions") is None:
        return [f"- instructions per inference {where}: not measured ({e.get('error')})"]
    text = f"- instructions per inference {where}: {e['instructions']:,}"
    if e.get("dense_instructions"):
        text += (f" (dense int8: {e['dense_instructions']:,}; "
                 f"{e['instructions'] / e['dense_instructions']:.3f}x)")
    elif e.get("error"):
        text += f" (dense int8 not measured: {e['error']})"
    return [text]


def _compression_lines(c: dict | None) -> list[str]:
    """Flash and arena of the dense int8 model and of each TFLM encoding tried."""
    if not c:
        return []
    names = {"none": "dense int8", "pruning+lut": "pruning + LUT (per tensor the smaller)"}
    header = ["encoding", "flash B", "arena B", "bit-exact", "tensors (pruning/LUT/sparse)"]
    rows = []
    for e in c["encodings"]:
        label = names.get(e["name"], e["name"]) + (" (written)" if e["name"] == c["written"]
                                                   else "")
        if e["flash_bytes"] is None:
            rows.append([label, "-", "-", "-", e["note"]])
            continue
        counts = f"{e['tensors']['pruning']}/{e['tensors']['lut']}/" \
                 f"{e['tensors'].get('sparse', 0)}"
        rows.append([label, f"{e['flash_bytes']:,}", f"{e['arena_bytes']:,}",
                     "yes" if e["bit_exact"] else "NO", counts + (f"; {e['note']}" if e["note"]
                                                                 else "")])
    return (["### TFLite Micro compression (DECODE: pruning bitmap, LUT; sparse kernel)", ""]
            + markdown_table(header, rows)
            + ["", "Every encoding ran in the TFLite Micro interpreter on test samples and "
               "matched the uncompressed int8 model bit for bit; the arena holds the decoded "
               "weights while their op runs. Sparse: tfimp's sparse FULLY_CONNECTED kernel "
               "reads the non-zeros from flash and decodes nothing; its model ran as the dense "
               "stand-in, each sparse op checked against it with the kernel's numpy mirror.",
               ""])
