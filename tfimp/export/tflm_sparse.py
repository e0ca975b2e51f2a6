"""Rewrites FULLY_CONNECTED ops of an int8 .tflite to tfimp's sparse kernel, and back.

A rewritten op is the custom op `TFIMP_SPARSE_FC` with the same inputs (activations, weights,
bias) and output; its weight tensor keeps its place but holds the compressed-row bytes of
`tfimp.export.sparse_fc` (uint8, one dimension), the activation included. Nothing is decoded
into the arena, so the model needs the dense model's arena and flash close to its non-zeros.

TFLite Micro's Python interpreter has no such op. `densify` turns the model back into the
dense one (the "stand-in": same tensors, same ops, builtin FULLY_CONNECTED), which TFLM runs;
`check_mirror` runs the stand-in with every rewritten op's input and output exposed and
computes each op with the kernel's numpy mirror from those very inputs: equal outputs, op by
op, mean the sparse model computes what the dense one does, bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfimp.export import sparse_fc
from tfimp.export import tflite_edit as edit
from tfimp.export.inspect import schema

OP = sparse_fc.OP
_FC = "FULLY_CONNECTED"


@dataclasses.dataclass(frozen=True)
class SparseOption:
    """One FULLY_CONNECTED op's weights: dense and sparse bytes, and why it may not apply."""

    subgraph: int
    op: int
    index: int  # the weight tensor
    name: str
    shape: tuple[int, ...]
    dense_bytes: int
    sparse_bytes: int | None
    zero_fraction: float
    reason: str = ""

    @property
    def saves(self) -> bool:
        return not self.reason and self.sparse_bytes < self.dense_bytes


def has_sparse(model) -> bool:
    """Whether the model holds sparse FULLY_CONNECTED ops."""
    tree = edit.read(model)
    return any(edit.op_name(tree, op) == OP for sg in tree.subgraphs or []
               for op in sg.operators or [])


def sparse_options(model) -> tuple[SparseOption, ...]:
    """Every FULLY_CONNECTED op of the main subgraph and what the sparse kernel would store."""
    tree = edit.read(model)
    sg = tree.subgraphs[0]
    readers: dict[int, int] = {}
    for op in sg.operators or []:
        for t in op.inputs if op.inputs is not None else []:
            readers[int(t)] = readers.get(int(t), 0) + 1
    buffers: dict[int, int] = {}
    for tensor in sg.tensors or []:
        buffers[tensor.buffer] = buffers.get(tensor.buffer, 0) + 1
    out = []
    for k, op in enumerate(sg.operators or []):
        if edit.op_name(tree, op) != _FC:
            continue
        t = int(op.inputs[1])
        tensor = sg.tensors[t]
        values = edit.constant_array(tree, tensor)
        reason = _reason(tree, sg, op, values, readers.get(t, 0), buffers.get(tensor.buffer, 0))
        dense = 0 if values is None else values.nbytes
        zeros = 0.0 if values is None or not values.size else float(np.mean(values == 0))
        stored = None if reason else sparse_fc.stored_bytes(values, len(_scales(tensor)))
        out.append(SparseOption(0, k, t, edit.tensor_name(tensor),
                                () if values is None else tuple(values.shape), dense, stored,
                                zeros, reason))
    return tuple(out)


def _reason(tree, sg, op, values, readers: int, owners: int) -> str:
    types = [edit.type_name(sg.tensors[op.inputs[0]]), edit.type_name(sg.tensors[op.outputs[0]])]
    if types != ["INT8", "INT8"]:
        return f"the sparse kernel takes int8 activations; this op has {types[0].lower()} in " \
               f"and {types[1].lower()} out"
    tensor = sg.tensors[op.inputs[1]]
    if values is None or values.dtype != np.int8 or values.ndim != 2:
        return "its weights are not a constant 2-D int8 tensor"
    q = tensor.quantization
    if q is not None and q.zeroPoint is not None and np.any(np.asarray(q.zeroPoint) != 0):
        return "its weights have non-zero zero points"
    if values.shape[1] > sparse_fc.MAX_COLUMNS:
        return f"more than {sparse_fc.MAX_COLUMNS} input columns"
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    if bias >= 0 and edit.type_name(sg.tensors[bias]) != "INT32":
        return "its bias is not int32"
    options = op.builtinOptions
    if options is not None and (options.fusedActivationFunction not in sparse_fc.ACTIVATIONS
                                or options.weightsFormat != 0):
        return "its activation or weights format is one the sparse kernel lacks"
    if readers != 1 or owners != 1:
        return "its weights are shared with another op or tensor"
    return ""


def tensors_read_by(model, ops) -> set[tuple[int, int]]:
    """(subgraph, tensor) of every input of the main subgraph's `ops` (op indices)."""
    sg = edit.read(model).subgraphs[0]
    return {(0, int(t)) for k in ops for t in sg.operators[k].inputs if t >= 0}


def _scales(tensor) -> list[float]:
    q = tensor.quantization
    return list(q.scale) if q is not None and q.scale is not None and len(q.scale) else [1.0]


def sparsify(model, weights) -> bytes:
    """The model with the FULLY_CONNECTED ops that read `weights` rewritten to the sparse op.

    Args:
        model: a .tflite path or bytes.
        weights: weight tensors, as (subgraph, index) pairs; each must be a usable option.

    Raises:
        ValueError: a tensor that is not the weights of a FULLY_CONNECTED op the kernel runs.
    """
    wanted = {tuple(w) for w in weights}
    options = {(o.subgraph, o.index): o for o in sparse_options(model)}
    for w in wanted:
        o = options.get(w)
        if o is None or o.reason:
            why = "not the weights of a FULLY_CONNECTED op" if o is None else o.reason
            raise ValueError(f"Tensor {w} cannot use the sparse FULLY_CONNECTED kernel: {why}.")
    tree = edit.read(model)
    sg = tree.subgraphs[0]
    code = _opcode(tree)
    for w in wanted:
        op = sg.operators[options[w].op]
        tensor = sg.tensors[w[1]]
        values = edit.constant_array(tree, tensor)
        opts = op.builtinOptions
        blob = sparse_fc.encode(values, _scales(tensor),
                                0 if opts is None else int(opts.fusedActivationFunction),
                                bool(opts is not None and opts.keepNumDims))
        tree.buffers[tensor.buffer].data = np.frombuffer(blob, np.uint8)
        tensor.shape, tensor.shapeSignature = [len(blob)], None
        tensor.type, tensor.quantization = schema().TensorType.UINT8, None
        op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = code, 0, None
        op.customOptions = None
    return edit.write(tree)


def _opcode(tree, custom: str | None = OP) -> int:
    fb = schema()
    for i, c in enumerate(tree.operatorCodes or []):
        name = c.customCode.decode() if c.customCode else None
        builtin = max(c.builtinCode, c.deprecatedBuiltinCode)
        if (custom is not None and name == custom) or (
                custom is None and builtin == fb.BuiltinOperator.FULLY_CONNECTED):
            return i
    code = fb.OperatorCodeT()
    if custom is None:
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    else:
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        code.customCode = custom.encode()
    code.version = 1
    tree.operatorCodes = list(tree.operatorCodes or []) + [code]
    return len(tree.operatorCodes) - 1


def densify(model) -> bytes:
    """The model with every sparse op back as a builtin FULLY_CONNECTED with int8 weights."""
    fb = schema()
    tree = edit.read(model)
    for sg in tree.subgraphs or []:
        for op in sg.operators or []:
            if edit.op_name(tree, op) != OP:
                continue
            tensor = sg.tensors[op.inputs[1]]
            w = sparse_fc.read(edit.constant_data(tree, tensor) or b"")
            tree.buffers[tensor.buffer].data = np.frombuffer(w.dense().tobytes(), np.uint8)
            tensor.shape, tensor.type = [w.rows, w.columns], fb.TensorType.INT8
            q = fb.QuantizationParametersT()
            q.scale = [float(s) for s in w.scales]
            q.zeroPoint, q.quantizedDimension = [0] * len(w.scales), 0
            tensor.quantization = q
            options = fb.FullyConnectedOptionsT()
            options.fusedActivationFunction, options.keepNumDims = w.activation, w.keep_num_dims
            op.opcodeIndex = _opcode(tree, None)
            op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
            op.builtinOptions = options
    edit.drop_unused_opcodes(tree)
    return edit.write(tree)


def sparse_ops(model) -> list[tuple[int, list, list, bytes]]:
    """(op index, inputs, outputs, weight bytes) of each sparse op of the main subgraph."""
    tree = edit.read(model)
    sg = tree.subgraphs[0]
    return [(k, list(op.inputs), list(op.outputs),
             edit.constant_data(tree, sg.tensors[op.inputs[1]]) or b"")
            for k, op in enumerate(sg.operators or []) if edit.op_name(tree, op) == OP]


def encodings(model) -> dict[str, tuple]:
    """Weight tensor name -> (shape, dense bytes, stored bytes) of each sparse op."""
    tree = edit.read(model)
    found = {}
    for sg in tree.subgraphs or []:
        for op in sg.operators or []:
            if edit.op_name(tree, op) == OP:
                tensor = sg.tensors[op.inputs[1]]
                blob = edit.constant_data(tree, tensor) or b""
                w = sparse_fc.read(blob)
                found[edit.tensor_name(tensor)] = ((w.rows, w.columns), w.rows * w.columns,
                                                   len(blob))
    return found


class MirrorMismatch(ValueError):
    """The numpy mirror of the sparse kernel differs from TFLM's dense FULLY_CONNECTED."""


def check_mirror(model, stand_in: bytes, xs, run) -> int:
    """Checks every sparse op of `model` against TFLM running `stand_in` (its `densify`).

    Args:
        model: the sparse model (bytes).
        stand_in: `densify(model)`.
        xs: batch-first inputs.
        run: `run_micro`-like callable (model bytes, inputs) -> outputs.

    Returns:
        The number of op outputs compared (values).

    Raises:
        MirrorMismatch: an op's mirror output differs from the dense op's.
    """
    ops = sparse_ops(model)
    tree = edit.read(stand_in)
    sg = tree.subgraphs[0]
    inputs = [int(i) for i in sg.inputs]
    wanted = [t for _, ins, outs, _ in ops for t in (ins[0], outs[0]) if t not in inputs]
    exposed, extra = _expose(tree, wanted)
    outputs = run(exposed, xs)
    first = len(sg.outputs)
    values = {t: _raw_input(xs[k], sg.tensors[t]) for k, t in enumerate(inputs)}
    values.update({int(t): np.asarray(outputs[k]) for k, t in enumerate(sg.outputs)})
    values.update({t: np.asarray(outputs[first + k]) for k, t in enumerate(extra)})
    compared = 0
    for k, ins, outs, blob in ops:
        bias = None
        if len(ins) > 2 and ins[2] >= 0:
            bias = edit.constant_array(tree, sg.tensors[ins[2]])
        got = sparse_fc.fully_connected(blob, values[ins[0]], bias,
                                        _quant(sg.tensors[ins[0]]), _quant(sg.tensors[outs[0]]))
        want = values[outs[0]].reshape(got.shape)
        if not np.array_equal(got, want):
            bad = int(np.count_nonzero(got != want))
            raise MirrorMismatch(f"The sparse FULLY_CONNECTED op {k} "
                                 f"({edit.tensor_name(sg.tensors[outs[0]])!r}) differs from "
                                 f"TFLite Micro's dense op in {bad} of {got.size} values.")
        compared += got.size
    return compared


def _raw_input(x, tensor) -> np.ndarray:
    """An input as the interpreter received it: float inputs quantized as the runner does."""
    from tfimp.export._child import quantize

    dtype = edit.numpy_type(tensor)
    q = tensor.quantization
    qp = {} if q is None or q.scale is None else {
        "scales": np.asarray(q.scale, np.float32), "zero_points": np.asarray(q.zeroPoint)}
    return quantize(np.asarray(x), {"dtype": dtype, "quantization_parameters": qp})


def _expose(tree, wanted: list[int]) -> tuple[bytes, list[int]]:
    """The model with `wanted` tensors appended to the main subgraph's outputs."""
    sg = tree.subgraphs[0]
    have = [int(t) for t in sg.outputs]
    extra = [t for t in dict.fromkeys(wanted) if t not in have]
    sg.outputs = have + extra
    data = edit.write(tree)
    sg.outputs = have
    return data, extra


def _quant(tensor) -> sparse_fc.Quant:
    q = tensor.quantization
    return sparse_fc.Quant(float(np.float32(q.scale[0])), int(q.zeroPoint[0]))
