"""Tiny models and data for the IMP tests."""

import keras
import numpy as np


def toy_data(n=120, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, features)) * 2
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, features))).astype("float32")
    return x, y


def builder(lr=0.05, units=16, features=8, classes=3, dropout=0.0):
    def build():
        layers = [keras.Input((features,)), keras.layers.Dense(units, activation="relu")]
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
        layers.append(keras.layers.Dense(classes, activation="softmax", name="out"))
        model = keras.Sequential(layers)
        model.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    return build
