import json
import os

import numpy as np
import pytest

from tfimp.bundle import BundleError, Preprocessing, build, read_manifest, verify_bundle
from tfimp.bundle.cli import bundle_main
from tfimp.export import inspect


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_manifest_describes_the_model(models, rpi_bundle, labels):
    m = read_manifest(rpi_bundle)
    info = inspect(models["int8"])
    data = (rpi_bundle / m["model"]["file"]).read_bytes()
    assert data == models["int8"].read_bytes()
    import hashlib

    assert m["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["target"] == "rpi" and m["tfimp_version"]
    (inp,), (out,) = m["inputs"], m["outputs"]
    t_in, t_out = info.tensors[info.inputs[0]], info.tensors[info.outputs[0]]
    assert inp["name"] == t_in.name and inp["shape"] == [1, 8, 8, 1] and inp["dtype"] == "int8"
    assert inp["quantization"]["scale"] == pytest.approx(t_in.scales[0])
    assert inp["quantization"]["zero_point"] == t_in.zero_points[0]
    assert out["shape"] == [1, 10] and out["quantization"]["zero_point"] == t_out.zero_points[0]
    assert m["ops"] == sorted(set(info.ops))
    assert m["labels"] == labels and m["preprocessing"] == {"mean": 0.0, "std": 255.0}
    # the dense kernel is half zeros; int8 keeps them exact
    assert 0.3 < m["sparsity"]["fraction"] < 0.6 and m["sparsity"]["weights"] > 640
    assert m["size"]["file_bytes"] == len(data) and 0 < m["size"]["gzip_bytes"] < len(data)
    prof = m["profile"]
    assert prof["tool"] == "litert" and prof["runs"] > 0 and prof["median_us"] > 0
    assert prof["host"]["machine"]


def test_export_settings_are_recorded(models, tmp_path):
    report = {"quantization": {"name": "int8", "integer_io": True}, "sparse": False,
              "tflite_bytes": 1, "unrelated": 3}
    (tmp_path / "report.json").write_text(json.dumps(report))
    out = build(models["int8"], "android", tmp_path / "a", profile=False,
                export_report=tmp_path / "report.json")
    export = read_manifest(out)["export"]
    assert export == {"quantization": {"name": "int8", "integer_io": True}, "sparse": False,
                      "tflite_bytes": 1}
    assert read_manifest(out)["profile"] is None


def test_existing_folder_is_never_overwritten_without_force(models, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*force"):
        build(models["int8"], "rpi", out, profile=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    build(models["int8"], "rpi", out, force=True, profile=False)
    assert not (out / "keep.txt").exists() and verify_bundle(out)["target"] == "rpi"
    assert _leftovers(tmp_path) == []


def test_empty_existing_folder_is_used(models, tmp_path):
    (tmp_path / "empty").mkdir()
    out = build(models["int8"], "android", tmp_path / "empty", profile=False)
    assert (out / "manifest.json").is_file()


def test_unwritable_folder_is_a_clear_error(models, tmp_path):
    with pytest.raises(PermissionError, match="cannot be written"):
        build(models["int8"], "rpi", "/proc/tfimp-bundle/out", profile=False)
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="cannot be written"):
            build(models["int8"], "rpi", locked / "out", profile=False)


@pytest.mark.parametrize("model, board, pattern", [
    ("sparse", None, "DENSIFY"),
    ("float", None, "int8"),
    ("big", "cortex-m0plus-32k", "does not fit the board 'cortex-m0plus-32k'"),
])
def test_micro_refuses_models_it_cannot_run(models, tmp_path, model, board, pattern):
    assert ("DENSIFY" in inspect(models["sparse"]).ops)
    with pytest.raises(BundleError, match=pattern):
        build(models[model], "micro", tmp_path / "out", board=board)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kwargs, pattern", [
    ({"target": "esp32"}, r"`target` must be one of \['android', 'micro', 'rpi'\]"),
    ({"target": "micro", "board": "nope"}, "`board` must be a MicroBoard or one of"),
    ({"target": "rpi", "board": "rp2040"}, "`board` applies to the micro target only"),
    ({"target": "rpi", "labels": ["a", "b"]}, "one label per class.*Received: 2 labels"),
    ({"target": "rpi", "preprocessing": {"std": 0.0}}, "`std` must be non-zero"),
])
def test_bad_arguments(models, tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        build(models["int8"], out_dir=tmp_path / "out", profile=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="`model_path` must name an existing .tflite"):
        build(tmp_path / "missing.tflite", "rpi", tmp_path / "out")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite model"):
        build(tmp_path / "junk.tflite", "rpi", tmp_path / "out")


def test_preprocessing_round_trips_its_config():
    pre = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    assert Preprocessing.from_config(json.loads(json.dumps(pre.get_config()))) == pre
    with pytest.raises(ValueError, match="`mean` must be a finite number"):
        Preprocessing(mean=float("nan"))


def test_tampered_bundle_fails_verification(models, tmp_path):
    out = build(models["int8"], "android", tmp_path / "a", profile=False)
    model = out / read_manifest(out)["model"]["file"]
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match manifest.json"):
        verify_bundle(out)


def test_cli_builds_and_reports_errors(models, labels_file, labels, tmp_path, capsys):
    argv = ["--target", "rpi", str(models["int8"]), "--out", str(tmp_path / "c"),
            "--labels", str(labels_file), "--mean", "127.5", "--std", "127.5", "--no-profile"]
    rgb = ["--target", "android", str(models["int8"]), "--out", str(tmp_path / "d"),
           "--mean", "1,2,3", "--std", "4,5,6", "--no-profile"]
    assert bundle_main(rgb) == 2  # three channels' statistics for a one-channel input
    assert "preprocessing.mean" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert bundle_main(argv) == 0
    assert "rpi bundle written to" in capsys.readouterr().out
    assert read_manifest(tmp_path / "c")["preprocessing"] == {"mean": 127.5, "std": 127.5}
    assert bundle_main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert np.array_equal(read_manifest(tmp_path / "c")["labels"], labels)
