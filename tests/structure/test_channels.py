"""Channel scores and keep vectors on toy arrays: exact counts, ties, floors, never denser."""

import numpy as np
import pytest

from tfimp.structure.channels import (
    Channels,
    channel_keep,
    class_scores,
    filter_norms,
    slice_mask,
)


def test_filter_norms_l1_and_l2_over_all_but_the_channel_axis():
    kernel = np.array([[[1.0, -2.0, 0.0], [3.0, 0.0, -4.0]],
                       [[-1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]])  # (..., in=2, out=3)
    np.testing.assert_allclose(filter_norms(kernel, -1, "l1"), [5, 4, 7])
    np.testing.assert_allclose(filter_norms(kernel, -1, "l2"), np.sqrt([11, 8, 25]))
    np.testing.assert_allclose(filter_norms(kernel, 0, "l1"), [10, 6])
    with pytest.raises(ValueError, match="`norm`"):
        filter_norms(kernel, -1, "l3")


def test_class_scores_sum_members_and_apply_scales():
    norms = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([10.0, 20.0, 30.0])}
    classes = {"a": np.array([0, 1, 2]), "b": np.array([2, 1, 0])}
    np.testing.assert_allclose(class_scores(norms, classes, 3), [31, 22, 13])
    np.testing.assert_allclose(class_scores(norms, classes, 3, np.array([1, 0.5, 0])),
                               [31, 11, 0])


def test_layer_scope_removes_the_exact_count_per_group():
    scores = np.array([5, 1, 4, 2, 3, 9, 8, 7, 6, 0.5])
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    keep = channel_keep(scores, groups, 0.4)
    np.testing.assert_array_equal(keep, [1, 0, 1, 0, 1, 1, 1, 1, 0, 0])


def test_ties_go_to_the_lowest_index():
    keep = channel_keep(np.ones(6), np.zeros(6, int), 0.5)
    np.testing.assert_array_equal(keep, [0, 0, 0, 1, 1, 1])
    again = channel_keep(np.ones(6), np.zeros(6, int), 0.5)
    np.testing.assert_array_equal(keep, again)


def test_global_scope_normalizes_each_group_by_its_mean():
    # Group 1's scores are 100x larger; raw ranking would empty group 0.
    scores = np.array([1.0, 2.0, 3.0, 100.0, 300.0, 200.0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    keep = channel_keep(scores, groups, 0.5, scope="global")
    # normalized: [.5, 1, 1.5] and [.5, 1.5, 1]: the ties at .5 and at 1 go to lower indices
    np.testing.assert_array_equal(keep, [0, 0, 1, 0, 1, 1])


def test_global_scope_ranks_across_groups():
    scores = np.array([1.0, 1.0, 1.0, 1.0, 0.1, 1.9])
    groups = np.array([0, 0, 0, 1, 1, 1])
    keep = channel_keep(scores, groups, 1 / 3, scope="global")
    np.testing.assert_array_equal(keep, [0, 1, 1, 1, 0, 1])  # 0.1, then the first tie at 1


def test_fixed_classes_stay_and_do_not_count():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    fixed = np.array([True, False, False, False, False])
    keep = channel_keep(scores, np.zeros(5, int), 0.5, fixed=fixed)
    np.testing.assert_array_equal(keep, [1, 0, 0, 1, 1])


def test_never_denser_and_old_removals_count():
    scores = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    old = np.array([False, True, True, True, True, True])
    keep = channel_keep(scores, np.zeros(6, int), 1 / 3, old_keep=old)
    np.testing.assert_array_equal(keep, [0, 0, 1, 1, 1, 1])
    same = channel_keep(scores, np.zeros(6, int), 0.1, old_keep=keep)
    np.testing.assert_array_equal(same, keep)


@pytest.mark.parametrize("f", [0.2, 0.5])
def test_two_rounds_leave_one_minus_f_squared(f):
    rng = np.random.default_rng(0)
    scores, groups = rng.random(100), np.zeros(100, int)
    first = channel_keep(scores, groups, f)
    second = channel_keep(scores, groups, 1 - (1 - f) ** 2, old_keep=first)
    assert np.count_nonzero(second) == round(100 * (1 - f) ** 2)
    assert np.all(second <= first)


def test_min_channels_floor_per_layer():
    scores = np.array([0.1, 0.2, 0.3, 5.0, 6.0, 7.0])
    groups = np.zeros(6, int)
    layers = {"small": np.array([0, 1, 2]), "big": np.array([3, 4, 5])}
    keep = channel_keep(scores, groups, 0.5, scope="global", layers=layers)
    np.testing.assert_array_equal(keep, [0, 0, 1, 0, 1, 1])  # "small" keeps one
    keep = channel_keep(scores, np.array([0, 0, 0, 1, 1, 1]), 1.0, layers=layers,
                        min_channels=2)
    np.testing.assert_array_equal(keep, [0, 1, 1, 0, 1, 1])
    keep = channel_keep(scores, groups, 0.9, layers=layers, min_channels=1)
    np.testing.assert_array_equal(keep, [0, 0, 1, 0, 0, 1])


def test_targets_rank_their_group_alone():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    keep = channel_keep(scores, groups, 0.5, scope="global", targets={1: 0.25})
    np.testing.assert_array_equal(keep, [0, 0, 1, 1, 0, 1, 1, 1])
    keep = channel_keep(scores, groups, 0.5, targets={0: 0.0})
    np.testing.assert_array_equal(keep, [1, 1, 1, 1, 0, 0, 1, 1])


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5"])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match="`sparsity`"):
        channel_keep(np.ones(3), np.zeros(3, int), bad)


def test_slice_mask_crosses_input_and_output_axes():
    keep = np.array([True, False, True, True])
    mask = slice_mask((3, 2), [(0, np.array([0, 1, 2])), (1, np.array([3, 1]))], keep)
    np.testing.assert_array_equal(mask, [[1, 0], [0, 0], [1, 0]])
    assert mask.dtype == np.float32


def test_channels_config_round_trips_and_checks():
    spec = Channels(norm="l2", bn_scale=True, min_channels=2)
    assert Channels.from_config(spec.get_config()) == spec
    for kwargs, arg in [({"norm": "max"}, "norm"), ({"min_channels": 0}, "min_channels"),
                        ({"bn_scale": 1}, "bn_scale")]:
        with pytest.raises(ValueError, match=f"`{arg}`"):
            Channels(**kwargs)


def test_channels_is_the_channel_granularity_with_a_short_form():
    from tfimp.sparsity.masks import Granularity

    spec = Granularity.parse("channel:l2:bn:min2")
    assert spec == Channels(norm="l2", bn_scale=True, min_channels=2)
    assert isinstance(spec, Granularity) and spec.kind == "channel"
    assert str(spec) == "channel:l2:bn:min2" and str(Granularity.parse("channel")) == "channel"
    assert Granularity.from_config(spec.get_config()) == spec
    with pytest.raises(ValueError, match="`granularity`"):
        Granularity.parse("channel:l3")
    with pytest.raises(ValueError, match="Channels"):
        Granularity("channel")


def test_structure_namespace_loads_names_lazily():
    import tfimp.structure as structure

    assert structure.Channels is Channels
    assert callable(structure.trace) and callable(structure.structure_report)
    with pytest.raises(AttributeError, match="no attribute"):
        structure.prune_everything  # noqa: B018
