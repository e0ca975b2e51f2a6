"""Re-encodes the sparse constants that a DENSIFY op decodes in their smallest TFLite encoding.

The TFLite converter stores a pruned weight in 1xN blocks when its zeros allow, and every
kept block holds its zeros too: LeNet-300-100's 300x784 float16 kernel at 97.4% sparsity takes
7.6 B per non-zero in 1x4 blocks. A DENSIFY op decodes any encoding of TFLite's
`SparsityParameters` into the same dense tensor when the interpreter prepares the model
(the builtin kernel and the XNNPACK delegate alike), so such tensors can be written in plain
CSR instead: one dense dimension, one sparse dimension, no block map, index vectors of the
narrowest type that holds them (uint8, uint16 or int32). `compact_densified` writes, per tensor,
the smallest of the converter's encoding and CSR along each dimension, and checks that the new
encoding decodes to the very same values.

Not re-encoded: sparse constants that an op other than DENSIFY reads (LiteRT's sparse
FULLY_CONNECTED kernels accept only the encodings the converter writes for them). Blocks are
never made sparse inside: LiteRT reads the block size of a blocked dimension from its
`dense_size`, which it loads for DENSE dimensions only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfimp.export import tflite_edit
from tfimp.export.inspect import schema

__all__ = ["Reencoded", "compact_densified", "decode", "encoded_bytes"]

_DENSE, _CSR = 0, 1
_INDEX_TYPES = ((np.uint8, "Uint8Vector"), (np.uint16, "Uint16Vector"),
                (np.int32, "Int32Vector"))


@dataclasses.dataclass(frozen=True)
class Reencoded:
    """One tensor written in a smaller encoding: its name and bytes before and after."""

    name: str
    before: int
    after: int


def compact_densified(model: bytes) -> tuple[bytes, list[Reencoded]]:
    """`model` with every sparse constant that only DENSIFY ops read in its smallest encoding.

    Returns:
        The .tflite bytes (the input itself when no encoding was smaller) and the tensors that
        were re-encoded.
    """
    tree = tflite_edit.read(model)
    done: list[Reencoded] = []
    for graph in tree.subgraphs or []:
        for index in _densified(tree, graph):
            change = _compact(tree, graph.tensors[index])
            if change is not None:
                done.append(change)
    if not done:
        return model, []
    return tflite_edit.write(tree), done


def decode(tree, tensor) -> np.ndarray:
    """The dense values of a sparse constant tensor, decoded as LiteRT's DENSIFY does."""
    values = np.frombuffer(tflite_edit.constant_data(tree, tensor), tflite_edit.numpy_type(tensor))
    shape = [int(s) for s in tensor.shape]
    sp = tensor.sparsity
    order = [int(d) for d in sp.traversalOrder]
    block_map = [int(d) for d in (sp.blockMap if sp.blockMap is not None else [])]
    metas = list(sp.dimMetadata)
    positions = np.zeros(1, np.int64)
    coords: dict[int, np.ndarray] = {}
    for meta in metas:
        if meta.format == _DENSE:
            size = int(meta.denseSize)
            coords = {d: np.repeat(c, size) for d, c in coords.items()}
            step = np.tile(np.arange(size, dtype=np.int64), len(positions))
            positions = np.repeat(positions, size) * size + step
        else:
            segments = np.asarray(meta.arraySegments.values, np.int64)
            counts = segments[positions + 1] - segments[positions]
            starts = np.repeat(segments[positions], counts)
            offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            coords = {d: np.repeat(c, counts) for d, c in coords.items()}
            positions = starts + offsets
            step = np.asarray(meta.arrayIndices.values, np.int64)[positions]
        coords[len(coords)] = step
    if len(positions) != len(values):
        raise ValueError(f"Sparse tensor {tflite_edit.tensor_name(tensor)} holds {len(values)} "
                         f"values but its index arrays address {len(positions)}.")
    index = [coords[order.index(d)] for d in range(len(shape))]
    for k, dim in enumerate(block_map):
        level = order.index(len(shape) + k)
        index[dim] = index[dim] * int(metas[level].denseSize) + coords[level]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(index)] = values[positions]
    return dense


def encoded_bytes(tensor, values_bytes: int) -> int:
    """The bytes a sparse tensor takes: its values and its index vectors."""
    total = values_bytes
    for meta in tensor.sparsity.dimMetadata:
        for vec in (meta.arraySegments, meta.arrayIndices):
            if vec is not None and vec.values is not None:
                total += np.asarray(vec.values).nbytes
    return total


def _densified(tree, graph) -> list[int]:
    """The sparse constants of `graph` that DENSIFY ops alone read."""
    readers: dict[int, set[str]] = {}
    for op in graph.operators or []:
        name = tflite_edit.op_name(tree, op)
        for i in op.inputs if op.inputs is not None else ():
            readers.setdefault(int(i), set()).add(name)
    return [i for i, t in enumerate(graph.tensors or [])
            if t.sparsity is not None and readers.get(i) == {"DENSIFY"}
            and tflite_edit.constant_data(tree, t) is not None
            and tflite_edit.numpy_type(t) is not None]


def _compact(tree, tensor) -> Reencoded | None:
    """Writes `tensor` in its smallest CSR encoding if that is smaller and decodes to the same
    values; an encoding this module cannot read stays as it is."""
    try:
        dense = decode(tree, tensor)
    except (ValueError, IndexError):
        return None
    before = encoded_bytes(tensor, len(tflite_edit.constant_data(tree, tensor)))
    size, sparsity, values = min((_csr(dense, d) for d in range(dense.ndim)),
                                 key=lambda e: e[0])
    if size >= before:
        return None
    buffer = tree.buffers[tensor.buffer]
    old = tensor.sparsity, buffer.data
    tensor.sparsity = sparsity
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    if not np.array_equal(decode(tree, tensor), dense):  # never write a tensor that changed
        tensor.sparsity, buffer.data = old
        return None
    return Reencoded(tflite_edit.tensor_name(tensor), before, size)


def _csr(dense: np.ndarray, sparse_dim: int) -> tuple[int, object, np.ndarray]:
    """CSR with `sparse_dim` compressed and the other dimensions dense, in their order:
    (its bytes, its `SparsityParametersT`, its values)."""
    fb = schema()
    order = [d for d in range(dense.ndim) if d != sparse_dim] + [sparse_dim]
    rows = np.transpose(dense, order).reshape(-1, dense.shape[sparse_dim])
    row_of, column = np.nonzero(rows)
    values = rows[row_of, column]
    segments = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=len(rows)))])
    metas = []
    for d in order[:-1]:
        meta = fb.DimensionMetadataT()
        meta.format, meta.denseSize = _DENSE, int(dense.shape[d])
        metas.append(meta)
    meta = fb.DimensionMetadataT()
    meta.format = _CSR
    meta.arraySegmentsType, meta.arraySegments = _index_vector(fb, segments)
    meta.arrayIndicesType, meta.arrayIndices = _index_vector(fb, column)
    metas.append(meta)
    sparsity = fb.SparsityParametersT()
    sparsity.traversalOrder, sparsity.blockMap, sparsity.dimMetadata = order, [], metas
    size = values.nbytes + meta.arraySegments.values.nbytes + meta.arrayIndices.values.nbytes
    return size, sparsity, values


def _index_vector(fb, values: np.ndarray) -> tuple[int, object]:
    top = int(values.max()) if len(values) else 0
    dtype, name = next((t, n) for t, n in _INDEX_TYPES if top <= np.iinfo(t).max)
    vec = getattr(fb, f"{name}T")()
    vec.values = np.asarray(values, dtype)
    return getattr(fb.SparseIndexVector, name), vec
