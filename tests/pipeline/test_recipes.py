"""Recipes: config round trips, `key=value` overrides, bad input, and an end-to-end smoke run
of every recipe (IMP, export, verification, profiling, report folder) on tiny data."""

import dataclasses
import json

import pytest

from tfimp import IMPConfig
from tfimp.pipeline.recipe import (
    DataSpec,
    ExportSpec,
    ModelSpec,
    ProfileSpec,
    Recipe,
    TrainSpec,
    available,
    load_recipe,
)

RECIPES = ("lenet_300_100", "lenet5", "resnet8", "resnet20", "ds_cnn", "mobilenet_v1_vww",
           "transformer_text", "mnist1d_cnn")


def test_all_architectures_have_a_recipe():
    assert set(RECIPES) <= set(available())


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_round_trips_through_json_config(name):
    r = load_recipe(name)
    assert r.name == name
    again = Recipe.from_config(json.loads(json.dumps(r.get_config())))
    assert again == r
    assert again.digest() == r.digest()
    smoke = r.smoke_recipe()
    assert smoke.imp.rounds == 1 and smoke.data.train_samples <= 64
    assert smoke.digest() != r.digest()


def test_overrides_are_typed_by_field():
    r = load_recipe("lenet_300_100").override(
        "rounds=3", "imp.rate=0.5", "seed=2", "threads=1,2,4", "sparse=false",
        "target_sparsity=none", "data.offline=true", "granularity=block:4x1", "exclude=fc1",
        "layer_rates={'classifier': 0.05}", "model.kwargs.classifier_activation=None",
        "imp.rewind=epoch", "imp.rewind_at=1", "lr=3e-4")
    assert (r.imp.rounds, r.imp.rate, r.seed) == (3, 0.5, 2)
    assert r.profile.threads == (1, 2, 4)
    assert r.export.sparse is False and r.data.offline is True
    assert r.imp.granularity.block == (4, 1) and r.imp.exclude == ("fc1",)
    assert r.imp.layer_rates == {"classifier": 0.05}
    assert r.model.kwargs == {"classifier_activation": None}
    assert r.imp.rewind_arg == ("epoch", 1)
    assert r.train.lr == pytest.approx(3e-4)
    assert r.override("sparse=auto").export.sparse == "auto"


def test_diff_gives_the_overrides_that_rebuild_a_recipe():
    base = load_recipe("lenet_300_100")
    r = base.override("rounds=3", "threads=1,2,4", "layer_rates={'fc1': 0.3}", "granularity=8,1",
                      "data.offline=true", "model.kwargs.classifier_activation=none")
    assert set(r.diff(base)) == {"imp.rounds=3", "profile.threads=1,2,4",
                                 "imp.layer_rates={'fc1':0.3}", "imp.granularity=block:8x1",
                                 "data.offline=true", "model.kwargs.classifier_activation=none"}
    assert base.override(*r.diff(base)) == r
    assert base.diff(base) == []


def test_block_and_per_tensor_int8_overrides_round_trip():
    base = load_recipe("lenet5")
    assert str(base.imp.granularity) == "weight" and base.export.per_channel_dense is True
    r = base.override("granularity=block:16x1:whole", "per_channel_dense=false")
    assert r.imp.granularity.block == (16, 1) and r.imp.granularity.whole_blocks is True
    assert r.export.per_channel_dense is False
    assert set(r.diff(base)) == {"imp.granularity=block:16x1:whole",
                                 "export.per_channel_dense=false"}
    assert Recipe.from_config(json.loads(json.dumps(r.get_config()))) == r
    assert r.digest() != base.digest()


def test_export_spec_picks_the_int8_scales():
    from tfimp.export import Float16, Int8
    from tfimp.pipeline.runner import _quantizations

    assert _quantizations(ExportSpec()) == {"float32": None, "float16": Float16(),
                                            "int8": Int8()}
    assert _quantizations(ExportSpec(float32=False, float16=False,
                                     per_channel_dense=False)) == {
        "int8": Int8(per_channel_dense=False)}


def test_micro_compression_defaults_to_auto_and_overrides():
    r = load_recipe("lenet_300_100")
    assert r.export.micro_compression == "auto"
    assert r.override("export.micro_compression=none").export.micro_compression is None
    assert r.override("micro_compression=lut").export.micro_compression == "lut"
    assert ExportSpec(micro_compression="none").micro_compression is None


def test_keyword_overrides_and_unchanged_original():
    base = load_recipe("lenet5")
    r = base.override(imp__rounds=1, seed=5)
    assert (r.imp.rounds, r.seed) == (1, 5)
    assert base.imp.rounds == 7 and base.seed == 0
    assert r.digest() != base.digest()


@pytest.mark.parametrize("text, message", [
    ("rate=abc", r"Argument `imp.rate` must be a fraction in \(0, 1\) or 'adaptive'"),
    ("rounds=1.5", r"`imp.rounds` expects an integer"),
    ("imp.rat=0.2", r"Unknown recipe field `imp.rat`. Did you mean imp.rate"),
    ("rate=1.5", r"Argument `imp.rate` must be a number in \(0, 1\). Received: imp.rate=1.5"),
    ("kwargs=3", r"ambiguous; write one of \['model.kwargs', 'data.kwargs'\]"),
    ("sparse=maybe", r"`export.sparse` must be True, False or 'auto'"),
    ("rewind=epoch", r"`imp.rewind_at` must be an integer >= 0 when rewind is 'step'"),
    ("imp.block=16,1", r"`imp.block` is gone; write imp.granularity=block:4x1 instead"),
    ("granularity=block:4xz", r"`imp.granularity"),
    ("budget=nan", r"`imp.budget` must be a finite number"),
    ("lr_schedule=linear", r"`train.lr_schedule` must be one of"),
    ("rounds", r"An override must look like key=value"),
    ("offline=maybe", r"`data.offline` expects a bool \(true/false\) or None"),
    ("optimizer=lion", r"`train.optimizer` must be one of"),
    ("threads=0", r"`profile.threads` must be a positive integer"),
    ("layer_rates=[1]", r"`imp.layer_rates` expects a dict"),
    ("micro_compression=zip", r"`export.micro_compression` must be None, 'pruning', 'lut', "
                              r"'sparse' or 'auto'. Received: export.micro_compression='zip'"),
])
def test_bad_overrides_raise_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        load_recipe("lenet_300_100").override(text)


@pytest.mark.parametrize("spec, kwargs, message", [
    (IMPConfig, {"rounds": -1}, "`rounds`"),
    (IMPConfig, {"scope": "model"}, "`scope`"),
    (IMPConfig, {"rewind": "none", "rewind_at": 2}, "`rewind_at`"),
    (IMPConfig, {"budget": -0.1}, "`budget`"),
    (IMPConfig, {"granularity": (0, 1)}, "`granularity.block`"),
    (IMPConfig, {"batch_size": 0}, "`batch_size`"),
    (ExportSpec, {"per_channel_dense": 0}, "export.per_channel_dense"),
    (TrainSpec, {"lr_min_fraction": 1.0}, "train.lr_min_fraction"),
    (TrainSpec, {"lr": 0}, "train.lr"),
    (ExportSpec, {"float32": False, "float16": False, "int8": False}, "nothing to export"),
    (ProfileSpec, {"runs": 0}, "profile.runs"),
    (DataSpec, {"name": "mnist", "train_samples": 0}, "data.train_samples"),
    (ModelSpec, {"name": ""}, "model.name"),
])
def test_specs_validate_their_fields(spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spec(**kwargs)


def test_load_recipe_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "from tfimp.pipeline.recipe import DataSpec, ModelSpec, Recipe\n"
        "def recipe():\n"
        "    return Recipe('mine', ModelSpec('lenet_300_100'), DataSpec('digits'))\n")
    assert load_recipe(path).name == "mine"
    assert load_recipe(str(path)).model.name == "lenet_300_100"


def test_load_recipe_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="recipes: .*lenet_300_100"):
        load_recipe("lenet_301")
    with pytest.raises(ValueError, match="no such file"):
        load_recipe(tmp_path / "missing.py")
    bad = tmp_path / "bad.py"
    bad.write_text("def recipe():\n    return {'name': 'x'}\n")
    with pytest.raises(ValueError, match=r"must define `def recipe\(\) -> Recipe`; got dict"):
        load_recipe(bad)


def test_run_command_rejects_bad_input_before_training(capsys):
    from tfimp.pipeline.runner import main

    assert main(["lenet5", "imp.rat=0.3"]) == 2
    assert "Unknown recipe field `imp.rat`" in capsys.readouterr().err
    assert main(["no_such_recipe"]) == 2
    assert "recipes: " in capsys.readouterr().err
    assert main(["rounds=abc"]) == 2
    assert "`imp.rounds` expects an integer" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end
SMOKE_SPARSITY = 0.5  # smoke runs prune once at rate >= 0.5


def _check_report(report, name):
    from tfimp.data import SYNTHETIC_NOTE

    assert report.errors == []
    assert [h["round"] for h in report.history] == [0, 1]
    assert report.history[0]["sparsity"] == 0.0
    assert report.history[1]["sparsity"] == pytest.approx(SMOKE_SPARSITY, abs=0.05)
    assert 0.0 <= report.dense_metric <= 1.0
    exports = {e.target: e for e in report.exports}
    assert set(exports) == {"float32", "float16", "int8"}
    for e in exports.values():
        with open(e.path, "rb") as f:
            assert f.read(8)[4:8] == b"TFL3"
        assert e.bytes > 0 and e.agreement is not None
        tried = {False, True} if report.recipe.export.sparse == "auto" else {
            report.recipe.export.sparse}
        assert {c["sparse"] for c in e.candidates} == tried
    assert exports["int8"].bytes < exports["float32"].dense_float32_bytes
    assert report.smallest_litert.bytes == min(e.bytes for e in exports.values())
    assert [(r.target, r.threads) for r in report.latency] == [
        (t, n) for t in ("float32", "float16", "int8") for n in (1, 2)]
    assert all(r.median_us > 0 for r in report.latency)
    md = open(f"{report.report_dir}/report.md").read()
    for section in ("## IMP rounds", "## Per-layer sparsity", "## Exported models",
                    "Smallest verified file for LiteRT", "## Latency", "## TFLite Micro"):
        assert section in md
    assert (SYNTHETIC_NOTE in md) == report.synthetic
    saved = json.load(open(f"{report.report_dir}/report.json"))
    assert saved["recipe"]["name"] == name and saved["errors"] == []
    assert len(open(f"{report.report_dir}/history.csv").read().splitlines()) == 3


# The largest recipes' smoke runs take a minute each on 2 cores: they run with -m slow.
_SLOW_SMOKE = ("mobilenet_v1_vww", "resnet8", "resnet20", "transformer_text")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_SMOKE else n
    for n in RECIPES if n != "lenet_300_100"])
def test_recipe_smoke_runs_every_stage(name, tmp_path):
    from tfimp.pipeline.runner import run

    report = run(name, workdir=tmp_path, smoke=True)
    _check_report(report, name)
    if report.micro.get("arena_bytes") is None:
        assert report.micro["arena_error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn", "resnet8", "mobilenet_v1_vww"])
def test_mlperf_tiny_recipes_run_with_every_option(name, tmp_path):
    """The MLPerf Tiny recipes with channel IMP, distillation and the QAT finishing stage:
    every stage runs, and the report has float and int8 accuracy of PTQ and QAT."""
    from tfimp.pipeline.runner import run

    recipe = load_recipe(name).with_options("channel", "distill", "qat").smoke_recipe()
    # Generated data: any round may score best; the budget admits the pruned one.
    report = run(recipe.override("imp.final_qat_epochs=1", "imp.budget=1.0"), workdir=tmp_path)
    assert report.errors == []
    assert report.qat["shrunk"] and report.structure["params_after"] < \
        report.structure["params_before"]
    for key in ("float_accuracy", "ptq_int8_accuracy", "qat_int8_accuracy",
                "qat_int8_agreement", "qat_int8_agreement_float"):
        assert report.qat[key] is not None, key


def test_run_command_smoke_prints_the_report(tmp_path, capsys):
    from tfimp.pipeline.runner import main

    code = main(["lenet_300_100", "--smoke", "--workdir", str(tmp_path), "seed=1",
                 "export.baseline=true", "--option", "qat", "imp.final_qat_epochs=1"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("dense accuracy", "| round | sparsity", "fc1/kernel", "best within budget",
                 "| float32 | ", "| int8 | ", "## Latency", "tensor arena"):
        assert text in out
    from tfimp.pipeline.runner import RunReport  # noqa: F401 (the saved report is complete JSON)

    saved = json.load(open(tmp_path / "report" / "report.json"))
    assert saved["recipe"]["seed"] == 1 and saved["data"]["synthetic"] is False
    assert saved["micro"]["arena_bytes"] > 0
    comp = saved["micro"]["compression"]
    rows = {e["name"]: e for e in comp["encodings"]}
    assert list(rows)[:4] == ["none", "pruning", "lut", "pruning+lut"]
    assert rows["none"]["flash_bytes"] == saved["micro"]["flash_bytes"]
    assert comp["flash_bytes"] == min(e["flash_bytes"] for e in rows.values() if e["flash_bytes"])
    assert all(e["bit_exact"] for e in rows.values() if e["flash_bytes"])
    assert "### TFLite Micro compression" in out and "| dense int8" in out
    assert (tmp_path / "report" / "models" / "lenet_300_100_int8.tflite").is_file()
    exports = {e["target"]: e for e in saved["exports"]}
    assert exports["dense_float32"]["bytes"] == exports["float32"]["dense_float32_bytes"]
    assert {(x["target"], x["threads"]) for x in saved["latency"]} == {
        (t, n) for t in ("float32", "float16", "int8", "dense_float32", "dense_int8")
        for n in (1, 2)}
    assert saved["micro"]["dense_arena_bytes"] > 0
    # The QAT stage gives the int8 file; post-training int8 of the same model sits beside it
    # (not profiled, not the smallest file: a baseline).
    int8, ptq = exports["int8"], exports["int8_ptq"]
    assert int8["agreement"] >= 0.9 and ptq["accuracy_tflite"] is not None
    assert saved["smallest_litert"]["target"] != "int8_ptq"
    assert saved["qat"]["ptq_int8_accuracy"] == ptq["accuracy_tflite"]
    assert saved["qat"]["qat_int8_accuracy"] == int8["accuracy_tflite"]
    assert 0.0 <= saved["qat"]["qat_int8_agreement_float"] <= 1.0
    assert "## Quantization: post-training vs quantization-aware (int8)" in out
    assert "Fastest file of the pruned model at 1 thread: **" in out
    assert saved["smallest_litert"]["bytes"] == min(
        e["bytes"] for e in saved["exports"]
        if not e["target"].startswith("dense_") and e["target"] != "int8_ptq")
    assert "float32, dense round 0 (baseline)" in out


def test_moved_train_keys_still_override_their_new_place():
    r = load_recipe("lenet5").override("train.batch_size=16", "train.epochs_per_round=2",
                                       "imp.seed=4")
    assert (r.imp.batch_size, r.imp.epochs_per_round, r.seed) == (16, 2, 4)


def test_learning_rate_schedule_builds_a_cosine_decay():
    import keras

    from tfimp.pipeline.runner import make_optimizer

    opt = make_optimizer(TrainSpec(optimizer="adam", lr=0.01, lr_schedule="cosine",
                                   lr_min_fraction=0.1), steps_per_round=10)
    schedule = opt._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(0)) == pytest.approx(0.01) and float(schedule(10)) == pytest.approx(0.001)
    sgd = make_optimizer(TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    assert sgd.weight_decay == pytest.approx(1e-4)


def test_default_recipes_spend_at_most_twice_a_gradual_runs_epochs():
    # The measured default (docs/results.md, "IMP vs gradual pruning"): budgeted IMP, 80
    # epochs for the LeNets and MNIST-1D, twice the 40 of a gradual run.
    for name in ("lenet_300_100", "lenet5", "mnist1d_cnn"):
        imp = load_recipe(name).imp
        assert imp.total_epochs == 80 and imp.epoch_plan.total == 80
        assert (imp.rewind, imp.scope, imp.ramp, imp.rate) == ("allr", "lamp", 0.5, 0.45)
    r = load_recipe("lenet_300_100")
    assert r.train.lr_schedule == "cosine"


def test_micro_gets_a_dense_int8_file_when_the_litert_one_is_sparse(tmp_path):
    import types

    import keras
    import numpy as np

    from tfimp.export import Int8, inspect, to_tflite
    from tfimp.pipeline.runner import _micro_source

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.Dense(16)])
    rng = np.random.default_rng(0)
    for layer in model.layers:  # zeros in 1x16 blocks: LiteRT's sparse int8 kernel runs them
        w, b = layer.get_weights()
        kept = rng.random((w.shape[0] // 16, w.shape[1])) < 0.2
        kept[0] = True
        layer.set_weights([w * np.repeat(kept, 16, axis=0), b])
    x = np.random.default_rng(1).random((32, 64)).astype("float32")
    sparse = tmp_path / "m_int8.tflite"
    to_tflite(model, sparse, quantization=Int8(), sparse=True, representative_data=x)
    assert inspect(sparse).sparse_tensors
    recipe = load_recipe("lenet_300_100")
    path = _micro_source(recipe, str(sparse), model, types.SimpleNamespace(x_train=x))
    assert path != str(sparse) and not inspect(path).sparse_tensors
    assert "DENSIFY" not in inspect(path).ops


def test_channel_qat_and_distill_options_from_the_command_line(tmp_path, capsys):
    """`tfimp run lenet5 --option channel,qat,distill`: the shrunk model's QAT stage gives
    the int8 file; the report sets it against post-training int8 of the same model."""
    import json

    from tfimp.pipeline.runner import main

    rc = main(["lenet5", "--smoke", "--option", "channel", "--option", "qat,distill",
               "imp.final_qat_epochs=1", "export.baseline=true", "export.float16=false",
               "--workdir", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["recipe"]["imp"]["granularity"] == "channel"
    assert report["recipe"]["imp"]["distill"] == "dense"
    assert report["recipe"]["imp"]["final_qat_epochs"] == 1  # the user's override wins
    qat = report["qat"]
    assert qat["shrunk"] is True and qat["distill"] == "dense" and qat["epochs"] == 1
    exports = {e["target"]: e for e in report["exports"]}
    # Both int8 files come from the shrunk model: the same layers, so about the same size.
    assert abs(exports["int8"]["bytes"] - exports["int8_ptq"]["bytes"]) < 2_000
    assert report["structure"]["params_after"] < report["structure"]["params_before"]
    assert exports["int8"]["bytes"] < exports["dense_int8"]["bytes"]  # channels gone, not 0s
    assert report["micro"]["arena_bytes"] <= report["micro"]["dense_arena_bytes"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Channels, parameters and MACs" in text and "| channels removed |" in text
    assert "## Quantization: post-training vs quantization-aware (int8)" in text
    assert "retraining distilled from the dense round 0" in text
    assert "--option" in report["command"]


def test_recipe_options_resolve_and_stay_out_of_the_run_identity():
    for name in available():
        recipe = load_recipe(name)
        assert {"distill", "qat"} <= set(recipe.all_options)
        for option in recipe.all_options:
            changed = recipe.with_options(option)
            assert changed.digest() != recipe.digest(), (name, option)
            assert changed.diff(recipe)  # the option shows as key=value overrides
    lenet5 = load_recipe("lenet5")
    assert lenet5.with_options("channel", "qat").imp.final_qat_epochs == 5
    assert lenet5.with_options("channel").imp.granularity.kind == "channel"
    with pytest.raises(ValueError, match="`option`.*'qat'"):
        lenet5.with_options("qta")
    with pytest.raises(ValueError, match="option `fast`.*imp.rouns"):
        dataclasses.replace(lenet5, options={"fast": {"imp.rouns": 1}})


def test_cli_lists_a_recipes_options_and_refuses_an_unknown_one(capsys):
    from tfimp.pipeline.runner import main

    assert main(["lenet5", "--list"]) == 0
    out = capsys.readouterr().out
    assert "channel  imp.granularity=channel" in out and "qat      imp.final_qat_epochs=5" in out
    assert main(["lenet5", "--option", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`option`" in err[0] and "nope" in err[0]


def test_report_names_the_fastest_pruned_file_and_a_faster_dense_baseline():
    from types import SimpleNamespace

    from tfimp.pipeline.report import LatencyRow, _fastest_lines

    rows = (LatencyRow("float32", 1, 10.4), LatencyRow("int8", 1, 15.3),
            LatencyRow("int8", 2, 9.0), LatencyRow("dense_int8", 1, 3.3),
            LatencyRow("dense_float32", 1, 19.0), LatencyRow("float16", 1, error="x"))
    lines = _fastest_lines(SimpleNamespace(latency=rows))
    assert lines[0] == ("Fastest file of the pruned model at 1 thread: **float32, 10.4 us** "
                        "(median).")
    assert "dense round-0 model's int8 file runs faster still (3.3 us)" in lines[1]
    slower = _fastest_lines(SimpleNamespace(latency=rows[:3] + rows[4:]))
    assert len(slower) == 2 and "faster still" not in " ".join(slower)
