"""`tfimp.search(...)`: an Optuna study over a recipe's IMP settings, each trial an ordinary
run folder, on this machine's processes, any database Optuna takes, or a Ray cluster."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from tfimp._util import validate as v
from tfimp.pipeline.recipe import Recipe, load_recipe
from tfimp.search import objectives as obj
from tfimp.search import report as report_lib
from tfimp.search import study as study_lib
from tfimp.search.space import Space, parse_space, resolve

__all__ = ["Plan", "plan", "search"]

HEARTBEAT = 5.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """A checked search: nothing is written until `search` runs it."""

    space: Space
    settings: study_lib.Settings
    workdir: Path
    storage: str
    study: str
    workers: int
    ray: str | None
    heartbeat: float

    @property
    def single(self) -> bool:
        return len(self.settings.objectives) == 1


def plan(recipe: Recipe | str, words=(), *, trials: int = 12, workers: int = 1,
         storage: str | None = None, study: str | None = None, ray: str | None = None,
         objective="drop,bytes,latency", board: str | None = None, smoke: bool = False,
         workdir=None, seed: int = 0, heartbeat: float = HEARTBEAT) -> Plan:
    """Checks every argument of a search (raising ValueError with one clear line)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    words = list(words)
    if board is not None:
        words.append(f"profile.board={board}")
    space = parse_space(recipe, words)
    objectives = obj.parse_objectives(objective)
    v.positive_int("trials", trials)
    v.positive_int("workers", workers)
    v.integer("seed", seed, 0)
    v.positive_number("heartbeat", heartbeat)
    if "flash" in objectives and not space.recipe.profile.micro:
        v.fail("objective", objective, "objectives the recipe measures (flash needs "
               "profile.micro=true)")
    workdir = Path(workdir or Path("runs") / f"search-{recipe.name}")
    v.output_folder("workdir", workdir)
    if storage is None:
        storage = _default_storage(workdir)
    elif not isinstance(storage, str) or "://" not in storage:
        v.fail("storage", storage, "a database URL, e.g. postgresql://user@host/db or "
               "sqlite:///path/study.db")
    if ray is not None:
        _check_ray_address(ray)
        if workers != 1:
            v.fail("workers", workers, "1 with --ray (the Ray cluster runs the trials in "
                   "parallel)")
    fixed = tuple(w for w in words if w.partition("=")[2] and "," not in w and ".." not in w)
    settings = study_lib.Settings(recipe.name, space.recipe.digest(), space.to_dict(),
                                  objectives, trials, bool(smoke), seed, fixed)
    return Plan(space, settings, workdir, storage, study or study_lib.STUDY, workers, ray,
                float(heartbeat))


def _check_ray_address(address: str) -> None:
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        v.fail("ray", address, "a Ray cluster address HOST:PORT (e.g. 127.0.0.1:6379) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        v.fail("ray", address, f"the address of a running Ray head ({e.strerror or e})")


def search(recipe: Recipe | str, words=(), *, command_argv: list[str] | None = None,
           **kwargs) -> report_lib.SearchReport:
    """Runs a search over `recipe`'s IMP settings and writes its report.

    Args:
        recipe: a `Recipe`, or a recipe name / path.
        words: space changes: `KEY=A,B` choices, `KEY=LOW..HIGH` a range, `KEY=VALUE` fixed.
        command_argv: the `tfimp search` arguments, for workers started as processes (from
            Python, `workers=1`: start more workers as `tfimp search` commands sharing the
            storage).
        **kwargs: `plan`'s keyword arguments: trials, workers, storage, study, ray,
            objective, board, smoke, workdir, seed, heartbeat.

    Returns:
        The `SearchReport` (also written to `WORKDIR/report/`).
    """
    p = plan(recipe, words, **kwargs)
    if p.workers > 1 and command_argv is None:
        v.fail("workers", p.workers, "1 when called from Python (worker processes run the "
               "`tfimp search` command: start more of them with the same --storage)")
    store = _open_storage(p)
    study_lib.check_storage(store, p.settings, p.study)
    if p.ray is not None:
        from tfimp.search import ray_backend

        ray_backend.run(p, store)
    else:
        _run_workers(p, store, command_argv)
    return report_lib.write(p, study_lib.open_study(store, p.settings, p.study))


def work_only(recipe: Recipe | str, words=(), **kwargs) -> None:
    """One worker of a search that another process reports on."""
    p = plan(recipe, words, **kwargs)
    _run_workers(p, _open_storage(p), None)


def _open_storage(p: Plan):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if p.storage == _default_storage(p.workdir):
        p.workdir.mkdir(parents=True, exist_ok=True)
    return study_lib.storage(p.storage, p.heartbeat)


def _default_storage(workdir: Path) -> str:
    return f"sqlite:///{workdir.resolve() / 'study.db'}"


def _run_workers(p: Plan, store, argv: list[str] | None) -> None:
    p.workdir.mkdir(parents=True, exist_ok=True)
    study = study_lib.open_study(store, p.settings, p.study)
    children = []
    if p.workers > 1 and argv is not None:
        cmd = [sys.executable, "-m", "tfimp.cli", "search", *_worker_argv(argv, p)]
        children = [subprocess.Popen(cmd) for _ in range(p.workers - 1)]
    try:
        study_lib.work(study, p.settings, _objective(p, study), p.heartbeat)
    finally:
        for child in children:
            child.wait()


def _worker_argv(argv: list[str], p: Plan) -> list[str]:
    """`argv` with one worker, this plan's storage, and no report of its own."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--workers", "--storage"):
            skip = True
            continue
        if a.startswith(("--workers=", "--storage=")):
            continue
        out.append(a)
    return [*out, "--workers", "1", "--storage", p.storage, "--no-report"]


def _objective(p: Plan, study):
    import optuna

    def objective(trial, slot: int):
        start = time.time()
        values = p.space.sample(trial)
        recipe, kept = resolve(p.space, values)
        if p.settings.smoke:
            recipe = recipe.smoke_recipe()
        trial.set_user_attr("overrides", obj.overrides_text(kept))
        folder = study_lib.trial_dir(p.workdir, slot)
        folder.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("run_dir", str(folder))
        state: dict = {}

        def on_round(row, dense):
            if not p.single or row["round"] == 0:
                return
            trial.report(obj.round_value(p.settings.objectives[0], row, dense, recipe, state),
                         row["round"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"round {row['round']}")

        try:
            report, seconds = obj.run_trial(recipe, folder, on_round, folder / "log.txt")
            metrics = obj.measure(report)
            missing = [o for o in p.settings.objectives if metrics.get(o) is None]
            if missing:
                raise RuntimeError(f"objective {', '.join(missing)} not measured: "
                                   f"{'; '.join(report.errors) or 'no value'}")
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.time() - start)
            _line(study, p, slot, "pruned", "")
            raise
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:500])
            trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            _line(study, p, slot, "failed", f"{type(e).__name__}: {e}".splitlines()[0][:120])
            raise
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("seconds", time.time() - start)
        limits = obj.constraints(metrics, recipe.imp.budget, p.single)
        trial.set_user_attr("constraints", limits)
        for key, value in limits.items():
            trial.set_constraint(key, value)
        _line(study, p, slot, "done", "  ".join(
            f"{o}={report_lib.fmt(o, metrics[o])}" for o in p.settings.objectives)
            + f"  ({seconds:.0f} s)")
        return tuple(float(metrics[o]) for o in p.settings.objectives)

    return objective


def _line(study, p: Plan, slot: int, what: str, text: str) -> None:
    """One line per finished trial, with a bar of the study's progress."""
    done, _ = study_lib.progress(study, p.settings.trials)
    done = min(done + 1, p.settings.trials)
    n = p.settings.trials
    width = 20
    bar = "#" * (width * done // n) + "-" * (width - width * done // n)
    print(f"[{bar}] {done}/{n} trial {slot}: {what} {text} (worker {os.getpid()})".rstrip(),
          flush=True)
