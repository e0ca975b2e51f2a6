"""Reads a .tflite flatbuffer into the schema's object tree and writes it back.

The object tree comes from the schema bindings that `ai-edge-litert` ships. Writing aligns
every buffer to 16 bytes, as the TFLite converter does (the schema's `force_align: 16`, which
the generated Python code ignores): kernels may read constants with wide loads.
"""

from __future__ import annotations

import numpy as np

from tfimp.export.inspect import read_model_bytes, schema

BUFFER_ALIGNMENT = 16
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32,
    "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64, "BOOL": np.bool_,
}


def read(model) -> object:
    """The `ModelT` object tree of a .tflite model given as a path or bytes.

    Raises:
        ValueError: not a TFLite flatbuffer, or a damaged one.
    """
    data = read_model_bytes(model)
    try:
        tree = schema().ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # a damaged flatbuffer fails anywhere in the generated readers
        raise ValueError(f"Argument `model` is a truncated or corrupted .tflite file "
                         f"({len(data)} bytes): {type(e).__name__}: {e}") from None
    if any(b.offset > 1 for b in tree.buffers or []):
        raise ValueError("The model keeps its buffers outside the flatbuffer (a model over "
                         "2 GB); it is far too large for a microcontroller.")
    return tree


def write(tree) -> bytes:
    """The .tflite bytes of a `ModelT` tree, every buffer aligned to 16 bytes."""
    import flatbuffers

    fb = schema()
    tree.buffers = [_aligned(b, fb) for b in tree.buffers or []]
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


_ALIGNED_CLASSES: dict = {}


def _aligned(buffer, fb):
    cls = _ALIGNED_CLASSES.get(fb)
    if cls is None:
        cls = _ALIGNED_CLASSES[fb] = type("AlignedBufferT", (fb.BufferT,), {"Pack": _pack_buffer})
    if isinstance(buffer, cls):
        return buffer
    out = cls()
    out.data, out.offset, out.size = buffer.data, buffer.offset, buffer.size
    return out


def _pack_buffer(self, builder):
    fb = schema()
    data = None
    if self.data is not None:
        raw = np.asarray(self.data, np.uint8).tobytes()
        # The vector's end is aligned and the builder pads the whole file to its largest
        # alignment, so the start lands on a 16-byte boundary of the finished file.
        builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
        builder.head -= len(raw)
        builder.Bytes[builder.head : builder.head + len(raw)] = raw
        builder.vectorNumElems = len(raw)
        data = builder.EndVector()
    fb.BufferStart(builder)
    if data is not None:
        fb.BufferAddData(builder, data)
    fb.BufferAddOffset(builder, self.offset)
    fb.BufferAddSize(builder, self.size)
    return fb.BufferEnd(builder)


def type_name(tensor) -> str:
    """The tensor's TensorType name, e.g. "INT8"."""
    names = {v: k for k, v in vars(schema().TensorType).items()
             if not k.startswith("_") and isinstance(v, int)}
    return names.get(tensor.type, "?")


def numpy_type(tensor):
    """The numpy type of the tensor's elements, or None for types numpy lacks."""
    return _NUMPY_TYPES.get(type_name(tensor))


def constant_data(tree, tensor) -> bytes | None:
    """The bytes of a constant tensor's buffer; None for tensors computed at run time."""
    if tensor.buffer <= 0 or tensor.buffer >= len(tree.buffers or []):
        return None
    data = tree.buffers[tensor.buffer].data
    return None if data is None or len(data) == 0 else np.asarray(data, np.uint8).tobytes()


def constant_array(tree, tensor) -> np.ndarray | None:
    """The values of a constant tensor in its shape, or None."""
    data, dtype = constant_data(tree, tensor), numpy_type(tensor)
    if data is None or dtype is None:
        return None
    shape = tuple(int(s) for s in (tensor.shape if tensor.shape is not None else ()))
    return np.frombuffer(data, dtype).reshape(shape)


def op_name(tree, op) -> str:
    """The builtin op name (e.g. "CONV_2D"), or the custom code of a custom op."""
    fb = schema()
    code = tree.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items()
             if not k.startswith("_") and isinstance(v, int)}
    name = names.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM" and code.customCode:
        return code.customCode.decode()
    return name


def drop_unused_opcodes(tree) -> None:
    """Removes the operator codes no op uses any more (after ops were rewritten), renumbering
    the ops' opcode indices."""
    used = sorted({op.opcodeIndex for sg in tree.subgraphs or [] for op in sg.operators or []})
    remap = {old: new for new, old in enumerate(used)}
    tree.operatorCodes = [tree.operatorCodes[i] for i in used]
    for sg in tree.subgraphs or []:
        for op in sg.operators or []:
            op.opcodeIndex = remap[op.opcodeIndex]


def tensor_name(tensor) -> str:
    return tensor.name.decode(errors="replace") if tensor.name else ""
