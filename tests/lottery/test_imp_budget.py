"""Budgeted IMP: total epochs, patience and carry, ALLR, the adaptive rate, gradual runs."""

import math
import pathlib
import sys

import keras
import pytest

import tfimp
from tfimp.lottery.budget import allr_start

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers_imp import builder, toy_data  # noqa: E402

X, Y = toy_data()
TRAIN, VAL = (X[:90], Y[:90]), (X[90:], Y[90:])


def _run(tmp_path, build=None, **kw):
    args = dict(batch_size=30, workdir=tmp_path, verbose=0)
    args.update(kw)
    return tfimp.imp(build or builder(), TRAIN, VAL, **args)


def test_total_epochs_are_split_between_dense_and_rounds_and_spent_exactly(tmp_path):
    result = _run(tmp_path, total_epochs=12, rounds=3, rate=0.5)
    epochs = [row["epochs"] for row in result.history]
    assert epochs == [3, 3, 3, 3]  # a quarter dense, the rest evenly
    assert [row["epochs_total"] for row in result.history] == [3, 6, 9, 12]
    assert result.history[-1]["sparsity"] == pytest.approx(0.875, abs=0.02)


def test_dense_epochs_can_be_set_inside_the_budget(tmp_path):
    result = _run(tmp_path, total_epochs=10, dense_epochs=4, rounds=2, rate=0.5)
    assert [row["epochs"] for row in result.history] == [4, 3, 3]


def _frozen_after_dense():
    """Rounds after the dense one train at learning rate 0: the metric never improves."""
    def build():
        model = builder()()
        model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
    return build


def test_patience_stops_a_round_and_its_epochs_carry_to_the_next(tmp_path):
    result = tfimp.imp(_frozen_after_dense(), TRAIN, VAL, total_epochs=16, dense_epochs=4,
                       rounds=3, rate=0.5, patience=1, rewind="none", batch_size=30,
                       workdir=tmp_path, verbose=0)
    rounds = result.history[1:]
    # Nothing improves at rate 0: each round stops after 2 epochs (one to set the best, one
    # without improvement), and leaves the rest of its 4 to the next round.
    assert [row["epochs"] for row in rounds] == [2, 2, 2]
    assert result.history[-1]["epochs_total"] == 4 + 6


def test_allr_start_rate_is_recorded_and_within_its_clip(tmp_path):
    result = _run(tmp_path, total_epochs=12, dense_epochs=6, rounds=3, rate=0.5,
                  rewind="allr")
    peak = 0.05  # the builder's SGD rate
    for row in result.history[1:]:
        assert row["epochs"] == 2
        want = allr_start(peak, row["norm_drop"], 0.5, 2, 6)
        assert row["lr_start"] == pytest.approx(want, rel=1e-4)  # norm_drop is rounded
        assert peak / 3 * (1 - 1e-6) <= row["lr_start"] <= peak * (1 + 1e-6)
        assert 0 < row["norm_drop"] < 1


def test_adaptive_rounds_retry_from_the_last_good_round(tmp_path):
    result = _run(tmp_path, total_epochs=24, dense_epochs=4, rate="adaptive", rounds=None,
                  budget=0.0, rewind="allr")
    history = result.history
    assert sum(row["epochs"] for row in history) <= 24
    good, density = 0, {0: 1.0}
    for row in history[1:]:
        assert row["parent"] == good
        assert row["target_density"] == pytest.approx(density[good] * (1 - row["step"]),
                                                      rel=1e-5)
        density[row["round"]] = row["target_density"]
        drop = result.dense_metric - row["val_accuracy"]
        assert row["accepted"] == (drop <= 1e-12)
        if row["accepted"]:
            good = row["round"]
    best = result.best_round()
    assert best["round"] == good or best["sparsity"] >= history[good]["sparsity"]


def test_adaptive_steps_grow_with_margin(tmp_path):
    # A budget no round can break: every round is accepted, and the step grows 1.25x in log
    # space (up to 0.45) after each round that kept half the budget as margin.
    result = _run(tmp_path, total_epochs=8, dense_epochs=2, rate="adaptive", rounds=None,
                  budget=1.0, rewind="allr")
    rows = result.history[1:]
    assert rows[0]["step"] == pytest.approx(0.2) and len(rows) == 6
    for row, after in zip(rows, rows[1:]):
        a = row["step"]
        margin = result.dense_metric - row["val_accuracy"] <= 0.5
        want = min(0.45, 1 - math.exp(1.25 * math.log1p(-a))) if margin else a
        assert after["step"] == pytest.approx(want, rel=1e-5)
    assert all(row["accepted"] for row in rows)


def test_adaptive_run_resumes_with_its_controller(tmp_path):
    kw = dict(total_epochs=10, dense_epochs=2, rate="adaptive", rounds=None, budget=1.0,
              rewind="allr")
    first = _run(tmp_path, **kw)
    again = _run(tmp_path, **kw)  # the finished run is read back, not retrained
    assert again.history == first.history


@pytest.mark.parametrize("rewind, cost", [("init", "own"), ("none", "with dense")])
def test_gradual_strategy_reaches_its_target_in_one_run(tmp_path, rewind, cost):
    result = tfimp.imp(builder(), TRAIN, VAL, strategy="gradual", target_sparsity=0.8,
                       rounds=None, total_epochs=8, rewind=rewind, batch_size=10,
                       workdir=tmp_path, verbose=0)
    assert [row["round"] for row in result.history] == [0, 1]
    row = result.history[1]
    assert row["sparsity"] == pytest.approx(0.8, abs=0.02)
    if cost == "own":  # from scratch: the dense round is only the reference
        assert row["epochs"] == 8 and row["epochs_total"] == 8
    else:              # from the dense model: a quarter dense, the rest gradual
        assert (result.history[0]["epochs"], row["epochs"]) == (2, 6)
        assert row["epochs_total"] == 8
    model = result.best(budget=1.0)
    assert tfimp.sparsity_report(model).sparsity >= 0.0


def test_ramped_rounds_reach_their_target_and_never_revive(tmp_path):
    from tfimp.lottery.rundir import unpack

    result = _run(tmp_path, total_epochs=12, rounds=3, rate=0.5, ramp=0.5, rewind="lr",
                  build=_with_schedule())
    assert [round(row["sparsity"], 2) for row in result.history] == [0.0, 0.5, 0.75, 0.88]
    masks = [unpack("m", result._run.load_arrays(f"round_{r:02d}.npz")) for r in (1, 2, 3)]
    for before, after in zip(masks, masks[1:]):
        assert all((a <= b).all() for a, b in zip(after, before))


def _with_schedule():
    def build():
        model = builder()()
        lr = keras.optimizers.schedules.CosineDecay(0.05, 10)
        model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
    return build


@pytest.mark.parametrize("scope", ["lamp", "erk"])
def test_imp_runs_with_lamp_and_erk_allocation(tmp_path, scope):
    result = _run(tmp_path, rounds=2, rate=0.5, scope=scope)
    assert result.history[-1]["sparsity"] == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rate="adaptive"), "budget"),
    (dict(rate="adaptive", budget=0.01, rounds=None), "total_epochs"),
    (dict(rate="fast"), "rate"),
    (dict(total_epochs=3, rounds=3), "total_epochs"),
    (dict(total_epochs=5, dense_epochs=5), "dense_epochs"),
    (dict(total_epochs=5, steps_per_round=3), "steps_per_round"),
    (dict(patience=0), "patience"),
    (dict(strategy="gradual", target_sparsity=0.5, distill="dense"), "distill"),
    (dict(strategy="cyclic"), "strategy"),
    (dict(ramp=1.0), "ramp"),
    (dict(ramp=0.5, granularity="channel"), "ramp"),
])
def test_bad_budget_settings_fail_before_training(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=f"Argument `{match}`"):
        _run(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())
