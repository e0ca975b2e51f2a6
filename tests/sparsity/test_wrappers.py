"""Every layer type in PRUNABLE_WEIGHTS: prune, train, exact zeros, strip, load without tfimp."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfimp
from tfimp.callbacks import UpdateMasks
from tfimp.sparsity.engine import get_masks, pruned_layers, strip
from tfimp.wrappers import (
    PRUNABLE_WEIGHTS,
    MaskConstraint,
    PruneLowMagnitude,
    is_prunable,
    prunable_weights,
)

L = keras.layers


def _seq(shape, *layers, dtype="float32"):
    return keras.Sequential([keras.Input(shape, dtype=dtype), *layers])


def _mha():
    x = keras.Input((4, 6))
    return keras.Model(x, L.MultiHeadAttention(num_heads=2, key_dim=3)(x, x))


# One tiny model per registered layer type; the registry test below keeps this complete.
FACTORIES = {
    L.Dense: lambda: _seq((4,), L.Dense(3)),
    L.EinsumDense: lambda: _seq((4,), L.EinsumDense("ab,bc->ac", output_shape=3, bias_axes="c")),
    L.Conv1D: lambda: _seq((6, 2), L.Conv1D(3, 3)),
    L.Conv2D: lambda: _seq((5, 5, 2), L.Conv2D(3, 3)),
    L.Conv3D: lambda: _seq((4, 4, 4, 1), L.Conv3D(2, 3)),
    L.Conv1DTranspose: lambda: _seq((4, 2), L.Conv1DTranspose(3, 3)),
    L.Conv2DTranspose: lambda: _seq((3, 3, 2), L.Conv2DTranspose(3, 3)),
    L.Conv3DTranspose: lambda: _seq((2, 2, 2, 1), L.Conv3DTranspose(2, 3)),
    L.DepthwiseConv1D: lambda: _seq((6, 4), L.DepthwiseConv1D(3)),
    L.DepthwiseConv2D: lambda: _seq((5, 5, 4), L.DepthwiseConv2D(3)),
    L.SeparableConv1D: lambda: _seq((6, 4), L.SeparableConv1D(3, 3)),
    L.SeparableConv2D: lambda: _seq((5, 5, 4), L.SeparableConv2D(3, 3)),
    L.Embedding: lambda: _seq((5,), L.Embedding(10, 4), L.GlobalAveragePooling1D(),
                              dtype="int32"),
    L.MultiHeadAttention: _mha,
    L.SimpleRNN: lambda: _seq((5, 2), L.SimpleRNN(3)),
    L.LSTM: lambda: _seq((5, 2), L.LSTM(3)),
    L.GRU: lambda: _seq((5, 2), L.GRU(3)),
    L.Bidirectional: lambda: _seq((5, 2), L.Bidirectional(L.LSTM(3))),
    L.TimeDistributed: lambda: _seq((5, 2), L.TimeDistributed(L.Dense(3))),
}
CASES = sorted(PRUNABLE_WEIGHTS, key=lambda cls: cls.__name__)
SPARSITY = 0.5


def test_every_registered_layer_has_a_case():
    assert set(FACTORIES) == set(PRUNABLE_WEIGHTS)


def _data(model, n=8):
    rng = np.random.default_rng(0)
    shape = (n,) + tuple(model.inputs[0].shape[1:])
    if model.inputs[0].dtype == "int32":
        x = rng.integers(0, 10, size=shape).astype("int32")
    else:
        x = rng.normal(size=shape).astype("float32")
    y = rng.normal(size=(n,) + tuple(model.outputs[0].shape[1:])).astype("float32")
    return x, y


def _run_case(cls, out_dir):
    keras.utils.set_random_seed(0)
    model = FACTORIES[cls]()
    x, y = _data(model)
    pruned = tfimp.prune(model, tfimp.ConstantSparsity(SPARSITY, frequency=1))
    pruned.compile(keras.optimizers.Adam(0.01), "mse")
    pruned.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[UpdateMasks()])
    plain = strip(pruned)
    path = out_dir / f"{cls.__name__}.keras"
    plain.save(path)
    np.save(out_dir / f"{cls.__name__}_x.npy", x)
    np.save(out_dir / f"{cls.__name__}_y.npy", plain.predict(x, verbose=0))
    return model, pruned, plain, x


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("stripped")
    results = {}
    for cls in CASES:
        try:
            results[cls] = _run_case(cls, out_dir)
        except Exception as error:  # reported by the case's own test
            results[cls] = error
    return out_dir, results


def _case(matrix, cls):
    result = matrix[1][cls]
    if isinstance(result, Exception):
        raise result
    return result


@pytest.mark.parametrize("cls", CASES, ids=lambda c: c.__name__)
def test_layer_pruned_trained_and_stripped(matrix, cls):
    model, pruned, plain, x = _case(matrix, cls)
    (wrapper,) = pruned_layers(pruned)
    assert isinstance(wrapper.layer, cls)
    assert pruned.optimizer.iterations.numpy() == 2
    for var, mask in zip(wrapper.pruned_weights, wrapper.get_masks()):
        value = keras.ops.convert_to_numpy(var)
        assert np.count_nonzero(mask == 0) == round(SPARSITY * mask.size)
        assert np.all(value[mask == 0] == 0.0)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), pruned.predict(x, verbose=0))
    assert not any(isinstance(lay, PruneLowMagnitude) for lay in plain._flatten_layers())
    stripped = [v for lay in plain.layers if is_prunable(lay) for v in prunable_weights(lay)]
    assert len(stripped) == len(get_masks(pruned))
    for var, mask in zip(stripped, wrapper.get_masks()):
        assert np.all(keras.ops.convert_to_numpy(var)[mask == 0] == 0.0)


LOADER = textwrap.dedent("""
    import importlib.abc, json, sys
    class NoTfimp(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tfimp" or name.startswith("tfimp."):
                raise ImportError("tfimp must not be needed to load a stripped model")
    sys.meta_path.insert(0, NoTfimp())
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import pathlib, keras, numpy as np
    done = []
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.keras")):
        model = keras.saving.load_model(path, safe_mode=True)
        x = np.load(str(path)[:-6] + "_x.npy")
        expected = np.load(str(path)[:-6] + "_y.npy")
        np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
        done.append(path.stem)
    assert "tfimp" not in sys.modules
    print(json.dumps(done))
""")


def test_stripped_models_load_without_tfimp(matrix):
    out_dir, results = matrix
    built = sorted(cls.__name__ for cls, r in results.items() if not isinstance(r, Exception))
    assert built, "no case built"
    done = subprocess.run([sys.executable, "-c", LOADER, str(out_dir)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == built


def test_wrapper_config_round_trip():
    layer = L.Dense(3, kernel_constraint=keras.constraints.NonNeg())
    layer.build((None, 4))
    wrapper = PruneLowMagnitude(layer, schedule=tfimp.PolynomialDecay(0.0, 0.5, 0, 10),
                                target=0.3, scope="global", granularity="block:4x1", name="w")
    wrapper.build()
    config = json.loads(json.dumps(wrapper.get_config()))
    clone = PruneLowMagnitude.from_config(config)
    clone.build()
    assert clone.schedule == wrapper.schedule and clone.target == 0.3
    assert clone.scope == "global" and clone.granularity.block == (4, 1)
    assert clone.get_config() == config
    assert isinstance(clone.layer.kernel.constraint.base, keras.constraints.NonNeg)


def test_mask_constraint_composes_with_base_constraint():
    layer = L.Dense(2, kernel_constraint=keras.constraints.NonNeg())
    layer.build((None, 2))
    wrapper = PruneLowMagnitude(layer)
    wrapper.build()
    wrapper.assign_masks([np.array([[1, 0], [1, 1]], np.float32)])
    out = layer.kernel.constraint(keras.ops.convert_to_tensor([[-1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), [[0.0, 0.0], [3.0, 4.0]])
    config = keras.constraints.serialize(layer.kernel.constraint)
    clone = keras.constraints.deserialize(json.loads(json.dumps(config)))
    assert isinstance(clone, MaskConstraint) and isinstance(clone.base, keras.constraints.NonNeg)
    assert clone.get_config() == layer.kernel.constraint.get_config()
    wrapper.unwrap()
    assert isinstance(layer.kernel.constraint, keras.constraints.NonNeg)


def test_custom_layer_opts_in():
    class Scale(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

        def get_prunable_weights(self):
            return [self.w]

    model = _seq((4,), Scale())
    pruned = tfimp.prune(model, 0.5, inplace=False)
    (mask,) = get_masks(pruned).values()
    np.testing.assert_array_equal(mask, [0, 0, 1, 1])


def test_unknown_layer_with_only_vector_weights_is_skipped_and_reported():
    class Scale(L.Layer):  # like ConvNeXt's LayerScale: nothing in it to prune
        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")
            self.offset = self.add_weight(shape=(), initializer="zeros")

        def call(self, x):
            return x * self.gamma + self.offset

    model = _seq((4,), Scale(name="scale"), L.Dense(2))
    pruned = tfimp.prune(model, 0.5)
    assert [w.layer.name for w in pruned_layers(pruned)] == [model.layers[1].name]
    report = tfimp.sparsity_report(pruned)
    assert report.not_pruned == ("scale (Scale)",)
    assert "not pruned" in str(report) and "scale (Scale)" in str(report)


def test_unknown_weighted_layer_error_names_layer_and_fixes():
    class Custom(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 3))

        def call(self, x):
            return x @ self.w

    model = _seq((4,), Custom(name="mystery"), L.Dense(2))
    with pytest.raises(ValueError, match=r"'mystery'.*register_prunable.*exclude=\['mystery'\]"):
        tfimp.prune(model, 0.5)
    pruned = tfimp.prune(model, 0.5, exclude=["mystery"])
    assert [w.layer.name for w in pruned_layers(pruned)] == [model.layers[1].name]


def test_register_prunable_validates():
    with pytest.raises(TypeError, match="Argument `cls`"):
        tfimp.wrappers.register_prunable(int, lambda layer: [])
    with pytest.raises(TypeError, match="Argument `weights_fn`"):
        tfimp.wrappers.register_prunable(L.Dense, "kernel")
