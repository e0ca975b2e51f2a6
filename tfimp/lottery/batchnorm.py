"""Recomputing BatchNormalization statistics after a round trains (`IMPConfig.recalibrate_bn`).

A round of a few epochs moves the weights faster than BatchNormalization's moving averages
(momentum 0.99) follow them, so a model evaluated with them can be far worse than its weights
are. Recomputing the statistics on training batches with the final weights fixes that, as the
"adaptive batch normalization" of EagleEye (Li et al., ECCV 2020) does for pruned candidates.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

__all__ = ["batchnorm_layers", "recalibrate"]


def batchnorm_layers(model: keras.Model) -> list:
    """The model's BatchNormalization layers, nested ones (in wrappers, sub-models) too."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate(model: keras.Model, batches: Iterable) -> int:
    """Replaces the moving mean and variance of every BatchNormalization layer of `model`
    with the average of their batch statistics over `batches` (model inputs); returns how
    many batches were used (0: the model has no such layer, nothing changed)."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    n = 0
    try:
        for x in batches:
            # moving = moving * n/(n+1) + batch / (n+1): the running average of the batches.
            for layer in layers:
                layer.momentum = n / (n + 1)
            model(x, training=True)
            n += 1
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return n
