"""`compare()`: several .tflite models side by side: size, latency, arena, ratios to the first."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from tfimp._util.validate import (fail, flag, output_file, positive_int, positive_number,
                                  tflite_path)
from tfimp.export.inspect import inspect
from tfimp.profile.litert import litert
from tfimp.profile.micro import micro


@dataclass(frozen=True)
class Latency:
    """Median and p90 latency (us) of one model at one setting."""

    threads: int
    xnnpack: bool
    median_us: float
    p90_us: float

    @property
    def label(self) -> str:
        return f"{self.threads}t {'xnn' if self.xnnpack else 'ref'}"


@dataclass(frozen=True)
class ModelRow:
    """Everything measured for one model. `arena_note` says why `arena_bytes` is None."""

    model: str
    size_bytes: int
    gzip_bytes: int
    latency: tuple[Latency, ...]
    arena_bytes: int | None
    arena_note: str | None = None

    def metrics(self) -> dict[str, float | None]:
        """Flat name -> value map of the numbers that ratios are taken of."""
        values = {"size": self.size_bytes, "gzip": self.gzip_bytes}
        for lat in self.latency:
            values[f"median {lat.label}"] = lat.median_us
            values[f"p90 {lat.label}"] = lat.p90_us
        values["arena"] = self.arena_bytes
        return values


def _ratio(value, base) -> float | None:
    return None if value is None or not base else value / base


@dataclass(frozen=True)
class Comparison:
    """The result of `compare`: one row per model, the first being the reference."""

    rows: tuple[ModelRow, ...]
    runs: int

    def ratios(self) -> list[dict[str, float | None]]:
        """Per model, each metric divided by the first model's."""
        base = self.rows[0].metrics()
        return [{k: _ratio(v, base[k]) for k, v in row.metrics().items()} for row in self.rows]

    def get_config(self) -> dict:
        config = dataclasses.asdict(self)
        config["ratios"] = self.ratios()
        return config

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.get_config(), indent=indent)

    def table(self) -> str:
        """One line per model; below each model after the first, its ratios to the first."""
        first = self.rows[0]
        headers = ["model", "size B", "gzip B"]
        headers += [f"{lat.label} med/p90 us" for lat in first.latency] + ["arena B"]
        lines = []
        for row, ratios in zip(self.rows, self.ratios()):
            cells = [os.path.basename(row.model), str(row.size_bytes), str(row.gzip_bytes)]
            cells += [f"{lat.median_us:.1f}/{lat.p90_us:.1f}" for lat in row.latency]
            cells.append(str(row.arena_bytes) if row.arena_bytes is not None
                         else f"n/a: {row.arena_note}")
            lines.append(cells)
            if row is not first:
                r = [f"x{v:.2f}" if v is not None else "-" for v in ratios.values()]
                lat = [f"{a}/{b}" for a, b in zip(r[2:-1:2], r[3:-1:2])]
                lines.append(["  vs first", r[0], r[1], *lat, r[-1]])
        widths = [max(len(c[i]) for c in [headers, *lines] if i < len(c))
                  for i in range(len(headers))]
        fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, lines)])

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | os.PathLike) -> str:
        """Writes a PNG bar chart of every metric relative to the first model; returns path.

        Raises:
            ImportError: matplotlib is not installed (`pip install tfimp[plots]`).
        """
        path = output_file("path", path)
        from matplotlib.figure import Figure

        ratios = self.ratios()
        names = list(ratios[0])
        # A bare Figure draws with Agg without touching pyplot's state or the session's backend.
        fig = Figure(figsize=(max(6, len(names) * 0.9), 4))
        ax = fig.subplots()
        width = 0.8 / len(self.rows)
        for i, (row, r) in enumerate(zip(self.rows, ratios)):
            xs = [j + i * width for j in range(len(names))]
            ax.bar(xs, [v if v is not None else 0 for v in r.values()], width,
                   label=os.path.basename(row.model))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=45,
                      ha="right")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylabel("relative to the first model")
        ax.legend()
        fig.tight_layout()
        folder = os.path.dirname(os.path.abspath(path))
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".png", delete=False) as tmp:
            fig.savefig(tmp.name, dpi=100)
        os.replace(tmp.name, path)
        return str(path)


def _row(model, runs: int, warmup: int, threads: Sequence[int], xnnpack: Sequence[bool],
         timeout: float) -> ModelRow:
    path = tflite_path(model)
    data = path.read_bytes()
    latency = []
    for n in threads:
        for x in xnnpack:
            r = litert(path, threads=n, runs=runs, warmup=warmup, xnnpack=x, timeout=timeout)
            latency.append(Latency(n, x, r.median_us, r.p90_us))
    prof = micro(path)
    return ModelRow(str(model), len(data), len(gzip.compress(data, 9, mtime=0)), tuple(latency),
                    prof.arena_bytes, None if prof.arena_error is None else
                    f"not runnable in TFLite Micro: {prof.arena_error}")


def compare(models: Sequence, runs: int = 50, warmup: int = 5, threads: Sequence[int] = (1, 2),
            xnnpack: Sequence[bool] = (True, False), timeout: float = 300.0) -> Comparison:
    """Profiles several .tflite models the same way; the first one is the reference.

    Each model gets: file size raw and gzip-compressed, LiteRT median and p90 latency for every
    combination of `threads` and `xnnpack`, and the TFLite Micro arena (None with a reason
    when TFLM cannot run it).

    Example:
        >>> c = tfimp.profile.compare(["dense.tflite", "pruned.tflite"], runs=100)
        >>> print(c.table()); c.plot("compare.png")
    """
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence) or not models:
        fail("models", models, "a non-empty list of .tflite paths")
    positive_int("runs", runs)
    positive_int("warmup", warmup)
    if not isinstance(threads, Sequence) or not threads:
        fail("threads", threads, "a non-empty list of thread counts, e.g. (1, 2)")
    for n in threads:
        positive_int("threads", n)
    if not isinstance(xnnpack, Sequence) or not xnnpack:
        fail("xnnpack", xnnpack, "a non-empty list of True/False, e.g. (True, False)")
    for x in xnnpack:
        flag("xnnpack", x)
    positive_number("timeout", timeout)
    for m in models:  # fail on a bad or damaged file before measuring any
        inspect(tflite_path(m))
    return Comparison(tuple(_row(m, runs, warmup, threads, xnnpack, timeout) for m in models),
                      runs)
