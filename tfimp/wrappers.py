"""The Keras wrapper that owns mask variables, and the table of prunable weights.

`PruneLowMagnitude` wraps one layer. It creates a 0/1 mask variable per prunable weight and
installs a constraint on that weight, so that Keras optimizers (which apply constraints
after every update) keep pruned weights at exactly 0.0 with any optimizer and weight decay.
Masks change only through `assign_masks`, called by `tfimp.update_masks` and its callback.

`PRUNABLE_WEIGHTS` maps a layer class to a function returning the layer's prunable
variables. It is public: register a custom layer with `register_prunable(cls, fn)`, or give
the layer a `get_prunable_weights()` method.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from tfimp import schedules as schedules_lib

__all__ = [
    "NOT_PRUNABLE",
    "PRUNABLE_WEIGHTS",
    "MaskConstraint",
    "PruneLowMagnitude",
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


@keras.saving.register_keras_serializable(package="tfimp")
class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by its mask after the weight's own constraint, if any.

    Args:
        mask: the 0/1 mask variable (owned and saved by a `PruneLowMagnitude`); None
            applies `base` only, until a wrapper links a mask.
        base: the weight's own constraint, applied first.
    """

    def __init__(self, mask=None, base=None):
        self.mask = mask
        self.base = base

    def __call__(self, w):
        if self.base is not None:
            w = self.base(w)
        if self.mask is None:
            return w
        dtype = keras.backend.standardize_dtype(w.dtype)
        mask = self.mask if self.mask.dtype == dtype else keras.ops.cast(self.mask, dtype)
        return w * mask

    def get_config(self):
        # The mask is a variable owned by the wrapper, saved with it; only the base is config.
        return {"base": keras.constraints.serialize(self.base) if self.base else None}

    @classmethod
    def from_config(cls, config):
        base = config.get("base")
        return cls(base=keras.constraints.deserialize(base) if base else None)


@keras.saving.register_keras_serializable(package="tfimp")
class PruneLowMagnitude(keras.layers.Wrapper):
    """Wraps a layer whose prunable weights are kept equal to `weight * mask`.

    Args:
        layer: the layer to prune (built, or buildable from `inner_build_config`).
        schedule: a `tfimp.schedules.PruningSchedule`, or None for masks that only change
            when set explicitly (as in IMP rounds).
        target: this layer's final sparsity when it differs from the schedule's; the layer
            then follows the schedule scaled by `target / schedule.end_sparsity()`.
        scope: "layer" (each tensor ranked alone) or "global" (ranked with all other
            global-scope tensors of the model).
        block: prune blocks of this shape over the trailing weight dimensions.
        prune_partial_blocks: with `block`, always prune the blocks that stick out past the
            weight's edge (see `tfimp.masks`).
        inner_build_config: the inner layer's `get_build_config()`, to rebuild it on load.
    """

    def __init__(
        self,
        layer,
        schedule=None,
        target=None,
        scope="layer",
        block=None,
        inner_build_config=None,
        prune_partial_blocks=False,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.schedule = None if schedule is None else schedules_lib.get(schedule)
        self.target = target
        self.scope = scope
        self.block = None if block is None else tuple(block)
        self.prune_partial_blocks = bool(prune_partial_blocks)
        self.inner_build_config = inner_build_config
        self.masks = []
        self.driven = False
        self._base_constraints = []
        self._pruned_at = None  # Python copy of `pruning_step`, so callbacks need no read

    def build(self, input_shape=None):
        if not self.layer.built:
            if self.inner_build_config is None:
                self.layer.build(input_shape)
            else:
                self.layer.build_from_config(self.inner_build_config)
        if self.inner_build_config is None:
            self.inner_build_config = self.layer.get_build_config()
        weights = prunable_weights(self.layer)
        if not weights:
            raise ValueError(f"Layer '{self.layer.name}' has no prunable weights to wrap.")
        self.masks = [
            self.add_weight(
                name=f"mask_{i}",
                shape=tuple(w.shape),
                initializer="ones",
                dtype=w.dtype,
                trainable=False,
                aggregation="only_first_replica",
            )
            for i, w in enumerate(weights)
        ]
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
        )
        self._base_constraints = [w.constraint for w in weights]
        for w, m, base in zip(weights, self.masks, self._base_constraints):
            w.constraint = MaskConstraint(m, base)
        self.built = True

    @property
    def pruned_weights(self) -> list:
        return prunable_weights(self.layer)

    def weight_names(self) -> list[str]:
        """Stable names of the pruned weights: `<wrapper>/<variable path tail>`."""
        return [f"{self.name}/{i}:{w.name}" for i, w in enumerate(self.pruned_weights)]

    def assign_masks(self, masks: list[np.ndarray], step: int | None = None) -> None:
        """Sets the masks and zeroes the pruned weights at once."""
        for w, m, new in zip(self.pruned_weights, self.masks, masks):
            m.assign(np.asarray(new, dtype=m.dtype))
            w.assign(w * keras.ops.cast(m, w.dtype))
        if step is not None:
            self.pruning_step.assign(int(step))
            self._pruned_at = int(step)

    def last_pruned_step(self, refresh: bool = False) -> int:
        """The step of the last scheduled mask update; -1 before the first."""
        if refresh or self._pruned_at is None:
            self._pruned_at = _read_int(self.pruning_step)
        return self._pruned_at

    def get_masks(self) -> list[np.ndarray]:
        return [keras.ops.convert_to_numpy(m) for m in self.masks]

    def schedule_pending(self) -> bool:
        """True while the schedule still has pruning steps ahead of the current step."""
        if self.schedule is None:
            return False
        last = self.schedule.last_step()
        return last is None or self.last_pruned_step(refresh=True) < last

    def call(self, inputs, *args, training=None, **kwargs):
        if training and not self.driven and self.schedule_pending():
            raise RuntimeError(
                f"Layer '{self.name}' is pruned by a schedule, but nothing updates its masks "
                "during training. Pass the callback: model.fit(..., callbacks="
                "[tfimp.callbacks.UpdateMasks()]), or in a custom loop call "
                "tfimp.update_masks(model, step=optimizer.iterations) before each step. To "
                "train with fixed masks, "
                "prune with schedule=None (or a float sparsity) instead."
            )
        if self.layer._call_has_training_arg:
            kwargs["training"] = training
        return self.layer(inputs, *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            schedule=None if self.schedule is None else schedules_lib.serialize(self.schedule),
            target=self.target,
            scope=self.scope,
            block=None if self.block is None else list(self.block),
            prune_partial_blocks=self.prune_partial_blocks,
            inner_build_config=self.inner_build_config,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(
            config.pop("layer"), custom_objects=custom_objects
        )
        return cls(layer, **config)

    def unwrap(self) -> keras.layers.Layer:
        """Restores the inner layer's own constraints and returns it."""
        for w, base in zip(self.pruned_weights, self._base_constraints):
            w.constraint = base
        return self.layer


def _read_int(variable) -> int:
    import tensorflow as tf

    with tf.init_scope():
        return int(keras.ops.convert_to_numpy(variable.value))
