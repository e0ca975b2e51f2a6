"""Keras applications (weights=None): 50% of the channels pruned and shrunk, same outputs."""

import keras
import numpy as np
import pytest
from structure_helpers import max_relative_difference, randomize_batchnorm

import tfimp
from tfimp.structure.shrink import shrink

APPS = ["MobileNetV2", "ResNet50", "EfficientNetB0", "DenseNet121"]


@pytest.mark.slow
@pytest.mark.parametrize("name", APPS)
def test_application_prunes_half_its_channels_and_shrinks_exactly(name):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3),
                                              classes=10, classifier_activation=None)
    randomize_batchnorm(model)
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    small = shrink(pruned)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    assert max_relative_difference(pruned(x, training=False), small(x, training=False)) < 1e-4
    assert small.count_params() < 0.4 * model.count_params()
    assert small.output_shape == model.output_shape
