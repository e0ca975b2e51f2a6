"""`QuantizeWrapper`: a Dense or convolution layer computing with fake-quantized weights.

The wrapper reads the weights of the layer it wraps (a plain Keras layer, or a
`PruneLowMagnitude` whose `MaskConstraint` keeps pruned weights at zero), multiplies a
following batch norm into them, rounds them to their int8 grid, and computes the layer's
op, bias and activation: with the `FakeQuant` that follows it in the model, the same
arithmetic as the int8 kernel that the TFLite converter writes for the layer (with the batch
norm folded in).

`KINDS` says, for each supported layer class, which weights are kernels, how the op is
computed, and how a batch-norm scale folds into the kernels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras

from tfimp.quantization.fake_quant import (
    FIXED_RANGES,
    FakeQuant,
    fake_quant_weights,
    is_float,
)
from tfimp.sparsity.wrapper import PruneLowMagnitude

__all__ = ["FUSED_ACTIVATIONS", "KINDS", "Kind", "QuantizeWrapper", "kind_of"]

ops = keras.ops
L = keras.layers
# Activations that TFLite fuses into the op: the output has one range, after the activation.
FUSED_ACTIVATIONS = ("linear", "relu", "relu6")


def _as_channels(k, groups):
    """`k` with its last two axes (input channel, multiplier) merged into output channels."""
    return ops.reshape(k, (*k.shape[:-2], groups * k.shape[-1]))


def _dense_apply(layer, x, kernels, mid):
    return ops.matmul(x, kernels[0])


def _conv_apply(layer, x, kernels, mid):
    padding = layer.padding
    if padding == "causal":
        x = ops.pad(x, layer._compute_causal_padding())
        padding = "valid"
    return ops.conv(x, kernels[0], strides=list(layer.strides), padding=padding,
                    dilation_rate=layer.dilation_rate, data_format=layer.data_format)


def _depthwise(layer, x, kernel):
    return ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                              dilation_rate=layer.dilation_rate, data_format=layer.data_format)


def _depthwise_apply(layer, x, kernels, mid):
    return _depthwise(layer, x, kernels[0])


def _separable_apply(layer, x, kernels, mid):
    # TFLite has no separable op: the converter writes a depthwise and a 1x1 convolution,
    # with an int8 tensor between them.
    y = mid(_depthwise(layer, x, kernels[0]))
    return ops.conv(y, kernels[1], strides=1, padding="valid", data_format=layer.data_format)


def _quantize_depthwise(k, per_channel=True):
    # TFLite stores a depthwise kernel as (1, h, w, in * multiplier), one scale per column.
    return ops.reshape(fake_quant_weights(_as_channels(k, k.shape[-2]), per_channel), k.shape)


def _fold_last(k, scale):
    return k * scale


def _fold_depthwise(k, scale):
    return k * ops.reshape(scale, k.shape[-2:])


def batch_norm_affine(bn) -> tuple:
    """`(scale, offset)` per channel of a batch norm in inference: `y = x * scale + offset`."""
    scale = ops.rsqrt(bn.moving_variance + bn.epsilon)
    if bn.scale:
        scale = scale * bn.gamma
    offset = -bn.moving_mean * scale
    if bn.center:
        offset = offset + bn.beta
    return scale, offset


def _batch_norm_weights(bn):
    scale, offset = batch_norm_affine(bn)
    return [ops.reshape(scale, (1, -1, 1))], offset


def _batch_norm_apply(bn, x, kernels, mid):
    # A 1x1 depthwise convolution: an int8 kernel whose per-channel weights and int32 bias
    # the fake quantization simulates exactly (the MUL and ADD ops that the converter writes
    # for a batch norm would get ranges of its own choosing).
    rank = len(x.shape)
    kernel = ops.expand_dims(kernels[0], 0) if rank == 4 else kernels[0]
    if rank == 2:
        return ops.squeeze(ops.depthwise_conv(ops.expand_dims(x, 1), kernel, 1, "valid"), 1)
    return ops.depthwise_conv(x, kernel, strides=1, padding="valid")


@dataclasses.dataclass(frozen=True)
class Kind:
    """How tfimp fake-quantizes one family of layers.

    Attributes:
        kernels: names of the layer's kernel attributes, in the order `apply` takes them.
        apply: `(layer, inputs, kernels, mid) -> outputs` without bias and activation;
            `mid` fake-quantizes an intermediate tensor the converter makes int8.
        quantize: per kernel, `(kernel, per_channel) -> fake-quantized kernel`.
        fold: `(kernels, bn_scale) -> kernels` with a per-output-channel scale folded in;
            None for layers a batch norm does not fold into.
        weights: `(layer) -> (kernels, bias)` for layers whose kernels are computed (a
            standalone batch norm); None reads the `kernels` attributes and `bias`.
    """

    kernels: tuple[str, ...]
    apply: Callable
    quantize: tuple[Callable, ...]
    fold: Callable | None
    has_mid: bool = False
    weights: Callable | None = None


_CONV = Kind(("kernel",), _conv_apply, (fake_quant_weights,),
             lambda ks, s: [_fold_last(ks[0], s)])
_DEPTHWISE = Kind(("kernel",), _depthwise_apply, (_quantize_depthwise,),
                  lambda ks, s: [_fold_depthwise(ks[0], s)])
_SEPARABLE = Kind(("depthwise_kernel", "pointwise_kernel"), _separable_apply,
                  (_quantize_depthwise, fake_quant_weights),
                  lambda ks, s: [ks[0], _fold_last(ks[1], s)], has_mid=True)
# A batch norm over the last axis of a rank 2-4 tensor that follows no Dense/convolution.
BATCH_NORM = Kind((), _batch_norm_apply, (_quantize_depthwise,), None,
                  weights=_batch_norm_weights)

KINDS: dict[type, Kind] = {
    L.Dense: Kind(("kernel",), _dense_apply, (fake_quant_weights,),
                  lambda ks, s: [_fold_last(ks[0], s)]),
    L.Conv1D: _CONV,
    L.Conv2D: _CONV,
    L.DepthwiseConv1D: _DEPTHWISE,
    L.DepthwiseConv2D: _DEPTHWISE,
    L.SeparableConv1D: _SEPARABLE,
    L.SeparableConv2D: _SEPARABLE,
}
# Subclasses that compute something else under the same weights.
_EXCLUDED = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)


def kind_of(layer) -> Kind | None:
    """The `Kind` of a layer (or of the layer a `PruneLowMagnitude` wraps), or None.

    A `BatchNormalization` that no Dense/convolution absorbs computes as a 1x1 depthwise
    convolution (`quantize_aware` checks that it normalizes the last axis of a rank 2-4
    tensor).
    """
    if isinstance(layer, L.BatchNormalization):
        return BATCH_NORM
    if isinstance(layer, _EXCLUDED):
        return None
    for cls in type(layer).__mro__:
        if cls in KINDS:
            return KINDS[cls]
    return None


def activation_name(fn) -> str:
    """The serialized name of an activation function (`None` is "linear")."""
    if fn is None:
        return "linear"
    name = keras.activations.serialize(fn)
    return name if isinstance(name, str) else str(name)


@keras.saving.register_keras_serializable(package="tfimp")
class QuantizeWrapper(keras.layers.Wrapper):
    """Computes a Dense/convolution layer as its int8 TFLite kernel will.

    Args:
        layer: a Dense, Conv1D/2D, DepthwiseConv1D/2D or SeparableConv1D/2D layer, or a
            `PruneLowMagnitude` wrapping one (its masks keep working).
        batch_norm: a `BatchNormalization` that follows the layer and is folded into it,
            as the converter folds it: its moving statistics stay fixed, its scale and
            offset keep training.
        activation: the activation applied after the (folded) layer; None uses the wrapped
            layer's own. relu and relu6 are fused into the op as TFLite fuses them.
        decay: moving-average decay of the activation ranges.
        per_channel: one weight scale per output channel (False: one per kernel).
    """

    def __init__(self, layer, batch_norm=None, activation=None, decay: float = 0.99,
                 per_channel: bool = True, **kwargs):
        super().__init__(layer, **kwargs)
        base = self.base
        self.kind = kind_of(base)
        if self.kind is None:
            raise ValueError(
                f"Argument `layer` must be one of {[c.__name__ for c in KINDS]} (or a "
                f"PruneLowMagnitude wrapping one). Received: layer '{base.name}' "
                f"({type(base).__name__})")
        own = activation_name(getattr(base, "activation", None))
        if activation is not None and own != "linear":
            raise ValueError(
                f"Argument `activation` can only be given when layer '{base.name}' has no "
                f"activation of its own. Received: activation={activation!r} on a layer with "
                f"activation='{own}'")
        self.activation_name = own if activation is None else activation_name(
            keras.activations.get(activation))
        self.activation = keras.activations.get(self.activation_name)
        self.batch_norm = batch_norm
        self.decay = decay
        self.per_channel = bool(per_channel)
        fused = self.activation_name in FUSED_ACTIVATIONS
        self.pre_quantizer = None if fused else FakeQuant(decay, name="pre_activation")
        self.mid_quantizer = FakeQuant(decay, name="mid") if self.kind.has_mid else None

    @property
    def base(self) -> keras.layers.Layer:
        """The Dense/convolution layer itself (inside a `PruneLowMagnitude`, if any)."""
        return self.layer.layer if isinstance(self.layer, PruneLowMagnitude) else self.layer

    @property
    def quantizers(self) -> list[FakeQuant]:
        """The ranges inside the layer: between a separable convolution's two ops, and before
        an activation that TFLite does not fuse. The output's range is the `FakeQuant` that
        follows the wrapper."""
        return [q for q in (self.mid_quantizer, self.pre_quantizer) if q is not None]

    @property
    def output_range(self) -> tuple[float, float] | None:
        """The fixed output range of the activation's int8 kernel (softmax, ...), if any."""
        return FIXED_RANGES.get(self.activation_name)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.batch_norm is not None and not self.batch_norm.built:
            self.batch_norm.build(self.base.compute_output_shape(input_shape))
        for q in self.quantizers:
            q.build(())
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.base.compute_output_shape(input_shape)

    def folded_weights(self) -> tuple[list, object]:
        """The kernels and bias with the batch norm folded in (float, not rounded)."""
        base = self.base
        if self.kind.weights is not None:
            return self.kind.weights(base)
        kernels = [getattr(base, name) for name in self.kind.kernels]
        bias = base.bias if base.use_bias else None
        if self.batch_norm is None:
            return kernels, bias
        scale, offset = batch_norm_affine(self.batch_norm)
        if bias is not None:
            offset = offset + bias * scale
        return self.kind.fold(kernels, scale), offset

    def call(self, inputs, training=None, mask=None):
        kernels, bias = self.folded_weights()
        if not is_float():
            kernels = [q(k, self.per_channel) for q, k in zip(self.kind.quantize, kernels)]

        def mid(t):
            return self.mid_quantizer(t, training=training)

        y = self.kind.apply(self.base, inputs, kernels, mid)
        if bias is not None:
            y = y + bias
        if self.pre_quantizer is not None:
            y = self.pre_quantizer(y, training=training)
        return self.activation(y)

    def get_config(self):
        config = super().get_config()
        config.update(
            batch_norm=None if self.batch_norm is None
            else keras.saving.serialize_keras_object(self.batch_norm),
            activation=self.activation_name,
            decay=self.decay,
            per_channel=self.per_channel,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"),
                                                      custom_objects=custom_objects)
        bn = config.pop("batch_norm", None)
        if bn is not None:
            bn = keras.saving.deserialize_keras_object(bn, custom_objects=custom_objects)
        base = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
        if activation_name(getattr(base, "activation", None)) == config.get("activation"):
            config["activation"] = None  # the wrapped layer's own
        return cls(layer, batch_norm=bn, **config)
