import json

import pytest

from tfimp.profile import compare
from tfimp.profile.cli import main


def test_table_json_ratios_and_plot(tiny_tflite, lenet_tflite, tmp_path):
    c = compare([lenet_tflite, tiny_tflite], runs=10, warmup=2)
    first, second = c.rows
    assert [(lat.threads, lat.xnnpack) for lat in first.latency] == [
        (1, True), (1, False), (2, True), (2, False)]
    assert all(lat.median_us <= lat.p90_us for lat in first.latency + second.latency)
    assert first.gzip_bytes < first.size_bytes and first.arena_bytes > second.arena_bytes
    ratios = c.ratios()
    assert ratios[0]["size"] == 1.0
    assert ratios[1]["size"] == pytest.approx(second.size_bytes / first.size_bytes)
    assert ratios[1]["arena"] == pytest.approx(second.arena_bytes / first.arena_bytes)
    text = c.table()
    assert "lenet.tflite" in text and "vs first" in text and "1t xnn med/p90 us" in text
    assert json.loads(c.to_json())["ratios"][1]["gzip"] == pytest.approx(
        second.gzip_bytes / first.gzip_bytes)
    png = tmp_path / "cmp.png"
    c.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_arena_is_na_with_the_reason_when_tflm_cannot_run(tiny_tflite, sparse_tflite):
    c = compare([tiny_tflite, sparse_tflite], runs=3, warmup=1, threads=(1,), xnnpack=(True,))
    assert c.rows[1].arena_bytes is None
    assert "not runnable in TFLite Micro" in c.rows[1].arena_note
    assert "n/a: not runnable in TFLite Micro" in c.table()
    assert c.ratios()[1]["arena"] is None


def test_cli_json_and_errors(tiny_tflite, tmp_path, capsys):
    assert main([tiny_tflite, "--runs", "3", "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 3 and len(out["rows"][0]["latency"]) == 2
    assert main([tiny_tflite, str(tmp_path / "missing.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([tiny_tflite, "--runs", "0"]) == 2
    assert "Received: runs=0" in capsys.readouterr().err


def test_plot_leaves_the_backend_and_pyplot_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import pyplot

    from tfimp.profile.compare import Comparison, Latency, ModelRow

    lat = (Latency(1, True, 10.0, 12.0),)
    rows = (ModelRow("a.tflite", 100, 80, lat, 1000), ModelRow("b.tflite", 50, 30, lat, None))
    before = matplotlib.get_backend()
    matplotlib.use("template")  # a notebook's backend stands in for any non-Agg one
    try:
        open_figures = pyplot.get_fignums()
        Comparison(rows, runs=3).plot(tmp_path / "c.png")
        assert matplotlib.get_backend() == "template"
        assert pyplot.get_fignums() == open_figures
    finally:
        matplotlib.use(before)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
