"""Fake quantization as the TFLite converter quantizes for int8, and the range-tracking layer.

Weights: symmetric int8 in the narrow range [-127, 127] with one scale per output channel,
`scale = max|w| / 127`, zero point 0, so a zero weight stays exactly zero. Activations: one
asymmetric int8 range per tensor, nudged (as TensorFlow's fake-quant op and the converter do)
so that 0.0 is exactly representable. Both use TensorFlow's fake-quant ops, which the TFLite
converter reads the ranges from; the reference formulas in numpy (`weight_scales`,
`activation_params`) are what the converter writes into the .tflite file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np

__all__ = [
    "FakeQuant",
    "activation_params",
    "calibrating",
    "fake_quant_activations",
    "fake_quant_weights",
    "unquantized",
    "weight_scales",
]

_QMIN = -128
# Smallest width of an activation range: a range never set must not divide by zero.
_EPSILON = 1e-6
# Output ranges that TFLite's int8 kernels fix for these activations (scale, zero point).
FIXED_RANGES = {
    "softmax": (0.0, 255.0 / 256.0),
    "sigmoid": (0.0, 255.0 / 256.0),
    "tanh": (-1.0, 127.0 / 128.0),
}


def weight_scales(w: np.ndarray, per_channel: bool = True) -> np.ndarray:
    """The int8 scales of `w` (output channels last): `max|w| / 127`, 1/127 for all-zero."""
    w = np.asarray(w, np.float32)
    m = np.abs(w).reshape(-1, w.shape[-1]).max(axis=0) if per_channel else np.abs(w).max()
    return np.where(m > 0, m, 1.0).astype(np.float32) / np.float32(127.0)


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """The int8 `(scale, zero_point)` of the range `[lo, hi]`, nudged so 0.0 is exact.

    This is the nudging of TensorFlow's `FakeQuantWithMinMaxVars` (8 bits, full range, in
    float32 as its kernel computes it), shifted from uint8 to int8 as the converter does.
    """
    f = np.float32
    lo, hi = f(lo), f(hi)
    hi = max(hi, f(lo + f(_EPSILON)))
    scale = f((hi - lo) / f(255.0))
    zero_from_min = f(f(0.0) - lo / scale)
    zero_point = int(np.clip(np.floor(float(zero_from_min) + 0.5), 0, 255))  # std::round
    return float(scale), zero_point + _QMIN


def _range(w, axes):
    import tensorflow as tf

    m = tf.stop_gradient(tf.reduce_max(tf.abs(w), axis=axes))
    return tf.where(m > 0, m, tf.ones_like(m))


def fake_quant_weights(w, per_channel: bool = True):
    """`w` rounded to its symmetric int8 grid; straight-through gradient.

    Args:
        w: a kernel whose last axis is the output channel.
        per_channel: one scale per output channel; False uses one scale for the tensor.
    """
    import tensorflow as tf

    w = tf.convert_to_tensor(w)
    if not per_channel:
        m = _range(w, None)
        return tf.quantization.fake_quant_with_min_max_vars(
            w, -m, m, num_bits=8, narrow_range=True)
    m = _range(w, list(range(len(w.shape) - 1)))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        w, -m, m, num_bits=8, narrow_range=True)


def fake_quant_activations(x, lo, hi):
    """`x` rounded to the int8 grid of `[lo, hi]` (nudged so that 0.0 is exact)."""
    import tensorflow as tf

    return tf.quantization.fake_quant_with_min_max_vars(
        tf.convert_to_tensor(x), lo, hi, num_bits=8, narrow_range=False)


_MODES: list[str] = ["quantized"]


@contextlib.contextmanager
def calibrating() -> Iterator[None]:
    """Within this block, eager calls of quantization-aware layers compute in float and
    `FakeQuant` layers record the min and max of what passes through them."""
    _MODES.append("calibrating")
    try:
        yield
    finally:
        _MODES.pop()


@contextlib.contextmanager
def unquantized() -> Iterator[None]:
    """Within this block, eager calls of quantization-aware layers compute in float, with the
    same (folded) weights and no rounding: the model that post-training quantization of the
    same weights would start from."""
    _MODES.append("float")
    try:
        yield
    finally:
        _MODES.pop()


def is_calibrating() -> bool:
    return _MODES[-1] == "calibrating"


def is_float() -> bool:
    """True while calibrating or within `unquantized()`."""
    return _MODES[-1] != "quantized"


@keras.saving.register_keras_serializable(package="tfimp")
class FakeQuant(keras.layers.Layer):
    """Per-tensor asymmetric int8 fake quantization of activations.

    The range follows an exponential moving average of each training batch's min and max
    (min <= 0 <= max); the first training batch sets it when nothing has. In inference the
    stored range is used, as the converted model will.

    Called with `track=False`, the layer rounds a tensor to its range without updating it:
    the output of an op whose int8 kernel keeps its input's scale (average pooling).

    Args:
        decay: weight of the old range in the moving average.
        fixed_range: `(lo, hi)` for tensors whose range the int8 kernel fixes (softmax,
            sigmoid, tanh outputs); the range then never moves.
    """

    def __init__(self, decay: float = 0.99, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"Argument `decay` must be a number in [0, 1). Received: "
                             f"decay={decay!r}")
        self.decay = float(decay)
        self.fixed_range = None if fixed_range is None else tuple(float(v) for v in fixed_range)
        self.supports_masking = True
        self._seen: list[tuple[float, float]] = []

    def build(self, input_shape=None):
        lo, hi = self.fixed_range or (0.0, 0.0)
        self.range_min = self._scalar("range_min", lo)
        self.range_max = self._scalar("range_max", hi)
        self.ready = self._scalar("ready", float(self.fixed_range is not None))
        self.built = True

    def _scalar(self, name: str, value: float):
        return self.add_weight(name=name, shape=(), trainable=False, dtype="float32",
                               initializer=keras.initializers.Constant(value),
                               aggregation="only_first_replica")

    def call(self, inputs, training=None, track=True):
        if is_float():
            if track and is_calibrating():
                self._record(inputs)
            return inputs
        if training and track and self.fixed_range is None:
            self._track(inputs)
        lo, hi = self.range_min, self.range_max
        if self.fixed_range is None:
            hi = keras.ops.maximum(hi, lo + _EPSILON)
        return fake_quant_activations(inputs, lo, hi)

    def _track(self, x) -> None:
        ops = keras.ops
        x = ops.cast(x, "float32")
        lo = ops.minimum(ops.min(x), 0.0)
        hi = ops.maximum(ops.max(x), 0.0)
        keep = self.decay * self.ready
        self.range_min.assign(keep * self.range_min + (1.0 - keep) * lo)
        self.range_max.assign(keep * self.range_max + (1.0 - keep) * hi)
        self.ready.assign(1.0)

    def _record(self, x) -> None:
        values = keras.ops.convert_to_numpy(x)
        self._seen.append((min(float(values.min()), 0.0), max(float(values.max()), 0.0)))

    def finish_calibration(self) -> None:
        """Sets the range to the min and max seen while calibrating."""
        if self._seen and self.fixed_range is None:
            self.range_min.assign(min(lo for lo, _ in self._seen))
            self.range_max.assign(max(hi for _, hi in self._seen))
            self.ready.assign(1.0)
        self._seen = []

    @property
    def is_ready(self) -> bool:
        return bool(keras.ops.convert_to_numpy(self.ready) > 0)

    def params(self) -> tuple[float, int]:
        """The int8 `(scale, zero_point)` this layer's range gives in the converted model."""
        return activation_params(float(keras.ops.convert_to_numpy(self.range_min)),
                                 float(keras.ops.convert_to_numpy(self.range_max)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(decay=self.decay,
                      fixed_range=None if self.fixed_range is None else list(self.fixed_range))
        return config
