"""`to_micro(..., compression=, board=)`: verified encodings, flash and arena, board fit."""

import re

import numpy as np
import pytest
from micro_models import images, int8_bytes, sparse_cnn, sparse_mlp

from tfimp.export import MicroCompression, inspect, run_micro, to_micro, to_tflite
from tfimp.export import tflm_compression as tc
from tfimp.export.micro import MicroError
from tfimp.profile.micro import MicroBoard


@pytest.fixture(scope="module")
def mlp():
    x = np.random.default_rng(2).random((12, 256)).astype("float32")
    return int8_bytes(sparse_mlp(), x), x


@pytest.fixture(scope="module")
def clustered():
    x = images(12)
    return int8_bytes(sparse_cnn(levels=3, zeros=0.3), x), x


def _array(folder) -> bytes:
    text = (folder / "model_data.cc").read_text()
    body = text[text.index("{") + 1 : text.rindex("}")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def test_auto_writes_the_smallest_exact_model_and_reports_each_encoding(mlp, tmp_path):
    data, x = mlp
    art = to_micro(data, tmp_path / "m", inputs=x, compression="auto")
    rows = {r.name: r for r in art.encodings}
    assert list(rows)[:5] == ["none", "pruning", "lut", "pruning+lut", "sparse"]
    assert rows["none"].flash_bytes == len(data)
    built = [r for r in rows.values() if r.flash_bytes]
    assert art.compression == min(built, key=lambda r: (r.flash_bytes, r.arena_bytes)).name
    assert art.model_bytes == min(r.flash_bytes for r in built)
    assert art.model_bytes < 0.6 * len(data)
    written = (tmp_path / "m" / "model.tflite").read_bytes()
    assert written == _array(tmp_path / "m") and len(written) == art.model_bytes
    assert all(r.bit_exact for r in rows.values() if r.flash_bytes)
    assert rows["pruning"].arena_bytes > rows["none"].arena_bytes  # flash traded for RAM
    assert rows["sparse"].arena_bytes == rows["none"].arena_bytes  # the sparse kernel's is not
    pruned = to_micro(data, tmp_path / "p", inputs=x, compression="pruning")
    written = (tmp_path / "p" / "model.tflite").read_bytes()
    np.testing.assert_array_equal(run_micro(written, x).outputs[0],
                                  run_micro(data, x).outputs[0])
    assert "AddDecode()" in (tmp_path / "p" / "model_ops.h").read_text()
    assert pruned.arena_bytes == rows["pruning"].arena_bytes
    assert f"kTensorArenaSize = {art.arena_size};" in (tmp_path / "m" / "model_data.h").read_text()
    assert "pruning" in art.table() and "arena B" in art.table()


def test_lut_on_clustered_weights(clustered, tmp_path):
    data, x = clustered
    art = to_micro(data, tmp_path, inputs=x, compression=MicroCompression("lut", lut_bits=3))
    assert art.compression == "lut" and art.model_bytes < len(data)
    assert {t.bits for t in art.tensors if t.encoding == "lut"} == {3}
    assert tc.DECODE_OP in art.ops


def test_board_gets_the_smallest_model_that_fits(mlp, tmp_path):
    data, x = mlp
    free = to_micro(data, tmp_path / "free", inputs=x, compression="pruning")
    rows = {r.name: r for r in free.encodings}
    squeezed, none = rows["pruning"], rows["none"]
    # RAM too small for the fully compressed arena but enough for the dense one; flash too
    # small for the dense model: only a partly compressed model fits.
    board = MicroBoard("test-board", ram_bytes=(none.arena_size + squeezed.arena_size) // 2,
                       flash_bytes=none.flash_bytes - 1, core="test", source="test")
    art = to_micro(data, tmp_path / "fit", inputs=x, compression="pruning", board=board)
    assert art.board == "test-board" and "fitted to test-board" in art.compression
    assert art.arena_size <= board.ram_bytes and art.model_bytes <= board.flash_bytes
    assert squeezed.flash_bytes < art.model_bytes < none.flash_bytes
    kept = [t for t in art.tensors if t.encoding == "none" and t.dense_bytes > 4096]
    assert kept, "the largest kernel goes back to plain storage"
    # The dense model fits too, but a partly compressed one is smaller.
    roomy = MicroBoard("roomy", ram_bytes=board.ram_bytes, flash_bytes=none.flash_bytes,
                       core="test", source="test")
    auto = to_micro(data, tmp_path / "auto", inputs=x, compression="auto", board=roomy)
    assert auto.model_bytes < none.flash_bytes and auto.arena_size <= roomy.ram_bytes


def test_nothing_fits_refuses_with_figures_and_writes_nothing(mlp, tmp_path):
    data, x = mlp
    board = MicroBoard("speck", ram_bytes=1024, flash_bytes=4096, core="test", source="test")
    with pytest.raises(MicroError, match=r"No encoding fits the board 'speck'[\s\S]*none: "
                                         r"flash [\d,]+ B, arena [\d,]+ B[\s\S]*pruning"):
        to_micro(data, tmp_path / "out", inputs=x[:2], compression="auto", board=board)
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_a_compressed_model_is_kept_and_checked(mlp, tmp_path):
    data, x = mlp
    first = to_micro(data, tmp_path / "a", inputs=x[:4], compression="pruning")
    compressed = (tmp_path / "a" / "model.tflite").read_bytes()
    again = to_micro(compressed, tmp_path / "b", inputs=x[:4])
    assert again.compression == "given" and again.model_bytes == first.model_bytes
    assert {t.encoding for t in again.tensors} == {"pruning"}
    with pytest.raises(MicroError, match="compressed already"):
        to_micro(compressed, tmp_path / "c", compression="auto")


def test_bad_input_is_refused_before_anything_is_written(mlp, tmp_path):
    data, x = mlp
    float_model = to_tflite(sparse_mlp(sizes=(16, 8, 4))).model_bytes
    with pytest.raises(MicroError, match=r"float weights[\s\S]*Int8\(integer_io=True\)"):
        to_micro(float_model, tmp_path / "f", compression="pruning")
    sparse = to_tflite(sparse_mlp(zeros=0.9, sizes=(32, 16, 4)), sparse=True).model_bytes
    with pytest.raises(MicroError, match="no DENSIFY op"):
        to_micro(sparse, tmp_path / "s", compression="auto")
    dense = int8_bytes(sparse_mlp(zeros=0.0, sizes=(32, 16, 4)),
                       np.random.default_rng(0).random((8, 32)).astype("float32"))
    with pytest.raises(MicroError, match="applies to no tensor.*tfimp.prune"):
        to_micro(dense, tmp_path / "d", compression="pruning")
    with pytest.raises(MicroError, match="applies to no tensor.*tfimp.cluster"):
        to_micro(dense, tmp_path / "l", compression="lut")
    with pytest.raises(ValueError, match="Argument `compression` must be None"):
        to_micro(data, tmp_path / "x", compression="zip")
    with pytest.raises(ValueError, match=r"`bits` must be an integer in 1\.\.7"):
        to_micro(data, tmp_path / "x", compression=MicroCompression("lut", lut_bits=9))
    with pytest.raises(ValueError, match="Argument `board` must be"):
        to_micro(data, tmp_path / "x", compression="auto", board="pdp-11")
    with pytest.raises(ValueError, match="'TFL3'"):
        to_micro(b"\x00" * 64, tmp_path / "x", compression="auto")
    assert not list(tmp_path.iterdir())


def test_compression_config_round_trips():
    config = MicroCompression("lut", lut_bits=4)
    assert MicroCompression.from_config(config.get_config()) == config
    with pytest.raises(ValueError, match="`mode` must be one of"):
        MicroCompression("gzip")


def test_dense_model_default_behaviour_is_unchanged(mlp, tmp_path):
    data, x = mlp
    art = to_micro(data, tmp_path, inputs=x[:2])
    assert art.compression == "none" and art.model_bytes == len(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_data.cc", "model_data.h",
                                                           "model_ops.h"]
    assert tc.DECODE_OP not in inspect(_array(tmp_path)).ops
