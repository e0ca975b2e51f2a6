"""Gives every sparse constant tensor of a .tflite file the DENSIFY op that decodes it.

The TFLite converter (TensorFlow 2.21) stores a pruned weight in its sparse encoding and puts
a DENSIFY op between it and the ops that read it. With float16 weights it can leave one
sparse tensor out: its DEQUANTIZE reads the encoded values as if they were dense, and LiteRT
(every kernel set, XNNPACK included) returns NaN. Seen on LeNet-300-100 at 97% sparsity, where
the first layer's 300x784 kernel got no DENSIFY while the two other layers did.
`add_missing_densify` inserts the op the converter left out, the way it inserts the others:
the sparse tensor stays as it is and is decoded once, when the interpreter prepares the model.
"""

from __future__ import annotations

from tfimp.export import tflite_edit
from tfimp.export.inspect import schema

__all__ = ["add_missing_densify"]

# Ops whose kernels read the sparse encoding themselves: DENSIFY, and FULLY_CONNECTED (LiteRT's
# sparse kernels: float32, and int8 in 1x16 blocks). Any other op reading a sparse constant
# reads encoded values as dense ones.
_READS_SPARSE = ("DENSIFY", "FULLY_CONNECTED")


def add_missing_densify(model: bytes) -> tuple[bytes, list[str]]:
    """`model` with a DENSIFY op in front of every op that reads a sparse constant but cannot
    decode it (every op but DENSIFY and FULLY_CONNECTED).

    Returns:
        The repaired .tflite bytes (the input itself when nothing was missing) and the names
        of the tensors that got a DENSIFY op.
    """
    tree = tflite_edit.read(model)
    fixed: list[str] = []
    for graph in tree.subgraphs or []:
        fixed += _repair(tree, graph)
    if not fixed:
        return model, []
    return tflite_edit.write(tree), fixed


def _repair(tree, graph) -> list[str]:
    ops = list(graph.operators or [])
    sparse = {i for i, t in enumerate(graph.tensors or [])
              if t.sparsity is not None and tflite_edit.constant_data(tree, t) is not None}
    readers = {}
    for op in ops:
        if tflite_edit.op_name(tree, op) in _READS_SPARSE:
            continue
        for i in op.inputs if op.inputs is not None else ():
            if int(i) in sparse:
                readers.setdefault(int(i), []).append(op)
    if not readers:
        return []
    fb = schema()
    opcode = _densify_opcode(tree, fb)
    added, names = [], []
    for index, users in sorted(readers.items()):
        source = graph.tensors[index]
        out = fb.TensorT()
        out.shape, out.type = source.shape, source.type
        out.name = (source.name or b"") + b"/densified"
        out.buffer = len(tree.buffers)
        tree.buffers.append(fb.BufferT())
        graph.tensors.append(out)
        new_index = len(graph.tensors) - 1
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode, [index], [new_index]
        added.append(op)
        for user in users:
            user.inputs = [new_index if int(i) == index else int(i) for i in user.inputs]
        names.append(tflite_edit.tensor_name(source))
    graph.operators = added + ops  # decoded first, as the converter orders its own
    return names


def _densify_opcode(tree, fb) -> int:
    for i, code in enumerate(tree.operatorCodes or []):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.DENSIFY:
            return i
    code = fb.OperatorCodeT()
    code.builtinCode = fb.BuiltinOperator.DENSIFY
    code.deprecatedBuiltinCode = min(fb.BuiltinOperator.DENSIFY, 127)
    code.version = 1
    tree.operatorCodes.append(code)
    return len(tree.operatorCodes) - 1
