"""`tfimp search`: an Optuna study over a recipe's IMP settings (strategy, rate or adaptive,
rounds, rewind, allocation, granularity, distillation, QAT, epochs), every trial an ordinary
`tfimp run` folder; a Pareto front of accuracy drop, bytes and latency (NSGA-II), or one
objective within the accuracy budget with pruning on round metrics. Workers are processes on
this machine, on other machines sharing a database, or the trials of a Ray cluster.

Needs `pip install 'tfimp[search]'` (Optuna), and `tfimp[ray]` for Ray Tune; nothing here
imports them, or TensorFlow, until a search runs.

    tfimp.search("mnist1d_cnn", trials=24, workers=2)
"""

import sys
import types

__all__ = ["search"]


def search(recipe, words=(), **kwargs):
    """Runs a search; see `tfimp.search.engine.search`."""
    from tfimp.search.engine import search as run

    return run(recipe, words, **kwargs)


class _CallableModule(types.ModuleType):
    # `tfimp.search` is this package once any of its modules is imported, so the package
    # itself answers `tfimp.search(...)`.
    def __call__(self, recipe, words=(), **kwargs):
        return search(recipe, words, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
