"""A pruned .keras file loads in a fresh process that only did `import tfimp` (no tfimp module
that defines the wrapper), whichever of Keras and tfimp is imported first, and `tfimp export`
converts it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import tfimp
from tfimp._util import keras_objects

ROOT = Path(__file__).resolve().parents[2]
LOAD = """
import sys
{imports}
assert {lazy}
model = keras.models.load_model(sys.argv[1])
print(type(model.layers[0]).__name__, type(model.layers[0].layer.kernel.constraint).__name__)
"""
IMPORTS = {
    "keras first": ("import keras\nimport tfimp", "True"),
    # `import tfimp` alone loads neither Keras nor TensorFlow.
    "tfimp first": ("import tfimp\nlazy = not {'keras', 'tensorflow'} & set(sys.modules)\n"
                    "import keras", "lazy"),
}


def fresh_python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=kwargs.pop("cwd", ROOT), timeout=300, **kwargs)


@pytest.fixture(scope="module")
def pruned_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d")])
    pruned = tfimp.prune(model, 0.5)
    tfimp.update_masks(pruned, step=0, force=True)
    path = tmp_path_factory.mktemp("saved") / "pruned.keras"
    pruned.save(path)
    return path


@pytest.mark.parametrize("order", sorted(IMPORTS))
def test_pruned_model_loads_in_a_fresh_process(pruned_file, order):
    imports, lazy = IMPORTS[order]
    done = fresh_python("-c", LOAD.format(imports=imports, lazy=lazy), str(pruned_file))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["PruneLowMagnitude", "MaskConstraint"]


def test_export_cli_converts_a_pruned_file_in_a_fresh_process(pruned_file, tmp_path):
    out = tmp_path / "m.tflite"
    done = fresh_python("-m", "tfimp.cli", "export", str(pruned_file), "-o", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes()[4:8] == b"TFL3"


def test_every_registering_module_is_imported_by_the_hook():
    pattern = re.compile(r"^@keras\.saving\.register_keras_serializable", re.M)
    registering = {".".join(p.relative_to(ROOT).with_suffix("").parts)
                   for p in (ROOT / "tfimp").rglob("*.py") if pattern.search(p.read_text())}
    assert registering == set(keras_objects.KERAS_OBJECT_MODULES)


def test_a_failing_registration_warns_instead_of_breaking_keras(monkeypatch):
    monkeypatch.setattr(keras_objects, "KERAS_OBJECT_MODULES", ("tfimp.no_such_module",))
    with pytest.warns(RuntimeWarning, match="could not register its Keras classes"):
        keras_objects.register_when_keras_loads()
