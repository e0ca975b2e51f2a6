"""UpdateMasks drives schedules from the optimizer step; forgetting it fails loudly."""

import os

import keras
import numpy as np
import pytest

import tfimp
from tfimp.callbacks import SparsityLogger, UpdateMasks
from tfimp.sparsity.engine import get_masks, pruned_layers

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 6)).astype("float32")
Y = RNG.normal(size=(16, 2)).astype("float32")


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu", name="d1"),
                             L.Dense(2, name="d2")])


def compiled(schedule, **compile_kwargs):
    model = tfimp.prune(mlp(), schedule)
    model.compile(keras.optimizers.Adam(0.01), "mse", **compile_kwargs)
    return model


def test_forgetting_the_callback_raises_and_names_the_fix():
    model = compiled(tfimp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=1))
    with pytest.raises(RuntimeError, match=r"callbacks=\[tfimp.callbacks.UpdateMasks\(\)\]"):
        model.fit(X, Y, batch_size=4, verbose=0)
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[UpdateMasks()])
    assert all(m.mean() == 0.5 for m in get_masks(model).values())
    with pytest.raises(RuntimeError, match="UpdateMasks"):  # the schedule prunes forever
        compiled(tfimp.ConstantSparsity(0.5, frequency=1)).fit(X, Y, verbose=0)


def test_after_the_schedule_ends_training_needs_no_callback():
    model = compiled(tfimp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=2))
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[UpdateMasks()])
    masks = get_masks(model)
    model.fit(X, Y, batch_size=4, verbose=0)
    after = get_masks(model)
    assert all(np.array_equal(masks[k], after[k]) for k in masks)


def test_fixed_masks_train_without_callback():
    model = compiled(0.5)
    masks = get_masks(model)
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    for wrapper in pruned_layers(model):
        for var, mask in zip(wrapper.pruned_weights, wrapper.get_masks()):
            np.testing.assert_array_equal(mask, masks[wrapper.weight_names()[0]])
            assert np.all(keras.ops.convert_to_numpy(var)[mask == 0] == 0)
    tfimp.prune(mlp(), None).compile("sgd", "mse")


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_masks_follow_the_optimizer_step(steps_per_execution):
    schedule = tfimp.PolynomialDecay(0.0, 0.75, begin_step=2, end_step=8, frequency=3)
    model = compiled(schedule, steps_per_execution=steps_per_execution)
    seen = []

    class Record(keras.callbacks.Callback):  # runs after UpdateMasks at each batch begin
        def on_train_batch_begin(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            seen.append((step, [int((m == 0).sum()) for m in get_masks(self.model).values()]))

    model.fit(X, Y, batch_size=2, epochs=2, verbose=0, callbacks=[UpdateMasks(), Record()])
    assert len(seen) == (16 if steps_per_execution == 1 else 6)
    for step, zeros in seen:
        # With 3 steps per execution the masks catch up on pruning steps inside a chunk.
        due = max((t for t in range(step + 1) if schedule.should_prune(t)), default=None)
        sparsity = 0.0 if due is None else schedule.sparsity(due)
        assert zeros == [round(sparsity * 48), round(sparsity * 16)], step
    assert [int((m == 0).sum()) for m in get_masks(model).values()] == [36, 12]


def test_update_masks_on_unpruned_model_raises():
    model = mlp()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"no pruned layers.*tfimp.prune"):
        model.fit(X, Y, verbose=0, callbacks=[UpdateMasks()])


def _read_scalars(log_dir):
    import tensorflow as tf

    scalars = {}
    for name in os.listdir(log_dir):
        for record in tf.data.TFRecordDataset(str(log_dir / name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                number = tf.make_ndarray(value.tensor)
                scalars.setdefault(value.tag, []).append((event.step, float(number)))
    return scalars


def test_sparsity_logger_history_and_tensorboard(tmp_path, capsys):
    model = compiled(tfimp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=1))
    logger = SparsityLogger(log_dir=str(tmp_path))
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[UpdateMasks(), logger])
    assert [e["epoch"] for e in logger.history] == [0, 1]
    assert logger.history[-1] == {"epoch": 1, "total": 0.5, "d1/kernel": 0.5, "d2/kernel": 0.5}
    first = tfimp.PolynomialDecay(0.0, 0.5, 0, 4, frequency=1).sparsity(3)  # last step, epoch 0
    assert logger.history[0]["d1/kernel"] == round(first * 48) / 48
    assert history.history["sparsity"] == [e["total"] for e in logger.history]
    assert "total" in capsys.readouterr().out
    scalars = _read_scalars(tmp_path)
    assert set(scalars) == {"sparsity/total", "sparsity/d1/kernel", "sparsity/d2/kernel"}
    assert [v for _, v in scalars["sparsity/total"]] == pytest.approx(
        [e["total"] for e in logger.history])
    assert [step for step, _ in scalars["sparsity/total"]] == [0, 1]


def test_fit_in_a_loop_reuses_the_trace_and_still_catches_a_missing_callback():
    model = compiled(tfimp.PolynomialDecay(0.0, 0.5, 0, 12, frequency=2))
    fit = lambda **kw: model.fit(X, Y, batch_size=4, verbose=0, **kw)
    fit(callbacks=[UpdateMasks()])
    first = model._tfimp_train_function[0]
    fit(callbacks=[UpdateMasks()])
    assert model._tfimp_train_function[0] is first  # not traced again
    with pytest.raises(RuntimeError, match="UpdateMasks"):
        fit()
    fit(callbacks=[UpdateMasks()])
    model.compile(keras.optimizers.SGD(0.1), "mse")  # a new optimizer needs a new trace
    fit(callbacks=[UpdateMasks()])
    assert model._tfimp_train_function[0] is not first
    assert model.optimizer.iterations.numpy() == 4
    assert all(m.mean() == 0.5 for m in get_masks(model).values())
