"""tfimp's sparse int8 FULLY_CONNECTED op: its format, its numpy mirror against TFLite Micro's
dense op (Python interpreter), and `to_micro(..., compression="sparse")`."""

import keras
import numpy as np
import pytest
from micro_models import images, int8_bytes, sparse_cnn, sparse_mlp

from tfimp.export import inspect, run_micro, to_micro
from tfimp.export import sparse_fc as sf
from tfimp.export import tflite_edit as edit
from tfimp.export import tflm_sparse as ts
from tfimp.export.micro import MicroError, random_inputs


def _mlp_with(activation: str, seed: int = 0, zeros: float = 0.85):
    """784 -> 40 (`activation`) -> 300 -> 10 (relu6), so both index widths occur."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((300,)), keras.layers.Dense(40, activation=activation),
                              keras.layers.Dense(300, activation="relu6"),
                              keras.layers.Dense(10)])
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w, b = layer.get_weights()
        w[rng.random(w.shape) < zeros] = 0.0
        layer.set_weights([w, b + 0.1])
    return model


@pytest.fixture(scope="module")
def models():
    x = np.random.default_rng(3).standard_normal((16, 300)).astype("float32")
    return {"per-channel relu": int8_bytes(_mlp_with("relu"), x),
            "per-tensor": int8_bytes(_mlp_with(None, seed=1, zeros=0.96), x,
                                     per_channel_dense=False)}


def _run(model, xs):
    return run_micro(model, xs).outputs


def test_format_round_trips_with_narrow_indices():
    rng = np.random.default_rng(0)
    w = (rng.integers(-127, 128, (5, 300)) * (rng.random((5, 300)) < 0.1)).astype(np.int8)
    w[2] = 0  # an empty row
    blob = sf.encode(w, np.linspace(0.01, 0.05, 5), activation=3, keep_num_dims=True)
    back = sf.read(blob)
    np.testing.assert_array_equal(back.dense(), w)
    assert (back.index_bytes, back.activation, back.keep_num_dims) == (2, 3, True)
    assert len(blob) == sf.stored_bytes(w, 5) == 24 + 20 + 10 + 3 * np.count_nonzero(w)
    assert sf.read(sf.encode(w[:, :256], [0.1])).index_bytes == 1


def test_format_refuses_what_the_kernel_cannot_read():
    w = np.eye(4, dtype=np.int8)
    with pytest.raises(ValueError, match="2-D int8 weights"):
        sf.encode(w.astype(np.float32), [1.0])
    with pytest.raises(ValueError, match="1 or 4 scales"):
        sf.encode(w, [1.0, 2.0])
    with pytest.raises(ValueError, match="activation"):
        sf.encode(w, [1.0], activation=4)
    blob = sf.encode(w, [1.0])
    with pytest.raises(ValueError, match="not in the sparse FULLY_CONNECTED format"):
        sf.read(b"TFL3" + blob[4:])
    with pytest.raises(ValueError, match="holds 43 bytes.*needs 44"):
        sf.read(blob[:-1])


def test_quantize_multiplier_matches_tflite():
    assert sf.quantize_multiplier(0.0) == (0, 0)
    assert sf.quantize_multiplier(0.5) == (1 << 30, 0)
    assert sf.quantize_multiplier(1.0) == (1 << 30, 1)
    assert sf.quantize_multiplier(2.0 ** -40) == (0, 0)
    m, s = sf.quantize_multiplier(0.3)
    assert abs(m * 2.0 ** (s - 31) - 0.3) < 1e-9


def test_multiply_by_quantized_multiplier_rounds_as_gemmlowp():
    # The doubling high multiply rounds a negative half up, the power-of-two division away
    # from zero (worked by hand from gemmlowp's fixedpoint.h).
    m, s = sf.quantize_multiplier(0.5)
    got = sf.multiply_by_quantized_multiplier(np.array([3, -3, 5, -5, 4]), m, s)
    np.testing.assert_array_equal(got, [2, -1, 3, -2, 2])
    m, s = sf.quantize_multiplier(0.25)
    assert s == -1
    np.testing.assert_array_equal(sf.multiply_by_quantized_multiplier(np.array([3, -6]), m, s),
                                  [1, -2])


@pytest.mark.parametrize("kind", ["per-channel relu", "per-tensor"])
def test_mirror_equals_tflm_dense_op_by_op(models, kind):
    data = models[kind]
    options = ts.sparse_options(data)
    assert len(options) == 3 and all(o.saves for o in options[:2])
    sparse = ts.sparsify(data, [(o.subgraph, o.index) for o in options])
    assert len(sparse) < 0.6 * len(data)
    stand_in = ts.densify(sparse)
    xs = random_inputs(inspect(data), 6)
    for a, b in zip(_run(stand_in, xs), _run(data, xs)):
        np.testing.assert_array_equal(a, b)
    assert ts.check_mirror(sparse, stand_in, xs, _run) == 6 * (40 + 300 + 10)


def test_mirror_catches_a_changed_weight(models):
    data = models["per-channel relu"]
    option = ts.sparse_options(data)[0]
    sparse = ts.sparsify(data, [(0, option.index)])
    tree = edit.read(sparse)
    buffer = tree.buffers[tree.subgraphs[0].tensors[option.index].buffer]
    blob = bytearray(np.asarray(buffer.data, np.uint8).tobytes())
    blob[-1] = (blob[-1] + 64) % 256  # the last non-zero value
    buffer.data = np.frombuffer(bytes(blob), np.uint8)
    xs = random_inputs(inspect(data), 4)
    with pytest.raises(ts.MirrorMismatch, match="op 0 .* differs from TFLite Micro's dense op"):
        ts.check_mirror(edit.write(tree), sparse and ts.densify(sparse), xs, _run)


def test_to_micro_sparse_writes_the_kernel_and_keeps_the_arena(models, tmp_path):
    data = models["per-channel relu"]
    art = to_micro(data, tmp_path / "m", compression="sparse")
    rows = {r.name: r for r in art.encodings}
    assert list(rows) == ["none", "sparse"] and art.compression == "sparse"
    assert art.arena_bytes == rows["none"].arena_bytes
    assert art.model_bytes < 0.6 * len(data)
    assert art.ops == (ts.OP,)
    assert [t.encoding for t in art.tensors].count("sparse") == 3
    ops_h = (tmp_path / "m" / "model_ops.h").read_text()
    assert '#include "sparse_fully_connected.h"' in ops_h
    assert "tfimp::Register_SPARSE_FULLY_CONNECTED()" in ops_h
    assert "TFIMP_SPARSE_FC" in (tmp_path / "m" / "sparse_fully_connected.h").read_text()
    assert (tmp_path / "m" / "sparse_fully_connected.cc").is_file()
    written = (tmp_path / "m" / "model.tflite").read_bytes()
    again = to_micro(written, tmp_path / "again")  # a sparse model, kept as it is
    assert again.compression == "given" and again.model_bytes == len(written)
    assert [t.encoding for t in again.tensors].count("sparse") == 3


def test_auto_picks_sparse_where_it_wins_flash_and_arena(models, tmp_path):
    art = to_micro(models["per-tensor"], tmp_path, compression="auto")
    rows = {r.name: r for r in art.encodings}
    assert {"pruning", "lut", "sparse"} <= set(rows)
    assert art.compression.startswith("sparse")
    assert art.model_bytes < rows["pruning"].flash_bytes
    assert art.arena_bytes < rows["pruning"].arena_bytes


def test_sparse_on_a_model_it_cannot_help_names_the_reason(tmp_path):
    keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(MicroError, match="Argument `compression` must name an encoding that "
                       "applies.*no FULLY_CONNECTED op.*Received: compression='sparse'"):
        to_micro(int8_bytes(conv, images(8)), tmp_path / "a", compression="sparse")
    dense = int8_bytes(sparse_mlp(zeros=0.0, sizes=(32, 16, 10)),
                       np.random.default_rng(0).random((8, 32)).astype("float32"))
    with pytest.raises(MicroError, match=r"at most [\d.]+% zeros.*tfimp.prune"):
        to_micro(dense, tmp_path / "b", compression="sparse")
    with pytest.raises(ValueError, match="Argument `compression` must be None, one of "
                       r"\['pruning', 'lut', 'sparse', 'auto'\]"):
        to_micro(dense, tmp_path / "c", compression="sparce")


def test_a_sparse_model_is_not_compressed_again(models, tmp_path):
    data = models["per-tensor"]
    sparse = ts.sparsify(data, [(0, ts.sparse_options(data)[0].index)])
    with pytest.raises(MicroError, match="compressed already .*TFIMP_SPARSE_FC"):
        to_micro(sparse, tmp_path, compression="auto")
    with pytest.raises(ValueError, match="cannot use the sparse FULLY_CONNECTED kernel"):
        ts.sparsify(data, [(0, 0)])


def test_conv_models_keep_their_convolutions_dense(tmp_path):
    x = images(8)
    data = int8_bytes(sparse_cnn(zeros=0.9), x)
    options = ts.sparse_options(data)
    assert [o.shape for o in options] == [(32, 128), (10, 32)]
    art = to_micro(data, tmp_path, inputs=x, compression="sparse")
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", ts.OP} <= set(art.ops)


def test_auto_mixes_the_sparse_kernel_with_decode_on_convolutions(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 16)), keras.layers.Conv2D(32, 3),
                              keras.layers.Flatten(), keras.layers.Dense(16)])
    for layer in model.layers:
        if layer.get_weights():
            k, b = layer.get_weights()
            k[np.random.default_rng(0).random(k.shape) < 0.9] = 0.0
            layer.set_weights([k, b])
    x = np.random.default_rng(1).random((8, 6, 6, 16)).astype("float32")
    art = to_micro(int8_bytes(model, x), tmp_path, inputs=x, compression="auto")
    mixed = {r.name: r for r in art.encodings}["sparse+pruning+lut"]
    assert mixed.bit_exact and mixed.counts()["sparse"] == 1 and mixed.counts()["pruning"] == 1
    pruning = {r.name: r for r in art.encodings}["pruning"]
    assert mixed.arena_bytes < pruning.arena_bytes  # only the convolution's weights decoded
