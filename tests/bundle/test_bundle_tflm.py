"""Micro bundles compiled against TensorFlow Lite Micro and run, on this host and on an emulated
Cortex-M4 (QEMU mps2-an386), bit-exact with the tflite-micro Python interpreter.

The slow tests need TFIMP_TFLM_DIR: a TensorFlow Lite Micro tree with its host library
(gen/linux_x86_64_default_gcc) and Cortex-M4F library (gen/cortex_m_generic_cortex-m4+fp_*)
built. Without it they skip, unless TFIMP_REQUIRE_TFLM=1 (CI), which makes them fail.
"""

import os
import re
import shutil

import numpy as np
import pytest

from tfimp.bundle import build, read_manifest
from tfimp.bundle import tflm_build as tb

MODELS = ("lenet_300_100", "lenet5")
ENCODINGS = (None, "pruning", "lut", "sparse")
_SHAPES = {"lenet_300_100": (784,), "lenet5": (28, 28, 1)}


def _need(target: str) -> str:
    """The TFLM tree for `target`; skips (or fails under TFIMP_REQUIRE_TFLM=1) without it."""
    tflm = os.environ.get("TFIMP_TFLM_DIR")
    tools = {"host": ("g++",), "cortex-m4": ("arm-none-eabi-g++", "qemu-system-arm")}[target]
    reason = None
    if not tflm:
        reason = ("set TFIMP_TFLM_DIR to a TensorFlow Lite Micro tree with its host and "
                  "Cortex-M4F libraries built (see deploy/micro/README.md)")
    elif any(shutil.which(t) is None for t in tools):
        reason = f"needs {', '.join(tools)} (Debian: gcc-arm-none-eabi, qemu-system-arm, ...)"
    else:
        try:
            tb.find_library(tflm, target)
        except tb.TflmBuildError as e:
            reason = str(e)
    if reason is not None:
        if os.environ.get("TFIMP_REQUIRE_TFLM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return tflm


def _pruned(model, fraction=0.9):
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            w = weights[0]
            w[np.abs(w) < np.quantile(np.abs(w), fraction)] = 0.0
            layer.set_weights([w, *weights[1:]])
    return model


def _lenet_tflite(name: str, path):
    """An int8 .tflite of LeNet-300-100 or LeNet-5 with 90% of each kernel pruned."""
    import keras

    from tfimp import models
    from tfimp.export import Int8, to_tflite

    keras.utils.set_random_seed(0)
    model = _pruned(getattr(models, name)())
    rep = np.random.default_rng(1).random((16, *_SHAPES[name])).astype("float32")
    to_tflite(model, path, quantization=Int8(integer_io=True), representative_data=rep)
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Builds (once) the micro bundle of a model in an encoding, when a test first asks."""
    folder = tmp_path_factory.mktemp("lenets")
    made = {}

    def get(name, encoding):
        if name not in made:
            made[name] = _lenet_tflite(name, folder / f"{name}.tflite")
        if (name, encoding) not in made:
            made[name, encoding] = build(made[name], "micro",
                                         folder / f"{name}_{encoding or 'none'}",
                                         compression=encoding, profile=False)
        return made[name, encoding]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("target", tb.TARGETS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", MODELS)
def test_bundle_runs_bit_exact_with_python_tflm(bundles, name, encoding, target):
    tflm = _need(target)
    bundle = bundles(name, encoding)
    micro = read_manifest(bundle)["micro"]
    assert micro["compression"]["encoding"] == (encoding or "none")
    assert ("TFLM_DECODE" in micro["ops"]) is (encoding in ("pruning", "lut"))
    assert ("TFIMP_SPARSE_FC" in micro["ops"]) is (encoding == "sparse")
    xs = tb.random_inputs(bundle, 3, seed=1)
    run = tb.run_bundle(bundle, xs, target, tflm)
    tb.check_bit_exact(bundle, xs, run)
    assert run.outputs[0].shape == (3, 10) and run.outputs[0].dtype == np.int8
    assert len({r.tobytes() for r in run.outputs[0]}) > 1  # the inputs reach the outputs
    assert run.arena_size == micro["arena_size"] and 0 < run.arena_used <= run.arena_size
    if target == "host":
        assert run.instructions is None
    else:
        assert len(run.instructions) == 3 and min(run.instructions) > 10_000
        assert run.flash_bytes > micro["flash_bytes"]


def _one_fc_tflite(path, columns: int, units: int, per_channel: bool):
    """An int8 model of one 90%-pruned Dense layer, integer inputs and outputs."""
    import keras

    from tfimp.export import Int8, to_tflite

    keras.utils.set_random_seed(columns)
    model = keras.Sequential([keras.Input((columns,)), keras.layers.Dense(units, "relu")])
    w, b = model.layers[0].get_weights()
    w[np.random.default_rng(0).random(w.shape) < 0.9] = 0.0
    model.layers[0].set_weights([w, b + 0.05])
    rep = np.random.default_rng(1).standard_normal((16, columns)).astype("float32")
    to_tflite(model, path, quantization=Int8(integer_io=True, per_channel_dense=per_channel),
              representative_data=rep)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("target", tb.TARGETS)
@pytest.mark.parametrize("columns,units,per_channel", [(300, 64, True), (200, 10, False)])
def test_sparse_kernel_in_cpp_equals_its_mirror_and_the_dense_op(tmp_path, target, columns,
                                                                units, per_channel):
    from tfimp.export import sparse_fc, tflm_sparse
    from tfimp.export import tflite_edit as edit

    tflm = _need(target)
    model = _one_fc_tflite(tmp_path / "fc.tflite", columns, units, per_channel)
    bundle = build(model, "micro", tmp_path / "b", compression="sparse", profile=False)
    xs = tb.random_inputs(bundle, 4, seed=2)
    run = tb.run_bundle(bundle, xs, target, tflm)
    tb.check_bit_exact(bundle, xs, run)  # against TFLM's dense op
    data = (bundle / "model.tflite").read_bytes()
    (k, ins, outs, blob), = tflm_sparse.sparse_ops(data)
    assert sparse_fc.read(blob).index_bytes == (1 if columns <= 256 else 2)
    sg = edit.read(data).subgraphs[0]
    bias = edit.constant_array(edit.read(data), sg.tensors[ins[2]])
    mirror = sparse_fc.fully_connected(blob, xs[0], bias, tflm_sparse._quant(sg.tensors[ins[0]]),
                                       tflm_sparse._quant(sg.tensors[outs[0]]))
    np.testing.assert_array_equal(run.outputs[0], mirror)
    assert len({r.tobytes() for r in mirror}) > 1


@pytest.mark.slow
def test_profile_micro_counts_instructions_on_the_emulated_core(bundles):
    from tfimp.profile import micro

    tflm = _need("cortex-m4")
    dense = read_manifest(bundles("lenet_300_100", None))
    sparse = bundles("lenet_300_100", "sparse")
    p = micro(bundles("lenet_300_100", None) / dense["model"]["file"], emulate="cortex-m4",
              tflm_dir=tflm, samples=2)
    q = micro(sparse / "model.tflite", emulate="cortex-m4", tflm_dir=tflm, samples=2)
    assert p.emulated == q.emulated == "cortex-m4"
    assert q.instructions < 0.5 * p.instructions  # 90% of the weights are zero
    assert q.flash_bytes < 0.4 * p.flash_bytes and q.program_flash_bytes > q.flash_bytes
    assert q.arena_bytes <= p.arena_bytes
    assert "not cycles" in q.table()


@pytest.mark.slow
def test_a_changed_output_is_caught(bundles):
    tflm = _need("host")
    bundle = bundles("lenet_300_100", None)
    xs = tb.random_inputs(bundle, 2)
    run = tb.run_bundle(bundle, xs, "host", tflm)
    run.outputs[0][1, 3] ^= 1
    with pytest.raises(tb.TflmBuildError, match="differs .* in 1 of 2 samples"):
        tb.check_bit_exact(bundle, xs, run)


def test_test_inputs_header_holds_the_raw_bytes_sample_after_sample():
    a = np.array([[1, -1], [2, -2]], np.int8)
    b = np.array([[3], [4]], np.int8)
    text = tb.test_inputs_header([a, b])
    assert "constexpr int kTestSamples = 2;" in text
    body = text[text.index("{") + 1 : text.rindex("}")]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body)) == bytes(
        [1, 0xFF, 3, 2, 0xFE, 4])


def test_linker_script_gets_the_boards_memory(tmp_path):
    template = tmp_path / "t.ld"
    template.write_text("__ROM_SIZE = 0x00040000;\n__RAM_SIZE = 0x00020000;\n"
                        "__STACK_SIZE = 0x00000400;\n__HEAP_SIZE  = 0x00000C00;\n")
    text = tb._linker_script(template)
    assert "__ROM_SIZE = 0x00400000;" in text and "__RAM_SIZE = 0x00400000;" in text
    template.write_text("__ROM_SIZE = 0x00040000;\n")
    with pytest.raises(tb.TflmBuildError, match="__RAM_SIZE"):
        tb._linker_script(template)


def test_bad_arguments_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="Argument `target` must be one of"):
        tb.find_library(tmp_path, "cortex-m7")
    with pytest.raises(ValueError, match="Argument `tflm_dir` must be a TensorFlow Lite Micro"):
        tb.tflm_tree(tmp_path)
    with pytest.raises(tb.TflmBuildError, match="No libtensorflow-microlite.a for host"):
        tb.find_library(tmp_path, "host")
    with pytest.raises(ValueError, match="Argument `library` must be libtensorflow-micro"):
        tb._library_file(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / tb.LIBRARY).write_bytes(b"!<arch>\n")
    assert tb._library_file(tmp_path) == tmp_path / "lib" / tb.LIBRARY


def test_command_line_reports_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    assert tb.main([str(tmp_path), "--tflm-dir", str(tmp_path), "--target", "host"]) == 1
    out = capsys.readouterr().out
    assert "| bundle | encoding | target |" in out and f"error: {tmp_path} on host:" in out


@pytest.mark.slow
def test_run_reports_instructions_on_the_emulated_core(tmp_path, monkeypatch):
    from tfimp.pipeline.recipe import load_recipe
    from tfimp.pipeline.runner import run

    monkeypatch.setenv("TFIMP_TFLM_DIR", _need("cortex-m4"))
    recipe = load_recipe("lenet_300_100").smoke_recipe().override("export.baseline=true")
    report = run(recipe, workdir=tmp_path / "run", emulate="cortex-m4")
    emulated = report.micro["emulated"]
    assert emulated["core"] == "cortex-m4" and "error" not in emulated
    assert emulated["instructions"] > 0 and emulated["dense_instructions"] > 0
    assert f"{emulated['instructions']:,}" in report.markdown()
    assert "instruction counts are not cycles" in report.markdown()
