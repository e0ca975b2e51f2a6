"""`DeviceBudget`: the device's numbers (flash, RAM, latency) that a pruning run must meet.

A budget comes from a board name (`budget_for("cortex-m0plus-32k")`: the TFLite Micro boards
of `tfimp.export.boards` and the LiteRT latency targets of `TARGETS`), from a string
(`parse_budget("flash=256k,ram=32k")`), or from the constructor.

Example:

    budget = tfimp.DeviceBudget(flash=256 * 1024, ram=32 * 1024)          # TFLite Micro
    budget = tfimp.DeviceBudget(latency_ms=0.05, runtime="litert", threads=1)
    result = tfimp.imp(build, train, val, tfimp.IMPConfig.budgeted(80), device=budget)
"""

from __future__ import annotations

import dataclasses
import math
import re

from tfimp._util import validate as v
from tfimp.export.boards import BOARDS, MicroBoard

__all__ = ["DeviceBudget", "ENCODINGS", "LatencyTarget", "RUNTIMES", "TARGETS", "budget_for",
           "parse_budget"]

RUNTIMES = ("tflm", "litert")
ENCODINGS = ("none", "sparse", "pruning")
"""TFLite Micro encodings a run may choose from, in the order tried (`cost.ENCODERS`)."""


@dataclasses.dataclass(frozen=True)
class LatencyTarget:
    """A device that runs LiteRT and is timed there: this machine, or a board over ssh/adb.

    Attributes:
        name: registry name.
        target: where `tfimp.profile` times a model ("local", "ssh:USER@HOST", "adb:SERIAL").
        threads: interpreter threads.
        latency_ms: the default latency budget (None: the user gives one).
        source: what the entry stands for.
    """

    name: str
    target: str
    threads: int
    latency_ms: float | None
    source: str


TARGETS: dict[str, LatencyTarget] = {t.name: t for t in (
    LatencyTarget("local-litert", "local", 1, None,
                  "this machine, LiteRT with XNNPACK, 1 thread"),
    LatencyTarget("raspberry-pi-ssh", "ssh:pi@raspberrypi.local", 4, None,
                  "a Raspberry Pi reached as pi@raspberrypi.local, timed with benchmark_model"),
)}


@dataclasses.dataclass(frozen=True)
class DeviceBudget:
    """What the exported model may use on the device; None leaves a resource free.

    Args:
        flash: bytes of the model (TFLite Micro: the C array; LiteRT: the .tflite file).
        ram: bytes of the TFLite Micro tensor arena, measured with `margin` added (the
            `kTensorArenaSize` that `to_micro` writes).
        latency_ms: median LiteRT inference time, in milliseconds.
        runtime: "tflm" (TFLite Micro: flash and RAM) or "litert" (flash and latency).
        threads: LiteRT interpreter threads (1 for TFLite Micro).
        target: where LiteRT latency is measured ("local", "ssh:...", "adb:...").
        encodings: the TFLite Micro encodings the run may write (see `cost.ENCODERS`).
        margin: fraction added to the measured arena, as `to_micro(margin=...)`.
        name: the board or target the budget came from.
    """

    flash: int | None = None
    ram: int | None = None
    latency_ms: float | None = None
    runtime: str = "tflm"
    threads: int = 1
    target: str = "local"
    encodings: tuple[str, ...] = ENCODINGS
    margin: float = 0.25
    name: str | None = None

    def __post_init__(self):
        v.choice("runtime", self.runtime, RUNTIMES)
        for field in ("flash", "ram"):
            value = getattr(self, field)
            if value is not None:
                v.positive_int(field, value)
        if self.latency_ms is not None:
            v.positive_number("latency_ms", self.latency_ms)
        v.positive_int("threads", self.threads)
        if self.flash is None and self.ram is None and self.latency_ms is None:
            v.fail("flash", None, "a number of bytes, or ram/latency_ms given: a budget needs "
                   "at least one resource (e.g. DeviceBudget(flash=262144, ram=32768))")
        self._check_runtime()
        encodings = (self.encodings,) if isinstance(self.encodings, str) else self.encodings
        object.__setattr__(self, "encodings", tuple(encodings))
        from tfimp.device.cost import ENCODERS

        if not self.encodings or "none" not in self.encodings:
            v.fail("encodings", self.encodings, "a list of TFLite Micro encodings holding "
                   "'none' (the plain model, whose arena does not grow)")
        for name in self.encodings:
            v.choice("encodings", name, tuple(ENCODERS))
        if not isinstance(self.margin, (int, float)) or not 0 <= self.margin <= 10:
            v.fail("margin", self.margin, "a fraction in [0, 10], e.g. 0.25 for 25%")

    def _check_runtime(self) -> None:
        if self.runtime == "tflm":
            if self.latency_ms is not None:
                v.fail("latency_ms", self.latency_ms, "None with runtime='tflm' (TFLite Micro "
                       "latency is not measured on this machine); use runtime='litert' for a "
                       "latency budget")
            if self.threads != 1:
                v.fail("threads", self.threads, "1 with runtime='tflm' (TFLite Micro runs on "
                       "one core)")
        elif self.ram is not None:
            v.fail("ram", self.ram, "None with runtime='litert' (the RAM budget is the TFLite "
                   "Micro tensor arena); use runtime='tflm' for a RAM budget")

    def limits(self) -> dict[str, float]:
        """The resources with a budget: {"flash": bytes, "ram": bytes, "latency_ms": ms}."""
        return {k: getattr(self, k) for k in ("flash", "ram", "latency_ms")
                if getattr(self, k) is not None}

    def describe(self) -> str:
        parts = [f"{k}={_human(k, x)}" for k, x in self.limits().items()]
        where = f" ({self.name})" if self.name else ""
        return f"{', '.join(parts)} on {self.runtime}{where}"

    def get_config(self) -> dict:
        config = dataclasses.asdict(self)
        config["encodings"] = list(self.encodings)
        return config

    @classmethod
    def from_config(cls, config: dict) -> DeviceBudget:
        config = dict(config)
        config["encodings"] = tuple(config.get("encodings", ENCODINGS))
        return cls(**config)


def _human(kind: str, value) -> str:
    if kind == "latency_ms":
        return f"{value:g} ms"
    return f"{value / 1024:g}k" if value % 1024 == 0 else f"{value} B"


def budget_for(board: str | MicroBoard | LatencyTarget, **overrides) -> DeviceBudget:
    """The budget of a board of `tfimp.export.BOARDS` (TFLite Micro: its flash and RAM) or
    a latency target of `TARGETS` (LiteRT), with `overrides` of any `DeviceBudget` field.

    Raises:
        InvalidArgumentError: an unknown name (the message lists the known ones), or a
            latency target without a `latency_ms`.
    """
    if isinstance(board, str):
        if board not in BOARDS and board not in TARGETS:
            v.fail("board", board, f"one of {sorted(BOARDS) + sorted(TARGETS)}")
        board = BOARDS.get(board) or TARGETS[board]
    if isinstance(board, MicroBoard):
        if overrides.get("runtime", "tflm") != "tflm":
            v.fail("runtime", overrides["runtime"], f"'tflm' for the TFLite Micro board "
                   f"{board.name!r} (or pick a LiteRT target: {sorted(TARGETS)})")
        base = {"flash": board.flash_bytes, "ram": board.ram_bytes, "runtime": "tflm"}
    elif isinstance(board, LatencyTarget):
        if overrides.get("runtime", "litert") != "litert":
            v.fail("runtime", overrides["runtime"], f"'litert' for the LiteRT target "
                   f"{board.name!r} (or pick a TFLite Micro board: {sorted(BOARDS)})")
        base = {"latency_ms": board.latency_ms, "runtime": "litert", "threads": board.threads,
                "target": board.target}
        if board.latency_ms is None and overrides.get("latency_ms") is None:
            v.fail("latency_ms", None, f"a latency in milliseconds for the target "
                   f"{board.name!r} (e.g. --budget latency=5ms)")
    else:
        v.fail("board", board, "a board name, a MicroBoard or a LatencyTarget")
    return DeviceBudget(**{**base, "name": board.name, **overrides})


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib)?", re.IGNORECASE)
_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|us|s)?", re.IGNORECASE)
_KEYS = {"flash": "flash", "ram": "ram", "latency": "latency_ms", "latency_ms": "latency_ms",
         "runtime": "runtime", "threads": "threads", "target": "target",
         "encodings": "encodings", "margin": "margin"}
_BUDGET_HELP = ("comma-separated key=value pairs from flash=SIZE, ram=SIZE, latency=TIME, "
                "runtime=tflm|litert, threads=N, target=WHERE, encodings=none+pruning, "
                "margin=F; e.g. 'flash=256k,ram=32k' or 'latency=5ms,runtime=litert'")


def parse_budget(text: str, board: str | None = None) -> DeviceBudget:
    """A `DeviceBudget` from "flash=256k,ram=32k" (sizes in bytes, k = 1024, m = 1024**2;
    times in ms, us or s); with `board`, the board's budget with these fields overridden.

    Raises:
        InvalidArgumentError: naming the key and value that are wrong.
    """
    fields = parse_fields(text)
    if board is not None:
        return budget_for(board, **fields)
    if "latency_ms" in fields and "ram" not in fields:
        fields.setdefault("runtime", "litert")
    return DeviceBudget(**fields)


def parse_fields(text: str) -> dict:
    """The `DeviceBudget` fields that a budget string sets."""
    if not isinstance(text, str) or not text.strip():
        v.fail("budget", text, _BUDGET_HELP)
    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in _KEYS or not value:
            v.fail("budget", text, _BUDGET_HELP)
        fields[_KEYS[key]] = _value(_KEYS[key], value)
    return fields


def _value(key: str, value: str):
    if key in ("flash", "ram"):
        m = _SIZE.fullmatch(value)
        if not m:
            v.fail(key, value, "a size such as 262144, 256k or 1m (k = 1024 bytes)")
        unit = (m.group(2) or "b").lower()[:1]
        size = float(m.group(1)) * {"b": 1, "k": 1024, "m": 1024 ** 2}[unit]
        if size < 1 or size != math.floor(size):
            v.fail(key, value, "a whole, positive number of bytes")
        return int(size)
    if key == "latency_ms":
        m = _TIME.fullmatch(value)
        if not m:
            v.fail("latency", value, "a time such as 5ms, 500us or 0.005s")
        return float(m.group(1)) * {"ms": 1.0, "us": 1e-3, "s": 1e3}[(m.group(2) or "ms").lower()]
    if key == "threads":
        if not value.isdigit():
            v.fail("threads", value, "a positive integer")
        return int(value)
    if key == "margin":
        try:
            return float(value)
        except ValueError:
            v.fail("margin", value, "a fraction such as 0.25")
    if key == "encodings":
        return tuple(value.split("+"))
    return value
