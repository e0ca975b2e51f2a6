import numpy as np


def randomize_batchnorm(model, seed: int = 1) -> None:
    """Gives every BatchNormalization layer non-trivial statistics, scales and offsets, so a
    removed channel's constant (its offset) matters."""
    import keras

    rng = np.random.default_rng(seed)
    fills = {"gamma": lambda s: rng.uniform(0.5, 1.5, s), "beta": lambda s: rng.normal(0, 0.5, s),
             "moving_mean": lambda s: rng.normal(0, 0.2, s),
             "moving_variance": lambda s: rng.uniform(0.5, 2.0, s)}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            for v in layer.weights:
                if v.name in fills:
                    v.assign(fills[v.name](tuple(v.shape)).astype("float32"))


def max_relative_difference(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
