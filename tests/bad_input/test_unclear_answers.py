"""Bad inputs that used to get an unclear or no answer: each now gets an error naming the
argument (or, for `exclude=None`, the documented meaning), before any work, nothing left."""

import json
import tempfile

import numpy as np
import pytest
from bad_input_helpers import builder, one_line, run_cli, tiny_model, toy_data

import tfimp
from tfimp import profile
from tfimp._util.errors import InvalidArgumentError
from tfimp.bundle import build
from tfimp.export import inspect, to_tflite
from tfimp.export.cli import export_main
from tfimp.pipeline.recipe import load_recipe
from tfimp.profile.cli import main as bench_main
from tfimp.profile.targets import SshTarget, parse_target

DAMAGED = "Argument `model` is a truncated or corrupted .tflite file"


@pytest.fixture(scope="module")
def random_tflite(tmp_path_factory):
    """Random bytes behind a TFLite file identifier: passes the header check only."""
    path = tmp_path_factory.mktemp("random") / "random.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + np.random.default_rng(0).bytes(2000))
    return path


# ---------------------------------------------------------------------------- 1. exclude=None
def test_exclude_none_excludes_nothing():
    model = tiny_model()
    assert tfimp.get_masks(tfimp.prune(model, 0.5, exclude=None)).keys() == \
        tfimp.get_masks(tfimp.prune(model, 0.5)).keys()


def test_exclude_of_another_type_names_the_argument():
    with pytest.raises(TypeError, match="Argument `exclude`.*Received: exclude=5"):
        tfimp.prune(tiny_model(), 0.5, exclude=5)


# ---------------------------------------------------------------------------- 2, 3. imp
def test_imp_with_an_empty_input_dict_names_the_argument(tmp_path):
    x, y = toy_data()
    with pytest.raises(InvalidArgumentError, match="Argument `train_data`.*empty dict"):
        tfimp.imp(builder(), ({}, y), (x, y), rounds=1, verbose=0, workdir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_imp_with_nothing_left_to_prune_leaves_no_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x, y = toy_data()
    with pytest.raises(ValueError, match="Argument `model`.*no prunable weights"):
        tfimp.imp(builder(), (x, y), (x, y), rounds=1, verbose=0, exclude=["hidden", "o*"])
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- 4. damaged files
@pytest.mark.parametrize("which", ["truncated", "random"])
def test_profilers_name_a_damaged_file(which, files, random_tflite):
    path = files.truncated_tflite if which == "truncated" else random_tflite
    for call in (lambda: profile.litert(path, runs=1, warmup=1),
                 lambda: profile.litert(path.read_bytes(), runs=1, warmup=1),
                 lambda: profile.compare([files.tflite, path], runs=1, warmup=1),
                 lambda: profile.benchmark_model(path, binary="/bin/true")):
        with pytest.raises(ValueError, match=DAMAGED):
            call()


def test_bench_command_names_a_damaged_file(files, random_tflite, capsys):
    for path in (files.truncated_tflite, random_tflite):
        code, _, err = run_cli(bench_main, [files.tflite, path, "--runs", "1"], capsys)
        assert code == 2
        assert "truncated or corrupted" in one_line(err)


# ---------------------------------------------------------------------------- 5. ssh options
@pytest.mark.parametrize("option", ["connect_timeout=abc", "connect_timeout=-5",
                                    "connect_timeout=0", "connect_timeout=1.5",
                                    "connect_timeout=", "python="])
def test_ssh_target_options_are_checked_up_front(option):
    with pytest.raises(ValueError, match=r"Argument `target`.*Received: target='ssh:pi@b,"):
        parse_target(f"ssh:pi@b,{option}")


def test_ssh_target_object_checks_its_timeout():
    assert parse_target("ssh:pi@b,connect_timeout=3").connect_timeout == 3
    for bad in (0, -1, "10", True):
        with pytest.raises(ValueError, match="Argument `connect_timeout`"):
            SshTarget("b", connect_timeout=bad)


# ---------------------------------------------------------------------------- 6. NaN weights
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_to_tflite_refuses_non_finite_weights_before_converting(value, tmp_path):
    model = tiny_model()
    weights = model.get_weights()
    weights[2][1, 0] = value
    model.set_weights(weights)
    with pytest.raises(InvalidArgumentError,
                       match=r"Argument `model`.*'tiny/out/kernel' holds 1 NaN or infinite"):
        to_tflite(model, tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- 7. mask functions
MASK_CALLS = {
    "set_masks": lambda m: tfimp.set_masks(m, {}),
    "apply_masks": tfimp.apply_masks,
    "get_masks": tfimp.get_masks,
    "update_masks": lambda m: tfimp.update_masks(m, step=0),
}


@pytest.mark.parametrize("name", sorted(MASK_CALLS))
def test_mask_functions_refuse_a_non_model(name):
    with pytest.raises(TypeError, match="Argument `model` must be a Keras 3"):
        MASK_CALLS[name](None)


@pytest.mark.parametrize("name", sorted(MASK_CALLS))
def test_mask_functions_say_an_unpruned_model_is_not_pruned(name):
    with pytest.raises(ValueError, match=r"Argument `model` \('tiny'\) is not pruned"):
        MASK_CALLS[name](tiny_model())


def test_set_masks_refuses_masks_that_are_not_a_dict():
    with pytest.raises(InvalidArgumentError, match="Argument `masks`"):
        tfimp.set_masks(tfimp.prune(tiny_model(), 0.5), [np.ones((8, 16))])


# ---------------------------------------------------------------------------- 8. wording
def test_a_folder_given_as_a_file_is_called_a_folder(files, tmp_path):
    for call in (lambda: profile.litert(files.a_folder), lambda: inspect(files.a_folder),
                 lambda: build(files.tflite, "rpi", tmp_path / "b", labels=files.a_folder),
                 lambda: load_recipe(files.a_folder)):
        with pytest.raises((ValueError, FileNotFoundError), match="names a folder") as info:
            call()
        assert "no such file" not in str(info.value)


def test_export_command_names_its_flags_not_the_function_arguments(files, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 5), "float32"))
    for words, flag in ((["-q", "int8", "--representative", x], "--representative"),
                        (["-q", "int8"], "--representative"), (["--verify", x], "--verify")):
        code, _, err = run_cli(export_main, [files.keras, "-o", tmp_path / "m.tflite", *words],
                               capsys)
        line = one_line(err)
        assert code == 2 and f"Argument `{flag}`" in line and "_data" not in line, line


def test_a_json_file_given_as_arrays_is_not_called_pickled(files, tmp_path, capsys):
    labels = tmp_path / "labels.npy"
    labels.write_text(json.dumps(["cat", "dog", "bird"])[:-3])  # a broken JSON file
    code, _, err = run_cli(export_main, [files.keras, "-o", tmp_path / "m.tflite", "--verify",
                                         labels], capsys)
    line = one_line(err)
    assert code == 2 and "Argument `--verify`" in line and "not numpy's header" in line
    assert "pickle" not in line
