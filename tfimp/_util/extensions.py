"""The modules that register strategies with lower packages, loaded by name.

A lower package never imports the packages above it: the sparsity engine looks channel
granularity up in `tfimp.sparsity.strategies`, where `tfimp.structure.masking` registers it,
and asks the strip hooks that `tfimp.quantization.qat` adds. These modules register when
imported, and a lookup that misses loads them (`load`), so whatever the user imported, the
first `prune(..., granularity="channel")` or `strip` finds them. (Not when Keras loads: that
may happen while the sparsity engine itself is still being imported.)

Standard library only.
"""

from __future__ import annotations

import importlib

# A test checks that every module calling a `register_*` of tfimp.sparsity.strategies is here.
EXTENSION_MODULES = ("tfimp.structure.masking", "tfimp.quantization.qat")

_loaded = False


def load() -> None:
    """Imports every extension module; after the first success, does nothing."""
    global _loaded
    if _loaded:
        return
    for name in EXTENSION_MODULES:
        importlib.import_module(name)
    _loaded = True
