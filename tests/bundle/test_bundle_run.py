"""The rpi bundle's run.py, bench.sh and requirements, run as a user on the board would."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfimp.bundle import read_manifest


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _run(bundle, *args, python=sys.executable, isolated=True):
    cmd = [python, *(["-I"] if isolated else []), str(bundle / "run.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=bundle.parent,
                          env=_clean_env(), timeout=120)


def _litert(bundle, x_quantized):
    from ai_edge_litert.interpreter import Interpreter

    m = read_manifest(bundle)
    interp = Interpreter(model_path=str(bundle / m["model"]["file"]))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x_quantized)
    interp.invoke()
    q = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.float64)
    out = m["outputs"][0]["quantization"]
    return ((q - out["zero_point"]) * out["scale"]).reshape(-1)


def _quantize(real, spec):
    q = spec["quantization"]
    return np.clip(np.round(real / q["scale"] + q["zero_point"]), -128, 127).astype(np.int8)


def _load_run_module(bundle):
    spec = importlib.util.spec_from_file_location("bundle_run", bundle / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_never_imports_tensorflow_or_tfimp(rpi_bundle):
    proc = subprocess.run(
            [sys.executable, "-I", "-X", "importtime", str(rpi_bundle / "run.py"), "--check",
             "--json"], capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ai_edge_litert" in imported and "numpy" in imported
    assert not imported & {"tensorflow", "tfimp", "keras", "tf_keras"}
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["sha256"] == read_manifest(rpi_bundle)["model"]["sha256"]
    assert report["runs"]["zeros"]["output_shapes"] == [[1, 10]]


def test_npy_input_matches_the_interpreter(rpi_bundle, tmp_path, labels):
    m = read_manifest(rpi_bundle)
    pixels = np.random.default_rng(5).integers(0, 256, (3, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", pixels)
    proc = _run(rpi_bundle, tmp_path / "x.npy", "--json", "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    samples = json.loads(proc.stdout)["samples"]
    assert len(samples) == 3
    for x, sample in zip(pixels, samples):
        expected = _litert(rpi_bundle, _quantize(x[None] / 255.0, m["inputs"][0]))
        np.testing.assert_allclose(sample["outputs"][0], expected, rtol=0, atol=1e-6)
        best = int(np.argmax(expected))
        assert sample["top_k"][0]["index"] == best
        assert sample["top_k"][0]["label"] == labels[best]
    text = _run(rpi_bundle, tmp_path / "x.npy", "--top-k", "2").stdout
    assert text.count("sample ") == 3 and labels[samples[0]["top_k"][0]["index"]] in text


def test_raw_input_is_taken_as_is(rpi_bundle, tmp_path):
    q = np.random.default_rng(6).integers(-128, 128, (1, 8, 8, 1)).astype(np.int8)
    q.tofile(tmp_path / "x.bin")
    proc = _run(rpi_bundle, tmp_path / "x.bin", "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["samples"][0]["outputs"][0]
    np.testing.assert_allclose(got, _litert(rpi_bundle, q), atol=1e-6)
    (tmp_path / "short.bin").write_bytes(b"\x01" * 10)
    proc = _run(rpi_bundle, tmp_path / "short.bin")
    assert proc.returncode == 2 and "do not fill samples of shape [8, 8, 1]" in proc.stderr


def test_image_input_is_resized_normalized_and_quantized(rpi_bundle, tmp_path):
    from PIL import Image

    m = read_manifest(rpi_bundle)
    pixels = np.random.default_rng(8).integers(0, 256, (8, 8)).astype(np.uint8)
    expected = _litert(rpi_bundle, _quantize(pixels.reshape(1, 8, 8, 1) / 255.0, m["inputs"][0]))
    for name in ("img.png", "img.pgm", "img.bmp"):
        Image.fromarray(pixels).save(tmp_path / name)
        proc = _run(rpi_bundle, tmp_path / name, "--json")
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(json.loads(proc.stdout)["samples"][0]["outputs"][0],
                                   expected, atol=1e-6)


def test_an_unreadable_image_is_an_error_not_a_traceback(rpi_bundle, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = _run(rpi_bundle, tmp_path / "broken.png")
    assert proc.returncode == 2 and "not an image that Pillow can read" in proc.stderr


def test_run_py_times_with_the_profilers_routine(rpi_bundle):
    from tfimp.profile import timing

    assert (rpi_bundle / "timing.py").read_text() == Path(timing.__file__).read_text()
    proc = _run(rpi_bundle, "--bench", "7", "--warmup", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert set(figures) == {"runs", "warmup", *timing.summarize([1.0])}
    assert (figures["runs"], figures["warmup"]) == (7, 2)
    assert figures["min_us"] <= figures["median_us"] <= figures["p90_us"] <= figures["max_us"]


def test_a_changed_model_is_refused(rpi_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(rpi_bundle, copy)
    model = copy / read_manifest(copy)["model"]["file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    proc = _run(copy, "--check")
    assert proc.returncode == 2
    assert "does not match manifest.json" in proc.stderr and "refusing to load it" in proc.stderr


def test_bench_script_runs_the_litert_benchmark(rpi_bundle):
    env = dict(_clean_env(), PYTHON=sys.executable, PATH="/usr/bin:/bin")
    proc = subprocess.run([str(rpi_bundle / "bench.sh"), "1", "5"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.splitlines()[1])
    assert figures["runs"] == 5 and 0 < figures["min_us"] <= figures["median_us"]
    assert "benchmark_model not found" in proc.stdout


def test_requirements_are_only_the_runtime_numpy_and_pillow(rpi_bundle):
    names = [line.split(">")[0].split("=")[0].strip()
             for line in (rpi_bundle / "requirements.txt").read_text().splitlines() if line]
    assert names == ["ai-edge-litert", "numpy", "pillow"]
    from importlib.metadata import version

    major_minor = ".".join(version("ai-edge-litert").split(".")[:2])
    assert f"ai-edge-litert>={major_minor}" in (rpi_bundle / "requirements.txt").read_text()


@pytest.mark.slow
def test_runs_in_a_fresh_virtualenv_with_only_its_requirements(rpi_bundle, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "-r",
                          str(rpi_bundle / "requirements.txt")], capture_output=True, text=True,
                         env=_clean_env(), timeout=1200)
    assert pip.returncode == 0, pip.stderr
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert {"ai-edge-litert", "pillow"} <= installed
    assert not installed & {"tensorflow", "tfimp", "keras"}
    proc = _run(rpi_bundle, "--check", python=str(py))
    assert proc.returncode == 0 and proc.stdout.startswith("OK:"), proc.stderr
    np.save(tmp_path / "x.npy", np.full((8, 8, 1), 128.0, np.float32))
    proc = _run(rpi_bundle, tmp_path / "x.npy", "--json", python=str(py))
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["samples"][0]["outputs"][0]) == 10


def test_check_warns_when_the_boards_runtime_is_older(rpi_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(rpi_bundle, copy)
    manifest = read_manifest(copy)
    assert manifest["runtimes"]["ai-edge-litert"]
    manifest["runtimes"]["ai-edge-litert"] = "99.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    proc = _run(copy, "--check", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "older than 99.0" in json.loads(proc.stdout)["warnings"][0]
