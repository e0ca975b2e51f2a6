"""The Optuna study of `tfimp search`: its storage, its trials' slots, and one worker's loop.

A study of N trials has N slots. A new trial takes the next slot (its number less the retries
created before it, so two workers never take the same one); a slot is done once one of its
trials completed, was pruned or failed with its own error. A trial whose worker died (its
heartbeat went stale, or the worker was interrupted) leaves its slot open: the next worker
to look re-queues it with the same values, and the retry resumes the slot's run folder. Of
two retries of one slot only one runs. Values are sampled with a seed derived from the
slot, so a fixed-seed study proposes the same values whichever worker runs which slot.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from tfimp._util import validate as v

__all__ = ["Settings", "open_study", "slots", "work"]

STUDY = "tfimp-search"
MAX_ATTEMPTS = 3  # a slot whose worker died this often is recorded as failed


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every worker of one study must agree on (stored with the study)."""

    recipe: str
    digest: str
    space: dict
    objectives: tuple[str, ...]
    trials: int
    smoke: bool
    seed: int
    fixed: tuple[str, ...] = ()

    def meta(self) -> dict:
        return {"recipe": self.recipe, "digest": self.digest, "space": self.space,
                "objectives": list(self.objectives), "smoke": self.smoke, "seed": self.seed,
                "fixed": list(self.fixed)}


def storage(url: str, heartbeat: float):
    """An Optuna RDB storage with heartbeats; raises ValueError when it cannot be reached."""
    import warnings

    import optuna
    import sqlalchemy.exc

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {
        "pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs,
                                              heartbeat_interval=max(1, int(heartbeat)),
                                              grace_period=max(2, int(4 * heartbeat)))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # Workers started together on a new database race to create its tables.
            if attempt == 4 or "exist" not in str(e) and "duplicate" not in str(e):
                raise v.InvalidArgumentError(
                    f"Argument `storage` must be a database URL Optuna can use ("
                    f"{' '.join(str(e).split())[:300]}). Received: storage="
                    f"{_safe_url(url)!r}") from None
            time.sleep(1 + attempt)
        except (sqlalchemy.exc.SQLAlchemyError, ModuleNotFoundError, ImportError,
                ValueError) as e:
            text = " ".join(str(e).split("\n")[0].split())[:300]
            v.fail("storage", _safe_url(url), f"a database URL Optuna can reach ({text})")


def _safe_url(url: str) -> str:
    """`url` without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}:***@{tail}" if ":" in user else url


def check_storage(store, settings: Settings, name: str = STUDY) -> None:
    """Raises ValueError when the storage holds a study `name` of other settings."""
    import optuna

    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        if summary.study_name != name:
            continue
        theirs = summary.user_attrs.get("settings", {})
        if theirs.get("recipe") != settings.recipe:
            v.fail("storage", f"study {name!r} of recipe {theirs.get('recipe')!r}",
                   f"a storage without a study of another recipe under that name (this search "
                   f"is of {settings.recipe!r}): pass another --storage, --workdir or --study")
        mine = settings.meta()
        changed = sorted(k for k in mine if theirs.get(k) != mine[k])
        if changed:
            v.fail("storage", f"study {name!r}", f"a study with the same settings to resume "
                   f"(it differs in {', '.join(changed)}): pass another --storage, --workdir "
                   "or --study")


def open_study(store, settings: Settings, name: str = STUDY):
    """Creates or loads the study (checked with `check_storage` first)."""
    import optuna

    check_storage(store, settings, name)
    study = optuna.create_study(storage=store, study_name=name, load_if_exists=True,
                                directions=["minimize"] * len(settings.objectives),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3,
                                                                   n_warmup_steps=1))
    if "settings" not in study.user_attrs:
        study.set_user_attr("settings", settings.meta())
    return study


def make_sampler(settings: Settings, seed: int):
    import optuna

    if len(settings.objectives) > 1:
        population = min(50, max(4, settings.trials // 2))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    return optuna.samplers.TPESampler(seed=seed,
                                      n_startup_trials=min(10, max(2, settings.trials // 3)))


# --- slots


def _is_retry(t) -> bool:
    return "retry_of" in t.user_attrs


def slots(trials, n: int) -> dict:
    """Slot -> its trials, from a study's trials (retries carry their slot; new trials'
    slot is their number less the retries numbered below them)."""
    out: dict[int, list] = {}
    retries = 0
    for t in sorted(trials, key=lambda t: t.number):
        if _is_retry(t):
            slot = int(t.user_attrs["slot"])
            retries += 1
        else:
            slot = t.number - retries
        if "surplus" not in t.user_attrs:
            out.setdefault(slot, []).append(t)
    return {s: ts for s, ts in out.items() if s < n}


def final(trial_list):
    """The trial that settles a slot (completed, pruned or failed with its error), or None."""
    import optuna

    S = optuna.trial.TrialState
    for t in trial_list:
        if t.state in (S.COMPLETE, S.PRUNED) or (t.state == S.FAIL and "error" in t.user_attrs):
            return t
    if sum(t.state == S.FAIL for t in trial_list) >= MAX_ATTEMPTS:
        return trial_list[-1]
    return None


def _live(t) -> bool:
    import optuna

    return t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def progress(study, n: int) -> tuple[int, dict]:
    """How many slots are done, and the slots table."""
    table = slots(study.get_trials(deepcopy=False), n)
    return sum(final(ts) is not None for ts in table.values()), table


def requeue(study, table: dict) -> None:
    """Queues a retry of every slot whose trials all died without a result."""
    for slot, ts in table.items():
        if final(ts) is None and not any(_live(t) for t in ts):
            last = ts[-1]
            study.enqueue_trial(dict(last.params), user_attrs={
                "slot": slot, "retry_of": last.number}, skip_if_exists=False)


class Surplus(Exception):
    """This trial is not needed: its slot is beyond the study's trials or already taken."""


def claim(study, trial, n: int) -> int:
    """The slot `trial` runs; raises Surplus when it must not run."""
    table = slots(study.get_trials(deepcopy=False), 10**9)
    if not _is_retry(trial):
        slot = next(s for s, ts in table.items() if any(t.number == trial.number for t in ts))
        if slot >= n:
            raise Surplus(slot)
        trial.set_user_attr("slot", slot)
        return slot
    slot = int(trial.user_attrs["slot"])
    for t in table.get(slot, []):
        if t.number == trial.number:
            continue
        lower_waiting = t.state.name == "WAITING" and t.number < trial.number
        if final([t]) is not None or t.state.name == "RUNNING" or lower_waiting:
            raise Surplus(slot)
    return slot


def work(study, settings: Settings, objective, heartbeat: float, on_idle=None) -> None:
    """One worker: runs trials until every slot of the study is done.

    `objective(trial, slot)` returns the trial's values (raising to fail or prune it).
    """
    import optuna

    n = settings.trials

    def run(trial):
        try:
            slot = claim(study, trial, n)
        except Surplus:
            trial.set_user_attr("surplus", True)
            raise
        study.sampler = make_sampler(settings, settings.seed + slot)
        return objective(trial, slot)

    while True:
        optuna.storages.fail_stale_trials(study)
        done, table = progress(study, n)
        if done >= n:
            return
        requeue(study, table)
        waiting = any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))
        new = len([t for t in study.get_trials(deepcopy=False) if not _is_retry(t)])
        if waiting or new < n:
            study.sampler = make_sampler(settings, settings.seed + new)
            study.optimize(run, n_trials=1, catch=(Exception,), gc_after_trial=True)
        else:
            if on_idle is not None:
                on_idle()
            time.sleep(heartbeat)


def trial_dir(workdir: Path, slot: int) -> Path:
    return Path(workdir) / "trials" / f"{slot:03d}"
