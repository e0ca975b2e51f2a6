"""Runs a .tflite model in the TensorFlow Lite Micro interpreter and measures its arena."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from tfimp._util import validate as v
from tfimp._util.errors import TfimpError
from tfimp.export import _sandbox
from tfimp.export.inspect import ModelInfo, inspect, read_model_bytes

_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")
_FIRST_ARENA = 1 << 20
_LAST_ARENA = 256 << 20


class MicroError(TfimpError, ValueError):
    """TFLite Micro cannot run the model, or runs it differently from LiteRT."""


@dataclasses.dataclass(frozen=True)
class MicroRun:
    """One TFLM run: outputs as the model returns them, dequantized, and the arena used."""

    outputs: list[np.ndarray]
    dequantized: list[np.ndarray]
    arena_bytes: int


def run_micro(model, inputs, arena_size: int | None = None) -> MicroRun:
    """Runs a .tflite model (path or bytes) in TFLite Micro on batch-first `inputs`.

    Float inputs are quantized with the model's input scale and zero point. The interpreter
    runs in a child process, so a model that crashes it raises `MicroError` here.
    """
    data = read_model_bytes(model)
    inputs = v.matches_shapes("inputs", inputs, v.tflite_input_shapes(inspect(data)))
    v.finite("inputs", inputs)
    if arena_size is not None:
        v.positive_int("arena_size", arena_size)
    arenas = [arena_size] if arena_size else [max(_FIRST_ARENA, 16 * len(data)), _LAST_ARENA]
    for k, arena in enumerate(arenas):
        try:
            result = _sandbox.run("tflm", data, _sandbox.as_list(inputs), arena=arena)
            break
        except _sandbox.RuntimeRefusedError as e:
            crashed = "crashed" in str(e)
            if not crashed or k == len(arenas) - 1:
                raise MicroError(f"TFLite Micro cannot run the model: {e}") from None
    totals = _ARENA_RE.findall(result.stderr)
    if not totals:
        raise MicroError("TFLite Micro did not report its arena use:\n" + result.stderr[-1000:])
    return MicroRun(result.raw, result.dequantized, int(totals[-1]))


def measure_arena(model) -> int:
    """Bytes of tensor arena TFLite Micro uses to run the model once (on zeros)."""
    data = read_model_bytes(model)
    return run_micro(data, zero_inputs(inspect(data))).arena_bytes


def zero_inputs(info: ModelInfo) -> list[np.ndarray]:
    """One sample of zeros per model input."""
    return [np.zeros(info.tensors[i].shape, _dtype(info.tensors[i].dtype)) for i in info.inputs]


def _dtype(name: str):
    return np.float32 if name.startswith("float") else np.dtype(name)


def check_micro_compatible(info: ModelInfo) -> None:
    """Raises `MicroError` naming the fix when TFLM cannot run the model as exported."""
    if info.sparse_tensors or "DENSIFY" in info.ops:
        names = ", ".join(t.name for t in info.sparse_tensors[:3])
        raise MicroError(
            "TFLite Micro has no sparse kernels and no DENSIFY op, but the model stores tensors "
            f"in the sparse encoding ({names}). Export it with sparse=False, "
            "quantization=tfimp.export.Int8(integer_io=True); pruning then pays off on the "
            "device through to_micro(..., compression='auto') or through structured pruning.")
    floats = [t.name for t in info.constants if len(t.shape) >= 2 and t.dtype.startswith("float")]
    if floats:
        raise MicroError(
            f"The model keeps float weights ({', '.join(floats[:3])}); microcontrollers need "
            "an int8 model. Export it with quantization=tfimp.export.Int8(integer_io=True) and "
            "representative data.")
