"""The table of prunable weights: which variables of each layer class pruning masks.

`PRUNABLE_WEIGHTS` maps a layer class to a function returning the layer's prunable
variables. It is public: register a custom layer with `register_prunable(cls, fn)`, or give
the layer a `get_prunable_weights()` method.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

__all__ = [
    "NOT_PRUNABLE",
    "PRUNABLE_WEIGHTS",
    "is_prunable",
    "prunable_weights",
    "register_prunable",
]


def _own(layer: keras.layers.Layer, *names: str) -> list:
    """The layer's own variables with these names, in the order given."""
    own = list(layer._trainable_variables) + list(layer._non_trainable_variables)
    by_name = {v.name: v for v in own}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has no weight named {missing}; "
            f"it has {sorted(by_name)}. Is it built, and not quantized?"
        )
    return [by_name[n] for n in names]


def _kernel(layer):
    return _own(layer, "kernel")


def _rnn(layer):
    return _own(layer.cell, "kernel", "recurrent_kernel")


def _mha(layer):
    subs = (layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense)
    return [v for sub in subs for v in _kernel(sub)]


def _bidirectional(layer):
    return prunable_weights(layer.forward_layer) + prunable_weights(layer.backward_layer)


def _time_distributed(layer):
    return prunable_weights(layer.layer)


L = keras.layers
PRUNABLE_WEIGHTS: dict[type, Callable[[keras.layers.Layer], list]] = {
    L.Dense: _kernel,
    L.EinsumDense: _kernel,
    L.Conv1D: _kernel,
    L.Conv2D: _kernel,
    L.Conv3D: _kernel,
    L.Conv1DTranspose: _kernel,
    L.Conv2DTranspose: _kernel,
    L.Conv3DTranspose: _kernel,
    L.DepthwiseConv1D: _kernel,
    L.DepthwiseConv2D: _kernel,
    L.SeparableConv1D: lambda lay: _own(lay, "depthwise_kernel", "pointwise_kernel"),
    L.SeparableConv2D: lambda lay: _own(lay, "depthwise_kernel", "pointwise_kernel"),
    L.Embedding: lambda lay: _own(lay, "embeddings"),
    L.MultiHeadAttention: _mha,
    L.SimpleRNN: _rnn,
    L.LSTM: _rnn,
    L.GRU: _rnn,
    L.Bidirectional: _bidirectional,
    L.TimeDistributed: _time_distributed,
}

# Layers that hold weights which are not pruned (normalization statistics, scales, ...).
NOT_PRUNABLE: tuple[type, ...] = (
    L.BatchNormalization,
    L.LayerNormalization,
    L.GroupNormalization,
    L.UnitNormalization,
    L.Normalization,
    L.PReLU,
)
if hasattr(L, "RMSNormalization"):
    NOT_PRUNABLE += (L.RMSNormalization,)


def register_prunable(cls: type, weights_fn: Callable[[keras.layers.Layer], list]) -> None:
    """Declares which variables of layer class `cls` are pruned.

    Example:

        tfimp.wrappers.register_prunable(MyDense, lambda layer: [layer.w])
    """
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise TypeError(f"Argument `cls` must be a Keras layer class. Received: cls={cls!r}")
    if not callable(weights_fn):
        raise TypeError(
            f"Argument `weights_fn` must be callable(layer) -> list of variables. "
            f"Received: weights_fn={weights_fn!r}"
        )
    PRUNABLE_WEIGHTS[cls] = weights_fn


def _rule(layer) -> Callable | None:
    if hasattr(layer, "get_prunable_weights"):
        return lambda lay: list(lay.get_prunable_weights())
    for cls in type(layer).__mro__:
        if cls in PRUNABLE_WEIGHTS:
            return PRUNABLE_WEIGHTS[cls]
    return None


def is_prunable(layer) -> bool:
    """Whether tfimp knows which weights of `layer` to prune."""
    return _rule(layer) is not None


def prunable_weights(layer) -> list:
    """The variables of `layer` that pruning masks; raises for layers tfimp doesn't know."""
    rule = _rule(layer)
    if rule is None:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has no entry in "
            "tfimp.wrappers.PRUNABLE_WEIGHTS. Register it with "
            f"tfimp.wrappers.register_prunable({type(layer).__name__}, fn), give it a "
            "`get_prunable_weights()` method, or exclude it: tfimp.prune(..., "
            f"exclude=['{layer.name}'])."
        )
    return list(rule(layer))
