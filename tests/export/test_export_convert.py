import gzip
import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tfimp.export import Int8, inspect, to_tflite
from tfimp.export.verify import VerificationError

# Whether the default LiteRT interpreter computes a faithful result for each quantization with
# the sparse encoding on a model whose zeros come in 1x16 blocks (docs/export.md keeps this).
MATRIX = {
    ("float32", False): True, ("float32", True): True,
    ("dynamic", False): True, ("dynamic", True): False,
    ("float16", False): True, ("float16", True): True,
    ("int8", False): True, ("int8", True): True,
    ("int16x8", False): True, ("int16x8", True): False,
}


def _litert_outputs(model_bytes, x):
    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for row in x:
        value = row[None]
        if inp["dtype"] == np.int8:
            scale, zp = inp["quantization"]
            value = np.clip(np.round(value / scale + zp), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], value)
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zp = out["quantization"]
            y = (y - zp) * scale
        results.append(y[0])
    return np.stack(results)


@pytest.mark.parametrize("quantization,sparse", sorted(MATRIX))
def test_matrix_every_written_model_runs_in_litert(quantization, sparse, mlp16, data64, tmp_path):
    x, y = data64
    path = tmp_path / "m.tflite"
    if not MATRIX[quantization, sparse]:
        with pytest.raises(ValueError, match=f"sparse=True with quantization='{quantization}'"):
            to_tflite(mlp16, path, quantization, sparse, representative_data=x, verify=(x, y))
        assert not path.exists()
        return
    art = to_tflite(mlp16, path, quantization, sparse, representative_data=x, verify=(x, y))
    assert path.read_bytes() == art.model_bytes
    info = inspect(art.model_bytes)
    assert bool(info.sparse_tensors) == sparse
    ref = mlp16.predict(x, verbose=0)
    rel = np.max(np.abs(_litert_outputs(art.model_bytes, x) - ref)) / np.max(np.abs(ref))
    assert rel < 0.1
    assert art.report.verification.passed and art.report.verification.samples == len(x)
    assert art.report.sparse == sparse


# The same with unstructured zeros: the converter densifies them at load time (DENSIFY), which
# XNNPACK refuses for int8 and dynamic-range weights.
UNSTRUCTURED_SPARSE_RUNS = {"float32": True, "dynamic": False, "float16": True, "int8": False,
                            "int16x8": True}


def test_matrix_unstructured_sparse(make_mlp, data64):
    model = make_mlp(block=1, keep=0.1)
    x, y = data64
    for quantization, runs in UNSTRUCTURED_SPARSE_RUNS.items():
        if runs:
            art = to_tflite(model, quantization=quantization, sparse=True,
                            representative_data=x, verify=(x, y))
            assert inspect(art.model_bytes).op_counts["DENSIFY"] == 2
        else:
            with pytest.raises(ValueError, match="failed to delegate FULLY_CONNECTED"):
                to_tflite(model, quantization=quantization, sparse=True, representative_data=x)


def test_auto_keeps_the_smaller_faithful_encoding(mlp16, data64):
    x, y = data64
    int8 = to_tflite(mlp16, quantization="int8", sparse="auto", representative_data=x)
    assert int8.report.sparse is True
    assert len(int8.model_bytes) == min(c.bytes for c in int8.report.candidates)
    f16 = to_tflite(mlp16, quantization="float16", sparse="auto")
    assert f16.report.sparse is True  # its missing DENSIFY added: smaller and faithful
    assert len(f16.model_bytes) == min(c.bytes for c in f16.report.candidates)
    i16 = to_tflite(mlp16, quantization="int16x8", sparse="auto", representative_data=x)
    assert i16.report.sparse is False
    rejected = [c for c in i16.report.candidates if c.sparse]
    assert rejected and rejected[0].note


def test_unstructured_int8_sparse_is_refused_by_xnnpack_and_auto_falls_back(make_mlp, data64):
    model = make_mlp(block=1, keep=0.1)
    x, _ = data64
    with pytest.raises(ValueError, match="granularity='block:16x1:whole'"):
        to_tflite(model, quantization="int8", sparse=True, representative_data=x)
    art = to_tflite(model, quantization="int8", sparse="auto", representative_data=x)
    assert art.report.sparse is False and not inspect(art.model_bytes).sparse_tensors


def test_report_sizes_and_sparsity(mlp16, data64):
    x, y = data64
    art = to_tflite(mlp16, quantization=Int8(integer_io=True), sparse=True, representative_data=x,
                    verify=(x, y))
    report = art.report
    dense = to_tflite(mlp16).model_bytes
    assert report.dense_float32_bytes == len(dense)
    assert report.tflite_bytes == len(art.model_bytes)
    assert report.gzip_bytes == len(gzip.compress(art.model_bytes, 9, mtime=0))
    assert report.compression_ratio == pytest.approx(len(dense) / len(art.model_bytes))
    n_params = sum(int(np.prod(w.shape)) for w in mlp16.weights)
    assert report.keras_weight_bytes == 4 * n_params
    kernels = [w for w in mlp16.get_weights() if w.ndim == 2]
    for t in report.tensors:
        assert t.encoding == "sparse" and t.block == (1, 16)
    # Rounding to int8 can only add zeros (weights below half a step).
    read_back = sorted(t.zero_fraction for t in report.tensors)
    expected = sorted(float(np.mean(k == 0)) for k in kernels)
    assert all(e <= r <= e + 0.01 for r, e in zip(read_back, expected))
    assert report.quantization == {"name": "int8", "integer_io": True, "per_channel_dense": True}
    assert '"compression_ratio"' in report.to_json() and "int8" in report.table()


def test_pruned_model_is_stripped_before_conversion(make_mlp):
    import tfimp

    base = make_mlp(block=1, keep=1.0)
    pruned = tfimp.prune(base, 0.8)
    assert tfimp.is_pruned(pruned)
    art = to_tflite(pruned, quantization="float32", sparse=True)
    kernels = [t for t in art.report.tensors]
    assert len(kernels) == 2
    assert all(t.zero_fraction == pytest.approx(0.8, abs=0.01) for t in kernels)
    assert art.report.keras_sparsity == pytest.approx(0.8, abs=0.01)


def test_tolerance_turns_accuracy_drop_into_error(mlp16, data64, tmp_path):
    x, _ = data64
    labels = mlp16.predict(x, verbose=0).argmax(1)
    art = to_tflite(mlp16, quantization="float32", verify=(x, labels), tolerance=0.0)
    assert art.report.verification.delta_pp == 0.0
    path = tmp_path / "bad.tflite"
    with pytest.raises(VerificationError, match="tolerance"):
        to_tflite(mlp16, path, quantization="int8", representative_data=x * 0.01,
                  verify=(x, labels), tolerance=0.0)
    assert not path.exists()


def test_atomic_write_leaves_no_temporary_files(mlp16, tmp_path):
    to_tflite(mlp16, tmp_path / "sub" / "m.tflite")
    assert os.listdir(tmp_path / "sub") == ["m.tflite"]


def test_rejects_non_keras_and_unbuilt_models():
    with pytest.raises(ValueError, match="must be a Keras 3 model.*Received: model=<dict>"):
        to_tflite({"not": "a model"})
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="must be a built model"):
        to_tflite(unbuilt)


def test_rejects_bad_options(mlp16, data64):
    x, _ = data64
    with pytest.raises(ValueError, match="representative_data=None"):
        to_tflite(mlp16, quantization="int8")
    with pytest.raises(ValueError, match=r"input shape \(None, 64\).*\(48, 63\)"):
        to_tflite(mlp16, quantization="int8", representative_data=x[:, :63])
    with pytest.raises(ValueError, match="Received: sparse='yes'"):
        to_tflite(mlp16, sparse="yes")
    with pytest.raises(ValueError, match="quantization='int4'"):
        to_tflite(mlp16, quantization="int4")
    with pytest.raises(ValueError, match="one label per sample"):
        to_tflite(mlp16, verify=(x, np.zeros(3)))


def test_per_tensor_dense_scales_shrink_the_file(mlp16, data64):
    x, y = data64
    per_channel = to_tflite(mlp16, quantization="int8", sparse=True, representative_data=x)
    per_tensor = to_tflite(mlp16, quantization=Int8(per_channel_dense=False), sparse=True,
                           representative_data=x, verify=(x, y))
    weights = [t for t in inspect(per_tensor.model_bytes).constants if len(t.shape) == 2]
    assert all(len(t.scales) == 1 for t in weights)
    # 42 output units: a float scale and an int64 zero point each, for weights and biases.
    assert len(per_channel.model_bytes) - len(per_tensor.model_bytes) >= 42 * 12 * 2 - 64
    assert per_tensor.report.verification.agreement >= 0.9


def test_partially_filled_trailing_int8_block_is_named(make_mlp):
    model = make_mlp(block=16, keep=0.3, inputs=72)  # 72 = 4 * 16 + 8: a partial block
    x = np.random.default_rng(0).random((32, 72)).astype(np.float32)
    w, b = model.layers[0].get_weights()
    w[64:] = 0.5  # the partial block is kept
    model.layers[0].set_weights([w, b])
    with pytest.raises(ValueError, match="not a multiple of 16"):
        to_tflite(model, quantization="int8", sparse=True, representative_data=x)
    w[64:] = 0.0
    model.layers[0].set_weights([w, b])
    art = to_tflite(model, quantization="int8", sparse=True, representative_data=x)
    assert inspect(art.model_bytes).sparse_tensors
