"""Which variables of a layer a channel mask covers: every trainable slice of a channel.

A removed channel's filter and bias, the BatchNormalization scale and offset it passes, its
depthwise filter, and the rows that later layers read it with are all masked, so the masked
model computes exactly what the shrunk model (`tfimp.shrink`) computes.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

__all__ = ["CHANNEL_VARIABLES", "channel_variables", "has_channel_variables"]

L = keras.layers


def _named(layer, names: list[str]) -> list:
    own = {v.name: v for v in list(layer._trainable_variables)
           + list(layer._non_trainable_variables)}
    missing = [n for n in names if n not in own]
    if missing:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) has no weight named "
                         f"{missing}; it has {sorted(own)}. Is it built, and not quantized?")
    return [own[n] for n in names]


def _kernel_bias(layer) -> list:
    return _named(layer, ["kernel"] + (["bias"] if layer.use_bias else []))


def _separable(layer) -> list:
    names = ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if layer.use_bias else [])
    return _named(layer, names)


def _batch_norm(layer) -> list:
    return _named(layer, [n for n, on in (("gamma", layer.scale), ("beta", layer.center)) if on])


CHANNEL_VARIABLES: dict[type, Callable[[keras.layers.Layer], list]] = {
    L.Dense: _kernel_bias,
    L.Conv1D: _kernel_bias, L.Conv2D: _kernel_bias, L.Conv3D: _kernel_bias,
    L.Conv1DTranspose: _kernel_bias, L.Conv2DTranspose: _kernel_bias,
    L.Conv3DTranspose: _kernel_bias,
    L.DepthwiseConv1D: _kernel_bias, L.DepthwiseConv2D: _kernel_bias,
    L.SeparableConv1D: _separable, L.SeparableConv2D: _separable,
    L.BatchNormalization: _batch_norm,
}


def _rule(layer):
    for cls in type(layer).__mro__:
        if cls in CHANNEL_VARIABLES:
            return CHANNEL_VARIABLES[cls]
    return None


def has_channel_variables(layer) -> bool:
    """Whether channel pruning knows how to mask `layer`."""
    return _rule(layer) is not None


def channel_variables(layer) -> list:
    """The variables of `layer` that a channel mask covers."""
    rule = _rule(layer)
    if rule is None:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has no channel axis that channel "
            "pruning can cut. Channel pruning cuts Conv1D/2D/3D, Conv*Transpose, Dense, "
            "SeparableConv, DepthwiseConv and BatchNormalization layers; exclude this layer "
            "or use granularity='weight'."
        )
    return rule(layer)
