import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema

from tfimp import models

# name -> (total parameters, trainable parameters), each checked against its reference:
# LeNets: Han et al. 2015 (Table 1: 267K, 431K); ResNet-8, DS-CNN, MobileNetV1-0.25: the
# mlcommons/tiny Keras reference code, built with Keras 3 (78,666 / 24,908 / 221,794);
# ResNet-20: open_lth's cifar_resnet_20 has 272,474 PyTorch parameters (BN statistics are
# buffers there, non-trainable weights here).
REFERENCE_COUNTS = {
    "lenet_300_100": (266_610, 266_610),
    "lenet5": (431_080, 431_080),
    "resnet8": (78_666, 78_186),
    "resnet20": (274_042, 272_474),
    "ds_cnn": (24_908, 23_756),
    "mobilenet_v1": (221_794, 216_322),
    # MNIST-1D CNN: 3 x Conv1D(32, 5) on (40, 1), flatten, Dense(10): 192 + 2 * 5,152 + 12,810.
    "mnist1d_cnn": (23_306, 23_306),
}

OPS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _sample(model, n=2, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, *model.input_shape[1:])
    if model.inputs[0].dtype.startswith("int"):
        vocab = next(la.input_dim for la in model.layers if isinstance(la, keras.layers.Embedding))
        return rng.integers(0, vocab, shape).astype("int32")
    return rng.uniform(0, 1, shape).astype("float32")


@pytest.fixture(scope="module")
def built():
    return {name: builder() for name, builder in models.MODELS.items()}


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_counts_match_references(built, name):
    total, trainable = REFERENCE_COUNTS[name]
    assert built[name].count_params() == total
    assert _trainable(built[name]) == trainable


def test_transformer_parameter_count_matches_its_formula(built):
    v, n, d, h, f, c = 20000, 200, 32, 2, 32, 2
    attention = 3 * (d * h * d + h * d) + (h * d * d + d)
    expected = (v * d + n * d + attention + 2 * (2 * d) + (d * f + f) + (f * d + d)
                + (d * 20 + 20) + (20 * c + c))
    assert built["transformer_classifier"].count_params() == expected == 657_758


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_forward_pass_gives_class_probabilities(built, name):
    model = built[name]
    assert not model.compiled  # builders return uncompiled models
    out = np.asarray(model(_sample(model), training=False))
    assert out.shape == (2, model.output_shape[-1])
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def _assert_litert_matches_keras(model, flatbuffer):
    interpreter = Interpreter(model_content=flatbuffer)
    x = _sample(model, n=1, seed=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]),
                               np.asarray(model(x, training=False)), atol=1e-4)


# The full-size MobileNet converts in the layout test below at 32x32; at 96x96 it is slow.
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "mobilenet_v1" else n
    for n in sorted(models.MODELS)
])
def test_converts_to_tflite_and_matches_keras(built, name):
    model = built[name]
    _assert_litert_matches_keras(model, tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _ops(flatbuffer: bytes):
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    graph = model.subgraphs[0]
    codes = model.operatorCodes
    for op in graph.operators:
        code = codes[op.opcodeIndex]
        yield OPS[max(code.builtinCode, code.deprecatedBuiltinCode)], op, graph


def test_mobilenet_v1_has_the_layout_of_xnnpack_sparse_inference():
    model = models.mobilenet_v1(alpha=0.25, input_shape=(32, 32, 3))
    pad, stem = model.layers[1], model.layers[2]
    assert isinstance(pad, keras.layers.ZeroPadding2D) and pad.padding == ((1, 1), (1, 1))
    assert isinstance(stem, keras.layers.Conv2D) and stem.padding == "valid"
    assert stem.kernel_size == (3, 3) and stem.strides == (2, 2)
    assert isinstance(model.layers[-2], keras.layers.GlobalAveragePooling2D)

    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    _assert_litert_matches_keras(model, flatbuffer)
    ops = list(_ops(flatbuffer))
    names = [name for name, _, _ in ops]
    assert names[:2] == ["PAD", "CONV_2D"]
    _, conv, graph = ops[1]
    assert graph.tensors[conv.inputs[1]].shape.tolist() == [8, 3, 3, 3]  # 3x3 on 3 channels
    assert conv.builtinOptions.padding == schema.Padding.VALID
    assert (conv.builtinOptions.strideH, conv.builtinOptions.strideW) == (2, 2)
    # Stride-2 depthwise layers keep their explicit symmetric padding.
    for i, (name, op, _) in enumerate(ops):
        if name == "DEPTHWISE_CONV_2D" and op.builtinOptions.strideH == 2:
            assert names[i - 1] == "PAD" and op.builtinOptions.padding == schema.Padding.VALID
    assert set(names[2:-3]) <= {"PAD", "CONV_2D", "DEPTHWISE_CONV_2D"}
    assert names[-3:] == ["MEAN", "FULLY_CONNECTED", "SOFTMAX"]


def test_lenet5_layers_are_hans_lenet5():
    model = models.lenet5()
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(c.filters, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert [d.units for d in dense] == [500, 10]
    assert dense[0].kernel.shape == (800, 500)


def test_builders_follow_their_arguments():
    assert models.lenet_300_100(input_shape=(28, 28, 1)).count_params() == 266_610
    assert models.resnet8(num_classes=3).output_shape == (None, 3)
    assert models.ds_cnn(num_classes=4).output_shape == (None, 4)
    logits = models.resnet20(classifier_activation=None, width=4)
    assert logits.layers[-1].activation.__name__ == "linear"
    wide = models.mobilenet_v1(alpha=0.5)
    assert wide.get_layer("pw13").filters == 512
    assert models.get("transformer_classifier", vocab_size=50, seq_len=8).input_shape == (None, 8)
    assert models.mnist1d_cnn(filters=8).count_params() == 48 + 2 * 328 + 3_210


def test_transformer_saves_and_loads_with_its_position_embedding(tmp_path):
    model = models.transformer_classifier(vocab_size=50, seq_len=8, embed_dim=8)
    path = tmp_path / "t.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _sample(model, n=3)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
    layer = models.PositionEmbedding.from_config(
        model.get_layer("position_embedding").get_config())
    assert layer.sequence_length == 8


SMALL = {
    "lenet_300_100": {},
    "lenet5": {},
    "resnet8": {"input_shape": (16, 16, 3), "filters": 4},
    "resnet20": {"input_shape": (16, 16, 3), "width": 4},
    "ds_cnn": {"filters": 8},
    "mnist1d_cnn": {"filters": 8},
    "mobilenet_v1": {"input_shape": (32, 32, 3)},
    "transformer_classifier": {"vocab_size": 60, "seq_len": 8},
}


def test_every_architecture_can_be_pruned():
    prune = pytest.importorskip("tfimp.sparsity.engine")
    assert set(SMALL) == set(models.MODELS)
    for name, kwargs in SMALL.items():
        model = models.get(name, **kwargs)
        pruned = prune.prune(model, 0.5)
        out = np.asarray(pruned(_sample(model), training=False))
        assert out.shape[0] == 2 and np.all(np.isfinite(out))
        zeros = [np.mean(np.asarray(w) == 0) for w in prune.strip(pruned).weights
                 if "kernel" in w.path or "embeddings" in w.path]
        assert zeros and min(zeros) >= 0.49


@pytest.mark.parametrize("call, match", [
    (lambda: models.get("vgg16"), r"one of \['ds_cnn', 'lenet5'"),
    (lambda: models.lenet5(input_shape=(28, 28)), "input_shape"),
    (lambda: models.resnet8(num_classes=1), "num_classes"),
    (lambda: models.mobilenet_v1(alpha=0), "alpha"),
    (lambda: models.mobilenet_v1(input_shape=(96, 96, 1)), "3 channels"),
    (lambda: models.transformer_classifier(dropout=1.0), "dropout"),
    (lambda: models.ds_cnn(filters=0), "filters"),
    (lambda: models.mnist1d_cnn(input_shape=(40,)), "input_shape"),
    (lambda: models.mnist1d_cnn(filters=0), "filters"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mnist1d_cnn_learns_mnist1d_and_runs_int8_in_tflite_micro(tmp_path):
    from tfimp import data
    from tfimp.export import to_micro, to_tflite

    ds = data.get("mnist1d")
    keras.utils.set_random_seed(0)
    model = models.mnist1d_cnn()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(ds.x_train, ds.y_train, batch_size=64, epochs=2, verbose=0)
    assert model.evaluate(ds.x_test, ds.y_test, verbose=0)[1] > 0.6  # chance is 0.1
    int8 = to_tflite(model, quantization="int8", representative_data=ds.x_train[:256],
                     verify=(ds.x_test[:300], ds.y_test[:300]))
    assert int8.report.verification.agreement >= 0.95
    micro = to_micro(int8.model_bytes, tmp_path, inputs=ds.x_test[:8])  # bit-exact check inside
    assert "CONV_2D" in micro.ops and 0 < micro.arena_bytes < 16_384
