"""Parser for the output of TFLite's `benchmark_model` tool.

The format is the one of tensorflow/lite/tools/benchmark (benchmark_model.cc,
profiling_listener.cc) and of the profile tables of tensorflow/core/util/stats_calculator.cc:

    INFO: Running benchmark for at least 50 iterations and at least 1 seconds but ...
    INFO: count=2730 first=392 curr=361 min=352 max=1043 avg=365.5 std=24
    INFO: Inference timings in us: Init: 3470, First inference: 1402, Warmup (avg): 413.7,
          Inference (avg): 365.5                                    (one line)
    INFO: Memory footprint delta from the start of the tool (MB): init=2.9 overall=3.6
    INFO: Overall peak memory footprint (MB) via periodic monitoring: 10.8
    INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
    ============================== Run Order ==============================
    \t[node type]\t[start]\t[first]\t[avg ms]\t[%]\t[cdf%]\t[mem KB]\t[times called]\t[Name]
    \tFULLY_CONNECTED\t0.000\t0.004\t0.003\t60.000%\t60.000%\t0.000\t1\t[dense]:0
    ============================== Summary by node type ==============================
    \t[Node type]\t[count]\t[avg ms]\t[avg %]\t[cdf %]\t[mem KB]\t[times called]
"""

from __future__ import annotations

import math
import re

from tfimp.profile.result import OpRow, ProfilingError

_NUM = r"([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|-?inf))"
_TIMINGS = re.compile(rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, "
                      rf"Warmup \(avg\): {_NUM}, Inference \(avg\): {_NUM}")
_OLD_TIMINGS = re.compile(rf"Average inference timings in us: Warmup: {_NUM}, Init: {_NUM}, "
                          rf"Inference: {_NUM}")
_RUN_STATS = re.compile(r"^(?:INFO: )?(count=\d+.*)$", re.MULTILINE)
_MEM_DELTA = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): "
                        rf"init={_NUM} overall={_NUM}")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}")
_OP_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_MIB = 1024 * 1024


def _num(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def _mib_to_bytes(text: str) -> int | None:
    value = _num(text)
    return None if value is None or value < 0 else round(value * _MIB)


def _run_stats(line: str) -> dict:
    pairs = dict(re.findall(r"(\w+)=([^\s(]+)", line))
    return {k: float(v) for k, v in pairs.items()}


def _timing_fields(text: str) -> dict:
    match = _TIMINGS.search(text)
    if match:
        init, first, warm, avg = (_num(g) for g in match.groups())
        return {"init_us": init, "first_us": first, "warmup_avg_us": warm, "avg_us": avg}
    match = _OLD_TIMINGS.search(text)
    if match:
        warm, init, avg = (_num(g) for g in match.groups())
        return {"init_us": init, "warmup_avg_us": warm, "avg_us": avg}
    raise ProfilingError(
        "The benchmark_model output has no line 'Inference timings in us: Init: ..., First "
        "inference: ..., Warmup (avg): ..., Inference (avg): ...'; the run did not finish or "
        f"the binary is not TFLite's benchmark_model. Output:\n{text[-3000:]}"
    )


def _stats_fields(text: str) -> dict:
    stats = [_run_stats(m) for m in _RUN_STATS.findall(text)]
    fields = {}
    if len(stats) >= 2:
        fields["warmup_runs"] = int(stats[0]["count"])
    if stats:
        regular = stats[-1]
        fields["runs"] = int(regular["count"])
        if "min" in regular:
            fields.update(min_us=regular["min"], max_us=regular["max"], std_us=regular["std"])
        elif "curr" in regular:  # "count=N curr=X(all same)"
            fields.update(min_us=regular["curr"], max_us=regular["curr"], std_us=0.0)
    return fields


def _memory_fields(text: str) -> dict:
    fields = {}
    match = _MEM_DELTA.search(text)
    if match:
        fields["mem_init_bytes"] = _mib_to_bytes(match.group(1))
        fields["mem_increase_bytes"] = _mib_to_bytes(match.group(2))
    match = _PEAK.search(text)
    if match:
        fields["peak_memory_bytes"] = _mib_to_bytes(match.group(1))
    return fields


def _table_rows(lines: list[str], title: str) -> list[list[str]]:
    """The tab-separated rows of the first table called `title` in `lines`."""
    start = next((i for i, ln in enumerate(lines) if f"= {title} =" in ln), None)
    if start is None:
        return []
    rows = []
    for line in lines[start + 2:]:  # skip the title and the column header
        if not line.startswith("\t"):
            break
        rows.append([cell.strip() for cell in line.split("\t")[1:]])
    return rows


def _pct(text: str) -> float:
    return float(text.rstrip("%"))


def parse_op_tables(text: str) -> tuple[tuple[OpRow, ...], tuple[OpRow, ...]]:
    """The per-node ("Run Order") and per-type ("Summary by node type") rows of the regular
    runs' operator profile; empty tuples when the run had no `--enable_op_profiling`."""
    if _OP_SECTION in text:
        text = text[text.index(_OP_SECTION):]
    elif "Profiling Info for Benchmark Initialization:" in text:
        return (), ()
    lines = text.splitlines()
    nodes = tuple(
        OpRow(node_type=r[0], start_ms=float(r[1]), first_ms=float(r[2]), avg_ms=float(r[3]),
              percent=_pct(r[4]), cdf_percent=_pct(r[5]), mem_kb=float(r[6]),
              times_called=int(float(r[7])), name=r[8])
        for r in _table_rows(lines, "Run Order") if len(r) >= 9
    )
    types = tuple(
        OpRow(node_type=r[0], count=int(r[1]), avg_ms=float(r[2]), percent=_pct(r[3]),
              cdf_percent=_pct(r[4]), mem_kb=float(r[5]), times_called=int(float(r[6])))
        for r in _table_rows(lines, "Summary by node type") if len(r) >= 7
    )
    return nodes, types


def parse_benchmark_output(text: str) -> dict:
    """Reads timings, run statistics, memory and op-profile tables from `benchmark_model`'s
    output (stdout and stderr together).

    Returns:
        A dict of `BenchResult` fields (only those the output holds).

    Raises:
        ProfilingError: the output has no inference-timings line.
    """
    fields = _timing_fields(text)
    fields.update(_stats_fields(text))
    fields.update(_memory_fields(text))
    fields["op_profile"], fields["op_summary"] = parse_op_tables(text)
    return fields
