"""One-shot hooks around a module's first import: order, self-removal, the module's own loader."""

import importlib
import sys

import pytest

from tfimp._util import import_hooks


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("hooked_")]:
        del sys.modules[name]


def test_around_runs_the_import_once_and_the_hook_goes_away(module_dir):
    (module_dir / "hooked_a.py").write_text("import sys\nsys.hooked_events.append('exec')\n")
    sys.hooked_events = events = []

    def around(load):
        events.append("before")
        load()
        events.append("after")

    import_hooks.around_first_import("hooked_a", around)
    assert import_hooks.pending("hooked_a")
    module = importlib.import_module("hooked_a")
    assert events == ["before", "exec", "after"]
    assert not import_hooks.pending("hooked_a")
    assert module.__loader__ is module.__spec__.loader
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    importlib.reload(module)
    assert events == ["before", "exec", "after", "exec"]
    del sys.hooked_events


def test_a_failing_import_propagates_and_leaves_no_hook(module_dir):
    (module_dir / "hooked_b.py").write_text("raise RuntimeError('broken module')\n")
    import_hooks.around_first_import("hooked_b", lambda load: load())
    with pytest.raises(RuntimeError, match="broken module"):
        importlib.import_module("hooked_b")
    assert not import_hooks.pending("hooked_b")


def test_only_modules_not_yet_imported(module_dir):
    with pytest.raises(ValueError, match="Received: name='os'"):
        import_hooks.around_first_import("os", lambda load: load())
    with pytest.raises(ValueError, match="top-level"):
        import_hooks.around_first_import("hooked_c.sub", lambda load: load())
    import_hooks.around_first_import("hooked_missing", lambda load: load())
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hooked_missing")
    assert not import_hooks.pending("hooked_missing")
