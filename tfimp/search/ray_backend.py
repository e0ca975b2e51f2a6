"""`tfimp search --ray ADDRESS`: the same trials as Ray Tune trials on a Ray cluster.

Ray Tune's `OptunaSearch` proposes the values (NSGA-II for a Pareto front, TPE for one
objective, with ASHA stopping trials on their round metrics), one CPU per trial as Ray
places it; a trial whose worker dies is restarted by Tune and resumes its run folder (named
by the Tune trial). Finished trials are then written to the search's Optuna storage, so the
report and `tfimp run --from-search` read them as they read any search.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfimp.search import objectives as obj
from tfimp.search import study as study_lib
from tfimp.search.space import resolve

__all__ = ["run"]

ROUND_KEY = "round_value"


def _trainable(p):
    def trainable(config):
        from ray import tune

        values = {d.key: config[d.key] for d in p.space.dims}
        recipe, kept = resolve(p.space, values)
        if p.settings.smoke:
            recipe = recipe.smoke_recipe()
        folder = Path(p.workdir) / "trials" / f"ray-{tune.get_context().get_trial_id()}"
        folder.mkdir(parents=True, exist_ok=True)
        state: dict = {}
        objective = p.settings.objectives[0]

        def on_round(row, dense):
            if p.single and row["round"] > 0:
                tune.report({objective: obj.round_value(objective, row, dense, recipe, state),
                             ROUND_KEY: row["round"]})

        report, seconds = obj.run_trial(recipe, folder, on_round, folder / "log.txt")
        metrics = obj.measure(report)
        tune.report({**{k: val for k, val in metrics.items() if val is not None},
                     "overrides": obj.overrides_text(kept), "run_dir": str(folder),
                     "seconds": seconds, "final": 1, ROUND_KEY: 10**6})

    return trainable


class _DefineByRun:
    """The space as Tune's `OptunaSearch` takes it (picklable: Tune saves its searcher)."""

    def __init__(self, space):
        self.space = space

    def __call__(self, trial):
        self.space.sample(trial)


class _Lock:
    """A lock that pickles as a new lock: Tune pickles its searcher, and Optuna's genetic
    samplers hold a `threading.Lock`."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def __reduce__(self):
        return (_Lock, ())


def _sampler(p):
    sampler = study_lib.make_sampler(p.settings, p.settings.seed)
    if hasattr(sampler, "_thread_lock"):
        sampler._thread_lock = _Lock()
    return sampler


def _distributions(space) -> dict:
    import optuna.distributions as d

    out = {}
    for dim in space.dims:
        if dim.choices is not None:
            out[dim.key] = d.CategoricalDistribution(list(dim.choices))
        elif dim.integer:
            out[dim.key] = d.IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step or 1)
        else:
            out[dim.key] = d.FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
    return out


def run(p, store) -> None:
    """Runs the plan's remaining trials on the Ray cluster at `p.ray`, then records them."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    study = study_lib.open_study(store, p.settings, p.study)
    done, _ = study_lib.progress(study, p.settings.trials)
    remaining = p.settings.trials - done
    if remaining <= 0:
        return
    env = {k: os.environ[k] for k in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL") if k in os.environ}
    ray.init(address=p.ray, runtime_env={"env_vars": env} if env else None,
             log_to_driver=False, logging_level="ERROR")
    try:
        objectives = list(p.settings.objectives)
        searcher = OptunaSearch(
            space=_DefineByRun(p.space),
            metric=objectives if len(objectives) > 1 else objectives[0],
            mode=["min"] * len(objectives) if len(objectives) > 1 else "min",
            sampler=_sampler(p))
        scheduler = ASHAScheduler(metric=objectives[0], mode="min", time_attr=ROUND_KEY,
                                  max_t=10**6, grace_period=1) if p.single else None
        p.workdir.mkdir(parents=True, exist_ok=True)
        tuner = tune.Tuner(
            tune.with_resources(_trainable(p), {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=remaining),
            run_config=tune.RunConfig(storage_path=str(p.workdir.resolve() / "ray"),
                                      name="tfimp-search", verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=2)))
        results = tuner.fit()
        _record(study, p, results)
    finally:
        ray.shutdown()


def _record(study, p, results) -> None:
    import optuna

    dists = _distributions(p.space)
    for result in results:
        config, metrics = result.config or {}, dict(result.metrics or {})
        params = {k: config[k] for k in dists if k in config}
        attrs = {"overrides": metrics.pop("overrides", []), "run_dir": metrics.pop("run_dir", ""),
                 "seconds": metrics.pop("seconds", None), "ray_trial": result.path}
        if result.error is not None:
            state, values = optuna.trial.TrialState.FAIL, None
            attrs["error"] = str(result.error).splitlines()[0][:500] if str(result.error) \
                else type(result.error).__name__
        elif not metrics.get("final"):
            state, values = optuna.trial.TrialState.PRUNED, None
        else:
            state = optuna.trial.TrialState.COMPLETE
            values = [float(metrics[o]) for o in p.settings.objectives]
            keep = ("drop", "bytes", "flash", "latency", "density", "epochs", "sparsity",
                    "metric", "dense_metric", "fits")
            attrs["metrics"] = {k: metrics.get(k) for k in keep}
            attrs["constraints"] = obj.constraints(attrs["metrics"], p.space.recipe.imp.budget,
                                                   p.single)
        study.add_trial(optuna.trial.create_trial(
            state=state, values=values, params=params,
            distributions={k: dists[k] for k in params}, user_attrs=attrs))
        done = "  ".join(f"{o}={val:.6g}" for o, val in zip(p.settings.objectives, values or ()))
        print(f"ray trial {Path(result.path).name}: {state.name.lower()} {done}"
              f"{attrs.get('error', '')}".rstrip(), flush=True)
