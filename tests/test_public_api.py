"""The public namespace: functions stay functions whatever was imported before."""

import subprocess
import sys



def test_public_functions_survive_submodule_imports():
    import tfimp.lottery.driver  # noqa: F401
    import tfimp.lottery.sensitivity  # noqa: F401
    import tfimp.sparsity.engine  # noqa: F401

    for name in ("prune", "imp", "sensitivity", "strip", "sparsity_report", "update_masks"):
        assert callable(getattr(tfimp, name)), name
        assert getattr(tfimp, name).__module__.startswith("tfimp."), name


def test_import_tfimp_does_not_load_tensorflow():
    code = "import sys, tfimp; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "tfimp.cli", "--help"], capture_output=True,
                         text=True, check=True)
    for verb in ("run", "export", "inspect", "bench", "bundle", "deploy"):
        assert f"  {verb} " in out.stdout
