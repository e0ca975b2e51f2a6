"""A tiny two-hidden-layer model and data for the device tests."""

import keras
import numpy as np


def toy_data(n=200, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, features)) * 2
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, features))).astype("float32")
    return x, y


def builder(features=8, hidden=(32, 16), classes=3, lr=0.05):
    def build():
        keras.utils.set_random_seed(0)
        layers = [keras.Input((features,))]
        layers += [keras.layers.Dense(h, activation="relu", name=f"h{i}")
                   for i, h in enumerate(hidden)]
        layers.append(keras.layers.Dense(classes, activation="softmax", name="out"))
        model = keras.Sequential(layers)
        model.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
    return build
