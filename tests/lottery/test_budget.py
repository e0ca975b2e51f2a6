"""The training budget's pure rules: epoch plans, the adaptive rate, ALLR's start rate."""

import math

import pytest

from tfimp.lottery import budget


def test_plan_splits_the_rest_evenly_first_rounds_take_the_remainder():
    plan = budget.EpochPlan(total=80, dense=20, rounds=7)
    shares = [plan.planned(r) for r in range(1, 8)]
    assert sum(shares) == 60
    assert shares == [9, 9, 9, 9, 8, 8, 8]


def test_plan_carries_unused_epochs_to_the_next_round():
    plan = budget.EpochPlan(total=40, dense=10, rounds=3)  # 10 per round
    assert plan.round_epochs(1, spent=0) == 10
    # Round 1 stopped after 4 epochs: round 2 gets its 10 and the 6 left over.
    assert plan.round_epochs(2, spent=4) == 16
    assert plan.round_epochs(3, spent=20) == 10
    assert plan.round_epochs(3, spent=30) == 0


def test_plan_never_spends_more_than_the_budget():
    plan = budget.EpochPlan(total=30, dense=6, rounds=None, per_round=5)
    spent, r = 0, 1
    while (e := plan.round_epochs(r, spent)) > 0:
        spent, r = spent + e, r + 1
    assert spent == 24 and r - 1 == 5  # 5+5+5+5+4


def test_plan_refuses_a_budget_without_room_for_the_rounds():
    with pytest.raises(ValueError, match="total_epochs"):
        budget.EpochPlan(total=10, dense=10, rounds=2)
    with pytest.raises(ValueError, match="at least 12"):
        budget.EpochPlan(total=11, dense=10, rounds=2)


def test_dense_share_is_a_quarter_and_at_least_one():
    assert budget.dense_share(80) == 20
    assert budget.dense_share(2) == 1


def test_adaptive_rate_grows_with_margin_and_halves_its_log_step_beyond_the_budget():
    rate = budget.AdaptiveRate(budget=0.01, step=0.3, grow=1.5, max_step=0.9)
    rate.update(1, drop=0.002)            # within half the budget: grows
    assert rate.good_round == 1
    assert rate.step == pytest.approx(1 - 0.7 ** 1.5)
    rate.update(2, drop=0.008)            # within, without margin: same step
    assert rate.good_round == 2 and rate.step == pytest.approx(1 - 0.7 ** 1.5)
    rate.update(3, drop=0.05)             # beyond: back to round 2, log step halved
    assert rate.good_round == 2
    assert rate.step == pytest.approx(1 - 0.7 ** 0.75)


def test_adaptive_rate_defaults_start_at_20_percent_and_grow_to_45_at_most():
    rate = budget.AdaptiveRate(budget=0.01)
    assert rate.step == 0.2
    rate.update(1, drop=0.0)
    assert rate.step == pytest.approx(1 - 0.8 ** 1.25)
    for r in range(2, 8):
        rate.update(r, drop=0.0)
    assert rate.step == 0.45


def test_adaptive_rate_is_done_when_its_smallest_step_breaks_the_budget():
    rate = budget.AdaptiveRate(budget=0.01, step=0.3, min_step=0.1)
    steps = []
    while not rate.done:
        steps.append(rate.step)
        rate.update(len(steps), drop=1.0)
    # 0.3 -> 0.163 -> 0.085, held at 0.1, which breaks the budget too
    assert steps == pytest.approx([0.3, 1 - 0.7 ** 0.5, 0.1]) and rate.good_round == 0


def test_adaptive_rate_keeps_its_smallest_step_while_rounds_pass():
    rate = budget.AdaptiveRate(budget=0.01, step=0.1, min_step=0.1)
    rate.update(1, drop=0.009)            # within the budget, without margin
    assert not rate.done and rate.step == pytest.approx(0.1) and rate.good_round == 1


def test_adaptive_rate_state_round_trips():
    rate = budget.AdaptiveRate(budget=0.02, step=0.4)
    rate.update(1, 0.0)
    assert budget.AdaptiveRate(**rate.state()) == rate


@pytest.mark.parametrize("step", [0.0, 1.0, -0.1])
def test_adaptive_rate_refuses_steps_outside_0_1(step):
    with pytest.raises(ValueError, match="Argument `step`"):
        budget.AdaptiveRate(budget=0.01, step=step)


def test_allr_start_scales_with_the_norm_drop_and_is_clipped():
    # Zimmer et al.: d / sqrt(step) * peak, within [min(E_r / E_dense, 1) * peak, peak].
    assert budget.allr_start(1.0, 0.2, 0.25, 1, 100) == pytest.approx(0.4)
    assert budget.allr_start(1.0, 0.9, 0.25, 1, 100) == 1.0
    assert budget.allr_start(1.0, 0.01, 0.25, 5, 10) == 0.5
    assert math.isclose(budget.allr_start(2e-3, 0.0, 0.2, 2, 20), 2e-4)
