"""One-shot hooks around the first import of a top-level module (standard library only).

`around_first_import("keras", around)` makes the next `import keras` execute the package as
`around(load)`: `load()` runs Keras's own loader, and `around` may do work before and after it.
The hook removes itself when it fires, and the module keeps its own loader, so nothing outside
that one call sees a difference.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Callable

Around = Callable[[Callable[[], None]], None]

_lock = threading.Lock()


class _WrappingLoader(importlib.abc.Loader):
    def __init__(self, loader, around: Around):
        self._loader, self._around = loader, around

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self._loader
        self._around(lambda: self._loader.exec_module(module))

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _FirstImportHook(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, around: Around):
        self.name, self.around = name, around

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        remove(self.name)
        spec = _find_with_the_other_finders(fullname, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _WrappingLoader(spec.loader, self.around)
        return spec


def _find_with_the_other_finders(fullname, path, target):
    for finder in list(sys.meta_path):
        find = getattr(finder, "find_spec", None)
        spec = find(fullname, path, target) if find else None
        if spec is not None:
            return spec
    return None


def _hooks(name: str) -> list[_FirstImportHook]:
    return [f for f in sys.meta_path if isinstance(f, _FirstImportHook) and f.name == name]


def around_first_import(name: str, around: Around) -> None:
    """Runs the next import of the top-level module `name` as `around(load)`.

    Args:
        name: a top-level module that is not imported yet, e.g. `"keras"`.
        around: called with `load`, which executes the module; it must call `load()` once
            and let its exceptions propagate.

    Raises:
        ValueError: `name` is already imported, or names a submodule.
    """
    if "." in name or name in sys.modules:
        raise ValueError(f"Argument `name` must be a top-level module that is not imported yet. "
                         f"Received: name={name!r}")
    with _lock:
        if not _hooks(name):
            sys.meta_path.insert(0, _FirstImportHook(name, around))


def remove(name: str) -> None:
    """Removes the pending hook on `name`, if any."""
    with _lock:
        for hook in _hooks(name):
            sys.meta_path.remove(hook)


def pending(name: str) -> bool:
    """Whether a hook waits for the first import of `name`."""
    return bool(_hooks(name))
