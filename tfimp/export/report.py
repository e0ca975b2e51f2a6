"""`ExportReport`: what the converter wrote, how big it is, and how it compares with Keras."""

from __future__ import annotations

import dataclasses
import json

from tfimp.export.inspect import ModelInfo
from tfimp.export.verify import Verification


@dataclasses.dataclass(frozen=True)
class TensorSparsity:
    """Sparsity of one weight tensor, as read back from the .tflite file."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    encoding: str
    block: tuple[int, ...] | None
    bytes: int
    index_bytes: int
    zero_fraction: float


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One conversion that was tried: its encoding, size and whether LiteRT ran it."""

    sparse: bool
    bytes: int
    runs: bool
    passed: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """Sizes, per-tensor sparsity and verification of one exported .tflite model.

    `compression_ratio` is the dense float32 .tflite size over this file's raw size; the
    gzip figures say what a compressed download or flash image would take.
    """

    quantization: dict
    sparse: bool
    keras_weight_bytes: int
    keras_sparsity: float
    tflite_bytes: int
    gzip_bytes: int
    dense_float32_bytes: int
    tensors: tuple[TensorSparsity, ...]
    ops: dict
    verification: Verification | None = None
    candidates: tuple[Candidate, ...] = ()
    path: str | None = None

    @property
    def compression_ratio(self) -> float:
        return self.dense_float32_bytes / self.tflite_bytes

    @property
    def gzip_ratio(self) -> float:
        return self.dense_float32_bytes / self.gzip_bytes

    @classmethod
    def from_info(cls, info: ModelInfo, **fields) -> ExportReport:
        """The report of a model read back by `inspect`, plus the converter's facts."""
        tensors = tuple(
            TensorSparsity(t.name, t.shape, t.dtype, t.encoding, t.block, t.bytes, t.index_bytes,
                           t.zero_fraction)
            for t in info.constants
            if len(t.shape) >= 2 and t.zero_fraction is not None
        )
        return cls(tensors=tensors, ops=info.op_counts, tflite_bytes=info.file_bytes, **fields)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["verification"] = None if self.verification is None else self.verification.to_dict()
        out["compression_ratio"] = self.compression_ratio
        out["gzip_ratio"] = self.gzip_ratio
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A readable summary: sizes, then one row per weight tensor, then verification."""
        q = self.quantization.get("name", "?")
        lines = [
            f"quantization: {q}   sparse encoding: {'on' if self.sparse else 'off'}",
            f"Keras float32 weights : {self.keras_weight_bytes:>12,} bytes "
            f"({100 * self.keras_sparsity:.2f}% zeros)",
            f"dense float32 .tflite : {self.dense_float32_bytes:>12,} bytes",
            f".tflite (raw)         : {self.tflite_bytes:>12,} bytes  "
            f"{self.compression_ratio:6.1f}x smaller",
            f".tflite (gzip -9)     : {self.gzip_bytes:>12,} bytes  "
            f"{self.gzip_ratio:6.1f}x smaller",
            "",
            f"{'tensor':<40} {'shape':<12} {'dtype':<8} {'encoding':<11} {'bytes':>9} "
            f"{'index B':>8} {'zeros':>7}",
        ]
        for t in self.tensors:
            name = t.name if len(t.name) <= 40 else "..." + t.name[-37:]
            enc = t.encoding + (f" {'x'.join(map(str, t.block))}" if t.block else "")
            lines.append(f"{name:<40} {str(list(t.shape)):<12} {t.dtype:<8} {enc:<11} "
                         f"{t.bytes:>9,} {t.index_bytes:>8,} {100 * t.zero_fraction:6.2f}%")
        if self.candidates:
            lines.append("")
            lines += [f"tried sparse={c.sparse}: {c.bytes:,} bytes, "
                      f"{'runs' if c.runs else 'rejected'}"
                      f"{'' if c.passed else ', failed verification'}"
                      f"{': ' + c.note if c.note else ''}" for c in self.candidates]
        if self.verification is not None:
            lines += ["", "verification: " + self.verification.summary()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
