"""Structured pruning: whole channels, found from the Keras graph and removed by `shrink`.

`graph.trace` finds the channels that must go together (dependency groups), `channels` holds
the pure scoring and masking functions and the `Channels` granularity, `masking` backs
`tfimp.prune(..., granularity="channel")` (a strategy it registers with the sparsity engine,
which imports nothing from here), `shrink.shrink` (`tfimp.shrink`) builds the smaller model and
`report.structure_report` compares channels, parameters and MACs. Names load on first use, so
`import tfimp.structure` stays light.
"""

import importlib

# `shrink` is left out: the submodule of that name would hide the function once imported.
_LAZY = {
    "Channels": ("tfimp.structure.channels", "Channels"),
    "trace": ("tfimp.structure.graph", "trace"),
    "structure_report": ("tfimp.structure.report", "structure_report"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tfimp.structure' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
