"""TensorFlow Lite Micro's DECODE encodings of one constant tensor, as pure array functions.

A compressed tensor is stored as two byte strings: the encoded data (the tensor's own buffer)
and the ancillary data (a second constant tensor). The DECODE op (`TFLM_DECODE`) reads both
and writes the plain tensor into the arena. Layout, as TFLM's decoders read it
(`kernels/decode_state.h`, `decode_state_lut.cc`, `decode_state_prune.cc`):

- Ancillary data starts with a 16-byte header: byte 0 the decode type (0 LUT, 2 PRUNING),
  byte 1 the header version (1), byte 4 the version of the decode type's format (1).
- PRUNING: the encoded data is a bitmap over the elements in storage order, most significant
  bit first, 1 where the element differs from its zero point; the ancillary data holds the
  kept elements after the header, in storage order, in the tensor's type.
- LUT: the encoded data is a big-endian bit string of `bits`-wide indices (1-7), one per
  element in storage order, zero-padded to a byte; header byte 5 holds the bit width in
  bits 0-2 (bits 4-7: the channel axis, 15 for one table), byte 6 the table length per
  channel; the tables follow the header, one per channel, each padded with zeros to that
  length.

Channels follow the tensor's quantization: with more than one scale, the channel axis is the
quantized dimension, which must be the first axis or the last; TFLM reads both layouts.
Per-channel zero points count for int8 tensors only (TFLM's pruning decoder), and the LUT
decoder needs one table per channel whenever the tensor has more than one scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np

HEADER_BYTES = 16
HEADER_VERSION = 1
FORMAT_VERSION = 1
LUT = 0
PRUNING = 2
MAX_LUT_BITS = 7
ONE_TABLE_AXIS = 15
DECODE_TYPES = {LUT: "lut", PRUNING: "pruning"}
# Tensor types the TFLM decoders handle, by the integer type whose bits they copy.
_RAW_TYPES = {
    np.dtype(np.int8): np.int8, np.dtype(np.int16): np.int16,
    np.dtype(np.int32): np.int32, np.dtype(np.float32): np.int32, np.dtype(np.int64): np.int64,
}


@dataclasses.dataclass(frozen=True)
class Channels:
    """How a tensor's elements map to quantization channels.

    Attributes:
        count: number of channels (1 for a per-tensor quantized or unquantized tensor).
        last_axis: the channel axis is the last one (channels interleaved in storage order);
            otherwise it is the first (each channel a contiguous run).
        zero_points: one zero point per channel, as the decoder applies them.
    """

    count: int = 1
    last_axis: bool = False
    zero_points: tuple[int, ...] = (0,)

    def of_elements(self, size: int) -> np.ndarray:
        """The channel of each element, in storage order."""
        index = np.arange(size)
        if self.count == 1:
            return np.zeros(size, np.int64)
        return index % self.count if self.last_axis else index // (size // self.count)

    def axis_code(self, rank: int) -> int:
        """The channel axis as LUT header byte 5 records it (15: one table)."""
        if self.count == 1:
            return ONE_TABLE_AXIS
        return rank - 1 if self.last_axis else 0


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One tensor in a DECODE encoding: its encoded data and its ancillary data."""

    kind: str  # "pruning" or "lut"
    data: bytes
    ancillary: bytes
    bits: int | None = None

    @property
    def bytes(self) -> int:
        """Bytes of constant data the encoding stores (the model adds tensor records)."""
        return len(self.data) + len(self.ancillary)


def channels_of(shape: tuple[int, ...], dtype, scales=(), zero_points=(),
                quantized_dimension: int = 0) -> Channels:
    """The channel layout TFLM's decoders derive from a tensor's quantization.

    Raises:
        ValueError: the channel axis is neither the first nor the last, which TFLM's decoders
            refuse, or the zero points do not match the scales.
    """
    count = max(len(scales), 1)
    rank = len(shape)
    last = count > 1 and quantized_dimension == rank - 1
    if not last and quantized_dimension != 0:
        raise ValueError(f"TFLite Micro decodes channels along the first or the last axis only; "
                         f"this tensor {list(shape)} is quantized along axis "
                         f"{quantized_dimension}.")
    zps = tuple(int(z) for z in zero_points) or (0,) * count
    if len(zps) != count:
        raise ValueError(f"The tensor has {count} scales but {len(zps)} zero points.")
    size = int(np.prod(shape)) if shape else 1
    if count > 1 and size % count:
        raise ValueError(f"{size} elements do not split into {count} channels.")
    per_channel_zp = np.dtype(dtype) == np.int8 and count > 1 and any(zps)
    if not per_channel_zp:
        if np.dtype(dtype) != np.int8 and any(zps):
            raise ValueError("TFLite Micro's decoders need zero points of 0 for tensors "
                             f"other than int8; this {np.dtype(dtype).name} tensor has {zps}.")
        zps = (zps[0],) * count
    return Channels(count, last, zps)


def _raw(values: np.ndarray) -> np.ndarray:
    """The elements in storage order as integers of the same width (bit patterns)."""
    values = np.ascontiguousarray(values)
    if values.dtype not in _RAW_TYPES:
        raise ValueError(f"TFLite Micro's decoders take int8, int16, int32, int64 and float32 "
                         f"tensors. Received a {values.dtype.name} tensor.")
    return values.reshape(-1).view(_RAW_TYPES[values.dtype])


def _header(decode_type: int, params: bytes = b"") -> bytes:
    head = bytearray(HEADER_BYTES)
    head[0], head[1], head[4] = decode_type, HEADER_VERSION, FORMAT_VERSION
    head[5 : 5 + len(params)] = params
    return bytes(head)


def _zeros(values: np.ndarray, channels: Channels) -> np.ndarray:
    """The zero point of each element in storage order, as the element's bit pattern."""
    raw = _raw(values)
    zps = np.asarray(channels.zero_points, np.int64)
    return zps[channels.of_elements(raw.size)].astype(raw.dtype)


def encode_pruning(values: np.ndarray, channels: Channels = Channels()) -> Encoded:
    """The PRUNING encoding: a bitmap of the non-zero-point elements plus their values."""
    raw = _raw(values)
    keep = raw != _zeros(values, channels)
    bitmap = np.packbits(keep.astype(np.uint8), bitorder="big").tobytes()
    kept = np.ascontiguousarray(values).reshape(-1)[keep]
    return Encoded("pruning", bitmap, _header(PRUNING) + kept.tobytes())


def decode_pruning(data: bytes, ancillary: bytes, shape, dtype,
                   channels: Channels = Channels()) -> np.ndarray:
    """The tensor that TFLM's pruning decoder writes for `data` and `ancillary`."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) if shape else 1
    _check_header(ancillary, PRUNING)
    keep = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="big")[:size].astype(bool)
    if keep.size < size:
        raise ValueError(f"The pruning bitmap holds {keep.size} bits for {size} elements.")
    kept = np.frombuffer(ancillary, dtype, offset=HEADER_BYTES)
    if kept.size != int(keep.sum()):
        raise ValueError(f"The pruning bitmap marks {int(keep.sum())} values but the ancillary "
                         f"data holds {kept.size}.")
    out = _zeros(np.zeros(size, dtype), channels).view(dtype).copy()
    out[keep] = kept
    return out.reshape(shape)


def lut_tables(values: np.ndarray, channels: Channels = Channels()):
    """Per channel, the distinct values (sorted bit patterns) and each element's index."""
    raw = _raw(values)
    of = channels.of_elements(raw.size)
    tables, indices = [], np.empty(raw.size, np.int64)
    for c in range(channels.count):
        where = of == c
        table, index = np.unique(raw[where], return_inverse=True)
        tables.append(table)
        indices[where] = index
    return tables, indices


def lut_bits(values: np.ndarray, channels: Channels = Channels()) -> int:
    """The smallest index width that holds every channel's distinct values (may exceed 7)."""
    most = max(len(t) for t in lut_tables(values, channels)[0])
    return max(1, int(most - 1).bit_length())


def encode_lut(values: np.ndarray, channels: Channels = Channels(),
               bits: int | None = None) -> Encoded:
    """The LUT encoding: one value table per channel and `bits`-wide indices.

    Args:
        values: the tensor.
        channels: its channel layout (`channels_of`).
        bits: index width, 1-7; None takes the smallest that fits.

    Raises:
        ValueError: `bits` is outside 1-7, or a channel has more distinct values than
            `2**bits` entries hold.
    """
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)
                             or not 1 <= bits <= MAX_LUT_BITS):
        raise ValueError(f"Argument `bits` must be an integer in 1..{MAX_LUT_BITS} (TFLite "
                         f"Micro's LUT index widths), or None. Received: bits={bits!r}")
    tables, indices = lut_tables(values, channels)
    stride = max(len(t) for t in tables)
    need = max(1, int(stride - 1).bit_length())
    width = need if bits is None else bits
    if need > width or need > MAX_LUT_BITS:
        raise ValueError(f"A channel holds {stride} distinct values, which need {need}-bit "
                         f"indices; LUT indices are at most {width if bits else MAX_LUT_BITS} "
                         f"bits. Cluster the weights (tfimp.cluster) to at most "
                         f"{2 ** min(width, MAX_LUT_BITS)} values per channel.")
    shifts = np.arange(width - 1, -1, -1)
    index_bits = ((indices[:, None] >> shifts) & 1).astype(np.uint8)
    data = np.packbits(index_bits.reshape(-1), bitorder="big").tobytes()
    raw_type = _raw(values).dtype
    table_bytes = b"".join(np.pad(t, (0, stride - len(t))).astype(raw_type).tobytes()
                           for t in tables)
    axis = channels.axis_code(np.ndim(values))
    params = bytes([(axis << 4) | width, stride])
    return Encoded("lut", data, _header(LUT, params) + table_bytes, width)


def decode_lut(data: bytes, ancillary: bytes, shape, dtype,
               channels: Channels = Channels()) -> np.ndarray:
    """The tensor that TFLM's LUT decoder writes for `data` and `ancillary`."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) if shape else 1
    _check_header(ancillary, LUT)
    width, stride = ancillary[5] & 0x07, ancillary[6]
    if not 1 <= width <= MAX_LUT_BITS:
        raise ValueError(f"The LUT header gives {width}-bit indices; TFLite Micro reads 1-7.")
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="big")
    if bits.size < size * width:
        raise ValueError(f"The LUT data holds {bits.size} bits for {size} {width}-bit indices.")
    weights = 1 << np.arange(width - 1, -1, -1)
    indices = bits[: size * width].reshape(size, width).astype(np.int64) @ weights
    tables = np.frombuffer(ancillary, dtype, offset=HEADER_BYTES)
    if tables.size < channels.count * stride:
        raise ValueError(f"The LUT tables hold {tables.size} values for {channels.count} "
                         f"channel(s) of {stride}.")
    return tables[channels.of_elements(size) * stride + indices].reshape(shape)


def decode(data: bytes, ancillary: bytes, shape, dtype,
           channels: Channels = Channels()) -> np.ndarray:
    """Decodes either encoding, as the DECODE op does, by the header's decode type."""
    kind = decode_type(ancillary)
    if kind == "pruning":
        return decode_pruning(data, ancillary, shape, dtype, channels)
    return decode_lut(data, ancillary, shape, dtype, channels)


def decode_type(ancillary: bytes) -> str:
    """'pruning' or 'lut', from the header of the ancillary data."""
    if len(ancillary) < HEADER_BYTES or ancillary[0] not in DECODE_TYPES:
        code = ancillary[0] if ancillary else None
        raise ValueError(f"Unknown DECODE ancillary data (decode type {code}); tfimp reads the "
                         f"LUT (0) and PRUNING (2) encodings.")
    return DECODE_TYPES[ancillary[0]]


def _check_header(ancillary: bytes, decode_type_code: int) -> None:
    if len(ancillary) < HEADER_BYTES or ancillary[0] != decode_type_code:
        raise ValueError(f"The ancillary data is not a {DECODE_TYPES[decode_type_code]} "
                         f"encoding.")
    if ancillary[1] != HEADER_VERSION or ancillary[4] != FORMAT_VERSION:
        raise ValueError(f"DECODE header version {ancillary[1]}/{ancillary[4]}; TFLite Micro "
                         f"reads version {HEADER_VERSION}/{FORMAT_VERSION}.")


def pruning_bytes(values: np.ndarray, channels: Channels = Channels()) -> int:
    """Bytes the PRUNING encoding stores, without building it."""
    raw = _raw(values)
    kept = int(np.count_nonzero(raw != _zeros(values, channels)))
    return -(-raw.size // 8) + HEADER_BYTES + kept * raw.itemsize


def lut_bytes(values: np.ndarray, channels: Channels = Channels(),
              bits: int | None = None) -> int | None:
    """Bytes the LUT encoding stores, or None when a channel needs more than 7 bits."""
    tables, _ = lut_tables(values, channels)
    stride = max(len(t) for t in tables)
    need = max(1, int(stride - 1).bit_length())
    width = need if bits is None else bits
    if need > min(width, MAX_LUT_BITS):
        return None
    raw = _raw(values)
    return -(-raw.size * width // 8) + HEADER_BYTES + channels.count * stride * raw.itemsize
