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
with fixed masks and a fresh optimizer. The run folder makes it resumable after a kill.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np

from tfimp import masks as masks_lib
from tfimp import schedules as schedules_lib
from tfimp.imp_report import RoundPrinter, write_history, write_plots
from tfimp.layer_sensitivity import metric_drop, sensitivity
from tfimp.pruning import _matches, _Plan, _select, _walk, pruned_layers, sparsity_report
from tfimp.pruning import prune as prune_model
from tfimp.wrappers import prunable_weights
from tfimp.runs import RunDir, pack, unpack

__all__ = ["imp", "IMPResult", "REWIND_MODES"]

REWIND_MODES = ("init", "none", "lr", "step", "epoch")


# ---------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class _Config:
    rounds: int
    rate: float
    budget: float | None
    epochs_per_round: int
    dense_epochs: int
    steps_per_round: int | None
    batch_size: int
    rewind: str
    rewind_point: int
    scope: str
    exclude: tuple
    layer_rates: tuple
    block: tuple | None
    prune_partial_blocks: bool
    metric: str
    seed: int
    sensitivity_budget: float | None
    checkpoint: str
    stop_at_budget: bool = True


def _parse_rewind(rewind) -> tuple[str, int]:
    if isinstance(rewind, str) and rewind in ("init", "none", "lr"):
        return rewind, 0
    if (isinstance(rewind, (tuple, list)) and len(rewind) == 2 and rewind[0] in ("step", "epoch")
            and isinstance(rewind[1], int) and not isinstance(rewind[1], bool) and rewind[1] >= 0):
        return rewind[0], int(rewind[1])
    raise ValueError(
        "Argument `rewind` must be 'init' (lottery ticket), 'none' (fine-tune), 'lr' "
        "(learning-rate rewinding), ('step', k) or ('epoch', k) with k >= 0. "
        f"Received: rewind={rewind!r}"
    )


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def _fraction(name: str, value, allow_zero: bool = False) -> float:
    low_ok = (value >= 0.0) if allow_zero else (value > 0.0)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (low_ok and value < 1)):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(
            f"Argument `{name}` must be a float in {bound}. Received: {name}={value!r}")
    return float(value)


def _choice(name: str, value, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def _budget(name: str, value) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0):
        raise ValueError(
            f"Argument `{name}` must be a finite number >= 0 (an absolute metric drop, e.g. "
            f"0.01 for one accuracy point). Received: {name}={value!r}"
        )
    return float(value)


def _rounds(rounds, rate, target_sparsity) -> int:
    if rounds is None and target_sparsity is None:
        raise ValueError(
            "Give the number of rounds or a target: tfimp.imp(..., rounds=8) or "
            "tfimp.imp(..., target_sparsity=0.95). Received: rounds=None, target_sparsity=None"
        )
    limits = []
    if rounds is not None:
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(
                f"Argument `rounds` must be an integer >= 0. Received: rounds={rounds!r}")
        limits.append(rounds)
    if target_sparsity is not None:
        _fraction("target_sparsity", target_sparsity)
        limits.append(schedules_lib.rounds_to_reach(rate, target_sparsity))
    return min(limits)


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
        return _Data(data, None, None)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(
            f"Argument `{name}` must be a tuple (x, y) of arrays or a batched tf.data.Dataset "
            f"of (x, y). Received: {name}={type(data).__name__}"
        )
    x, y = data
    n = len(x) if not isinstance(x, dict) else len(next(iter(x.values())))
    if n == 0:
        raise ValueError(f"Argument `{name}` holds no samples. Received: {name} with len(x)=0")
    if len(y) != n:
        raise ValueError(f"Argument `{name}` has {n} inputs but {len(y)} labels.")
    return _Data(x, y, n)


def _fingerprint(d: _Data) -> str:
    if d.size is None:
        return "tf.data"
    from tfimp.runs import config_hash

    x = np.asarray(d.x)
    y = np.asarray(d.y)
    return config_hash({"shape": list(x.shape), "x": float(x.astype("float64").sum()),
                        "y": float(y.astype("float64").sum()), "n": d.size})


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

    def _drop(self, row: dict) -> float:
        return metric_drop(self.metric, self.dense_metric, row[f"val_{self.metric}"])

    def best_round(self, budget: float | None = None) -> dict:
        """The sparsest round whose metric is within `budget` of the dense model's."""
        budget = self.budget if budget is None else budget
        budget = 0.0 if budget is None else _budget("budget", budget)
        ok = [row for row in self.history if self._drop(row) <= budget + 1e-12]
        return max(ok, key=lambda row: row["sparsity"])

    def model(self, round_index: int) -> keras.Model:
        """The stripped model at the end of round `round_index`."""
        data = self._run.load_arrays(f"round_{round_index:02d}.npz")
        model = self._build()
        model.set_weights(unpack("w", data))
        return model

    def best(self, budget: float | None = None) -> keras.Model:
        """The sparsest round's model within `budget`, stripped (a plain Keras model)."""
        return self.model(self.best_round(budget)["round"])

    @property
    def final(self) -> keras.Model:
        return self.model(self.history[-1]["round"])


# ---------------------------------------------------------------------------- the driver
def imp(
    build_model: Callable[[], keras.Model],
    train_data,
    val_data,
    *,
    rounds: int | None = None,
    rate: float = 0.2,
    target_sparsity: float | None = None,
    budget: float | None = None,
    stop_at_budget: bool = True,
    epochs_per_round: int = 1,
    dense_epochs: int | None = None,
    steps_per_round: int | None = None,
    batch_size: int = 32,
    rewind="init",
    scope: str = "global",
    exclude: Sequence = (),
    layer_rates: Mapping[str, float] | None = None,
    block: tuple[int, ...] | None = None,
    prune_partial_blocks: bool = False,
    metric: str = "accuracy",
    sensitivity_budget: float | None = None,
    initial_model: keras.Model | None = None,
    workdir=None,
    checkpoint: str = "round",
    seed: int = 0,
    verbose: int = 1,
) -> IMPResult:
    """Runs Iterative Magnitude Pruning and returns the per-round history.

    Args:
        build_model: returns a fresh, compiled Keras 3 model (the same architecture each call).
        train_data: `(x, y)` arrays or a batched `tf.data.Dataset` of `(x, y)`.
        val_data: the same for validation; its metric decides the budget.
        rounds: pruning rounds after the dense round 0.
        rate: fraction of the *remaining* weights pruned each round.
        target_sparsity: stop after the round that reaches this sparsity.
        budget: the accepted metric drop (absolute, e.g. 0.01 = one point of accuracy) below
            the dense model; `best()` and the summary use it, and the run stops after the
            first round beyond it unless `stop_at_budget=False`.
        stop_at_budget: stop at the first round beyond `budget` (default) or run all rounds.
        epochs_per_round: retraining epochs per round (round 0: `dense_epochs`, same default).
        steps_per_round: retrain for this many steps instead of epochs.
        batch_size: batch size for array data.
        rewind: 'init' (to the initial weights: lottery ticket), ('step', k) or ('epoch', k)
            (to the weights after k steps/epochs of round 0), 'lr' (keep the weights, replay the
            learning-rate schedule), 'none' (keep the weights, fine-tune at the final rate).
        scope: 'global' ranks all prunable tensors together, 'layer' each alone.
        exclude: layer names, patterns or classes never pruned.
        layer_rates: per-layer rates (e.g. the output layer at half the rate).
        block: prune blocks of this shape (e.g. (4, 1) for TFLite's 1x4 sparse kernels).
        prune_partial_blocks: with `block`, always prune the blocks that stick out past a
            weight's edge, so only whole blocks are kept (TFLite's int8 1x16 sparse kernel
            needs this on Dense layers whose input count is not a multiple of 16).
        metric: the compiled metric compared against the budget ('loss' metrics: lower is better).
        sensitivity_budget: derive per-layer rates from a sensitivity analysis of the dense model
            so each layer ends where pruning it alone costs at most this much.
        initial_model: start from this trained model instead of training round 0.
        workdir: parent folder for the run folder `imp-<config hash>`; resumes if it exists.
        checkpoint: 'round' resumes a killed run from its last completed round (one `fit` per
            round: least overhead); 'epoch' from its last completed epoch (one `fit` per
            epoch: for rounds that take long).
        seed: seed of initialization, shuffling and dropout.
        verbose: 0 silent; 1 the round table, a progress bar across rounds and Keras' progress
            within each round; 2 the round table and progress bar only.
    """
    import tempfile

    train, val = _data("train_data", train_data), _data("val_data", val_data)
    rate = _fraction("rate", rate)
    n_rounds = _rounds(rounds, rate, target_sparsity)
    masks_lib.get(scope)
    kind, point = _parse_rewind(rewind)
    layer_rates = dict(layer_rates or {})
    for name, r in layer_rates.items():
        _fraction(f"layer_rates[{name!r}]", r)
    cfg = _Config(
        rounds=n_rounds, rate=rate,
        budget=None if budget is None else _budget("budget", budget),
        epochs_per_round=_positive_int("epochs_per_round", epochs_per_round),
        dense_epochs=_positive_int("dense_epochs", dense_epochs or epochs_per_round),
        steps_per_round=None if steps_per_round is None else _positive_int(
            "steps_per_round", steps_per_round),
        batch_size=_positive_int("batch_size", batch_size), rewind=kind, rewind_point=point,
        scope=scope, exclude=tuple(str(e) if not isinstance(e, type) else e.__name__
                                   for e in exclude),
        layer_rates=tuple(sorted((k if isinstance(k, str) else k.__name__, v)
                                 for k, v in layer_rates.items())),
        block=None if block is None else tuple(block),
        prune_partial_blocks=_flag("prune_partial_blocks", prune_partial_blocks),
        metric=metric, seed=int(seed),
        sensitivity_budget=None if sensitivity_budget is None else _fraction(
            "sensitivity_budget", sensitivity_budget),
        checkpoint=_choice("checkpoint", checkpoint, ("round", "epoch")),
        stop_at_budget=_flag("stop_at_budget", stop_at_budget),
    )
    keras.utils.set_random_seed(cfg.seed)
    reference = _build(build_model, None)
    _check_rewind_point(cfg, train)
    _check_selectors(reference, exclude, layer_rates)
    _check_metric(reference, metric, val, cfg.batch_size)
    config = dict(_hashed(cfg), builder=_qualname(build_model),
                  train=_fingerprint(train), val=_fingerprint(val),
                  weights=[list(w.shape) for w in reference.weights],
                  initial_model=None if initial_model is None else initial_model.name)
    run = RunDir(workdir or tempfile.mkdtemp(prefix="tfimp-imp-"), config)
    driver = _Driver(build_model, reference, train, val, cfg, run, exclude, layer_rates,
                     initial_model, verbose)
    return driver.run()


def _hashed(cfg: _Config) -> dict:
    """The config fields that name the run folder; a new option at its default is left out,
    so run folders written before it existed still resume."""
    config = dataclasses.asdict(cfg)
    if not config["prune_partial_blocks"]:
        del config["prune_partial_blocks"]
    if config["stop_at_budget"]:
        del config["stop_at_budget"]
    return config


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be True or False. Received: {name}={value!r}")
    return value


def _qualname(fn) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _check_rewind_point(cfg: _Config, train: _Data) -> None:
    if cfg.rewind not in ("step", "epoch"):
        return
    if cfg.rewind == "epoch":
        limit = cfg.dense_epochs
    elif cfg.steps_per_round is not None:
        limit = cfg.steps_per_round
    else:
        batches = train.batches(cfg.batch_size)
        limit = None if batches is None else batches * cfg.dense_epochs
    if limit is not None and cfg.rewind_point > limit:
        raise ValueError(
            f"Argument `rewind` points at {cfg.rewind} {cfg.rewind_point}, beyond round 0's "
            f"training length ({limit} {cfg.rewind}s). Received: rewind=('{cfg.rewind}', "
            f"{cfg.rewind_point})"
        )


def _check_selectors(model, exclude, layer_rates) -> None:
    from tfimp.pruning import _check_selectors as check

    check(model, tuple(exclude), "exclude")
    check(model, tuple(layer_rates), "layer_rates")


def _check_metric(model, metric: str, val: _Data, batch_size: int) -> None:
    if val.size is None:
        names = model.evaluate(val.x, steps=1, verbose=0, return_dict=True)
    else:
        n = min(val.size, batch_size)
        names = model.evaluate(_take(val.x, np.arange(n)), _take(val.y, np.arange(n)),
                               verbose=0, return_dict=True)
    if metric not in names:
        raise ValueError(
            f"Argument `metric` must name a metric the model evaluates. Received: "
            f"metric={metric!r}; the model reports {sorted(names)}."
        )


class _Driver:
    """Holds one run's state between rounds; `run()` resumes from the run folder."""

    def __init__(self, build_model, reference, train, val, cfg, run, exclude, layer_rates,
                 initial_model, verbose):
        self.build_model, self.reference = build_model, reference
        self.train, self.val, self.cfg, self.run_dir = train, val, cfg, run
        # Exclusions and rates by layer position: auto-generated layer names differ between
        # builds of the same model.
        layers = list(_walk(reference))
        self._excluded = [i for i, layer in enumerate(layers)
                          if any(_matches(layer, sel) for sel in exclude)]
        self.exclude = tuple(exclude)
        # Rates by wrapper position: layer names differ between builds of the same model.
        ref = prune_model(reference, None, scope=cfg.scope, exclude=self._exclude_in(reference),
                          block=cfg.block, prune_partial_blocks=cfg.prune_partial_blocks)
        self.rates = [_select(w.layer, layer_rates) for w in pruned_layers(ref)]
        self.initial_model, self.verbose = initial_model, verbose
        self.printer = RoundPrinter(cfg.metric, cfg.rounds, verbose)

    def _exclude_in(self, model) -> tuple:
        layers = list(_walk(model))
        return tuple(layers[i].name for i in self._excluded)

    # --- bookkeeping
    def run(self) -> IMPResult:
        manifest = self.run_dir.open() or {"history": [], "round": -1, "epoch": 0,
                                           "dense_metric": None, "rates": None}
        self.manifest = manifest
        if manifest["rates"] is not None:
            self.rates = list(manifest["rates"])
        if self.verbose and manifest["history"]:
            print(f"Resuming run {self.run_dir.path} after round {manifest['round']}.")
        self.printer.replay(manifest["history"], manifest["dense_metric"])
        while not manifest.get("done"):
            r = manifest["round"] + 1
            row = self._round(r)
            manifest["history"].append(row)
            manifest.update(round=r, epoch=0)
            if r == 0:
                manifest["dense_metric"] = row[f"val_{self.cfg.metric}"]
                self.rates = manifest["rates"] = self._sensitivity_rates()
            self.printer.row(row, manifest["dense_metric"])
            manifest["done"] = self._stop(manifest)
            self.run_dir.write_manifest(manifest)
            self.run_dir.remove("state.npz")
        result = IMPResult(manifest["history"], self.cfg.metric, manifest["dense_metric"],
                           self.run_dir.path, self.build_model, self.run_dir, self.cfg.budget)
        self._finish(result)
        return result

    def _stop(self, manifest) -> bool:
        row = manifest["history"][-1]
        if row["round"] >= self.cfg.rounds:
            return True
        if self.cfg.budget is not None and self.cfg.stop_at_budget and row["round"] > 0:
            drop = metric_drop(self.cfg.metric, manifest["dense_metric"],
                               row[f"val_{self.cfg.metric}"])
            if drop > self.cfg.budget:
                if self.verbose:
                    print(f"Stopping: round {row['round']} is more than {self.cfg.budget} below "
                          "the dense model.")
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
                  f"{best[f'val_{self.cfg.metric}']:.4f} (dense {result.dense_metric:.4f})")
            print(sparsity_report(result.model(best["round"])))
        write_plots(self.run_dir.path, result.history, self.cfg.metric, result.dense_metric)

    # --- one round
    def _round(self, r: int) -> dict:
        start = time.perf_counter()
        self._fit_seconds = 0.0
        keras.utils.set_random_seed(self.cfg.seed * 7_919 + r)
        model = _build(self.build_model, self.reference)
        if r == 0:
            pruned, epochs = self._dense_round(model)
        else:
            pruned, epochs = self._pruned_round(model, r)
        plain_weights = _plain_weights(pruned)
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
        row.update({f"val_{k}": float(v) for k, v in metrics.items()})
        names = self._weight_names()
        row["layers"] = {names[i]: x.sparsity for i, x in enumerate(report.rows)}
        if f"val_{self.cfg.metric}" not in row:
            raise ValueError(f"Argument `metric`={self.cfg.metric!r} is not among the evaluated "
                             f"metrics {sorted(metrics)}.")
        return row

    def _weight_names(self) -> list[str]:
        """Names of the prunable weights as the first built model names them (stable)."""
        if not hasattr(self, "_names"):
            self._names = [f"{r.layer}/{r.weight.rsplit('/', 1)[-1]}"
                           for r in sparsity_report(self.reference).rows]
        return self._names

    def _dense_round(self, model):
        if not self.run_dir.has("init.npz"):
            self.run_dir.save_arrays("init.npz", pack("w", model.get_weights()))
        if self.initial_model is not None:
            model.set_weights(self.initial_model.get_weights())
            return model, 0
        model.set_weights(unpack("w", self.run_dir.load_arrays("init.npz")))
        snapshot = _RewindSnapshot(self.cfg, self.run_dir)
        self._train(model, 0, self.cfg.dense_epochs, [snapshot])
        return model, self.cfg.dense_epochs

    def _pruned_round(self, model, r: int):
        previous = self.run_dir.load_arrays(f"round_{r - 1:02d}.npz")
        model.set_weights(unpack("w", previous))
        lr = _final_lr(model, self._round_steps()) if self.cfg.rewind == "none" else None
        masks = self._next_masks(self._prunable_arrays(model), unpack("m", previous), r)
        model.set_weights(self._rewind_weights(previous))
        pruned = prune_model(model, None, scope=self.cfg.scope, exclude=self._exclude_in(model),
                             block=self.cfg.block,
                             prune_partial_blocks=self.cfg.prune_partial_blocks)
        _set_masks_list(pruned, masks)
        _compile_like(pruned, model, lr)
        epochs = self.cfg.epochs_per_round
        self._train(pruned, r, epochs, [])
        return pruned, epochs

    def _prunable_arrays(self, model) -> list[list[np.ndarray]]:
        """Per layer that prune() wraps (same order), the values of its prunable weights."""
        plan = _Plan(None, self.cfg.scope, self._exclude_in(model), {}, self.cfg.block)
        return [[keras.ops.convert_to_numpy(v) for v in prunable_weights(layer)]
                for layer in _walk(model) if plan.wants(layer)]

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

    def _next_masks(self, arrays, old: list, r: int) -> list[np.ndarray]:
        sparsity = schedules_lib.geometric_sparsity(self.cfg.rate, r)
        weights, old_masks, targets = {}, {}, {}
        flat = iter(old)
        for i, (values, rate) in enumerate(zip(arrays, self.rates)):
            for j, value in enumerate(values):
                name = f"{i}:{j}"
                weights[name] = value
                if old:
                    old_masks[name] = next(flat)
                if rate is not None:
                    targets[name] = schedules_lib.geometric_sparsity(rate, r)
        extra = {"prune_partial_blocks": True} if self.cfg.prune_partial_blocks else {}
        new = masks_lib.get(self.cfg.scope)(weights, sparsity, old_masks, targets,
                                            self.cfg.block, **extra)
        return list(new.values())

    def _sensitivity_rates(self) -> list:
        """Per-wrapper rates that end each layer at its sensitivity target after all rounds."""
        if self.cfg.sensitivity_budget is None:
            return list(self.rates)

        model = self._round_model(0)
        report = sensitivity(model, (self.val.x, self.val.y) if self.val.size else self.val.x,
                             metric=self.cfg.metric, exclude=self._exclude_in(model),
                             batch_size=self.cfg.batch_size, verbose=self.verbose)
        if self.verbose:
            print(report)
        targets = list(report.targets(self.cfg.sensitivity_budget).values())
        rounds = max(self.cfg.rounds, 1)
        return [rate if rate is not None else 1.0 - (1.0 - target) ** (1.0 / rounds)
                for rate, target in zip(self.rates, targets)]

    def _round_model(self, r: int) -> keras.Model:
        model = _build(self.build_model, self.reference)
        model.set_weights(unpack("w", self.run_dir.load_arrays(f"round_{r:02d}.npz")))
        return model

    # --- training with epoch checkpoints
    def _train(self, model, r: int, epochs: int, callbacks: list) -> None:
        if self.cfg.checkpoint == "round":
            self._fit(model, r, 0, epochs, callbacks)
            return
        start_epoch = self._restore_state(model, r)
        for epoch in range(start_epoch, epochs):
            self._fit(model, r, epoch, epoch + 1, callbacks)
            self._save_state(model, r, epoch + 1)

    def _fit(self, model, r: int, first: int, last: int, callbacks: list) -> None:
        keras.utils.set_random_seed(self.cfg.seed * 100_003 + r * 1_009 + first)
        t0 = time.perf_counter()
        model.fit(**self._fit_data(r, first, shuffle_each_epoch=last - first > 1),
                  initial_epoch=first, epochs=last, callbacks=callbacks,
                  verbose=1 if self.verbose == 1 else 0)
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
        if self.verbose:
            print(f"Resuming round {r} after epoch {m['epoch']}.")
        return int(m["epoch"])


def _take(x, order):
    if isinstance(x, dict):
        return {k: np.asarray(v)[order] for k, v in x.items()}
    return np.asarray(x)[order]


def model_metrics(model, data: _Data, batch_size: int) -> dict:
    """`model.evaluate` as a dict of floats."""
    if data.size is None:
        out = model.evaluate(data.x, verbose=0, return_dict=True)
    else:
        out = model.evaluate(data.x, data.y, batch_size=batch_size, verbose=0, return_dict=True)
    return {k: float(v) for k, v in out.items()}


class _RewindSnapshot(keras.callbacks.Callback):
    """Saves the weights at step or epoch k of round 0 for rewinding."""

    def __init__(self, cfg: _Config, run: RunDir):
        super().__init__()
        self.cfg, self.run = cfg, run

    def _save(self):
        if not self.run.has("rewind.npz"):
            self.run.save_arrays("rewind.npz", pack("w", self.model.get_weights()))

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_begin(self, batch, logs=None):
        if self.cfg.rewind == "step" and self._step() == self.cfg.rewind_point:
            self._save()

    def on_epoch_begin(self, epoch, logs=None):
        if self.cfg.rewind == "epoch" and epoch == self.cfg.rewind_point:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.cfg.rewind == "epoch" and epoch + 1 == self.cfg.rewind_point:
            self._save()

    def on_train_end(self, logs=None):
        if self.cfg.rewind == "step" and self._step() == self.cfg.rewind_point:
            self._save()
