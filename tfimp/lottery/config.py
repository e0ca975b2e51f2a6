"""`IMPConfig`: every setting of an IMP run in one typed object, validated once.

`tfimp.imp` takes it (or its fields as keyword arguments), recipes hold it as their `imp`
section, and the run folder's name is a hash of it (with a schema version, so a change of
the fields never resumes a run written under other rules).

Example:

    config = tfimp.IMPConfig(rounds=16, rate=0.2, rewind="lr", budget=0.005)
    result = tfimp.imp(build, (x, y), (x_val, y_val), config, epochs_per_round=20)
"""

from __future__ import annotations

import dataclasses
import fnmatch

from tfimp._util import validate as v
from tfimp.lottery import budget as budget_lib
from tfimp.sparsity import masks as masks_lib
from tfimp.sparsity import schedules as schedules_lib

__all__ = ["IMPConfig", "REWIND_MODES", "higher_is_better", "metric_drop"]

REWIND_MODES = ("init", "none", "lr", "allr", "step", "epoch")
STRATEGIES = ("imp", "gradual")
ADAPTIVE = "adaptive"
SCHEMA = 3
"""Version of the hashed run config; bump it when the meaning of a field changes."""

# Metric names as Keras reports them, by direction; patterns match compound names
# ("sparse_categorical_accuracy", "val_mean_squared_error").
_HIGHER = ("*accuracy*", "auc", "*auc", "precision*", "recall*", "*f1*", "*iou*", "*r2*",
           "*fbeta*", "*true_positives*", "*true_negatives*", "*at_precision*", "*at_recall*",
           "*at_specificity*", "*at_sensitivity*", "*cosine_similarity*")
_LOWER = ("*loss*", "mse", "mae", "mape", "msle", "rmse", "*mean_squared*", "*mean_absolute*",
          "*crossentropy*", "*hinge*", "*kl_divergence*", "kld", "*poisson*", "*log_cosh*",
          "logcosh", "*error*", "*false_positives*", "*false_negatives*")


def higher_is_better(metric: str) -> bool | None:
    """True/False for metrics whose direction is known from the name, None otherwise."""
    name = metric.lower()
    for patterns, answer in ((_LOWER, False), (_HIGHER, True)):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return answer
    return None


def metric_drop(dense: float, value: float, higher_better: bool) -> float:
    """How far `value` is worse than the dense model's (positive = worse)."""
    return (dense - value) if higher_better else (value - dense)


@dataclasses.dataclass(frozen=True)
class IMPConfig:
    """The settings of one IMP run (see `tfimp.imp` for what each does).

    Args:
        strategy: "imp" (rounds: prune, rewind, retrain) or "gradual" (one run that prunes
            by tfmot's PolynomialDecay, cubic from 0 to `target_sparsity` over the first half
            of its epochs, from the rewind point: from scratch with rewind="init", from the
            dense round 0 otherwise); both write the same run folders and reports.
        rounds: pruning rounds after the dense round 0 (None: until `target_sparsity`; with
            `rate="adaptive"`, until the budgets are spent).
        rate: fraction of the *remaining* weights pruned each round, or "adaptive": each
            round's step follows how the last one recovered (larger while rounds stay within
            `budget` with margin; a round beyond it is retried from the last good round with a
            smaller step), so the accuracy budget decides the sparsity.
        target_sparsity: stop after the round that reaches this sparsity.
        budget: the accepted metric drop (absolute, e.g. 0.01 = one accuracy point) below the
            dense model; `best()` and the summary use it.
        stop_at_budget: stop at the first round beyond `budget`, or run all rounds.
        total_epochs: the training budget of the whole run: round 0 gets `dense_epochs` (None:
            a quarter), the rounds share the rest; a round that stops early (`patience`)
            leaves its epochs to the next one. None: `epochs_per_round` for every round.
        patience: stop a round after this many epochs without a better validation metric
            (None: train every planned epoch).
        ramp: the share of each round over which its pruning step is spread (cubic, as
            tfmot's PolynomialDecay, while training), as in cyclical pruning (Srinivas et al.,
            CVPR-W 2022); 0 prunes the whole step before the round trains (classic IMP).
        epochs_per_round: retraining epochs per round (without `total_epochs`).
        dense_epochs: epochs of the dense round 0 (None: `epochs_per_round`, or a quarter of
            `total_epochs`).
        steps_per_round: retrain for this many steps instead of epochs.
        batch_size: batch size for array data.
        rewind: "init" (to the initial weights: lottery ticket), "step"/"epoch" (to the weights
            after `rewind_at` steps/epochs of round 0), "lr" (keep the weights, replay the
            learning-rate schedule: needs an optimizer with a schedule), "allr" (keep the
            weights, retrain with ALLR's warm-up and linear decay from a start rate that
            follows how much the pruning step removed; Zimmer et al., ICLR 2023), "none" (keep
            the weights, fine-tune at the schedule's final rate).
        rewind_at: k for rewind "step" or "epoch".
        scope: "global" ranks all prunable tensors together, "layer" each alone, "lamp" by
            LAMP scores (Lee et al., ICLR 2021), "erk" keeps per-layer densities in the
            Erdos-Renyi-kernel proportions (Evci et al., 2020).
        granularity: what is pruned as one unit ("weight", "block:4x1", "block:16x1:whole").
        exclude: layer names, glob patterns or class names never pruned.
        layer_rates: per-layer rates, keyed like `exclude` (e.g. the output layer at half).
        metric: the compiled metric compared against the budget.
        higher_is_better: the metric's direction; None infers it from the name (accuracy,
            AUC, ... are higher-better; loss, MSE, MAE, ... lower-better) and refuses names
            it doesn't know.
        sensitivity_budget: derive per-layer rates from a sensitivity analysis of the dense
            model, so each layer ends where pruning it alone costs at most this much.
        checkpoint: "round" resumes a killed run from its last round, "epoch" from its last
            epoch.
        seed: seed of initialization, shuffling and dropout.
        distill: retrain each pruned round against a teacher's softened outputs as well as
            the labels: "dense" (the model trained in round 0) or "teacher" (the model passed
            as `imp(..., teacher=...)`); None trains on the labels alone.
        distill_weight: the share of the distillation term in the loss, in [0, 1].
        distill_temperature: the softening temperature (Hinton et al. use 2-20).
        final_qat_epochs: after the last round, retrain the best round's model for this many
            epochs with quantization-aware training (`tfimp.quantize_aware`, masks kept;
            with channel granularity the shrunk model, `tfimp.shrink`), distilling as the
            rounds do when `distill` is set; `IMPResult.qat_model()` returns it and
            `IMPResult.qat` what it measured. 0: no QAT stage.
        recalibrate_bn: after each round trains, recompute the BatchNormalization moving
            statistics from up to this many training batches (the average of the batch
            statistics), so the round is evaluated, ranked and saved with statistics of its
            final weights: after a short round the moving averages still describe earlier
            weights (a DS-CNN at 3 epochs: 10% accuracy with them, 100% recalibrated). The
            "adaptive batch normalization" of EagleEye (Li et al., ECCV 2020). 0: off; models
            without BatchNormalization are unaffected.
    """

    strategy: str = "imp"
    rounds: int | None = 8
    rate: float | str = 0.2
    target_sparsity: float | None = None
    budget: float | None = None
    stop_at_budget: bool = True
    total_epochs: int | None = None
    patience: int | None = None
    ramp: float = 0.0
    epochs_per_round: int = 1
    dense_epochs: int | None = None
    steps_per_round: int | None = None
    batch_size: int = 32
    rewind: str = "init"
    rewind_at: int | None = None
    scope: str = "global"
    granularity: masks_lib.Granularity = masks_lib.WEIGHT
    exclude: tuple[str, ...] = ()
    layer_rates: dict = dataclasses.field(default_factory=dict)
    metric: str = "accuracy"
    higher_is_better: bool | None = None
    sensitivity_budget: float | None = None
    checkpoint: str = "round"
    seed: int = 0
    distill: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 4.0
    final_qat_epochs: int = 0
    recalibrate_bn: int = 100

    def __post_init__(self):
        v.choice("strategy", self.strategy, STRATEGIES)
        self._check_counts()
        self._check_budgeted()
        self._check_rewind()
        v.choice("scope", self.scope, tuple(masks_lib.STRATEGIES))
        object.__setattr__(self, "granularity", masks_lib.Granularity.parse(self.granularity))
        if self.ramp and self.granularity.kind == "channel":
            v.fail("ramp", self.ramp, "0 with granularity='channel' (channels are pruned at "
                   "the start of each round)")
        self._check_selectors()
        if not isinstance(self.metric, str) or not self.metric:
            v.fail("metric", self.metric, "the name of a metric the model is compiled with")
        if self.higher_is_better is None:
            if higher_is_better(self.metric) is None:
                v.fail("metric", self.metric, "a metric whose direction tfimp knows (accuracy, "
                       "auc, loss, mse, mae, ...), or pass higher_is_better=True/False")
        else:
            v.flag("higher_is_better", self.higher_is_better)
        if self.budget is not None and self.higher_better and self.budget > 1:
            v.fail("budget", self.budget, f"at most 1 for `{self.metric}` (an absolute drop of a "
                   "higher-is-better metric such as accuracy: 0.01 is one point)")
        if self.sensitivity_budget is not None:
            v.fraction("sensitivity_budget", self.sensitivity_budget)
        v.choice("checkpoint", self.checkpoint, ("round", "epoch"))
        v.integer("seed", self.seed, 0)
        if self.distill is not None:
            v.choice("distill", self.distill, ("dense", "teacher"))
        if v.non_negative("distill_weight", self.distill_weight) > 1:
            v.fail("distill_weight", self.distill_weight, "a number in [0, 1]")
        v.positive_number("distill_temperature", self.distill_temperature)
        v.integer("final_qat_epochs", self.final_qat_epochs, 0)
        v.integer("recalibrate_bn", self.recalibrate_bn, 0)

    def _check_counts(self) -> None:
        if self.rounds is None and self.target_sparsity is None and not self.adaptive:
            v.fail("rounds", None, "a number of rounds when there is no target_sparsity "
                   "(e.g. rounds=8, or target_sparsity=0.95)")
        if self.rounds is not None:
            v.integer("rounds", self.rounds, 0)
        if isinstance(self.rate, str):
            if self.rate != ADAPTIVE:
                v.fail("rate", self.rate, "a fraction in (0, 1) or 'adaptive'")
        else:
            object.__setattr__(self, "rate", v.fraction("rate", self.rate))
        if self.target_sparsity is not None:
            v.fraction("target_sparsity", self.target_sparsity)
        if self.budget is not None:
            v.non_negative("budget", self.budget, "a finite number >= 0 (an absolute metric "
                           "drop, e.g. 0.01 for one accuracy point)")
        v.flag("stop_at_budget", self.stop_at_budget)
        v.positive_int("epochs_per_round", self.epochs_per_round)
        for name in ("dense_epochs", "steps_per_round"):
            if getattr(self, name) is not None:
                v.positive_int(name, getattr(self, name))
        v.positive_int("batch_size", self.batch_size)

    def _check_budgeted(self) -> None:
        if not isinstance(self.ramp, (int, float)) or isinstance(self.ramp, bool) \
                or not 0.0 <= self.ramp < 1.0:
            v.fail("ramp", self.ramp, "a share of the round in [0, 1)")
        for name in ("total_epochs", "patience"):
            if getattr(self, name) is not None:
                v.positive_int(name, getattr(self, name))
        if self.total_epochs is not None and self.steps_per_round is not None:
            v.fail("steps_per_round", self.steps_per_round, "None when total_epochs is set "
                   f"(the budget is counted in epochs; total_epochs={self.total_epochs})")
        if self.total_epochs is not None and self.dense_epochs is not None \
                and self.dense_epochs >= self.total_epochs:
            v.fail("dense_epochs", self.dense_epochs, f"fewer than total_epochs="
                   f"{self.total_epochs}, so epochs are left for the pruning rounds")
        if self.adaptive:
            if self.budget is None:
                v.fail("budget", None, "an accepted metric drop (e.g. budget=0.01) with "
                       "rate='adaptive': the budget decides how far the rounds go")
            if self.rounds is None and self.total_epochs is None:
                v.fail("total_epochs", None, "a number of epochs (or a rounds limit) with "
                       "rate='adaptive' and rounds=None, so the run ends")
            if self.strategy == "gradual":
                v.fail("rate", self.rate, "a fraction with strategy='gradual' (it prunes "
                       "to target_sparsity; 'adaptive' is for strategy='imp')")
        if self.strategy == "gradual" and self.target_sparsity is None \
                and self.rounds is None:
            v.fail("target_sparsity", None, "the sparsity a gradual run prunes to")
        if self.strategy == "gradual" and self.distill is not None:
            v.fail("distill", self.distill, "None with strategy='gradual' (distillation "
                   "retrains IMP rounds)")
        try:
            _ = self.epoch_plan
        except ValueError as e:
            raise v.InvalidArgumentError(str(e)) from None

    @property
    def epoch_plan(self):
        """How `total_epochs` is spent by an IMP run (None without it)."""
        if self.total_epochs is None or self.strategy == "gradual":
            return None
        dense = self.dense_epochs or budget_lib.dense_share(self.total_epochs)
        per_round = None
        if self.adaptive:
            per_round = max(1, (self.total_epochs - dense) // budget_lib.ADAPTIVE_ROUNDS)
        return budget_lib.EpochPlan(self.total_epochs, dense, self.total_rounds, per_round)

    def _check_rewind(self) -> None:
        v.choice("rewind", self.rewind, REWIND_MODES)
        if (self.rewind in ("step", "epoch")) != (self.rewind_at is not None):
            v.fail("rewind_at", self.rewind_at, "an integer >= 0 when rewind is 'step' or "
                   f"'epoch', and None otherwise (rewind={self.rewind!r})")
        if self.rewind_at is not None:
            v.integer("rewind_at", self.rewind_at, 0)

    def _check_selectors(self) -> None:
        exclude = (self.exclude,) if isinstance(self.exclude, (str, type)) else self.exclude
        names = tuple(e.__name__ if isinstance(e, type) else e for e in exclude)
        if not all(isinstance(n, str) and n for n in names):
            v.fail("exclude", self.exclude, "layer names, glob patterns or layer classes")
        object.__setattr__(self, "exclude", names)
        if not isinstance(self.layer_rates, dict):
            v.fail("layer_rates", self.layer_rates, "a dict {layer name or pattern: rate}")
        rates = {}
        for key, rate in self.layer_rates.items():
            name = key.__name__ if isinstance(key, type) else key
            if not isinstance(name, str) or not name:
                v.fail("layer_rates", self.layer_rates, "keyed by layer names or patterns")
            rates[name] = v.fraction(f"layer_rates[{name!r}]", rate, allow_zero=True)
        object.__setattr__(self, "layer_rates", rates)

    # --- derived values
    @property
    def adaptive(self) -> bool:
        return self.rate == ADAPTIVE

    @property
    def gradual_sparsity(self) -> float:
        """The sparsity a gradual run prunes to: `target_sparsity`, or where `rounds` IMP
        rounds at `rate` end."""
        if self.target_sparsity is not None:
            return self.target_sparsity
        return schedules_lib.geometric_sparsity(self.rate, self.rounds)

    @property
    def total_rounds(self) -> int | None:
        """The number of pruning rounds: `rounds`, or fewer when `target_sparsity` comes first
        (None: adaptive, until the budgets are spent; 1 for a gradual run)."""
        if self.strategy == "gradual":
            return 1
        if self.adaptive:
            return self.rounds
        limits = [] if self.rounds is None else [self.rounds]
        if self.target_sparsity is not None:
            limits.append(schedules_lib.rounds_to_reach(self.rate, self.target_sparsity))
        return min(limits)

    @property
    def higher_better(self) -> bool:
        """The metric's direction, given or inferred."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return bool(higher_is_better(self.metric))

    @property
    def rewind_arg(self):
        """The rewind point as one value: "init", ("step", k), ..."""
        return (self.rewind, self.rewind_at) if self.rewind_at is not None else self.rewind

    def drop(self, dense: float, value: float) -> float:
        """How far `value` of the metric is worse than the dense model's."""
        return metric_drop(dense, value, self.higher_better)

    # --- config round trip
    def get_config(self) -> dict:
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        config["granularity"] = str(self.granularity)
        config["exclude"] = list(self.exclude)
        config["layer_rates"] = dict(sorted(self.layer_rates.items()))
        return config

    @classmethod
    def from_config(cls, config: dict) -> IMPConfig:
        config = dict(config)
        if "exclude" in config:
            config["exclude"] = tuple(config["exclude"])
        return cls(**config)

    @classmethod
    def budgeted(cls, total_epochs: int = 80, **overrides) -> IMPConfig:
        """The budgeted IMP that won per epoch spent in `bench/imp_vs_gradual.py` (digits,
        MNIST-1D; docs/results.md): `total_epochs` in all (a quarter dense), 6 rounds that
        each prune 45% of the remaining weights spread over the first half of the round,
        LAMP ranking, ALLR retraining, a one-point budget; `overrides` change any field."""
        settings = {"total_epochs": total_epochs, "rounds": 6, "rate": 0.45, "ramp": 0.5,
                    "scope": "lamp", "rewind": "allr", "budget": 0.01,
                    "stop_at_budget": False}
        return cls.from_kwargs(None, **{**settings, **overrides})

    @classmethod
    def from_kwargs(cls, base: IMPConfig | None = None, **overrides) -> IMPConfig:
        """`base` (default: the defaults) with `overrides`; `rewind=("step", k)` is accepted
        for `rewind="step", rewind_at=k`."""
        if base is not None and not isinstance(base, IMPConfig):
            v.fail("config", base, "an IMPConfig or None")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"Unknown IMP settings {unknown}; valid: {sorted(names)}")
        rewind = overrides.get("rewind")
        if isinstance(rewind, (tuple, list)):
            if len(rewind) != 2:
                v.fail("rewind", rewind, "'init', 'none', 'lr', ('step', k) or ('epoch', k)")
            overrides["rewind"], overrides["rewind_at"] = rewind
        elif rewind is not None and rewind not in ("step", "epoch") \
                and "rewind_at" not in overrides:
            overrides["rewind_at"] = None
        return dataclasses.replace(base or cls(), **overrides)

