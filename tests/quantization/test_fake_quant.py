"""Fake quantization on toy arrays: the int8 grids the TFLite converter writes, and FakeQuant."""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tfimp
from tfimp.export import inspect, to_tflite
from tfimp.quantization import FakeQuant, QuantizeWrapper, quantize_aware
from tfimp.quantization.fake_quant import (
    activation_params,
    calibrating,
    fake_quant_activations,
    fake_quant_weights,
    weight_scales,
)

L = keras.layers


@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (0.0, 6.0), (-0.3, 2.7), (-5.0, 0.2),
                                    (0.5, 3.0)])
def test_activation_grid_is_the_nudged_int8_grid(lo, hi):
    scale, zero_point = activation_params(lo, hi)
    assert -128 <= zero_point <= 127
    x = np.linspace(min(lo, 0) - 1, max(hi, 0) + 1, 2001).astype("float32")
    got = keras.ops.convert_to_numpy(fake_quant_activations(x, lo, hi))
    q = np.round(got / scale)
    np.testing.assert_allclose(got, q * scale, rtol=0, atol=1e-5 * scale)  # on the grid
    assert q.min() == -128 - zero_point and q.max() == 127 - zero_point  # all 256 levels
    nearest = np.clip(np.round(x / scale), -128 - zero_point, 127 - zero_point)
    assert np.abs(q - nearest).max() <= 1 and np.mean(q != nearest) < 0.01  # ties only
    zero = keras.ops.convert_to_numpy(fake_quant_activations(np.zeros(3, "float32"), lo, hi))
    np.testing.assert_array_equal(zero, 0.0)


def _toy_kernel():
    w = (np.arange(24, dtype="float32").reshape(6, 4) - 11.5) / 7.0
    w[::2, 1] = 0.0  # pruned weights
    w[:, 3] = 0.0  # a fully pruned output channel
    return w


@pytest.mark.parametrize("per_channel", [True, False])
def test_weights_symmetric_narrow_range_keep_zeros(per_channel):
    w = _toy_kernel()
    got = keras.ops.convert_to_numpy(fake_quant_weights(w, per_channel))
    scales = weight_scales(w, per_channel)
    ints = got / scales
    np.testing.assert_allclose(ints, np.round(w / scales), atol=1e-4)
    assert np.abs(np.round(ints)).max() == 127  # the largest weight maps to +-127, not -128
    np.testing.assert_array_equal(got[w == 0], 0.0)
    assert np.all(np.isfinite(got))
    if per_channel:
        np.testing.assert_allclose(scales[:3], np.abs(w[:, :3]).max(axis=0) / 127, rtol=1e-6)
        assert scales[3] == np.float32(1 / 127)


def test_fake_quant_tracks_a_moving_average_in_training_only():
    layer = FakeQuant(decay=0.5)
    first = np.array([[-1.0, 2.0]], "float32")
    second = np.array([[0.5, 4.0]], "float32")  # min clipped to 0: the range holds zero
    layer(first, training=True)
    assert _range(layer) == (-1.0, 2.0)
    layer(second, training=True)
    assert _range(layer) == (-0.5, 3.0)
    layer(np.array([[9.0]], "float32"), training=False)
    layer(np.array([[9.0]], "float32"), training=True, track=False)
    assert _range(layer) == (-0.5, 3.0)
    out = keras.ops.convert_to_numpy(layer(np.array([[9.0, -9.0]], "float32")))
    scale, zero_point = layer.params()
    np.testing.assert_allclose(out, [[(127 - zero_point) * scale, (-128 - zero_point) * scale]],
                               rtol=1e-6)


def test_fixed_range_and_calibration():
    softmax = FakeQuant(fixed_range=(0.0, 255 / 256))
    softmax(np.array([[0.3]], "float32"), training=True)
    assert _range(softmax) == (0.0, 255 / 256)
    assert softmax.params() == (1 / 256, -128)  # TFLite's int8 softmax output
    layer = FakeQuant()
    with calibrating():
        out = layer(np.array([[0.3, 1.5]], "float32"))
        layer(np.array([[-0.25, 0.1]], "float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), np.float32([[0.3, 1.5]]))
    assert not layer.is_ready
    layer.finish_calibration()
    assert layer.is_ready and _range(layer) == (-0.25, 1.5)


def _range(layer):
    return tuple(float(keras.ops.convert_to_numpy(v)) for v in (layer.range_min, layer.range_max))


def test_fake_quant_config_round_trips():
    layer = FakeQuant(decay=0.9, fixed_range=(-1.0, 127 / 128), name="q")
    clone = FakeQuant.from_config(layer.get_config())
    assert (clone.decay, clone.fixed_range, clone.name) == (0.9, (-1.0, 127 / 128), "q")
    with pytest.raises(ValueError, match=r"Argument `decay` must be a number in \[0, 1\)"):
        FakeQuant(decay=1.0)


def test_converter_writes_the_scales_and_zero_points_of_the_formulas():
    """The .tflite file's weights, scales and zero points are the ones the formulas give."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(4, 3, name="conv"),
                              L.Flatten(), L.Dense(3, name="fc")])
    x = np.random.default_rng(1).normal(size=(32, 6, 6, 2)).astype("float32")
    qat = quantize_aware(tfimp.prune(model, 0.5), representative_data=x)
    blob = to_tflite(qat, quantization="int8").model_bytes
    info = inspect(blob)
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    for name in ("conv", "fc"):
        wrapper = qat.get_layer(name)
        assert isinstance(wrapper, QuantizeWrapper)
        kernel = keras.ops.convert_to_numpy(wrapper.folded_weights()[0][0])
        stored = _int8_kernel(info, interp, kernel.shape[-1], kernel.size)
        scales = weight_scales(kernel)
        np.testing.assert_allclose(stored.scales, scales, rtol=1e-6)
        assert set(stored.zero_points) == {0}
        ints = interp.get_tensor(stored.index)  # output channels first
        expected = np.round(kernel / scales).reshape(-1, kernel.shape[-1]).T
        np.testing.assert_array_equal(ints.reshape(kernel.shape[-1], -1), expected)
        assert stored.zero_fraction == np.mean(kernel == 0) == 0.5
    activations = [(t.scales[0], t.zero_points[0]) for t in info.tensors
                   if not t.constant and t.dtype == "int8"]
    for q in tfimp.quantization.fake_quant_layers(qat):
        scale, zero_point = q.params()
        # The file stores float32 scales: equal to within float32 rounding (rounding both
        # to 9 digits can split a tie: 0.021659466 vs 0.021659467).
        assert any(z == zero_point and abs(s - scale) <= 1e-6 * scale
                   for s, z in activations), (scale, zero_point, activations)


def _int8_kernel(info, interp, channels, size):
    [found] = [t for t in info.constants if t.dtype == "int8" and t.shape[0] == channels
               and t.size == size]
    return found
