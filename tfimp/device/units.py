"""Which units (neurons, channels) a device round removes, and what that saves.

`Units` reads a plain Keras model's channel graph (`tfimp.structure.trace`): the classes of
channels that go together, which are still read by some layer, and what each layer costs as
a function of the classes kept: weight bytes (int8 weights, int32 biases), multiply-adds, and
the int8 activation bytes live around each layer (the largest is the arena's proxy).

`plan_cut` removes units until the predicted resources reach their targets. With
allocation="sensitivity" each step tries a small cut in every group (its weakest channels by
filter L1 norm), measures how much each moves the model's outputs on training inputs (the
policy's evaluator: KL divergence from the parent's class probabilities; with
allocation="loss", the validation loss increase), and takes the one that costs the least per
unit of resource saved: NetAdapt's per-layer greedy choice (Yang
et al., ECCV 2018) without its short fine-tuning, scored per byte as Sony MCT's mixed-precision
search scores sensitivity per weight memory. allocation="uniform" cuts the same fraction of
every group instead, the smallest share (in 1% steps) that meets the targets (the baseline of
docs/results.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import numpy as np

from tfimp.structure import channels as channels_lib
from tfimp.structure.graph import trace

__all__ = ["ALLOCATIONS", "Units", "plan_cut"]

ALLOCATIONS = ("sensitivity", "loss", "uniform")
KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")
FLAT_CUT = 1e-3
"""What a latency cut the table sees as flat counts for, per unit of multiply-adds saved."""
STEP_FRACTION = 0.05
"""A step of `plan_cut` removes this share of a group's live channels (at least one)."""


def _spatial(shape) -> int:
    dims = [d for d in tuple(shape)[1:-1] if d is not None]
    return int(np.prod(dims)) if dims else 1


@dataclasses.dataclass
class _Layer:
    variables: dict          # name -> (shape, [(axis, classes)])
    in_classes: np.ndarray
    out_classes: np.ndarray
    in_spatial: int
    out_spatial: int


class Units:
    """The channel graph of a plain model with the classes it still uses.

    With `latency` (a `latency.LatencyTable`), `estimate` also gives the table's latency of
    the layers it holds ("latency_us").
    """

    def __init__(self, model: keras.Model, latency=None):
        self.model, self.latency = model, latency
        self.graph = graph = trace(model)
        self.layers = [self._layer(e) for e in graph.entries]
        self.alive = self._alive()
        self.prunable = ~graph.fixed
        self.scores = self._scores()

    def _layer(self, e) -> _Layer:
        variables = {}
        for var in e.layer.weights:
            name = var.path.rsplit("/", 1)[-1]
            slices = [(s.axis, s.classes) for s in e.slices if s.variable == name]
            variables[name] = (tuple(var.shape), slices)
        try:
            in_spatial = _spatial(e.layer.input.shape)
        except (AttributeError, ValueError):
            in_spatial = _spatial(e.layer.output.shape)
        return _Layer(variables, np.asarray(e.in_classes), np.asarray(e.out_classes),
                      in_spatial, _spatial(e.layer.output.shape))

    def _arrays(self, e) -> dict[str, np.ndarray]:
        return {v.path.rsplit("/", 1)[-1]: keras.ops.convert_to_numpy(v)
                for v in e.layer.weights}

    def _alive(self) -> np.ndarray:
        """A class is alive while some layer reads it with a non-zero weight (or nothing
        reads it: a model output)."""
        read = np.zeros(self.graph.n_classes, dtype=bool)
        seen = np.zeros(self.graph.n_classes, dtype=bool)
        for e in self.graph.entries:
            values = self._arrays(e)
            for s in e.slices:
                if s.side != "in" or s.variable not in KERNELS:
                    continue
                w = np.moveaxis(values[s.variable], s.axis, 0)
                nonzero = w.reshape(w.shape[0], -1).any(axis=1)
                np.logical_or.at(read, s.classes, nonzero)
                seen[s.classes] = True
        return read | ~seen

    def _scores(self) -> np.ndarray:
        norms, classes = {}, {}
        for i, e in enumerate(self.graph.entries):
            values = self._arrays(e)
            for s in e.slices:
                if s.side == "out" and s.variable in KERNELS:
                    key = f"{i}:{s.variable}"
                    norms[key] = channels_lib.filter_norms(values[s.variable], s.axis)
                    classes[key] = s.classes
        return channels_lib.class_scores(norms, classes, self.graph.n_classes)

    # -- what a keep vector costs
    def estimate(self, keep: np.ndarray) -> dict[str, float]:
        """Weight bytes ("flash"), the largest activation bytes around a layer ("ram"),
        multiply-adds ("macs") and, with a latency table, its microseconds ("latency_us") of
        the model with the classes `keep` holds."""
        keep = np.asarray(keep, dtype=np.float64)
        flash = macs = peak = 0.0
        for layer in self.layers:
            for name, (shape, slices) in layer.variables.items():
                size = float(np.prod(shape)) if shape else 1.0
                for _, classes in slices:
                    size *= keep[classes].sum() / max(len(classes), 1)
                flash += size * (4 if name == "bias" else 1)
                if name in KERNELS:
                    macs += size * layer.out_spatial
            live_in = keep[layer.in_classes].sum() * layer.in_spatial
            live_out = keep[layer.out_classes].sum() * layer.out_spatial
            peak = max(peak, live_in + live_out)
        out = {"flash": flash, "ram": peak, "macs": macs}
        if self.latency is not None:
            out["latency_us"] = self.latency.model_us(self, keep > 0)
        return out

    def groups(self) -> list[np.ndarray]:
        """Per prunable group, its classes that may go (not fixed)."""
        return [g.classes[~g.fixed] for g in self.graph.groups if g.prunable]

    def step(self, keep: np.ndarray, classes: np.ndarray, fraction: float) -> np.ndarray | None:
        """`keep` without the weakest `fraction` of the live `classes` (a group keeps one)."""
        live = classes[keep[classes]]
        if live.size <= 1:
            return None
        n = min(live.size - 1, max(1, int(math.ceil(fraction * live.size))))
        weakest = live[np.argsort(self.scores[live], kind="stable")[:n]]
        out = keep.copy()
        out[weakest] = False
        return out

    # -- applying a keep vector
    def slice_masks(self, keep: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """Per (layer name, variable), the 0/1 mask that removes the classes not kept."""
        out = {}
        for e, layer in zip(self.graph.entries, self.layers):
            for name, (shape, slices) in layer.variables.items():
                if slices:
                    out[(e.layer.name, name)] = channels_lib.slice_mask(shape, slices, keep)
        return out

    def apply(self, keep: np.ndarray) -> Callable[[], None]:
        """Zeroes the removed classes in the model's variables; returns the undo."""
        saved = []
        by_name = {e.layer.name: e for e in self.graph.entries}
        for (layer, name), mask in self.slice_masks(keep).items():
            var = next(v for v in by_name[layer].layer.weights
                       if v.path.rsplit("/", 1)[-1] == name)
            value = keras.ops.convert_to_numpy(var)
            saved.append((var, value))
            var.assign(value * mask.astype(value.dtype))

        def undo():
            for var, value in saved:
                var.assign(value)
        return undo


def plan_cut(units: Units, over: Callable[[dict], dict], evaluate: Callable[[], float],
             allocation: str = "sensitivity", fraction: float = STEP_FRACTION,
             most: float = 1.0) -> dict:
    """Removes units from `units.alive` until `over(estimate)` is empty.

    Args:
        units: the model's `Units`.
        over: from an `estimate` dict, {resource: relative excess} for the resources still
            above their round target (empty when all are met).
        evaluate: how much worse the model is as its variables stand now (e.g. its loss
            increase on validation data); `plan_cut` zeroes candidate cuts in place around
            each call.
        allocation: "sensitivity" or "loss" (greedy, by `evaluate`), or "uniform".
        fraction: the share of a group's live channels one step removes.
        most: the largest share of the live prunable units the whole cut may remove, and
            of each group's (a target that needs more is left for later rounds).

    Returns:
        {"keep": the classes kept, "reached": whether the targets were met, "steps":
        [(group index, classes removed, drop)], "drop": the drop of the final cut}.
    """
    limit = int(most * np.count_nonzero(units.alive & units.prunable))
    if allocation == "uniform":
        return _uniform(units, over, evaluate, most)
    keep = units.alive.copy()
    steps, drop = [], 0.0
    groups = units.groups()
    while over(units.estimate(keep)):
        excess = over(units.estimate(keep))
        candidates = []
        for gi, classes in enumerate(groups):
            cut = units.step(keep, classes, fraction)
            if cut is None:
                continue
            gain = _gain(units, keep, cut, excess)
            if gain > 0 and np.count_nonzero(units.alive & ~cut) <= limit \
                    and _within_share(units, classes, cut, most):
                candidates.append((gi, cut, gain))
        if not candidates:
            break
        best = None
        for gi, cut, gain in candidates:
            d = _drop(units, cut, evaluate)
            key = (max(d, 0.0) / gain, -gain)
            if best is None or key < best[0]:
                best = (key, gi, cut, d)
        _, gi, cut, drop = best
        last, keep = keep & ~cut, cut
        steps.append((gi, int(units.alive.sum() - keep.sum()), round(drop, 6)))
    if steps:
        keep = _trim(units, keep, last, over)
    drop = _drop(units, keep, evaluate)
    return {"keep": keep, "reached": not over(units.estimate(keep)), "steps": steps,
            "drop": drop}


def _within_share(units: Units, classes, cut, most: float) -> bool:
    """Whether `cut` leaves the group at least 1 - `most` of its live units: a round's step
    bounds every layer's cut, as the rate bounds a weight round (a LeNet-300-100 latency
    round that may remove 45% of the units otherwise took fc1 from 124 units to 1 and the
    accuracy from 97% to 22%)."""
    live = np.count_nonzero(units.alive[classes])
    return np.count_nonzero(cut[classes]) >= live - math.ceil(most * live)


def _trim(units: Units, keep, last, over) -> np.ndarray:
    """`keep` with the last step's strongest units back while the targets stay met (a step
    removes a share of a group, which can overshoot)."""
    keep = keep.copy()
    for c in sorted(np.flatnonzero(last), key=lambda c: -units.scores[c]):
        keep[c] = True
        if over(units.estimate(keep)):
            keep[c] = False
            break
    return keep


def _drop(units: Units, keep, evaluate) -> float:
    undo = units.apply(keep)
    try:
        return evaluate()
    finally:
        undo()


def _uniform(units: Units, over, evaluate, most: float = 1.0) -> dict:
    """The smallest share (in 1% steps, at most `most`) that, cut from every group, meets
    the targets."""
    keep = units.alive.copy()
    for share in np.arange(1, int(round(most * 100)) + 1) / 100:
        keep = units.alive.copy()
        for classes in units.groups():
            cut = units.step(units.alive, classes, share)
            if cut is not None:
                keep &= cut
        if not over(units.estimate(keep)):
            break
    removed = int(units.alive.sum() - keep.sum())
    return {"keep": keep, "reached": not over(units.estimate(keep)),
            "steps": [(-1, removed, None)] if removed else [],
            "drop": _drop(units, keep, evaluate)}


def _gain(units: Units, keep, cut, excess: dict) -> float:
    """The cut's saving over the resources still in excess, each relative to its current
    estimate (so bytes, activation bytes and latency add up). Latency is the table's
    microseconds when `units` has a table, else multiply-adds."""
    before, after = units.estimate(keep), units.estimate(cut)

    def saved(key: str) -> float:
        return (before[key] - after[key]) / max(before[key], 1e-12)

    total = 0.0
    for r in excess:
        if r != "latency_ms":
            total += saved(r)
        elif "latency_us" not in before:
            total += saved("macs")
        else:
            # A small cut can save less than the table's timing noise; it still counts by
            # its multiply-adds, far below any cut the table sees saving time.
            total += saved("latency_us") if before["latency_us"] > after["latency_us"] \
                else FLAT_CUT * saved("macs")
    return total
