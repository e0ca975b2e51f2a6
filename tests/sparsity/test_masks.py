"""Mask strategies on toy arrays: exact counts, ties, monotonicity, global ranking, blocks."""

import json
import numpy as np
import pytest

from tfimp.sparsity import masks
from tfimp.sparsity.masks import (
    Granularity,
    global_masks,
    layerwise_masks,
    magnitude_mask,
    sparsity_of,
)


def toy(n=20, shape=(4, 5), sign=True):
    w = np.arange(n, dtype=np.float32).reshape(shape)
    return w * np.where(np.arange(n).reshape(shape) % 2 == 0, 1, -1) if sign else w


def test_magnitude_mask_zeroes_the_smallest_exactly():
    w = toy()
    mask = magnitude_mask(w, 0.3)
    assert mask.dtype == np.float32 and mask.shape == w.shape
    np.testing.assert_array_equal(mask.ravel(), [0] * 6 + [1] * 14)


@pytest.mark.parametrize("n", [1, 7, 10, 33, 100])
@pytest.mark.parametrize("s", [0.0, 0.1, 0.25, 0.5, 0.55, 0.9, 0.99])
def test_exact_count_is_round_s_times_n(n, s):
    rng = np.random.default_rng(n)
    w = rng.normal(size=n)
    mask = magnitude_mask(w, s)
    assert np.count_nonzero(mask == 0) == round(s * n)
    kept, dropped = np.abs(w[mask == 1]), np.abs(w[mask == 0])
    assert dropped.size == 0 or kept.size == 0 or dropped.max() <= kept.min()


def test_ties_broken_by_lowest_flat_index():
    w = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(magnitude_mask(w, 0.5).ravel(), [0] * 6 + [1] * 6)
    w = np.array([2.0, -1.0, 1.0, -1.0, 3.0])
    np.testing.assert_array_equal(magnitude_mask(w, 0.4), [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(magnitude_mask(w, 0.4), magnitude_mask(w.copy(), 0.4))


def test_never_denser_and_old_zeros_stay():
    w = toy()
    old = np.ones_like(w)
    old.ravel()[[19, 18]] = 0.0  # the largest weights were pruned before
    mask = magnitude_mask(w, 0.3, old_mask=old)
    assert np.all(mask <= old)
    assert np.count_nonzero(mask == 0) == 6
    np.testing.assert_array_equal(np.flatnonzero(mask == 0), [0, 1, 2, 3, 18, 19])
    sparser = magnitude_mask(w, 0.1, old_mask=mask)
    np.testing.assert_array_equal(sparser, mask)


@pytest.mark.parametrize("f", [0.2, 0.5, 0.36])
def test_two_rounds_at_f_leave_one_minus_f_squared(f):
    w = np.random.default_rng(0).normal(size=(50, 20))
    first = magnitude_mask(w, f)
    second_target = 1 - (1 - f) ** 2
    second = magnitude_mask(w * first, second_target, old_mask=first)
    assert 1 - sparsity_of(second) == pytest.approx((1 - f) ** 2, abs=1 / w.size)
    assert np.all(second <= first)


def test_repeated_pruning_never_revives():
    rng = np.random.default_rng(1)
    mask = None
    for target in np.linspace(0.1, 0.9, 9):
        w = rng.normal(size=(8, 8))  # weights move between rounds
        new = magnitude_mask(w, target, old_mask=mask)
        if mask is not None:
            assert np.all(new <= mask)
        assert np.count_nonzero(new == 0) == max(round(target * 64), 0)
        mask = new


def test_layerwise_masks_each_tensor_its_own_target():
    weights = {"a": toy(), "b": toy(10, (10,)), "c": toy(8, (2, 4))}
    out = layerwise_masks(weights, 0.5, targets={"c": 0.25})
    assert [np.count_nonzero(out[k] == 0) for k in "abc"] == [10, 5, 2]
    np.testing.assert_array_equal(out["b"], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])


def test_global_masks_one_threshold():
    weights = {"small": np.arange(10.0), "large": np.arange(10.0, 30.0)}
    out = global_masks(weights, 0.5)
    np.testing.assert_array_equal(out["small"], np.zeros(10))
    np.testing.assert_array_equal(out["large"], [0] * 5 + [1] * 15)
    rng = np.random.default_rng(2)
    weights = {k: rng.normal(scale=s, size=(7, 9)) for k, s in [("x", 0.1), ("y", 1), ("z", 3)]}
    out = global_masks(weights, 0.6)
    assert sum(np.count_nonzero(m == 0) for m in out.values()) == round(0.6 * 3 * 63)
    dropped = np.concatenate([np.abs(weights[k][out[k] == 0]) for k in weights])
    kept = np.concatenate([np.abs(weights[k][out[k] == 1]) for k in weights])
    assert dropped.max() <= kept.min()


def test_global_targets_are_left_out_of_the_pool():
    weights = {"a": np.arange(10.0), "b": np.arange(10.0, 20.0), "t": np.arange(100.0, 110.0)}
    out = global_masks(weights, 0.5, targets={"t": 0.3})
    np.testing.assert_array_equal(out["t"], [0, 0, 0] + [1] * 7)
    np.testing.assert_array_equal(out["a"], np.zeros(10))
    np.testing.assert_array_equal(out["b"], np.ones(10))
    assert list(out) == ["a", "b", "t"]


def test_global_never_denser():
    weights = {"a": np.arange(1.0, 11.0), "b": np.arange(11.0, 21.0)}
    old = {"a": np.ones(10), "b": np.r_[np.ones(9), 0.0]}
    out = global_masks(weights, 0.3, old_masks=old)
    assert out["b"][-1] == 0 and sum(np.count_nonzero(m == 0) for m in out.values()) == 6
    np.testing.assert_array_equal(out["a"], [0] * 5 + [1] * 5)


def test_block_4x1_on_a_dense_kernel_zeroes_whole_groups():
    w = np.arange(64, dtype=np.float32).reshape(8, 8).T.copy()  # (in=8, out=8)
    mask = magnitude_mask(w, 0.5, granularity=(4, 1))
    assert np.count_nonzero(mask == 0) == 32
    groups = mask.reshape(2, 4, 8)  # [input block, 4 inputs, output]
    assert np.all(groups.min(axis=1) == groups.max(axis=1))
    # Output column j holds 8j..8j+7, so the 4 lowest columns go entirely.
    np.testing.assert_array_equal(mask[:, :4], 0)
    np.testing.assert_array_equal(mask[:, 4:], 1)


def test_block_on_uneven_shape_covers_edges():
    w = np.random.default_rng(3).normal(size=(6, 3))
    mask = magnitude_mask(w, 0.5, granularity=(4, 1))
    assert mask.shape == (6, 3)
    for col in range(3):
        assert len(set(mask[:4, col])) == 1 and len(set(mask[4:, col])) == 1
    assert np.count_nonzero(masks.layerwise_masks({"w": w}, 0.5, granularity=(4, 1))["w"] == 0) > 0


@pytest.mark.parametrize("block", [(0, 1), (1, 2, 3, 4)])
def test_bad_block_raises(block):
    with pytest.raises(ValueError, match="Argument `(granularity.)?block`"):
        magnitude_mask(np.ones((4, 4)), 0.5, granularity=block)


def test_bad_sparsity_and_mask_raise():
    with pytest.raises(ValueError, match="Received: sparsity=1.5"):
        magnitude_mask(np.ones(4), 1.5)
    with pytest.raises(ValueError, match="0.0 and 1.0 only"):
        magnitude_mask(np.ones(4), 0.5, old_mask=np.full(4, 0.5))
    with pytest.raises(ValueError, match="Argument `mask` must be of the weight.s shape"):
        magnitude_mask(np.ones(4), 0.5, old_mask=np.ones(5))


def test_strategy_registry_lists_names():
    assert masks.get("global") is global_masks and masks.get("layer") is layerwise_masks
    names = r"\['erk', 'global', 'lamp', 'layer'\]"
    with pytest.raises(ValueError, match=r"Argument `scope` must be one of " + names):
        masks.get("channel")


@pytest.mark.parametrize("seed", range(5))
def test_selection_equals_a_stable_sort_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(9, 11)).astype(np.float32)  # 7 distinct magnitudes
    old = (rng.random(w.shape) > 0.2).astype(np.float32)
    for s in (0.1, 0.3, 0.5, 0.77):
        scores = np.where(old == 0, -1.0, np.abs(w)).ravel()
        count = max(round(s * w.size), int((old == 0).sum()))
        expected = np.ones(w.size, np.float32)
        expected[np.argsort(scores, kind="stable")[:count]] = 0
        np.testing.assert_array_equal(magnitude_mask(w, s, old_mask=old).ravel(), expected)
        flat = global_masks({"a": w[:4], "b": w[4:]}, s, old_masks={"a": old[:4], "b": old[4:]})
        np.testing.assert_array_equal(np.concatenate([flat["a"], flat["b"]]).ravel(), expected)


def edge_kernel():
    """(in=6, out=3) kernel in 4x1 blocks: whole blocks 1, 2, 3 by column, edge rows 10."""
    w = np.tile(np.array([1.0, 2.0, 3.0], dtype=np.float32), (6, 1))
    w[4:] = 10.0
    return w


def test_partial_edge_blocks_are_ranked_by_default():
    mask = magnitude_mask(edge_kernel(), 0.5, granularity=(4, 1))
    np.testing.assert_array_equal(mask[:4], 0)
    np.testing.assert_array_equal(mask[4:], 1)


@pytest.mark.parametrize("s, kept_columns", [(0.0, [0, 1, 2]), (0.5, [0, 1, 2]), (0.7, [1, 2]),
                                             (0.9, [2])])
def test_prune_partial_blocks_keeps_only_whole_blocks(s, kept_columns):
    mask = magnitude_mask(edge_kernel(), s, granularity="block:4x1:whole")
    np.testing.assert_array_equal(mask[4:], 0)
    expected = np.zeros((4, 3), dtype=np.float32)
    expected[:, kept_columns] = 1
    np.testing.assert_array_equal(mask[:4], expected)
    # 6 blocks: the 3 edge blocks always, then round(s * 6) once that is more.
    assert np.count_nonzero(mask[0] == 0) + 3 == max(3, round(s * 6))


def test_prune_partial_blocks_never_makes_a_mask_denser():
    old = np.ones((6, 3), dtype=np.float32)
    old[:4, 2] = 0.0  # the largest whole block was pruned before
    mask = magnitude_mask(edge_kernel(), 0.5, old_mask=old, granularity="block:4x1:whole")
    expected = np.zeros((6, 3), dtype=np.float32)
    expected[:4, :2] = 1
    np.testing.assert_array_equal(mask, expected)


def test_whole_blocks_changes_nothing_on_even_shapes():
    w = toy(64, (8, 8))
    np.testing.assert_array_equal(
        magnitude_mask(w, 0.5, granularity="block:4x1:whole"),
        magnitude_mask(w, 0.5, granularity=(4, 1)))


def test_global_prune_partial_blocks_counts_edge_blocks_in_the_pool():
    weights = {"a": edge_kernel(), "b": np.r_[[0.5] * 4, [0.6] * 4].reshape(8, 1)}
    plain = global_masks(weights, 0.5, granularity=(4, 1))
    np.testing.assert_array_equal(plain["a"][:4, :2], 0)  # 4 lowest: b, b, a col 0, a col 1
    np.testing.assert_array_equal(plain["a"][4:], 1)
    np.testing.assert_array_equal(plain["b"], 0)
    out = global_masks(weights, 0.5, granularity="block:4x1:whole")
    np.testing.assert_array_equal(out["a"][4:], 0)  # 4 of 8: the 3 edge blocks + b's lowest
    np.testing.assert_array_equal(out["a"][:4], 1)
    np.testing.assert_array_equal(out["b"].ravel(), [0] * 4 + [1] * 4)


def test_prune_partial_blocks_applies_to_layerwise_and_targets():
    weights = {"a": edge_kernel(), "c": edge_kernel()}
    for out in (layerwise_masks(weights, 0.0, granularity="block:4x1:whole"),
                global_masks(weights, 0.0, targets={"c": 0.0}, granularity="block:4x1:whole")):
        for mask in out.values():
            np.testing.assert_array_equal(mask[4:], 0)
            np.testing.assert_array_equal(mask[:4], 1)


def test_granularity_parses_short_forms_and_round_trips():
    g = Granularity.parse("block:16x1:whole")
    assert g == Granularity("block", (16, 1), True) and str(g) == "block:16x1:whole"
    assert Granularity.parse((4, 1)) == Granularity("block", (4, 1))
    assert Granularity.parse(None) == Granularity.parse("weight") == Granularity()
    assert Granularity.from_config(json.loads(json.dumps(g.get_config()))) == g


@pytest.mark.parametrize("bad", ["blocks:4x1", "block", "block:4xa", "block:4x1:half", "weight:2",
                                 5, (0, 1), ("a",)])
def test_bad_granularity_raises_naming_the_argument(bad):
    with pytest.raises(ValueError, match="Argument `granularity"):
        magnitude_mask(edge_kernel(), 0.5, granularity=bad)


def test_whole_blocks_need_a_block_shape():
    with pytest.raises(ValueError, match="Argument `granularity`"):
        Granularity("weight", None, True)


# ---------------------------------------------------------------- LAMP and ERK allocation
def test_lamp_scores_follow_the_paper_on_a_toy_tensor():
    w = np.array([1.0, -2.0, 3.0])
    # sorted squares 1, 4, 9: scores 1/14, 4/13, 9/9
    np.testing.assert_allclose(masks.lamp_scores(w), [1 / 14, 4 / 13, 1.0])


def test_lamp_keeps_every_tensors_largest_weight():
    weights = {"big": np.arange(1.0, 101.0).reshape(10, 10), "small": np.array([[0.01, 0.02]])}
    new = masks.lamp_masks(weights, 0.97)
    assert new["small"][0, 1] == 1.0 and new["big"][9, 9] == 1.0
    assert sum(int(m.size - m.sum()) for m in new.values()) == round(0.97 * 102)


def test_lamp_never_revives_and_counts_exactly():
    rng = np.random.default_rng(0)
    weights = {"a": rng.normal(size=(8, 6)), "b": rng.normal(size=(6, 4))}
    first = masks.lamp_masks(weights, 0.5)
    pruned = {k: w * first[k] for k, w in weights.items()}
    second = masks.lamp_masks(pruned, 0.75, first)
    for k in weights:
        assert np.all(second[k] <= first[k])
    assert sum(int(m.size - m.sum()) for m in second.values()) == 54


def test_erk_densities_are_proportional_to_sum_over_product_and_keep_the_total():
    shapes = {"fc1": (784, 300), "fc2": (300, 100), "out": (100, 10)}
    d = masks.erk_densities(shapes, 0.05)
    kept = sum(d[k] * np.prod(s) for k, s in shapes.items())
    assert kept == pytest.approx(0.05 * sum(np.prod(s) for s in shapes.values()))
    ratio = d["fc2"] / d["fc1"]
    assert ratio == pytest.approx((400 / 30000) / (1084 / 235200))
    assert d["out"] > d["fc2"] > d["fc1"]


def test_erk_keeps_a_tensor_dense_rather_than_above_one():
    d = masks.erk_densities({"big": (1000, 1000), "tiny": (2, 2)}, 0.5)
    assert d["tiny"] == 1.0
    assert d["big"] == pytest.approx((0.5 * 1_000_004 - 4) / 1_000_000)


def test_erk_masks_hit_the_total_and_respect_fixed_targets():
    rng = np.random.default_rng(1)
    weights = {"a": rng.normal(size=(40, 30)), "b": rng.normal(size=(30, 10)),
               "c": rng.normal(size=(10, 4))}
    new = masks.erk_masks(weights, 0.8, targets={"c": 0.5})
    assert new["c"].mean() == pytest.approx(0.5)
    total = sum(m.size for m in new.values())
    assert sum(m.sum() for m in new.values()) == pytest.approx(0.2 * total, abs=2)


@pytest.mark.parametrize("scope", ["lamp", "erk"])
def test_new_scopes_are_registered_strategies(scope):
    assert masks.get(scope) in (masks.lamp_masks, masks.erk_masks)
