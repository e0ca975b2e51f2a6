"""tfimp: Iterative Magnitude Pruning for Keras 3, to verified TFLite models on the device.

The public API is re-exported here. Sub-packages that pull in optional runtimes
(`tfimp.export`, `tfimp.profile`, `tfimp.data`, `tfimp.bundle`) load on first use.
"""

import importlib

__version__ = "0.1.0"

# Everything loads on first use, so `import tfimp` and `tfimp --help` stay fast. No module
# shares a name with a function here (`tfimp.prune` lives in `pruning`, `tfimp.imp` in
# `iterative`, `tfimp.sensitivity` in `layer_sensitivity`): loading a submodule sets the
# package attribute of its name, which would hide the function.
_LAZY = {
    "prune": ("tfimp.pruning", "prune"),
    "imp": ("tfimp.iterative", "imp"),
    "strip": ("tfimp.pruning", "strip"),
    "is_pruned": ("tfimp.pruning", "is_pruned"),
    "update_masks": ("tfimp.pruning", "update_masks"),
    "apply_masks": ("tfimp.pruning", "apply_masks"),
    "get_masks": ("tfimp.pruning", "get_masks"),
    "set_masks": ("tfimp.pruning", "set_masks"),
    "sparsity_report": ("tfimp.pruning", "sparsity_report"),
    "ConstantSparsity": ("tfimp.schedules", "ConstantSparsity"),
    "PolynomialDecay": ("tfimp.schedules", "PolynomialDecay"),
    "OneShot": ("tfimp.schedules", "OneShot"),
    "PruneLowMagnitude": ("tfimp.wrappers", "PruneLowMagnitude"),
    "sensitivity": ("tfimp.layer_sensitivity", "sensitivity"),
}
_SUBMODULES = ("audio", "bundle", "callbacks", "cli", "data", "export", "iterative",
               "layer_sensitivity", "masks", "models", "profile", "pruning", "recipe", "runner",
               "schedules", "wrappers")


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
