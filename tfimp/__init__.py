"""tfimp: Iterative Magnitude Pruning for Keras 3, to verified TFLite models on the device.

The public API is re-exported here. Sub-packages that pull in optional runtimes
(`tfimp.export`, `tfimp.profile`, `tfimp.data`, `tfimp.bundle`) load on first use.
"""

import importlib

__version__ = "0.1.0"

# `prune` and `imp` are both a module and the function users call; importing the functions
# eagerly keeps `tfimp.prune(...)` the function after `tfimp.prune` (the module) is loaded.
from tfimp.prune import prune
from tfimp.imp import imp

_LAZY = {
    # name: (module, attribute or None for the module itself)
    "strip": ("tfimp.prune", "strip"),
    "is_pruned": ("tfimp.prune", "is_pruned"),
    "update_masks": ("tfimp.prune", "update_masks"),
    "apply_masks": ("tfimp.prune", "apply_masks"),
    "get_masks": ("tfimp.prune", "get_masks"),
    "set_masks": ("tfimp.prune", "set_masks"),
    "sparsity_report": ("tfimp.prune", "sparsity_report"),
    "ConstantSparsity": ("tfimp.schedules", "ConstantSparsity"),
    "PolynomialDecay": ("tfimp.schedules", "PolynomialDecay"),
    "OneShot": ("tfimp.schedules", "OneShot"),
    "PruneLowMagnitude": ("tfimp.wrappers", "PruneLowMagnitude"),
    "sensitivity": ("tfimp.sensitivity", "sensitivity"),
}
_SUBMODULES = ("audio", "bundle", "callbacks", "cli", "data", "export", "masks", "models",
               "profile", "recipe", "runner", "schedules", "sensitivity", "wrappers")


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tfimp.{name}")
    raise AttributeError(f"module 'tfimp' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + list(_SUBMODULES))
