"""Channel scores and channel masks: pure functions on arrays.

Nothing here touches a Keras model. The unit is a *class*: one channel that a group of layers
keeps or drops together (see `tfimp.structure.graph`). A keep vector is a bool array over
classes. Every strategy

- removes an exact count, `round(sparsity * n)` of the `n` prunable classes of a pool (a group
  in layer scope, all groups without their own target in global scope), unless the minimum
  number of channels per layer stops it,
- breaks ties deterministically (lowest class index first),
- never makes a keep vector denser: a removed class stays removed,
- never removes a fixed class (a model input/output channel, or one an untracked layer reads).

Example:

    scores = class_scores({"conv": filter_norms(kernel, axis=-1)}, {"conv": np.arange(4)}, 4)
    keep = channel_keep(scores, np.zeros(4, int), 0.5)   # drops the 2 weakest filters
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from tfimp._util.validate import fail
from tfimp.sparsity.masks import Granularity, register_kind

__all__ = [
    "NORMS",
    "Channels",
    "channel_keep",
    "class_scores",
    "filter_norms",
    "slice_mask",
]

NORMS = ("l1", "l2")


@dataclasses.dataclass(frozen=True)
class Channels(Granularity):
    """Channel granularity: whole output channels ranked by a filter norm.

    Args:
        norm: "l1" (sum of magnitudes) or "l2" of each filter, summed over the layers that
            produce the channel.
        bn_scale: multiply each channel's score by the magnitude of the BatchNormalization
            scale (|gamma|) it passes, as in network slimming.
        min_channels: channels every layer keeps at least (or all it has, if fewer).

    The short form (recipes, the command line) is "channel", with options appended:
    "channel:l2:bn:min2".

    Example:

        tfimp.prune(model, 0.5, granularity=tfimp.structure.Channels(norm="l2"))
    """

    kind: str = "channel"
    norm: str = "l1"
    bn_scale: bool = False
    min_channels: int = 1

    def __post_init__(self):
        if self.kind != "channel":
            fail("granularity.kind", self.kind, "'channel' for Channels")
        super().__post_init__()
        if self.norm not in NORMS:
            fail("norm", self.norm, f"one of {NORMS}")
        if not isinstance(self.bn_scale, bool):
            fail("bn_scale", self.bn_scale, "True or False")
        m = self.min_channels
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            fail("min_channels", m, "an integer >= 1")

    @classmethod
    def parse(cls, value: str) -> Channels:
        """`Channels` from "channel[:l1|:l2][:bn][:min<N>]"."""
        kind, *options = value.strip().split(":")
        settings: dict = {}
        for option in options:
            if option in NORMS:
                settings["norm"] = option
            elif option == "bn":
                settings["bn_scale"] = True
            elif option.startswith("min") and option[3:].isdigit():
                settings["min_channels"] = int(option[3:])
            else:
                fail("granularity", value, "'channel' with options l1|l2, bn, min<N>, e.g. "
                     "'channel:l2:bn:min2'")
        if kind != "channel":
            fail("granularity", value, "'channel[:options]'")
        return cls(**settings)

    def __str__(self) -> str:
        parts = ["channel"] + ([self.norm] if self.norm != "l1" else [])
        parts += (["bn"] if self.bn_scale else []) + (
            [f"min{self.min_channels}"] if self.min_channels != 1 else [])
        return ":".join(parts)

    def get_config(self) -> dict:
        return {"kind": "channel", "norm": self.norm, "bn_scale": self.bn_scale,
                "min_channels": self.min_channels}

    @classmethod
    def from_config(cls, config: Mapping) -> Channels:
        return cls(**{k: v for k, v in config.items() if k in ("norm", "bn_scale",
                                                                "min_channels")})


register_kind("channel", Channels)


def filter_norms(weight: np.ndarray, axis: int = -1, norm: str = "l1") -> np.ndarray:
    """Per index along `axis` (an output channel), the L1 or L2 norm over all other axes."""
    if norm not in NORMS:
        raise ValueError(f"Argument `norm` must be one of {NORMS}. Received: norm={norm!r}")
    w = np.moveaxis(np.asarray(weight, dtype=np.float64), axis, 0).reshape(
        np.shape(weight)[axis], -1)
    if norm == "l1":
        return np.abs(w).sum(axis=1)
    return np.sqrt(np.square(w).sum(axis=1))


def class_scores(
    norms: Mapping[str, np.ndarray],
    classes: Mapping[str, np.ndarray],
    n_classes: int,
    scales: np.ndarray | None = None,
) -> np.ndarray:
    """Score of each class: the sum of its members' filter norms, times `scales` if given.

    Args:
        norms: per producing layer, the norm of each of its output channels.
        classes: per producing layer, the class of each of its output channels.
        n_classes: number of classes.
        scales: per class, a factor (e.g. the mean |gamma| of the normalizations it passes).
    """
    score = np.zeros(n_classes, dtype=np.float64)
    for name, values in norms.items():
        score += np.bincount(np.asarray(classes[name]), weights=np.asarray(values, np.float64),
                             minlength=n_classes)
    if scales is not None:
        score *= np.asarray(scales, dtype=np.float64)
    return score


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            0.0 <= value <= 1.0):
        raise ValueError(f"Argument `{name}` must be in [0, 1]. Received: {name}={value!r}")
    return float(value)


@dataclasses.dataclass
class _Floor:
    """Per layer, how many channels it keeps now and must keep at least."""

    kept: dict
    floor: dict
    by_class: dict

    @classmethod
    def build(cls, layers: Mapping[str, np.ndarray], keep: np.ndarray, minimum: int) -> _Floor:
        kept, floor, by_class = {}, {}, {}
        for name, classes in layers.items():
            classes = np.asarray(classes)
            kept[name] = int(np.count_nonzero(keep[classes]))
            floor[name] = min(minimum, len(classes))
            for c, k in zip(*np.unique(classes, return_counts=True)):
                by_class.setdefault(int(c), []).append((name, int(k)))
        return cls(kept, floor, by_class)

    def allows(self, c: int) -> bool:
        return all(self.kept[n] - k >= self.floor[n] for n, k in self.by_class.get(c, ()))

    def remove(self, c: int) -> None:
        for n, k in self.by_class.get(c, ()):
            self.kept[n] -= k


def _remove(keep: np.ndarray, pool: np.ndarray, scores: np.ndarray, count: int,
            floor: _Floor) -> None:
    """Removes the `count` lowest-scoring classes of `pool` (ties: lowest index first)."""
    order = pool[np.lexsort((pool, scores[pool]))]
    removed = int(np.count_nonzero(~keep[pool]))
    for c in order.tolist():
        if removed >= count:
            return
        if keep[c] and floor.allows(c):
            keep[c] = False
            floor.remove(c)
            removed += 1


def _normalized(scores: np.ndarray, class_group: np.ndarray, keep: np.ndarray,
                prunable: np.ndarray) -> np.ndarray:
    """Scores divided by the mean score of their group's live prunable classes."""
    out = scores.copy()
    for g in np.unique(class_group[prunable]).tolist():
        members = prunable & (class_group == g)
        live = members & keep
        mean = scores[live].mean() if live.any() else 0.0
        if mean > 0:
            out[members] = scores[members] / mean
    return out


def channel_keep(
    scores: np.ndarray,
    class_group: np.ndarray,
    sparsity: float,
    *,
    scope: str = "layer",
    fixed: np.ndarray | None = None,
    old_keep: np.ndarray | None = None,
    targets: Mapping[int, float] | None = None,
    layers: Mapping[str, np.ndarray] | None = None,
    min_channels: int = 1,
) -> np.ndarray:
    """Which classes stay: the lowest-scoring ones go, group by group or model-wide.

    Args:
        scores: per class, its importance (e.g. from `class_scores`).
        class_group: per class, its group index.
        sparsity: fraction of prunable classes to remove, in [0, 1].
        scope: "layer" ranks each group alone; "global" ranks all groups together after
            dividing each group's scores by their mean (per-layer normalization).
        fixed: per class, True if it must stay.
        old_keep: the current keep vector; removed classes stay removed.
        targets: per group index, its own sparsity (ranked alone even in global scope).
        layers: per layer, the class of each of its output channels; every layer keeps at
            least `min_channels` of them (or all, if it has fewer).
        min_channels: see `layers`.

    Returns:
        A bool array over classes, True where the class stays.
    """
    scores = np.asarray(scores, dtype=np.float64)
    class_group = np.asarray(class_group)
    n = scores.size
    sparsity = _check_fraction("sparsity", sparsity)
    if scope not in ("layer", "global"):
        raise ValueError(f"Argument `scope` must be 'layer' or 'global'. Received: scope={scope!r}")
    targets = {int(g): _check_fraction(f"targets[{g}]", s) for g, s in (targets or {}).items()}
    fixed = np.zeros(n, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    keep = np.ones(n, dtype=bool) if old_keep is None else np.asarray(old_keep, dtype=bool).copy()
    prunable = ~fixed
    floor = _Floor.build(layers or {}, keep, min_channels)
    ranked = np.where(keep, scores, -np.inf)
    pooled = prunable & ~np.isin(class_group, list(targets))
    for g in np.unique(class_group[prunable]).tolist():
        if g in targets or scope == "layer":
            pool = np.flatnonzero(prunable & (class_group == g))
            _remove(keep, pool, ranked, round(targets.get(g, sparsity) * pool.size), floor)
    if scope == "global" and pooled.any():
        pool = np.flatnonzero(pooled)
        normalized = np.where(keep, _normalized(scores, class_group, keep, pooled), -np.inf)
        _remove(keep, pool, normalized, round(sparsity * pool.size), floor)
    return keep


def slice_mask(shape: tuple, slices: list[tuple[int, np.ndarray]], keep: np.ndarray
               ) -> np.ndarray:
    """A 0/1 float32 mask of `shape` that zeroes every index whose class is removed.

    Args:
        shape: the variable's shape.
        slices: `(axis, classes)` pairs: the class of each index along `axis`.
        keep: the keep vector over classes.
    """
    mask = np.ones(shape, dtype=np.float32)
    for axis, classes in slices:
        view = [1] * len(shape)
        view[axis] = shape[axis]
        mask = mask * np.asarray(keep, dtype=np.float32)[np.asarray(classes)].reshape(view)
    return mask

