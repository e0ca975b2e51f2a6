import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tfimp
from tfimp.lottery.rundir import unpack

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers_imp import builder, toy_data  # noqa: E402

X, Y = toy_data()
TRAIN, VAL = (X[:90], Y[:90]), (X[90:], Y[90:])


def _run(tmp_path, **kw):
    args = dict(rounds=3, rate=0.5, epochs_per_round=1, batch_size=30, workdir=tmp_path,
                verbose=0)
    args.update(kw)
    return tfimp.imp(builder(), TRAIN, VAL, **args)


def _round_masks(result, r):
    return unpack("m", result._run.load_arrays(f"round_{r:02d}.npz"))


def test_density_is_geometric_and_masks_never_revive(tmp_path):
    result = _run(tmp_path, scope="global")
    prunable = result.history[0]["prunable"]
    for row in result.history:
        assert row["remaining"] == prunable - round((1 - 0.5 ** row["round"]) * prunable)
    for r in range(2, 4):
        previous, current = _round_masks(result, r - 1), _round_masks(result, r)
        for p, c in zip(previous, current):
            assert np.all(c <= p)


def test_block_pruning_keeps_only_whole_blocks(tmp_path):
    # Kernels (8, 16) and (16, 3) in 3x1 blocks: inputs 6-7 and 15 are partial edge blocks.
    result = _run(tmp_path, scope="global", granularity="block:3x1:whole")
    for r in range(1, 4):
        for mask in _round_masks(result, r):
            edge = (mask.shape[0] // 3) * 3
            np.testing.assert_array_equal(mask[edge:], 0)
            groups = mask[:edge].reshape(edge // 3, 3, mask.shape[1])
            assert np.all(groups.min(axis=1) == groups.max(axis=1))
    plain = _run(tmp_path, scope="global", granularity=(3, 1), rounds=1)
    assert any(np.any(m[(m.shape[0] // 3) * 3:] == 1) for m in _round_masks(plain, 1))
    assert len(list(pathlib.Path(tmp_path).glob("imp-*"))) == 2


def test_layer_rates_and_layer_scope(tmp_path):
    result = _run(tmp_path, scope="layer", layer_rates={"out": 0.25}, rounds=2)
    masks = _round_masks(result, 2)
    hidden, out = masks
    assert hidden.size - hidden.sum() == round(0.75 * hidden.size)
    assert out.size - out.sum() == round((1 - 0.75**2) * out.size)


def test_best_is_stripped_and_within_budget(tmp_path):
    result = _run(tmp_path, budget=1.0)
    best = result.best(budget=1.0)
    assert not tfimp.is_pruned(best)
    assert best.count_params() == builder()().count_params()
    report = tfimp.sparsity_report(best)
    assert report.sparsity == pytest.approx(result.history[-1]["sparsity"])
    strict = result.best_round(0.0)
    assert result.dense_metric - strict["val_accuracy"] <= 1e-9


@pytest.mark.parametrize("rewind", ["init", "none"])
def test_rewind_source(tmp_path, rewind):
    # Learning rate 0: retraining changes nothing, so round 1's weights are the rewind point
    # times the mask.
    trained = builder()()
    trained.set_weights([w + 1.0 for w in trained.get_weights()])
    result = tfimp.imp(builder(lr=0.0), TRAIN, VAL, rounds=1, rate=0.5, epochs_per_round=1,
                       rewind=rewind, initial_model=trained, workdir=tmp_path, verbose=0)
    data = result._run.load_arrays("round_01.npz")
    kernel, mask = unpack("w", data)[0], unpack("m", data)[0]
    init = unpack("w", result._run.load_arrays("init.npz"))[0]
    source = init if rewind == "init" else trained.get_weights()[0]
    np.testing.assert_array_equal(kernel, source * mask)


def test_rewind_to_step_saves_snapshot(tmp_path):
    result = _run(tmp_path, rounds=1, rewind=("step", 2))
    assert result._run.has("rewind.npz")
    snap = unpack("w", result._run.load_arrays("rewind.npz"))
    init = unpack("w", result._run.load_arrays("init.npz"))
    assert not np.array_equal(snap[0], init[0])


def test_same_config_resumes_and_history_files(tmp_path):
    first = _run(tmp_path)
    again = _run(tmp_path)
    assert again.workdir == first.workdir
    assert again.history == first.history
    folder = pathlib.Path(first.workdir)
    assert json.loads((folder / "history.json").read_text()) == first.history
    assert (folder / "history.csv").read_text().startswith("round,")
    assert (folder / "accuracy_vs_remaining.png").exists()


_KILL_SCRIPT = """
import sys, pathlib
sys.path.insert(0, {helpers!r})
import numpy as np, tfimp
from helpers_imp import builder, toy_data
x, y = toy_data(n=600)
r = tfimp.imp(builder(dropout=0.2), (x[:500], y[:500]), (x[500:], y[500:]), rounds=3, rate=0.5,
              epochs_per_round=3, batch_size=10, rewind=("epoch", 1), workdir={workdir!r},
              checkpoint="epoch",
              verbose=0)
data = r._run.load_arrays("round_03.npz")
np.savez({out!r}, **data)
"""


def _script(tmp_path, workdir, out):
    path = tmp_path / f"run_{out.stem}.py"
    path.write_text(_KILL_SCRIPT.format(helpers=str(pathlib.Path(__file__).parent),
                                        workdir=str(workdir), out=str(out)))
    return [sys.executable, str(path)]


def test_sigkill_then_resume_gives_same_final_masks(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res_out = tmp_path / "res.npz"
    x, y = toy_data(n=600)
    reference = tfimp.imp(builder(dropout=0.2), (x[:500], y[:500]), (x[500:], y[500:]),
                          rounds=3, rate=0.5, epochs_per_round=3, batch_size=10,
                          rewind=("epoch", 1), workdir=tmp_path / "a", verbose=0,
                          checkpoint="epoch")
    ref = reference._run.load_arrays("round_03.npz")
    kills = 0
    for target in [(0, 2), (2, 1)]:  # kill once (round, epochs done) is reached
        proc = subprocess.Popen(_script(tmp_path, tmp_path / "b", res_out), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            manifests = list((tmp_path / "b").glob("imp-*/manifest.json"))
            if manifests:
                try:
                    m = json.loads(manifests[0].read_text())
                except json.JSONDecodeError:
                    pytest.fail("manifest.json was torn: writes are not atomic")
                if (m["round"] + 1, m["epoch"]) >= target:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    break
            time.sleep(0.05)
        proc.wait(timeout=60)
    assert kills >= 1
    subprocess.run(_script(tmp_path, tmp_path / "b", res_out), check=True, env=env,
                   capture_output=True, timeout=600)
    res = np.load(res_out)
    for key in ref:
        if key.startswith("m"):
            np.testing.assert_array_equal(ref[key], res[key])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rate=1.5), "`rate`"),
        (dict(rate=0.0), "`rate`"),
        (dict(budget=-0.1), "`budget`"),
        (dict(rewind=("epoch", 5)), "round 0's training length"),
        (dict(rewind="lr"), "schedule"),
        (dict(budget=1.5), "`budget`"),
        (dict(budget=float("nan")), "`budget`"),
        (dict(rate="0.2"), "`rate`"),
        (dict(rate=None), "`rate`"),
        (dict(seed="abc"), "`seed`"),
        (dict(metric="mystery_score"), "`metric`"),
        (dict(higher_is_better="yes"), "`higher_is_better`"),
        (dict(rewind="rewind"), "`rewind`"),
        (dict(scope="everything"), "`scope`"),
        (dict(metric="f1"), "`metric`"),
        (dict(epochs_per_round=0), "`epochs_per_round`"),
        (dict(layer_rates={"nope": 0.1}), "`layer_rates`"),
        (dict(rounds=None), "rounds"),
        (dict(granularity="block:3x1:yes"), "`granularity`"),
        (dict(granularity=5), "`granularity`"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run(tmp_path, **kwargs)
    assert not list(pathlib.Path(tmp_path).glob("imp-*/round_*.npz"))


def test_bad_builders_and_data(tmp_path):
    def uncompiled():
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])

    with pytest.raises(ValueError, match="compiled"):
        tfimp.imp(uncompiled, TRAIN, VAL, rounds=1, workdir=tmp_path, verbose=0)
    sizes = iter([16, 32, 32, 32])

    def changing():
        return builder(units=next(sizes))()

    with pytest.raises(ValueError, match="different architecture"):
        tfimp.imp(changing, TRAIN, VAL, rounds=1, workdir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="no samples"):
        tfimp.imp(builder(), (X[:0], Y[:0]), VAL, rounds=1, workdir=tmp_path, verbose=0)
    with pytest.raises(TypeError, match="train_data"):
        tfimp.imp(builder(), X, VAL, rounds=1, workdir=tmp_path, verbose=0)


def test_corrupted_and_foreign_run_folders(tmp_path):
    result = _run(tmp_path, rounds=1)
    folder = pathlib.Path(result.workdir)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted manifest"):
        _run(tmp_path, rounds=1)
    config = json.loads((folder / "config.json").read_text())
    config["imp"]["rate"] = 0.9
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="different config"):
        _run(tmp_path, rounds=1)


def test_sensitivity_table_and_targets():
    model = builder()()
    model.fit(*TRAIN, epochs=3, verbose=0)
    report = tfimp.sensitivity(model, VAL, sparsities=(0.0, 0.5, 0.99))
    assert set(report.table) == {model.layers[0].name, "out"}
    for values in report.table.values():
        assert values[0.0] == pytest.approx(report.dense)
    targets = report.targets(budget=1.0)
    assert all(t == 0.99 for t in targets.values())
    assert "Sensitivity" in str(report)


def test_sensitivity_budget_derives_layer_rates(tmp_path):
    result = _run(tmp_path, rounds=2, sensitivity_budget=0.05)
    manifest = json.loads((pathlib.Path(result.workdir) / "manifest.json").read_text())
    assert len(manifest["rates"]) == 2 and all(0 <= r < 1 for r in manifest["rates"])


def test_prune_functional_model_with_raw_ops():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(4)(inputs)
    b = keras.layers.Dense(4)(inputs)
    outputs = keras.layers.Dense(2)(a + b)
    pruned = tfimp.prune(keras.Model(inputs, outputs), 0.5)
    plain = tfimp.strip(pruned)
    x = np.random.default_rng(0).random((3, 4)).astype("float32")
    np.testing.assert_array_equal(pruned(x), plain(x))
    assert tfimp.sparsity_report(plain).sparsity == 0.5


def test_round_checkpoints_are_deterministic(tmp_path):
    a = _run(tmp_path / "a", rounds=2)
    b = _run(tmp_path / "b", rounds=2)
    for x, y in zip(_round_masks(a, 2), _round_masks(b, 2)):
        np.testing.assert_array_equal(x, y)


def test_exclusions_and_class_rates_hold_across_rebuilt_models(tmp_path):
    # Every build names its hidden layer anew (dense_N): selectors resolve by position.
    result = _run(tmp_path, rounds=2, exclude=["out"], layer_rates={keras.layers.Dense: 0.25})
    (hidden,) = _round_masks(result, 2)
    assert hidden.size - hidden.sum() == round((1 - 0.75**2) * hidden.size)
    assert result.history[-1]["layers"]["out/kernel"] == 0.0


def test_round_weights_equal_strip_of_the_pruned_model(tmp_path):
    from tfimp.lottery.driver import _plain_weights

    model = builder()()
    pruned = tfimp.prune(model, 0.5)
    for a, b in zip(_plain_weights(pruned), tfimp.strip(pruned).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_budget_without_stopping_runs_every_round(tmp_path):
    result = _run(tmp_path, rounds=2, budget=0.0, stop_at_budget=False)
    assert [row["round"] for row in result.history] == [0, 1, 2]
    assert result.budget == 0.0
    with pytest.raises(ValueError, match="`stop_at_budget`"):
        _run(tmp_path, stop_at_budget="no")


def test_imp_takes_a_config_object_and_overrides(tmp_path):
    config = tfimp.IMPConfig(rounds=1, rate=0.5, batch_size=30, budget=0.5)
    a = tfimp.imp(builder(), TRAIN, VAL, config, workdir=tmp_path, verbose=0)
    b = tfimp.imp(builder(), TRAIN, VAL, rounds=1, rate=0.5, batch_size=30, budget=0.5,
                  workdir=tmp_path, verbose=0)
    assert a.workdir == b.workdir  # the same settings name the same run folder
    c = tfimp.imp(builder(), TRAIN, VAL, config, rate=0.25, workdir=tmp_path, verbose=0)
    assert c.workdir != a.workdir and c.history[1]["sparsity"] == pytest.approx(0.25, abs=0.02)


def test_config_round_trips_and_its_hash_is_pinned():
    from tfimp.lottery.rundir import config_hash

    config = tfimp.IMPConfig(rounds=3, rewind="step", rewind_at=5,
                             granularity="block:4x1:whole", exclude=["out"],
                             layer_rates={"out": 0.1}, metric="mse")
    assert tfimp.IMPConfig.from_config(json.loads(json.dumps(config.get_config()))) == config
    assert tfimp.IMPConfig.from_kwargs(rewind=("epoch", 2)).rewind_at == 2
    # The default config's hash names run folders; change it only with the schema version.
    assert config_hash(tfimp.IMPConfig().get_config()) == "e4ca319a5552"


def test_a_builder_passed_as_a_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`build_model`"):
        tfimp.imp(builder()(), TRAIN, VAL, rounds=1, workdir=tmp_path, verbose=0)


def test_lr_rewinding_needs_a_schedule_and_replays_it(tmp_path):
    def scheduled():
        model = builder()()
        lr = keras.optimizers.schedules.CosineDecay(0.05, 3)
        model.compile(keras.optimizers.SGD(lr, momentum=0.9),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    with pytest.raises(ValueError, match="`rewind`.*schedule"):
        _run(tmp_path / "const", rewind="lr")
    result = tfimp.imp(scheduled, TRAIN, VAL, rounds=1, rate=0.5, batch_size=30,
                       rewind="lr", workdir=tmp_path / "sched", verbose=0)
    assert [row["round"] for row in result.history] == [0, 1]


def test_other_data_in_the_same_workdir_starts_another_run(tmp_path):
    a = _run(tmp_path, rounds=1)
    shuffled = (TRAIN[0][::-1].copy(), TRAIN[1][::-1].copy())
    b = tfimp.imp(builder(), shuffled, VAL, rounds=1, rate=0.5, batch_size=30,
                  workdir=tmp_path, verbose=0)
    assert a.workdir != b.workdir


def test_dict_and_tf_data_inputs_have_distinct_fingerprints():
    import tensorflow as tf

    from tfimp.lottery.driver import _Data, _fingerprint

    x = {"a": np.arange(6, dtype="float32").reshape(3, 2), "b": np.ones((3, 1), "int64")}
    first = _fingerprint(_Data(x, np.arange(3), 3))
    x["a"][0, 0] = 7
    assert _fingerprint(_Data(x, np.arange(3), 3)) != first
    ds = lambda k: tf.data.Dataset.from_tensor_slices((X[:8] * k, Y[:8])).batch(4)  # noqa: E731
    assert _fingerprint(_Data(ds(1), None, None)) != _fingerprint(_Data(ds(2), None, None))


def test_lower_is_better_metrics_turn_the_budget_around(tmp_path):
    def regression():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1, name="out")])
        model.compile(keras.optimizers.SGD(0.01), "mse", metrics=["mae"])
        return model

    target = X @ np.linspace(-1, 1, 8).astype("float32")
    for metric in ("mse", "mae", "loss"):
        assert tfimp.IMPConfig(metric=metric).higher_better is False
    result = tfimp.imp(regression, (X[:90], target[:90]), (X[90:], target[90:]), rounds=2,
                       rate=0.6, batch_size=30, metric="mae", budget=0.0,
                       stop_at_budget=False, workdir=tmp_path, verbose=0)
    dense = result.history[0]["val_mae"]
    best = result.best_round(0.0)
    assert best["val_mae"] <= dense + 1e-12
    worse = [row for row in result.history if row["val_mae"] > dense]
    assert all(row["round"] != best["round"] for row in worse)
    assert tfimp.IMPConfig(metric="my_score", higher_is_better=False).higher_better is False
