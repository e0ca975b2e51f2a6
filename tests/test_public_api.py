"""The public namespace: functions stay functions whatever was imported before."""

import subprocess
import sys

import pytest



def test_public_functions_survive_submodule_imports():
    import tfimp.lottery.driver  # noqa: F401
    import tfimp.lottery.sensitivity  # noqa: F401
    import tfimp.sparsity.engine  # noqa: F401

    for name in ("prune", "imp", "sensitivity", "strip", "sparsity_report", "update_masks"):
        assert callable(getattr(tfimp, name)), name
        assert getattr(tfimp, name).__module__.startswith("tfimp."), name


@pytest.mark.parametrize("module", ["tfimp", "tfimp.export"])
def test_import_does_not_load_tensorflow(module):
    """`import tfimp` and `import tfimp.export` (inspect, the runtimes) stay light: TensorFlow
    and Keras load when a model is pruned or converted."""
    code = f"import sys, {module}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_help_lists_the_verbs():
    out = subprocess.run([sys.executable, "-m", "tfimp.cli", "--help"], capture_output=True,
                         text=True, check=True)
    for verb in ("run", "export", "inspect", "bench", "bundle", "deploy"):
        assert f"  {verb} " in out.stdout


def test_moved_modules_stay_importable_under_their_old_names():
    code = ("import tfimp.callbacks, tfimp.schedules, tfimp.wrappers\n"
            "from tfimp.callbacks import UpdateMasks\n"
            "from tfimp.schedules import PolynomialDecay, rounds_to_reach\n"
            "from tfimp.wrappers import PRUNABLE_WEIGHTS, PruneLowMagnitude, register_prunable\n"
            "import tfimp\n"
            "assert tfimp.schedules.PolynomialDecay is tfimp.PolynomialDecay\n"
            "assert tfimp.callbacks.UpdateMasks is UpdateMasks\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_config_objects_and_errors_are_public():
    import tfimp

    assert issubclass(tfimp.InvalidArgumentError, (tfimp.TfimpError, ValueError))
    assert tfimp.IMPConfig(rounds=2).total_rounds == 2
    assert str(tfimp.Granularity.parse("block:4x1")) == "block:4x1"
