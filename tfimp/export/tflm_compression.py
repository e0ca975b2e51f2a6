"""Compresses the constant tensors of a .tflite model for TensorFlow Lite Micro's DECODE op.

Each compressed tensor keeps its place in the model but holds its encoded bytes (uint8, one
dimension); a second constant holds the ancillary data; a DECODE op (custom op `TFLM_DECODE`)
right before each op that reads the tensor writes the plain tensor into the arena. So flash
shrinks and RAM grows by the decoded tensor while its reader runs. Encodings: PRUNING (a
bitmap of the non-zeros and their values) and LUT (a value table per channel and 1-7 bit
indices); see `tfimp.export.tflm_encoding`.

TFLite Micro cannot stack the two on one tensor: DECODE reads constant tensors only, and the
pruning encoding stores its values raw. A model can mix them, one encoding per tensor.

Example:
>>> small = compress_tflm("model_int8.tflite", plan("model_int8.tflite", "auto"))  # doctest: +SKIP
>>> print(small.table())                                                           # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from tfimp.export import tflite_edit as edit
from tfimp.export import tflm_encoding as enc
from tfimp.export.inspect import schema

DECODE_OP = "TFLM_DECODE"
Model = str | os.PathLike | bytes
ENCODINGS = ("none", "pruning", "lut")
MODES = ("pruning", "lut", "auto")
_WEIGHT_TYPES = ("INT8", "INT16", "FLOAT32")
_BIAS_TYPES = ("INT32", "INT64")
# Input position of the bias of the ops that have one; other integer constants are shape
# parameters, which TFLM kernels read before any DECODE has run.
_BIAS_INPUT = {"FULLY_CONNECTED": 2, "CONV_2D": 2, "CONV_3D": 2, "DEPTHWISE_CONV_2D": 2,
               "TRANSPOSE_CONV": 3}
# Model bytes a compressed tensor adds besides its data: an ancillary and a decoded tensor
# record, a buffer record, alignment, and a DECODE op per reader (measured, rounded up).
_TENSOR_OVERHEAD = 224
_READER_OVERHEAD = 64


@dataclasses.dataclass(frozen=True)
class Lut:
    """The LUT encoding with `bits`-wide indices (1-7); None takes the fewest that fit."""

    bits: int | None = None

    def __post_init__(self):
        bits = self.bits
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)
                                 or not 1 <= bits <= enc.MAX_LUT_BITS):
            raise ValueError(f"Argument `bits` must be an integer in 1..{enc.MAX_LUT_BITS} "
                             f"(TFLite Micro's LUT index widths), or None. Received: "
                             f"bits={bits!r}")


@dataclasses.dataclass(frozen=True)
class TensorOptions:
    """What each encoding would store for one constant tensor, and why it may not apply.

    `pruning_bytes` and `lut_bytes` count the encoded and the ancillary data; `lut_bytes` is
    None when a channel holds more distinct values than 7-bit indices address (or than
    `lut_bits`). `overhead_bytes` estimates the tensor records and DECODE ops a compressed
    tensor adds to the file. `reason` says why the tensor cannot be compressed ("" if it can).
    """

    subgraph: int
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    readers: int
    dense_bytes: int
    zero_fraction: float
    values_per_channel: int
    pruning_bytes: int | None
    lut_bytes: int | None
    lut_bits: int | None
    overhead_bytes: int
    reason: str = ""

    def stored_bytes(self, encoding: str) -> int | None:
        """Bytes the tensor takes in the file with `encoding`, overhead included."""
        if encoding == "none":
            return self.dense_bytes
        size = self.pruning_bytes if encoding == "pruning" else self.lut_bytes
        return None if size is None or self.reason else size + self.overhead_bytes

    def best(self, allowed=("pruning", "lut")) -> str:
        """The allowed encoding that stores the fewest bytes; "none" unless one saves bytes."""
        sizes = {e: self.stored_bytes(e) for e in allowed}
        sizes = {e: s for e, s in sizes.items() if s is not None and s < self.dense_bytes}
        return min(sizes, key=sizes.get) if sizes else "none"


@dataclasses.dataclass(frozen=True)
class TensorEncoding:
    """How one constant tensor is stored in a model for TFLite Micro.

    `stored_bytes` counts its encoded and ancillary data (the dense bytes for "none");
    `decoded_bytes` is the arena a DECODE fills while the tensor's reader runs.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    encoding: str
    bits: int | None
    dense_bytes: int
    stored_bytes: int
    decoded_bytes: int

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}


@dataclasses.dataclass(frozen=True)
class CompressedModel:
    """A model with DECODE ops, and the encoding of each tensor that could be compressed."""

    data: bytes
    tensors: tuple[TensorEncoding, ...]

    @property
    def flash_bytes(self) -> int:
        return len(self.data)

    def counts(self) -> dict[str, int]:
        """How many tensors use each encoding."""
        return {e: sum(t.encoding == e for t in self.tensors) for e in ENCODINGS}

    def table(self) -> str:
        return encoding_table(self.tensors)


def encoding_table(tensors) -> str:
    """A readable table of tensor encodings."""
    width = min(44, max([len(t.name) for t in tensors] + [6]))
    head = (f"{'tensor':<{width}}  {'shape':<14} {'encoding':<9} {'bits':>4} {'dense B':>9} "
            f"{'stored B':>9} {'arena B':>8}")
    lines = [head, "-" * len(head)]
    for t in tensors:
        name = t.name if len(t.name) <= width else "..." + t.name[-(width - 3):]
        bits = "" if t.bits is None else str(t.bits)
        lines.append(f"{name:<{width}}  {str(list(t.shape)):<14} {t.encoding:<9} {bits:>4} "
                     f"{t.dense_bytes:>9,} {t.stored_bytes:>9,} {t.decoded_bytes:>8,}")
    return "\n".join(lines)


def is_compressed(model: Model) -> bool:
    """Whether the model holds DECODE ops."""
    tree = edit.read(model)
    return any(edit.op_name(tree, op) == DECODE_OP
               for sg in tree.subgraphs or [] for op in sg.operators or [])


def tensor_options(model: Model, lut_bits: int | None = None) -> tuple[TensorOptions, ...]:
    """Per constant tensor read by an op: what pruning and LUT would store, and whether
    they apply.

    Args:
        model: a .tflite path or bytes.
        lut_bits: LUT index width to price; None takes the fewest bits that fit each tensor.
    """
    Lut(lut_bits)
    tree = edit.read(model)
    _check_not_compressed(tree)
    return tuple(_options_of(tree, lut_bits))


def plan(model: Model, compression: str = "auto", lut_bits: int | None = None) -> dict:
    """The encoding of each tensor for a compression mode, keyed by (subgraph, tensor).

    "pruning" and "lut" use that encoding wherever it makes the tensor smaller; "auto" takes
    per tensor the one that stores the fewest bytes. Tensors left dense are not listed.
    """
    return plan_of(tensor_options(model, lut_bits), compression, lut_bits)


def plan_of(options, compression: str = "auto", lut_bits: int | None = None) -> dict:
    """`plan` from the options `tensor_options` returned."""
    allowed = _allowed(compression)
    chosen = {}
    for o in options:
        best = o.best(allowed)
        if best != "none":
            chosen[(o.subgraph, o.index)] = Lut(lut_bits) if best == "lut" else "pruning"
    return chosen


def _allowed(compression) -> tuple[str, ...]:
    if compression not in MODES:
        raise ValueError(f"Argument `compression` must be one of {list(MODES)}. Received: "
                         f"compression={compression!r}")
    return ("pruning", "lut") if compression == "auto" else (compression,)


def compress_tflm(model: Model, encodings: Mapping) -> CompressedModel:
    """The model with the given tensors encoded for TFLite Micro's DECODE op.

    Args:
        model: an uncompressed .tflite (path or bytes).
        encodings: tensor -> encoding. A tensor is its name, its index in the first subgraph,
            or a (subgraph, index) pair; an encoding is "pruning", "lut", `Lut(bits)` or
            "none".

    Returns:
        A `CompressedModel`: the bytes and each compressible tensor's encoding.

    Raises:
        ValueError: an unknown tensor, a tensor that is not constant or cannot be decoded by
            TFLite Micro, an unknown encoding, a LUT width outside 1-7 or too narrow for the
            tensor's values, or a model that is compressed already.
    """
    if not isinstance(encodings, Mapping):
        raise ValueError(f"Argument `encodings` must map tensors to encodings, e.g. "
                         f"{{'dense/MatMul': 'pruning'}}. Received: encodings={encodings!r}")
    tree = edit.read(model)
    _check_not_compressed(tree)
    options = {(o.subgraph, o.index): o for o in _options_of(tree, None)}
    wanted = {}
    for key, value in encodings.items():
        where = _resolve(tree, key, options)
        spec = _spec(value)
        if spec != "none":
            wanted[where] = spec
    encoded = {where: _encode(tree, where, spec) for where, spec in wanted.items()}
    for g in sorted({g for g, _ in encoded}):
        _insert_decodes(tree, g, {t: e for (sg, t), e in encoded.items() if sg == g})
    tensors = tuple(_record(o, encoded.get(k)) for k, o in options.items() if not o.reason)
    return CompressedModel(edit.write(tree), tensors)


def _spec(value):
    if isinstance(value, Lut) or value in ("pruning", "none"):
        return value
    if value == "lut":
        return Lut()
    raise ValueError(f"An encoding must be 'pruning', 'lut', tfimp.export.Lut(bits) or 'none'. "
                     f"Received: {value!r}")


def _resolve(tree, key, options: dict) -> tuple[int, int]:
    where = _locate(tree, key)
    g, t = where
    tensor = tree.subgraphs[g].tensors[t]
    if edit.constant_data(tree, tensor) is None:
        raise ValueError(f"Argument `encodings` names tensor {edit.tensor_name(tensor)!r}, "
                         f"which is not a constant: its values are computed at run time. "
                         f"Compress weight tensors (see tfimp.export.inspect).")
    option = options.get(where)
    if option is None:
        raise ValueError(f"Tensor {edit.tensor_name(tensor)!r} is a constant that no op reads.")
    if option.reason:
        raise ValueError(f"Tensor {option.name!r} cannot be compressed for TFLite Micro: "
                         f"{option.reason}.")
    return where


def _locate(tree, key) -> tuple[int, int]:
    sgs = tree.subgraphs or []
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key):
        g, t = key
        if 0 <= g < len(sgs) and 0 <= t < len(sgs[g].tensors or []):
            return g, t
    elif isinstance(key, int) and not isinstance(key, bool):
        if sgs and 0 <= key < len(sgs[0].tensors or []):
            return 0, key
    elif isinstance(key, str):
        found = [(g, t) for g, sg in enumerate(sgs) for t, x in enumerate(sg.tensors or [])
                 if edit.tensor_name(x) == key]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(f"Tensor name {key!r} occurs {len(found)} times; name it as a "
                             f"(subgraph, index) pair: {found}.")
    raise ValueError(f"Argument `encodings` names no tensor of the model: {key!r}. Name a "
                     f"tensor by its name, its index, or a (subgraph, index) pair.")


def _check_not_compressed(tree) -> None:
    if any(edit.op_name(tree, op) == DECODE_OP
           for sg in tree.subgraphs or [] for op in sg.operators or []):
        raise ValueError("Argument `model` is compressed already (it holds TFLM_DECODE ops); "
                         "compress the uncompressed model, or decompress_tflm() it first.")


def _readers(tree, g: int) -> dict[int, list]:
    """Tensor index -> the (op name, input position) pairs that read it."""
    readers: dict[int, list] = {}
    for op in tree.subgraphs[g].operators or []:
        name = edit.op_name(tree, op)
        for pos, t in enumerate(op.inputs if op.inputs is not None else []):
            if t >= 0:
                readers.setdefault(int(t), []).append((name, pos))
    return readers


def _options_of(tree, lut_bits):
    owners: dict[int, list] = {}
    for sg in tree.subgraphs or []:
        for tensor in sg.tensors or []:
            owners.setdefault(tensor.buffer, []).append(edit.tensor_name(tensor))
    for g, sg in enumerate(tree.subgraphs or []):
        readers = _readers(tree, g)
        ends = set(sg.inputs if sg.inputs is not None else []) | set(
            sg.outputs if sg.outputs is not None else [])
        for t, tensor in enumerate(sg.tensors or []):
            values = edit.constant_array(tree, tensor)
            if values is None or t not in readers:
                continue
            reason = _reason(tensor, readers[t], t in ends, owners.get(tensor.buffer, []))
            yield _price(g, t, tensor, values, len(readers[t]), reason, lut_bits)


def _reason(tensor, readers, is_end: bool, owners: list) -> str:
    kind = edit.type_name(tensor)
    if kind not in _WEIGHT_TYPES + _BIAS_TYPES:
        return f"TFLite Micro decodes int8, int16 and float32 weights and int32 biases; this " \
               f"tensor is {kind.lower()}"
    if kind in _BIAS_TYPES and any(_BIAS_INPUT.get(op) != pos for op, pos in readers):
        return "an integer constant that is not a bias: kernels read such shape parameters " \
               "before any DECODE op has run"
    if is_end:
        return "it is an input or output of its subgraph"
    if len(owners) > 1:
        others = [n for n in owners if n != edit.tensor_name(tensor)] or owners[1:]
        return f"it shares its buffer with tensor {others[0]!r}, whose copy would stay dense"
    return ""


def _channels(tensor, dtype, shape) -> enc.Channels:
    q = tensor.quantization
    scales = list(q.scale) if q is not None and q.scale is not None else []
    zps = list(q.zeroPoint) if q is not None and q.zeroPoint is not None else []
    axis = int(q.quantizedDimension) if q is not None else 0
    return enc.channels_of(shape, dtype, scales, zps if scales else [], axis)


def _price(g, t, tensor, values, readers, reason, lut_bits) -> TensorOptions:
    name = edit.tensor_name(tensor)
    shape = tuple(int(s) for s in values.shape)
    pruning = lut = bits = None
    distinct = 0
    zero_fraction = float(np.mean(values == 0)) if values.size else 0.0
    try:
        channels = _channels(tensor, values.dtype, shape)
    except ValueError as e:
        reason = reason or str(e).rstrip(".")
    if not reason:
        tables, _ = enc.lut_tables(values, channels)
        distinct = max(len(x) for x in tables)
        pruning = enc.pruning_bytes(values, channels)
        lut = enc.lut_bytes(values, channels, lut_bits)
        bits = None if lut is None else (lut_bits or max(1, (distinct - 1).bit_length()))
    overhead = _TENSOR_OVERHEAD + 2 * len(name) + _READER_OVERHEAD * readers
    return TensorOptions(g, t, name, shape, values.dtype.name, readers, values.nbytes,
                         zero_fraction, distinct, pruning, lut, bits, overhead, reason)


def _encode(tree, where, spec) -> enc.Encoded:
    g, t = where
    tensor = tree.subgraphs[g].tensors[t]
    values = edit.constant_array(tree, tensor)
    channels = _channels(tensor, values.dtype, values.shape)
    if spec == "pruning":
        return enc.encode_pruning(values, channels)
    try:
        return enc.encode_lut(values, channels, spec.bits)
    except ValueError as e:
        raise ValueError(f"Tensor {edit.tensor_name(tensor)!r}: {e}") from None


def _record(option: TensorOptions, encoded: enc.Encoded | None) -> TensorEncoding:
    if encoded is None:
        return TensorEncoding(option.name, option.shape, option.dtype, "none", None,
                              option.dense_bytes, option.dense_bytes, 0)
    return TensorEncoding(option.name, option.shape, option.dtype, encoded.kind, encoded.bits,
                          option.dense_bytes, encoded.bytes, option.dense_bytes)


def _decode_opcode(tree) -> int:
    fb = schema()
    for i, code in enumerate(tree.operatorCodes or []):
        if code.customCode and code.customCode.decode() == DECODE_OP:
            return i
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    code.customCode = DECODE_OP.encode()
    code.version = 1
    tree.operatorCodes = list(tree.operatorCodes or []) + [code]
    return len(tree.operatorCodes) - 1


def _new_buffer(tree, data: bytes | None) -> int:
    buffer = schema().BufferT()
    buffer.data = None if data is None else np.frombuffer(data, np.uint8)
    tree.buffers = list(tree.buffers or []) + [buffer]
    return len(tree.buffers) - 1


def _empty_buffer(tree) -> int:
    first = tree.buffers[0] if tree.buffers else None
    if first is not None and (first.data is None or len(first.data) == 0):
        return 0
    return _new_buffer(tree, None)


def _uint8_tensor(name: bytes, length: int, buffer: int):
    fb = schema()
    tensor = fb.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [length], fb.TensorType.UINT8, \
        buffer, name
    return tensor


def _insert_decodes(tree, g: int, encoded: dict[int, enc.Encoded]) -> None:
    """Rewrites the tensors to their encoded bytes and puts a DECODE before each reader."""
    sg = tree.subgraphs[g]
    opcode = _decode_opcode(tree)
    empty = _empty_buffer(tree)
    templates, ancillary = {}, {}
    for t, e in encoded.items():
        tensor = sg.tensors[t]
        template = copy.deepcopy(tensor)
        template.buffer, template.name = empty, (tensor.name or b"") + b"_decoded"
        templates[t] = template
        tree.buffers[tensor.buffer].data = np.frombuffer(e.data, np.uint8)
        tensor.shape, tensor.shapeSignature = [len(e.data)], None
        tensor.type, tensor.quantization = schema().TensorType.UINT8, None
        anc = _uint8_tensor((tensor.name or b"") + b"_ancillary", len(e.ancillary),
                            _new_buffer(tree, e.ancillary))
        sg.tensors.append(anc)
        ancillary[t] = len(sg.tensors) - 1
    operators = []
    for op in sg.operators or []:
        reads = [t for t in dict.fromkeys(op.inputs if op.inputs is not None else [])
                 if t in encoded]
        if reads:
            operators.append(_decode_op(sg, opcode, op, reads, templates, ancillary))
        operators.append(op)
    sg.operators = operators


def _decode_op(sg, opcode, reader, reads, templates, ancillary):
    op = schema().OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [], []
    inputs = list(reader.inputs)
    for t in reads:
        sg.tensors.append(copy.deepcopy(templates[t]))
        decoded = len(sg.tensors) - 1
        op.inputs += [t, ancillary[t]]
        op.outputs.append(decoded)
        inputs = [decoded if x == t else x for x in inputs]
    reader.inputs = inputs
    return op


def decompress_tflm(model: Model) -> bytes:
    """The model with every DECODE op replaced by the constant it decodes.

    The result runs in LiteRT and in TFLite Micro without DECODE; its outputs equal those of
    the compressed model (the decoding mirrors TFLite Micro's decoders).
    """
    tree = edit.read(model)
    for sg in tree.subgraphs or []:
        kept = []
        for op in sg.operators or []:
            if edit.op_name(tree, op) != DECODE_OP:
                kept.append(op)
                continue
            for k, out in enumerate(op.outputs):
                values = _decoded(tree, sg, op.inputs[2 * k], op.inputs[2 * k + 1], out)
                sg.tensors[out].buffer = _new_buffer(tree, values.tobytes())
        sg.operators = kept
    edit.drop_unused_opcodes(tree)
    return edit.write(tree)


def _decoded(tree, sg, data_index: int, ancillary_index: int, out_index: int) -> np.ndarray:
    out = sg.tensors[out_index]
    dtype = edit.numpy_type(out)
    shape = tuple(int(s) for s in out.shape)
    data = edit.constant_data(tree, sg.tensors[data_index]) or b""
    ancillary = edit.constant_data(tree, sg.tensors[ancillary_index]) or b""
    return enc.decode(data, ancillary, shape, dtype, _channels(out, dtype, shape))


def read_encodings(model: Model) -> tuple[TensorEncoding, ...]:
    """The compressed tensors of a model with DECODE ops, read back from its ancillary data."""
    tree = edit.read(model)
    found = {}
    for sg in tree.subgraphs or []:
        for op in sg.operators or []:
            if edit.op_name(tree, op) != DECODE_OP:
                continue
            for k, out in enumerate(op.outputs):
                data_t, anc_t = sg.tensors[op.inputs[2 * k]], sg.tensors[op.inputs[2 * k + 1]]
                found.setdefault(edit.tensor_name(data_t), _read_one(tree, data_t, anc_t,
                                                                     sg.tensors[out]))
    return tuple(found.values())


def _read_one(tree, data_t, anc_t, out) -> TensorEncoding:
    data = edit.constant_data(tree, data_t) or b""
    ancillary = edit.constant_data(tree, anc_t) or b""
    kind = enc.decode_type(ancillary)
    shape = tuple(int(s) for s in out.shape)
    dtype = np.dtype(edit.numpy_type(out))
    dense = int(np.prod(shape)) * dtype.itemsize
    bits = ancillary[5] & 0x07 if kind == "lut" else None
    return TensorEncoding(edit.tensor_name(data_t), shape, dtype.name, kind, bits, dense,
                          len(data) + len(ancillary), dense)
