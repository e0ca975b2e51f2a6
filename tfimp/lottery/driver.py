"""Iterative Magnitude Pruning: train, prune a fraction of what remains, rewind, retrain.

Example:

    def build():
        model = tfimp.models.lenet_300_100()
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    result = tfimp.imp(build, (x, y), (x_val, y_val), rounds=8, rate=0.2,
                       epochs_per_round=5, rewind="init", scope="global", workdir="runs/lenet")
    best = result.best(budget=0.01)     # sparsest round within 1 point of the dense model

Round 0 trains the dense model. Round r >= 1 computes masks from the weights trained in round
r-1 (so the density is `(1 - rate) ** r`), sets the weights to the rewind point, and retrains
with fixed masks and a fresh optimizer (with `ramp`, the masks move to the round's density
during its first part). With `total_epochs` the driver spends a budget: it fits the learning
rate schedule to each round's length, gives a round the epochs an earlier one left, and with
`rate="adaptive"` prunes from the last round within the accuracy budget (`budget.py`).
`strategy="gradual"` instead trains one run that prunes as it goes. The run folder makes all
of it resumable after a kill.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from typing import Any, Callable, Sequence

import keras
import numpy as np
from absl import logging

from tfimp._util import validate as v
from tfimp._util.errors import TfimpError
from tfimp.lottery import budget as budget_lib
from tfimp.lottery.config import SCHEMA, IMPConfig, metric_drop
from tfimp.lottery import lr as lr_lib
from tfimp.lottery.distill import Distiller
from tfimp.lottery.report import RoundPrinter, write_history, write_plots
from tfimp.lottery.rundir import RunDir, pack, unpack
from tfimp.lottery.sensitivity import sensitivity
from tfimp.sparsity import masks as masks_lib
from tfimp.sparsity import schedules as schedules_lib
from tfimp.sparsity.engine import Plan, check_selectors, matches, pruned_layers, select
from tfimp.sparsity.engine import prune as prune_model
from tfimp.sparsity.callbacks import UpdateMasks
from tfimp.sparsity.engine import strip, update_masks, walk_layers
from tfimp.sparsity.registry import prunable_weights
from tfimp.sparsity.report import sparsity_report

__all__ = ["imp", "IMPResult"]


# ---------------------------------------------------------------------------- data
@dataclasses.dataclass
class _Data:
    x: Any
    y: Any
    size: int | None

    def batches(self, batch_size: int) -> int | None:
        return None if self.size is None else math.ceil(self.size / batch_size)


def _data(name: str, data) -> _Data:
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        card = int(data.cardinality())
        if card == 0 or next(iter(data.take(1)), None) is None:
            raise ValueError(f"Argument `{name}` is an empty dataset. Received: {name}={data!r}")
        v.first_batch_finite(name, data)
        return _Data(data, None, None)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(
            f"Argument `{name}` must be a tuple (x, y) of arrays or a batched tf.data.Dataset "
            f"of (x, y). Received: {name}={type(data).__name__}"
        )
    x, y = data
    n = v.sample_count(name, x)
    if n == 0:
        raise ValueError(f"Argument `{name}` holds no samples. Received: {name} with len(x)=0")
    if len(y) != n:
        raise ValueError(f"Argument `{name}` has {n} inputs but {len(y)} labels.")
    v.finite(name, x)
    v.finite(name, y)
    return _Data(x, y, n)


def _check_fits(name: str, d: _Data, model) -> _Data:
    """`d` after checking it against the model: input shapes and label ranges for arrays;
    a dataset is checked batch by batch as it is read."""
    if d.size is not None:
        v.fits_model(name, d.x, d.y, model)
        return d
    classes = v.class_count(model) if v.sparse_labels(model) else None
    return _Data(v.checked_dataset(name, d.x, classes), None, None)


def _check_initial_model(initial, reference) -> None:
    if initial is None:
        return
    same = isinstance(initial, keras.Model) and initial.built and [
        tuple(w.shape) for w in initial.weights] == [tuple(w.shape) for w in reference.weights]
    if not same:
        v.fail("initial_model", v.summary(initial) if not isinstance(initial, keras.Model)
               else initial.name, "a trained model of the architecture `build_model` builds "
               "(the same weight shapes), or None")
    for w in initial.get_weights():
        v.finite("initial_model", w)


def _check_teacher_fits(teacher, reference) -> None:
    """A teacher must predict what the student predicts: the same output shapes."""
    if teacher is None:
        return
    if not isinstance(teacher, keras.Model) or not teacher.built or \
            v.model_output_shapes(teacher) != v.model_output_shapes(reference):
        v.fail("teacher", v.summary(teacher) if not isinstance(teacher, keras.Model)
               else teacher.name, f"a trained model with the student's output shapes "
               f"{v.model_output_shapes(reference)}")
    for w in teacher.get_weights():
        v.finite("teacher", w)


def _check_learning_rate(model) -> None:
    """A learning rate that is NaN, infinite or negative trains a broken model in silence
    (0 is allowed: it freezes the weights)."""
    lr = model.optimizer._learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(0)
    value = float(keras.ops.convert_to_numpy(lr))
    if not (math.isfinite(value) and value >= 0):
        v.fail("build_model", v.Described(f"<model compiled with learning_rate={value}>"),
               "a function that compiles the model with a finite learning rate >= 0")


def _fingerprint(d: _Data) -> dict:
    """What identifies the data of a run: shapes, dtypes and a hash of the bytes of arrays;
    for a `tf.data.Dataset` (which can't be hashed without reading it all), its element
    spec, cardinality and a hash of its first batch."""
    if d.size is None:
        first = next(iter(d.x.take(1)))
        return {"kind": "tf.data", "spec": str(d.x.element_spec),
                "cardinality": int(d.x.cardinality()), "first_batch": _hash_arrays(first)}
    return {"kind": "arrays", "n": d.size, "x": _hash_arrays(d.x), "y": _hash_arrays(d.y)}


def _hash_arrays(value) -> str:
    """sha256 over the dtype, shape and bytes of every array in a (nested) structure."""
    h = hashlib.sha256()

    def feed(item):
        if isinstance(item, dict):
            for key in sorted(item):
                h.update(str(key).encode())
                feed(item[key])
        elif isinstance(item, (tuple, list)):
            for sub in item:
                feed(sub)
        else:
            array = np.ascontiguousarray(item if isinstance(item, np.ndarray)
                                         else keras.ops.convert_to_numpy(item))
            h.update(f"{array.dtype.str}{array.shape}".encode())
            h.update(memoryview(array).cast("B"))

    feed(value)
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- models
def _build(build_model: Callable[[], keras.Model], reference: keras.Model | None) -> keras.Model:
    model = build_model()
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `build_model` must return a compiled Keras 3 model. Received an object of "
            f"type {type(model).__name__}."
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Argument `build_model` must return a *compiled* model (call model.compile(optimizer,"
            f" loss, metrics) inside it). Model '{model.name}' is not compiled."
        )
    if not model.built:
        raise ValueError(f"Argument `build_model` returned an unbuilt model '{model.name}'; "
                         "give it a keras.Input(shape=...).")
    if reference is not None:
        got = [tuple(w.shape) for w in model.weights]
        want = [tuple(w.shape) for w in reference.weights]
        if got != want:
            raise ValueError(
                "Argument `build_model` returned a different architecture on a second call "
                f"(weight shapes {got[:4]}... vs {want[:4]}...). It must build the same model "
                "each time."
            )
    return model


def _compile_like(pruned: keras.Model, model: keras.Model, lr_override: float | None) -> None:
    config = model.get_compile_config()
    if lr_override is not None:
        opt = dict(config["optimizer"])
        opt["config"] = dict(opt["config"], learning_rate=lr_override)
        config = dict(config, optimizer=opt)
    pruned.compile_from_config(config)


def _final_lr(model: keras.Model, steps: int) -> float | None:
    lr = model.optimizer._learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return float(keras.ops.convert_to_numpy(lr(steps)))
    return None


def _masks_list(pruned) -> list[np.ndarray]:
    return [m for w in pruned_layers(pruned) for m in w.get_masks()]


def _plain_weights(model) -> list[np.ndarray]:
    """The weights a stripped copy of `model` would have, without building one."""
    own = {id(v) for w in pruned_layers(model) for v in [*w.masks, w.pruning_step]}
    return [keras.ops.convert_to_numpy(v) for v in model.weights if id(v) not in own]


def _masked(model, round_arrays: dict, wrap) -> keras.Model:
    """`model` wrapped as the run wraps it, with the masks saved for its round."""
    masks = unpack("m", round_arrays)
    if not masks:
        return model
    pruned = wrap(model, model)
    _set_masks_list(pruned, masks)
    return pruned


def _qat_source(masked: keras.Model, granularity) -> keras.Model:
    """What the QAT stage trains: the masked model, or with channel granularity the shrunk
    one (its pruned channels gone, as the run exports it)."""
    if granularity is None or granularity.kind != "channel":
        return masked
    from tfimp.structure.shrink import shrink

    return shrink(masked)


def _set_masks_list(pruned, masks: Sequence[np.ndarray]) -> None:
    i = 0
    for w in pruned_layers(pruned):
        n = len(w.masks)
        w.assign_masks(list(masks[i:i + n]))
        i += n


# ---------------------------------------------------------------------------- result

@dataclasses.dataclass
class IMPResult:
    """What an IMP run produced: the per-round history and access to each round's model."""

    history: list[dict]
    metric: str
    dense_metric: float
    workdir: Any
    _build: Callable = dataclasses.field(repr=False, default=None)
    _run: RunDir = dataclasses.field(repr=False, default=None)
    budget: float | None = None
    higher_better: bool = True
    qat: dict | None = None
    _scope: str = dataclasses.field(repr=False, default="global")
    _exclude: tuple = dataclasses.field(repr=False, default=())
    _granularity: Any = dataclasses.field(repr=False, default=None)
    device: dict | None = None

    def _drop(self, row: dict) -> float:
        return metric_drop(self.dense_metric, row[f"val_{self.metric}"], self.higher_better)

    def best_round(self, budget: float | None = None) -> dict:
        """The sparsest round whose metric is within `budget` of the dense model's."""
        budget = self.budget if budget is None else budget
        budget = 0.0 if budget is None else v.non_negative("budget", budget)
        ok = [row for row in self.history if self._drop(row) <= budget + 1e-12]
        return max(ok, key=lambda row: row["sparsity"])

    def model(self, round_index: int) -> keras.Model:
        """The stripped model at the end of round `round_index`."""
        rounds = [row["round"] for row in self.history]
        if isinstance(round_index, bool) or round_index not in rounds:
            v.fail("round_index", round_index, f"one of the run's rounds {rounds}")
        data = self._run.load_arrays(f"round_{round_index:02d}.npz")
        model = self._build()
        model.set_weights(unpack("w", data))
        return model

    def best(self, budget: float | None = None) -> keras.Model:
        """The sparsest round's model within `budget`, stripped (a plain Keras model)."""
        return self.model(self.best_round(budget)["round"])

    def qat_model(self) -> keras.Model:
        """The quantization-aware model of the final QAT stage (`final_qat_epochs`), masks
        kept (with channel granularity: the shrunk model, its pruned channels gone);
        `tfimp.export.to_tflite(m, quantization="int8")` writes its int8 file."""
        from tfimp.quantization.qat import quantize_aware
        from tfimp.sparsity.engine import prune

        if not self.qat:
            raise ValueError("This run has no QAT stage: run tfimp.imp(..., "
                             "final_qat_epochs=N) to add one.")
        r = self.qat["round"]

        def wrap(model, _):
            layers = list(walk_layers(model))
            return prune(model, None, scope=self._scope, granularity=self._granularity,
                         exclude=tuple(layers[i].name for i in self._exclude))

        masked = _masked(self.model(r), self._run.load_arrays(f"round_{r:02d}.npz"), wrap)
        qat = quantize_aware(_qat_source(masked, self._granularity))
        for var, value in zip(qat.weights, unpack("w", self._run.load_arrays("qat.npz"))):
            var.assign(value)
        return qat

    @property
    def final(self) -> keras.Model:
        return self.model(self.history[-1]["round"])


# ---------------------------------------------------------------------------- the driver
def imp(
    build_model: Callable[[], keras.Model],
    train_data,
    val_data,
    config: IMPConfig | None = None,
    *,
    initial_model: keras.Model | None = None,
    teacher: keras.Model | None = None,
    workdir=None,
    verbose: int = 1,
    device=None,
    on_round: Callable[[dict, float], None] | None = None,
    **settings,
) -> IMPResult:
    """Runs Iterative Magnitude Pruning and returns the per-round history.

    Args:
        build_model: returns a fresh, compiled Keras 3 model (the same architecture each call).
        train_data: `(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)`.
        val_data: the same for validation; its metric decides the budget.
        config: an `IMPConfig`; None uses its defaults.
        initial_model: start from this trained model instead of training round 0.
        teacher: the teacher of `distill="teacher"` (a trained Keras model with the same
            inputs and outputs); passing one implies it.
        workdir: parent folder for the run folder `imp-<config hash>`; resumes if it exists.
        verbose: 0 silent; 1 the round table, a progress bar across rounds and Keras' progress
            within each round; 2 the round table only (for logs and files).
        on_round: called as `on_round(row, dense_metric)` with each round's history row once
            it is saved (rounds a resumed run replays too); an exception it raises stops the
            run there, resumable (a search's pruner stops bad trials this way).
        **settings: `IMPConfig` fields that override `config` (rounds=8, rate=0.2,
            rewind="lr", budget=0.01, granularity="block:4x1", ...); `rewind=("step", k)`
            stands for rewind="step", rewind_at=k.
        device: a `tfimp.DeviceBudget` (or a `tfimp.device.DevicePolicy`): every round's
            model is measured on the device and the rounds cut what binds (`tfimp.device`);
            the run stops when a round fits, and `IMPResult.device` names the round to ship.
    """
    import tempfile

    if isinstance(build_model, keras.Model) or not callable(build_model):
        v.fail("build_model", build_model, "a function that returns a fresh, compiled model "
               "(e.g. `def build(): model = ...; model.compile(...); return model`)")
    if teacher is not None:
        settings.setdefault("distill", "teacher")
    cfg = IMPConfig.from_kwargs(config, **settings)
    _check_teacher(cfg, teacher)
    v.choice("verbose", verbose, (0, 1, 2))
    if workdir is not None:
        v.output_folder("workdir", workdir)
    train, val = _data("train_data", train_data), _data("val_data", val_data)
    keras.utils.set_random_seed(cfg.seed)
    reference = _build(build_model, None)
    _check_learning_rate(reference)
    train, val = _check_fits("train_data", train, reference), _check_fits("val_data", val,
                                                                           reference)
    _check_rewind_point(cfg, train)
    _check_lr_rewind(cfg, reference)
    _check_initial_model(initial_model, reference)
    _check_teacher_fits(teacher, reference)
    check_selectors(reference, cfg.exclude, "exclude")
    check_selectors(reference, tuple(cfg.layer_rates), "layer_rates")
    _check_metric(reference, cfg.metric, val, cfg.batch_size)
    prune_model(reference, None, scope=cfg.scope, exclude=cfg.exclude, granularity=cfg.granularity)
    policy = _device_policy(device, cfg)
    config = {"schema": SCHEMA, "imp": cfg.get_config(), "builder": _qualname(build_model),
              "train": _fingerprint(train), "val": _fingerprint(val),
              "weights": [list(w.shape) for w in reference.weights],
              "initial_model": None if initial_model is None else _hash_arrays(
                  initial_model.get_weights()),
              "teacher": None if teacher is None else _hash_arrays(teacher.get_weights())}
    if policy is not None:
        config["device"] = policy.get_config()
    run = RunDir(workdir or tempfile.mkdtemp(prefix="tfimp-imp-"), config)
    if workdir is None:
        run.created = run.path.parent  # a failed run removes its temporary folder too
    driver = _Driver(build_model, reference, train, val, cfg, run, initial_model, verbose,
                     teacher, policy)
    driver.on_round = on_round
    return driver.run()


def _device_policy(device, cfg: IMPConfig):
    """The `DevicePolicy` of `imp(..., device=...)`, or None."""
    if device is None:
        return None
    from tfimp.device.policy import check_device

    return check_device(device, cfg)


def _check_teacher(cfg: IMPConfig, teacher) -> None:
    if cfg.distill == "teacher" and not isinstance(teacher, keras.Model):
        v.fail("teacher", teacher, "a trained Keras model when distill='teacher' (or use "
               "distill='dense': the model trained in round 0)")
    if teacher is not None and cfg.distill != "teacher":
        v.fail("distill", cfg.distill, "'teacher' (or left out) when a `teacher` is passed")


def _qualname(fn) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check_rewind_point(cfg: IMPConfig, train: _Data) -> None:
    if cfg.rewind not in ("step", "epoch"):
        return
    dense_epochs = _dense_epochs(cfg)
    if cfg.rewind == "epoch":
        limit = dense_epochs
    elif cfg.steps_per_round is not None:
        limit = cfg.steps_per_round
    else:
        batches = train.batches(cfg.batch_size)
        limit = None if batches is None else batches * dense_epochs
    if limit is not None and cfg.rewind_at > limit:
        v.fail("rewind_at", cfg.rewind_at, f"at most round 0's training length ({limit} "
               f"{cfg.rewind}s) for rewind={cfg.rewind!r}")


def _check_lr_rewind(cfg: IMPConfig, model: keras.Model) -> None:
    """Learning-rate rewinding replays a schedule; with a constant rate it would silently be
    fine-tuning."""
    if cfg.rewind == "lr" and not isinstance(
            model.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        v.fail("rewind", cfg.rewind, "used with an optimizer whose learning rate follows a "
               "schedule (e.g. keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay("
               "1e-3, steps_per_round))): with a constant rate there is nothing to rewind and "
               "'lr' would silently fine-tune. Compile the model with a schedule, or use "
               "rewind='none' (fine-tuning) or 'init'")


def _check_metric(model, metric: str, val: _Data, batch_size: int) -> None:
    with v.dataset_errors():
        if val.size is None:
            names = model.evaluate(val.x, steps=1, verbose=0, return_dict=True)
        else:
            n = min(val.size, batch_size)
            names = model.evaluate(_take(val.x, np.arange(n)), _take(val.y, np.arange(n)),
                                   verbose=0, return_dict=True)
    if metric not in names:
        v.fail("metric", metric, f"a metric the model evaluates: one of {sorted(names)}")


class _Driver:
    """Holds one run's state between rounds; `run()` resumes from the run folder."""

    def __init__(self, build_model, reference, train, val, cfg: IMPConfig, run, initial_model,
                 verbose, teacher=None, device=None):
        self.build_model, self.reference = build_model, reference
        self.train, self.val, self.cfg, self.run_dir = train, val, cfg, run
        self.rounds = cfg.total_rounds
        self._dense_epochs = cfg.dense_epochs or cfg.epochs_per_round
        # Exclusions and rates by layer position: auto-generated layer names differ between
        # builds of the same model.
        layers = list(walk_layers(reference))
        self._excluded = [i for i, layer in enumerate(layers)
                          if any(matches(layer, sel) for sel in cfg.exclude)]
        if self.channels and cfg.sensitivity_budget is not None:
            v.fail("sensitivity_budget", cfg.sensitivity_budget, "None with granularity="
                   "'channel' (the sensitivity analysis prunes single weights)")
        ref = self._ref = self._wrap(reference, reference)
        self.rates = [select(w.layer, cfg.layer_rates) for w in pruned_layers(ref)]
        self.initial_model, self.verbose, self.teacher = initial_model, verbose, teacher
        self.on_round = None
        self.plan = cfg.epoch_plan
        self._dense_epochs = _dense_epochs(cfg)
        self.planned_rounds = self.rounds or budget_lib.ADAPTIVE_ROUNDS
        self.printer = RoundPrinter(cfg.metric, self.planned_rounds, verbose, self.channels)
        self.device = device
        if device is not None:
            device.bind(self)

    def _wrap(self, model, source) -> keras.Model:
        """`model` wrapped as every round wraps it: all-ones masks, this run's settings."""
        return prune_model(model, None, scope=self.cfg.scope, exclude=self._exclude_in(source),
                           granularity=self.cfg.granularity)

    @property
    def channels(self) -> bool:
        return self.cfg.granularity.kind == "channel"

    def _exclude_in(self, model) -> tuple:
        layers = list(walk_layers(model))
        return tuple(layers[i].name for i in self._excluded)

    # --- bookkeeping
    def run(self) -> IMPResult:
        try:
            return self._run()
        except Exception:
            # A run that fails before its first checkpoint leaves nothing behind.
            if not (self.run_dir.has("manifest.json") or self.run_dir.has("state.npz")
                    or self.run_dir.has("round_00.npz")):
                self.run_dir.discard()
            raise

    def _round_done(self, row: dict, manifest: dict) -> None:
        if self.on_round is not None:
            self.on_round(dict(row), manifest["dense_metric"])

    def _run(self) -> IMPResult:
        manifest = self.run_dir.open() or {"history": [], "round": -1, "epoch": 0,
                                           "dense_metric": None, "rates": None}
        self.manifest = manifest
        self._keep_teacher()
        if manifest["rates"] is not None:
            self.rates = list(manifest["rates"])
        if manifest["history"]:
            logging.warning("Resuming IMP run %s after round %d.", self.run_dir.path,
                            manifest["round"])
        self.printer.replay(manifest["history"], manifest["dense_metric"])
        for row in manifest["history"]:
            self._round_done(row, manifest)
        manifest.setdefault("epochs_spent", sum(h["epochs"] for h in manifest["history"]))
        if self.cfg.adaptive:
            manifest.setdefault("adaptive", budget_lib.AdaptiveRate(self.cfg.budget).state())
        while not manifest.get("done"):
            r = manifest["round"] + 1
            row = self._round(r)
            manifest["epochs_spent"] += row["epochs"]
            row["epochs_total"] = self._cost(manifest, row)
            manifest["history"].append(row)
            manifest.update(round=r, epoch=0)
            if r == 0:
                manifest["dense_metric"] = row[f"val_{self.cfg.metric}"]
                self.rates = manifest["rates"] = self._sensitivity_rates()
            elif self.cfg.adaptive:
                self._adapt(manifest, row)
            self.printer.row(row, manifest["dense_metric"])
            manifest["done"] = self._stop(manifest)
            self.run_dir.write_manifest(manifest)
            self.run_dir.remove("state.npz")
            self._round_done(row, manifest)
        if self.cfg.final_qat_epochs and "qat" not in manifest:
            manifest["qat"] = self._qat_stage(manifest)
            self.run_dir.write_manifest(manifest)
        result = IMPResult(manifest["history"], self.cfg.metric, manifest["dense_metric"],
                           self.run_dir.path, self.build_model, self.run_dir, self.cfg.budget,
                           self.cfg.higher_better)
        result.qat = manifest.get("qat")
        result._scope, result._granularity = self.cfg.scope, self.cfg.granularity
        result._exclude = tuple(self._excluded)  # by layer position: names differ per build
        if self.device is not None:
            result.device = self.device.choose(manifest["history"], manifest["dense_metric"])
            manifest["device_choice"] = result.device
            self.run_dir.write_manifest(manifest)
        self._finish(result)
        return result

    def _keep_teacher(self) -> None:
        """A given teacher is part of the run folder (`teacher.keras`), beside its hash in
        config.json: the folder alone says what the rounds distilled from."""
        if self.teacher is None or self.run_dir.has("teacher.keras"):
            return
        tmp = self.run_dir.path / "teacher.tmp.keras"
        try:
            self.teacher.save(tmp)
            os.replace(tmp, self.run_dir.path / "teacher.keras")
        except Exception as e:  # noqa: BLE001 - the run goes on; the hash still names it
            logging.warning("The teacher could not be saved in the run folder (%s: %s); the "
                            "run identifies it by its weights' hash only.", type(e).__name__, e)
            if tmp.exists():
                tmp.unlink()

    def _qat_stage(self, manifest) -> dict:
        """Quantization-aware retraining of the best round's model, its masks kept."""
        from tfimp.quantization.qat import quantize_aware

        best = IMPResult(manifest["history"], self.cfg.metric, manifest["dense_metric"],
                         self.run_dir.path, self.build_model, self.run_dir, self.cfg.budget,
                         self.cfg.higher_better).best_round()["round"]
        model = self._round_model(best)
        masked = _masked(model, self.run_dir.load_arrays(f"round_{best:02d}.npz"), self._wrap)
        n = min(self.train.size or 0, 256)
        rep = _take(self.train.x, np.arange(n)) if n else None
        qat = quantize_aware(_qat_source(masked, self.cfg.granularity), representative_data=rep)
        lr = _final_lr(model, self._round_steps())
        _compile_like(qat, model, lr)
        self._fit_seconds = 0.0
        self._fit(self._trainer(qat, model, lr), len(manifest["history"]), 0,
                  self.cfg.final_qat_epochs, [])
        metrics = model_metrics(qat, self.val, self.cfg.batch_size)
        self.run_dir.save_arrays("qat.npz", pack("w", [keras.ops.convert_to_numpy(w)
                                                       for w in qat.weights]))
        row = next(h for h in manifest["history"] if h["round"] == best)
        out = {"round": best, "epochs": self.cfg.final_qat_epochs,
               "shrunk": self.channels, "distill": self.cfg.distill,
               "fit_seconds": round(self._fit_seconds, 3),
               **{f"val_{k}": float(x) for k, x in metrics.items()}}
        # The cost of a QAT epoch against an epoch of the round it finishes, in this run.
        if row.get("fit_seconds") and row.get("epochs"):
            per_epoch = row["fit_seconds"] / row["epochs"]
            out["epoch_cost_ratio"] = round(
                self._fit_seconds / self.cfg.final_qat_epochs / per_epoch, 3)
        return out

    def _cost(self, manifest, row) -> int:
        """The epochs that produced this round's model: all epochs of the run so far, except
        that a gradual run from scratch does not need the dense reference of round 0."""
        spent = manifest["epochs_spent"]
        if row["round"] > 0 and self.cfg.strategy == "gradual" and self.cfg.rewind == "init":
            return row["epochs"]
        return spent

    def _adapt(self, manifest, row) -> None:
        """Feeds a finished adaptive round to the rate controller."""
        rate = budget_lib.AdaptiveRate(**manifest["adaptive"])
        drop = self.cfg.drop(manifest["dense_metric"], row[f"val_{self.cfg.metric}"])
        rate.update(row["round"], drop)
        row["accepted"] = rate.good_round == row["round"]
        manifest["adaptive"] = rate.state()

    def _pruning_epochs_spent(self, manifest) -> int:
        return manifest["epochs_spent"] - (manifest["history"][0]["epochs"]
                                           if manifest["history"] else 0)

    def _stop(self, manifest) -> bool:
        row = manifest["history"][-1]
        if self.device is not None and self.device.stop(manifest):
            return True
        if self.rounds is not None and row["round"] >= self.rounds:
            return True
        if self.plan is not None and row["round"] > 0 and \
                self._pruning_epochs_spent(manifest) >= self.plan.pruning:
            return True
        if self.cfg.adaptive:
            state = budget_lib.AdaptiveRate(**manifest["adaptive"])
            if state.done:
                return True
            if self.cfg.target_sparsity is not None and row.get("accepted") and \
                    row["sparsity"] >= self.cfg.target_sparsity:
                return True
            return False
        if self.cfg.budget is not None and self.cfg.stop_at_budget and row["round"] > 0:
            drop = self.cfg.drop(manifest["dense_metric"], row[f"val_{self.cfg.metric}"])
            if drop > self.cfg.budget:
                logging.warning("Stopping IMP: round %d is more than %g below the dense model.",
                                row["round"], self.cfg.budget)
                return True
        return False

    def _finish(self, result: IMPResult) -> None:
        write_history(self.run_dir.path, result.history)
        if self.verbose:
            best = result.best_round()
            within = (f"within budget {self.cfg.budget}" if self.cfg.budget is not None
                      else "with no drop below dense")
            print(f"\nSparsest round {within}: round {best['round']}, "
                  f"sparsity {best['sparsity']:.2%}, val_{self.cfg.metric} "
                  f"{best[f'val_{self.cfg.metric}']:.4f} (dense {result.dense_metric:.4f}); "
                  f"{best.get('epochs_total', best['epochs'])} epochs to get there, "
                  f"{self.manifest.get('epochs_spent', 0)} in the run")
            print(self._report(result.model(best["round"])))
        write_plots(self.run_dir.path, result.history, self.cfg.metric, result.dense_metric)

    # --- one round
    def _round(self, r: int) -> dict:
        start = time.perf_counter()
        self._fit_seconds = 0.0
        keras.utils.set_random_seed(self.cfg.seed * 7_919 + r)
        model = _build(self.build_model, self.reference)
        self._round_info = {}
        if r == 0:
            pruned, epochs = self._dense_round(model)
        else:
            pruned, epochs = self._pruned_round(model, r)
        self._recalibrate(pruned, r, epochs)
        plain_weights = _plain_weights(pruned)
        _check_trained(plain_weights, r)
        t0 = time.perf_counter()
        metrics = model_metrics(pruned, self.val, self.cfg.batch_size)
        eval_seconds = time.perf_counter() - t0
        masks = _masks_list(pruned) if pruned is not model else []
        self.run_dir.save_arrays(f"round_{r:02d}.npz", {**pack("w", plain_weights),
                                                         **pack("m", masks)})
        report = sparsity_report(pruned)
        row = {"round": r, "sparsity": report.sparsity, "remaining": report.nonzeros,
               "prunable": report.params, "epochs": epochs,
               "seconds": round(time.perf_counter() - start, 3),
               "fit_seconds": round(self._fit_seconds, 3), "eval_seconds": round(eval_seconds, 3)}
        row.update(self._round_info)
        row.update({f"val_{k}": float(v) for k, v in metrics.items()})
        names = self._weight_names()
        row["layers"] = {names[i]: x.sparsity for i, x in enumerate(report.rows)}
        if self.channels:
            row["channel_sparsity"] = _channel_sparsity(pruned)
        if self.device is not None:
            row["device"] = self.device.measure_round(pruned)
        if f"val_{self.cfg.metric}" not in row:
            raise ValueError(f"Argument `metric`={self.cfg.metric!r} is not among the evaluated "
                             f"metrics {sorted(metrics)}.")
        return row

    def _recalibrate(self, model, r: int, epochs: int) -> None:
        """BatchNormalization statistics of the trained round recomputed on training batches
        (`IMPConfig.recalibrate_bn`)."""
        from tfimp.lottery.batchnorm import recalibrate

        if not self.cfg.recalibrate_bn or not epochs:
            return
        # A model without BatchNormalization returns 0 before drawing a batch.
        n = recalibrate(model, self._bn_batches(r, self.cfg.recalibrate_bn))
        if n:
            self._round_info["bn_recalibrated_batches"] = n

    def _bn_batches(self, r: int, count: int):
        if self.train.size is None:
            for item in self.train.x.take(count):
                yield item[0] if isinstance(item, tuple) else item
            return
        size, batch = self.train.size, self.cfg.batch_size
        order = np.random.default_rng([self.cfg.seed, r, 17]).permutation(size)[:count * batch]
        for i in range(0, len(order), batch):
            yield _take(self.train.x, order[i:i + batch])

    def _weight_names(self) -> list[str]:
        """Names of the prunable weights as the first built model names them (stable)."""
        if not hasattr(self, "_names"):
            # Channel wrappers mask more than the prunable weights (biases, BN): name theirs.
            named = self._ref if self.channels else self.reference
            self._names = [f"{r.layer}/{r.weight.rsplit('/', 1)[-1]}"
                           for r in sparsity_report(named).rows]
        return self._names

    def _dense_round(self, model):
        if not self.run_dir.has("init.npz"):
            self.run_dir.save_arrays("init.npz", pack("w", model.get_weights()))
        if self.initial_model is not None:
            model.set_weights(self.initial_model.get_weights())
            return model, 0
        model.set_weights(unpack("w", self.run_dir.load_arrays("init.npz")))
        if self._budgeted:
            _compile_like(model, model, lr_lib.stretched(model, self._steps(self._dense_epochs)))
        snapshot = _RewindSnapshot(self.cfg, self.run_dir)
        epochs = self._train(model, 0, self._dense_epochs, [snapshot])
        return model, epochs

    @property
    def _budgeted(self) -> bool:
        """Whether the driver fits the learning-rate schedule to each round's length."""
        return self.plan is not None or self.cfg.strategy == "gradual"

    def _batches(self) -> int:
        """Optimizer steps per epoch."""
        if self.cfg.steps_per_round is not None:
            return self.cfg.steps_per_round
        batches = self.train.batches(self.cfg.batch_size)
        if batches is None:
            card = int(self.train.x.cardinality())
            batches = card if card > 0 else 1
        return batches

    def _steps(self, epochs: int) -> int:
        return max(1, self._batches() * max(int(epochs), 1))

    def _row(self, r: int) -> dict:
        return next(row for row in self.manifest["history"] if row["round"] == r)

    def _density(self, r: int) -> float:
        """The nominal density of round r's masks (1 for the dense round)."""
        if r == 0:
            return 1.0
        row = self._row(r)
        if "target_density" in row:
            return row["target_density"]
        return (1.0 - self.cfg.rate) ** r

    def _parent_and_step(self, r: int) -> tuple[int, float]:
        """The round whose weights round r prunes, and the fraction of them it prunes."""
        if self.cfg.adaptive:
            state = self.manifest["adaptive"]
            return state["good_round"], state["step"]
        if self.device is not None:
            return self.device.parent_and_step(self.manifest, self.cfg.rate)
        return r - 1, self.cfg.rate

    def _round_epochs(self, r: int) -> int:
        if self.plan is None:
            return self.cfg.epochs_per_round
        return self.plan.round_epochs(r, self._pruning_epochs_spent(self.manifest))

    def _pruned_round(self, model, r: int):
        if self.cfg.strategy == "gradual":
            return self._gradual_round(model)
        parent, step = self._parent_and_step(r)
        previous = self.run_dir.load_arrays(f"round_{parent:02d}.npz")
        model.set_weights(unpack("w", previous))
        start = self._density(parent)
        density = start * (1.0 - step)
        epochs = self._round_epochs(r)
        arrays, old = self._prunable_arrays(model), unpack("m", previous)
        device_info = {}
        if self.device is not None:
            masks, device_info = self._device_masks(model, previous, parent, step, arrays, old)
            density = _mask_density(masks)
        elif self.channels:
            masks = self._next_channel_masks(model, old, density)
        else:
            masks = self._next_masks(arrays, old, density)
        lr = self._round_lr(model, epochs, step, arrays, masks)
        model.set_weights(self._rewind_weights(previous))
        callbacks = self._patience()
        if self.cfg.ramp and self.device is None:  # the device's cuts are set at the start
            pruned = self._ramped(model, start, density, epochs)
            if old:  # the dense round has no masks: all ones already
                _set_masks_list(pruned, old)
            callbacks.append(UpdateMasks())
        else:
            pruned = self._wrap(model, model)
            _set_masks_list(pruned, masks)
        _compile_like(pruned, model, lr)
        self._round_info = {"parent": parent, "step": round(step, 6),
                            "target_density": density, **self._round_info, **device_info}
        trained = self._train(self._trainer(pruned, model, lr), r, epochs, callbacks)
        if self.cfg.ramp and self.device is None:
            _finish_schedule(pruned)
        return pruned, trained

    def _device_masks(self, model, previous, parent: int, step: float, arrays, old: list):
        """The device policy's masks, from the parent round's model as trained (compiled, so
        it can evaluate candidate cuts)."""
        masked = _masked(model, previous, self._wrap)
        plain = strip(masked) if masked is not model else model
        _compile_like(plain, self.reference, None)
        return self.device.next_masks(model, plain, parent, step, arrays, old)

    def _layer_targets(self, model, density: float) -> dict | None:
        """Per-layer final sparsities (by wrapped layer name) for the layers with a rate."""
        layers = [w.layer.name for w in pruned_layers(self._wrap(model, model))]
        targets = {name: 1.0 - density ** k for name, k in
                   zip(layers, self._layer_exponents()) if k is not None}
        return targets or None

    def _ramped(self, model, start: float, end: float, epochs: int) -> keras.Model:
        """`model` wrapped so that its masks go from density `start` to `end` over the first
        `ramp` share of the round (cubic, as tfmot's PolynomialDecay), then stay."""
        steps = self._steps(epochs)
        schedule = schedules_lib.PolynomialDecay(
            1.0 - start, 1.0 - end, begin_step=0,
            end_step=max(1, int(steps * self.cfg.ramp)),
            frequency=max(1, min(100, self._batches() // 4)))
        return prune_model(model, schedule, scope=self.cfg.scope,
                           targets=self._layer_targets(model, end),
                           exclude=self._exclude_in(model), granularity=self.cfg.granularity)

    def _round_lr(self, model, epochs: int, step: float, arrays, masks):
        """The learning rate of a pruned round: None keeps the compiled one."""
        steps = self._steps(epochs)
        if self.cfg.rewind == "none":
            return _final_lr(model, self._round_steps())
        if self.cfg.rewind == "allr":
            peak = lr_lib.peak_rate(model, self._steps(self._dense_epochs))
            drop = _norm_drop(arrays, masks)
            start = budget_lib.allr_start(peak, drop, step, epochs, self._dense_epochs)
            self._round_info = {"lr_start": start, "norm_drop": round(drop, 6)}
            return lr_lib.serialized(lr_lib.WarmupLinear(start, steps, steps // 10))
        return lr_lib.stretched(model, steps) if self._budgeted else None

    def _gradual_round(self, model):
        """One gradual run: tfmot's PolynomialDecay from 0 to the target over the first half
        of the epochs (masks updated as training goes), then the rest at that sparsity."""
        model.set_weights(self._rewind_weights(self.run_dir.load_arrays("round_00.npz")))
        epochs = _gradual_epochs(self.cfg)[1]
        steps = self._steps(epochs)
        target = self.cfg.gradual_sparsity
        schedule = schedules_lib.PolynomialDecay(
            0.0, target, begin_step=0, end_step=max(1, int(steps * GRADUAL_PRUNE_SHARE)),
            frequency=max(1, min(100, self._batches())))
        pruned = prune_model(model, schedule, scope=self.cfg.scope,
                             targets=self._layer_targets(model, 1.0 - target),
                             exclude=self._exclude_in(model), granularity=self.cfg.granularity)
        _compile_like(pruned, model, lr_lib.stretched(model, steps))
        self._round_info = {"target_density": 1.0 - target}
        trained = self._train(pruned, 1, epochs, [UpdateMasks()])
        _finish_schedule(pruned)
        return pruned, trained

    def _trainer(self, pruned, model, lr) -> keras.Model:
        """What `fit` trains in a pruned round: the pruned model, or a `Distiller` around it."""
        if self.cfg.distill is None:
            return pruned
        teacher = self.teacher if self.cfg.distill == "teacher" else self._round_model(0)
        with pruned.distribute_strategy.scope():
            distiller = Distiller(pruned, teacher, self.cfg.distill_weight,
                                  self.cfg.distill_temperature)
            _compile_like(distiller, model, lr)
        return distiller

    def _prunable_arrays(self, model) -> list[list[np.ndarray]]:
        """Per layer that prune() wraps (same order), the values of its prunable weights."""
        plan = Plan(None, self.cfg.scope, self._exclude_in(model), {}, self.cfg.granularity)
        return [[keras.ops.convert_to_numpy(v) for v in prunable_weights(layer)]
                for layer in walk_layers(model) if plan.wants(layer)]

    def _rewind_weights(self, previous) -> list[np.ndarray]:
        if self.cfg.rewind == "init":
            return unpack("w", self.run_dir.load_arrays("init.npz"))
        if self.cfg.rewind in ("step", "epoch"):
            return unpack("w", self.run_dir.load_arrays("rewind.npz"))
        return unpack("w", previous)

    def _round_steps(self) -> int:
        if self.cfg.steps_per_round is not None:
            return self.cfg.steps_per_round
        return (self.train.batches(self.cfg.batch_size) or 1) * self.cfg.epochs_per_round

    def _layer_exponents(self) -> list:
        """Per wrapper with its own rate: the exponent that maps the run's density to the
        layer's ((1 - rate_l) ** r = ((1 - rate) ** r) ** k), None for the others."""
        ref = self.cfg.rate if not self.cfg.adaptive else ADAPTIVE_REFERENCE_RATE
        ref = -math.log1p(-ref)
        return [None if rate is None else -math.log1p(-min(rate, 1.0 - 1e-9)) / ref
                for rate in self.rates]

    def _next_masks(self, arrays, old: list, density: float) -> list[np.ndarray]:
        weights, old_masks, targets = {}, {}, {}
        flat = iter(old)
        for i, (values, k) in enumerate(zip(arrays, self._layer_exponents())):
            for j, value in enumerate(values):
                name = f"{i}:{j}"
                weights[name] = value
                if old:
                    old_masks[name] = next(flat)
                if k is not None:
                    targets[name] = 1.0 - density ** k
        new = masks_lib.get(self.cfg.scope)(weights, 1.0 - density, old_masks, targets,
                                            self.cfg.granularity)
        return list(new.values())

    # -- channel granularity (tfimp.structure)
    def _next_channel_masks(self, model, old: list, density: float) -> list[np.ndarray]:
        """Channel masks from the parent round's weights, down to `density` of the
        channels."""
        from tfimp.structure.masking import set_channel_sparsity

        pruned = self._wrap(model, model)
        if old:
            _set_masks_list(pruned, old)
        targets = [None if k is None else 1.0 - density ** k for k in self._layer_exponents()]
        set_channel_sparsity(pruned, 1.0 - density, targets)
        return _masks_list(pruned)

    def _report(self, model):
        """The best round's table: channels, parameters and MACs against the dense model
        (channels), or per-weight sparsity."""
        if not self.channels:
            return sparsity_report(model)
        from tfimp.structure.report import structure_report
        from tfimp.structure.shrink import shrink

        return structure_report(shrink(model), reference=model)
    # --

    def _sensitivity_rates(self) -> list:
        """Per-wrapper rates that end each layer at its sensitivity target after all rounds."""
        if self.cfg.sensitivity_budget is None:
            return list(self.rates)

        model = self._round_model(0)
        report = sensitivity(model, (self.val.x, self.val.y) if self.val.size else self.val.x,
                             metric=self.cfg.metric, exclude=self._exclude_in(model),
                             batch_size=self.cfg.batch_size, verbose=self.verbose,
                             higher_is_better=self.cfg.higher_better)
        if self.verbose:
            print(report)
        targets = list(report.targets(self.cfg.sensitivity_budget).values())
        rounds = max(self.rounds or budget_lib.ADAPTIVE_ROUNDS, 1)
        return [rate if rate is not None else 1.0 - (1.0 - target) ** (1.0 / rounds)
                for rate, target in zip(self.rates, targets)]

    def _round_model(self, r: int) -> keras.Model:
        model = _build(self.build_model, self.reference)
        model.set_weights(unpack("w", self.run_dir.load_arrays(f"round_{r:02d}.npz")))
        return model

    # --- training with epoch checkpoints
    def _patience(self) -> list:
        if self.cfg.patience is None:
            return []
        return [_Patience(f"val_{self.cfg.metric}", self.cfg.higher_better, self.cfg.patience,
                          self.manifest.get("patience"))]

    def _train(self, model, r: int, epochs: int, callbacks: list) -> int:
        """Trains round r for up to `epochs` epochs; returns the epochs it trained (fewer
        when a patience callback stopped it)."""
        patience = next((c for c in callbacks if isinstance(c, _Patience)), None)
        if self.cfg.checkpoint == "round":
            self._fit(model, r, 0, epochs, callbacks)
            return patience.trained if patience else epochs
        start_epoch = self._restore_state(model, r)
        trained = start_epoch
        for epoch in range(start_epoch, epochs):
            self._fit(model, r, epoch, epoch + 1, callbacks)
            trained = epoch + 1
            if patience:
                self.manifest["patience"] = patience.state()
            self._save_state(model, r, epoch + 1)
            if patience and patience.stopped:
                break
        self.manifest.pop("patience", None)
        return trained

    def _fit(self, model, r: int, first: int, last: int, callbacks: list) -> None:
        keras.utils.set_random_seed(self.cfg.seed * 100_003 + r * 1_009 + first)
        t0 = time.perf_counter()
        extra = {}
        if any(isinstance(c, _Patience) for c in callbacks):
            extra["validation_data"] = self.val.x if self.val.size is None else (
                self.val.x, self.val.y)
            extra["validation_batch_size"] = self.cfg.batch_size
        with v.dataset_errors():
            model.fit(**self._fit_data(r, first, shuffle_each_epoch=last - first > 1),
                      initial_epoch=first, epochs=last, callbacks=callbacks,
                      verbose=1 if self.verbose == 1 else 0, **extra)
        self._fit_seconds += time.perf_counter() - t0

    def _fit_data(self, r: int, epoch: int, shuffle_each_epoch: bool) -> dict:
        if self.train.size is None:
            kw = {"x": self.train.x}
        elif shuffle_each_epoch:
            kw = {"x": self.train.x, "y": self.train.y, "batch_size": self.cfg.batch_size,
                  "shuffle": True}
        else:
            order = np.random.default_rng([self.cfg.seed, r, epoch]).permutation(self.train.size)
            kw = {"x": _take(self.train.x, order), "y": _take(self.train.y, order),
                  "batch_size": self.cfg.batch_size, "shuffle": False}
        if self.cfg.steps_per_round is not None:
            import tensorflow as tf

            ds = kw["x"] if "y" not in kw else tf.data.Dataset.from_tensor_slices(
                (kw["x"], kw["y"])).batch(self.cfg.batch_size)
            kw = {"x": ds.repeat(), "steps_per_epoch": self.cfg.steps_per_round}
        return kw

    def _save_state(self, model, r: int, epochs_done: int) -> None:
        # All variables, not only weights: dropout seed states make resumed runs identical.
        arrays = {**pack("w", [keras.ops.convert_to_numpy(v) for v in model.variables]),
                  **pack("o", [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])}
        self.run_dir.save_arrays("state.npz", arrays)
        self.manifest.update(epoch=epochs_done, epoch_round=r)
        self.run_dir.write_manifest(self.manifest)

    def _restore_state(self, model, r: int) -> int:
        m = self.manifest
        if m.get("epoch_round") != r or not m.get("epoch") or not self.run_dir.has("state.npz"):
            return 0
        state = self.run_dir.load_arrays("state.npz")
        for var, value in zip(model.variables, unpack("w", state)):
            var.assign(value)
        model.optimizer.build(model.trainable_variables)
        for var, value in zip(model.optimizer.variables, unpack("o", state)):
            var.assign(value)
        logging.warning("Resuming IMP round %d after epoch %d.", r, m["epoch"])
        return int(m["epoch"])


def _mask_density(masks) -> float:
    total = sum(int(np.size(m)) for m in masks)
    return float(sum(float(np.sum(m)) for m in masks) / total) if total else 1.0


def _channel_sparsity(model) -> float:
    """The fraction of the prunable channels that a channel-pruned model has removed."""
    if not pruned_layers(model):
        return 0.0
    from tfimp.structure.masking import channel_sparsity

    return channel_sparsity(model)


class TrainingDiverged(TfimpError, RuntimeError):
    """A round's training ended with NaN or infinite weights."""


def _check_trained(weights: list[np.ndarray], r: int) -> None:
    bad = sum(int(np.count_nonzero(~np.isfinite(w))) for w in weights
              if np.issubdtype(w.dtype, np.floating))
    if bad:
        raise TrainingDiverged(
            f"Round {r} ended with {bad} NaN or infinite weights: its training diverged, and "
            "magnitude pruning cannot rank such weights. Lower the learning rate (or clip "
            "gradients, e.g. optimizer clipnorm=1.0) in `build_model`.")


def _take(x, order):
    if isinstance(x, dict):
        return {k: np.asarray(v)[order] for k, v in x.items()}
    return np.asarray(x)[order]


def model_metrics(model, data: _Data, batch_size: int) -> dict:
    """`model.evaluate` as a dict of floats."""
    with v.dataset_errors():
        if data.size is None:
            out = model.evaluate(data.x, verbose=0, return_dict=True)
        else:
            out = model.evaluate(data.x, data.y, batch_size=batch_size, verbose=0,
                                 return_dict=True)
    return {k: float(v) for k, v in out.items()}


class _RewindSnapshot(keras.callbacks.Callback):
    """Saves the weights at step or epoch k of round 0 for rewinding."""

    def __init__(self, cfg: IMPConfig, run: RunDir):
        super().__init__()
        self.cfg, self.run = cfg, run

    def _save(self):
        if not self.run.has("rewind.npz"):
            self.run.save_arrays("rewind.npz", pack("w", self.model.get_weights()))

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_begin(self, batch, logs=None):
        if self.cfg.rewind == "step" and self._step() == self.cfg.rewind_at:
            self._save()

    def on_epoch_begin(self, epoch, logs=None):
        if self.cfg.rewind == "epoch" and epoch == self.cfg.rewind_at:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.cfg.rewind == "epoch" and epoch + 1 == self.cfg.rewind_at:
            self._save()

    def on_train_end(self, logs=None):
        if self.cfg.rewind == "step" and self._step() == self.cfg.rewind_at:
            self._save()


GRADUAL_PRUNE_SHARE = 0.5
"""A gradual run prunes during this share of its steps and trains the rest at the target."""

ADAPTIVE_REFERENCE_RATE = 0.2
"""With rate="adaptive", per-layer rates are read relative to this rate."""


def _dense_epochs(cfg: IMPConfig) -> int:
    if cfg.strategy == "gradual":
        return _gradual_epochs(cfg)[0]
    plan = cfg.epoch_plan
    return plan.dense if plan is not None else cfg.dense_epochs or cfg.epochs_per_round


def _gradual_epochs(cfg: IMPConfig) -> tuple[int, int]:
    """(dense round 0, the gradual run) epochs. From scratch the gradual run takes the whole
    budget and round 0 is only the dense reference (trained as long, unless `dense_epochs`);
    from the dense model the two share it, as IMP's rounds do."""
    total = cfg.total_epochs
    if cfg.rewind == "init":
        run = total or cfg.epochs_per_round
        return cfg.dense_epochs or run, run
    if total is None:
        return cfg.dense_epochs or cfg.epochs_per_round, cfg.epochs_per_round
    dense = cfg.dense_epochs or budget_lib.dense_share(total)
    return dense, total - dense


def _finish_schedule(pruned) -> None:
    """Masks at the schedule's final sparsity even when the round was too short to get there
    (a no-op when it did: pruned weights stay pruned and the count is already right)."""
    end = max(w.schedule.last_step() or 0 for w in pruned_layers(pruned))
    update_masks(pruned, step=end, force=True)


def _norm_drop(arrays, masks) -> float:
    """||W - W * M|| / ||W|| over the prunable weights that the masks match."""
    flat = [a for values in arrays for a in values]
    removed = total = 0.0
    for a, m in zip(flat, masks):
        if np.shape(a) != np.shape(m):
            continue
        a = np.asarray(a, dtype=np.float64)
        total += float(np.sum(a * a))
        removed += float(np.sum((a * (1.0 - m)) ** 2))
    return math.sqrt(removed / total) if total > 0 else 0.0


class _Patience(keras.callbacks.Callback):
    """Stops training after `patience` epochs without a better `monitor` value; counts the
    epochs trained. Its state carries over epoch-by-epoch `fit` calls."""

    def __init__(self, monitor: str, higher_better: bool, patience: int, state=None):
        super().__init__()
        self.monitor, self.higher_better, self.patience = monitor, higher_better, patience
        state = state or {}
        self.best, self.wait = state.get("best"), state.get("wait", 0)
        self.trained, self.stopped = state.get("trained", 0), False

    def on_epoch_end(self, epoch, logs=None):
        self.trained = epoch + 1
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        better = self.best is None or (value > self.best if self.higher_better
                                       else value < self.best)
        if better:
            self.best, self.wait = float(value), 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped = True
                self.model.stop_training = True

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "trained": self.trained}
