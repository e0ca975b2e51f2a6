"""Reads a .tflite file back: per-tensor encoding, bytes and zeros; the ops; totals.

The flatbuffer is parsed with the schema bindings that `ai-edge-litert` (or TensorFlow) ships.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import numpy as np

from tfimp._util import validate as v

_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32,
    "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64, "BOOL": np.bool_,
}
_INDEX_ITEMSIZE = {1: 4, 2: 2, 3: 1}  # SparseIndexVector: Int32, Uint16, Uint8


def schema():
    """The TFLite flatbuffer schema module of an installed package."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # pragma: no cover - depends on the environment
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model as stored in the file."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool
    encoding: str  # "dense", "sparse", or TFLM's "tflm-pruning"/"tflm-lut"/"tflm-ancillary"
    block: tuple[int, ...] | None  # block shape of a block-sparse tensor, e.g. (1, 4)
    value_bytes: int
    index_bytes: int
    zero_fraction: float | None  # of the dense tensor; None for activations
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()

    @property
    def bytes(self) -> int:
        """Stored size: values plus the index arrays of a sparse encoding."""
        return self.value_bytes + self.index_bytes

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "bytes": self.bytes}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a .tflite file holds, read back from its flatbuffer."""

    file_bytes: int
    tensors: tuple[TensorInfo, ...]
    ops: tuple[str, ...]  # builtin op names in execution order (all subgraphs)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraphs: int

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(collections.Counter(self.ops))

    @property
    def constants(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.constant)

    @property
    def sparse_tensors(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.encoding == "sparse")

    @property
    def constant_bytes(self) -> int:
        return sum(t.bytes for t in self.constants)

    @property
    def index_bytes(self) -> int:
        return sum(t.index_bytes for t in self.constants)

    def tensor(self, name: str) -> TensorInfo:
        """The tensor called `name`."""
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"No tensor named {name!r}; names: {[t.name for t in self.tensors]}")

    def to_dict(self) -> dict:
        return {
            "file_bytes": self.file_bytes,
            "constant_bytes": self.constant_bytes,
            "index_bytes": self.index_bytes,
            "subgraphs": self.subgraphs,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "ops": self.op_counts,
            "tensors": [t.to_dict() for t in self.tensors],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, all_tensors: bool = False) -> str:
        """A readable table of the constant tensors (all tensors with `all_tensors`)."""
        rows = [t for t in self.tensors if all_tensors or t.constant]
        width = min(48, max([len(t.name) for t in rows] + [4]))
        head = f"{'#':>4}  {'name':<{width}}  {'shape':<14} {'dtype':<8} {'encoding':<13} " \
               f"{'bytes':>10} {'index B':>9} {'zeros':>7}"
        lines = [head, "-" * len(head)]
        for t in rows:
            enc = t.encoding + (f" {'x'.join(map(str, t.block))}" if t.block else "")
            zeros = "" if t.zero_fraction is None else f"{100 * t.zero_fraction:6.2f}%"
            name = t.name if len(t.name) <= width else "..." + t.name[-(width - 3):]
            lines.append(f"{t.index:>4}  {name:<{width}}  {str(list(t.shape)):<14} {t.dtype:<8} "
                         f"{enc:<13} {t.bytes:>10,} {t.index_bytes:>9,} {zeros:>7}")
        ops = ", ".join(f"{k} x{v}" for k, v in self.op_counts.items())
        lines += ["", f"ops: {ops}",
                  f"file: {self.file_bytes:,} bytes; constants: {self.constant_bytes:,} bytes "
                  f"(sparse index arrays {self.index_bytes:,}); sparse tensors: "
                  f"{len(self.sparse_tensors)} of {len(self.constants)}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def read_model_bytes(model: str | os.PathLike | bytes, argument: str = "model") -> bytes:
    """The bytes of a .tflite given as a path or as bytes, checked to be a TFLite flatbuffer."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, where = bytes(model), "the given bytes"
    elif isinstance(model, (str, os.PathLike)):
        if not os.path.isfile(model):
            raise ValueError(f"Argument `{argument}` must be a .tflite file. Received: "
                             f"{argument}={str(model)!r} {v.not_a_file(model)}")
        with open(model, "rb") as f:
            data, where = f.read(), repr(str(model))
    else:
        raise ValueError(f"Argument `{argument}` must be a path or the bytes of a .tflite model. "
                         f"Received: {argument} of type {type(model).__name__}")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"Argument `{argument}` is not a TFLite model: {where} "
                         f"({len(data)} bytes) lacks the 'TFL3' flatbuffer identifier.")
    return data


def inspect(model: str | os.PathLike | bytes) -> ModelInfo:
    """Reads a .tflite model back from its flatbuffer.

    Args:
        model: path of a .tflite file, or its bytes.

    Returns:
        A `ModelInfo`: per tensor its shape, dtype, quantization, encoding (dense or sparse,
        with the block shape), stored bytes and fraction of zeros; the op list; totals.

    Raises:
        ValueError: the file is not a TFLite model, or it is truncated or corrupted.

    Example:
    >>> print(tfimp.export.inspect("model.tflite").table())  # doctest: +SKIP
    """
    data = read_model_bytes(model)
    try:
        return _parse(data)
    except ValueError:
        raise
    except Exception as e:  # a damaged flatbuffer fails anywhere in the generated readers
        raise ValueError(f"Argument `model` is a truncated or corrupted .tflite file "
                         f"({len(data)} bytes): {type(e).__name__}: {e}") from None


def _parse(data: bytes) -> ModelInfo:
    fb = schema()
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    types = _enum_names(fb.TensorType)
    op_names = _enum_names(fb.BuiltinOperator)
    tensors, ops = [], []
    for g, subgraph in enumerate(model.subgraphs or []):
        names = [_op_name(model, op, op_names) for op in subgraph.operators or []]
        decoded = _decode_inputs(model, subgraph, names, data)
        for i, t in enumerate(subgraph.tensors or []):
            index = i if g == 0 else -1
            info = _tensor(index, t, _buffer(model, t, data), types.get(t.type, "?"))
            if i in decoded:
                info = dataclasses.replace(info, encoding=decoded[i], zero_fraction=None)
            tensors.append(info)
        ops += names
    first = model.subgraphs[0] if model.subgraphs else None
    inputs = first.inputs if first is not None and first.inputs is not None else ()
    outputs = first.outputs if first is not None and first.outputs is not None else ()
    return ModelInfo(len(data), tuple(tensors), tuple(ops), tuple(int(i) for i in inputs),
                     tuple(int(i) for i in outputs), len(model.subgraphs or []))


def _op_name(model, op, op_names: dict) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = op_names.get(builtin, f"BUILTIN_{builtin}")
    return code.customCode.decode() if name == "CUSTOM" and code.customCode else name


def _decode_inputs(model, subgraph, names: list[str], data: bytes) -> dict[int, str]:
    """Tensors read by TFLite Micro's DECODE ops: their encoding, from the ancillary header."""
    found = {}
    for op, name in zip(subgraph.operators or [], names):
        if name != "TFLM_DECODE":
            continue
        inputs = list(op.inputs if op.inputs is not None else [])
        for encoded, ancillary in zip(inputs[0::2], inputs[1::2]):
            head = _buffer(model, subgraph.tensors[ancillary], data)[:1]
            kind = {b"\x00": "lut", b"\x02": "pruning"}.get(head, "other")
            found[int(encoded)] = f"tflm-{kind}"
            found[int(ancillary)] = "tflm-ancillary"
    return found


def _buffer(model, tensor, data: bytes) -> bytes:
    if not model.buffers or tensor.buffer >= len(model.buffers):
        if tensor.buffer:
            raise ValueError(f"tensor refers to buffer {tensor.buffer}, which does not exist")
        return b""
    buf = model.buffers[tensor.buffer]
    if buf.data is not None:
        return np.asarray(buf.data, np.uint8).tobytes()
    if buf.offset > 1:  # stored after the flatbuffer (models over 2 GB)
        if buf.offset + buf.size > len(data):
            raise ValueError(f"buffer {tensor.buffer} lies past the end of the file")
        return data[buf.offset : buf.offset + buf.size]
    return b""


def _tensor(index: int, t, raw: bytes, dtype: str) -> TensorInfo:
    shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
    q = t.quantization
    scales = tuple(float(s) for s in q.scale) if q is not None and q.scale is not None else ()
    zps = tuple(int(z) for z in q.zeroPoint) if q is not None and q.zeroPoint is not None else ()
    block, index_bytes = None, 0
    if t.sparsity is not None:
        block, index_bytes = _sparsity(t.sparsity, len(shape))
    zero_fraction = _zero_fraction(raw, dtype, shape, zps) if raw else None
    return TensorInfo(
        index, t.name.decode(errors="replace") if t.name else "", shape, dtype.lower(),
        bool(raw), "sparse" if t.sparsity is not None else "dense", block, len(raw),
        index_bytes, zero_fraction, scales, zps,
    )


def _sparsity(sp, rank: int) -> tuple[tuple[int, ...] | None, int]:
    dims = sp.dimMetadata or []
    index_bytes = 0
    for d in dims:
        for vec_type, vec in ((d.arraySegmentsType, d.arraySegments),
                              (d.arrayIndicesType, d.arrayIndices)):
            if vec is not None and vec.values is not None:
                index_bytes += len(vec.values) * _INDEX_ITEMSIZE.get(vec_type, 4)
    block_map = list(sp.blockMap) if sp.blockMap is not None else []
    if not block_map:
        return None, index_bytes
    block = [1] * rank
    for k, dim in enumerate(block_map):
        block[int(dim)] = int(dims[rank + k].denseSize)
    return tuple(block), index_bytes


def _zero_fraction(raw: bytes, dtype: str, shape: tuple, zps: tuple) -> float | None:
    np_type = _NUMPY_TYPES.get(dtype)
    size = int(np.prod(shape)) if shape else 1
    if np_type is None or size == 0:
        return None
    values = np.frombuffer(raw, np_type, count=len(raw) // np.dtype(np_type).itemsize)
    zero = zps[0] if zps and len(set(zps)) == 1 and np.dtype(np_type).kind in "iu" else 0
    stored_zeros = int(np.count_nonzero(values == zero))
    implied_zeros = max(size - values.size, 0)  # entries a sparse encoding does not store
    return (stored_zeros + implied_zeros) / size
