"""`LatencyTable`: per-layer latencies measured on the target, for predicting unit cuts.

An entry is the latency, on the target, of a one-layer int8 model (converted by the real
converter, as `cost.export_int8` converts a round's model, but with int8 input and output:
the QUANTIZE and DEQUANTIZE of a model's float input and output happen once per model, not
once per layer) holding one layer at given channel counts, less the target's per-inference
overhead (a trivial int8 model with the same input: one reshape), so entries add up over a
model's layers. The latency table of NetAdapt (Yang et al., "NetAdapt: Platform-Aware Neural
Network Adaptation for Mobile Applications", ECCV 2018) is built the same way, per layer and
channel count.

A layer is keyed by its class, the config that changes its cost (kernel size, strides,
padding, dilation, depth multiplier, use_bias, activation), its input's spatial dimensions and
its channels in and out. Channel counts are snapped to a grid (multiples of ceil(C / 16) of
the layer's count C in the model, with 1 and C), and counts between grid points are
interpolated (bilinearly in channels in and out): a layer has at most 17 counts per
dimension, and a run measures only the grid points around the cuts it considers (a few dozen
per layer). An entry is the median of `ENTRY_REPEATS` timings through `cost.time_ms`:
LiteRT on this machine, or `benchmark_model` over ssh / adb.

Entries are cached on disk, one JSON file per target (this machine's CPU model, CPU count,
ai-edge-litert version, threads and XNNPACK; or the ssh / adb target and threads), under
`$TFIMP_CACHE_DIR/latency/` (default `~/.cache/tfimp/latency/`); a second table for the same
target measures nothing it finds there.

A cut is predicted from the parent model's measured latency plus the table's change between
the parent's channel counts and the cut's (NetAdapt's way): what no entry holds cancels out.

Not in the table: pooling, batch normalization (folded into the convolution by the
converter), separate activation layers (fused by the converter), reshapes, adds and
concatenations, and the model's QUANTIZE / DEQUANTIZE of its float input and output (fixed
by the input and the classes, so they cancel in a cut's change); a layer the table does not
know (e.g. an attention layer), or whose input shape is not fixed (a shared layer, a
variable-length sequence), adds nothing to the prediction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
import weakref
from pathlib import Path

import keras
import numpy as np

from tfimp._util import validate as v
from tfimp.device import cost
from tfimp.export.convert import convert_bytes
from tfimp.export.quantization import Int8

__all__ = ["LAYERS", "LatencyTable", "cache_dir", "grid_points"]

LAYERS = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D",
          "SeparableConv1D", "SeparableConv2D")
"""The Keras layer classes the table measures: the ones whose cost falls with channels."""
COST_CONFIG = ("kernel_size", "strides", "padding", "dilation_rate", "depth_multiplier",
               "use_bias", "activation", "groups", "data_format")
GRID = 16
ENTRY_RUNS = 200
"""Timed inferences per timing (one-layer models answer in microseconds: runs are cheap)."""
ENTRY_REPEATS = 3
"""Timings per entry, each in a process of its own; the entry is their median (the spread
between processes, a few percent here, is larger than the spread within one)."""
SAMPLES = 8
FORMAT = 2


def cache_dir() -> Path:
    """Where tables are cached: `$TFIMP_CACHE_DIR/latency`, else `~/.cache/tfimp/latency`."""
    root = os.environ.get("TFIMP_CACHE_DIR")
    return Path(root) / "latency" if root else Path.home() / ".cache" / "tfimp" / "latency"


def grid_points(count: int, grid: int = GRID) -> list[int]:
    """The channel counts measured for a layer with `count` channels: multiples of
    ceil(count / grid), with 1 and `count`."""
    step = math.ceil(count / grid)
    return sorted({1, count, *range(step, count, step)})


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "none"


def target_key(target: str, threads: int) -> dict:
    """What identifies a target's timings: the machine and runtime for "local"."""
    if target == "local":
        return {"target": "local", "cpu": _cpu_model(), "cpus": os.cpu_count(),
                "litert": _litert_version(), "threads": threads, "xnnpack": True,
                "format": FORMAT}
    return {"target": target, "threads": threads, "format": FORMAT}


class _Spec:
    """One layer of a model as the table sees it."""

    def __init__(self, layer, in_classes, out_classes, grid: int = GRID):
        self.layer = layer
        self.kind = type(layer).__name__
        config = layer.get_config()
        self.config = {k: _plain(config[k]) for k in COST_CONFIG if k in config}
        self.spatial = tuple(int(d) for d in layer.input.shape[1:-1])
        self.in_classes, self.out_classes = np.asarray(in_classes), np.asarray(out_classes)
        self.depthwise = self.kind.startswith("Depthwise")
        self.cin_grid = grid_points(len(self.in_classes), grid)
        self.cout_grid = [0] if self.depthwise else grid_points(len(self.out_classes), grid)

    def counts(self, keep: np.ndarray) -> tuple[int, int]:
        cin = int(keep[self.in_classes].sum())
        return cin, 0 if self.depthwise else int(keep[self.out_classes].sum())

    def key(self, cin: int, cout: int) -> str:
        return json.dumps({"layer": self.kind, "config": self.config, "input":
                           list(self.spatial), "cin": cin, "cout": cout}, sort_keys=True)

    def overhead_key(self) -> str:
        return json.dumps({"overhead": list(self.spatial) + [len(self.in_classes)]})

    def build(self, cin: int, cout: int) -> keras.Model:
        config = {**self.layer.get_config(), "name": "layer"}
        for name in ("units", "filters"):
            if name in config:
                config[name] = cout
        inputs = keras.Input(self.spatial + (cin,), batch_size=1)
        return keras.Model(inputs, type(self.layer).from_config(config)(inputs))

    def trivial(self) -> keras.Model:
        inputs = keras.Input(self.spatial + (len(self.in_classes),), batch_size=1)
        flat = int(np.prod(self.spatial + (len(self.in_classes),)))
        return keras.Model(inputs, keras.layers.Reshape((flat,))(inputs))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _interpolate(points: list[int], c: int) -> list[tuple[int, float]]:
    """The grid points around `c` with their linear weights."""
    c = min(c, points[-1])
    i = int(np.searchsorted(points, c))
    if i < len(points) and points[i] == c:
        return [(c, 1.0)]
    lo, hi = points[max(i - 1, 0)], points[min(i, len(points) - 1)]
    t = (c - lo) / (hi - lo)
    return [(lo, 1.0 - t), (hi, t)]


class LatencyTable:
    """Per-layer latencies on one target, measured on demand and cached on disk.

    Args:
        target: where models are timed ("local", "ssh:USER@HOST", "adb:SERIAL").
        threads: interpreter threads.
        cache: the folder of the cached tables (default: `cache_dir()`).
        grid: channel counts are snapped to multiples of ceil(C / grid).

    Attributes:
        measured: entries this object measured (not found in the cache).
        seconds: time it spent measuring them.

    Example:
        >>> table = tfimp.device.LatencyTable("local", threads=1)
        >>> units = tfimp.device.units.Units(model)
        >>> table.predict_ms(units, cut, units.alive, parent_ms=3.8)
    """

    def __init__(self, target: str = "local", threads: int = 1, cache=None, grid: int = GRID):
        if not isinstance(target, str) or not (target == "local" or target.startswith(
                ("ssh:", "adb:"))):
            v.fail("target", target, "'local', 'ssh:USER@HOST' or 'adb:SERIAL'")
        self.target, self.threads = target, v.positive_int("threads", threads)
        self.grid = v.integer("grid", grid, 2)
        self.key = target_key(target, self.threads)
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        slug = "".join(ch if ch.isalnum() else "-" for ch in target)
        self.path = Path(cache if cache is not None else cache_dir()) / \
            f"{slug}-{digest[:12]}.json"
        self.entries = self._load()
        self.measured, self.seconds = 0, 0.0
        self._specs = weakref.WeakKeyDictionary()

    @classmethod
    def for_budget(cls, budget, **kwargs) -> LatencyTable:
        """The table of a `DeviceBudget`'s target and threads."""
        return cls(budget.target, budget.threads, **kwargs)

    # -- the cache
    def _load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            if data.get("key") != self.key:
                raise ValueError("the file belongs to another target")
            return {str(k): float(x) for k, x in data["entries"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            logging.warning("The latency table %s cannot be read (%s); its entries are "
                            "measured again.", self.path, e)
            return {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**self._load(), **self.entries} if self.path.exists() else self.entries
        self.entries = merged
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": self.key, "entries": merged}, f, indent=0, sort_keys=True)
        os.replace(tmp, self.path)

    # -- measuring
    def _time_us(self, model: keras.Model) -> float:
        shape = (SAMPLES,) + tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        data = convert_bytes(model, Int8(integer_io=True), False,
                             lambda: ([x[i:i + 1]] for i in range(len(x))))
        times = [cost.time_ms(data, self.target, self.threads, runs=ENTRY_RUNS)
                 for _ in range(ENTRY_REPEATS)]
        return 1000.0 * float(np.median(times))

    def _entry(self, spec: _Spec, key: str, build) -> float:
        if key not in self.entries:
            start = time.perf_counter()
            self.entries[key] = round(self._time_us(build()), 4)
            self.measured += 1
            self.seconds += time.perf_counter() - start
            self._save()
        return self.entries[key]

    def overhead_us(self, spec: _Spec) -> float:
        """The per-inference overhead for the layer's input (a model with no layer)."""
        return self._entry(spec, spec.overhead_key(), spec.trivial)

    def entry_us(self, spec: _Spec, cin: int, cout: int) -> float:
        """The layer's latency at a grid point (cin, cout), overhead subtracted (>= 0)."""
        key = spec.key(cin, cout)
        raw = self._entry(spec, key, lambda: spec.build(cin, cout or cin))
        return max(raw - self.overhead_us(spec), 0.0)

    # -- predicting
    def specs(self, units) -> list[_Spec]:
        """The layers of `units` (a `units.Units`) that the table holds."""
        if units not in self._specs:
            specs = []
            for e, layer in zip(units.graph.entries, units.layers):
                if type(e.layer).__name__ in LAYERS:
                    try:
                        specs.append(_Spec(e.layer, layer.in_classes, layer.out_classes,
                                           self.grid))
                    except (AttributeError, ValueError, TypeError):  # no single known input
                        continue
            self._specs[units] = specs
        return self._specs[units]

    def layer_us(self, spec: _Spec, cin: int, cout: int) -> float:
        """The layer's latency at any channel counts: bilinear between grid points."""
        if cin <= 0 or (cout <= 0 and not spec.depthwise):
            return 0.0
        total = 0.0
        for ci, wi in _interpolate(spec.cin_grid, cin):
            for co, wo in _interpolate(spec.cout_grid, cout):
                if wi * wo > 0:
                    total += wi * wo * self.entry_us(spec, ci, co)
        return total

    def model_us(self, units, keep) -> float:
        """The summed latency of the table's layers of `units` with the classes `keep`."""
        keep = np.asarray(keep, dtype=bool)
        return sum(self.layer_us(s, *s.counts(keep)) for s in self.specs(units))

    def predict_ms(self, units, keep, parent_keep, parent_ms: float) -> float:
        """The latency of `units` cut to `keep`: the parent's (`parent_keep`) measured
        `parent_ms` plus the table's change between the two."""
        delta = self.model_us(units, keep) - self.model_us(units, parent_keep)
        return parent_ms + delta / 1000.0

    def stats(self) -> dict:
        return {"entries": len(self.entries), "measured": self.measured,
                "seconds": round(self.seconds, 2), "path": str(self.path)}
