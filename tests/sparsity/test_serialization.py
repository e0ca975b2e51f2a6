"""A masked model saved mid-pruning loads with its masks, schedule and step, and resumes."""

import keras
import numpy as np

import tfimp
from tfimp.callbacks import UpdateMasks
from tfimp.sparsity.engine import get_masks, pruned_layers, strip
from tfimp.wrappers import PruneLowMagnitude

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 6)).astype("float32")
Y = RNG.normal(size=(16, 2)).astype("float32")
SCHEDULE = tfimp.PolynomialDecay(0.0, 0.75, begin_step=0, end_step=12, frequency=2)


def build():
    keras.utils.set_random_seed(0)
    x = keras.Input((6,))
    h = L.Dense(8, activation="relu", name="d1")(x)
    h = L.BatchNormalization(name="bn")(h)
    model = keras.Model(x, L.Dense(2, name="d2")(h))
    pruned = tfimp.prune(model, SCHEDULE, targets={"d2": 0.5})
    pruned.compile(keras.optimizers.AdamW(0.02, weight_decay=0.1), "mse")
    return pruned


def fit(model, epochs):
    model.fit(X, Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[UpdateMasks()])


def test_resumed_training_is_identical(tmp_path):
    model = build()
    fit(model, 1)  # steps 0..3: mid-pruning
    path = tmp_path / "mid.keras"
    model.save(path)
    saved_masks = get_masks(model)
    fit(model, 3)

    loaded = keras.saving.load_model(path, safe_mode=True)
    wrappers = pruned_layers(loaded)
    assert [type(w) for w in wrappers] == [PruneLowMagnitude] * 2
    assert all(w.schedule == SCHEDULE for w in wrappers)
    assert [w.target for w in wrappers] == [None, 0.5]
    assert int(loaded.optimizer.iterations.numpy()) == 4
    assert [int(w.pruning_step.numpy()) for w in wrappers] == [2, 2]
    resumed = get_masks(loaded)
    assert list(resumed) == list(saved_masks)
    for name in saved_masks:
        np.testing.assert_array_equal(resumed[name], saved_masks[name])
    assert 0 < sum(int((m == 0).sum()) for m in resumed.values())

    fit(loaded, 3)
    assert int(loaded.optimizer.iterations.numpy()) == 16
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    final = get_masks(loaded)
    assert [int((m == 0).sum()) for m in final.values()] == [36, 8]
    for name, mask in get_masks(model).items():
        np.testing.assert_array_equal(final[name], mask)


def test_saved_masked_model_predicts_the_same(tmp_path):
    model = build()
    fit(model, 1)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    np.testing.assert_array_equal(strip(loaded).predict(X, verbose=0),
                                  model.predict(X, verbose=0))
    for wrapper in pruned_layers(loaded):  # the constraint is back on the loaded variables
        assert wrapper.layer.kernel.constraint.mask is wrapper.masks[0]
