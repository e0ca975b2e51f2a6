"""tfimp: Iterative Magnitude Pruning for Keras 3, to verified TFLite models on the device.

The public API is re-exported here and loads on first use, so `import tfimp` and
`tfimp --help` stay fast (nothing here imports TensorFlow until it is needed).

Packages: `sparsity` (schedules, masks, the wrapper, prune/strip), `lottery` (the IMP driver),
`structure` (channel dependency groups and `shrink`), `clustering` (zero-preserving weight
sharing), `quantization` (quantization-aware training that keeps the masks), `data`,
`models`, `pipeline` (recipes and `tfimp run`), `search` (`tfimp search`, also callable:
`tfimp.search("lenet_300_100", trials=12)`), `export`, `profile`, `bundle`.
"""

import importlib

from tfimp._util.errors import InvalidArgumentError, TfimpError
from tfimp._util.keras_objects import register_when_keras_loads as _register_when_keras_loads

__version__ = "0.1.0"

_LAZY = {
    "prune": ("tfimp.sparsity.engine", "prune"),
    "strip": ("tfimp.sparsity.engine", "strip"),
    "is_pruned": ("tfimp.sparsity.engine", "is_pruned"),
    "update_masks": ("tfimp.sparsity.engine", "update_masks"),
    "apply_masks": ("tfimp.sparsity.engine", "apply_masks"),
    "get_masks": ("tfimp.sparsity.engine", "get_masks"),
    "set_masks": ("tfimp.sparsity.engine", "set_masks"),
    "sparsity_report": ("tfimp.sparsity.report", "sparsity_report"),
    "Granularity": ("tfimp.sparsity.masks", "Granularity"),
    "ConstantSparsity": ("tfimp.sparsity.schedules", "ConstantSparsity"),
    "PolynomialDecay": ("tfimp.sparsity.schedules", "PolynomialDecay"),
    "OneShot": ("tfimp.sparsity.schedules", "OneShot"),
    "PruneLowMagnitude": ("tfimp.sparsity.wrapper", "PruneLowMagnitude"),
    "imp": ("tfimp.lottery.driver", "imp"),
    "IMPConfig": ("tfimp.lottery.config", "IMPConfig"),
    "IMPResult": ("tfimp.lottery.driver", "IMPResult"),
    "sensitivity": ("tfimp.lottery.sensitivity", "sensitivity"),
    "cluster": ("tfimp.clustering.engine", "cluster"),
    "shrink": ("tfimp.structure.shrink", "shrink"),
    "quantize_aware": ("tfimp.quantization.qat", "quantize_aware"),
    "structure_report": ("tfimp.structure.report", "structure_report"),
    "DeviceBudget": ("tfimp.device.budget", "DeviceBudget"),
}
_SUBMODULES = ("bundle", "callbacks", "cli", "clustering", "data", "device", "export", "lottery",
               "models", "pipeline", "profile", "quantization", "schedules", "search", "sparsity",
               "structure", "wrappers")

__all__ = ["InvalidArgumentError", "TfimpError", "__version__", *_LAZY, *_SUBMODULES]


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
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


# Saved pruned models name tfimp's Keras classes: register them as soon as Keras is loaded.
# Last, so that the registering modules see the complete package.
_register_when_keras_loads()
