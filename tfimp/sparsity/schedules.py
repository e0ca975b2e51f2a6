"""Sparsity schedules: when to prune and to what sparsity, as plain Python data.

A schedule answers `should_prune(step)` and `sparsity(step)` without TensorFlow, is a frozen
dataclass validated on construction, and round-trips through `get_config`/`from_config`.
`ConstantSparsity` and `PolynomialDecay` take tfmot's arguments and give tfmot's values at
every step, so code written for `tfmot.sparsity.keras` migrates by changing the import.

Example:

    schedule = tfimp.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000, frequency=100)
    schedule.should_prune(100), schedule.sparsity(100)   # (True, 0.1283...)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from tfimp._util.errors import InvalidArgumentError

__all__ = [
    "SCHEDULES",
    "ConstantSparsity",
    "OneShot",
    "PolynomialDecay",
    "PruningSchedule",
    "deserialize",
    "geometric_sparsity",
    "get",
    "serialize",
]


def _check_sparsity(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise InvalidArgumentError(
            f"Argument `{name}` must be a float in [0, 1). Received: {name}={value!r}"
        )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(
            f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


def _check_steps(begin_step: int, end_step: int, frequency: int, allow_forever: bool) -> None:
    _check_int("begin_step", begin_step, 0)
    if isinstance(end_step, bool) or not isinstance(end_step, int):
        raise InvalidArgumentError(
            f"Argument `end_step` must be an integer. Received: end_step={end_step!r}")
    if end_step == -1 and not allow_forever:
        raise InvalidArgumentError(
            "Argument `end_step` must be > begin_step for a decaying schedule (it needs an end "
            f"to decay towards). Received: end_step={end_step}"
        )
    if end_step != -1 and end_step < begin_step:
        raise InvalidArgumentError(
            "Argument `end_step` must be >= begin_step, or -1 to prune until training ends. "
            f"Received: end_step={end_step}, begin_step={begin_step}"
        )
    _check_int("frequency", frequency, 1)


class PruningSchedule:
    """Base class: decides at which steps masks are recomputed and at what sparsity.

    Subclasses are frozen dataclasses and implement `should_prune` and `sparsity`.
    """

    name: ClassVar[str] = ""

    def should_prune(self, step: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must override `should_prune(step)`.")

    def sparsity(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must override `sparsity(step)`.")

    def last_step(self) -> int | None:
        """The last step at which the schedule prunes, or None if it prunes forever."""
        raise NotImplementedError(f"{type(self).__name__} must override `last_step()`.")

    def latest_pruning_step(self, step: int) -> int | None:
        """The last step <= `step` at which the schedule prunes, or None.

        Mask updates that run only every few steps (e.g. with `steps_per_execution`) use it to
        catch up on a pruning step they did not see. Subclasses may override it; this
        default only looks at `step` itself.
        """
        return step if self.should_prune(step) else None

    def end_sparsity(self) -> float:
        """The sparsity the schedule ends at."""
        return self.sparsity(self.last_step() or 0)

    def __call__(self, step: int) -> tuple[bool, float]:
        """tfmot's contract: `(should_prune, sparsity) = schedule(step)`."""
        return self.should_prune(step), self.sparsity(step)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_config(cls, config: dict) -> PruningSchedule:
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if not isinstance(config, dict) or set(config) - fields:
            raise InvalidArgumentError(
                f"Argument `config` must hold the fields of {cls.__name__} ({sorted(fields)}). "
                f"Received: config={config!r}")
        return cls(**config)


def _latest_turn(step: int, begin_step: int, end_step: int, frequency: int) -> int | None:
    if step < begin_step:
        return None
    last = step if end_step < 0 else min(step, end_step)
    return begin_step + (last - begin_step) // frequency * frequency


def _in_range_and_turn(step: int, begin_step: int, end_step: int, frequency: int) -> bool:
    in_range = step >= begin_step and (step <= end_step or end_step < 0)
    return in_range and (step - begin_step) % frequency == 0


@dataclasses.dataclass(frozen=True)
class ConstantSparsity(PruningSchedule):
    """The same target sparsity at every pruning step in `[begin_step, end_step]`.

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first step at which masks are computed.
        end_step: last step at which masks are computed; -1 prunes until training ends.
        frequency: masks are recomputed every `frequency` steps from `begin_step`.
    """

    target_sparsity: float
    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100
    name: ClassVar[str] = "constant"

    def __post_init__(self):
        _check_steps(self.begin_step, self.end_step, self.frequency, allow_forever=True)
        _check_sparsity("target_sparsity", self.target_sparsity)

    def should_prune(self, step: int) -> bool:
        return _in_range_and_turn(step, self.begin_step, self.end_step, self.frequency)

    def latest_pruning_step(self, step: int) -> int | None:
        return _latest_turn(step, self.begin_step, self.end_step, self.frequency)

    def sparsity(self, step: int) -> float:
        return float(self.target_sparsity)

    def last_step(self) -> int | None:
        if self.end_step < 0:
            return None
        return self.end_step - (self.end_step - self.begin_step) % self.frequency


@dataclasses.dataclass(frozen=True)
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` (Zhu & Gupta, 2017).

    `s(step) = final + (initial - final) * (1 - p) ** power`, with
    `p = clip((step - begin_step) / (end_step - begin_step), 0, 1)`.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity reached at `end_step`, in [0, 1).
        begin_step: first pruning step.
        end_step: step at which `final_sparsity` is reached; must be > begin_step.
        power: exponent of the decay; 3 prunes fast early and slowly late.
        frequency: masks are recomputed every `frequency` steps from `begin_step`.
    """

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    power: float = 3
    frequency: int = 100
    name: ClassVar[str] = "polynomial_decay"

    def __post_init__(self):
        _check_steps(self.begin_step, self.end_step, self.frequency, allow_forever=False)
        if self.end_step == self.begin_step:
            raise InvalidArgumentError(
                "Argument `end_step` must be > begin_step for PolynomialDecay. "
                f"Received: end_step={self.end_step}, begin_step={self.begin_step}"
            )
        _check_sparsity("initial_sparsity", self.initial_sparsity)
        _check_sparsity("final_sparsity", self.final_sparsity)
        if (isinstance(self.power, bool) or not isinstance(self.power, (int, float))
                or not math.isfinite(self.power) or self.power <= 0):
            raise InvalidArgumentError(
                "Argument `power` must be a finite number > 0 (3 prunes fast early, 1 "
                f"linearly). Received: power={self.power!r}")

    def should_prune(self, step: int) -> bool:
        return _in_range_and_turn(step, self.begin_step, self.end_step, self.frequency)

    def latest_pruning_step(self, step: int) -> int | None:
        return _latest_turn(step, self.begin_step, self.end_step, self.frequency)

    def sparsity(self, step: int) -> float:
        p = (step - self.begin_step) / (self.end_step - self.begin_step)
        p = min(1.0, max(0.0, p))
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (
            (1.0 - p) ** self.power
        )

    def last_step(self) -> int | None:
        return self.end_step - (self.end_step - self.begin_step) % self.frequency


@dataclasses.dataclass(frozen=True)
class OneShot(PruningSchedule):
    """Prune once, at `step`, to `target_sparsity`; the masks then stay fixed.

    This is what each round of Iterative Magnitude Pruning does between retraining phases.
    """

    target_sparsity: float
    step: int = 0
    name: ClassVar[str] = "one_shot"

    def __post_init__(self):
        _check_sparsity("target_sparsity", self.target_sparsity)
        _check_int("step", self.step, 0)

    def should_prune(self, step: int) -> bool:
        return step == self.step

    def latest_pruning_step(self, step: int) -> int | None:
        return self.step if step >= self.step else None

    def sparsity(self, step: int) -> float:
        return float(self.target_sparsity)

    def last_step(self) -> int | None:
        return self.step


def geometric_sparsity(rate: float, rounds: int) -> float:
    """Sparsity after `rounds` IMP rounds that each prune `rate` of the remaining weights.

    The density after r rounds is `(1 - rate) ** r`.
    """
    _check_sparsity("rate", rate)
    _check_int("rounds", rounds, 0)
    return 1.0 - (1.0 - rate) ** rounds


def rounds_to_reach(rate: float, target_sparsity: float) -> int:
    """The number of rounds at `rate` needed to reach at least `target_sparsity`."""
    _check_sparsity("rate", rate)
    _check_sparsity("target_sparsity", target_sparsity)
    if target_sparsity == 0.0:
        return 0
    if rate == 0.0:
        raise InvalidArgumentError(
            "Argument `rate` must be > 0 to reach a sparsity. Received: rate=0.0")
    return math.ceil(math.log(1.0 - target_sparsity) / math.log(1.0 - rate) - 1e-9)


SCHEDULES: dict[str, type[PruningSchedule]] = {
    cls.__name__: cls for cls in (ConstantSparsity, PolynomialDecay, OneShot)
}


def serialize(schedule: PruningSchedule) -> dict:
    """`{"class_name": ..., "config": ...}`, the Keras serialization shape."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> PruningSchedule:
    """Inverse of `serialize`; custom schedules register themselves in `SCHEDULES`."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise InvalidArgumentError(
            "Argument `config` must be a dict {'class_name': ..., 'config': {...}} as "
            f"`serialize` returns. Received: config={config!r}")
    cls = SCHEDULES.get(config.get("class_name", ""))
    if cls is None:
        raise InvalidArgumentError(
            f"Argument `config` must name a schedule class: one of {sorted(SCHEDULES)} (register "
            "custom schedules with `tfimp.schedules.SCHEDULES[name] = cls`). Received: "
            f"config={{'class_name': {config.get('class_name')!r}, ...}}")
    return cls.from_config(config["config"])


def get(schedule: PruningSchedule | float | dict) -> PruningSchedule:
    """A schedule from a schedule, a serialized dict, or a float (one-shot at step 0)."""
    if isinstance(schedule, PruningSchedule):
        return schedule
    if isinstance(schedule, dict):
        return deserialize(schedule)
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        _check_sparsity("schedule", schedule)
        return OneShot(float(schedule))
    raise TypeError(
        "Argument `schedule` must be a tfimp schedule (e.g. tfimp.PolynomialDecay(...)), a "
        f"sparsity float in [0, 1), or a serialized schedule dict. Received: schedule={schedule!r}"
    )
