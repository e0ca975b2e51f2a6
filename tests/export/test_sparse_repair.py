"""Sparse constants that the converter leaves without their DENSIFY op get one
(`tfimp.export.sparse_repair`): float16 + sparse files run correctly in LiteRT."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.export import Float16, inspect, run_litert, to_tflite, tflite_edit
from tfimp.export.convert import convert_bytes
from tfimp.export.sparse_repair import add_missing_densify

RNG = np.random.default_rng(0)
X = RNG.random((16, 784)).astype("float32")


def mlp(zeros: tuple[float, float, float]) -> keras.Model:
    """LeNet-300-100's shape with the given fraction of zeros per kernel, non-zero biases."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(300, activation="relu"),
                              keras.layers.Dense(100, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    rng = np.random.default_rng(1)
    for layer, rate in zip(model.layers, zeros):
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * (rng.random(kernel.shape) >= rate),
                           rng.normal(0, 0.1, bias.shape)])
    return model


def _readers(blob: bytes) -> dict[str, set[str]]:
    """For each sparse constant: the ops that read it."""
    tree = tflite_edit.read(blob)
    graph = tree.subgraphs[0]
    out = {}
    for op in graph.operators:
        for i in op.inputs:
            t = graph.tensors[int(i)] if int(i) >= 0 else None
            if t is not None and t.sparsity is not None:
                out.setdefault(tflite_edit.tensor_name(t), set()).add(
                    tflite_edit.op_name(tree, op))
    return out


def _drop_one_densify(blob: bytes) -> tuple[bytes, str]:
    """The file with its first DENSIFY op removed and its reader wired to the sparse tensor:
    what the converter writes when it forgets one."""
    tree = tflite_edit.read(blob)
    graph = tree.subgraphs[0]
    ops = list(graph.operators)
    [first] = [op for op in ops if tflite_edit.op_name(tree, op) == "DENSIFY"][:1]
    source, dense = int(first.inputs[0]), int(first.outputs[0])
    for op in ops:
        op.inputs = [source if int(i) == dense else int(i) for i in op.inputs]
    graph.operators = [op for op in ops if op is not first]
    return tflite_edit.write(tree), tflite_edit.tensor_name(graph.tensors[source])


def test_a_missing_densify_is_put_back_and_the_file_computes_what_keras_does():
    model = mlp((0.95, 0.95, 0.95))  # the converter gives all three their DENSIFY
    good = convert_bytes(model, Float16(), True)
    assert all(r == {"DENSIFY"} for r in _readers(good).values())
    broken, name = _drop_one_densify(good)
    assert _readers(broken)[name] == {"DEQUANTIZE"}
    expected = model.predict(X, verbose=0)
    wrong = run_litert(broken, X)[0]
    assert not np.allclose(wrong, expected, atol=1e-2, equal_nan=False)
    fixed, names = add_missing_densify(broken)
    assert names == [name]
    assert all(r == {"DENSIFY"} for r in _readers(fixed).values())
    np.testing.assert_allclose(run_litert(fixed, X)[0], expected, atol=2e-3)
    assert add_missing_densify(fixed) == (fixed, [])  # nothing left to repair
    assert abs(len(fixed) - len(good)) < 512  # the same sparse bytes, one op more


def test_float16_sparse_export_of_a_deeply_pruned_mlp_is_verified_and_small():
    """At these sparsities TensorFlow 2.21's converter leaves DENSIFY out (the first kernel's
    reader was a bare DEQUANTIZE, and LiteRT returned NaN); the export repairs and verifies."""
    model = mlp((0.975, 0.97, 0.8))
    y = np.argmax(model.predict(X, verbose=0), axis=1)
    art = to_tflite(model, quantization="float16", sparse=True, verify=(X, y))
    assert art.report.sparse and art.report.verification.agreement == 1.0
    assert all(r <= {"DENSIFY", "FULLY_CONNECTED"} for r in _readers(art.model_bytes).values())
    dense = to_tflite(model, quantization="float16", sparse=False)
    assert art.report.tflite_bytes < dense.report.tflite_bytes / 5
    info = inspect(art.model_bytes)
    assert info.ops.count("DENSIFY") == len(info.sparse_tensors)


def test_int8_block_sparse_fully_connected_keeps_reading_its_sparse_weights():
    """FULLY_CONNECTED's own sparse kernel (int8, 1x16 blocks) needs no DENSIFY: none added."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(4)])
    pruned = tfimp.strip(tfimp.prune(model, 0.9, granularity="block:16x1:whole"))
    x = RNG.random((64, 64)).astype("float32")
    art = to_tflite(pruned, quantization="int8", sparse=True, representative_data=x)
    readers = _readers(art.model_bytes)
    assert readers and all(r == {"FULLY_CONNECTED"} for r in readers.values())
    assert "DENSIFY" not in inspect(art.model_bytes).ops


def test_damaged_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`model`"):
        add_missing_densify(b"TFL3 not a model")
