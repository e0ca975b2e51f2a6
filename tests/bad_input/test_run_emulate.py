"""`tfimp run --emulate`: a core it cannot emulate, or no TFLite Micro tree to build with, is
refused before anything is trained or written."""

import pytest

from tfimp.pipeline.runner import run


@pytest.mark.parametrize("core, env, words", [
    ("cortex-m7", "/nonexistent", ["`emulate`", "cortex-m7", "cortex-m4"]),
    ("cortex-m4", None, ["`tflm_dir`", "TFIMP_TFLM_DIR"]),
])
def test_emulate_needs_a_known_core_and_a_tflm_tree(tmp_path, monkeypatch, core, env, words):
    if env is None:
        monkeypatch.delenv("TFIMP_TFLM_DIR", raising=False)
    else:
        monkeypatch.setenv("TFIMP_TFLM_DIR", env)
    with pytest.raises(ValueError) as e:
        run("lenet_300_100", workdir=tmp_path / "run", smoke=True, emulate=core)
    for word in words:
        assert word in str(e.value)
    assert not (tmp_path / "run").exists()
