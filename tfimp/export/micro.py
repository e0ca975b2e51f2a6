"""`to_micro`: an int8 .tflite model to C source for TensorFlow Lite Micro, checked in TFLM.

Writes `model_data.cc`/`model_data.h` (the model as an aligned byte array, its length and the
tensor-arena size) and `model_ops.h` (a `MicroMutableOpResolver` that registers exactly the
model's ops). The arena size is measured by running the model in the `tflite-micro` Python
interpreter; the model's outputs in TFLM are compared with LiteRT's.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np

from tfimp._util import validate as v
from tfimp._util.errors import TfimpError
from tfimp.export import _sandbox
from tfimp._util.io import atomic_write_bytes
from tfimp.export.inspect import ModelInfo, inspect, read_model_bytes

_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")
_FIRST_ARENA = 1 << 20
_LAST_ARENA = 256 << 20
# Builtin ops whose MicroMutableOpResolver method is not the plain CamelCase of the name.
_RESOLVER_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


class MicroError(TfimpError, ValueError):
    """TFLite Micro cannot run the model, or runs it differently from LiteRT."""


@dataclasses.dataclass(frozen=True)
class MicroRun:
    """One TFLM run: outputs as the model returns them, dequantized, and the arena used."""

    outputs: list[np.ndarray]
    dequantized: list[np.ndarray]
    arena_bytes: int


@dataclasses.dataclass(frozen=True)
class MicroArtifact:
    """The files written for TFLM and what was measured.

    `arena_bytes` is what TFLM used on this machine; `arena_size` adds `margin` (a fraction)
    and rounds up to 16 bytes, and is the `kTensorArenaSize` written to `model_data.h`.
    `max_diff_steps` is the largest difference between TFLM's and LiteRT's raw outputs in
    quantization steps.
    """

    out_dir: str
    files: tuple[str, ...]
    model_bytes: int
    ops: tuple[str, ...]
    resolver_snippet: str
    arena_bytes: int
    arena_size: int
    margin: float
    max_diff_steps: float


def resolver_method(op: str) -> str:
    """The `MicroMutableOpResolver` method that registers builtin `op`, e.g. AddConv2D."""
    if op in _RESOLVER_EXCEPTIONS:
        return _RESOLVER_EXCEPTIONS[op]
    return "Add" + "".join(p if re.fullmatch(r"\d+D", p) else p.capitalize() for p in op.split("_"))


def resolver_snippet(ops) -> str:
    """C++ that registers exactly `ops` (deduplicated, in first-use order) in TFLM."""
    unique = list(dict.fromkeys(ops))
    lines = [
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"using ModelOpResolver = tflite::MicroMutableOpResolver<{len(unique)}>;",
        "",
        "// Registers the ops the model uses; returns kTfLiteOk on success.",
        "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {",
    ]
    lines += [f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;"
              for op in unique]
    lines += ["  return kTfLiteOk;", "}", ""]
    return "\n".join(lines)


def run_micro(model, inputs, arena_size: int | None = None) -> MicroRun:
    """Runs a .tflite model (path or bytes) in TFLite Micro on batch-first `inputs`.

    Float inputs are quantized with the model's input scale and zero point. The interpreter
    runs in a child process, so a model that crashes it raises `MicroError` here.
    """
    data = read_model_bytes(model)
    inputs = _checked_inputs(inputs, inspect(data))
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
    return run_micro(data, _zeros(inspect(data))).arena_bytes


def _zeros(info: ModelInfo) -> list[np.ndarray]:
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
            "device through compression of the flash image or through structured pruning.")
    floats = [t.name for t in info.constants if len(t.shape) >= 2 and t.dtype.startswith("float")]
    if floats:
        raise MicroError(
            f"The model keeps float weights ({', '.join(floats[:3])}); microcontrollers need "
            "an int8 model. Export it with quantization=tfimp.export.Int8(integer_io=True) and "
            "representative data.")


def to_micro(
    tflite_path,
    out_dir: str | os.PathLike,
    margin: float = 0.25,
    inputs=None,
    max_diff_steps: int = 1,
    name: str = "g_model",
) -> MicroArtifact:
    """Turns an int8 .tflite into TFLM C source with a measured tensor-arena size.

    Args:
        tflite_path: the .tflite path or bytes; an int8 model without sparse tensors.
        out_dir: folder for `model_data.cc`, `model_data.h` and `model_ops.h`.
        margin: fraction added to the measured arena (other kernels, e.g. CMSIS-NN, may use
            different scratch buffers than the reference kernels measured here).
        inputs: batch-first inputs to compare TFLM with LiteRT on; None uses 8 random samples.
        max_diff_steps: largest accepted difference of raw outputs, in quantization steps.
        name: C name of the model array.

    Raises:
        MicroError: TFLM cannot run the model (the message says what to change), or its
            outputs differ from LiteRT's by more than `max_diff_steps`.
    """
    data = read_model_bytes(tflite_path, "tflite_path")
    _check_args(margin, max_diff_steps, name)
    v.output_folder("out_dir", out_dir)
    info = inspect(data)
    check_micro_compatible(info)
    xs = _random_inputs(info, 8) if inputs is None else _checked_inputs(inputs, info)
    micro = run_micro(data, xs)
    diff = _compare(data, xs, micro, max_diff_steps)
    arena_size = int(math.ceil(micro.arena_bytes * (1.0 + margin) / 16.0) * 16)
    snippet = resolver_snippet(info.ops)
    files = _write_sources(os.fspath(out_dir), data, name, arena_size, micro.arena_bytes, margin,
                           snippet)
    return MicroArtifact(os.fspath(out_dir), files, len(data), tuple(dict.fromkeys(info.ops)),
                         snippet, micro.arena_bytes, arena_size, margin, diff)


def _check_args(margin, max_diff_steps, name) -> None:
    if not isinstance(margin, (int, float)) or not 0 <= margin <= 10:
        raise ValueError(f"Argument `margin` must be a fraction in [0, 10], e.g. 0.25 for 25%. "
                         f"Received: margin={margin!r}")
    if not isinstance(max_diff_steps, int) or max_diff_steps < 0:
        raise ValueError(f"Argument `max_diff_steps` must be a non-negative integer. "
                         f"Received: max_diff_steps={max_diff_steps!r}")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"Argument `name` must be a C identifier. Received: name={name!r}")


def _checked_inputs(inputs, info: ModelInfo) -> list[np.ndarray]:
    xs = v.matches_shapes("inputs", inputs, v.tflite_input_shapes(info))
    v.finite("inputs", inputs)
    return xs


def _random_inputs(info: ModelInfo, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    xs = []
    for i in info.inputs:
        t = info.tensors[i]
        shape = (n, *t.shape[1:])
        if t.dtype.startswith("float"):
            xs.append(rng.standard_normal(shape).astype(np.float32))
        else:
            limits = np.iinfo(np.dtype(t.dtype))
            xs.append(rng.integers(limits.min, limits.max, shape, endpoint=True).astype(t.dtype))
    return xs


def _compare(data: bytes, xs, micro: MicroRun, max_diff_steps: int) -> float:
    lite = _sandbox.run("litert", data, xs)
    worst = 0.0
    for k, (a, b) in enumerate(zip(micro.outputs, lite.raw)):
        a, b = np.asarray(a), np.asarray(b).reshape(np.shape(a))
        if a.dtype.kind in "iu":
            diff = float(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))
        else:
            scale = lite.info["outputs"][k].get("scale") or 0.0
            diff = float(np.max(np.abs(a - b))) / scale if scale else float(np.max(np.abs(a - b)))
        worst = max(worst, diff)
    if worst > max_diff_steps:
        raise MicroError(f"TFLite Micro's outputs differ from LiteRT's by {worst:g} quantization "
                         f"steps (> max_diff_steps={max_diff_steps}).")
    return worst


def _write_sources(out_dir, data, name, arena_size, arena_bytes, margin, snippet) -> tuple:
    os.makedirs(out_dir, exist_ok=True)
    header = "\n".join([
        "#pragma once", "", "#include <cstddef>", "",
        f"// Tensor arena: {arena_bytes} bytes measured with the TFLite Micro reference kernels,",
        f"// plus a {100 * margin:g}% margin, rounded up to 16 bytes.",
        f"constexpr std::size_t kTensorArenaSize = {arena_size};", "",
        f"extern const unsigned char {name}[];",
        f"extern const unsigned int {name}_len;", "",
    ])
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    source = "\n".join([
        '#include "model_data.h"', "",
        f"alignas(16) const unsigned char {name}[] = {{",
        *(f"  {row}," for row in rows),
        "};",
        f"const unsigned int {name}_len = {len(data)};", "",
    ])
    files = {"model_data.h": header, "model_data.cc": source, "model_ops.h":
             "#pragma once\n\n" + snippet}
    for fname, text in files.items():
        atomic_write_bytes(os.path.join(out_dir, fname), text.encode())
    return tuple(os.path.join(out_dir, f) for f in files)
