"""`to_micro`: an int8 .tflite model to C source for TensorFlow Lite Micro, checked in TFLM.

Writes `model_data.cc`/`model_data.h` (the model as an aligned byte array, its length and the
tensor-arena size) and `model_ops.h` (a `MicroMutableOpResolver` that registers exactly the
model's ops). The arena size is measured by running the model in the `tflite-micro` Python
interpreter; the model's outputs in TFLM are compared with LiteRT's builtin kernels (the same
integer arithmetic; XNNPACK rounds int8 differently). With `compression`, the
constant tensors are stored in TFLM's DECODE encodings (pruning bitmap, LUT); the compressed
model must reproduce the uncompressed one bit for bit in TFLM, and is written as
`model.tflite` too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tfimp._util import validate as v
from tfimp._util.io import atomic_write_bytes
from tfimp._util.resources import data_folder
from tfimp.export import _sandbox, micro_fit, tflm_sparse
from tfimp.export.boards import get_board
from tfimp.export import tflm_compression as tc
from tfimp.export.inspect import ModelInfo, inspect, read_model_bytes
from tfimp.export.micro_fit import MicroCompression, MicroEncoding
from tfimp.export.micro_run import (
    MicroError,
    MicroRun,
    check_micro_compatible,
    measure_arena,
    run_micro,
)

__all__ = ["MicroArtifact", "MicroCompression", "MicroEncoding", "MicroError", "MicroRun",
           "check_micro_compatible", "measure_arena", "resolver_method", "resolver_snippet",
           "run_micro", "to_micro"]

# Builtin ops whose MicroMutableOpResolver method is not the plain CamelCase of the name.
_RESOLVER_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    tc.DECODE_OP: "AddDecode",
}
MODEL_FILE = "model.tflite"
# The sparse kernel's C++ sources, written next to model_ops.h when the model uses it.
SPARSE_SOURCES = ("sparse_fully_connected.h", "sparse_fully_connected.cc")


@dataclasses.dataclass(frozen=True)
class MicroArtifact:
    """The files written for TFLM and what was measured.

    `arena_bytes` is what TFLM used on this machine; `arena_size` adds `margin` (a fraction)
    and rounds up to 16 bytes, and is the `kTensorArenaSize` written to `model_data.h`.
    `max_diff_steps` is the largest difference between TFLM's and LiteRT's raw outputs in
    quantization steps (of the uncompressed model). `compression` names the encoding written
    ("none", "pruning", "lut", "pruning+lut", ...); `tensors` holds each compressible tensor's
    encoding and `encodings` the flash and arena of every encoding tried.
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
    compression: str = "none"
    tensors: tuple = ()
    encodings: tuple[MicroEncoding, ...] = ()
    board: str | None = None

    def table(self) -> str:
        """The encodings tried (flash, arena, fit) and the tensors of the one written."""
        return "\n".join([micro_fit.encodings_table(self.encodings), "",
                          f"written: {self.compression}", tc.encoding_table(self.tensors)])


def resolver_method(op: str) -> str:
    """The `MicroMutableOpResolver` method that registers builtin `op`, e.g. AddConv2D."""
    if op in _RESOLVER_EXCEPTIONS:
        return _RESOLVER_EXCEPTIONS[op]
    return "Add" + "".join(p if re.fullmatch(r"\d+D", p) else p.capitalize() for p in op.split("_"))


def resolver_snippet(ops) -> str:
    """C++ that registers exactly `ops` (deduplicated, in first-use order) in TFLM."""
    unique = list(dict.fromkeys(ops))
    lines = ['#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"']
    if tflm_sparse.OP in unique:
        lines.append(f'#include "{SPARSE_SOURCES[0]}"  // tfimp\'s sparse FULLY_CONNECTED kernel')
    lines += [
        "",
        f"using ModelOpResolver = tflite::MicroMutableOpResolver<{len(unique)}>;",
        "",
        "// Registers the ops the model uses; returns kTfLiteOk on success.",
        "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {",
    ]
    lines += [f"  if ({_register_call(op)} != kTfLiteOk) return kTfLiteError;" for op in unique]
    lines += ["  return kTfLiteOk;", "}", ""]
    return "\n".join(lines)


def _register_call(op: str) -> str:
    if op == tflm_sparse.OP:
        return ("resolver.AddCustom(tfimp::kSparseFullyConnected, "
                "tfimp::Register_SPARSE_FULLY_CONNECTED())")
    return f"resolver.{resolver_method(op)}()"


def to_micro(
    tflite_path,
    out_dir: str | os.PathLike,
    margin: float = 0.25,
    inputs=None,
    max_diff_steps: int = 1,
    name: str = "g_model",
    compression: str | MicroCompression | None = None,
    board=None,
) -> MicroArtifact:
    """Turns an int8 .tflite into TFLM C source with a measured tensor-arena size.

    Args:
        tflite_path: the .tflite path or bytes; an int8 model without sparse tensors (or one
            that `to_micro` compressed before).
        out_dir: folder for `model_data.cc`, `model_data.h` and `model_ops.h`, plus
            `model.tflite` (the exact model in the C array) when compressed.
        margin: fraction added to the measured arena (other kernels, e.g. CMSIS-NN, may use
            different scratch buffers than the reference kernels measured here).
        inputs: batch-first inputs to verify on; None uses 8 random samples.
        max_diff_steps: largest accepted difference of raw outputs between TFLM and LiteRT's
            builtin kernels (uncompressed model), in quantization steps.
        name: C name of the model array.
        compression: None keeps the model as it is; "pruning", "lut" (or a
            `MicroCompression`) store constant tensors in TFLM's DECODE encodings; "sparse"
            rewrites pruned FULLY_CONNECTED ops to tfimp's sparse int8 kernel (its C++ source
            is written too); "auto" tries all and their mixes and keeps the smallest. Every
            encoding tried runs in TFLM on `inputs` and must match the uncompressed model bit
            for bit (a sparse model runs as its dense stand-in, each sparse op checked with
            the kernel's numpy mirror); the artifact reports the flash and arena of each.
        board: a board name from `tfimp.profile.BOARDS` or a `MicroBoard`: the model (flash)
            and `arena_size` (RAM) must fit it; with compression, the smallest fitting
            encoding is chosen (DECODE holds decoded tensors in the arena).

    Raises:
        MicroError: TFLM cannot run the model (the message says what to change), its outputs
            differ from LiteRT's by more than `max_diff_steps`, a compressed model is not
            bit-exact, or nothing fits `board` (with the figures of every encoding tried).
        ValueError: bad arguments.
    """
    data = read_model_bytes(tflite_path, "tflite_path")
    _check_args(margin, max_diff_steps, name)
    config = micro_fit.get(compression)
    target = _board(board)
    out = _check_out_dir(out_dir)
    info = inspect(data)
    check_micro_compatible(info)
    source = _uncompressed(data, config)
    xs = random_inputs(info, 8) if inputs is None else _checked_inputs(inputs, info)
    reference = run_micro(source, xs)
    diff = _compare(source, xs, reference, max_diff_steps)
    if config is None:
        choice = micro_fit.keep(data, source, xs, reference, margin, target)
    else:
        choice = micro_fit.choose(source, config, target, xs, reference, margin)
    chosen = choice.chosen
    final = inspect(choice.data)
    snippet = resolver_snippet(final.ops)
    files = _write_sources(out, choice.data, name, chosen.arena_size, chosen.arena_bytes,
                           margin, snippet, with_model=config is not None or data != source,
                           sparse=tflm_sparse.OP in final.ops)
    return MicroArtifact(str(out), files, len(choice.data), tuple(dict.fromkeys(final.ops)),
                         snippet, chosen.arena_bytes, chosen.arena_size, margin, diff,
                         chosen.name, chosen.tensors, choice.tried,
                         None if target is None else target.name)


def _board(board):
    if board is None:
        return None
    return get_board(board)


def _check_out_dir(out_dir) -> Path:
    return v.output_folder("out_dir", out_dir).resolve()


def _checked_inputs(inputs, info: ModelInfo) -> list[np.ndarray]:
    xs = v.matches_shapes("inputs", inputs, v.tflite_input_shapes(info))
    v.finite("inputs", inputs)
    return xs


def _uncompressed(data: bytes, config) -> bytes:
    sparse = tflm_sparse.has_sparse(data)
    if not sparse and not tc.is_compressed(data):
        return data
    if config is not None:
        raise MicroError(f"The model is compressed already (it holds "
                         f"{tflm_sparse.OP if sparse else 'TFLM_DECODE'} ops); pass "
                         "compression=None to keep its encodings, or start from the "
                         "uncompressed model.")
    dense = tflm_sparse.densify(data) if sparse else data
    return tc.decompress_tflm(dense) if tc.is_compressed(dense) else dense


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


def random_inputs(info: ModelInfo, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` random samples per input of the model `info` describes, raw values in the input's
    dtype (standard normal for float inputs, the whole range for integer ones)."""
    rng = np.random.default_rng(seed)
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
    # LiteRT's builtin kernels share TFLite Micro's integer arithmetic; XNNPACK's int8
    # convolutions round differently (seen: 4-15 steps on a Conv1D model), so it is not the
    # reference for a microcontroller file.
    lite = _sandbox.run("litert_builtin", data, xs)
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


def _write_sources(out: Path, data, name, arena_size, arena_bytes, margin, snippet,
                   with_model: bool, sparse: bool = False) -> tuple:
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
    files = {"model_data.h": header.encode(), "model_data.cc": source.encode(),
             "model_ops.h": ("#pragma once\n\n" + snippet).encode()}
    if sparse:
        files.update(sparse_sources())
    if with_model:
        files[MODEL_FILE] = data
    _write_all(out, files)
    return tuple(str(out / f) for f in files)


def sparse_sources() -> dict[str, bytes]:
    """The sparse FULLY_CONNECTED kernel's C++ files, by name."""
    root = data_folder("tfimp.deploy", "deploy") / "micro"
    return {name: (root / name).read_bytes() for name in SPARSE_SOURCES}


def _write_all(out: Path, files: dict[str, bytes]) -> None:
    """Writes all files or none: into a folder next to `out`, then renamed into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for fname, blob in files.items():
            atomic_write_bytes(stage / fname, blob)
        if not out.exists():
            os.replace(stage, out)
            return
        for fname in files:
            os.replace(stage / fname, out / fname)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
