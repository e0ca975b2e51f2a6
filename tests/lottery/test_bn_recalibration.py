"""After a round trains, BatchNormalization statistics are recomputed from training batches
with the round's final weights (`IMPConfig.recalibrate_bn`)."""

import pathlib
import sys

import keras
import numpy as np
import pytest

import tfimp
from tfimp.lottery.batchnorm import recalibrate

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers_imp import toy_data  # noqa: E402

X, Y = toy_data(n=150)


def _bn_builder():
    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((8,)), keras.layers.Dense(16, name="fc"),
            keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
            keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
    return build


def test_the_moving_statistics_become_the_average_of_the_batch_statistics():
    model = _bn_builder()()
    batches = [X[i:i + 50] for i in range(0, 150, 50)]
    assert recalibrate(model, batches) == 3
    h = [model.get_layer("fc")(b).numpy() for b in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([a.mean(0) for a in h], 0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([a.var(0) for a in h], 0), rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99  # restored


def test_a_model_without_batch_normalization_is_untouched():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    before = [w.copy() for w in model.get_weights()]
    assert recalibrate(model, [X[:10]]) == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _imp(tmp_path, **kw):
    return tfimp.imp(_bn_builder(), (X[:120], Y[:120]), (X[120:], Y[120:]), rounds=2,
                     rate=0.5, epochs_per_round=1, batch_size=30, workdir=tmp_path / "w",
                     verbose=0, **kw)


def test_every_round_is_evaluated_and_saved_with_recalibrated_statistics(tmp_path):
    result = _imp(tmp_path)
    assert [r.get("bn_recalibrated_batches") for r in result.history] == [4, 4, 4]
    model = result.model(2)  # the saved round, as the run evaluated it
    again = result.model(2)
    recalibrate(again, [X[i:i + 30] for i in range(0, 120, 30)])
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(),
                               again.get_layer("bn").moving_mean.numpy(), rtol=1e-4, atol=1e-5)
    off = _imp(tmp_path / "off", recalibrate_bn=0)
    assert all("bn_recalibrated_batches" not in r for r in off.history)


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_recalibrate_bn(value):
    with pytest.raises(ValueError, match=r"Argument `recalibrate_bn` must be .*Received"):
        tfimp.IMPConfig(recalibrate_bn=value)
