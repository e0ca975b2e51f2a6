"""Bad inputs to bundles (build, deploy, the bundle's run.py), the profilers, datasets, model
builders and recipes: a clear error naming the argument, before any work, nothing left."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from bad_input_helpers import FEATURES, one_line

from tfimp import data as data_lib
from tfimp import models, profile
from tfimp._util.errors import InvalidArgumentError
from tfimp.bundle import build
from tfimp.bundle.deploy import deploy_rpi
from tfimp.pipeline import runner
from tfimp.pipeline.recipe import load_recipe

NAN = math.nan


@pytest.fixture(scope="module")
def bundle(files, tmp_path_factory):
    """An rpi bundle of the float model, without profiling (fast)."""
    return build(files.tflite, "rpi", tmp_path_factory.mktemp("bundle") / "rpi", profile=False)


BUILD_CASES = [
    (lambda f, out: build(f.folder / "missing.tflite", "rpi", out), ValueError, "model_path"),
    (lambda f, out: build(f.text, "rpi", out), ValueError, "model"),
    (lambda f, out: build(f.keras, "rpi", out), ValueError, "model"),
    (lambda f, out: build(f.tflite, "ios", out), ValueError, "target"),
    (lambda f, out: build(f.tflite, "rpi", f.text), InvalidArgumentError, "out_dir"),
    (lambda f, out: build(f.tflite, "rpi", f.text / "b"), InvalidArgumentError, "out_dir"),
    (lambda f, out: build(f.tflite, "rpi", ""), InvalidArgumentError, "out_dir"),
    (lambda f, out: build(f.tflite, "rpi", f.a_folder), FileExistsError, "out_dir"),
    (lambda f, out: build(f.tflite, "rpi", out, labels=["a", "b"]), ValueError, "labels"),
    (lambda f, out: build(f.tflite, "rpi", out, labels=f.folder / "nope.txt"), ValueError,
     "labels"),
    (lambda f, out: build(f.tflite, "rpi", out, labels=[1, 2, 3]), ValueError, "labels"),
    (lambda f, out: build(f.tflite, "rpi", out, preprocessing={"mean": (1.0, 2.0, 3.0)}),
     InvalidArgumentError, "preprocessing.mean"),
    (lambda f, out: build(f.tflite, "rpi", out, preprocessing={"std": (1.0,) * 5}),
     InvalidArgumentError, "preprocessing.std"),
    (lambda f, out: build(f.tflite, "rpi", out, preprocessing={"std": 0.0}), ValueError, "std"),
    (lambda f, out: build(f.tflite, "rpi", out, preprocessing={"mean": NAN}), ValueError,
     "mean"),
    (lambda f, out: build(f.tflite, "rpi", out, preprocessing="pixels"), ValueError,
     "preprocessing"),
    (lambda f, out: build(f.tflite, "rpi", out, export_report=f.text), InvalidArgumentError,
     "export_report"),
    (lambda f, out: build(f.tflite, "rpi", out, export_report=f.folder / "nope.json"),
     ValueError, "export_report"),
    (lambda f, out: build(f.int8, "micro", out, board="nosuch_board"), ValueError, "board"),
]


@pytest.mark.parametrize("call, kind, argument", BUILD_CASES)
def test_bundle_build_refuses_and_leaves_nothing(call, kind, argument, files, tmp_path):
    out = tmp_path / "bundle"
    before = sorted(p.name for p in files.a_folder.iterdir())
    with pytest.raises(kind, match=f"Argument `{argument}`"):
        call(files, out)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert sorted(p.name for p in files.a_folder.iterdir()) == before


def test_preprocessing_of_the_wrong_length_is_refused_at_build_time(files, tmp_path):
    # --mean 1,2,3 for an 8-feature input used to pass --check and fail on every inference
    with pytest.raises(InvalidArgumentError, match=r"8 values.*Received: "
                                                   r"preprocessing.mean=\(1.0, 2.0, 3.0\)"):
        build(files.tflite, "rpi", tmp_path / "b", preprocessing={"mean": (1.0, 2.0, 3.0)})
    out = build(files.tflite, "rpi", tmp_path / "ok", profile=False,
                preprocessing={"mean": tuple(float(i) for i in range(FEATURES))})
    assert json.loads((out / "manifest.json").read_text())["preprocessing"]["mean"][7] == 7.0


DEPLOY_CASES = [
    (lambda b, f: deploy_rpi("bad host!:x", b), "host"),
    (lambda b, f: deploy_rpi("-oProxyCommand=x", b), "host"),
    (lambda b, f: deploy_rpi("pi@board", b, port=0), "port"),
    (lambda b, f: deploy_rpi("pi@board", b, port="22"), "port"),
    (lambda b, f: deploy_rpi("pi@board", b, python=""), "python"),
    (lambda b, f: deploy_rpi("pi@board", b, identity=f.folder / "no_key"), "identity"),
    (lambda b, f: deploy_rpi("pi@board", b, ssh_options="StrictHostKeyChecking=no"),
     "ssh_options"),
    (lambda b, f: deploy_rpi("pi@board", b, timeout=0), "timeout"),
    (lambda b, f: deploy_rpi("pi@board", f.a_folder), "bundle"),
]


@pytest.mark.parametrize("call, argument", DEPLOY_CASES)
def test_deploy_refuses_before_connecting(call, argument, bundle, files):
    with pytest.raises((ValueError, FileNotFoundError), match=f"Argument `{argument}`"):
        call(bundle, files)


def test_deploy_refuses_a_bundle_with_a_damaged_manifest(bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "rpi")
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="Argument `bundle`.*damaged"):
        deploy_rpi("pi@board", copy)


def _run_py(bundle, *args, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", str(bundle / "run.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=bundle.parent,
                          env={**environ, **(env or {})})


RUN_PY_CASES = [
    ("corrupt_manifest", "manifest.json is damaged"),
    ("manifest_without_inputs", "manifest.json is damaged"),
    ("missing_input", "no such file"),
    ("wrong_shape", "does not match the input"),
    ("nan_input", "NaN or infinite"),
    ("damaged_npy", "not a readable .npy"),
    ("damaged_png", "not an image that Pillow can read"),
    ("two_inputs", "the model has 1 input"),
    ("unknown_kind", "unknown input type"),
]


@pytest.mark.parametrize("case, message", RUN_PY_CASES)
def test_bundle_run_py_reports_one_line(case, message, bundle, files, tmp_path):
    if case == "damaged_png":
        bundle = build(files.cnn, "rpi", tmp_path / "cnn", profile=False)
    copy = shutil.copytree(bundle, tmp_path / "rpi")
    good = tmp_path / "x.npy"
    np.save(good, np.zeros(FEATURES, "float32"))
    args = [good]
    if case == "corrupt_manifest":
        (copy / "manifest.json").write_text("{not json")
    elif case == "manifest_without_inputs":
        manifest = json.loads((copy / "manifest.json").read_text())
        del manifest["inputs"]
        (copy / "manifest.json").write_text(json.dumps(manifest))
    elif case == "missing_input":
        args = [tmp_path / "nope.npy"]
    elif case == "wrong_shape":
        np.save(good, np.zeros((2, 5), "float32"))
    elif case == "nan_input":
        np.save(good, np.full(FEATURES, np.nan, "float32"))
    elif case == "damaged_npy":
        good.write_bytes(b"\x93NUMPY\x01\x00garbage")
    elif case == "damaged_png":
        args = [tmp_path / "x.png"]
        args[0].write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    elif case == "two_inputs":
        args = [good, good]
    elif case == "unknown_kind":
        args = [tmp_path / "x.csv"]
        args[0].write_text("1,2,3")
    done = _run_py(copy, *args)
    assert done.returncode == 2, done.stderr
    assert message in one_line(done.stderr)


def test_bundle_run_py_debug_shows_the_traceback(bundle, tmp_path):
    for extra, env in (([], {"TFIMP_DEBUG": "1"}), (["--debug"], None)):
        done = _run_py(bundle, tmp_path / "nope.npy", *extra, env=env)
        assert done.returncode == 2 and "Traceback" in done.stderr and "no such file" in \
            done.stderr


PROFILE_CASES = [
    (lambda f: profile.litert(f.tflite, threads=0), "threads"),
    (lambda f: profile.litert(f.tflite, runs=0), "runs"),
    (lambda f: profile.litert(f.tflite, timeout=NAN), "timeout"),
    (lambda f: profile.litert(f.folder / "missing.tflite"), "model"),
    (lambda f: profile.litert(f.text), "model"),
    (lambda f: profile.micro(f.int8, board="nosuch_board"), "board"),
    (lambda f: profile.micro(f.folder / "missing.tflite"), "model"),
    (lambda f: profile.benchmark_model(f.tflite, target="ftp:board"), "target"),
    (lambda f: profile.benchmark_model(f.tflite, runs=-1, binary=sys.executable), "runs"),
    (lambda f: profile.compare([]), "models"),
    (lambda f: profile.compare(str(f.tflite)), "models"),
    (lambda f: profile.compare([f.tflite], threads=[0]), "threads"),
    (lambda f: profile.compare([f.tflite], threads=()), "threads"),
    (lambda f: profile.compare([f.tflite], xnnpack=["yes"]), "xnnpack"),
    (lambda f: profile.compare([f.tflite], timeout=-1), "timeout"),
    (lambda f: profile.compare([f.tflite, f.folder / "missing.tflite"]), "model"),
]


@pytest.mark.parametrize("call, argument", PROFILE_CASES)
def test_profilers_refuse_before_measuring(call, argument, files):
    with pytest.raises((ValueError, TypeError, FileNotFoundError),
                       match=f"Argument `{argument}`"):
        call(files)


REGISTRY_CASES = [
    (lambda: data_lib.get("nosuch"), ValueError, "name"),
    (lambda: data_lib.get("digits", nosuch=1), TypeError, "nosuch"),
    (lambda: data_lib.get("mnist", path="/no/such/folder"), InvalidArgumentError, "path"),
    (lambda: data_lib.get("digits", offline="yes"), ValueError, "offline"),
    (lambda: models.get("nosuch"), ValueError, "name"),
    (lambda: models.get("lenet5", nosuch=1), InvalidArgumentError, "kwargs"),
    (lambda: models.lenet5(input_shape=(0, 28, 1)), ValueError, "input_shape"),
    (lambda: models.lenet_300_100(num_classes=1), ValueError, "num_classes"),
    (lambda: load_recipe("nosuch_recipe"), ValueError, "recipe"),
    (lambda: load_recipe("/no/such/recipe.py"), ValueError, "recipe"),
    (lambda: load_recipe("lenet5").override("imp.budget=nan"), InvalidArgumentError,
     "imp.budget"),
    (lambda: load_recipe("lenet5").override("imp.rate=2"), InvalidArgumentError, "imp.rate"),
    (lambda: load_recipe("lenet5").override("train.lr=nan"), InvalidArgumentError, "train.lr"),
    (lambda: load_recipe("lenet5").override("train.lr=inf"), InvalidArgumentError, "train.lr"),
    (lambda: load_recipe("lenet5").override("seed=abc"), ValueError, "field `seed`"),
    (lambda: load_recipe("lenet5").override("nosuch=1"), ValueError, "nosuch"),
    (lambda: load_recipe("lenet5").override("rounds"), ValueError, "key=value"),
    (lambda: runner.check(load_recipe("lenet5").override("model.kwargs.nosuch=1")),
     InvalidArgumentError, "model.kwargs"),
    (lambda: runner.check(load_recipe("lenet5").override("model.name=nosuch")), ValueError,
     "model.name"),
    (lambda: runner.check(load_recipe("lenet5").override("data.name=nosuch")), ValueError,
     "data.name"),
    (lambda: runner.check(load_recipe("lenet5").override("profile.board=nosuch")),
     ValueError, "board"),
]


@pytest.mark.parametrize("call, kind, argument", REGISTRY_CASES)
def test_datasets_models_and_recipes_name_the_argument(call, kind, argument):
    with pytest.raises(kind, match=argument if argument in ("key=value", "nosuch", "field `seed`")
                       else f"Argument `{argument}`"):
        call()


RUN_CASES = [
    ("imp.exclude=nosuch_layer", ValueError, "exclude"),
    ("imp.granularity=block:1024x1024", InvalidArgumentError, "granularity"),
    ("train.loss=nosuch_loss", InvalidArgumentError, "train.loss"),
    ("imp.layer_rates={'nosuch': 0.1}", ValueError, "layer_rates"),
    ("imp.metric=nosuch_accuracy", InvalidArgumentError, "imp.metric"),
]


@pytest.mark.parametrize("override, kind, argument", RUN_CASES)
def test_run_refuses_before_any_folder_is_made(override, kind, argument, tmp_path):
    recipe = load_recipe("lenet_300_100").override("data.offline=true", override)
    with pytest.raises(kind, match=f"Argument `{argument}`"):
        runner.run(recipe, workdir=tmp_path / "run", smoke=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_run_refuses_a_workdir_that_is_a_file(where, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(InvalidArgumentError, match="Argument `workdir`"):
        runner.run("lenet_300_100", workdir=file if where == "file" else file / "run",
                   smoke=True)
    assert file.read_text() == "x"
