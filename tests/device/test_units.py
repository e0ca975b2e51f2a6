"""Unit cuts: what they save, that shrink removes them exactly, which layer they choose."""

import numpy as np
from helpers_device import builder, toy_data

from tfimp.device.units import Units, plan_cut
from tfimp.structure.shrink import shrink


def _weights_bytes(hidden, features=8, classes=3):
    sizes = [features, *hidden, classes]
    return sum(a * b + 4 * b for a, b in zip(sizes, sizes[1:]))


def test_estimate_counts_int8_weights_and_int32_biases():
    units = Units(builder()())
    est = units.estimate(units.alive)
    assert est["flash"] == _weights_bytes((32, 16))
    assert est["macs"] == 8 * 32 + 32 * 16 + 16 * 3
    keep = units.alive.copy()
    keep[units.groups()[0][:4]] = False  # four units of h0
    assert units.estimate(keep)["flash"] == _weights_bytes((28, 16))


def test_applied_cut_is_removed_exactly_by_shrink():
    model = builder()()
    x, _ = toy_data(32)
    units = Units(model)
    keep = units.step(units.alive, units.groups()[0], 0.25)
    units.apply(keep)
    small = shrink(model)
    assert small.get_layer("h0").units == 24
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_undo_restores_the_weights():
    model = builder()()
    before = [w.copy() for w in model.get_weights()]
    units = Units(model)
    undo = units.apply(units.step(units.alive, units.groups()[1], 0.5))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    undo()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _model_with_idle_units():
    """h0's 16 weakest units never fire (tiny filters, negative bias); h1's all matter."""
    model = builder()()
    k0, b0 = model.get_layer("h0").get_weights()
    k0[:, 16:] *= 1e-3
    b0[16:] = -1.0
    model.get_layer("h0").set_weights([k0, b0])
    k1, b1 = model.get_layer("h1").get_weights()
    k1[:16, :] *= 1e-3  # h1 reads mostly the idle units: its filters look weakest by L1
    model.get_layer("h1").set_weights([k1, b1])
    return model


def test_sensitivity_cuts_where_accuracy_is_cheapest_per_byte():
    model = _model_with_idle_units()
    x, _ = toy_data(64)
    reference = model.predict(x, verbose=0)
    units = Units(model)
    target = units.estimate(units.alive)["flash"] - 8 * 12 * 2

    def over(est):
        return {"flash": est["flash"] / target - 1} if est["flash"] > target else {}

    def evaluate():
        return float(np.abs(model.predict(x, verbose=0) - reference).max())

    plan = plan_cut(units, over, evaluate, "sensitivity")
    assert plan["reached"]
    gone = units.alive & ~plan["keep"]
    h0 = units.groups()[0]
    assert gone[h0].sum() > 0 and gone[units.groups()[1]].sum() == 0
    assert set(np.flatnonzero(gone)) <= set(h0[16:].tolist())
    assert plan["drop"] < 1e-3
    assert units.estimate(plan["keep"])["flash"] <= target


def test_uniform_cuts_every_layer_alike():
    model = builder()()
    units = Units(model)
    target = units.estimate(units.alive)["flash"] * 0.8
    plan = plan_cut(units, lambda e: {"flash": 1} if e["flash"] > target else {},
                    lambda: 0.0, "uniform")
    h0, h1 = units.groups()
    share0 = 1 - plan["keep"][h0].mean()
    share1 = 1 - plan["keep"][h1].mean()
    assert plan["reached"] and abs(share0 - share1) <= 1 / 16 + 1e-9


def test_a_layer_keeps_one_unit_and_an_unreachable_target_says_so():
    units = Units(builder(hidden=(4, 4))())
    plan = plan_cut(units, lambda e: {"flash": 1}, lambda: 0.0, "uniform")
    assert not plan["reached"]
    assert all(plan["keep"][g].sum() == 1 for g in units.groups())


def test_a_cut_removes_at_most_its_share_of_the_units():
    units = Units(builder()())
    live = int(units.alive.sum() - 3)  # the output units are fixed
    for allocation in ("sensitivity", "uniform"):
        plan = plan_cut(units, lambda e: {"flash": 1}, lambda: 0.0, allocation, most=0.25)
        assert not plan["reached"]
        assert 0 < int(units.alive.sum() - plan["keep"].sum()) <= 0.25 * live


def test_no_layer_loses_more_than_its_share_to_one_cut():
    # Cutting h0 is free and h1 costly: sensitivity would empty h0; a cut takes at most
    # `most` of each layer's live units.
    units = Units(builder(hidden=(40, 20))())
    h0 = units.groups()[0]

    def drop():
        return 0.0 if units.model.get_layer("h1").get_weights()[0].any(axis=0).all() else 1.0

    plan = plan_cut(units, lambda e: {"flash": 1}, drop, "sensitivity", most=0.25)
    removed = [int(units.alive[g].sum() - plan["keep"][g].sum()) for g in units.groups()]
    assert removed[0] == 10 and removed[1] <= 5
    assert plan["keep"][h0].sum() == 30
