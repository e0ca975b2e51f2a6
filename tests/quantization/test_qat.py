"""quantize_aware: the rebuilt graph, folded batch norms, exact masks, save/load, strip, errors."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.quantization import (
    FakeQuant,
    QuantizeWrapper,
    fake_quant_layers,
    is_quantize_aware,
    quantize_aware,
    strip,
)
from tfimp.quantization.fake_quant import unquantized
from tfimp.sparsity.engine import get_masks
from tfimp.wrappers import PruneLowMagnitude

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.random((24, 8, 8, 3)).astype("float32")
Y = RNG.integers(0, 4, 24)


def conv_net(seed: int = 0) -> keras.Model:
    """Conv+BN+ReLU, depthwise+BN+ReLU6, separable, add, pooling, Dense+BN, softmax."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(x)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(name="relu")(h)
    a = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(h)
    a = L.BatchNormalization(name="dw_bn")(a)
    a = L.Activation("relu6", name="dw_relu6")(a)
    b = L.SeparableConv2D(16, 3, padding="same", activation="relu", name="sep")(h)
    h = L.Add(name="add")([a, b])
    h = L.MaxPooling2D(name="pool")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    h = L.Dense(12, name="fc")(h)
    h = L.BatchNormalization(name="fc_bn")(h)
    out = L.Dense(4, activation="softmax", name="out")(L.ReLU(name="fc_relu")(h))
    model = keras.Model(x, out, name="conv_net")
    for layer in model.layers:  # non-trivial statistics, so folding is really tested
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([RNG.uniform(0.5, 2, n), RNG.normal(0, 0.2, n),
                               RNG.normal(0, 0.2, n), RNG.uniform(0.5, 2, n)])
    return model


def test_rebuilt_graph_wraps_kernels_and_leaves_the_model_untouched():
    model = conv_net()
    before = [w.copy() for w in model.get_weights()]
    layers = [layer.name for layer in model.layers]
    qat = quantize_aware(model, representative_data=X)
    assert [layer.name for layer in model.layers] == layers
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    kinds = {layer.name: type(layer).__name__ for layer in qat.layers}
    assert {n for n, k in kinds.items() if k == "QuantizeWrapper"} == {
        "conv", "dw", "sep", "fc", "out"}
    assert not any(isinstance(layer, L.BatchNormalization) for layer in qat.layers)
    assert not {"relu", "dw_relu6", "fc_relu"} & set(kinds)  # fused into their layers
    assert "pool_quant" not in kinds  # max pooling keeps its input's range
    assert {"add_quant", "gap_quant", "conv_quant", "out_quant"} <= set(kinds)
    assert qat.get_layer("conv").activation_name == "relu"
    assert qat.get_layer("dw").activation_name == "relu6"
    assert qat.get_layer("out_quant").fixed_range == (0.0, 255 / 256)
    assert all(q.is_ready for q in fake_quant_layers(qat))


def test_folded_float_path_equals_the_original_model():
    model = conv_net()
    qat = quantize_aware(model, representative_data=X)
    ranges = [q.get_weights() for q in fake_quant_layers(qat)]
    with unquantized():  # weights and activations in float: only the folding differs
        folded = keras.ops.convert_to_numpy(qat(X, training=False))
    np.testing.assert_allclose(folded, model.predict(X, verbose=0), atol=2e-6)
    tfimp.quantization.calibrate(qat, X[:2])  # records nothing left over from above
    after = [q.get_weights() for q in fake_quant_layers(qat)]
    assert all(a[0] >= b[0] and a[1] <= b[1] for a, b in zip(after, ranges))
    assert sum(a[1] < b[1] for a, b in zip(after, ranges)) >= len(ranges) // 2
    quantized = qat.predict(X, verbose=0)
    assert 0 < np.abs(quantized - folded).max() < 0.1


def test_calibration_sets_each_range_to_the_float_min_and_max():
    model = conv_net()
    qat = quantize_aware(model, representative_data=X, batch_size=5)
    relu = keras.Model(model.inputs, model.get_layer("relu").output).predict(X, verbose=0)
    gap = keras.Model(model.inputs, model.get_layer("gap").output).predict(X, verbose=0)
    for q, values in ((qat.get_layer("conv_quant"), relu), (qat.get_layer("gap_quant"), gap),
                      (qat.layers[1], X)):
        got = [float(keras.ops.convert_to_numpy(v)) for v in (q.range_min, q.range_max)]
        np.testing.assert_allclose(got, [min(values.min(), 0), max(values.max(), 0)],
                                   rtol=1e-5, atol=1e-6)


def test_without_data_the_first_training_batch_sets_the_ranges():
    qat = quantize_aware(conv_net())
    assert not any(q.is_ready for q in fake_quant_layers(qat) if q.fixed_range is None)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    assert all(q.is_ready for q in fake_quant_layers(qat))
    assert np.all(np.isfinite(qat.predict(X, verbose=0)))


def test_pruned_weights_stay_exactly_zero_after_every_step():
    pruned = tfimp.prune(conv_net(), 0.6)
    masks = get_masks(pruned)
    qat = quantize_aware(pruned, representative_data=X)
    wrappers = [lay for lay in qat.layers if isinstance(lay, QuantizeWrapper)]
    assert all(isinstance(w.layer, PruneLowMagnitude) for w in wrappers)
    seen = []

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for w in wrappers:
                for var, mask in zip(w.layer.pruned_weights, w.layer.get_masks()):
                    value = keras.ops.convert_to_numpy(var)
                    assert np.all(value[mask == 0] == 0.0)
                    seen.append(np.count_nonzero(value[mask == 1]))

    qat.compile(keras.optimizers.AdamW(0.01, weight_decay=0.1),
                "sparse_categorical_crossentropy")
    start = [keras.ops.convert_to_numpy(v).copy() for w in wrappers for v in w.layer.pruned_weights]
    qat.fit(X, Y, batch_size=6, epochs=2, verbose=0, callbacks=[Check()])
    assert len(seen) == 8 * sum(len(w.layer.pruned_weights) for w in wrappers)
    after = [keras.ops.convert_to_numpy(v) for w in wrappers for v in w.layer.pruned_weights]
    assert any(np.abs(a - b).max() > 0 for a, b in zip(start, after))  # it did train
    kept = {n: m for w in wrappers for n, m in zip(w.layer.weight_names(), w.layer.get_masks())}
    assert list(kept) == list(masks)
    for name, mask in masks.items():
        np.testing.assert_array_equal(kept[name], mask)


def test_save_load_round_trip(tmp_path):
    qat = quantize_aware(tfimp.prune(conv_net(), 0.5), representative_data=X)
    qat.compile("adam", "sparse_categorical_crossentropy")
    qat.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "qat.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), qat.predict(X, verbose=0))
    assert [type(lay) for lay in loaded.layers] == [type(lay) for lay in qat.layers]
    for a, b in zip(loaded.get_weights(), qat.get_weights()):
        np.testing.assert_array_equal(a, b)
    wrapper = loaded.get_layer("sep")
    assert wrapper.mid_quantizer is not None and wrapper.mid_quantizer.is_ready
    config = qat.get_layer("fc").get_config()
    clone = QuantizeWrapper.from_config(config)
    assert clone.get_config() == config
    assert clone.activation_name == "relu" and clone.batch_norm is not None


def test_strip_removes_mask_wrappers_and_keeps_outputs_and_zeros():
    pruned = tfimp.prune(conv_net(), 0.5)
    qat = quantize_aware(pruned, representative_data=X)
    plain = strip(qat)
    assert not any(isinstance(lay.layer, PruneLowMagnitude) for lay in plain.layers
                   if isinstance(lay, QuantizeWrapper))
    np.testing.assert_array_equal(plain.predict(X, verbose=0), qat.predict(X, verbose=0))
    for lay in plain.layers:
        if isinstance(lay, QuantizeWrapper):
            kernel = keras.ops.convert_to_numpy(lay.base.weights[0])
            assert np.mean(kernel == 0) == pytest.approx(0.5, abs=0.02)
    assert strip(plain) is plain
    # tfimp.strip does the same for a quantization-aware model; a plain model passes through.
    also = tfimp.strip(qat)
    assert is_quantize_aware(also)
    assert not any(isinstance(lay.layer, PruneLowMagnitude) for lay in also.layers
                   if isinstance(lay, QuantizeWrapper))
    np.testing.assert_array_equal(also.predict(X, verbose=0), qat.predict(X, verbose=0))
    dense = conv_net()
    assert tfimp.strip(dense) is dense


def test_per_tensor_dense_option():
    qat = quantize_aware(conv_net(), representative_data=X, per_channel_dense=False)
    assert not qat.get_layer("fc").per_channel and qat.get_layer("conv").per_channel


def _subclassed():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    return net


def _model(*layers, shape=(6,)):
    return keras.Sequential([keras.Input(shape), *layers])


@pytest.mark.parametrize("make, error, match", [
    (lambda: {"not": "a model"}, TypeError, r"Argument `model` must be a Keras 3 `keras.Model`"),
    (lambda: keras.Sequential([L.Dense(2)]), ValueError, r"must be a built model"),
    (_subclassed, ValueError, r"must be a Sequential or Functional model"),
    (lambda: _model(L.Embedding(10, 4), L.Flatten(), L.Dense(2), shape=(3,)), ValueError,
     r"Layer 'embedding.*' \(Embedding\) has weights that int8 quantization-aware"),
    (lambda: _model(L.Reshape((2, 3, 1)), L.Conv2DTranspose(2, 2), L.Flatten()), ValueError,
     r"Layer 'conv2d_transpose.*' \(Conv2DTranspose\)"),
    (lambda: _model(L.Reshape((3, 2)), L.LSTM(3)), ValueError, r"\(LSTM\) has weights"),
    (lambda: _model(L.LayerNormalization()), ValueError, r"\(LayerNormalization\) has weights"),
    (lambda: _model(L.Reshape((1, 1, 6)), L.Conv2D(4, 1, groups=2)), ValueError,
     r"grouped convolution \(groups=2\)"),
    (lambda: _model(L.Reshape((2, 3, 1)), L.BatchNormalization(axis=1)), ValueError,
     r"normalizes axis 1 of a rank-4 tensor"),
    (lambda: tfimp.prune(_model(L.Dense(4)), tfimp.PolynomialDecay(0, 0.5, 0, 100)), ValueError,
     r"still being pruned by its schedule"),
    (lambda: quantize_aware(_model(L.Dense(4))), ValueError, r"already quantization-aware"),
])
def test_bad_models_name_the_problem(make, error, match):
    with pytest.raises(error, match=match):
        quantize_aware(make())


def test_shared_kernel_layer_is_refused():
    dense = L.Dense(3, name="shared")
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Add()([dense(a), dense(b)]))
    with pytest.raises(ValueError, match=r"Layer 'shared' \(Dense\) is shared"):
        quantize_aware(model)


@pytest.mark.parametrize("data, match", [
    (np.zeros((4, 5), "float32"), r"input shape \(None, 6\).*Received: input 0 of shape \(4, 5\)"),
    (np.zeros((0, 6), "float32"), r"at least one sample"),
    (np.full((2, 6), np.nan, "float32"), r"must be finite"),
    ([np.zeros((2, 6)), np.zeros((2, 6))], r"one array per model input \(1\)"),
    ("images/", r"Received: representative_data of type str"),
    (np.array([["a"] * 6]), r"must hold numbers"),
])
def test_bad_representative_data(data, match):
    with pytest.raises(ValueError, match=match):
        quantize_aware(_model(L.Dense(4)), representative_data=data)


@pytest.mark.parametrize("kwargs, match", [
    ({"decay": 1.0}, r"Argument `decay` must be a number in \[0, 1\)"),
    ({"per_channel_dense": "yes"}, r"Argument `per_channel_dense` must be True or False"),
    ({"representative_data": np.zeros((2, 6)), "batch_size": 0},
     r"Argument `batch_size` must be a positive integer"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantize_aware(_model(L.Dense(4)), **kwargs)


def test_fake_quant_layers_include_those_inside_wrappers():
    qat = quantize_aware(conv_net())
    inner = [q for lay in qat.layers if isinstance(lay, QuantizeWrapper) for q in lay.quantizers]
    assert {q.name for q in inner} == {"mid", "pre_activation"}
    assert all(isinstance(q, FakeQuant) for q in fake_quant_layers(qat))
    assert len(fake_quant_layers(qat)) == sum(isinstance(lay, FakeQuant)
                                              for lay in qat.layers) + len(inner)


def test_average_pooling_rounds_to_its_input_range(tmp_path):
    """TFLite's int8 average pool keeps its input's scale: the output reuses the input's
    FakeQuant (without updating it), so the converter needs no requantize op."""
    model = _model(L.Reshape((2, 3, 1)), L.Conv2D(4, 1, name="conv"),
                   L.AveragePooling2D((2, 1), name="avg"), L.Flatten(), L.Dense(2, name="fc"))
    qat = quantize_aware(model, representative_data=RNG.random((8, 6)).astype("float32"))
    names = [layer.name for layer in qat.layers]
    assert "avg_quant" not in names
    tied = qat.get_layer("conv_quant")
    assert len(tied._inbound_nodes) == 2
    before = tied.get_weights()
    qat.compile("sgd", "mse")
    qat.fit(RNG.random((8, 6)).astype("float32") * 5, np.zeros((8, 2)), verbose=0)
    path = tmp_path / "avg.keras"
    qat.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.get_layer("conv_quant")._inbound_nodes) == 2
    assert tied.get_weights()[1] > before[1]  # the first call still tracks the range
    x = RNG.random((4, 6)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), qat.predict(x, verbose=0))
