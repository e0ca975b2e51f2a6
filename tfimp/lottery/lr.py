"""Learning rates of the rounds of a budgeted IMP run.

`WarmupLinear` is the retraining schedule of ALLR (Zimmer et al., ICLR 2023): a short warm-up
from 0 to the start rate, then a linear decay to 0 at the end of the round. `stretched` fits
the compiled schedule of the user's optimizer to a phase of another length (the dense round 0,
a gradual run), so a cosine decay still ends where the phase ends.
"""

from __future__ import annotations

import keras

__all__ = ["WarmupLinear", "peak_rate", "stretched"]


@keras.saving.register_keras_serializable(package="tfimp")
class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` over `warmup_steps`, then `peak` -> 0 linearly at `total_steps`.

    Args:
        peak: the rate after the warm-up.
        total_steps: the length of the round in optimizer steps (> 0).
        warmup_steps: the warm-up length (ALLR uses 10% of the round).
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0):
        if not peak >= 0:
            raise ValueError(f"Argument `peak` must be >= 0. Received: peak={peak}")
        if int(total_steps) < 1 or not 0 <= int(warmup_steps) < int(total_steps):
            raise ValueError(
                "Arguments `total_steps` >= 1 and 0 <= `warmup_steps` < `total_steps` are "
                f"required. Received: total_steps={total_steps}, warmup_steps={warmup_steps}")
        self.peak, self.total_steps = float(peak), int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = float(max(self.warmup_steps, 1))
        decay = float(self.total_steps - self.warmup_steps)
        up = self.peak * step / warm
        down = self.peak * keras.ops.maximum(
            0.0, 1.0 - (step - self.warmup_steps) / decay)
        if self.warmup_steps == 0:
            return down
        return keras.ops.where(step < self.warmup_steps, up, down)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


def _rate(lr, step: int) -> float:
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(step)
    return float(keras.ops.convert_to_numpy(lr))


def peak_rate(model: keras.Model, steps: int) -> float:
    """The largest learning rate of the model's compiled optimizer over `steps` steps."""
    lr = model.optimizer._learning_rate
    if not isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return _rate(lr, 0)
    probes = sorted({0, *(int(steps * i / 16) for i in range(1, 17))})
    return max(_rate(lr, s) for s in probes)


def stretched(model: keras.Model, steps: int):
    """The compiled learning rate, serialized, with its decay spread over `steps` steps
    (schedules with `decay_steps`, and a warm-up kept in proportion); None when there is
    nothing to stretch (a constant rate, or a schedule without `decay_steps`)."""
    lr = model.optimizer._learning_rate
    if not isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return None
    config = lr.get_config()
    if "decay_steps" not in config:
        return None
    old = max(int(config["decay_steps"]) + int(config.get("warmup_steps") or 0), 1)
    scale = max(int(steps), 1) / old
    config["decay_steps"] = max(1, int(round(config["decay_steps"] * scale)))
    if config.get("warmup_steps"):
        config["warmup_steps"] = int(round(config["warmup_steps"] * scale))
    return keras.saving.serialize_keras_object(type(lr).from_config(config))


def serialized(schedule) -> dict:
    return keras.saving.serialize_keras_object(schedule)
