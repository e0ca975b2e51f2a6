import re
import shutil
import subprocess

import keras
import numpy as np
import pytest

from tfimp.export import Int8, inspect, measure_arena, run_micro, to_micro, to_tflite
from tfimp.export.micro import MicroError, resolver_method, resolver_snippet


@pytest.fixture(scope="module")
def int8_setup(mlp16, data64):
    x, _ = data64
    art = to_tflite(mlp16, quantization=Int8(integer_io=True), representative_data=x)
    return art.model_bytes, x


@pytest.fixture(scope="module")
def tiny_cnn_int8():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    blob = to_tflite(model, quantization=Int8(integer_io=True), representative_data=x).model_bytes
    return blob, x


def test_to_micro_writes_compilable_sources_with_measured_arena(int8_setup, tmp_path):
    blob, x = int8_setup
    path = tmp_path / "m.tflite"
    path.write_bytes(blob)
    art = to_micro(path, tmp_path / "micro", margin=0.5, inputs=x[:8])
    cc = (tmp_path / "micro" / "model_data.cc").read_text()
    header = (tmp_path / "micro" / "model_data.h").read_text()
    assert "alignas(16) const unsigned char g_model[]" in cc
    stored = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", cc))
    assert stored == blob and f"g_model_len = {len(blob)};" in cc
    assert art.arena_bytes > 0 and art.arena_bytes == measure_arena(blob)
    assert art.arena_size == -(-int(art.arena_bytes * 1.5) // 16) * 16
    assert f"kTensorArenaSize = {art.arena_size};" in header
    assert art.max_diff_steps <= 1
    assert art.ops == ("FULLY_CONNECTED",)
    assert "MicroMutableOpResolver<1>" in art.resolver_snippet
    assert "resolver.AddFullyConnected()" in (tmp_path / "micro" / "model_ops.h").read_text()
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    obj = tmp_path / "model_data.o"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", str(tmp_path / "micro" /
                    "model_data.cc"), "-o", str(obj)], check=True)
    assert obj.stat().st_size > len(blob)


def test_run_micro_matches_litert_int8_outputs(int8_setup):
    from ai_edge_litert.interpreter import Interpreter

    blob, x = int8_setup
    run = run_micro(blob, x[:4])
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    for i in range(4):
        q = np.clip(np.round(x[i : i + 1] / scale + zp), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        expected = interp.get_tensor(out["index"]).astype(int)
        assert np.max(np.abs(run.outputs[0][i].astype(int) - expected[0])) <= 1
    assert run.outputs[0].dtype == np.int8 and run.arena_bytes > 0


def test_cnn_ops_become_resolver_calls(tiny_cnn_int8, tmp_path):
    blob, x = tiny_cnn_int8
    art = to_micro(blob, tmp_path, inputs=x[:4])
    assert {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"} <= set(art.ops)
    for op in art.ops:
        assert f"resolver.{resolver_method(op)}()" in art.resolver_snippet
    assert "resolver.AddMaxPool2D()" in art.resolver_snippet
    assert f"MicroMutableOpResolver<{len(art.ops)}>" in art.resolver_snippet


def test_resolver_method_names():
    assert resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert resolver_method("AVERAGE_POOL_2D") == "AddAveragePool2D"
    assert resolver_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert resolver_method("SPACE_TO_BATCH_ND") == "AddSpaceToBatchNd"
    assert resolver_snippet(["ADD", "ADD", "MUL"]).count("resolver.Add") == 2


def test_sparse_and_float_models_get_a_fix(mlp16, data64, tmp_path):
    x, _ = data64
    sparse = to_tflite(mlp16, quantization=Int8(integer_io=True), sparse=True,
                       representative_data=x).model_bytes
    assert inspect(sparse).sparse_tensors
    with pytest.raises(MicroError, match="sparse=False"):
        to_micro(sparse, tmp_path)
    with pytest.raises(MicroError, match="Int8\\(integer_io=True\\)"):
        to_micro(to_tflite(mlp16).model_bytes, tmp_path)
    assert not list(tmp_path.iterdir())


def test_native_crash_is_contained(int8_setup):
    blob, x = int8_setup
    # An arena far too small crashes the TFLM interpreter (SIGSEGV) instead of raising.
    with pytest.raises(MicroError, match="crashed|cannot run"):
        run_micro(blob, x[:1], arena_size=64)


def test_bad_arguments(int8_setup, tmp_path):
    blob, _ = int8_setup
    with pytest.raises(ValueError, match="margin=-1"):
        to_micro(blob, tmp_path, margin=-1)
    with pytest.raises(ValueError, match="name='1model'"):
        to_micro(blob, tmp_path, name="1model")
    with pytest.raises(ValueError, match="tflite_path"):
        to_micro(tmp_path / "missing.tflite", tmp_path)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        to_micro(blob[: len(blob) // 3], tmp_path)


def test_micro_file_is_checked_against_litert_builtin_kernels_bit_for_bit(tmp_path):
    # XNNPACK's int8 convolutions round differently from TFLite Micro's reference kernels
    # (4-6 steps on this Conv1D network); LiteRT's builtin kernels share TFLM's arithmetic,
    # so the file must match them exactly.
    import keras

    from tfimp import data, models
    from tfimp.export import Int8, to_micro, to_tflite

    d = data.get("mnist1d")
    keras.utils.set_random_seed(0)
    model = models.mnist1d_cnn(input_shape=(40, 1), num_classes=10)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(d.x_train[:1024], d.y_train[:1024], epochs=2, batch_size=64, verbose=0)
    path = tmp_path / "m.tflite"
    to_tflite(model, path, quantization=Int8(integer_io=True),
              representative_data=d.x_train[:256])
    art = to_micro(path, tmp_path / "micro", inputs=d.x_test[:64], max_diff_steps=0)
    assert art.max_diff_steps == 0
