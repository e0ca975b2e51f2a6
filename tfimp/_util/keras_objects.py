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
import importlib.abc
import sys
import threading
import warnings

# Every module that calls `keras.saving.register_keras_serializable`; a test keeps it complete.
KERAS_OBJECT_MODULES = ("tfimp.sparsity.wrapper", "tfimp.models")

_lock = threading.Lock()


def register_keras_objects() -> None:
    """Imports every module that registers a tfimp class with Keras (this imports Keras)."""
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)


def _register_after_keras() -> None:
    try:
        register_keras_objects()
    except Exception as e:  # a broken tfimp module must not break `import keras`
        warnings.warn(f"tfimp could not register its Keras classes ({type(e).__name__}: {e}); "
                      "saved pruned models will not load until `import tfimp.sparsity.wrapper` works.",
                      RuntimeWarning, stacklevel=2)


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader of `keras`, then registers tfimp's classes."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # Keras keeps its own loader: nothing outside this call sees the wrapper.
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _register_after_keras()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds `keras` with the other finders and wraps its loader; removes itself on first use."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        uninstall()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def _installed() -> list:
    return [f for f in sys.meta_path if isinstance(f, _KerasImportHook)]


def uninstall() -> None:
    """Removes the import hook (it removes itself once Keras is imported)."""
    with _lock:
        for hook in _installed():
            sys.meta_path.remove(hook)


def register_when_keras_loads() -> None:
    """Registers tfimp's Keras classes now if Keras is loaded, else right after it loads."""
    if "keras" in sys.modules:
        _register_after_keras()
        return
    with _lock:
        if not _installed():
            sys.meta_path.insert(0, _KerasImportHook())
