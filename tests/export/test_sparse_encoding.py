"""Sparse constants decoded by DENSIFY are written in CSR when that is smaller
(`tfimp.export.sparse_encoding`): same values, same outputs, smaller file."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.export import Float16, _converter, run_litert, to_tflite, tflite_edit
from tfimp.export.sparse_encoding import compact_densified, decode
from tfimp.export.sparse_repair import add_missing_densify

from test_sparse_repair import X, mlp


@pytest.fixture(scope="module")
def float16_files():
    """LeNet-300-100's shape at the default run's sparsities: the converter's float16 +
    sparse file (its 300x784 kernel in 1x4 blocks) and the same file after re-encoding."""
    model = mlp((0.975, 0.97, 0.8))
    [raw] = _converter.convert(model, [_converter.Job(Float16().get_config(), True)], None)
    converted, _ = add_missing_densify(raw)
    compact, changed = compact_densified(converted)
    return model, converted, compact, changed


def _sparse(blob: bytes) -> dict:
    tree = tflite_edit.read(blob)
    return {tflite_edit.tensor_name(t): (tree, t) for t in tree.subgraphs[0].tensors
            if t.sparsity is not None}


def test_the_blocked_kernel_is_rewritten_in_csr_with_the_same_values(float16_files):
    model, converted, compact, changed = float16_files
    before, after = _sparse(converted), _sparse(compact)
    assert before.keys() == after.keys()
    names = {c.name for c in changed}
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel).T.astype(np.float16)
    [fc1] = [n for n, (_, t) in before.items() if list(t.shape) == [300, 784]]
    assert list(before[fc1][1].sparsity.blockMap) == [1]  # the converter's 1x4 blocks
    assert fc1 in names
    sp = after[fc1][1].sparsity
    assert not len(sp.blockMap) and [m.format for m in sp.dimMetadata] == [0, 1]
    assert np.asarray(sp.dimMetadata[1].arrayIndices.values).dtype == np.uint16  # 784 > 255
    np.testing.assert_array_equal(decode(*before[fc1]), kernel)
    for name in before:
        np.testing.assert_array_equal(decode(*after[name]), decode(*before[name]))
    for c in changed:
        assert c.after < c.before


def test_the_csr_file_runs_as_the_converters_and_is_smaller(float16_files):
    model, converted, compact, changed = float16_files
    assert len(compact) < len(converted) - sum(c.before - c.after for c in changed) + 512
    nonzeros = int(np.count_nonzero(model.get_weights()[0]))
    largest = max(changed, key=lambda c: c.before)
    assert largest.after == 4 * nonzeros + 2 * 301  # value and uint16 index, 301 row starts
    assert largest.before > 7 * nonzeros  # the 1x4 blocks also store their zeros
    np.testing.assert_array_equal(run_litert(compact, X)[0], run_litert(converted, X)[0])
    np.testing.assert_allclose(run_litert(compact, X)[0], model.predict(X, verbose=0),
                               atol=2e-3)
    assert compact_densified(compact) == (compact, [])  # already the smallest


def test_a_narrow_sparse_dimension_gets_uint8_indices(float16_files):
    _, _, compact, _ = float16_files
    for _, tensor in _sparse(compact).values():
        order = list(tensor.sparsity.traversalOrder)
        last = int(tensor.shape[order[-1]])
        indices = np.asarray(tensor.sparsity.dimMetadata[-1].arrayIndices.values)
        assert indices.dtype == (np.uint8 if last <= 256 else np.uint16)
    [fc2] = [t for _, t in _sparse(compact).values() if list(t.shape) == [100, 300]]
    assert list(fc2.sparsity.traversalOrder) == [1, 0]  # compressed along its 100 outputs


def test_to_tflite_writes_the_csr_file_and_verifies_it():
    model = mlp((0.975, 0.97, 0.8))
    y = np.argmax(model.predict(X, verbose=0), axis=1)
    art = to_tflite(model, quantization="float16", sparse=True, verify=(X, y))
    assert art.report.verification.agreement == 1.0
    assert all(t.block is None for t in tfimp.export.inspect(art.model_bytes).sparse_tensors)


def test_sparse_constants_read_by_fully_connected_keep_their_encoding():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(4)])
    pruned = tfimp.strip(tfimp.prune(model, 0.9, granularity="block:16x1:whole"))
    x = np.random.default_rng(0).random((64, 64)).astype("float32")
    art = to_tflite(pruned, quantization="int8", sparse=True, representative_data=x)
    assert compact_densified(art.model_bytes) == (art.model_bytes, [])


def test_conv_kernels_are_rewritten_in_csr_and_match_keras():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)),
                              keras.layers.Conv2D(16, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)])
    pruned = tfimp.strip(tfimp.prune(model, 0.9))
    x = np.random.default_rng(0).random((32, 12, 12, 3)).astype("float32")
    [raw] = _converter.convert(pruned, [_converter.Job(Float16().get_config(), True)], None)
    converted, _ = add_missing_densify(raw)
    compact, changed = compact_densified(converted)
    kernels = {n: t for n, (_, t) in _sparse(compact).items() if len(t.shape) == 4}
    assert len(kernels) == 2 and set(kernels) <= {c.name for c in changed}
    for t in kernels.values():  # OHWI: the other dimensions dense, in their order
        order = [int(d) for d in t.sparsity.traversalOrder]
        assert order[:-1] == sorted(order[:-1]) and not len(t.sparsity.blockMap)
        assert np.asarray(t.sparsity.dimMetadata[-1].arrayIndices.values).dtype == np.uint8
    np.testing.assert_array_equal(run_litert(compact, x)[0], run_litert(converted, x)[0])
    np.testing.assert_allclose(run_litert(compact, x)[0], pruned.predict(x, verbose=0),
                               atol=1e-3)


def test_an_encoding_whose_indices_do_not_match_its_values_is_left_alone(float16_files):
    _, converted, _, _ = float16_files
    tree = tflite_edit.read(converted)
    [fc1] = [t for t in tree.subgraphs[0].tensors
             if t.sparsity is not None and list(t.shape) == [300, 784]]
    buffer = tree.buffers[fc1.buffer]
    buffer.data = np.asarray(buffer.data)[:-8]  # four float16 values short
    damaged = tflite_edit.write(tree)
    with pytest.raises(ValueError, match="index arrays address"):
        decode(tflite_edit.read(damaged), fc1)
    _, changed = compact_densified(damaged)
    assert tflite_edit.tensor_name(fc1) not in {c.name for c in changed}
