"""The command line never shows a traceback for a user error: one line naming the problem,
exit status 2; `--debug` or TFIMP_DEBUG=1 shows the traceback; a bug still shows its own."""

import json

import numpy as np
import pytest
from bad_input_helpers import FEATURES, one_line, run_cli, tfimp_command

from tfimp._util import cli as cli_util
from tfimp.bundle.cli import bundle_main, deploy_main
from tfimp.export.cli import export_main, inspect_main
from tfimp.pipeline import runner
from tfimp.profile.cli import main as bench_main

VERBS = {"export": export_main, "inspect": inspect_main, "bench": bench_main,
         "bundle": bundle_main, "deploy": deploy_main, "run": runner.main}


def _argv(f, tmp, *words):
    """Words with placeholders: {keras}, {tflite}, {text}, {folder}, {tmp}, ..."""
    names = {"keras": f.keras, "tflite": f.tflite, "int8": f.int8, "text": f.text,
             "folder": f.a_folder, "corrupt_keras": f.corrupt_keras, "tmp": tmp,
             "no_config": f.zip_without_config, "no_x": f.npz_without_x,
             "garbage_npy": f.garbage_npy, "truncated": f.truncated_tflite}
    return [w.format(**{k: str(v) for k, v in names.items()}) for w in words]


# verb, arguments, words the one line must hold
CASES = [
    ("export", ["{corrupt_keras}", "-o", "{tmp}/m.tflite"], ["`model`", "not a zip"]),
    ("export", ["{no_config}", "-o", "{tmp}/m.tflite"], ["`model`", "config.json"]),
    ("export", ["{tflite}", "-o", "{tmp}/m.tflite"], ["`model`", "tfimp inspect"]),
    ("export", ["{text}", "-o", "{tmp}/m.tflite"], ["`model`"]),
    ("export", ["{tmp}/missing.keras", "-o", "{tmp}/m.tflite"], ["`model`", "no such file"]),
    ("export", ["{folder}", "-o", "{tmp}/m.tflite"], ["`model`", "folder"]),
    ("export", ["{keras}", "-o", "{folder}"], ["`--output`", "folder"]),
    ("export", ["{keras}", "-o", "{text}/m.tflite"], ["`--output`", "is a file"]),
    ("export", ["{keras}", "-o", ""], ["`--output`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "-q", "int8", "--representative",
                "{tmp}/missing.npy"], ["`--representative`", "no such file"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "-q", "int8", "--representative",
                "{garbage_npy}"], ["`--representative`", "cannot be read"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "--verify", "{no_x}"],
     ["`--verify`", "`x`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "--verify", "{tmp}/missing.npz"],
     ["`--verify`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "-q", "int8"], ["`--representative`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "-q", "float16", "--integer-io"],
     ["`--integer-io`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "--tolerance", "0.1"], ["`tolerance`"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "--representative", "digits28", "-q",
                "int8"], ["`--representative`", "(None, 8)"]),
    ("export", ["{keras}", "-o", "{tmp}/m.tflite", "--verify", "digits8"],
     ["`--verify`", "input shape (None, 8)"]),
    ("inspect", ["{tmp}/missing.tflite"], ["`model`"]),
    ("inspect", ["{text}"], ["`model`", "TFL3"]),
    ("inspect", ["{truncated}"], ["`model`", "truncated"]),
    ("inspect", ["{folder}"], ["`model`"]),
    ("bench", ["{tmp}/missing.tflite"], ["`model`"]),
    ("bench", ["{text}"], ["`model`"]),
    ("bench", ["{tflite}", "--plot", "{folder}"], ["`--plot`", "folder"]),
    ("bench", ["{tflite}", "--plot", "{text}/p.png"], ["`--plot`", "is a file"]),
    ("bench", ["{tflite}", "--runs", "0"], ["`runs`"]),
    ("bench", ["{tflite}", "--threads", "0"], ["`threads`"]),
    ("bench", ["{tflite}", "--timeout", "-5"], ["`timeout`"]),
    ("bundle", ["{tmp}/missing.tflite", "--target", "rpi", "--out", "{tmp}/b"],
     ["`model_path`"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{tmp}/b", "--mean", "1,2,3"],
     ["`preprocessing.mean`", "8 values"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{text}"], ["`out_dir`"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{folder}"], ["`out_dir`", "--force"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{tmp}/b", "--labels", "{text}"],
     ["`labels`"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{tmp}/b", "--std", "0"], ["`std`"]),
    ("bundle", ["{int8}", "--target", "micro", "--out", "{tmp}/b", "--board", "nosuch"],
     ["`board`"]),
    ("bundle", ["{tflite}", "--target", "rpi", "--out", "{tmp}/b", "--export-report",
                "{text}"], ["`export_report`"]),
    ("deploy", ["rpi", "pi@board", "{tmp}/missing"], ["`bundle`"]),
    ("deploy", ["rpi", "pi@bo:ard", "{folder}"], ["`host`"]),
    ("deploy", ["rpi", "pi@board", "{folder}", "--port", "70000"], ["`port`"]),
    ("deploy", ["rpi", "pi@board", "{folder}", "--identity", "{tmp}/no_key"],
     ["`identity`"]),
    ("run", ["nosuch_recipe"], ["`recipe`"]),
    ("run", ["lenet_300_100", "imp.budget=nan"], ["`imp.budget`"]),
    ("run", ["lenet_300_100", "imp.rate=1.5"], ["`imp.rate`"]),
    ("run", ["lenet_300_100", "train.lr=nan"], ["`train.lr`"]),
    ("run", ["lenet_300_100", "model.kwargs.nosuch=1"], ["`model.kwargs`", "nosuch"]),
    ("run", ["lenet_300_100", "nosuch=1"], ["nosuch"]),
    ("run", ["lenet_300_100", "imp.granularity=blocks"], ["`imp.granularity`"]),
    ("run", ["lenet5", "--option", "qat", "export.per_channel_dense=false"],
     ["`export.per_channel_dense`", "imp.final_qat_epochs"]),
    ("run", ["lenet5", "--option", "qat,nosuch"], ["`option`", "nosuch", "channel"]),
    ("run", ["lenet_300_100", "--workdir", "{text}"], ["`--workdir`", "file"]),
    ("run", ["lenet_300_100", "--board", "cortex-m9"], ["`board`", "cortex-m9",
                                                        "cortex-m0plus-32k"]),
    ("run", ["lenet_300_100", "--budget", "flash=-5k"], ["`flash`", "-5k", "256k"]),
    ("run", ["lenet_300_100", "--budget", "flash=256k,ram"], ["`budget`", "flash=SIZE"]),
    ("run", ["lenet_300_100", "--board", "cortex-m0plus-32k", "--budget", "runtime=litert"],
     ["`runtime`", "litert", "'tflm'"]),
    ("run", ["lenet_300_100", "--budget", "ram=32k,runtime=litert"], ["`ram`",
                                                                      "runtime='tflm'"]),
    ("run", ["lenet_300_100", "--board", "cortex-m0plus-32k", "imp.granularity=channel",
             "imp.ramp=0"],
     ["`granularity`", "'weight'"]),
    ("run", ["lenet_300_100", "--workdir", "{text}/run"], ["`--workdir`", "is a file"]),
    ("run", ["lenet_300_100", "data.offline=true", "--smoke", "imp.exclude=nosuch_layer",
             "--workdir", "{tmp}/run"], ["`exclude`", "nosuch_layer"]),
    ("run", ["lenet_300_100", "data.offline=true", "--smoke", "train.loss=nosuch",
             "--workdir", "{tmp}/run"], ["`train.loss`"]),
]


@pytest.mark.parametrize("verb, words, expected", CASES)
def test_a_user_error_is_one_line_exit_2_and_nothing_written(verb, words, expected, files,
                                                             tmp_path, capsys):
    code, out, err = run_cli(VERBS[verb], _argv(files, tmp_path, *words), capsys)
    assert code == 2, err
    line = one_line(err)
    assert line.startswith(f"tfimp {verb}: error: ")
    for word in expected:
        assert word in line
    assert not list(tmp_path.iterdir())  # nothing half-made
    assert sorted(p.name for p in files.a_folder.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("verb, words", [
    ("export", ["{keras}", "-q", "int3", "-o", "{tmp}/m.tflite"]),
    ("bench", ["{tflite}", "--runs", "many"]),
    ("bundle", ["{tflite}", "--target", "ios", "--out", "{tmp}/b"]),
    ("deploy", ["android", "pi@board", "{folder}"]),
])
def test_argparse_errors_keep_exit_2_and_no_traceback(verb, words, files, tmp_path, capsys):
    code, out, err = run_cli(VERBS[verb], _argv(files, tmp_path, *words), capsys)
    assert code == 2 and "Traceback" not in err and "error:" in err.splitlines()[-1]


def test_debug_flag_and_variable_show_the_traceback(files, tmp_path, capsys, monkeypatch):
    argv = _argv(files, tmp_path, "{corrupt_keras}", "-o", "{tmp}/m.tflite")
    code, _, err = run_cli(export_main, [*argv, "--debug"], capsys)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith(
        "tfimp export: error: Argument `model`")
    monkeypatch.setenv("TFIMP_DEBUG", "1")
    code, _, err = run_cli(inspect_main, [str(files.text)], capsys)
    assert code == 2 and "Traceback" in err


def test_a_failed_verification_is_exit_1_in_one_line(files, tmp_path, capsys):
    x = np.random.default_rng(0).random((20, FEATURES)).astype("float32")
    np.savez(tmp_path / "x.npz", x=x)  # no labels: the tolerance bounds the output difference
    code, _, err = run_cli(export_main, [files.keras, "-o", tmp_path / "m.tflite", "-q",
                                         "int8", "--representative", tmp_path / "x.npz",
                                         "--verify", tmp_path / "x.npz", "--tolerance", "0"],
                           capsys)
    assert code == 1
    assert "differs from the Keras model" in one_line(err)
    assert not (tmp_path / "m.tflite").exists()


def test_unexpected_errors_keep_their_traceback():
    @cli_util.verb("tfimp demo")
    def main(argv):
        return {}["missing"]  # a bug, not a user error

    with pytest.raises(KeyError):
        main([])

    @cli_util.verb("tfimp demo")
    def deep(argv):
        return np.reshape(np.arange(3), (2, 2))  # raised inside numpy: unchecked, a bug

    with pytest.raises(ValueError):
        deep([])


def test_the_installed_command_prints_one_line(files, tmp_path):
    done = tfimp_command("inspect", files.text)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("tfimp inspect: error: Argument `model`")
    done = tfimp_command("inspect", files.text, "--debug")
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_run_with_a_bad_override_creates_no_report_folder(tmp_path, capsys):
    code, _, err = run_cli(runner.main, ["lenet_300_100", "data.offline=true", "--smoke",
                                         "imp.exclude=nosuch", "--workdir", tmp_path / "r"],
                           capsys)
    assert code == 2 and not (tmp_path / "r").exists()
    assert json.dumps(err)  # printable
