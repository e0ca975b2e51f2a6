"""The Keras wrapper that owns mask variables.

`PruneLowMagnitude` wraps one layer. It creates a 0/1 mask variable per prunable weight and
installs a constraint on that weight, so that Keras optimizers (which apply constraints
after every update) keep pruned weights at exactly 0.0 with any optimizer and weight decay.
Masks change only through `assign_masks`, called by `tfimp.update_masks` and its callback.
"""

from __future__ import annotations

import keras
import numpy as np

from tfimp.sparsity import masks as masks_lib
from tfimp.sparsity import schedules as schedules_lib
from tfimp.sparsity import strategies
from tfimp.sparsity.registry import prunable_weights

__all__ = ["MaskConstraint", "PruneLowMagnitude"]


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
        granularity: what is pruned as one unit (a `tfimp.sparsity.masks.Granularity` or its
            short form: "weight", "block:4x1", "block:16x1:whole", "channel"). A granularity
            whose masks span layers picks the variables through its strategy
            (`tfimp.sparsity.strategies`).
        inner_build_config: the inner layer's `get_build_config()`, to rebuild it on load.
    """

    def __init__(
        self,
        layer,
        schedule=None,
        target=None,
        scope="layer",
        granularity=None,
        inner_build_config=None,
        block=None,
        prune_partial_blocks=False,
        **kwargs,
    ):
        super().__init__(layer, **kwargs)
        self.schedule = None if schedule is None else schedules_lib.get(schedule)
        self.target = target
        self.scope = scope
        if granularity is None and block is not None:  # configs saved before `granularity`
            granularity = masks_lib.Granularity("block", tuple(block), bool(prune_partial_blocks))
        self.granularity = masks_lib.Granularity.parse(granularity)
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
        weights = self.weights_of(self.layer)
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
        return self.weights_of(self.layer)

    def weights_of(self, layer) -> list:
        """The variables of `layer` (this wrapper's or a copy of it) that the masks cover: its
        prunable weights, or what the granularity's strategy masks (a channel's every slice)."""
        strategy = strategies.get(self.granularity)
        return prunable_weights(layer) if strategy is None else strategy.variables(layer)

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
            granularity=self.granularity.get_config(),
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
