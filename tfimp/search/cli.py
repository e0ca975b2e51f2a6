"""`tfimp search RECIPE [KEY=A,B | KEY=LOW..HIGH | KEY=VALUE ...] [options]`."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from tfimp._util import validate as v
from tfimp._util.cli import DEBUG_HELP, verb

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from tfimp.search.engine import HEARTBEAT
    from tfimp.search.objectives import OBJECTIVES

    p = argparse.ArgumentParser(
        prog="tfimp search",
        description="Search a recipe's IMP settings with Optuna: every trial is an ordinary "
                    "`tfimp run` folder under WORKDIR/trials/, the study's report (Pareto plot, "
                    "trial table, best point per budget) is WORKDIR/report/. Rerun the same "
                    "command to resume; start it on other machines with the same --storage "
                    "to add workers.", epilog=DEBUG_HELP)
    p.add_argument("recipe", help="a recipe name or recipes/NAME.py")
    p.add_argument("space", nargs="*", metavar="KEY=...",
                   help="change the space: KEY=A,B,C (choices), KEY=LOW..HIGH (a range), "
                        "KEY=VALUE (fix the field, e.g. seed=1)")
    p.add_argument("--trials", type=int, default=12, help="trials in the study (default 12)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this machine (default 1)")
    p.add_argument("--storage", default=None,
                   help="an Optuna database URL shared by the workers (default: "
                        "sqlite:///WORKDIR/study.db)")
    p.add_argument("--study", default=None, help="the study's name in the storage")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the trials on a Ray cluster (HOST:PORT of its head, or auto)")
    p.add_argument("--objective", default="drop,bytes,latency",
                   help=f"comma-separated among {', '.join(OBJECTIVES)}: several give a "
                        "Pareto front (NSGA-II), one is minimized within the recipe's accuracy "
                        "budget (TPE, median pruner on round metrics); default drop,bytes,latency")
    p.add_argument("--board", default=None,
                   help="a TFLite Micro board profile: trials must fit it (a device budget)")
    p.add_argument("--smoke", action="store_true", help="tiny, fast trials (for tests)")
    p.add_argument("--workdir", default=None,
                   help="the search's folder (default runs/search-RECIPE)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    p.add_argument("--heartbeat", type=float, default=HEARTBEAT,
                   help="seconds between a running trial's heartbeats; a trial silent for 4 "
                        f"of them is retried (default {HEARTBEAT:g})")
    p.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
    return p


def _need(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        v.fail("search", module, f"installed: pip install 'tfimp[{extra}]'")


@verb("tfimp search")
def main(argv: list[str]) -> int:
    args = _parser().parse_intermixed_args(argv)
    _need("optuna", "search")
    if args.ray is not None:
        _need("ray", "ray")
    from tfimp.search import engine

    kwargs = dict(trials=args.trials, workers=args.workers, storage=args.storage,
                  study=args.study, ray=args.ray, objective=args.objective, board=args.board,
                  smoke=args.smoke, workdir=args.workdir, seed=args.seed,
                  heartbeat=args.heartbeat)
    if args.no_report:
        engine.work_only(args.recipe, args.space, **kwargs)
        return 0
    report = engine.search(args.recipe, args.space, command_argv=list(argv), **kwargs)
    print(f"report folder: {report.report_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
