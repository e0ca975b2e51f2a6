"""Schedules: tfmot's formulas at every step, validation, config round-trips."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tfimp import schedules
from tfimp.schedules import (
    ConstantSparsity,
    OneShot,
    PolynomialDecay,
    geometric_sparsity,
    rounds_to_reach,
)

STEPS = range(0, 260)


def expected_polynomial(step, initial, final, begin, end, power):
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1.0 - p) ** power


def expected_should_prune(step, begin, end, frequency):
    in_range = begin <= step and (end == -1 or step <= end)
    return in_range and (step - begin) % frequency == 0


@pytest.mark.parametrize("power", [1, 2, 3, 0.5])
@pytest.mark.parametrize("begin,end,frequency", [(0, 100, 10), (7, 93, 5), (20, 21, 1)])
def test_polynomial_decay_equals_formula(power, begin, end, frequency):
    s = PolynomialDecay(0.1, 0.85, begin_step=begin, end_step=end, power=power,
                        frequency=frequency)
    for step in STEPS:
        assert s.sparsity(step) == pytest.approx(
            expected_polynomial(step, 0.1, 0.85, begin, end, power), abs=1e-12)
        assert s.should_prune(step) == expected_should_prune(step, begin, end, frequency)
        assert s(step) == (s.should_prune(step), s.sparsity(step))


def test_polynomial_decay_endpoints_and_monotone():
    s = PolynomialDecay(0.0, 0.9, begin_step=10, end_step=110, frequency=1)
    assert s.sparsity(0) == 0.0 and s.sparsity(10) == 0.0
    assert s.sparsity(110) == pytest.approx(0.9) and s.sparsity(10_000) == pytest.approx(0.9)
    values = [s.sparsity(t) for t in STEPS]
    assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("begin,end,frequency", [(0, -1, 100), (3, -1, 7), (5, 50, 9), (4, 4, 1)])
def test_constant_sparsity_should_prune(begin, end, frequency):
    s = ConstantSparsity(0.6, begin_step=begin, end_step=end, frequency=frequency)
    for step in STEPS:
        assert s.sparsity(step) == 0.6
        assert s.should_prune(step) == expected_should_prune(step, begin, end, frequency)


def test_end_minus_one_prunes_forever():
    s = ConstantSparsity(0.5, begin_step=10, end_step=-1, frequency=10)
    assert s.should_prune(10_000_000) and not s.should_prune(5) and s.last_step() is None


@pytest.mark.parametrize("schedule,last", [
    (ConstantSparsity(0.5, begin_step=3, end_step=50, frequency=7), 45),
    (PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, frequency=30), 90),
    (PolynomialDecay(0.0, 0.5, begin_step=0, end_step=100, frequency=1), 100),
    (OneShot(0.3, step=12), 12),
])
def test_last_step_is_the_last_pruning_step(schedule, last):
    assert schedule.last_step() == last
    assert schedule.should_prune(last)
    assert not any(schedule.should_prune(t) for t in range(last + 1, last + 500))


@pytest.mark.parametrize("schedule", [
    ConstantSparsity(0.5, begin_step=3, end_step=50, frequency=7),
    ConstantSparsity(0.5, begin_step=4, end_step=-1, frequency=10),
    PolynomialDecay(0.0, 0.5, begin_step=5, end_step=100, frequency=30),
    OneShot(0.3, step=12),
])
def test_latest_pruning_step_is_the_last_turn_so_far(schedule):
    for step in STEPS:
        turns = [t for t in range(step + 1) if schedule.should_prune(t)]
        assert schedule.latest_pruning_step(step) == (turns[-1] if turns else None)


def test_one_shot_prunes_once():
    s = OneShot(0.4, step=5)
    assert [t for t in STEPS if s.should_prune(t)] == [5]
    assert s.sparsity(0) == s.sparsity(999) == 0.4 and s.end_sparsity() == 0.4


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.36])
def test_geometric_sparsity_and_rounds_to_reach(rate):
    for rounds in range(0, 12):
        assert 1 - geometric_sparsity(rate, rounds) == pytest.approx((1 - rate) ** rounds)
    for target in (0.0, 0.5, 0.8, 0.9, 0.99):
        r = rounds_to_reach(rate, target)
        assert geometric_sparsity(rate, r) >= target - 1e-12
        assert r == 0 or geometric_sparsity(rate, r - 1) < target


SCHEDULE_CASES = [
    ConstantSparsity(0.5),
    ConstantSparsity(0.25, begin_step=4, end_step=40, frequency=3),
    PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000, power=2, frequency=50),
    OneShot(0.7, step=3),
]


@pytest.mark.parametrize("schedule", SCHEDULE_CASES, ids=lambda s: type(s).__name__)
def test_config_round_trip(schedule):
    config = schedule.get_config()
    assert json.loads(json.dumps(config)) == config
    assert type(schedule).from_config(config) == schedule
    assert schedules.deserialize(json.loads(json.dumps(schedules.serialize(schedule)))) == schedule
    assert schedules.get(schedules.serialize(schedule)) == schedule


def test_get_accepts_float_and_rejects_others():
    assert schedules.get(0.3) == OneShot(0.3)
    with pytest.raises(TypeError, match="`schedule`"):
        schedules.get("0.5")
    with pytest.raises(ValueError, match="Received: schedule=1.5"):
        schedules.get(1.5)


def test_deserialize_unknown_lists_known():
    with pytest.raises(ValueError, match="ConstantSparsity"):
        schedules.deserialize({"class_name": "Cosine", "config": {}})


def test_schedules_are_frozen():
    with pytest.raises(AttributeError):
        ConstantSparsity(0.5).target_sparsity = 0.9


@pytest.mark.parametrize("make,message", [
    (lambda: ConstantSparsity(1.0), r"Argument `target_sparsity` must be .*\[0, 1\)\. "
                                    r"Received: target_sparsity=1\.0"),
    (lambda: ConstantSparsity(-0.1), "Received: target_sparsity=-0.1"),
    (lambda: PolynomialDecay(0.0, 1.5, 0, 10), "Received: final_sparsity=1.5"),
    (lambda: PolynomialDecay(-0.2, 0.5, 0, 10), "Received: initial_sparsity=-0.2"),
    (lambda: PolynomialDecay(0.0, 0.5, 10, 5), "end_step=5, begin_step=10"),
    (lambda: PolynomialDecay(0.0, 0.5, 10, 10), "end_step=10, begin_step=10"),
    (lambda: PolynomialDecay(0.0, 0.5, 0, -1), "end_step=-1"),
    (lambda: ConstantSparsity(0.5, begin_step=8, end_step=3), "end_step=3, begin_step=8"),
    (lambda: ConstantSparsity(0.5, frequency=0), "Received: frequency=0"),
    (lambda: ConstantSparsity(0.5, frequency=-2), "Received: frequency=-2"),
    (lambda: ConstantSparsity(0.5, begin_step=-1), "Received: begin_step=-1"),
    (lambda: ConstantSparsity(0.5, frequency=2.5), "Received: frequency=2.5"),
    (lambda: PolynomialDecay(0.0, 0.5, 0, 10, power="3"), "Received: power='3'"),
    (lambda: OneShot(0.5, step=-3), "Received: step=-3"),
    (lambda: geometric_sparsity(1.0, 3), "Received: rate=1.0"),
    (lambda: rounds_to_reach(0.0, 0.5), "Received: rate=0.0"),
])
def test_bad_arguments_raise_keras_style(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _tfmot_python():
    configured = os.environ.get("TFIMP_TFMOT_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("tensorflow_model_optimization") is not None:
        return sys.executable
    pytest.skip("tfmot not installed (set TFIMP_TFMOT_PYTHON to a python that has it)")


TFMOT_SCRIPT = """
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
from tensorflow_model_optimization.sparsity.keras import ConstantSparsity, PolynomialDecay
cases = json.loads(sys.argv[1])
out = []
for kind, kwargs in cases:
    s = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}[kind](**kwargs)
    rows = []
    for step in range(0, 260):
        prune, sparsity = s(tf.constant(step, tf.int64))
        rows.append([bool(prune), float(sparsity)])
    out.append(rows)
print(json.dumps(out))
"""


def test_equal_to_tfmot_schedules():
    cases = [
        ("PolynomialDecay", dict(initial_sparsity=0.1, final_sparsity=0.85, begin_step=7,
                                 end_step=93, power=3, frequency=5)),
        ("PolynomialDecay", dict(initial_sparsity=0.0, final_sparsity=0.9, begin_step=0,
                                 end_step=200, power=2, frequency=1)),
        ("ConstantSparsity", dict(target_sparsity=0.6, begin_step=3, end_step=-1, frequency=7)),
        ("ConstantSparsity", dict(target_sparsity=0.3, begin_step=0, end_step=50, frequency=10)),
    ]
    done = subprocess.run([_tfmot_python(), "-c", TFMOT_SCRIPT, json.dumps(cases)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = json.loads(done.stdout.strip().splitlines()[-1])
    for (kind, kwargs), rows in zip(cases, reference):
        ours = schedules.SCHEDULES[kind](**kwargs)
        for step, (prune, sparsity) in zip(STEPS, rows):
            assert ours.should_prune(step) == prune, (kind, step)
            assert ours.sparsity(step) == pytest.approx(sparsity, abs=1e-6), (kind, step)
