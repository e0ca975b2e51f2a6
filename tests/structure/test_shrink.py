"""shrink(): the channels go for real and the outputs stay (MLPerf Tiny builders, hand-built
graphs, constants folded into biases), the input model is untouched, and the report adds up."""

import keras
import numpy as np
import pytest
from structure_helpers import max_relative_difference, randomize_batchnorm

import tfimp
from tfimp.sparsity.engine import strip
from tfimp.structure.report import structure_report
from tfimp.structure.shrink import shrink

L = keras.layers
RNG = np.random.default_rng(0)

BUILDERS = {
    "lenet5": lambda: tfimp.models.lenet5(classifier_activation=None),
    "resnet8": lambda: tfimp.models.resnet8(filters=8, classifier_activation=None),
    "ds_cnn": lambda: tfimp.models.ds_cnn(filters=16, classifier_activation=None),
    "mobilenet_v1": lambda: tfimp.models.mobilenet_v1(alpha=0.25, input_shape=(32, 32, 3),
                                                      classifier_activation=None),
}


def sample(model, n=3):
    return RNG.normal(size=(n, *model.input_shape[1:])).astype("float32")


def weights_of(model):
    return [v.numpy().copy() for v in model.weights]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_shrunk_builders_compute_what_the_masked_model_computes(name):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    randomize_batchnorm(model)
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    before = weights_of(pruned)
    small = shrink(pruned)
    x = sample(model)
    assert max_relative_difference(pruned(x), small(x)) < 1e-4
    assert small.output_shape == model.output_shape and small.input_shape == model.input_shape
    assert small.count_params() < 0.5 * model.count_params()
    assert not tfimp.is_pruned(small)
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(pruned)))
    report = structure_report(small, reference=model)
    assert report.macs_after < 0.5 * report.macs_before


def test_lenet5_shapes_and_report_are_exact():
    keras.utils.set_random_seed(0)
    model = tfimp.models.lenet5(classifier_activation=None)
    small = shrink(tfimp.prune(model, 0.5, granularity="channel"))
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in small.layers
              if layer.weights}
    assert shapes == {"conv1": [(5, 5, 1, 10), (10,)], "conv2": [(5, 5, 10, 25), (25,)],
                      "fc1": [(400, 250), (250,)], "classifier": [(250, 10), (10,)]}
    report = structure_report(small, reference=model)
    rows = {r.layer: r for r in report.rows}
    assert (rows["conv1"].channels_before, rows["conv1"].channels_after) == (20, 10)
    assert (rows["conv1"].macs_before, rows["conv1"].macs_after) == (24 * 24 * 25 * 20,
                                                                    24 * 24 * 25 * 10)
    assert (rows["fc1"].macs_before, rows["fc1"].macs_after) == (800 * 500, 400 * 250)
    assert report.params_before == 431_080 and report.params_after == small.count_params()
    assert "conv1" in str(report) and "20 -> 10" in str(report)
    wrapped = structure_report(tfimp.prune(model, 0.5, granularity="channel"))
    assert wrapped.to_dict() == report.to_dict()


def test_stripped_and_wrapped_models_shrink_alike(tmp_path):
    keras.utils.set_random_seed(0)
    model = BUILDERS["resnet8"]()
    randomize_batchnorm(model)
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    a, b = shrink(pruned), shrink(strip(pruned))
    x = sample(model)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    path = tmp_path / "small.keras"
    a.save(path)
    loaded = keras.saving.load_model(path, custom_objects={})  # plain Keras only
    np.testing.assert_array_equal(loaded(x).numpy(), a(x).numpy())


def test_an_unpruned_model_keeps_every_channel():
    keras.utils.set_random_seed(0)
    model = BUILDERS["ds_cnn"]()
    small = shrink(model)
    assert small is not model and small.count_params() == model.count_params()
    x = sample(model)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)


def graph_zoo():
    """Residual Add, Concatenate, squeeze-and-excitation, a shared layer, a nested model,
    per-channel dropout, depthwise with a multiplier and Flatten into Dense, in one model."""
    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 8))
    inner = keras.Model(i, L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 1, name="inner_c")(i))),
                        name="inner")
    x = keras.Input((6, 6, 3))
    h = L.BatchNormalization(name="bn0")(L.Conv2D(8, 3, padding="same", name="stem")(x))
    shared = L.Conv2D(8, 3, padding="same", name="shared")
    y = shared(L.ReLU()(shared(h)))
    h = L.Add()([h, L.BatchNormalization(name="bn1")(y)])
    s = L.Dense(3, activation="relu", name="se_reduce")(L.GlobalAveragePooling2D()(h))
    s = L.Reshape((1, 1, 8))(L.Dense(8, activation="sigmoid", name="se_expand")(s))
    h = inner(L.Dropout(0.2, noise_shape=(None, 1, 1, 8))(L.Multiply()([h, s])))
    c = L.Concatenate()([h, L.Conv2D(5, 1, name="side")(x)])
    c = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(L.BatchNormalization(name="bnc")(c))
    c = L.Conv2D(6, 1, activation="swish", name="pw")(c)
    out = L.Dense(4, name="head")(L.Dense(7, activation="tanh", name="fc")(L.Flatten()(c)))
    return keras.Model(x, out)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_shrink_through_every_graph_rule(scope):
    model = graph_zoo()
    randomize_batchnorm(model)
    pruned = tfimp.prune(model, 0.4, granularity="channel", scope=scope)
    small = shrink(pruned)
    x = sample(model, 4)
    assert max_relative_difference(pruned(x), small(x)) < 1e-4
    assert small.count_params() < model.count_params()
    names = {layer.name for layer in small.layers}
    assert "inner" in names  # nested models stay nested
    assert small.get_layer("inner").get_layer("inner_c").filters < 8
    assert small(x, training=True).shape == (4, 4)  # per-channel dropout noise fits too


def constant_channels():
    """Channels whose filters are zero but that still carry a constant (BN offset through a
    sigmoid), read by a valid conv, a 1x1 conv without bias, and a 'same' 3x3 conv."""
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    h = L.Activation("sigmoid")(L.BatchNormalization(name="bn1")(L.Conv2D(6, 3, name="c1")(x)))
    a = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="valid", name="valid")(h))
    p = L.Conv2D(5, 1, use_bias=False, name="c2")(h)
    b = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="same", name="same")(p))
    model = keras.Model(x, L.Dense(3, name="fc")(L.Concatenate()([a, b])))
    randomize_batchnorm(model)
    c1 = model.get_layer("c1")
    c1.kernel.assign(c1.kernel.numpy() * np.isin(np.arange(6), [1, 4], invert=True))
    c2 = model.get_layer("c2")
    c2.kernel.assign(c2.kernel.numpy() * np.isin(np.arange(5), [0, 2], invert=True))
    return model


def test_constants_fold_into_biases_where_exact_and_stay_where_not():
    model = constant_channels()
    before = weights_of(model)
    small = shrink(model)
    x = sample(model)
    assert max_relative_difference(model(x), small(x)) < 1e-5
    assert small.get_layer("c1").filters == 4  # folded into `valid` and into `c2`
    assert small.get_layer("c2").use_bias  # it took a bias for the fold
    assert small.get_layer("c2").filters == 5  # a 'same' 3x3 conv reads its zero channels
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(model)))


def test_every_layer_keeps_a_channel():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,))
    model = keras.Model(x, L.Dense(2, name="out")(L.Dense(3, name="h")(x)))
    out = model.get_layer("out")
    out.kernel.assign(np.zeros((3, 2), "float32"))
    small = shrink(model)
    assert small.get_layer("h").units == 1
    np.testing.assert_allclose(small(np.ones((1, 4))).numpy(), model(np.ones((1, 4))).numpy())


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed"):
        shrink(net)


def other_sources():
    """Sequential, Conv1D, SeparableConv1D, Conv2DTranspose, Conv3D: every kind of source."""
    keras.utils.set_random_seed(0)
    seq = keras.Sequential([keras.Input((12, 3)), L.Conv1D(8, 3, activation="relu", name="c1"),
                            L.SeparableConv1D(6, 3, depth_multiplier=2, name="sep"),
                            L.BatchNormalization(name="bn"), L.Flatten(),
                            L.Dense(5, activation="relu", name="fc"), L.Dense(2, name="out")])
    x = keras.Input((5, 5, 2))
    h = L.Conv2DTranspose(6, 3, strides=2, name="up")(x)
    h = L.Reshape((1, 11, 11, 4))(L.Conv2D(4, 3, padding="same", name="c2d")(h))
    h = L.Conv3D(5, (1, 3, 3), name="c3d")(h)
    vol = keras.Model(x, L.Dense(2, name="head")(L.GlobalAveragePooling3D()(h)))
    return seq, vol


def test_every_kind_of_source_shrinks_exactly():
    for model in other_sources():
        randomize_batchnorm(model)
        pruned = tfimp.prune(model, 0.5, granularity="channel")
        small = shrink(pruned)
        x = sample(model)
        assert max_relative_difference(pruned(x), small(x)) < 1e-4
        assert small.count_params() < model.count_params()


def test_keras_ops_in_the_graph_are_traced_and_reused():
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 6, 3))
    a = L.Conv2D(6, 3, padding="same", name="a")(x)
    b = L.Conv2D(6, 1, name="b")(x)
    h = keras.ops.relu(a + b)
    model = keras.Model(x, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(h * 2.0)))
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    small = shrink(pruned)
    xs = sample(model)
    assert max_relative_difference(pruned(xs), small(xs)) < 1e-5
    assert small.get_layer("a").filters == small.get_layer("b").filters == 3
