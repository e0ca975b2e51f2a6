"""`tfimp run`: a recipe end to end: IMP rounds, the best model within the budget, float32 and
int8 .tflite (sparse where it pays), verification, profiling, and a report folder.

The report folder (`WORKDIR/report/`) holds `report.md`, `report.json`, `history.csv`,
`history.json`, `sparsity.txt`, PNG plots (with matplotlib) and `models/*.tflite`.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect as pyinspect
import os
import shlex
import sys
import time
from pathlib import Path

from tfimp import data as data_lib
from tfimp._util import validate as v
from tfimp._util.cli import DEBUG_HELP, verb
from tfimp import profile
from tfimp.export import Float16, Int8, to_micro, to_tflite
from tfimp.pipeline import compare as compare_lib
from tfimp.pipeline import report as run_report
from tfimp.pipeline.recipe import Recipe, available, format_value, load_recipe
from tfimp.pipeline.report import PTQ_TARGET, ExportRow, LatencyRow, RunReport, metric_of
from tfimp.profile.micro import check_emulation, get_board

DEFAULT_RECIPE = "lenet_300_100"
# Test samples that every TFLite Micro encoding must reproduce bit for bit (one TFLM run each).
MICRO_VERIFY_SAMPLES = 256
DEFAULT_OVERRIDES = ("data.offline=true",)


def run(recipe: Recipe | str, workdir: str | os.PathLike | None = None,
        smoke: bool = False, *, command: str | None = None,
        compare: str | None = None, device=None, on_round=None,
        emulate: str | None = None) -> RunReport:
    """Runs `recipe`: IMP, export, verification, profiling; writes the report folder.

    Args:
        recipe: a `Recipe`, or a recipe name / path for `load_recipe`.
        workdir: the run's folder (IMP checkpoints in `imp-HASH/`, the report in `report/`);
            default `runs/NAME-HASH`, so that the same config resumes in the same folder.
        smoke: shrink the run to a few steps on tiny data (all stages still run).
        command: the command line that reproduces the run, for the report.
        compare: "gradual" also runs gradual magnitude pruning with the same epochs and
            data at 90/95/97/98% and at IMP's chosen sparsity, and reports both side by side.
        device: a `tfimp.DeviceBudget` (or `DevicePolicy`): IMP runs device rounds
            (`tfimp.device`), the round it chooses is exported shrunk, and the report holds
            the budget against what was measured, per round and on the exported files.
        on_round: `tfimp.imp`'s per-round hook (a search reports round metrics with it).
        emulate: "cortex-m4" also runs the TFLite Micro model written (and the dense int8
            one) as a micro bundle on an emulated Cortex-M4 and reports the instructions per
            inference (`tfimp.profile.micro(..., emulate=)`; needs the Arm toolchain, QEMU and
            TFIMP_TFLM_DIR, checked before training).

    Returns:
        A `RunReport`; its `errors` lists the stages that failed (the others still ran).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    command = command or _command(recipe, workdir, smoke)
    if smoke:
        recipe = recipe.smoke_recipe()
    check(recipe)
    if compare is not None:
        v.choice("compare", compare, compare_lib.STRATEGIES)
    if emulate is not None:
        check_emulation(emulate)
    start = time.time()
    policy = None if device is None else _policy(device, recipe)
    suffix = "" if policy is None else f"-{policy.slug()}"
    workdir = v.output_folder("workdir", workdir or Path("runs") /
                              f"{recipe.name}-{recipe.digest()}{suffix}")
    report_dir = workdir / "report"
    data = load_data(recipe)
    if data.info.get("synthetic"):
        print(f"tfimp run: {run_report.SYNTHETIC_NOTE}", flush=True)
    result = _imp(recipe, data, workdir, policy, on_round)
    if policy is None:
        best = result.best(budget=recipe.imp.budget)
        row = dict(result.best_round(recipe.imp.budget))
    else:
        best, row = _device_choice(result)
    fields = _imp_fields(recipe, data, result, best, row)
    if compare is not None:
        fields["comparison"] = compare_lib.compare_gradual(
            recipe, data, result, workdir / "compare", make_builder(recipe, data),
            verbose=0)
    if recipe.imp.granularity.kind == "channel" or policy is not None:
        best, fields["structure"], fields["structure_table"] = _shrink(best, result.model(0))
    dense = result.model(0) if recipe.export.baseline else None
    (report_dir / "models").mkdir(parents=True, exist_ok=True)  # once IMP has run
    qat = result.qat_model() if recipe.imp.final_qat_epochs else None
    exports, paths = _export_all(recipe, best, dense, data, report_dir / "models", qat)
    if qat is not None:
        fields["qat"] = _qat_summary(result.qat, exports, best, data, recipe.export)
    latency = _latency(recipe, {t: p for t, p in paths.items() if t != PTQ_TARGET})
    micro = _micro(recipe, paths, report_dir / "micro", data, best if qat is None else qat)
    if emulate is not None and micro is not None and micro.get("c_files"):
        micro["emulated"] = _emulate(emulate, report_dir / "micro", micro["c_model"], paths)
    if policy is not None:
        fields["device"] = _device_report(policy, result, paths, data,
                                          report_dir / f"micro-{policy.slug()}")
    report = RunReport(recipe=recipe, command=command,
                       workdir=str(workdir), report_dir=str(report_dir), exports=exports,
                       latency=latency, micro=micro, seconds=time.time() - start, **fields)
    run_report.write(report, report_dir)
    return report


def load_data(recipe: Recipe):
    """The recipe's dataset from `tfimp.data`, cut to `train_samples`/`test_samples`.

    The split does not depend on `recipe.seed`: seeds vary initialization and training order.
    """
    spec = recipe.data
    ds = data_lib.get(spec.name, offline=spec.offline, **spec.kwargs)
    n_train, n_test = spec.train_samples, spec.test_samples
    return dataclasses.replace(ds, x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train],
                               x_test=ds.x_test[:n_test], y_test=ds.y_test[:n_test])


def make_builder(recipe: Recipe, data):
    """A function that returns the recipe's model, freshly initialised, seeded and compiled.

    The builder's `input_shape` and `num_classes` come from the data unless the recipe
    sets them.
    """
    import keras

    from tfimp import models

    check(recipe)
    fn = models.MODELS[recipe.model.name]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe.model.kwargs.items()}
    params = pyinspect.signature(fn).parameters
    if "input_shape" in params:
        kwargs.setdefault("input_shape", tuple(data.x_train.shape[1:]))
    if "num_classes" in params:
        kwargs.setdefault("num_classes", data.num_classes)

    steps = -(-len(data.x_train) // recipe.imp.batch_size) * recipe.imp.epochs_per_round

    def build():
        keras.utils.set_random_seed(recipe.seed)
        model = fn(**kwargs)
        metrics = [] if recipe.imp.metric == "loss" else [recipe.imp.metric]
        model.compile(optimizer=make_optimizer(recipe.train, steps), loss=recipe.train.loss,
                      metrics=metrics, run_eagerly=recipe.train.run_eagerly)
        return model

    return build


def make_optimizer(train, steps_per_round: int | None = None):
    """The Keras optimizer that a `TrainSpec` names, from the Keras registry; with
    `lr_schedule="cosine"` its rate decays over `steps_per_round` steps."""
    import keras

    lr = train.lr
    if train.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(train.lr, max(int(steps_per_round or 1), 1),
                                                    alpha=train.lr_min_fraction)
    config = {"learning_rate": lr}
    if train.weight_decay:
        config["weight_decay"] = train.weight_decay
    if train.optimizer in ("sgd", "rmsprop"):
        config["momentum"] = train.momentum
    optimizer = keras.optimizers.get(train.optimizer)
    return type(optimizer)(**config)


def _imp(recipe: Recipe, data, workdir: Path, policy=None, on_round=None):
    from tfimp.lottery.driver import imp

    config = dataclasses.replace(recipe.imp, seed=recipe.seed)
    return imp(make_builder(recipe, data), (data.x_train, data.y_train),
               (data.x_test, data.y_test), config, workdir=str(workdir),
               verbose=1 if sys.stdout.isatty() else 2, device=policy,
               on_round=on_round)


def _policy(device, recipe: Recipe):
    from tfimp.device.policy import check_device

    return check_device(device, recipe.imp)


def _device_choice(result) -> tuple:
    """The model and history row of the round the device run chose (fitting or nearest)."""
    r = result.device["round"]
    return result.model(r), dict(next(h for h in result.history if h["round"] == r))


def _device_report(policy, result, paths: dict, data, out: Path) -> dict:
    """The budget against what was measured: per round, and on the exported int8 file."""
    from tfimp.device.report import device_summary

    return device_summary(policy, result, paths.get("int8"), data, out)


def _imp_fields(recipe: Recipe, data, result, best, row: dict) -> dict:
    from tfimp.sparsity.report import sparsity_report

    metric = recipe.imp.metric
    history = tuple(dict(r) for r in result.history)
    report = sparsity_report(best)
    info = dict(data.info, train_samples=len(data.x_train), test_samples=len(data.x_test))
    return dict(data=info, params=int(best.count_params()), metric=metric,
                dense_metric=float(result.dense_metric), history=history,
                budget=recipe.imp.budget, best_round=row, best_metric=metric_of(row, metric),
                sparsity=report.to_dict(), sparsity_table=str(report))


def _export_all(recipe: Recipe, model, dense, data, out: Path, qat=None) -> tuple[tuple, dict]:
    """Exports the best model (float32/float16/int8; int8 from its QAT stage when there is
    one, with the post-training int8 of the same model beside it as `int8_ptq`) and, when
    given, the dense round-0 model as float32 and int8 baselines; returns the rows and the
    paths of the files that were written."""
    spec = recipe.export
    jobs = [(t, qat if t == "int8" and qat is not None else model, q, spec.sparse)
            for t, q in _quantizations(spec).items()]
    if qat is not None and spec.int8:
        jobs.append((PTQ_TARGET, model, Int8(per_channel_dense=spec.per_channel_dense),
                     spec.sparse))
    if dense is not None:
        jobs.append(("dense_float32", dense, None, False))
        if spec.int8:
            jobs.append(("dense_int8", dense, Int8(per_channel_dense=spec.per_channel_dense),
                         False))
    rows, paths = [], {}
    for target, keras_model, quantization, sparse in jobs:
        path = out / f"{recipe.name}_{target}.tflite"
        row = _export(keras_model, path, target, quantization, sparse, spec, data)
        rows.append(row)
        if not row.error:
            paths[target] = str(path)
    return tuple(rows), paths


def _qat_summary(stage: dict, exports, model, data, spec) -> dict:
    """The QAT stage against post-training quantization of the same model, on the verify
    samples: the float model's accuracy, each int8 file's accuracy, and how often each int8
    file predicts what the float model predicts."""
    import numpy as np

    from tfimp.export.verify import run_litert

    out = dict(stage)
    x, y = data.x_test[:spec.verify_samples], data.y_test[:spec.verify_samples]
    reference = np.asarray(model.predict(x, verbose=0, batch_size=256))
    classes = reference.ndim == 2 and reference.shape[-1] > 1 and y.ndim == 1
    if classes:
        reference = reference.argmax(-1)
        out["float_accuracy"] = float(np.mean(reference == y))
    rows = {e.target: e for e in exports}
    for target, key in ((PTQ_TARGET, "ptq"), ("int8", "qat")):
        e = rows.get(target)
        if e is None or e.error:
            continue
        out[f"{key}_int8_accuracy"] = e.accuracy_tflite
        out[f"{key}_int8_agreement"] = e.agreement  # with the Keras model it was made from
        if classes:
            lite = run_litert(e.path, x)[0].argmax(-1)
            out[f"{key}_int8_agreement_float"] = float(np.mean(lite == reference))
    return out


def _shrink(model, dense) -> tuple:
    """The channel-pruned best model with its removed channels gone, and what that changed
    against the dense model: channels, parameters and MACs per layer."""
    from tfimp.structure.report import structure_report
    from tfimp.structure.shrink import shrink

    small = shrink(model)
    report = structure_report(small, reference=dense)
    return small, report.to_dict(), str(report)


def _quantizations(spec) -> dict:
    """The quantization of each exported target that the `ExportSpec` asks for."""
    out = {"float32": None, "float16": Float16(),
           "int8": Int8(per_channel_dense=spec.per_channel_dense)}
    return {t: q for t, q in out.items() if getattr(spec, t)}


def _export(model, path: Path, target: str, quantization, sparse, spec, data) -> ExportRow:
    n = spec.verify_samples
    try:
        art = to_tflite(model, path, quantization=quantization, sparse=sparse,
                        representative_data=_calibration(data.x_train[:spec.calibration_samples]),
                        verify=(data.x_test[:n], data.y_test[:n]))
    except (ValueError, RuntimeError) as e:
        return ExportRow(target, error=_first_line(e))
    r, v = art.report, art.report.verification
    cands = tuple({"sparse": c.sparse, "bytes": c.bytes, "runs": c.runs, "passed": c.passed}
                  for c in r.candidates)
    return ExportRow(target, str(path), r.sparse, r.tflite_bytes, r.gzip_bytes,
                     r.dense_float32_bytes, cands,
                     None if v is None else v.accuracy_keras,
                     None if v is None else v.accuracy_tflite,
                     None if v is None else v.agreement)


def _calibration(x):
    """Calibration inputs for `to_tflite`; integer inputs (token ids) keep their dtype."""
    if x.dtype.kind not in "iu":
        return x
    return lambda: ([x[i:i + 1]] for i in range(len(x)))


def _latency(recipe: Recipe, paths: dict) -> tuple[LatencyRow, ...]:
    rows = []
    for target, path in paths.items():
        for threads in recipe.profile.threads:
            try:
                b = profile.litert(path, threads=threads, runs=recipe.profile.runs)
            except (ValueError, RuntimeError, OSError) as e:
                rows.append(LatencyRow(target, threads, error=_first_line(e)))
                continue
            rows.append(LatencyRow(target, threads, b.median_us, b.p90_us, b.avg_us))
    return tuple(rows)


def _micro(recipe: Recipe, paths: dict, out: Path, data, model) -> dict | None:
    """TFLite Micro arena, flash and board verdict of the int8 model; with `export.micro`, its
    C source, the weights in `export.micro_compression`'s encodings, verified bit for bit on
    test samples, and the flash and arena of every encoding tried."""
    if not recipe.profile.micro or "int8" not in paths:
        return None
    try:
        source = _micro_source(recipe, paths["int8"], model, data)
        info = profile.micro(source, board=recipe.profile.board).get_config()
    except (ValueError, RuntimeError, OSError) as e:
        return {"arena_bytes": None, "error": _first_line(e)}
    if "dense_int8" in paths:
        try:
            info["dense_arena_bytes"] = profile.micro(paths["dense_int8"]).arena_bytes
        except (ValueError, RuntimeError, OSError) as e:
            info["dense_arena_error"] = _first_line(e)
    if recipe.export.micro and info.get("arena_bytes") is not None:
        xs = data.x_test[:min(recipe.export.verify_samples, MICRO_VERIFY_SAMPLES)]
        try:
            art = to_micro(source, out, inputs=xs,
                           compression=recipe.export.micro_compression,
                           board=recipe.profile.board)
        except (ValueError, RuntimeError, OSError) as e:
            info["error"] = f"C array: {_first_line(e)}"
            return info
        info["c_files"] = list(art.files)
        info["c_model"] = str(source)  # the int8 file the C array holds, before compression
        info["compression"] = _compression_summary(art)
    return info


def _emulate(core: str, micro_dir: Path, c_model: str, paths: dict) -> dict:
    """Instructions per inference of the TFLite Micro model written (and of the dense int8
    model) on the emulated `core`."""
    written = micro_dir / "model.tflite"  # to_micro keeps it when it compressed the model
    source = written if written.exists() else Path(c_model)
    out = {"core": core}
    for key, path in (("instructions", source), ("dense_instructions", paths.get("dense_int8"))):
        if path is None:
            continue
        try:
            out[key] = profile.micro(path, emulate=core).instructions
        except (ValueError, RuntimeError, OSError) as e:
            out["error"] = f"{key}: {_first_line(e)}"
            break
    return out


def _micro_source(recipe: Recipe, int8_path: str, model, data) -> str:
    """The int8 file TFLite Micro runs: the exported one, or, when that one stores tensors in
    TFLite's sparse encoding (DENSIFY, which TFLM lacks), the same model exported dense."""
    from tfimp.export import inspect

    info = inspect(int8_path)
    if not info.sparse_tensors and "DENSIFY" not in info.ops:
        return int8_path
    path = Path(int8_path).with_name(f"{recipe.name}_int8_micro.tflite")
    spec = recipe.export
    to_tflite(model, path, quantization=Int8(per_channel_dense=spec.per_channel_dense),
              sparse=False,
              representative_data=_calibration(data.x_train[:spec.calibration_samples]))
    return str(path)


def _compression_summary(art) -> dict:
    """The encoding written and, per encoding tried, its flash, arena and tensor counts."""
    return {
        "written": art.compression, "flash_bytes": art.model_bytes,
        "arena_bytes": art.arena_bytes, "board": art.board,
        "encodings": [{"name": r.name, "flash_bytes": r.flash_bytes,
                       "arena_bytes": r.arena_bytes, "bit_exact": r.bit_exact, "fits": r.fits,
                       "tensors": r.counts(), "note": r.note} for r in art.encodings],
        "tensors": [t.to_dict() for t in art.tensors],
    }


def check(recipe: Recipe) -> None:
    """Raises ValueError for a model, dataset or board name that the run would fail on."""
    from tfimp import models

    if recipe.model.name not in models.MODELS:
        raise ValueError(f"Argument `model.name` must be one of {sorted(models.MODELS)}. "
                         f"Received: model.name={recipe.model.name!r}")
    models.check_kwargs(recipe.model.name, recipe.model.kwargs, "model.kwargs")
    _check_keras_name("train.loss", recipe.train.loss, "losses")
    if recipe.imp.metric != "loss":
        _check_keras_name("imp.metric", recipe.imp.metric, "metrics")
    if recipe.imp.final_qat_epochs and not recipe.export.per_channel_dense:
        v.fail("export.per_channel_dense", False, "true when imp.final_qat_epochs is set (the "
               "QAT stage trains one weight scale per Dense unit, as the int8 file then "
               "stores them); set imp.final_qat_epochs=0 for per-tensor Dense scales")
    if recipe.data.name not in data_lib.DATASETS:
        raise ValueError(f"Argument `data.name` must be one of {sorted(data_lib.DATASETS)}. "
                         f"Received: data.name={recipe.data.name!r}")
    if recipe.profile.board is not None:
        get_board(recipe.profile.board)


def _check_keras_name(field: str, name: str, kind: str) -> None:
    """Raises unless Keras knows the loss or metric `name` (as `compile` would look it up)."""
    import keras

    try:
        getattr(keras, kind).get(name)
    except ValueError:
        v.fail(field, name, f"the name of a Keras {kind[:-1]} (e.g. "
               f"{'sparse_categorical_crossentropy' if kind == 'losses' else 'accuracy'})")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _options_text(recipe: Recipe) -> str:
    """A recipe's description and its options with the overrides each one applies."""
    lines = [f"{recipe.name}: {recipe.description}".rstrip(": "), "options (--option NAME):"]
    options = recipe.all_options
    width = max(map(len, options))
    for name in sorted(options):
        sets = " ".join(f"{k}={format_value(val)}" for k, val in options[name].items())
        lines.append(f"  {name:<{width}}  {sets}")
    return "\n".join(lines)


def _command(recipe: Recipe, workdir, smoke: bool) -> str:
    """The `tfimp run` command line that reproduces `recipe` (before smoke shrinking)."""
    if recipe.name in available():
        words = [recipe.name, *map(shlex.quote, recipe.diff(load_recipe(recipe.name)))]
    else:
        words = ["RECIPE_FILE.py"]
    words += [f"--workdir {workdir}"] if workdir else []
    return " ".join(["tfimp run", *words, *(["--smoke"] if smoke else [])])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfimp run",
        description="Run a recipe end to end: IMP rounds, the best model within the accuracy "
                    "budget, float32/int8 .tflite, verification, LiteRT/TFLite Micro profile, "
                    f"report folder. Without a recipe: {DEFAULT_RECIPE} on the offline digits.",
        epilog=DEBUG_HELP)
    p.add_argument("args", nargs="*", metavar="[RECIPE] [key=value ...]",
                   help="a recipe name or recipes/NAME.py, then field overrides such as "
                        "rounds=3 imp.rate=0.5 imp.epochs_per_round=2 seed=1")
    p.add_argument("--workdir", default=None, help="run folder (default runs/NAME-HASH)")
    p.add_argument("--smoke", action="store_true",
                   help="a few steps on tiny data, every stage kept (for tests)")
    p.add_argument("--option", action="append", default=[], metavar="NAME[,NAME]",
                   help="switch on a recipe option by name, e.g. qat, distill, channel "
                        "(repeatable; `tfimp run RECIPE --list` lists a recipe's options)")
    p.add_argument("--list", action="store_true",
                   help="list the recipes (with a recipe: its options) and exit")
    p.add_argument("--board", default=None,
                   help="a device to fit: a TFLite Micro board (e.g. cortex-m0plus-32k: its "
                        "flash and RAM) or a LiteRT latency target (with --budget latency=...)")
    p.add_argument("--budget", default=None, metavar="SPEC",
                   help="a device budget, e.g. flash=256k,ram=32k or latency=5ms,"
                        "runtime=litert (with --board: overrides the board's numbers)")
    p.add_argument("--from-search", default=None, metavar="DIR",
                   help="rerun a trial of the `tfimp search` in DIR (its --workdir): the best "
                        "point within the recipe's accuracy budget, or --trial K")
    p.add_argument("--trial", type=int, default=None, metavar="K",
                   help="with --from-search: the trial (slot) to rerun")
    p.add_argument("--emulate", choices=["cortex-m4"], default=None,
                   help="also count the instructions per inference of the TFLite Micro model "
                        "on an emulated core (needs TFIMP_TFLM_DIR, the Arm toolchain, QEMU)")
    p.add_argument("--compare", choices=compare_lib.STRATEGIES, default=None,
                   help="also run gradual magnitude pruning on the same data and epochs "
                        "(one run per sparsity: 90/95/97/98%% and IMP's) and report both")
    return p


@verb("tfimp run")
def main(argv: list[str]) -> int:
    """`tfimp run [RECIPE] [--workdir DIR] [--smoke] [key=value ...]`."""
    args = _parser().parse_intermixed_args(argv)
    words = list(args.args)
    name = words.pop(0) if words and "=" not in words[0] else None
    if args.list and name is None:
        print("\n".join(available()))
        return 0
    if args.trial is not None and args.from_search is None:
        v.fail("--trial", args.trial, "used with --from-search DIR")
    if args.from_search is not None:
        return _from_search(args, name, words)
    recipe = load_recipe(name or DEFAULT_RECIPE)
    if args.list:
        print(_options_text(recipe))
        return 0
    options = [o.strip() for text in args.option for o in text.split(",") if o.strip()]
    recipe = recipe.with_options(*options)
    if args.smoke:  # before the user's overrides, which win
        recipe = recipe.smoke_recipe()
    recipe = recipe.override(*(() if name else DEFAULT_OVERRIDES), *words)
    device = _checked(recipe, args)
    command = "tfimp run " + " ".join(argv)
    return _run_and_print(recipe, args, command, device)


def _checked(recipe: Recipe, args):
    """Checks the recipe, the work folder and the device budget of `tfimp run` before it
    trains; returns the budget (None without --board / --budget)."""
    check(recipe)
    if args.workdir is not None:
        v.output_folder("--workdir", args.workdir)
    device = _device_arg(args.board, args.budget)
    if device is not None:
        _policy(device, recipe)
    return device


def _from_search(args, name: str | None, words: list[str]) -> int:
    """`tfimp run --from-search DIR [--trial K] [key=value ...]`: a search's trial again."""
    from tfimp.search.report import trial_recipe

    if args.smoke or args.option:
        v.fail("--from-search", args.from_search, "used without --smoke and --option (the "
               "search's trial says what it ran)")
    recipe, row = trial_recipe(args.from_search, args.trial)
    if name is not None and name != recipe.name:
        v.fail("recipe", name, f"the search's recipe {recipe.name!r} (or left out)")
    recipe = recipe.override(*words)
    device = _checked(recipe, args)
    print(f"tfimp run: trial {row['slot']} of {args.from_search}: "
          f"{' '.join(row['overrides']) or '(the recipe as it is)'}", flush=True)
    command = f"tfimp run --from-search {args.from_search} --trial {row['slot']}"
    return _run_and_print(recipe, args, command + "".join(f" {w}" for w in words), device)


def _run_and_print(recipe: Recipe, args, command: str, device=None) -> int:
    report = run(recipe, workdir=args.workdir, command=command.strip(),
                 compare=args.compare, device=device, emulate=args.emulate)
    print(report.markdown())
    print(f"report folder: {report.report_dir}")
    for line in report.errors:
        print(f"tfimp run: stage failed: {line}", file=sys.stderr)
    return 1 if report.errors else 0


def _device_arg(board: str | None, budget: str | None):
    """The `DeviceBudget` of `--board` and `--budget` (None without either)."""
    from tfimp.device.budget import budget_for, parse_budget

    if budget is not None:
        return parse_budget(budget, board)
    return None if board is None else budget_for(board)


__all__ = ["ExportRow", "LatencyRow", "RunReport", "load_data", "main", "make_builder",
           "make_optimizer", "metric_of", "run", "check"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
