"""Strategies registered by packages above the sparsity engine (channel granularity, the strip
hook of quantization-aware models) are found in a fresh process that only did `import tfimp`:
the engine imports neither package, so a lookup that misses loads them."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import tfimp
from tfimp._util import extensions

ROOT = Path(__file__).resolve().parents[2]
X = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")


def fresh_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="a"),
                             keras.layers.Dense(3, name="b")])


PRUNE_CHANNELS = """
import sys
import tfimp
import keras
before = {"tfimp.structure.masking", "tfimp.structure.channels"} & set(sys.modules)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="a"),
                          keras.layers.Dense(3, name="b")])
pruned = tfimp.prune(model, 0.5, granularity="channel")
wrapper = pruned.layers[0]
print(sorted(before), type(wrapper.granularity).__name__,
      int((tfimp.get_masks(pruned)[wrapper.weight_names()[0]] == 0).all(axis=0).sum()))
"""


def test_channel_pruning_works_after_a_bare_import_tfimp():
    done = fresh_python(PRUNE_CHANNELS)
    assert done.returncode == 0, done.stderr[-3000:]
    # loaded on first use, not before; 4 of layer a's 8 channels removed
    assert done.stdout.split() == ["[]", "Channels", "4"]


LOAD_AND_STRIP = """
import sys
import tfimp
import keras
model = keras.models.load_model(sys.argv[1])
plain = tfimp.strip(model)
inner = [type(getattr(layer, "layer", layer)).__name__ for layer in plain.layers]
print("PruneLowMagnitude" in inner, tfimp.quantization.qat.is_quantize_aware(plain))
"""


def test_strip_finds_the_quantization_hook_after_a_bare_import_tfimp(tmp_path):
    pruned = tfimp.prune(small_model(), 0.5)
    qat = tfimp.quantize_aware(pruned, representative_data=X)
    path = tmp_path / "qat.keras"
    qat.save(path)
    done = fresh_python(LOAD_AND_STRIP, path)
    assert done.returncode == 0, done.stderr[-3000:]
    # strip removed the masks and kept the fake quantization
    assert done.stdout.split() == ["False", "True"]


LOAD_CHANNELS = """
import sys
import tfimp
import keras
model = keras.models.load_model(sys.argv[1])
print(type(model.layers[0].granularity).__name__, tfimp.update_masks(model, step=0, force=True))
"""


def test_a_saved_channel_pruned_model_loads_in_a_fresh_process(tmp_path):
    path = tmp_path / "channels.keras"
    tfimp.prune(small_model(), 0.5, granularity="channel").save(path)
    done = fresh_python(LOAD_CHANNELS, path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["Channels", "True"]


def test_every_registering_module_is_an_extension():
    calls = {"register_granularity", "register_strip_hook", "register_kind"}
    registering = set()
    for path in (ROOT / "tfimp").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n.value for n in tree.body if isinstance(n, ast.Expr)]
        if any(isinstance(c, ast.Call) and getattr(c.func, "attr", getattr(c.func, "id", ""))
               in calls for c in top):
            registering.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    # tfimp.structure.channels registers its kind and is imported by tfimp.structure.masking
    assert registering == set(extensions.EXTENSION_MODULES) | {"tfimp.structure.channels"}


def test_an_unknown_granularity_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Argument `granularity`.*\['block', 'channel', "
                                         r"'weight'\]"):
        tfimp.Granularity.parse("rows")
