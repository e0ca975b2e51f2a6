"""Bad inputs to `tfimp.imp`, its config and its result, and to `sensitivity`: a clear error
before the first training step, no run folder left behind, and an earlier run untouched."""

import math
import shutil

import numpy as np
import pytest
from bad_input_helpers import CLASSES, builder, snapshot, tiny_model, toy_data, with_value

import tfimp
from tfimp._util.errors import InvalidArgumentError

NAN, INF = math.nan, math.inf
TRAIN, VAL = toy_data(48, 0), toy_data(24, 1)
X, Y = TRAIN


def _uncompiled():
    return tiny_model()


def _dataset(x, y, batch=8):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


# (how to call imp: build_model, train_data, val_data, settings), the error, the argument
CASES = [
    ((tiny_model(), TRAIN, VAL, {}), InvalidArgumentError, "build_model"),
    ((lambda: "model", TRAIN, VAL, {}), TypeError, "build_model"),
    ((_uncompiled, TRAIN, VAL, {}), ValueError, "build_model"),
    ((builder(), X, VAL, {}), TypeError, "train_data"),
    ((builder(), (X[:0], Y[:0]), VAL, {}), ValueError, "train_data"),
    ((builder(), (with_value(X, NAN), Y), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (with_value(X, INF), Y), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (with_value(X, -INF, (0, 0)), Y), VAL, {}), InvalidArgumentError,
     "train_data"),
    ((builder(), (X, np.where(Y == 0, CLASSES + 2, Y)), VAL, {}), InvalidArgumentError,
     "train_data"),
    ((builder(), (X, np.where(Y == 0, -1, Y)), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (X, Y.astype("float32") + 0.5), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (X, with_value(Y.astype("float32"), NAN, 4)), VAL, {}), InvalidArgumentError,
     "train_data"),
    ((builder(), (X[:, :7], Y), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (X[:, :, None], Y), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), (X, Y[:10]), VAL, {}), ValueError, "train_data"),
    ((builder(), (X.astype(str), Y), VAL, {}), InvalidArgumentError, "train_data"),
    ((builder(), TRAIN, (VAL[0][:, :5], VAL[1]), {}), InvalidArgumentError, "val_data"),
    ((builder(), TRAIN, (with_value(VAL[0], NAN), VAL[1]), {}), InvalidArgumentError,
     "val_data"),
    ((builder(), TRAIN, (VAL[0], VAL[1] + CLASSES), {}), InvalidArgumentError, "val_data"),
    ((builder(), TRAIN, "val", {}), TypeError, "val_data"),
    ((builder(lr=NAN), TRAIN, VAL, {}), InvalidArgumentError, "build_model"),
    ((builder(lr=INF), TRAIN, VAL, {}), InvalidArgumentError, "build_model"),
    ((builder(lr=-0.1), TRAIN, VAL, {}), InvalidArgumentError, "build_model"),
    ((builder(), TRAIN, VAL, dict(budget=NAN)), InvalidArgumentError, "budget"),
    ((builder(), TRAIN, VAL, dict(budget=1.5)), InvalidArgumentError, "budget"),
    ((builder(), TRAIN, VAL, dict(budget=-0.1)), InvalidArgumentError, "budget"),
    ((builder(), TRAIN, VAL, dict(rate="0.2")), InvalidArgumentError, "rate"),
    ((builder(), TRAIN, VAL, dict(rate=None)), InvalidArgumentError, "rate"),
    ((builder(), TRAIN, VAL, dict(rate=1.0)), InvalidArgumentError, "rate"),
    ((builder(), TRAIN, VAL, dict(rate=NAN)), InvalidArgumentError, "rate"),
    ((builder(), TRAIN, VAL, dict(seed="abc")), InvalidArgumentError, "seed"),
    ((builder(), TRAIN, VAL, dict(seed=-1)), InvalidArgumentError, "seed"),
    ((builder(), TRAIN, VAL, dict(granularity=5)), InvalidArgumentError, "granularity"),
    ((builder(), TRAIN, VAL, dict(granularity="block:64x64")), InvalidArgumentError,
     "granularity"),
    ((builder(), TRAIN, VAL, dict(granularity="block:16x1:whole")), InvalidArgumentError,
     "granularity"),
    ((builder(), TRAIN, VAL, dict(rounds=-1)), InvalidArgumentError, "rounds"),
    ((builder(), TRAIN, VAL, dict(rounds=1.5)), InvalidArgumentError, "rounds"),
    ((builder(), TRAIN, VAL, dict(epochs_per_round=0)), InvalidArgumentError,
     "epochs_per_round"),
    ((builder(), TRAIN, VAL, dict(batch_size=0)), InvalidArgumentError, "batch_size"),
    ((builder(), TRAIN, VAL, dict(rewind="step")), InvalidArgumentError, "rewind_at"),
    ((builder(), TRAIN, VAL, dict(rewind=("step", -1))), InvalidArgumentError, "rewind_at"),
    ((builder(), TRAIN, VAL, dict(rewind=("epoch", 5))), InvalidArgumentError, "rewind_at"),
    ((builder(), TRAIN, VAL, dict(rewind="lr")), InvalidArgumentError, "rewind"),
    ((builder(), TRAIN, VAL, dict(exclude=["nosuch"])), ValueError, "exclude"),
    ((builder(), TRAIN, VAL, dict(layer_rates={"out": 1.5})), InvalidArgumentError,
     "layer_rates"),
    ((builder(), TRAIN, VAL, dict(layer_rates={"nosuch": 0.1})), ValueError, "layer_rates"),
    ((builder(), TRAIN, VAL, dict(metric="nosuch_accuracy")), InvalidArgumentError, "metric"),
    ((builder(), TRAIN, VAL, dict(metric="score")), InvalidArgumentError, "metric"),
    ((builder(), TRAIN, VAL, dict(sensitivity_budget=2)), InvalidArgumentError,
     "sensitivity_budget"),
    ((builder(), TRAIN, VAL, dict(checkpoint="minute")), InvalidArgumentError, "checkpoint"),
    ((builder(), TRAIN, VAL, dict(scope="all")), InvalidArgumentError, "scope"),
    ((builder(), TRAIN, VAL, dict(verbose=3)), InvalidArgumentError, "verbose"),
    ((builder(), TRAIN, VAL, dict(config="abc")), InvalidArgumentError, "config"),
    ((builder(), TRAIN, VAL, dict(initial_model="model")), InvalidArgumentError,
     "initial_model"),
    ((builder(), TRAIN, VAL, dict(initial_model=builder(features=5)())), InvalidArgumentError,
     "initial_model"),
]


def _call(build, train, val, settings, workdir):
    settings = {"rounds": 1, "epochs_per_round": 1, "verbose": 0, **settings}
    return tfimp.imp(build, train, val, workdir=workdir, **settings)


@pytest.mark.parametrize("call, kind, argument", CASES)
def test_imp_refuses_before_training_and_leaves_nothing(call, kind, argument, tmp_path):
    with pytest.raises(kind, match=f"Argument `{argument}"):
        _call(*call, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_unknown_setting_is_named(tmp_path):
    with pytest.raises(TypeError, match="nosuch"):
        _call(builder(), TRAIN, VAL, {"nosuch": 1}, tmp_path)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_workdir_that_is_a_file_is_refused(where, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    workdir = file if where == "file" else file / "runs"
    with pytest.raises(InvalidArgumentError, match="Argument `workdir`"):
        _call(builder(), TRAIN, VAL, {}, workdir)
    assert file.read_text() == "x"


def test_nan_in_a_later_tf_data_batch_stops_at_that_batch_and_leaves_nothing(tmp_path):
    x = with_value(X, NAN, (21, 0))  # batch 2 of 8
    with pytest.raises(InvalidArgumentError, match="Argument `train_data`.*batch 2"):
        _call(builder(), _dataset(x, Y), _dataset(*VAL), {}, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_nan_in_the_first_tf_data_batch_is_refused_before_training(tmp_path):
    with pytest.raises(InvalidArgumentError, match="Argument `val_data`"):
        _call(builder(), _dataset(*TRAIN), _dataset(with_value(VAL[0], NAN, (0, 0)), VAL[1]),
              {}, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_labels_beyond_the_classes_in_a_tf_data_batch_are_named(tmp_path):
    y = np.where(np.arange(len(Y)) == 30, CLASSES + 4, Y)
    with pytest.raises(InvalidArgumentError, match="Argument `train_data`.*batch 3"):
        _call(builder(), _dataset(X, y), _dataset(*VAL), {}, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_temporary_run_folder_is_removed_when_the_first_step_fails(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x = with_value(X, NAN, (40, 1))
    with pytest.raises(InvalidArgumentError, match="train_data"):
        tfimp.imp(builder(), _dataset(x, Y), _dataset(*VAL), rounds=1, verbose=0)
    assert not list(tmp_path.iterdir())


def test_a_diverging_round_is_named_not_pruned(tmp_path):
    # finite data and learning rate, but so large that the weights overflow in round 0
    huge = (X * 1e18).astype("float32")
    with pytest.raises(tfimp.TfimpError, match="diverged"):
        _call(builder(lr=1e30), (huge, Y), VAL, {}, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


EARLIER_RUN_CASES = [
    (dict(budget=NAN), "budget"),
    (dict(rate=1.5), "rate"),
    (dict(seed="abc"), "seed"),
    (dict(exclude=["nosuch"]), "exclude"),
    (dict(granularity="block:64x64"), "granularity"),
    (dict(train=(with_value(X, NAN), Y)), "train_data"),
    (dict(train=(X, Y + CLASSES)), "train_data"),
    (dict(val=(VAL[0][:, :4], VAL[1])), "val_data"),
    (dict(build=builder(lr=NAN)), "build_model"),
    (dict(metric="nosuch_accuracy"), "metric"),
    (dict(rewind="lr"), "rewind"),
]


@pytest.mark.parametrize("change, argument", EARLIER_RUN_CASES)
def test_an_earlier_run_folder_is_byte_identical_after_a_failing_call(imp_run, change,
                                                                      argument):
    parent, (train, val, settings), _ = imp_run
    before = snapshot(parent)
    change = dict(change)
    build = change.pop("build", builder())
    train, val = change.pop("train", train), change.pop("val", val)
    with pytest.raises(ValueError, match=f"Argument `{argument}"):
        tfimp.imp(build, train, val, workdir=parent, **{**settings, **change})
    assert snapshot(parent) == before


def test_result_refuses_bad_budgets_and_rounds(imp_run):
    result = imp_run[2]
    for budget in (-1, NAN, "0.1"):
        with pytest.raises(InvalidArgumentError, match="Argument `budget`"):
            result.best(budget=budget)
    with pytest.raises(InvalidArgumentError, match="Argument `round_index`"):
        result.model(99)


def test_truncated_checkpoint_is_named(imp_run, tmp_path):
    parent, (train, val, settings), result = imp_run
    copy = tmp_path / "copy"
    shutil.copytree(parent, copy)
    round_file = next(copy.glob("imp-*/round_01.npz"))
    round_file.write_bytes(round_file.read_bytes()[:100])
    resumed = tfimp.imp(builder(), train, val, workdir=copy, **settings)
    with pytest.raises(ValueError, match="round_01.npz cannot be read"):
        resumed.model(1)


SENSITIVITY_CASES = [
    (lambda m: tfimp.sensitivity("model", VAL), "model"),
    (lambda m: tfimp.sensitivity(tiny_model(), VAL), "model"),
    (lambda m: tfimp.sensitivity(m, VAL, sparsities=(0.5, 1.0)), "sparsities"),
    (lambda m: tfimp.sensitivity(m, VAL, sparsities=("0.5",)), "sparsities"),
    (lambda m: tfimp.sensitivity(m, VAL, sparsities=()), "sparsities"),
    (lambda m: tfimp.sensitivity(m, VAL, batch_size=0), "batch_size"),
    (lambda m: tfimp.sensitivity(m, (with_value(VAL[0], NAN), VAL[1])), "val_data"),
    (lambda m: tfimp.sensitivity(m, (VAL[0][:, :3], VAL[1])), "val_data"),
    (lambda m: tfimp.sensitivity(m, (VAL[0], VAL[1] + 5)), "val_data"),
    (lambda m: tfimp.sensitivity(m, VAL, metric="nosuch"), "metric"),
]


@pytest.mark.parametrize("call, argument", SENSITIVITY_CASES)
def test_sensitivity_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`"):
        call(builder()())


def test_config_object_checks_its_fields():
    with pytest.raises(InvalidArgumentError, match="Argument `budget`"):
        tfimp.IMPConfig(budget=INF)
    with pytest.raises(InvalidArgumentError, match="Argument `target_sparsity`"):
        tfimp.IMPConfig(target_sparsity=1.0)
