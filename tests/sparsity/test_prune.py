"""prune/strip/update_masks on every model kind; exact zeros under every optimizer; bad input."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfimp
from tfimp.callbacks import UpdateMasks
from tfimp.sparsity.engine import (
    apply_masks,
    get_masks,
    is_pruned,
    pruned_layers,
    set_masks,
    strip,
    update_masks,
)
from tfimp.sparsity.report import sparsity_report

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 6)).astype("float32")
Y = RNG.normal(size=(16, 2)).astype("float32")
DECAY = tfimp.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=6, frequency=2)


def mlp(name="mlp"):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu", name="d1"),
                             L.Dense(2, name="d2")], name=name)


def arange_mlp():
    model = mlp()
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.arange(1, kernel.size + 1, dtype="float32").reshape(kernel.shape)
                           / kernel.size, bias])
    return model


def functional():
    keras.utils.set_random_seed(0)
    x = keras.Input((6,))
    h = L.Dense(8, activation="relu", name="d1")(x)
    return keras.Model(x, L.Dense(2, name="d2")(L.BatchNormalization()(h)))


def nested():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6,)), L.Dense(8, name="inner_dense")], name="inner")
    x = keras.Input((6,))
    return keras.Model(x, L.Dense(2, name="d2")(inner(x)))


def shared():
    keras.utils.set_random_seed(0)
    x = keras.Input((6,))
    square = L.Dense(6, name="square")
    return keras.Model(x, L.Dense(2, name="d2")(square(square(x))))


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = L.Dense(8, activation="relu")
        self.d2 = L.Dense(2)

    def call(self, x):
        return self.d2(self.d1(x))


def subclassed():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model(X[:1])
    return model


class Opaque(keras.Model):
    """Built from a function: Keras can't serialize its constructor argument."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn, self.d = fn, L.Dense(2)

    def call(self, x):
        return self.d(self.fn(x))


def opaque_subclassed():
    model = Opaque(lambda t: 2 * t)
    model(X[:1])
    return model


class Forgetful(keras.Model):
    """Its get_config() leaves out `units`, so a rebuilt copy has other shapes."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.d1, self.d2 = L.Dense(units), L.Dense(2)

    def call(self, x):
        return self.d2(self.d1(x))

    def get_config(self):
        return {"name": self.name}


def forgetful_subclassed():
    model = Forgetful(units=5)
    model(X[:1])
    return model


def test_subclassed_model_is_copied_through_its_config_and_left_unchanged():
    model = subclassed()
    before = [w.copy() for w in model.get_weights()]
    pruned = tfimp.prune(model, 0.5)
    assert pruned is not model and type(pruned) is type(model) and is_pruned(pruned)
    assert not is_pruned(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sparsity_report(pruned).sparsity == pytest.approx(0.5, abs=0.02)


def assert_exact_zeros(model):
    for wrapper in pruned_layers(model):
        for var, mask in zip(wrapper.pruned_weights, wrapper.get_masks()):
            assert np.all(keras.ops.convert_to_numpy(var)[mask == 0] == 0.0), var.path


class CheckZeros(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.checked = 0

    def on_train_batch_end(self, batch, logs=None):
        assert_exact_zeros(self.model)
        self.checked += 1


KINDS = {"sequential": (mlp, 2), "functional": (functional, 2), "nested": (nested, 2),
         "shared": (shared, 2), "subclassed": (subclassed, 2), "subclassed_copy": (subclassed, 2)}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_model_kinds_prune_train_strip(kind):
    build, n_wrapped = KINDS[kind]
    model = build()
    inplace = kind == "subclassed"
    pruned = tfimp.prune(model, DECAY, inplace=inplace)
    assert (pruned is model) == inplace and is_pruned(pruned)
    assert len(pruned_layers(pruned)) == n_wrapped
    pruned.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    check = CheckZeros()
    pruned.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[UpdateMasks(), check])
    assert check.checked == 8
    report = sparsity_report(pruned)
    for row in report.rows:
        assert row.params - row.nonzeros == round(0.75 * row.params)
    expected = pruned.predict(X, verbose=0)
    plain = strip(pruned)
    assert not is_pruned(plain)
    np.testing.assert_array_equal(plain.predict(X, verbose=0), expected)
    assert sparsity_report(plain).to_dict() == report.to_dict()


def test_shared_layer_is_wrapped_once_and_both_calls_masked():
    pruned = tfimp.prune(shared(), 0.5)
    (square,) = [w for w in pruned_layers(pruned) if w.layer.name == "square"]
    kernel = keras.ops.convert_to_numpy(square.layer.kernel)
    x = X[:2]
    h = x @ kernel + keras.ops.convert_to_numpy(square.layer.bias)
    h = h @ kernel + keras.ops.convert_to_numpy(square.layer.bias)
    d2 = [w for w in pruned_layers(pruned) if w.layer.name == "d2"][0].layer
    out = h @ keras.ops.convert_to_numpy(d2.kernel) + keras.ops.convert_to_numpy(d2.bias)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), out, rtol=1e-5, atol=1e-6)
    assert np.count_nonzero(kernel == 0) == 18


def test_prune_leaves_the_original_model_alone():
    model = mlp()
    before = [w.copy() for w in model.get_weights()]
    tfimp.prune(model, 0.9)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not is_pruned(model)


def test_one_shot_on_arange_weights_gives_exact_masks():
    pruned = tfimp.prune(arange_mlp(), 0.25)
    masks = get_masks(pruned)
    assert list(masks) == ["prune_d1/0:kernel", "prune_d2/0:kernel"]
    np.testing.assert_array_equal(masks["prune_d1/0:kernel"].ravel(), [0] * 12 + [1] * 36)
    np.testing.assert_array_equal(masks["prune_d2/0:kernel"].ravel(), [0] * 4 + [1] * 12)
    d1 = pruned_layers(pruned)[0].layer
    assert np.all(keras.ops.convert_to_numpy(d1.bias) == 0)  # biases untouched (init 0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(d1.kernel).ravel()[:12], 0)


def test_global_scope_ranks_across_layers():
    pruned = tfimp.prune(arange_mlp(), 0.5, scope="global")
    masks = get_masks(pruned)
    # d1 holds (1..48)/48, d2 holds (1..16)/16: the 32 smallest of the 64 values.
    values = np.concatenate([np.arange(1, 49) / 48, np.arange(1, 17) / 16])
    order = np.argsort(values, kind="stable")[:32]
    expected = np.ones(64)
    expected[order] = 0
    got = np.concatenate([masks["prune_d1/0:kernel"].ravel(), masks["prune_d2/0:kernel"].ravel()])
    np.testing.assert_array_equal(got, expected)


def test_exclude_and_targets():
    pruned = tfimp.prune(mlp(), 0.5, exclude=["d2"])
    assert [w.layer.name for w in pruned_layers(pruned)] == ["d1"]
    pruned = tfimp.prune(mlp(), tfimp.ConstantSparsity(0.5, frequency=1), targets={"d2": 0.25})
    update_masks(pruned, step=0)
    sparsity = {r.layer: r.sparsity for r in sparsity_report(pruned).rows}
    assert sparsity == {"d1": 0.5, "d2": 0.25}
    pruned = tfimp.prune(functional(), 0.5, exclude=[L.BatchNormalization, "d2"])
    assert [w.layer.name for w in pruned_layers(pruned)] == ["d1"]
    pruned = tfimp.prune(functional(), 0.5, exclude="d2*")  # one glob, not a list
    assert [w.layer.name for w in pruned_layers(pruned)] == ["d1"]


def test_polynomial_targets_scale_the_schedule():
    pruned = tfimp.prune(mlp(), DECAY, targets={"d2": 0.375})
    for step in (0, 2, 4, 6):
        update_masks(pruned, step=step)
        rows = {r.layer: r for r in sparsity_report(pruned).rows}
        assert rows["d1"].params - rows["d1"].nonzeros == round(DECAY.sparsity(step) * 48)
        assert rows["d2"].params - rows["d2"].nonzeros == round(DECAY.sparsity(step) / 2 * 16)


def test_block_pruning_through_prune():
    pruned = tfimp.prune(mlp(), 0.5, granularity="block:2x1")
    for mask in get_masks(pruned).values():
        pairs = mask.reshape(mask.shape[0] // 2, 2, mask.shape[1])
        assert np.all(pairs[:, 0] == pairs[:, 1]) and mask.mean() == 0.5


def test_whole_blocks_through_prune_and_config():
    # d1's kernel is (6, 8): in 4x1 blocks, inputs 4-5 form partial edge blocks.
    plain = get_masks(tfimp.prune(mlp(), 0.25, granularity="block:4x1"))
    assert any(np.any(m[4:] == 1) for m in plain.values() if m.shape == (6, 8))
    pruned = tfimp.prune(mlp(), 0.25, granularity="block:4x1:whole")
    d1 = next(m for m in get_masks(pruned).values() if m.shape == (6, 8))
    np.testing.assert_array_equal(d1[4:], 0)
    # 16 blocks: 8 edge blocks are more than round(0.25 * 16) = 4; whole blocks stay.
    np.testing.assert_array_equal(d1[:4], 1)
    wrapper = next(layer for layer in pruned.layers if layer.name == "prune_d1")
    assert wrapper.get_config()["granularity"]["whole_blocks"] is True
    clone = type(wrapper).from_config(json.loads(json.dumps(wrapper.get_config())))
    assert str(clone.granularity) == "block:4x1:whole"
    assert tfimp.prune(mlp(), 0.25).layers[0].get_config()["granularity"]["kind"] == "weight"


def test_set_masks_apply_masks_and_unknown_names():
    pruned = tfimp.prune(mlp(), None)
    assert all(np.all(m == 1) for m in get_masks(pruned).values())
    mask = np.zeros((6, 8), np.float32)
    mask[0] = 1
    set_masks(pruned, {"prune_d1/0:kernel": mask})
    kernel = pruned_layers(pruned)[0].layer.kernel
    assert np.count_nonzero(keras.ops.convert_to_numpy(kernel)) == 8
    kernel.assign(np.ones((6, 8), np.float32))
    apply_masks(pruned)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), mask)
    with pytest.raises(ValueError, match="Argument `masks`"):
        set_masks(pruned, {"nope": mask})
    with pytest.raises(ValueError, match="0.0 and 1.0 only"):
        set_masks(pruned, {"prune_d1/0:kernel": mask * 0.5})


OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(0.05),
    "adamw": lambda: keras.optimizers.AdamW(0.05, weight_decay=0.5),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_exact_zeros_after_every_step_in_fit(opt):
    pruned = tfimp.prune(mlp(), DECAY)
    pruned.compile(OPTIMIZERS[opt](), "mse")
    check = CheckZeros()
    pruned.fit(X, Y, batch_size=2, epochs=2, verbose=0, callbacks=[UpdateMasks(), check])
    assert check.checked == 16
    assert all(m.mean() == 0.25 for m in get_masks(pruned).values())
    assert_exact_zeros(pruned)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_exact_zeros_after_every_step_in_custom_loop(opt):
    pruned = tfimp.prune(mlp(), DECAY)
    optimizer = OPTIMIZERS[opt]()
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, pruned(x, training=True))
        grads = tape.gradient(loss, pruned.trainable_variables)
        optimizer.apply_gradients(zip(grads, pruned.trainable_variables))

    pruned_counts = []
    for i in range(8):
        update_masks(pruned, step=optimizer.iterations)
        train_step(X[2 * i: 2 * i + 2], Y[2 * i: 2 * i + 2])
        assert_exact_zeros(pruned)
        pruned_counts.append(sum(int((m == 0).sum()) for m in get_masks(pruned).values()))
    assert pruned_counts == sorted(pruned_counts) and pruned_counts[-1] == 48
    assert int(optimizer.iterations) == 8


def test_update_masks_needs_a_step_without_optimizer():
    pruned = tfimp.prune(mlp(), DECAY)
    with pytest.raises(ValueError, match=r"Argument `step` is required.*optimizer.iterations"):
        update_masks(pruned)
    with pytest.raises(ValueError, match="Received: step=-1"):
        update_masks(pruned, step=-1)
    with pytest.raises(ValueError, match="has no pruned layers"):
        update_masks(mlp(), step=0)
    assert update_masks(pruned, step=2) and not update_masks(pruned, step=3)


def test_masks_only_get_sparser_over_a_schedule():
    pruned = tfimp.prune(mlp(), tfimp.PolynomialDecay(0.1, 0.9, 0, 10, frequency=1))
    previous = get_masks(pruned)
    for step in range(12):
        for w in pruned_layers(pruned):
            for var in w.pruned_weights:  # weights move between updates
                var.assign(RNG.normal(size=var.shape).astype("float32"))
        update_masks(pruned, step=step)
        current = get_masks(pruned)
        assert all(np.all(current[k] <= previous[k]) for k in current)
        previous = current


def test_sparsity_report_on_plain_model_and_text():
    report = sparsity_report(arange_mlp())
    assert [r.layer for r in report.rows] == ["d1", "d2"] and report.sparsity == 0.0
    assert report.params == 64 and report.nonzeros == 64
    text = str(tfimp.sparsity_report(tfimp.prune(arange_mlp(), 0.5)))
    assert "total" in text and "50.00%" in text and "d1/kernel" in text


class NotBuilt(keras.Model):
    def __init__(self):
        super().__init__()
        self.d = L.Dense(2)

    def call(self, x):
        return self.d(x)


@pytest.mark.parametrize("call,error,message", [
    (lambda: tfimp.prune(mlp(), 1.5), ValueError, r"Argument `schedule`.*Received: schedule=1.5"),
    (lambda: tfimp.prune(mlp(), -0.1), ValueError, r"Received: schedule=-0.1"),
    (lambda: tfimp.prune(mlp(), "half"), TypeError, r"Argument `schedule`"),
    (lambda: tfimp.prune(mlp(), 0.5, scope="channel"), ValueError, r"Argument `scope`.*channel"),
    (lambda: tfimp.prune(keras.Sequential([keras.Input((3,)), L.ReLU()]), 0.5), ValueError,
     r"Argument `model`.*no prunable weights"),
    (lambda: tfimp.prune(mlp(), 0.5, exclude=["d1", "d2"]), ValueError, r"no prunable weights"),
    (lambda: tfimp.prune(NotBuilt(), 0.5, inplace=True), ValueError,
     r"Argument `model` must be a built model"),
    (lambda: tfimp.prune(keras.Sequential([L.Dense(2)]), 0.5), ValueError, r"built model"),
    (lambda: tfimp.prune(mlp(), 0.5, exclude=["conv*"]), ValueError,
     r"Argument `exclude` names 'conv\*', which matches no layer.*'d1'"),
    (lambda: tfimp.prune(mlp(), 0.5, targets={"dense_9": 0.5}), ValueError,
     r"Argument `targets` names 'dense_9'"),
    (lambda: tfimp.prune(mlp(), 0.5, targets={"d1": 1.2}), ValueError,
     r"Argument `targets\['d1'\]`.*Received"),
    (lambda: tfimp.prune(mlp(), 0.5, exclude=[3]), TypeError, r"Argument `exclude`"),
    (lambda: tfimp.prune(object(), 0.5), TypeError, r"Argument `model` must be a Keras 3"),
    (lambda: tfimp.prune(L.Dense(3), 0.5), TypeError, r"Argument `model`.*Dense"),
    (lambda: tfimp.prune(opaque_subclassed(), 0.5), ValueError,
     r"can't be copied through its config .*get_config\(\).*inplace=True"),
    (lambda: tfimp.prune(forgetful_subclassed(), 0.5), ValueError,
     r"does not return every constructor argument.*inplace=True"),
    (lambda: tfimp.prune(tfimp.prune(mlp(), 0.5), 0.5), ValueError, r"already pruned"),
    (lambda: tfimp.prune(mlp(), 0.5, granularity=(0, 1)), ValueError,
     r"Argument `granularity.block`"),
    (lambda: tfimp.prune(mlp(), 0.5, granularity="block:4x1:yes"), ValueError,
     r"Argument `granularity` must be .* Received: granularity='block:4x1:yes'"),
    (lambda: tfimp.prune(mlp(), 0.5, inplace=True), ValueError, r"inplace=True is for"),
    (lambda: strip("model.keras"), TypeError, r"Argument `model`"),
    (lambda: sparsity_report(None), TypeError, r"Argument `model`"),
])
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
