"""The result type that every profiler in `tfimp.profile` returns."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

from tfimp._util import proc
from tfimp._util.errors import TfimpError


class ProfilingError(TfimpError, RuntimeError):
    """A benchmark run failed: the message names the command that failed and its output."""


def run_checked(cmd, timeout: float, what: str, **kwargs):
    """`tfimp._util.proc.run` raising `ProfilingError`."""
    return proc.run(cmd, timeout, what, error=ProfilingError, **kwargs)


@dataclass(frozen=True)
class OpRow:
    """One row of an operator profile (`benchmark_model --enable_op_profiling=true`).

    A per-node row ("Run Order" table) has `name`, `start_ms` and `first_ms`; a per-type row
    ("Summary by node type" table) has `count` instead.
    """

    node_type: str
    avg_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float = 0.0
    times_called: int = 0
    name: str | None = None
    start_ms: float | None = None
    first_ms: float | None = None
    count: int | None = None

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> OpRow:
        return cls(**config)


def _check_optional_us(name: str, value: float | None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(
            f"Argument `{name}` must be a non-negative number of microseconds or None. "
            f"Received: {name}={value!r}"
        )


_TIMING_FIELDS = ("init_us", "first_us", "warmup_avg_us", "avg_us", "median_us", "p90_us",
                  "std_us", "min_us", "max_us")


@dataclass(frozen=True)
class BenchResult:
    """Latency and memory of one model on one runtime and target.

    Timings are in microseconds and follow `benchmark_model`: `init_us` (load the model, build
    the interpreter, allocate tensors), `first_us` (first inference), `warmup_avg_us` and
    `avg_us` (mean of the regular runs). A figure the tool did not report is None (e.g.
    `benchmark_model` reports no median).

    Memory: `mem_increase_bytes` is how much the process grew from before the model was loaded
    to the end (LiteRT: peak RSS increase; `benchmark_model`: the "overall" footprint delta),
    `mem_init_bytes` the growth during init, `peak_memory_bytes` the absolute peak footprint
    (`--report_peak_memory_footprint`).

    Example:
        >>> r = tfimp.profile.litert("model.tflite", runs=50)
        >>> print(r.table()); r.median_us
    """

    model: str
    tool: str
    target: str = "local"
    threads: int = 1
    xnnpack: bool = True
    runs: int = 0
    warmup_runs: int = 0
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    avg_us: float | None = None
    median_us: float | None = None
    p90_us: float | None = None
    std_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    mem_init_bytes: int | None = None
    mem_increase_bytes: int | None = None
    peak_memory_bytes: int | None = None
    op_profile: tuple[OpRow, ...] = ()
    op_summary: tuple[OpRow, ...] = ()
    raw_output: str = field(default="", repr=False)

    def __post_init__(self):
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(
                f"Argument `threads` must be a positive integer. Received: threads={self.threads!r}"
            )
        if not isinstance(self.runs, int) or self.runs < 0:
            raise ValueError(
                f"Argument `runs` must be a non-negative integer. Received: runs={self.runs!r}"
            )
        for name in _TIMING_FIELDS:
            _check_optional_us(name, getattr(self, name))
        object.__setattr__(self, "op_profile", tuple(self.op_profile))
        object.__setattr__(self, "op_summary", tuple(self.op_summary))

    def get_config(self) -> dict:
        """A JSON-ready dict of every field."""
        config = dataclasses.asdict(self)
        config["op_profile"] = [r.get_config() for r in self.op_profile]
        config["op_summary"] = [r.get_config() for r in self.op_summary]
        return config

    @classmethod
    def from_config(cls, config: dict) -> BenchResult:
        """Rebuilds a result from `get_config()`."""
        config = dict(config)
        config["op_profile"] = tuple(OpRow.from_config(r) for r in config.get("op_profile", ()))
        config["op_summary"] = tuple(OpRow.from_config(r) for r in config.get("op_summary", ()))
        return cls(**config)

    def to_json(self, indent: int | None = 2) -> str:
        """The result as a JSON string."""
        return json.dumps(self.get_config(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        """Parses a string written by `to_json`."""
        return cls.from_config(json.loads(text))

    def table(self, max_ops: int = 10) -> str:
        """A human-readable summary: settings, timings, memory and the slowest op types."""
        lines = [f"{self.model}  [{self.tool} @ {self.target}, threads={self.threads}, "
                 f"xnnpack={'on' if self.xnnpack else 'off'}, runs={self.runs}]"]
        for label, name in (("init", "init_us"), ("first inference", "first_us"),
                            ("warmup (avg)", "warmup_avg_us"), ("inference (avg)", "avg_us"),
                            ("median", "median_us"), ("p90", "p90_us"), ("std", "std_us"),
                            ("min", "min_us"), ("max", "max_us")):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"  {label:<22}{value:>14.1f} us")
        for label, name in (("memory at init", "mem_init_bytes"),
                            ("memory increase", "mem_increase_bytes"),
                            ("peak memory", "peak_memory_bytes")):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"  {label:<22}{value / 1024:>14.1f} KiB")
        if self.op_summary:
            lines.append(f"  {'op type':<28}{'count':>6}{'avg ms':>10}{'%':>8}")
            for row in self.op_summary[:max_ops]:
                lines.append(f"  {row.node_type:<28}{row.count or 0:>6}{row.avg_ms:>10.3f}"
                             f"{row.percent:>7.1f}%")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
