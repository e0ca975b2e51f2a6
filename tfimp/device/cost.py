"""The measured cost of a model on the device: every number comes from the exported artefact.

`measure` shrinks the model (`tfimp.shrink`: units no layer reads are gone), converts it to
int8 with the real converter and then, for TFLite Micro, runs every candidate encoding of the
budget in the TFLite Micro interpreter (flash = the model's bytes, RAM = the arena it used plus
the budget's margin); for LiteRT, times the file with `tfimp.profile` (this machine, or a board
over ssh/adb). Results are cached by the int8 file's hash.

`ENCODERS` is the pluggable list of TFLite Micro encodings (`Encoder`: a function from the
int8 model to its measured rows, whether its flash falls with the zeros, and how its arena is
probed). "none" keeps the model as converted (arena flat); "sparse" is tfimp's sparse int8
FULLY_CONNECTED kernel (flash falls with the zeros, the arena stays the plain model's: the
kernel reads the non-zeros from flash); "pruning" is DECODE's bitmap encoding (flash falls with
the zeros, the decoded tensors live in the arena).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable

import numpy as np

from tfimp.export import micro_fit
from tfimp.export.micro_run import MicroError, MicroRun, run_micro

__all__ = ["ENCODERS", "Encoder", "Measurement", "export_int8", "measure", "sparse_arena",
           "sparse_arenas", "time_ms"]

VERIFY_SAMPLES = 8
CALIBRATION_SAMPLES = 128
LATENCY_RUNS = 50


def _none(source: bytes, xs, reference: MicroRun, margin: float) -> list:
    size = micro_fit.arena_with_margin(reference.arena_bytes, margin)
    return [micro_fit.MicroEncoding("none", len(source), reference.arena_bytes, size, True)]


def _decode(mode: str):
    def encode(source: bytes, xs, reference: MicroRun, margin: float) -> list:
        try:
            choice = micro_fit.choose(source, micro_fit.MicroCompression(mode), None, xs,
                                      reference, margin)
        except MicroError:  # the encoding applies to no tensor of this model
            return []
        return [r for r in choice.tried if r.name == mode and r.flash_bytes is not None]
    return encode


def _decode_probe(data: bytes, calibration, margin: float) -> int | None:
    """The arena (with margin) with every tensor DECODE can hold stored compressed: what the
    encoding costs in RAM whatever the sparsity (decoded tensors are dense)."""
    from tfimp.export import tflm_compression as tc

    options = [o for o in tc.tensor_options(data) if not o.reason]
    if not options:
        return None
    plan = {(o.subgraph, o.index): "pruning" for o in options}
    compressed = tc.compress_tflm(data, plan)
    run = run_micro(compressed.data, [_inputs(calibration, 1).astype(np.float32)])
    return micro_fit.arena_with_margin(run.arena_bytes, margin)


@dataclasses.dataclass(frozen=True)
class Encoder:
    """A TFLite Micro encoding the cost model can try.

    Attributes:
        rows: (int8 model, verification inputs, TFLM reference run, margin) -> measured
            `MicroEncoding` rows (empty when the encoding applies to no tensor).
        sparse: whether its flash falls as weights are pruned (weight rounds can pay off).
        probe: (int8 model, calibration inputs, margin) -> the arena it needs at any
            sparsity; None: the arena of the plain model (a kernel that reads the encoding).
        per_nonzero, per_weight: bytes of flash per non-zero and per weight (zero or not)
            of a pruned tensor, before any is measured (a model without zeros yet).
    """

    rows: Callable
    sparse: bool = False
    probe: Callable | None = None
    per_nonzero: float = 1.0
    per_weight: float = 0.0


ENCODERS: dict[str, Encoder] = {
    "none": Encoder(_none),
    # The sparse kernel: the value and a uint8 or uint16 column index per non-zero.
    "sparse": Encoder(_decode("sparse"), sparse=True, per_nonzero=3.0),
    # DECODE's pruning: the values and a bitmap of one bit per weight.
    "pruning": Encoder(_decode("pruning"), sparse=True, probe=_decode_probe, per_weight=0.125),
}


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One model as measured for a budget.

    Attributes:
        flash: bytes of the chosen encoding (TFLite Micro) or of the .tflite file (LiteRT).
        ram: the chosen encoding's arena with margin (TFLite Micro), else None.
        latency_ms: median LiteRT latency, else None.
        encoding: the encoding chosen: the smallest that fits, or the one closest to fitting.
        fits: every budgeted resource within its budget.
        excess: per budgeted resource, measured / budget (> 1: over).
        candidates: per encoding tried, {"encoding", "flash", "ram"}.
        sha256: of the int8 file measured.
    """

    flash: int
    ram: int | None
    latency_ms: float | None
    encoding: str
    fits: bool
    excess: dict
    candidates: tuple = ()
    sha256: str = ""

    def value(self, resource: str):
        return getattr(self, resource)

    def binding(self) -> tuple[str, float] | None:
        """The resource furthest over its budget, with its excess ratio (None if it fits)."""
        if self.fits:
            return None
        name = max(self.excess, key=self.excess.get)
        return name, self.excess[name]

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["candidates"] = [dict(c) for c in self.candidates]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: x for k, x in d.items() if k in names},
                      "candidates": tuple(d.get("candidates", ()))})


def _inputs(x, n: int) -> np.ndarray:
    return np.asarray(x[:n])


def export_int8(model, calibration) -> bytes:
    """The int8 .tflite of `model` (float inputs and outputs, as `tfimp run` writes it)."""
    from tfimp.export.convert import convert_bytes
    from tfimp.export.quantization import Int8

    x = _inputs(calibration, CALIBRATION_SAMPLES)
    return convert_bytes(model, Int8(), False,
                         lambda: ([x[i:i + 1]] for i in range(len(x))))


_CACHE: dict[tuple, Measurement] = {}


def measure(model, budget, calibration, shrunk: bool = False) -> Measurement:
    """Measures `model` (a plain Keras model) against `budget` (a `DeviceBudget`).

    Args:
        model: the model as trained; it is shrunk first unless `shrunk`.
        budget: the `DeviceBudget`.
        calibration: input samples (batch first) to calibrate int8 and run TFLite Micro on.
    """
    if not shrunk:
        from tfimp.structure.shrink import shrink

        model = shrink(model)
    data = export_int8(model, calibration)
    return measure_bytes(data, budget, calibration)


def measure_bytes(data: bytes, budget, calibration) -> Measurement:
    """Measures an int8 .tflite file's bytes against `budget`."""
    key = (hashlib.sha256(data).hexdigest(), repr(budget.get_config()))
    if key in _CACHE:
        return _CACHE[key]
    if budget.runtime == "tflm":
        rows = _micro_rows(data, budget, calibration)
    else:
        rows = [{"encoding": "none", "flash": len(data), "ram": None,
                 "latency_ms": latency_ms(data, budget)}]
    result = _choose(rows, budget, key[0])
    _CACHE[key] = result
    return result


def _micro_rows(data: bytes, budget, calibration) -> list[dict]:
    xs = [_inputs(calibration, VERIFY_SAMPLES).astype(np.float32)]
    reference = run_micro(data, xs)
    rows = []
    for name in budget.encodings:
        for r in ENCODERS[name].rows(data, xs, reference, budget.margin):
            rows.append({"encoding": r.name, "flash": r.flash_bytes, "ram": r.arena_size,
                         "latency_ms": None})
    return rows


def latency_ms(data: bytes, budget) -> float:
    """Median latency of the .tflite `data` on the budget's target, in milliseconds."""
    return time_ms(data, budget.target, budget.threads)


def time_ms(data: bytes, target: str, threads: int, runs: int = LATENCY_RUNS) -> float:
    """Median latency of the .tflite `data` on `target` ("local", "ssh:...", "adb:..."),
    in milliseconds."""
    from tfimp import profile

    if target == "local":
        try:
            result = profile.litert(data, threads=threads, runs=runs, warmup=5)
        except profile.ProfilingError as e:
            if "XNNPACK" not in str(e):
                raise
            # XNNPACK refuses some shrunk shapes ("failed to prepare"); an app then runs the
            # model without the delegate, on LiteRT's builtin kernels.
            result = profile.litert(data, threads=threads, runs=runs, warmup=5, xnnpack=False)
    else:
        result = profile.benchmark_model(data, target=target, threads=threads, runs=runs)
    # benchmark_model reports the mean, not the median; tfimp's LiteRT benchmark both.
    us = result.median_us if result.median_us is not None else result.avg_us
    return us / 1000.0


def _excess(row: dict, limits: dict) -> dict:
    return {k: (row[k] / limit if row.get(k) is not None else 0.0)
            for k, limit in limits.items()}


def _choose(rows: list[dict], budget, sha: str) -> Measurement:
    limits = budget.limits()
    scored = [(r, _excess(r, limits)) for r in rows]
    fitting = [(r, e) for r, e in scored if all(x <= 1.0 for x in e.values())]
    if fitting:
        row, excess = min(fitting, key=lambda p: (p[0]["flash"], p[0]["ram"] or 0))
    else:
        row, excess = min(scored, key=lambda p: max(p[1].values(), default=0.0))
    return Measurement(int(row["flash"]), row["ram"], row["latency_ms"], row["encoding"],
                       bool(fitting), {k: round(x, 6) for k, x in excess.items()},
                       tuple(rows), sha)


def sparse_arenas(data: bytes, budget, calibration, plain_arena: int) -> dict[str, int]:
    """Per encoding of the budget whose flash falls with the zeros, the arena (with margin)
    weight rounds would cost in RAM with it."""
    arenas = {}
    for name in budget.encodings:
        enc = ENCODERS[name]
        if enc.sparse:
            arena = plain_arena if enc.probe is None else enc.probe(data, calibration,
                                                                    budget.margin)
            if arena is not None:
                arenas[name] = arena
    return arenas


def sparse_arena(data: bytes, budget, calibration, plain_arena: int) -> int | None:
    """The smallest of `sparse_arenas`; None without such an encoding."""
    return min(sparse_arenas(data, budget, calibration, plain_arena).values(), default=None)
