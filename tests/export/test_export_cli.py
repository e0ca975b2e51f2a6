import json

from tfimp.export import inspect
from tfimp.export.cli import export_main, inspect_main


def test_export_then_inspect(mlp16, tmp_path, capsys):
    src = tmp_path / "mlp.keras"
    mlp16.save(src)
    out = tmp_path / "mlp.tflite"
    code = export_main([str(src), "-o", str(out), "-q", "int8", "--sparse", "auto",
                        "--representative", "digits8", "--verify", "digits8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quantization"]["name"] == "int8" and report["sparse"] is True
    assert report["tflite_bytes"] == out.stat().st_size
    assert report["verification"]["samples"] == 360  # 20% of 1,797, rounded up
    assert inspect_main([str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_bytes"] == inspect(out).file_bytes
    assert inspect_main([str(out)]) == 0
    assert "sparse 1x16" in capsys.readouterr().out


def test_errors_are_reported_not_raised(mlp16, tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"12345678TFL3")
    assert inspect_main([str(bad)]) == 2
    assert "not a TFLite model" in capsys.readouterr().err
    src = tmp_path / "mlp.keras"
    mlp16.save(src)
    assert export_main([str(src), "-o", str(tmp_path / "x.tflite"), "-q", "int8"]) == 2
    assert "`--representative`" in capsys.readouterr().err
    assert not (tmp_path / "x.tflite").exists()
    assert export_main([str(tmp_path / "missing.keras"), "-o", str(tmp_path / "y.tflite")]) == 2
