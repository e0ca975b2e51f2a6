"""tfimp.imp(..., granularity="channel"): rounds remove a fraction of the remaining channels,
never revive one, resume from the run folder, and the best round shrinks."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.structure.shrink import shrink

L = keras.layers


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"), L.BatchNormalization(),
        L.ReLU(), L.MaxPooling2D(2), L.Flatten(), L.Dense(16, activation="relu", name="fc"),
        L.Dense(3, activation="softmax", name="out")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32") + y[:, None, None, None]
    return x, y


@pytest.mark.slow
def test_channel_imp_rounds_resume_and_shrink(tmp_path):
    kwargs = dict(rounds=2, rate=0.5, scope="layer", granularity="channel",
                  epochs_per_round=1, batch_size=16, workdir=tmp_path, verbose=0)
    result = tfimp.imp(build, data(), data(32, 1), **kwargs)
    assert [row["channel_sparsity"] for row in result.history] == [0.0, 0.5, 0.75]
    assert "prune_conv/1:bias" not in result.history[1]["layers"]  # named by layer/weight
    assert "conv/bias" in result.history[1]["layers"]
    first, final = result.model(1), result.final
    kernel1 = first.get_layer("conv").kernel.numpy()
    kernel2 = final.get_layer("conv").kernel.numpy()
    gone1 = np.flatnonzero(~kernel1.reshape(-1, 8).any(axis=0))
    gone2 = np.flatnonzero(~kernel2.reshape(-1, 8).any(axis=0))
    assert len(gone1) == 4 and len(gone2) == 6 and set(gone1) <= set(gone2)
    small = shrink(final)
    assert small.get_layer("conv").filters == 2 and small.get_layer("fc").units == 4
    x, _ = data(8, 2)
    np.testing.assert_allclose(small.predict(x, verbose=0), final.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-6)
    again = tfimp.imp(build, data(), data(32, 1), **kwargs)  # resumes: nothing to train
    assert [r["val_accuracy"] for r in again.history] == \
        [r["val_accuracy"] for r in result.history]


def test_channel_imp_refuses_sensitivity_rates(tmp_path):
    with pytest.raises(ValueError, match="sensitivity_budget"):
        tfimp.imp(build, data(), data(32, 1), rounds=1, granularity="channel",
                  sensitivity_budget=0.01, workdir=tmp_path, verbose=0)
