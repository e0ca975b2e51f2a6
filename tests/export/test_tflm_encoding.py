"""TFLite Micro's DECODE encodings on toy arrays: known bytes from the format, round trips."""

import numpy as np
import pytest

from tfimp.export import tflm_encoding as enc


def test_pruning_bytes_follow_the_format():
    values = np.array([0, 5, 0, 0, -3, 0, 0, 0, 7], np.int8)
    e = enc.encode_pruning(values)
    assert e.data == bytes([0b01001000, 0b10000000])  # MSB first, 1 = kept, zero-padded
    head = e.ancillary[:16]
    assert head[0] == enc.PRUNING and head[1] == 1 and head[4] == 1 and not any(head[5:])
    assert e.ancillary[16:] == np.array([5, -3, 7], np.int8).tobytes()


def test_lut_bytes_follow_the_format():
    values = np.array([7, 0, 3, 2], np.int8)  # table [0, 2, 3, 7]: indices 3, 0, 2, 1
    two = enc.encode_lut(values)
    assert two.bits == 2 and two.data == bytes([0b11001001])
    assert two.ancillary[:7] == bytes([enc.LUT, 1, 0, 0, 1, (15 << 4) | 2, 4])
    assert two.ancillary[16:] == np.array([0, 2, 3, 7], np.int8).tobytes()
    three = enc.encode_lut(values, bits=3)
    assert three.data == bytes([0b01100001, 0b00010000])  # 011 000 010 001, padded


def test_lut_tables_per_channel_are_padded_to_one_length():
    values = np.array([[1, 1, 2, 2], [5, 6, 7, 8]], np.int8)
    channels = enc.Channels(count=2, zero_points=(0, 0))
    e = enc.encode_lut(values, channels)
    assert e.bits == 2 and e.ancillary[6] == 4 and e.ancillary[5] >> 4 == 0
    assert e.ancillary[16:] == bytes([1, 2, 0, 0, 5, 6, 7, 8])


def _layouts():
    yield (6, 5), enc.Channels()
    yield (6, 5), enc.Channels(6, False, (0,) * 6)
    yield (2, 3, 3, 4), enc.Channels(4, True, (0,) * 4)
    yield (4, 9), enc.Channels(4, False, (3, -2, 0, 7))  # int8 per-channel zero points


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32])
def test_pruning_round_trips(dtype):
    rng = np.random.default_rng(0)
    for shape, channels in _layouts():
        if np.dtype(dtype) != np.int8 and any(channels.zero_points):
            continue
        values = rng.integers(-100, 100, shape).astype(dtype)
        zero = np.asarray(channels.zero_points)[channels.of_elements(values.size)]
        values.reshape(-1)[rng.random(values.size) < 0.8] = 0
        values.reshape(-1)[values.reshape(-1) == 0] = zero[values.reshape(-1) == 0]
        e = enc.encode_pruning(values, channels)
        back = enc.decode_pruning(e.data, e.ancillary, shape, dtype, channels)
        np.testing.assert_array_equal(back, values)
        assert e.bytes == enc.pruning_bytes(values, channels)


@pytest.mark.parametrize("bits", range(1, 8))
def test_lut_round_trips_at_every_width(bits):
    rng = np.random.default_rng(bits)
    for shape, channels in _layouts():
        levels = rng.integers(-128, 128, (channels.count, 2 ** bits))
        picks = rng.integers(0, 2 ** bits, int(np.prod(shape)))
        values = levels[channels.of_elements(picks.size), picks].astype(np.int8).reshape(shape)
        e = enc.encode_lut(values, channels, bits=bits)
        assert e.bits == bits
        back = enc.decode_lut(e.data, e.ancillary, shape, np.int8, channels)
        np.testing.assert_array_equal(back, values)
        assert e.bytes == enc.lut_bytes(values, channels, bits)


def test_float_lut_keeps_bit_patterns():
    values = np.array([0.0, -0.0, 1.5, 1.5, np.inf], np.float32)
    e = enc.encode_lut(values)
    back = enc.decode_lut(e.data, e.ancillary, values.shape, np.float32)
    assert back.tobytes() == values.tobytes()


def test_channel_layout_follows_tflm():
    assert enc.channels_of((8, 3, 3, 3), np.int8, [0.1] * 8, [0] * 8, 0) == enc.Channels(
        8, False, (0,) * 8)
    assert enc.channels_of((1, 3, 3, 8), np.int8, [0.1] * 8, [0] * 8, 3).last_axis
    assert enc.channels_of((10, 16), np.int8, [0.1], [0], 0) == enc.Channels()
    with pytest.raises(ValueError, match="first or the last axis"):
        enc.channels_of((4, 5, 6), np.int8, [0.1] * 5, [0] * 5, 1)
    with pytest.raises(ValueError, match="zero points of 0"):
        enc.channels_of((4, 5), np.int16, [0.1] * 4, [1, 0, 0, 0], 0)


def test_bad_widths_and_types_are_refused():
    values = np.arange(-8, 8, dtype=np.int8)
    for bits in (0, 8, True, 2.0):
        with pytest.raises(ValueError, match=r"`bits` must be an integer in 1\.\.7"):
            enc.encode_lut(values, bits=bits)
    with pytest.raises(ValueError, match="16 distinct values, which need 4-bit"):
        enc.encode_lut(values, bits=3)
    with pytest.raises(ValueError, match="tfimp.cluster"):
        enc.encode_lut(np.arange(-128, 128).astype(np.int8))
    assert enc.lut_bytes(np.arange(-128, 128).astype(np.int8)) is None
    with pytest.raises(ValueError, match="uint8 tensor"):
        enc.encode_pruning(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="decode type 1"):
        enc.decode(b"", bytes([1, 1] + [0] * 14), (4,), np.int8)
