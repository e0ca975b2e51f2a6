"""The sparse int8 FULLY_CONNECTED operator: its weight format and a numpy mirror of its kernel.

The custom op `TFIMP_SPARSE_FC` (C++ in `deploy/micro/sparse_fully_connected.cc`) reads its
weights from one uint8 constant tensor in a compressed-row format and never writes them out
dense: flash holds the non-zeros and their column indices, the arena only the activations.
Its arithmetic is TensorFlow Lite Micro's reference int8 FULLY_CONNECTED (`QuantizeMultiplier`,
`MultiplyByQuantizedMultiplier` with double rounding, the same zero points and activation
clamp), so its outputs equal the dense int8 op's bit for bit. `fully_connected` below computes
exactly what the C++ kernel computes, so a file can be checked without a compiler.

Layout, little-endian, every array aligned to its element size (the blob is 16-byte aligned):

- header, 24 bytes: magic `TSFC`, format version (1), index bytes (1 or 2), the fused
  activation (the schema's ActivationFunctionType: 0 none, 1 relu, 2 relu_n1_to_1, 3 relu6),
  flags (bit 0: keep_num_dims), then uint32 rows (output channels), columns (input depth),
  non-zeros and scales (1: per-tensor, or one per row).
- float32 weight scales, one per scale.
- uint16 non-zeros per row.
- the non-zeros' column indices, row after row (uint8 when columns <= 256, else uint16).
- the non-zeros' int8 values, in the same order.
"""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np

OP = "TFIMP_SPARSE_FC"
MAGIC = b"TSFC"
VERSION = 1
HEADER_BYTES = 24
ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
MAX_COLUMNS = (1 << 16) - 1  # uint16 indices and per-row counts
_HEADER = struct.Struct("<4sBBBBIIII")


@dataclasses.dataclass(frozen=True)
class SparseWeights:
    """A weight matrix [rows, columns] in the operator's format, read back."""

    rows: int
    columns: int
    index_bytes: int
    activation: int
    keep_num_dims: bool
    scales: np.ndarray  # float32, 1 or `rows`
    counts: np.ndarray  # uint16 per row
    indices: np.ndarray  # uint8/uint16 per non-zero
    values: np.ndarray  # int8 per non-zero

    def dense(self) -> np.ndarray:
        """The int8 weights [rows, columns], zeros included."""
        out = np.zeros((self.rows, self.columns), np.int8)
        rows = np.repeat(np.arange(self.rows), self.counts.astype(np.int64))
        out[rows, self.indices.astype(np.int64)] = self.values
        return out


def stored_bytes(weights: np.ndarray, scales: int) -> int:
    """Bytes of the encoded tensor for int8 `weights` [rows, columns] with `scales` scales."""
    rows, columns = weights.shape
    nnz = int(np.count_nonzero(weights))
    return HEADER_BYTES + 4 * scales + 2 * rows + nnz * (_index_bytes(columns) + 1)


def _index_bytes(columns: int) -> int:
    return 1 if columns <= 256 else 2


def encode(weights: np.ndarray, scales, activation: int = 0,
           keep_num_dims: bool = False) -> bytes:
    """The operator's weight tensor for int8 `weights` [rows, columns] and their scales.

    Raises:
        ValueError: weights that are not a 2-D int8 matrix, more than 65,536 columns, scales
            that are neither one nor one per row, or an activation the kernel lacks.
    """
    weights = np.asarray(weights)
    if weights.dtype != np.int8 or weights.ndim != 2:
        raise ValueError(f"The sparse FULLY_CONNECTED kernel takes 2-D int8 weights. Received "
                         f"a {weights.dtype} array of shape {weights.shape}.")
    rows, columns = weights.shape
    if columns > MAX_COLUMNS:
        raise ValueError(f"The sparse FULLY_CONNECTED kernel reads at most {MAX_COLUMNS} "
                         f"input columns with 16 bits; these weights have {columns}.")
    scales = np.asarray(scales, np.float32).reshape(-1)
    if scales.size not in (1, rows):
        raise ValueError(f"Weights with {rows} rows need 1 or {rows} scales; received "
                         f"{scales.size}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"The sparse FULLY_CONNECTED kernel applies the activations "
                         f"{ACTIVATIONS}; received activation code {activation}.")
    keep = weights != 0
    index_type = "<u1" if _index_bytes(columns) == 1 else "<u2"
    nnz = int(keep.sum())
    header = _HEADER.pack(MAGIC, VERSION, _index_bytes(columns), activation,
                          int(bool(keep_num_dims)), rows, columns, nnz, scales.size)
    return b"".join([header, scales.astype("<f4").tobytes(),
                     keep.sum(axis=1).astype("<u2").tobytes(),
                     np.nonzero(keep)[1].astype(index_type).tobytes(), weights[keep].tobytes()])


def read(blob: bytes) -> SparseWeights:
    """The weights in an encoded tensor.

    Raises:
        ValueError: not this format, another version, or a length that does not add up.
    """
    blob = bytes(blob)
    if len(blob) < HEADER_BYTES or blob[:4] != MAGIC:
        raise ValueError("The tensor is not in the sparse FULLY_CONNECTED format (no TSFC "
                         "header).")
    _, version, ib, act, flags, rows, columns, nnz, nscales = _HEADER.unpack_from(blob)
    if version != VERSION or ib not in (1, 2) or act not in ACTIVATIONS:
        raise ValueError(f"Sparse FULLY_CONNECTED header: version {version}, {ib}-byte "
                         f"indices, activation {act}; tfimp reads version {VERSION} with 1- "
                         f"or 2-byte indices and activations {sorted(ACTIVATIONS)}.")
    want = HEADER_BYTES + 4 * nscales + 2 * rows + nnz * (ib + 1)
    if len(blob) != want or nscales not in (1, rows):
        raise ValueError(f"The sparse FULLY_CONNECTED tensor holds {len(blob)} bytes; its "
                         f"header ({rows} rows, {nnz} non-zeros, {nscales} scales) needs "
                         f"{want}.")
    at = HEADER_BYTES
    scales = np.frombuffer(blob, "<f4", nscales, at).astype(np.float32)
    at += 4 * nscales
    counts = np.frombuffer(blob, "<u2", rows, at)
    at += 2 * rows
    indices = np.frombuffer(blob, "<u1" if ib == 1 else "<u2", nnz, at)
    values = np.frombuffer(blob, np.int8, nnz, at + ib * nnz)
    if int(counts.sum()) != nnz or (nnz and int(indices.max()) >= columns):
        raise ValueError("The sparse FULLY_CONNECTED tensor's row counts or column indices "
                         "do not match its header.")
    return SparseWeights(rows, columns, ib, act, bool(flags & 1), scales, counts, indices,
                         values)


@dataclasses.dataclass(frozen=True)
class Quant:
    """A tensor's per-tensor quantization, as float32 scale and integer zero point."""

    scale: float
    zero_point: int


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's `QuantizeMultiplier`: `real` as a Q31 multiplier and a power-of-two shift."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound; q * 2**31 is exact here
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def multipliers(weights: SparseWeights, input_q: Quant, output_q: Quant):
    """Per row, the multiplier and shift TFLM's FULLY_CONNECTED Prepare computes."""
    f32 = np.float32
    out = []
    for scale in weights.scales:
        if weights.scales.size == 1:  # per-tensor: the product is taken in float32
            real = float(f32(f32(input_q.scale) * f32(scale))) / float(f32(output_q.scale))
        else:
            real = float(f32(input_q.scale)) * float(f32(scale)) / float(f32(output_q.scale))
        out.append(quantize_multiplier(real))
    m = np.array([x[0] for x in out], np.int64)
    s = np.array([x[1] for x in out], np.int64)
    if m.size == 1:
        m, s = np.repeat(m, weights.rows), np.repeat(s, weights.rows)
    return m, s


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray,
                                     shift: np.ndarray) -> np.ndarray:
    """TFLite's double-rounding `MultiplyByQuantizedMultiplier` (gemmlowp), elementwise."""
    x = np.asarray(x, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = _wrap32(x * (np.int64(1) << left))
    b = np.asarray(multiplier, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    high = _wrap32(np.sign(num) * (np.abs(num) >> 31))  # C++ division truncates toward 0
    high = np.where((a == b) & (a == -(1 << 31)), (1 << 31) - 1, high)
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def activation_range(activation: int, output_q: Quant) -> tuple[int, int]:
    """TFLite's `CalculateActivationRangeQuantized` for an int8 output."""
    def q(f: float) -> int:
        t = float(np.float32(f) / np.float32(output_q.scale))
        return output_q.zero_point + int(math.copysign(math.floor(abs(t) + 0.5), t))

    low, high = -128, 127
    if activation == 1:
        return max(low, q(0.0)), high
    if activation == 3:
        return max(low, q(0.0)), min(high, q(6.0))
    if activation == 2:
        return max(low, q(-1.0)), min(high, q(1.0))
    return low, high


def fully_connected(blob: bytes, x: np.ndarray, bias: np.ndarray | None, input_q: Quant,
                    output_q: Quant) -> np.ndarray:
    """What the C++ kernel writes: int8 outputs [batches, rows] for int8 inputs `x`.

    `x` holds any shape whose size is a multiple of the weights' columns.
    """
    w = read(blob)
    xs = np.asarray(x, np.int8).reshape(-1, w.columns).astype(np.int64) - input_q.zero_point
    # Exact in int64; the kernel's int32 sums wrap the same way, in any order.
    acc = xs @ w.dense().astype(np.int64).T
    if bias is not None:
        acc += np.asarray(bias, np.int64).reshape(1, -1)
    acc = _wrap32(acc)
    m, s = multipliers(w, input_q, output_q)
    out = multiply_by_quantized_multiplier(acc, m[None, :], s[None, :]) + output_q.zero_point
    low, high = activation_range(w.activation, output_q)
    return np.clip(out, low, high).astype(np.int8)
