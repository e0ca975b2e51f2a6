"""Micro bundles of compressed models: DECODE registered, build option on, encodings recorded."""

import re
import shutil
import subprocess

import pytest

from tfimp.bundle import BundleError, build, read_manifest, verify_bundle
from tfimp.bundle.cli import bundle_main
from tfimp.bundle.micro_files import array_bytes
from tfimp.export import inspect, run_micro
from tfimp.export.micro import MODEL_FILE


@pytest.fixture(scope="module")
def compressed_bundle(models, tmp_path_factory):
    return build(models["int8"], "micro", tmp_path_factory.mktemp("c") / "micro",
                 board="cortex-m0plus-32k", compression="auto", profile=False)


@pytest.fixture(scope="module")
def plain_bundle(models, tmp_path_factory):
    return build(models["int8"], "micro", tmp_path_factory.mktemp("p") / "micro",
                 profile=False)


def test_the_bundle_holds_the_compressed_model_and_its_encodings(compressed_bundle, models):
    manifest = verify_bundle(compressed_bundle)
    micro = manifest["micro"]
    comp = micro["compression"]
    assert comp["encoding"] in ("pruning", "pruning+lut")
    encodings = {t["name"]: t["encoding"] for t in comp["tensors"]}
    assert "pruning" in encodings.values()
    assert [p.name for p in compressed_bundle.glob("*.tflite")] == [MODEL_FILE]
    data = (compressed_bundle / MODEL_FILE).read_bytes()
    assert manifest["model"]["file"] == MODEL_FILE
    assert manifest["model"]["source"]["file"] == models["int8"].name
    assert manifest["model"]["source"]["bytes"] == models["int8"].stat().st_size > len(data)
    assert array_bytes((compressed_bundle / "model_data.cc").read_text()) == data
    assert micro["flash_bytes"] == len(data) and "TFLM_DECODE" in micro["ops"]
    assert [r["name"] for r in comp["tried"]][:4] == ["none", "pruning", "lut", "pruning+lut"]
    run = run_micro(data, [__import__("numpy").zeros((1, 8, 8, 1), "int8")],
                    arena_size=micro["arena_size"])
    assert run.arena_bytes <= micro["arena_size"]


def test_resolver_registers_decode_and_the_build_needs_no_option(compressed_bundle):
    ops_h = (compressed_bundle / "model_ops.h").read_text()
    assert "resolver.AddDecode()" in ops_h
    assert len(re.findall(r"resolver\.Add\w+\(\)", ops_h)) == len(
        set(inspect(compressed_bundle / MODEL_FILE).ops))
    # DECODE is in every TFLM build; the compressed-tensor option would need another library
    assert "TFLM_COMPRESSION ?= no" in (compressed_bundle / "Makefile").read_text()
    assert "USE_TFLM_COMPRESSION\" OFF)" in (compressed_bundle / "tflm.cmake").read_text()
    assert "TFLM_DECODE op" in (compressed_bundle / "main.cc").read_text()
    build_record = read_manifest(compressed_bundle)["micro"]["build"]
    assert build_record["decode_op"] is True and build_record["tflm_compression"] is False
    readme = (compressed_bundle / "README.md").read_text()
    assert "## Compression" in readme and "| pruning |" in readme
    assert "Build option: none" in readme and "{{" not in readme


def test_uncompressed_bundles_leave_the_option_off(plain_bundle):
    assert "TFLM_COMPRESSION ?= no" in (plain_bundle / "Makefile").read_text()
    assert "USE_TFLM_COMPRESSION\" OFF)" in (plain_bundle / "tflm.cmake").read_text()
    assert "AddDecode" not in (plain_bundle / "model_ops.h").read_text()
    manifest = read_manifest(plain_bundle)
    assert manifest["micro"]["compression"]["encoding"] == "none"
    assert "source" not in manifest["model"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
@pytest.mark.parametrize("override, flags", [((), False), (("TFLM_COMPRESSION=yes",), True)])
def test_makefile_passes_the_option_to_library_and_runner(compressed_bundle, override, flags):
    show = "show: ; @echo 'flags=$(TFLM_FLAGS)|cxx=$(CXXFLAGS)|gen=$(TFLM_GEN)'"
    out = subprocess.run(["make", "-s", "-C", str(compressed_bundle), f"--eval={show}",
                          "TFLM_DIR=/opt/tflm", *override, "show"],
                         capture_output=True, text=True, check=True).stdout
    assert ("flags=USE_TFLM_COMPRESSION=yes|" in out) is flags
    assert ("-DUSE_TFLM_COMPRESSION" in out) is flags
    assert out.strip().endswith("_compression_gcc" if flags else "linux_x86_64_default_gcc")


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("g++") is None,
                    reason="needs cmake and g++")
@pytest.mark.parametrize("option, defs", [((), "TF_LITE_STATIC_MEMORY"),
                                          (("-DTFIMP_TFLM_COMPRESSION=ON",),
                                           "TF_LITE_STATIC_MEMORY;USE_TFLM_COMPRESSION")])
def test_cmake_snippet_defines_the_option_on_request(compressed_bundle, tmp_path, option, defs):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\nproject(check CXX)\n"
        "set(TFLM_DIR /opt/tflm)\nset(TFLM_LIB /opt/tflm/libtensorflow-microlite.a)\n"
        f"include({compressed_bundle}/tflm.cmake)\n"
        "get_target_property(defs model_runner COMPILE_DEFINITIONS)\n"
        "message(STATUS \"defs=${defs}\")\n")
    out = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"), *option],
                         capture_output=True, text=True, check=True).stdout
    assert f"defs={defs}\n" in out


def test_compression_is_for_micro_and_for_uncompressed_models(models, compressed_bundle,
                                                              tmp_path):
    with pytest.raises(BundleError, match="`compression` applies to the micro target only"):
        build(models["int8"], "rpi", tmp_path / "r", compression="auto")
    with pytest.raises(BundleError, match="compressed already"):
        build(compressed_bundle / MODEL_FILE, "micro", tmp_path / "c", compression="auto")
    with pytest.raises(ValueError, match="`compression` must be None"):
        build(models["int8"], "micro", tmp_path / "z", compression="zip")
    assert not list(tmp_path.iterdir())


def test_cli_compression_flag(models, tmp_path, capsys):
    assert bundle_main([str(models["int8"]), "--target", "micro", "--out", str(tmp_path / "m"),
                        "--compression", "pruning", "--no-profile"]) == 0
    assert read_manifest(tmp_path / "m")["micro"]["compression"]["encoding"] == "pruning"
    assert "model.tflite" in capsys.readouterr().out
