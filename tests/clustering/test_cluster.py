"""`tfimp.clustering.cluster` on real Keras models: shared values, exact zeros, fine-tuning."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.clustering import (
    ClusterConstraint,
    cluster,
    keep_shared,
    shared_values_per_tensor,
    stop_sharing,
)


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="fc"),
    ])


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 10, n)


def _kernels(model) -> dict:
    """Layer name -> kernel."""
    return {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers
            if hasattr(layer, "kernel")}


def test_pruned_model_keeps_its_masks_and_shares_values():
    pruned = tfimp.prune(_cnn(), 0.6)
    masks = {k.split("/")[0].removeprefix("prune_"): m for k, m in tfimp.get_masks(pruned).items()}
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in pruned.weights}
    out = cluster(pruned, clusters=5)
    assert not tfimp.is_pruned(out)
    for layer, w in _kernels(out).items():
        assert np.array_equal(w != 0, masks[layer] != 0), layer
        assert np.unique(w).size <= 5
    assert all(np.array_equal(keras.ops.convert_to_numpy(v), before[v.path])
               for v in pruned.weights), "the input model must not change"
    again = cluster(pruned, clusters=5)
    for layer, w in _kernels(again).items():
        np.testing.assert_array_equal(w, _kernels(out)[layer])


def test_fit_trains_the_shared_values_and_keeps_them_shared():
    x, y = _data()
    model = cluster(tfimp.prune(_cnn(), 0.5), clusters=4, per_channel=True)
    before = _kernels(model)
    model.compile(keras.optimizers.AdamW(1e-2, weight_decay=0.1),
                  "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = _kernels(model)
    for path in before:
        assert np.array_equal(after[path] == 0, before[path] == 0), path
        assert not np.allclose(after[path], before[path]), f"{path} did not train"
    assert max(shared_values_per_tensor(model, per_channel=True).values()) <= 4


def test_custom_loop_keeps_sharing():
    import tensorflow as tf

    x, y = _data(16)
    model = cluster(_cnn(), clusters=3)
    opt = keras.optimizers.SGD(0.5)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    assert set(shared_values_per_tensor(model).values()) == {3}


def test_per_channel_follows_tflite_channels_of_depthwise_kernels():
    out = cluster(_cnn(), clusters=3, per_channel=True)
    dw = _kernels(out)["dw"]  # (3, 3, 4, 2): TFLite channels are the 8 = 4 x 2
    channels = dw.reshape(9, 8)
    assert all(np.unique(channels[:, c]).size <= 3 for c in range(8))
    assert np.unique(dw).size > 3


def test_exclude_leaves_a_layer_alone():
    model = _cnn()
    out = cluster(model, clusters=3, exclude=["fc"])
    np.testing.assert_array_equal(_kernels(out)["fc"], _kernels(model)["fc"])
    assert not isinstance(out.get_layer("fc").kernel.constraint, ClusterConstraint)


def test_constraint_round_trips_through_its_config():
    out = cluster(_cnn(), clusters=4)
    constraint = out.get_layer("fc").kernel.constraint
    clone = ClusterConstraint.from_config(constraint.get_config())
    np.testing.assert_array_equal(clone.segments, constraint.segments)
    w = np.random.default_rng(3).standard_normal(constraint.segments.shape).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(w)),
                               keras.ops.convert_to_numpy(constraint(w)))


def test_saved_model_gets_its_constraints_back(tmp_path):
    x, y = _data(16)
    path = tmp_path / "clustered.keras"
    cluster(tfimp.prune(_cnn(), 0.5), clusters=4).save(path)
    loaded = keras.models.load_model(path)
    assert not any(isinstance(v.constraint, ClusterConstraint) for v in loaded.weights)
    keep_shared(loaded)
    loaded.compile("adam", "sparse_categorical_crossentropy")
    loaded.fit(x, y, epochs=1, verbose=0)
    assert max(shared_values_per_tensor(loaded).values()) <= 4
    stop_sharing(loaded)
    assert not any(isinstance(v.constraint, ClusterConstraint) for v in loaded.weights)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"Layer 'fc' .*clusters <= "):
        cluster(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="fc")]),
                clusters=16)
    with pytest.raises(ValueError, match="`clusters` must be an integer >= 2"):
        cluster(_cnn(), clusters=1)
    with pytest.raises(ValueError, match="`init` must be one of"):
        cluster(_cnn(), init="random")
    with pytest.raises(ValueError, match="`per_channel` must be True or False"):
        cluster(_cnn(), per_channel="yes")
    with pytest.raises(ValueError, match="matches no layer"):
        cluster(_cnn(), exclude=["nope"])

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="does not rebuild from its config.*get_config"):
        cluster(sub, clusters=2)


def test_subclassed_models_that_rebuild_from_config_are_copied():
    @keras.saving.register_keras_serializable(package="tfimp_test")
    class Tiny(keras.Model):
        def __init__(self, units=6, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.d = keras.layers.Dense(units)

        def call(self, x):
            return self.d(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    model = Tiny()
    model(np.zeros((1, 5), "float32"))
    before = keras.ops.convert_to_numpy(model.d.kernel).copy()
    out = cluster(model, clusters=3)
    assert out is not model and np.unique(keras.ops.convert_to_numpy(out.d.kernel)).size == 3
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.d.kernel), before)
