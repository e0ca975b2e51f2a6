"""The training budget of an IMP run, and the rules that spend it (pure Python, no Keras).

- `EpochPlan` splits `total_epochs` between the dense round 0 and the pruning rounds, and
  carries the epochs a round leaves unused (it stopped early) to the next one.
- `AdaptiveRate` chooses each round's pruning step from how the last round recovered: larger
  while rounds stay within the accuracy budget with margin, back to the last good round with a
  smaller step when one breaks it, and done when the step gets too small to matter.
- `allr_start` is the start learning rate of a retraining round by ALLR, the adaptive linear
  learning-rate restarting of Zimmer, Spiegel & Pokutta, "How I Learned to Stop Worrying and
  Love Retraining" (ICLR 2023): the peak rate scaled by how much of the weights' norm the
  pruning step removed, relative to the share of weights it removed, clipped to
  [min(round epochs / dense epochs, 1) * peak, peak].

Example:

    plan = EpochPlan(total=80, dense=20, rounds=10)
    plan.round_epochs(1, carry=0)     # 6
    rate = AdaptiveRate(budget=0.01)
    rate.step                         # the first round prunes this fraction of what remains
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["ADAPTIVE_ROUNDS", "AdaptiveRate", "EpochPlan", "allr_start", "dense_share"]

ADAPTIVE_ROUNDS = 12
"""The number of rounds an adaptive run plans its per-round epochs for."""

DENSE_SHARE = 0.25
"""The share of `total_epochs` that trains the dense round 0 when `dense_epochs` is not set."""


def dense_share(total: int) -> int:
    """Epochs of the dense round 0 out of a budget of `total` (at least 1)."""
    return max(1, int(round(total * DENSE_SHARE)))


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """How `total` epochs are spent: `dense` on round 0, the rest on the pruning rounds.

    With a known number of `rounds` the rest is split evenly (the first rounds take the
    remainder); with `rounds=None` (adaptive rate) each round gets `per_round` epochs until
    the budget runs out.
    """

    total: int
    dense: int
    rounds: int | None
    per_round: int | None = None

    def __post_init__(self):
        if self.dense >= self.total:
            raise ValueError(
                f"Argument `total_epochs` must leave epochs for the pruning rounds after the "
                f"{self.dense} dense epochs. Received: total_epochs={self.total}")
        if self.rounds is not None and self.total - self.dense < self.rounds:
            raise ValueError(
                f"Argument `total_epochs` must give each of the {self.rounds} rounds at least "
                f"one epoch after the {self.dense} dense epochs (at least "
                f"{self.dense + self.rounds}). Received: total_epochs={self.total}")

    @property
    def pruning(self) -> int:
        """Epochs for all pruning rounds together."""
        return self.total - self.dense

    def planned(self, r: int) -> int:
        """Round r's share before any carry (r >= 1)."""
        if self.rounds is None:
            return max(1, self.per_round or self.pruning // ADAPTIVE_ROUNDS)
        base, extra = divmod(self.pruning, max(self.rounds, 1))
        return base + (1 if r <= extra else 0)

    def round_epochs(self, r: int, spent: int) -> int:
        """Epochs round r may train, given `spent` epochs used by rounds 1..r-1 (rejected
        and stopped-early rounds included); 0 when the budget is gone."""
        left = self.pruning - spent
        if left <= 0:
            return 0
        if self.rounds is not None:
            # What earlier rounds left unused is carried here.
            planned_so_far = sum(self.planned(i) for i in range(1, r + 1))
            return max(1, min(left, planned_so_far - spent))
        return min(left, self.planned(r))


@dataclasses.dataclass
class AdaptiveRate:
    """The pruning step of each round of `rate="adaptive"`, from how the last one ended.

    The step is kept as `log(1 / (1 - fraction))`, so growing or halving it is the same
    change at any density. After a round within `budget`: the step grows by `grow` when the
    round kept at least half the budget as margin. After a round beyond it: the next round
    starts again from the last good round, with half the step, but not less than `min_step`
    of what remains. Done when a round of `min_step` breaks the budget: the budget's edge is
    found to within `min_step` (a run that ran out of epochs ends earlier). The first step is
    IMP's classic 20%, the largest 45% (the recipes' fixed rate); starting at 45% and growing
    to 60% broke the budget in 3-4 of 10 rounds and ended 1.1-1.4 steps of 20% short of the
    best fixed rate on LeNet-300-100, starting at 30% ended 1.1 steps short on one MNIST-1D
    seed (docs/results.md, "Adaptive rate against a sweep").
    """

    budget: float
    step: float = 0.2
    min_step: float = 0.1
    max_step: float = 0.45
    grow: float = 1.25
    good_round: int = 0
    edge: bool = False

    def __post_init__(self):
        for name in ("step", "min_step", "max_step"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"Argument `{name}` must be in (0, 1). Received: "
                                 f"{name}={value}")

    @staticmethod
    def _log(fraction: float) -> float:
        return -math.log1p(-fraction)

    @staticmethod
    def _fraction(log_step: float) -> float:
        return -math.expm1(-log_step)

    def update(self, r: int, drop: float) -> None:
        """Takes round r's metric drop below the dense model (positive = worse)."""
        log_step = self._log(self.step)
        if drop <= self.budget + 1e-12:
            self.good_round = r
            if drop <= self.budget / 2:
                log_step *= self.grow
        elif self.step <= self.min_step + 1e-12:
            self.edge = True
        else:
            log_step /= 2
        self.step = min(self.max_step, max(self.min_step, self._fraction(log_step)))

    @property
    def done(self) -> bool:
        return self.edge

    def state(self) -> dict:
        return dataclasses.asdict(self)


def allr_start(peak: float, norm_drop: float, step: float, round_epochs: int,
               dense_epochs: int) -> float:
    """ALLR's start learning rate for a retraining round (Zimmer et al. 2023).

    Args:
        peak: the largest learning rate of the original (dense) training.
        norm_drop: ||W - W_pruned|| / ||W|| over the prunable weights for this step.
        step: the fraction of the remaining weights this step pruned (> 0).
        round_epochs: the retraining length of the round.
        dense_epochs: the length of the dense training.
    """
    floor = min(round_epochs / max(dense_epochs, 1), 1.0) * peak
    scaled = norm_drop / math.sqrt(step) * peak if step > 0 else 0.0
    return float(min(max(scaled, floor), peak))
