"""`cluster()`: a model whose weights share a few values each, zeros kept; and the constraints
that keep them shared while the model fine-tunes.

Example:
>>> small = tfimp.cluster(tfimp.strip(pruned), clusters=16)      # doctest: +SKIP
>>> small.compile("adam", "sparse_categorical_crossentropy")     # doctest: +SKIP
>>> small.fit(x, y, epochs=2)       # centroids train; sharing and zeros stay exact
>>> tfimp.export.to_micro(..., compression="auto")  # 4-bit LUT indices where they pay
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from tfimp._util import validate as v
from tfimp.clustering.constraint import ClusterConstraint
from tfimp.clustering.kmeans import INITS, Clustered, cluster_array
from tfimp.sparsity import engine
from tfimp.sparsity.registry import is_prunable, prunable_weights


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be True or False. Received: {name}={value!r}")
    return value


def _targets(model, exclude) -> Iterable[tuple]:
    """(layer, variable) pairs of the prunable weights of layers not excluded."""
    for layer in engine.walk_layers(model):
        if isinstance(layer, keras.Model) or not is_prunable(layer):
            continue
        if any(engine.matches(layer, sel) for sel in exclude):
            continue
        for var in prunable_weights(layer):
            yield layer, var


def _channels_last(layer, var) -> tuple[int, ...]:
    """The shape whose last axis is the weight's output channel (as TFLite quantizes it)."""
    shape = tuple(var.shape)
    depthwise = isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D))
    if (depthwise and var.path.endswith("kernel")) or var.path.endswith("depthwise_kernel"):
        return (*shape[:-2], shape[-2] * shape[-1])
    return shape


def _copy(model) -> keras.Model:
    graph = engine._is_graph_model(model)
    if engine.is_pruned(model):
        if not graph:
            raise ValueError(f"Argument `model` ('{model.name}') is a subclassed model pruned in "
                             "place; tfimp.cluster returns a new model and leaves its input "
                             "alone. Strip it first (tfimp.strip(model)) and cluster the result.")
        return engine.strip(model)
    if not graph:
        try:
            return engine._copy_subclassed(model)
        except ValueError:
            raise ValueError(f"Argument `model` ('{model.name}', {type(model).__name__}) is a "
                             "subclassed model that does not rebuild from its config, so "
                             "tfimp.cluster cannot copy it (it returns a new model). Implement "
                             "get_config() and from_config() on the class.") from None
    return keras.models.clone_model(model, clone_function=engine._copy_layer, recursive=True)


def cluster(
    model: keras.Model,
    clusters: int = 16,
    per_channel: bool = False,
    *,
    exclude=(),
    init: str = "linear",
    seed: int = 0,
) -> keras.Model:
    """A copy of `model` whose prunable weights share at most `clusters` values each.

    Each weight tensor (each output channel with `per_channel`) is clustered by k-means over
    its non-zero weights; zeros stay exactly 0 and are one of the `clusters` values, so a
    pruned model keeps its sparsity and `clusters=16` gives 4-bit LUT indices in TFLite
    Micro. A pruned model is stripped first: its masks become the zero cluster. The copy's
    clustered weights carry a `ClusterConstraint`, so fine-tuning it (fit or a custom loop,
    any optimizer) trains the shared values and keeps them shared and the zeros at 0.
    `model` itself is not modified.

    Args:
        model: a built Keras 3 model, plain or pruned (a subclassed one must copy through its
            config, and be stripped first if it was pruned in place).
        clusters: shared values per tensor (per channel), zero included; >= 2.
        per_channel: cluster each output channel on its own (use it with per-channel int8
            quantization, TFLite's default, where each channel has its own LUT).
        exclude: layer names, glob patterns or layer classes to leave as they are.
        init: "linear" (centroids spread over the weight range) or "kmeans++".
        seed: seed of "kmeans++" (the result is deterministic for a seed).

    Raises:
        ValueError: bad arguments, a model that cannot be copied, or a tensor with fewer
            distinct non-zero values than `clusters` asks to share.
    """
    engine.check_model(model)
    v.integer("clusters", clusters, 2)
    v.integer("seed", seed, 0)
    _check_flag("per_channel", per_channel)
    if init not in INITS:
        raise ValueError(f"Argument `init` must be one of {list(INITS)}. Received: init={init!r}")
    exclude = _selectors(model, exclude)
    result = _copy(model)
    for layer, var in _targets(result, exclude):
        shape = _channels_last(layer, var)
        weights = keras.ops.convert_to_numpy(var).reshape(shape)
        if not np.all(np.isfinite(weights)):
            v.fail("model", v.Described(f"<model with non-finite weights in '{layer.name}'>"),
                   f"a model with finite weights to cluster; '{var.path}' holds NaN or "
                   "infinite values")
        try:
            clustered = cluster_array(weights, clusters, per_channel=per_channel, init=init,
                                      seed=seed)
        except ValueError as e:
            raise ValueError(f"Layer '{layer.name}' weight '{var.path}': {e}") from None
        var.assign(clustered.values.reshape(var.shape))
        _attach(var, clustered, tuple(var.shape))
    return result


def _selectors(model, exclude) -> tuple:
    exclude = tuple(exclude) if not isinstance(exclude, (str, type)) else (exclude,)
    engine.check_selectors(model, exclude, "exclude")
    return exclude


def _attach(var, clustered: Clustered, shape: tuple) -> None:
    base = var.constraint
    if isinstance(base, ClusterConstraint):
        base = base.base
    var.constraint = ClusterConstraint(clustered.segments.reshape(shape),
                                       clustered.num_segments, base)


def keep_shared(model: keras.Model, per_channel: bool = False, *, exclude=()) -> keras.Model:
    """Puts `ClusterConstraint`s back on a clustered model's weights, in place.

    The clusters are read from the weights themselves (equal values share a cluster; with
    `per_channel`, within each output channel), e.g. after loading a model saved from
    `cluster`'s result: constraints live on the variables and are not saved with the model.
    """
    engine.check_model(model)
    _check_flag("per_channel", per_channel)
    for layer, var in _targets(model, _selectors(model, exclude)):
        shape = _channels_last(layer, var)
        weights = keras.ops.convert_to_numpy(var).reshape(shape)
        _attach(var, _shared(weights, per_channel), tuple(var.shape))
    return model


def _shared(weights: np.ndarray, per_channel: bool) -> Clustered:
    view = weights.reshape(-1, weights.shape[-1]).T if per_channel else weights.reshape(1, -1)
    segments = np.full(view.shape, -1, np.int32)
    used = 0
    for c in range(view.shape[0]):
        nonzero = view[c] != 0
        values, labels = np.unique(view[c][nonzero], return_inverse=True)
        segments[c][nonzero] = labels + used
        used += values.size
    segments = segments.T.reshape(weights.shape) if per_channel else segments.reshape(
        weights.shape)
    return Clustered(weights, segments, used)


def stop_sharing(model: keras.Model) -> keras.Model:
    """Removes the `ClusterConstraint`s (keeping each weight's own constraint), in place."""
    engine.check_model(model)
    for _, var in _targets(model, ()):
        if isinstance(var.constraint, ClusterConstraint):
            var.constraint = var.constraint.base
    return model


def shared_values_per_tensor(model: keras.Model, per_channel: bool = False) -> dict[str, int]:
    """Distinct values of each prunable weight (the most of any channel with `per_channel`),
    zero included, keyed by the weight's path."""
    out = {}
    for layer, var in _targets(model, ()):
        weights = keras.ops.convert_to_numpy(var).reshape(_channels_last(layer, var))
        view = weights.reshape(-1, weights.shape[-1]).T if per_channel else weights.reshape(1, -1)
        out[var.path] = max(int(np.unique(row).size) for row in view)
    return out
