"""The android bundle: adb benchmark script and the Kotlin sample generated from the manifest."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from tfimp.bundle import build, kotlin_sample, read_manifest


@pytest.fixture(scope="module")
def android_bundle(models, labels_file, tmp_path_factory):
    return build(models["int8"], "android", tmp_path_factory.mktemp("a") / "android",
                 labels=labels_file, preprocessing={"mean": 127.5, "std": 127.5},
                 profile=False)


def _const(source, name):
    return re.search(rf"const val {name} = ([^\n]+)", source).group(1)


def test_kotlin_sample_matches_the_manifest(android_bundle):
    m = read_manifest(android_bundle)
    kt = (android_bundle / "ModelRunner.kt").read_text()
    assert kt.strip() in (android_bundle / "README.md").read_text()
    assert _const(kt, "MODEL_SHA256") == f'"{m["model"]["sha256"]}"'
    assert _const(kt, "MODEL_FILE") == f'"{m["model"]["file"]}"'
    for role, specs in (("INPUT", m["inputs"]), ("OUTPUT", m["outputs"])):
        for i, spec in enumerate(specs):
            assert int(_const(kt, f"{role}{i}_SIZE")) == int(np.prod(spec["shape"]))
            q = spec["quantization"]
            assert float(_const(kt, f"{role}{i}_SCALE").rstrip("f")) == pytest.approx(q["scale"])
            assert int(_const(kt, f"{role}{i}_ZERO_POINT")) == q["zero_point"]
            buffer = re.search(rf"val {role.lower()}{i}: ByteBuffer =\s+ByteBuffer"
                               rf"\.allocateDirect\((\d+)\)", kt)
            assert int(buffer.group(1)) == spec["bytes"]
    assert "val MEAN = floatArrayOf(127.5f)" in kt and '"class-0", "class-1"' in kt
    assert "put(quantize(normalize(x0[i], i), INPUT0_SCALE, INPUT0_ZERO_POINT, -128, 127)" in kt
    assert "{{" not in kt and kt.count("{") == kt.count("}")


def test_float_models_get_float_buffers(models):
    from tfimp.bundle.manifest import make_manifest
    from tfimp.export import inspect

    m = make_manifest(models["float"], inspect(models["float"]), "android", None, None, None)
    kt = kotlin_sample(m)
    assert "input0.putFloat(normalize(x0[i], i))" in kt and "output0.getFloat(it * 4)" in kt
    assert "INPUT0_SCALE" not in kt and "val LABELS: List<String> = listOf()" in kt


def test_benchmark_script_refuses_a_changed_model_before_adb(android_bundle, tmp_path):
    script = android_bundle / "run_benchmark.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    text = script.read_text()
    for flag in ("--use_xnnpack=true", "--enable_op_profiling=true", "--num_threads=",
                 "adb push", "/data/local/tmp/tfimp"):
        assert flag in text
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    usage = subprocess.run(["sh", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    copy = tmp_path / "copy"
    shutil.copytree(android_bundle, copy)
    model = copy / read_manifest(copy)["model"]["file"]
    model.write_bytes(model.read_bytes() + b"\0")
    proc = subprocess.run(["sh", str(copy / "run_benchmark.sh"), str(binary)],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 3 and "refusing to benchmark a changed model" in proc.stderr
