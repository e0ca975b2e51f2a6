import os

import pytest

from tfimp.profile import BOARDS, MicroBoard, MicroProfile, get_board, micro


def test_lenet_arena_flash_ops_and_verdict(lenet_tflite):
    p = micro(lenet_tflite, board="cortex-m4-256k")
    assert p.flash_bytes == os.path.getsize(lenet_tflite)
    assert 10_000 < p.arena_bytes < 256 * 1024 and p.arena_error is None
    assert "CONV_2D" in p.ops and "FULLY_CONNECTED" in p.ops
    v = p.verdict
    assert v.board == "cortex-m4-256k" and v.fits is True
    assert v.ram_margin_bytes == 256 * 1024 - p.arena_bytes
    assert v.flash_margin_bytes == 1024 * 1024 - p.flash_bytes
    assert "fits" in str(v) and "KiB" in str(v)
    assert MicroProfile.from_config(p.get_config()) == p


def test_does_not_fit_when_the_arena_exceeds_ram(lenet_tflite):
    p = micro(lenet_tflite)
    small = MicroBoard("tiny-ram", ram_bytes=p.arena_bytes - 16, flash_bytes=2**20, core="M0",
                       source="test")
    v = p.check(small)
    assert v.fits is False and v.ram_margin_bytes == -16 and v.flash_margin_bytes > 0
    assert "does NOT fit" in str(v)
    no_flash = MicroBoard("tiny-flash", ram_bytes=2**20, flash_bytes=1024, core="M0", source="t")
    assert p.check(no_flash).fits is False


def test_model_tflm_cannot_run_has_no_arena_and_an_unknown_verdict(sparse_tflite):
    p = micro(sparse_tflite, board="esp32-s3")
    assert p.arena_bytes is None and "TFLite Micro cannot run" in p.arena_error
    assert "DENSIFY" in p.ops
    assert p.verdict.fits is None and p.verdict.ram_margin_bytes is None
    assert "n/a" in p.table()


def test_board_registry():
    assert {"cortex-m4-256k", "esp32-s3", "arduino-nano-33-ble"} <= set(BOARDS)
    nano = get_board("arduino-nano-33-ble")
    assert (nano.ram_bytes, nano.flash_bytes) == (256 * 1024, 1024 * 1024)
    assert get_board("esp32-s3").ram_bytes == 512 * 1024
    for board in BOARDS.values():
        assert board.source and MicroBoard.from_config(board.get_config()) == board
    with pytest.raises(ValueError, match="one of: .*esp32-s3.*Received: board='esp32'"):
        get_board("esp32")
    with pytest.raises(ValueError, match="Received: ram_bytes=0"):
        MicroBoard("x", 0, 1, "c", "s")


def test_bad_models(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        micro(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="TFL3"):
        micro(junk)


def test_emulation_needs_a_known_core_and_a_tflite_micro_tree(lenet_tflite, monkeypatch):
    monkeypatch.delenv("TFIMP_TFLM_DIR", raising=False)
    with pytest.raises(ValueError, match=r"Argument `tflm_dir` must be a TensorFlow Lite Micro "
                       r"tree .*TFIMP_TFLM_DIR.*Received: tflm_dir=None"):
        micro(lenet_tflite, emulate="cortex-m4")
    with pytest.raises(ValueError, match=r"Argument `emulate` must be None or one of "
                       r"\['cortex-m4'\]. Received: emulate='cortex-m7'"):
        micro(lenet_tflite, emulate="cortex-m7", tflm_dir="/nowhere")
    with pytest.raises(ValueError, match="Argument `tflm_dir` must be a TensorFlow Lite Micro"):
        micro(lenet_tflite, emulate="cortex-m4", tflm_dir=os.path.dirname(lenet_tflite))


def test_profile_round_trips_with_emulated_figures():
    p = MicroProfile("m.tflite", 1000, 2000, None, ("FULLY_CONNECTED",), None, "cortex-m4",
                     123_456, 98_765)
    assert MicroProfile.from_config(p.get_config()) == p
    assert "123,456 per inference on an emulated cortex-m4 (QEMU; not cycles)" in p.table()
