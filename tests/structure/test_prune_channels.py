"""prune(granularity="channel"): whole channels masked across their group, schedules,
callbacks, save/load, and clear errors before anything changes."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.callbacks import UpdateMasks
from tfimp.sparsity.engine import get_masks, pruned_layers, strip, update_masks
from tfimp.structure.channels import Channels, filter_norms

L = keras.layers
RNG = np.random.default_rng(0)
X16 = RNG.normal(size=(8, 16, 16, 1)).astype("float32")
Y16 = RNG.integers(0, 10, 8)


def lenet():
    keras.utils.set_random_seed(0)
    return tfimp.models.lenet5(input_shape=(16, 16, 1), classifier_activation=None)


def masks_of(model, layer):
    wrapper = next(w for w in pruned_layers(model) if w.layer.name == layer)
    return {v.name: m for v, m in zip(wrapper.pruned_weights, wrapper.get_masks())}


def removed_outputs(mask, axis=-1):
    """Indices along `axis` whose whole slice is masked."""
    flat = np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1)
    return np.flatnonzero((flat == 0).all(axis=1))


def test_one_shot_masks_whole_channels_and_their_readers():
    model = lenet()
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    conv1 = masks_of(pruned, "conv1")
    gone = removed_outputs(conv1["kernel"])
    np.testing.assert_array_equal(np.flatnonzero(conv1["bias"] == 0), gone)
    norms = filter_norms(model.get_layer("conv1").kernel.numpy(), -1, "l1")
    np.testing.assert_array_equal(gone, np.sort(np.argsort(norms, kind="stable")[:10]))
    conv2 = masks_of(pruned, "conv2")["kernel"]
    np.testing.assert_array_equal(removed_outputs(conv2, axis=2), gone)  # its input rows
    assert len(removed_outputs(conv2)) == 25
    assert len(removed_outputs(masks_of(pruned, "fc1")["kernel"])) == 250
    head = masks_of(pruned, "classifier")
    assert removed_outputs(head["kernel"]).size == 0 and head["bias"].all()  # classes stay
    assert len(removed_outputs(head["kernel"], axis=0)) == 250


def test_the_original_model_is_left_alone():
    model = lenet()
    before = [w.copy() for w in model.get_weights()]
    tfimp.prune(model, 0.5, granularity="channel")
    assert not tfimp.is_pruned(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def bn_net(sigmoid=False):
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 2))
    h = L.BatchNormalization(name="bn")(L.Conv2D(6, 3, padding="same", name="c1")(x))
    h = L.Activation("sigmoid" if sigmoid else "relu")(h)
    h = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, padding="same", name="c2")(h))
    return keras.Model(x, L.Dense(3, name="head")(h))


def test_masked_channels_stay_exactly_zero_under_training():
    pruned = tfimp.prune(bn_net(), 0.5, granularity="channel")
    pruned.compile(keras.optimizers.AdamW(0.05, weight_decay=0.1), "mse")
    x = RNG.normal(size=(16, 8, 8, 2)).astype("float32")
    pruned.fit(x, RNG.normal(size=(16, 3)), epochs=2, batch_size=4, verbose=0)
    c1 = pruned.get_layer("prune_c1").layer
    bn = pruned.get_layer("prune_bn").layer
    gone = removed_outputs(masks_of(pruned, "c1")["kernel"])
    assert len(gone) == 3
    assert not c1.kernel.numpy()[..., gone].any() and not c1.bias.numpy()[gone].any()
    assert not bn.gamma.numpy()[gone].any() and not bn.beta.numpy()[gone].any()
    assert not pruned.get_layer("prune_c2").layer.kernel.numpy()[:, :, gone].any()


def test_removed_channels_do_not_reach_the_next_layer_even_when_act0_is_not_zero():
    pruned = tfimp.prune(bn_net(sigmoid=True), 0.5, granularity="channel")
    c2 = pruned.get_layer("prune_c2").layer
    gone = removed_outputs(masks_of(pruned, "c1")["kernel"])
    x = RNG.normal(size=(2, 8, 8, 2)).astype("float32")
    before = pruned(x).numpy()
    kernel = c2.kernel.numpy()
    kernel[:, :, gone] = 0.0  # already zero: changing nothing there changes nothing
    c2.kernel.assign(kernel)
    np.testing.assert_array_equal(pruned(x).numpy(), before)


def test_schedule_with_the_callback_reaches_its_channel_sparsity():
    schedule = tfimp.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=4, frequency=2)
    pruned = tfimp.prune(lenet(), schedule, granularity="channel")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(RuntimeError, match="UpdateMasks"):
        pruned.fit(X16, Y16, epochs=1, batch_size=4, verbose=0)
    pruned = tfimp.prune(lenet(), schedule, granularity="channel")
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(X16, Y16, epochs=3, batch_size=4, verbose=0, callbacks=[UpdateMasks()])
    assert len(removed_outputs(masks_of(pruned, "conv1")["kernel"])) == 10
    assert len(removed_outputs(masks_of(pruned, "fc1")["kernel"])) == 250


def test_update_masks_in_a_custom_loop_never_revives_a_channel():
    schedule = tfimp.PolynomialDecay(0.0, 0.6, begin_step=0, end_step=10, frequency=5)
    pruned = tfimp.prune(lenet(), schedule, granularity="channel")
    assert update_masks(pruned, step=0)
    first = removed_outputs(masks_of(pruned, "conv1")["kernel"])
    assert not update_masks(pruned, step=3)
    for layer in pruned_layers(pruned):  # training moves weights; masks must not follow back
        for v in layer.pruned_weights:
            v.assign(v.numpy() + RNG.normal(size=v.shape).astype("float32"))
    assert update_masks(pruned, step=10)
    later = removed_outputs(masks_of(pruned, "conv1")["kernel"])
    assert set(first) <= set(later) and len(later) == 12


def test_strip_and_save_load_keep_masks_and_settings(tmp_path):
    granularity = Channels(norm="l2", min_channels=2)
    pruned = tfimp.prune(lenet(), 0.5, granularity=granularity, targets={"conv1": 0.25},
                         exclude=["fc1"])
    plain = strip(pruned)
    np.testing.assert_allclose(plain(X16).numpy(), pruned(X16).numpy(), rtol=1e-6, atol=1e-6)
    path = tmp_path / "chan.keras"
    pruned.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(X16).numpy(), pruned(X16).numpy())
    wrappers = {w.layer.name: w for w in pruned_layers(loaded)}
    assert wrappers["conv1"].granularity == granularity and wrappers["conv1"].target == 0.25
    assert wrappers["fc1"].target == 0.0
    masks = get_masks(loaded)
    assert update_masks(loaded, step=0, force=True)  # same weights, same masks
    for name, mask in get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[name])


def test_exclude_and_targets_act_on_groups():
    pruned = tfimp.prune(lenet(), 0.5, granularity="channel", exclude=["fc1"],
                         targets={"conv1": 0.25})
    assert len(removed_outputs(masks_of(pruned, "conv1")["kernel"])) == 5
    assert len(removed_outputs(masks_of(pruned, "conv2")["kernel"])) == 25
    assert len(removed_outputs(masks_of(pruned, "fc1")["kernel"])) == 0


def test_global_scope_removes_the_exact_total():
    pruned = tfimp.prune(lenet(), 0.5, granularity="channel", scope="global")
    total = sum(len(removed_outputs(masks_of(pruned, n)["kernel"]))
                for n in ("conv1", "conv2", "fc1"))
    assert total == round(0.5 * (20 + 50 + 500))


def test_bn_scale_weighs_in():
    model = bn_net()
    kernel = np.ones((3, 3, 2, 6), "float32")
    model.get_layer("c1").kernel.assign(kernel)
    model.get_layer("bn").gamma.assign(np.array([3, 1, 4, 0.5, 5, 2], "float32"))
    plain = tfimp.prune(model, 0.5, granularity="channel")
    scaled = tfimp.prune(model, 0.5, granularity=Channels(bn_scale=True))
    np.testing.assert_array_equal(removed_outputs(masks_of(plain, "c1")["kernel"]), [0, 1, 2])
    np.testing.assert_array_equal(removed_outputs(masks_of(scaled, "c1")["kernel"]), [1, 3, 5])


def residual():
    x = keras.Input((8, 8, 3))
    h = L.ReLU()(L.BatchNormalization(name="bn0")(L.Conv2D(4, 3, padding="same", name="stem")(x)))
    y = L.Conv2D(4, 3, padding="same", name="c2")(L.Conv2D(6, 3, padding="same", name="c1")(h))
    h = L.GlobalAveragePooling2D()(L.Add()([h, L.BatchNormalization(name="bn2")(y)]))
    return keras.Model(x, L.Dense(3, name="head")(h))


def test_excluding_one_member_of_a_group_names_the_others():
    with pytest.raises(ValueError, match=r"exclude=\['stem', 'bn0', 'c2', 'bn2'\]") as info:
        tfimp.prune(residual(), 0.5, granularity="channel", exclude=["c2"])
    assert "['c2']" in str(info.value)
    pruned = tfimp.prune(residual(), 0.5, granularity="channel",
                         exclude=["stem", "bn0", "c2", "bn2"])
    assert len(removed_outputs(masks_of(pruned, "c2")["kernel"])) == 0
    assert len(removed_outputs(masks_of(pruned, "c1")["kernel"])) == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"inplace": True}, "does not go with granularity='channel'"),
    ({"targets": {"head": 0.5}}, "model output"),
    ({"targets": {"c1": 0.95}}, r"removes every channel of \['c1'\] \(6 channels\)"),
    ({"targets": {"c2": 0.5}, "exclude": ["stem", "bn0", "c2", "bn2"]}, "Drop one of the two"),
])
def test_bad_channel_arguments(kwargs, match):
    model = residual()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        tfimp.prune(model, 0.5, granularity="channel", **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_rate_that_empties_a_layer_is_refused():
    with pytest.raises(ValueError, match="removes every channel"):
        tfimp.prune(residual(), 0.9, granularity="channel")  # round(0.9 * 4) == 4
    with pytest.raises(ValueError, match="removes every channel"):
        tfimp.prune(residual(), 0.99, granularity="channel", scope="global")


def test_layers_without_a_channel_axis_and_untraceable_models():
    x = keras.Input((5, 3))
    rnn = keras.Model(x, L.Dense(2)(L.LSTM(4, name="lstm")(L.Dense(3, name="pre")(x))))
    with pytest.raises(ValueError, match="no channels that channel pruning can remove"):
        tfimp.prune(rnn, 0.5, granularity="channel")
    with pytest.raises(ValueError, match="no output channels"):
        tfimp.prune(lenet(), 0.5, granularity="channel", targets={"max_pooling2d*": 0.5})

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed"):
        tfimp.prune(net, 0.5, granularity="channel")
    with pytest.raises(ValueError, match="`granularity`"):
        tfimp.prune(lenet(), 0.5, granularity="filter")


def test_set_channel_sparsity_for_imp_rounds():
    from tfimp.structure.masking import set_channel_sparsity

    pruned = tfimp.prune(lenet(), None, granularity="channel", exclude=["fc1"])
    wrappers = pruned_layers(pruned)
    targets = [0.5 if w.layer.name == "conv2" else None for w in wrappers]
    set_channel_sparsity(pruned, 0.2, targets)
    first = removed_outputs(masks_of(pruned, "conv1")["kernel"])
    assert len(first) == 4
    assert len(removed_outputs(masks_of(pruned, "conv2")["kernel"])) == 25
    set_channel_sparsity(pruned, 1 - 0.8 ** 2)
    second = removed_outputs(masks_of(pruned, "conv1")["kernel"])
    assert set(first) <= set(second) and len(second) == round(20 * (1 - 0.8 ** 2))
    assert len(removed_outputs(masks_of(pruned, "fc1")["kernel"])) == 0
    with pytest.raises(ValueError, match="no channel masks"):
        set_channel_sparsity(tfimp.prune(lenet(), None), 0.5)
