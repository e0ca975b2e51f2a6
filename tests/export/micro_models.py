"""Tiny int8 models with zeros (and shared values) in their weights, for the TFLM tests."""

import numpy as np


def sparse_cnn(seed: int = 0, zeros: float = 0.7, levels: int | None = None):
    """Conv2D (per-channel, first axis) + DepthwiseConv2D (last axis) + two Dense layers.

    `zeros` of each kernel are 0; with `levels`, the other weights of a kernel take at most
    `levels` magnitudes (both signs), as clustering leaves them.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        w = weights[0]
        if levels:
            grid = np.linspace(0.1, 1.0, levels) * np.max(np.abs(w))
            w = np.sign(w) * grid[rng.integers(0, levels, w.shape)]
        w[rng.random(w.shape) < zeros] = 0.0
        layer.set_weights([w.astype("float32"), *weights[1:]])
    return model


def sparse_mlp(seed: int = 0, zeros: float = 0.8, sizes=(256, 64, 32, 10)):
    """An MLP whose kernels have `zeros` zeros; its first kernel is by far the largest."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))] + [keras.layers.Dense(n, activation="relu")
                                           for n in sizes[1:-1]] + [keras.layers.Dense(sizes[-1])]
    model = keras.Sequential(layers)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w, b = layer.get_weights()
        w[rng.random(w.shape) < zeros] = 0.0
        layer.set_weights([w, b + 0.05])
    return model


def int8_bytes(model, x, per_channel_dense: bool = True) -> bytes:
    from tfimp.export import Int8, to_tflite

    quant = Int8(integer_io=True, per_channel_dense=per_channel_dense)
    return to_tflite(model, quantization=quant, representative_data=x).model_bytes


def images(n: int = 16, seed: int = 1):
    return np.random.default_rng(seed).random((n, 8, 8, 3)).astype("float32")
