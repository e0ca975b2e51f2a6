"""tfimp: Iterative Magnitude Pruning for Keras 3, to verified TFLite models on the device.

The public API is re-exported here. Sub-packages that pull in optional runtimes
(`tfimp.export`, `tfimp.profile`, `tfimp.data`, `tfimp.bundle`) load on first use.
"""

import importlib

__version__ = "0.1.0"

_LAZY_SUBMODULES = (
    "bundle",
    "callbacks",
    "cli",
    "data",
    "export",
    "imp",
    "masks",
    "profile",
    "prune",
    "schedules",
    "wrappers",
)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"tfimp.{name}")
    raise AttributeError(f"module 'tfimp' has no attribute {name!r}")
