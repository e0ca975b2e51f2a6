"""imp(..., device=budget): hybrid rounds measured on the exported model, stop at the first
fit, the nearest miss when nothing fits, the check on the written files."""

import dataclasses
import types

import pytest
from helpers_device import builder, toy_data

import tfimp
from tfimp.device import DeviceBudget, cost
from tfimp.device.policy import DevicePolicy
from tfimp.device.report import check_artifact
from tfimp.structure.shrink import shrink

SETTINGS = dict(rounds=3, rate=0.3, epochs_per_round=2, budget=0.2, batch_size=32)
BUILD = builder(features=64, hidden=(64, 16))


@pytest.fixture(scope="module")
def data():
    x, y = toy_data(240, features=64)
    return (x[:160], y[:160]), (x[160:], y[160:])


@pytest.fixture(scope="module")
def dense_flash(data):
    budget = DeviceBudget(flash=1 << 30, ram=1 << 30, encodings=("none",))
    return cost.measure(BUILD(), budget, data[0][0]).flash


@pytest.mark.slow
def test_units_rounds_until_the_model_fits(data, dense_flash, tmp_path):
    budget = DeviceBudget(flash=int(dense_flash * 0.8), ram=1 << 20, encodings=("none",))
    result = tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0, device=budget,
                       **SETTINGS)
    rows = result.history
    assert not rows[0]["device"]["fits"] and rows[-1]["device"]["fits"]
    assert all(r["device_action"] == "units" for r in rows[1:])
    assert result.device["fits"] and result.device["round"] == rows[-1]["round"]
    assert result.device["flash"] <= budget.flash
    model = shrink(result.model(result.device["round"]))
    assert model.get_layer("h0").units < 64 or model.get_layer("h1").units < 16
    data_ns = _Data(*data[0], *data[1])
    checked = check_artifact(model, budget, result.device, data_ns, tmp_path / "micro")
    assert checked["fits"] and checked["flash"] <= budget.flash
    assert checked["flash"] == result.device["flash"]
    again = tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0, device=budget, **SETTINGS)
    assert again.history == rows and again.device == result.device  # resumed, not rerun
    assert again.workdir == result.workdir


@pytest.mark.slow
def test_weight_rounds_when_only_flash_binds_and_decode_fits_the_ram(data, dense_flash,
                                                                    tmp_path):
    budget = DeviceBudget(flash=int(dense_flash * 0.85), ram=1 << 20,
                          encodings=("none", "pruning"))
    result = tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0, device=budget,
                       **dict(SETTINGS, rate=0.6))
    assert result.history[1]["device_action"] == "weights"
    assert result.device["fits"] and result.device["encoding"] == "pruning"


@pytest.mark.slow
def test_nothing_fits_gives_the_nearest_miss(data, tmp_path):
    budget = DeviceBudget(flash=500, ram=1 << 20, encodings=("none",))
    result = tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0, device=budget,
                       **dict(SETTINGS, rounds=1, rate=0.5))
    d = result.device
    assert d["label"] == "nearest miss" and not d["fits"]
    assert d["binding"] == "flash" and d["over_by"] > 0
    assert d["flash"] == min(r["device"]["flash"] for r in result.history)


def test_a_dense_model_that_fits_stops_at_round_zero(data, tmp_path):
    result = tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0,
                       device=DeviceBudget(flash=1 << 20, ram=1 << 20), **SETTINGS)
    assert [r["round"] for r in result.history] == [0]
    assert result.device["fits"] and result.device["round"] == 0


@pytest.mark.parametrize("kwargs, words", [
    (dict(device="cortex-m0plus-32k"), ["`device`", "DeviceBudget", "budget_for"]),
    (dict(device=DeviceBudget(flash=100), granularity="channel"), ["`granularity`",
                                                                    "'weight'"]),
    (dict(device=DeviceBudget(flash=100), strategy="gradual", target_sparsity=0.5),
     ["`strategy`", "'imp'"]),
])
def test_bad_device_arguments(data, tmp_path, kwargs, words):
    with pytest.raises(ValueError) as e:
        tfimp.imp(BUILD, *data, workdir=tmp_path, verbose=0, **{**SETTINGS, **kwargs})
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_allocation_is_checked():
    with pytest.raises(ValueError, match="`allocation`"):
        DevicePolicy(DeviceBudget(flash=100), allocation="random")


@dataclasses.dataclass
class _Data:
    x_train: object
    y_train: object
    x_test: object
    y_test: object


def test_a_round_beyond_the_accuracy_budget_is_retried_from_the_last_good_one():
    policy = DevicePolicy(DeviceBudget(flash=100))
    policy.driver = types.SimpleNamespace(cfg=tfimp.IMPConfig(budget=0.01))
    accuracy = [0.9, 0.895, 0.85, 0.86]
    manifest = {"dense_metric": 0.9, "history": [{"round": r, "val_accuracy": a}
                                                 for r, a in enumerate(accuracy)]}
    assert policy.parent_and_step(manifest, 0.4) == (1, 0.1)
    assert policy.parent_and_step(dict(manifest, history=manifest["history"][:2]), 0.4) == \
        (1, 0.4)
