"""The parts of `tfimp search` that need no training: the space and how a trial's values
become a recipe, the study's slots (new trials, retries, surplus), the Pareto front and the
best point per budget."""

import pytest

optuna = pytest.importorskip("optuna")

from tfimp.pipeline.recipe import load_recipe  # noqa: E402
from tfimp.search import report as report_lib  # noqa: E402
from tfimp.search import study as study_lib  # noqa: E402
from tfimp.search.objectives import parse_objectives, round_value  # noqa: E402
from tfimp.search.space import parse_space, resolve  # noqa: E402

S = optuna.trial.TrialState


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("lenet_300_100")


def test_command_line_words_change_the_space(recipe):
    space = parse_space(recipe, ["imp.rate=0.2..0.6", "imp.scope=lamp,erk", "seed=2",
                                 "imp.strategy=imp"])
    dims = {d.key: d for d in space.dims}
    assert (dims["imp.rate"].low, dims["imp.rate"].high, dims["imp.rate"].choices) == (
        0.2, 0.6, None)
    assert dims["imp.scope"].choices == ("lamp", "erk")
    assert "imp.strategy" not in dims and space.recipe.imp.strategy == "imp"
    assert space.recipe.seed == 2 and "seed" not in dims
    assert list(dims)[0] == "imp.rate"  # the recipe's own order is kept


def test_a_recipe_tunes_its_space(recipe):
    tuned = recipe.override(search={"imp.distill": None, "imp.patience": [2, 4]})
    keys = [d.key for d in parse_space(tuned).dims]
    assert "imp.distill" not in keys and keys[-1] == "imp.patience"
    assert tuned.digest() == recipe.digest()  # not part of the run's identity


def test_values_the_earlier_ones_exclude_keep_the_recipe_value(recipe):
    space = parse_space(recipe)
    values = {"imp.strategy": "gradual", "imp.rate": "adaptive", "imp.distill": "dense",
              "imp.scope": "erk"}
    out, kept = resolve(space, values)
    assert kept == {"imp.strategy": "gradual", "imp.scope": "erk"}
    assert (out.imp.strategy, out.imp.rate, out.imp.distill, out.imp.scope) == (
        "gradual", recipe.imp.rate, None, "erk")


def test_objectives_parse():
    assert parse_objectives("drop, flash") == ("drop", "flash")
    for bad in ("", "drop,drop", "drop,size"):
        with pytest.raises(ValueError, match="objective"):
            parse_objectives(bad)


def test_round_value_is_the_sparsest_density_within_budget(recipe):
    state = {}
    rows = [{"round": 1, "sparsity": 0.5, "val_accuracy": 0.965},
            {"round": 2, "sparsity": 0.8, "val_accuracy": 0.90}]  # beyond the 1-point budget
    values = [round_value("density", r, 0.97, recipe, state) for r in rows]
    assert values == [pytest.approx(0.5), pytest.approx(0.5)]
    assert round_value("drop", rows[1], 0.97, recipe, {}) == pytest.approx(0.07)


def _study():
    return optuna.create_study(directions=["minimize"])


def _new(study, state=S.COMPLETE, **attrs):
    t = optuna.trial.create_trial(state=state, values=[1.0] if state == S.COMPLETE else None,
                                  params={}, distributions={}, user_attrs=attrs)
    study.add_trial(t)


def test_slots_of_new_trials_retries_and_surplus():
    study = _study()
    _new(study)                                   # 0: slot 0
    _new(study, S.FAIL)                           # 1: slot 1, its worker died
    _new(study, S.COMPLETE, slot=1, retry_of=1)   # 2: slot 1 again
    _new(study, S.FAIL, error="ValueError: x")    # 3: slot 2, failed on its own
    _new(study, S.FAIL, surplus=True)             # 4: slot 3 >= n: not counted
    table = study_lib.slots(study.get_trials(), 3)
    assert {s: [t.number for t in ts] for s, ts in table.items()} == {0: [0], 1: [1, 2],
                                                                         2: [3]}
    done, _ = study_lib.progress(study, 3)
    assert done == 3


def test_a_dead_trial_is_queued_again_once_with_its_values():
    study = _study()
    study.add_trial(optuna.trial.create_trial(
        state=S.FAIL, params={"imp.rate": 0.3},
        distributions={"imp.rate": optuna.distributions.CategoricalDistribution([0.3, 0.6])}))
    _new(study, S.FAIL, error="RuntimeError: diverged")
    _, table = study_lib.progress(study, 2)
    study_lib.requeue(study, table)
    waiting = [t for t in study.get_trials() if t.state == S.WAITING]
    assert len(waiting) == 1
    assert waiting[0].user_attrs == {"slot": 0, "retry_of": 0}
    assert waiting[0].system_attrs["fixed_params"] == {"imp.rate": 0.3}
    _, table = study_lib.progress(study, 2)
    study_lib.requeue(study, table)  # a queued retry is live: not queued twice
    assert sum(t.state == S.WAITING for t in study.get_trials()) == 1


def test_claim_refuses_surplus_and_a_second_retry():
    study = _study()
    for _ in range(2):
        _new(study)
    trial = study.ask()  # slot 2 of a 2-trial study
    with pytest.raises(study_lib.Surplus):
        study_lib.claim(study, trial, 2)
    study.tell(trial, state=S.FAIL)

    study = _study()
    _new(study, S.FAIL)                       # slot 0 died
    study.enqueue_trial({}, user_attrs={"slot": 0, "retry_of": 0})
    study.enqueue_trial({}, user_attrs={"slot": 0, "retry_of": 0})
    first, second = study.ask(), study.ask()
    with pytest.raises(study_lib.Surplus):
        study_lib.claim(study, second, 1)     # the lower-numbered retry is running
    second.set_user_attr("surplus", True)
    study.tell(second, state=S.FAIL)
    assert study_lib.claim(study, first, 1) == 0


def test_pareto_front_and_best_per_budget():
    def row(slot, drop, size, state="complete", feasible=True):
        return {"slot": slot, "state": state, "feasible": feasible,
                "metrics": {"drop": drop, "bytes": size}}

    table = [row(0, 0.0, 100), row(1, 0.005, 60), row(2, 0.02, 30), row(3, 0.01, 70),
             row(4, 0.0, 20, state="pruned"), row(5, 0.0, 10, feasible=False)]
    assert sorted(report_lib.pareto(table, ["drop", "bytes"])) == [0, 1, 2]
    best = report_lib.best_per_budget(table, ["drop", "bytes"], 0.01)
    assert best == {"0.005": 1, "0.01": 1, "0.02": 2, "0.05": 2}
