"""Structured pruning: whole channels, found from the Keras graph and removed by `shrink`.

`graph.trace` finds the channels that must go together (dependency groups), `channels` holds
the pure scoring and masking functions, `pruning.prune_channels` backs
`tfimp.prune(..., granularity="channel")`, and `shrink.shrink` builds the smaller model.
Submodules load on first use (the wrapper imports `channels` and `registry` while the rest
imports the wrapper).
"""

import importlib

_LAZY = {
    "Channels": ("tfimp.structure.channels", "Channels"),
    "trace": ("tfimp.structure.graph", "trace"),
    "shrink": ("tfimp.structure.shrink", "shrink"),
    "structure_report": ("tfimp.structure.report", "structure_report"),
}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tfimp.structure' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
