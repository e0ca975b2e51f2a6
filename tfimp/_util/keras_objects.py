"""Registers tfimp's Keras objects with Keras, without `import tfimp` importing Keras.

A saved pruned model names `tfimp>PruneLowMagnitude`, `tfimp>MaskConstraint` and other tfimp
classes; `keras.models.load_model` finds them only once the modules that define them have run
their `@keras.saving.register_keras_serializable`. `import tfimp` stays lazy (TensorFlow takes
seconds to load), so it cannot import those modules itself. Instead:

- if Keras is already imported, they are imported at once;
- otherwise a one-shot import hook runs them right after the `keras` package finishes loading,
  in whichever order the user imports things.

Standard library only: this module is imported by `tfimp/__init__.py`.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from tfimp._util import import_hooks

# Every module that calls `keras.saving.register_keras_serializable`; a test keeps it complete.
KERAS_OBJECT_MODULES = ("tfimp.sparsity.wrapper", "tfimp.models", "tfimp.clustering.constraint",
                        "tfimp.quantization.fake_quant", "tfimp.quantization.layers",
                        "tfimp.lottery.lr")


def register_keras_objects() -> None:
    """Imports every module that registers a tfimp class with Keras (this imports Keras)."""
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)


def _register_quietly() -> None:
    try:
        register_keras_objects()
    except Exception as e:  # a broken tfimp module must not break `import keras`
        warnings.warn(f"tfimp could not register its Keras classes ({type(e).__name__}: {e}); "
                      "saved pruned models will not load until `import "
                      f"{KERAS_OBJECT_MODULES[0]}` works.", RuntimeWarning, stacklevel=2)


def _load_then_register(load) -> None:
    load()
    _register_quietly()


def register_when_keras_loads() -> None:
    """Registers tfimp's Keras classes now if Keras is loaded, else right after it loads."""
    if "keras" in sys.modules:
        _register_quietly()
    else:
        import_hooks.around_first_import("keras", _load_then_register)
