"""The int8 .tflite of a quantization-aware model: its zeros, its outputs, TFLite Micro."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.export import Int8, inspect, run_litert, to_micro, to_tflite
from tfimp.quantization import QuantizeWrapper, quantize_aware
from tfimp.wrappers import PruneLowMagnitude

L = keras.layers


def small_cnn() -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((10, 10, 1)),
        L.Conv2D(6, 3, use_bias=False, name="conv1"),
        L.BatchNormalization(name="bn1"),
        L.ReLU(name="relu1"),
        L.MaxPooling2D(name="pool"),
        L.BatchNormalization(name="bn2"),  # follows no conv: a 1x1 depthwise convolution
        L.Conv2D(8, 3, activation="relu", name="conv2"),
        L.Flatten(name="flat"),
        L.Dense(5, name="logits"),
    ], name="small_cnn")


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10, 1)).astype("float32"), rng.integers(0, 5, n)


def test_int8_file_keeps_the_zeros_and_matches_the_qat_model(tmp_path):
    x, y = _data()
    pruned = tfimp.prune(small_cnn(), 0.6)
    qat = quantize_aware(pruned, representative_data=x)
    qat.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)

    art = to_tflite(qat, tmp_path / "qat.tflite", quantization="int8")
    info = inspect(tmp_path / "qat.tflite")
    assert set(info.ops) <= {"QUANTIZE", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D",
                             "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "FULLY_CONNECTED",
                             "DEQUANTIZE"}
    assert info.op_counts["QUANTIZE"] == 1 and info.op_counts["DEPTHWISE_CONV_2D"] == 1
    masks = [m for lay in qat.layers if isinstance(lay, QuantizeWrapper)
             and isinstance(lay.layer, PruneLowMagnitude) for m in lay.layer.get_masks()]
    kernels = sorted((t for t in info.constants if t.dtype == "int8" and t.size > 6),
                     key=lambda t: t.size)  # the batch norm's 6 weights aside
    expected = sorted(masks, key=lambda m: m.size)
    assert [t.size for t in kernels] == [m.size for m in expected]
    for stored, mask in zip(kernels, expected):  # the masks' zeros, and no other weight
        assert stored.zero_fraction == pytest.approx(np.mean(mask == 0), abs=1.5 / mask.size)
        assert stored.zero_fraction >= np.mean(mask == 0)

    out = run_litert(art.model_bytes, x)[0]
    ref = qat.predict(x, verbose=0)
    step = qat.get_layer("logits_quant").params()[0]
    assert np.abs(out - ref).max() <= 2 * step + 1e-6
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.97

    micro = to_micro(tmp_path / "qat.tflite", tmp_path / "micro")
    assert micro.arena_bytes > 0 and micro.max_diff_steps <= 1


def test_integer_io_and_no_representative_data():
    x, y = _data(24, seed=1)
    qat = quantize_aware(small_cnn(), representative_data=x)
    art = to_tflite(qat, quantization=Int8(integer_io=True))
    info = inspect(art.model_bytes)
    assert [info.tensors[i].dtype for i in (*info.inputs, *info.outputs)] == ["int8", "int8"]
    input_q = qat.layers[1]
    assert info.tensors[info.inputs[0]].scales[0] == pytest.approx(input_q.params()[0])


@pytest.mark.parametrize("quantization, match", [
    ("float16", r"must be 'int8' .* for a quantization-aware model"),
    (Int8(per_channel_dense=False), r"must agree with the quantization-aware model on Dense"),
])
def test_refuses_formats_the_model_does_not_simulate(quantization, match):
    qat = quantize_aware(small_cnn(), representative_data=_data(8)[0])
    with pytest.raises(ValueError, match=match):
        to_tflite(qat, quantization=quantization)


def test_refuses_ranges_never_set():
    qat = quantize_aware(small_cnn())
    with pytest.raises(ValueError, match=r"activation ranges that were never set"):
        to_tflite(qat, quantization="int8")


@pytest.mark.slow
def test_lenet5_on_digits_int8_file_reproduces_the_qat_model():
    """LeNet-5 on the digits (28x28): after one QAT epoch the int8 file agrees with Keras."""
    keras.utils.set_random_seed(0)
    data = tfimp.data.digits(size=28, flatten=False)
    model = tfimp.models.lenet5(classifier_activation=None)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(data.x_train, data.y_train, batch_size=64, epochs=2, verbose=0)
    qat = quantize_aware(tfimp.prune(model, 0.6), representative_data=data.x_train[:256])
    qat.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
    qat.fit(data.x_train, data.y_train, batch_size=64, epochs=1, verbose=0)

    art = to_tflite(qat, quantization="int8", verify=(data.x_test, data.y_test))
    lite = run_litert(art.model_bytes, data.x_test)[0]
    ref = qat.predict(data.x_test, verbose=0)
    step = qat.layers[-1].params()[0]
    assert np.mean(lite.argmax(1) == ref.argmax(1)) >= 0.99
    assert np.abs(lite - ref).max() <= 2 * step + 1e-6
    assert np.mean(lite.argmax(1) == data.y_test) > 0.85
    zeros = [t.zero_fraction for t in inspect(art.model_bytes).constants if t.dtype == "int8"]
    assert len(zeros) == 4 and min(zeros) >= 0.6


def test_sparse_encoding_and_tflm_compression_still_apply(tmp_path):
    """int8 FULLY_CONNECTED weights pruned in 1x16 blocks stay in TFLite's sparse encoding;
    in the dense encoding, TFLite Micro's pruning compression stores the masks' zeros."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((32, 64)).astype("float32")
    mlp = keras.Sequential([keras.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10)])
    pruned = tfimp.prune(mlp, 0.75, granularity="block:16x1:whole")
    qat = quantize_aware(pruned, representative_data=x)
    art = to_tflite(qat, quantization="int8", sparse=True)
    sparse = inspect(art.model_bytes).sparse_tensors
    assert [t.block for t in sparse] == [(1, 16), (1, 16)]
    step = qat.layers[-1].params()[0]
    out = run_litert(art.model_bytes, x)[0]
    assert np.abs(out - qat.predict(x, verbose=0)).max() <= step + 1e-6

    dense = to_tflite(qat, quantization="int8").model_bytes
    plain = to_micro(dense, tmp_path / "plain")
    packed = to_micro(dense, tmp_path / "packed", compression="pruning")  # checks bit-exact
    assert packed.compression == "pruning" and packed.model_bytes < plain.model_bytes
