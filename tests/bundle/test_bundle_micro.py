"""The micro bundle: C sources that compile, exactly the model's ops, a sufficient arena."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tfimp.bundle import build, read_manifest
from tfimp.bundle.micro_files import array_bytes
from tfimp.export import inspect, run_micro
from tfimp.export.micro import resolver_method

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="needs g++")

_CHECK_MAIN = """
#include <cstdio>
#include "model_check.h"
int main() { std::puts(ModelMatchesManifest() ? "match" : "mismatch"); return 0; }
"""


@pytest.fixture(scope="module")
def micro_bundle(models, labels_file, tmp_path_factory):
    return build(models["int8"], "micro", tmp_path_factory.mktemp("m") / "micro",
                 board="cortex-m0plus-32k", labels=labels_file,
                 preprocessing={"mean": 0.0, "std": 255.0})


def test_manifest_states_memory_and_fit(micro_bundle, models):
    m = read_manifest(micro_bundle)["micro"]
    data = models["int8"].read_bytes()
    assert m["flash_bytes"] == len(data)
    assert m["arena_size"] >= m["arena_bytes_measured"] * 1.25 and m["arena_size"] % 16 == 0
    assert m["fit"]["board"] == "cortex-m0plus-32k" and m["fit"]["fits"] is True
    assert m["fit"]["ram_margin_bytes"] == 32 * 1024 - m["arena_size"]
    readme = (micro_bundle / "README.md").read_text()
    assert f"| {m['arena_size']} |" in readme and "**chosen** `cortex-m0plus-32k`" in readme


def test_resolver_holds_exactly_the_models_ops(micro_bundle, models):
    ops = list(dict.fromkeys(inspect(models["int8"]).ops))
    header = (micro_bundle / "model_ops.h").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert registered == [resolver_method(op) for op in ops]
    assert f"MicroMutableOpResolver<{len(ops)}>" in header
    assert read_manifest(micro_bundle)["micro"]["ops"] == ops


def test_model_array_is_the_model_and_the_arena_suffices(micro_bundle, models):
    data = models["int8"].read_bytes()
    assert array_bytes((micro_bundle / "model_data.cc").read_text()) == data
    size = int(re.search(r"kTensorArenaSize = (\d+);",
                         (micro_bundle / "model_data.h").read_text()).group(1))
    assert size == read_manifest(micro_bundle)["micro"]["arena_size"]
    x = np.random.default_rng(0).integers(-128, 128, (2, 8, 8, 1)).astype(np.int8)
    run = run_micro(data, x, arena_size=size)
    assert run.arena_bytes <= size and run.outputs[0].shape == (2, 10)


def test_runner_quantizes_with_the_manifests_parameters(micro_bundle):
    m = read_manifest(micro_bundle)
    main = (micro_bundle / "main.cc").read_text()
    q_in, q_out = m["inputs"][0]["quantization"], m["outputs"][0]["quantization"]
    assert f"{{kTfLiteInt8, 64, {q_in['scale']:.9g}f, {q_in['zero_point']}," in main
    assert f"{{kTfLiteInt8, 10, {q_out['scale']:.9g}f, {q_out['zero_point']}," in main
    assert "constexpr float kStd[] = {255.0f};" in main and '"class-9"' in main
    assert "{{" not in main


@needs_gxx
def test_model_sources_compile(micro_bundle, tmp_path):
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Werror", "-c",
                           str(micro_bundle / "model_data.cc"), "-o", str(tmp_path / "m.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_gxx
def test_model_check_accepts_the_model_and_refuses_another(micro_bundle, tmp_path):
    (tmp_path / "check_main.cc").write_text(_CHECK_MAIN)

    def compile_and_run(folder):
        exe = tmp_path / "check"
        subprocess.run([GXX, "-std=c++17", "-Wall", "-Werror", f"-I{folder}",
                        str(tmp_path / "check_main.cc"), str(folder / "model_data.cc"),
                        "-o", str(exe)], check=True, capture_output=True)
        return subprocess.run([str(exe)], capture_output=True, text=True).stdout.strip()

    assert compile_and_run(micro_bundle) == "match"
    other = tmp_path / "other"
    shutil.copytree(micro_bundle, other)
    source = (other / "model_data.cc").read_text()
    first = re.search(r"0x[0-9a-f]{2}", source[source.index("{"):]).start() + source.index("{")
    (other / "model_data.cc").write_text(source[:first] + "0x00" + source[first + 4:])
    assert compile_and_run(other) == "mismatch"


TFLM_DIR = os.environ.get("TFIMP_TFLM_DIR") or os.environ.get("TFLM_DIR")
needs_tflm = pytest.mark.skipif(not (TFLM_DIR and GXX), reason="set TFIMP_TFLM_DIR to a "
                                "tflite-micro checkout whose third-party downloads are in place")


@needs_tflm
@pytest.mark.parametrize("flags", [(), ("-DTFIMP_TEST_INPUTS", "-DTFIMP_SYSTICK")])
def test_runner_compiles_against_tflite_micro(micro_bundle, tmp_path, flags):
    from tfimp.bundle.tflm_build import test_inputs_header

    downloads = f"{TFLM_DIR}/tensorflow/lite/micro/tools/make/downloads"
    (tmp_path / "test_inputs.h").write_text(test_inputs_header([np.zeros((2, 8, 8, 1), "int8")]))
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", "-o",
                           str(tmp_path / "main.o"), *flags, "-DTF_LITE_STATIC_MEMORY",
                           f"-I{micro_bundle}", f"-I{tmp_path}", f"-isystem{TFLM_DIR}",
                           f"-isystem{downloads}/flatbuffers/include",
                           f"-isystem{downloads}/gemmlowp", str(micro_bundle / "main.cc")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_tflm
def test_sparse_kernel_compiles_warning_free_against_tflite_micro(tmp_path):
    from tfimp.export.micro import sparse_sources

    for name, blob in sparse_sources().items():
        (tmp_path / name).write_bytes(blob)
    downloads = f"{TFLM_DIR}/tensorflow/lite/micro/tools/make/downloads"
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Wsign-compare",
                           "-Wdouble-promotion", "-Wshadow", "-Werror", "-c", "-o",
                           str(tmp_path / "k.o"), "-DTF_LITE_STATIC_MEMORY", f"-I{tmp_path}",
                           f"-isystem{TFLM_DIR}", f"-isystem{downloads}/flatbuffers/include",
                           f"-isystem{downloads}/gemmlowp",
                           str(tmp_path / "sparse_fully_connected.cc")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@needs_tflm
@pytest.mark.slow
def test_runner_builds_with_its_makefile_and_runs(micro_bundle, tmp_path, models):
    lib = f"{TFLM_DIR}/gen/linux_x86_64_default_gcc/lib/libtensorflow-microlite.a"
    if not os.path.isfile(lib):
        pytest.skip(f"build TFLite Micro first: {lib} is missing")
    work = tmp_path / "micro"
    shutil.copytree(micro_bundle, work)
    make = subprocess.run(["make", "-C", str(work), f"TFLM_DIR={TFLM_DIR}"],
                          capture_output=True, text=True, timeout=600)
    assert make.returncode == 0, make.stdout + make.stderr
    run = subprocess.run([str(work / "model_runner")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    arena = read_manifest(micro_bundle)["micro"]["arena_size"]
    log = run.stdout + run.stderr  # MicroPrintf goes to the target's debug log (stderr here)
    used, total = map(int, re.search(r"arena used (\d+) of (\d+) bytes", log).groups())
    assert total == arena and 0 < used <= arena
    # the runner feeds zeros through the manifest's preprocessing; LiteRT must agree on the class
    m = read_manifest(micro_bundle)
    zero_point = m["inputs"][0]["quantization"]["zero_point"]
    x = np.full((1, 8, 8, 1), zero_point, np.int8)
    expected = int(np.argmax(run_micro(models["int8"].read_bytes(), x).outputs[0]))
    assert f"top class {expected} " in log
