"""Mask strategies: pure functions from weights (and old masks) to new masks.

Nothing here touches a Keras model. A mask is a float32 array of 0.0/1.0 with the weight's
shape. Every strategy

- zeroes an exact count: `round(sparsity * n)` of `n` weights (or blocks),
- breaks ties deterministically (by flat index, lowest first),
- never makes a mask denser: a weight pruned by `old_mask` stays pruned.

What is ranked is one value, the `Granularity`: single weights ("weight"), or blocks
("block:16x1"), ranked by mean magnitude. A block that sticks out past the weight's edge
(e.g. the last 1x16 block of a 300-input Dense kernel) is ranked by its real elements, unless
the granularity keeps whole blocks only ("block:16x1:whole"): then it counts as already
pruned, so it is always zeroed (the layout TFLite's int8 1x16 sparse kernel computes
correctly). The exact count still holds when it exceeds the partial blocks.

Example:

    w = np.arange(10.0).reshape(2, 5)
    layerwise_masks({"w": w}, 0.3)["w"]   # zeroes 0, 1, 2
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from tfimp._util import extensions
from tfimp._util.validate import Described, fail

__all__ = [
    "GRANULARITIES",
    "Granularity",
    "STRATEGIES",
    "check_mask",
    "erk_densities",
    "erk_masks",
    "get",
    "global_masks",
    "lamp_masks",
    "lamp_scores",
    "layerwise_masks",
    "magnitude_mask",
    "register_kind",
    "sparsity_of",
]

Masks = dict[str, np.ndarray]


GRANULARITIES: dict[str, type] = {}
"""Kind -> the `Granularity` class that holds its settings: "weight" and "block" here, others
registered by their package with `register_kind` (e.g. "channel", `tfimp.structure.Channels`)."""


def register_kind(kind: str, cls: type) -> None:
    """Makes `Granularity.parse` and `from_config` build `cls` for granularities of `kind`."""
    if not (isinstance(cls, type) and issubclass(cls, Granularity)):
        fail("cls", cls, "a subclass of tfimp.sparsity.masks.Granularity")
    GRANULARITIES[kind] = cls


def _kind_class(kind: str, value) -> type:
    if kind not in GRANULARITIES:
        extensions.load()
    if kind not in GRANULARITIES:
        fail("granularity", value, f"of a kind in {sorted(GRANULARITIES)}, e.g. {_FORMS}")
    return GRANULARITIES[kind]


_FORMS = "'weight', 'block:4x1', 'block:16x1:whole', another kind's name, or a Granularity"


@dataclasses.dataclass(frozen=True)
class Granularity:
    """What pruning removes as one unit: single weights, blocks of weights, or a registered
    kind such as channels (`GRANULARITIES`).

    Args:
        kind: "weight", "block", or a registered kind, whose settings live in its own
            subclass: "channel" (whole output channels with everything that depends on them)
            is `tfimp.structure.Channels`.
        block: with "block", the block shape over the trailing weight dimensions, e.g.
            (16, 1): 16 inputs of one Dense output unit (TFLite's int8 block-sparse layout).
        whole_blocks: with "block", always zero the blocks that stick out past a weight's
            edge, so only whole blocks are kept.

    `Granularity.parse` also takes the short forms "weight", "block:4x1", "block:16x1:whole",
    "channel" (and "channel:l2:bn:min2", see `tfimp.structure.Channels`) and a block shape
    tuple, as `tfimp.prune(..., granularity=...)` and recipes do.
    """

    kind: str = "weight"
    block: tuple[int, ...] | None = None
    whole_blocks: bool = False

    def __post_init__(self):
        cls = _kind_class(self.kind, self.kind)
        if not isinstance(self, cls):
            fail("granularity", self, f"{cls.__module__}.{cls.__name__}(...) for "
                 f"kind={self.kind!r}")
        if self.kind == "block":
            ok = (isinstance(self.block, (tuple, list)) and len(self.block) > 0 and all(
                isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in self.block))
            if not ok:
                fail("granularity.block", self.block,
                     "a tuple of positive integers over the trailing weight dimensions, "
                     "e.g. (4, 1)")
            object.__setattr__(self, "block", tuple(self.block))
        elif self.block is not None or self.whole_blocks:
            fail("granularity", self, f"free of a block shape with kind={self.kind!r}")
        if not isinstance(self.whole_blocks, bool):
            fail("granularity.whole_blocks", self.whole_blocks, "True or False")

    @classmethod
    def parse(cls, value) -> Granularity:
        """A `Granularity` from itself, None ("weight"), a short string, a block shape or a
        config dict."""
        if isinstance(value, Granularity):
            return value
        if value is None:
            return WEIGHT
        if isinstance(value, dict):
            return cls.from_config(value)
        if isinstance(value, (tuple, list)):
            return cls("block", tuple(value))
        if not isinstance(value, str):
            extensions.load()
            fail("granularity", value, f"{_FORMS} (kinds: {sorted(GRANULARITIES)})")
        kind, *rest = value.strip().split(":")
        if _kind_class(kind, value) is not Granularity:
            return GRANULARITIES[kind].parse(value)
        if kind != "block" or not rest:
            if rest:
                fail("granularity", value, "'weight' or 'block:<shape>[:whole]'")
            return cls(kind)
        if len(rest) > 2 or (len(rest) == 2 and rest[1] != "whole"):
            fail("granularity", value, "'block:<shape>' or 'block:<shape>:whole', e.g. "
                 "'block:16x1:whole'")
        try:
            block = tuple(int(b) for b in rest[0].lower().split("x"))
        except ValueError:
            fail("granularity", value, "a block shape of integers, e.g. 'block:4x1'")
        return cls("block", block, len(rest) == 2)

    def __str__(self) -> str:
        if self.kind != "block":
            return self.kind
        return f"block:{'x'.join(map(str, self.block))}" + (":whole" if self.whole_blocks else "")

    def get_config(self) -> dict:
        return {"kind": self.kind, "block": None if self.block is None else list(self.block),
                "whole_blocks": self.whole_blocks}

    @classmethod
    def from_config(cls, config: dict) -> Granularity:
        kind = config.get("kind", "weight")
        if _kind_class(kind, config) is not Granularity:
            return GRANULARITIES[kind].from_config(config)
        block = config.get("block")
        return cls(config.get("kind", "weight"), None if block is None else tuple(block),
                   bool(config.get("whole_blocks", False)))


GRANULARITIES.update(weight=Granularity, block=Granularity)
WEIGHT = Granularity()


def check_mask(mask: np.ndarray, shape: tuple | None = None) -> np.ndarray:
    """Returns `mask` as float32 after checking it holds only 0 and 1 (and has `shape`)."""
    mask = np.asarray(mask, dtype=np.float32)
    if shape is not None and mask.shape != tuple(shape):
        fail("mask", Described(f"<array of shape {mask.shape}>"),
             f"of the weight's shape {tuple(shape)}")
    if not np.all((mask == 0.0) | (mask == 1.0)):
        fail("mask", Described(f"<array with values {np.unique(mask)[:5].tolist()}...>"),
             "made of 0.0 and 1.0 only")
    return mask


def sparsity_of(array: np.ndarray) -> float:
    """Fraction of exact zeros."""
    array = np.asarray(array)
    return float(np.count_nonzero(array == 0) / array.size) if array.size else 0.0


def _check_block(block: tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | None:
    if block is None:
        return None
    block = tuple(int(b) for b in block)
    if any(b < 1 for b in block) or len(block) > ndim:
        raise ValueError(
            f"Argument `block` must hold at most {ndim} positive sizes (one per trailing weight "
            f"dimension). Received: block={block}"
        )
    return (1,) * (ndim - len(block)) + block


def _to_blocks(array: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """Mean of `array` over each block; edge blocks are averaged over their real elements."""
    padded_shape = [math.ceil(s / b) * b for s, b in zip(array.shape, block)]
    padded = np.full(padded_shape, np.nan, dtype=np.float64)
    padded[tuple(slice(0, s) for s in array.shape)] = array
    grid = [n // b for n, b in zip(padded_shape, block)]
    split = []
    for g, b in zip(grid, block):
        split += [g, b]
    view = padded.reshape(split)
    return np.nanmean(view, axis=tuple(range(1, 2 * len(block), 2)))


def _from_blocks(block_mask: np.ndarray, block: tuple[int, ...], shape: tuple) -> np.ndarray:
    full = block_mask
    for axis, b in enumerate(block):
        full = np.repeat(full, b, axis=axis)
    return full[tuple(slice(0, s) for s in shape)]


def _partial_blocks(shape: tuple, block: tuple[int, ...]) -> np.ndarray:
    """True for the blocks that stick out past the edge of a weight of `shape`."""
    grid = [math.ceil(s / b) for s, b in zip(shape, block)]
    partial = np.zeros(grid, dtype=bool)
    for axis, (s, b) in enumerate(zip(shape, block)):
        if s % b:
            index = [slice(None)] * len(grid)
            index[axis] = -1
            partial[tuple(index)] = True
    return partial


def _scores(weight: np.ndarray, old_mask: np.ndarray | None, block,
            prune_partial: bool = False) -> np.ndarray:
    """Ranking scores; already-pruned entries (and, with `prune_partial`, partial edge
    blocks) score -1 so they are pruned first.

    `old_mask` must already be checked. Magnitudes keep the weight's float precision
    (exact for ranking); block means are taken in float64.
    """
    dtype = weight.dtype if np.issubdtype(weight.dtype, np.floating) else np.dtype(np.float64)
    score = np.abs(weight.astype(dtype, copy=False))
    if old_mask is not None:
        score = np.where(old_mask == 0.0, dtype.type(-1.0), score)
    if block is not None:
        score = _to_blocks(score, block)
        if old_mask is not None:
            pruned = _to_blocks(old_mask.astype(np.float64), block) == 0.0
            score = np.where(pruned, -1.0, score)
        if prune_partial:
            score = np.where(_partial_blocks(weight.shape, block), -1.0, score)
    return score


def _zero_lowest(scores: np.ndarray, count: int) -> np.ndarray:
    """Zeroes the `count` lowest scores; ties go to the lowest flat index.

    Same result as a stable argsort, in linear time: a partition finds the count-th
    smallest value, everything below it is zeroed, then the first ties at it.
    """
    flat = scores.ravel()
    mask = np.ones(flat.size, dtype=np.float32)
    if count <= 0:
        return mask.reshape(scores.shape)
    if count >= flat.size:
        return np.zeros(scores.shape, dtype=np.float32)
    kth = np.partition(flat, count - 1)[count - 1]
    below = flat < kth
    mask[below] = 0.0
    ties = np.flatnonzero(flat == kth)[: count - int(np.count_nonzero(below))]
    mask[ties] = 0.0
    return mask.reshape(scores.shape)


def _already_pruned(scores: np.ndarray) -> int:
    """Entries that must stay zero: magnitudes are >= 0, so only marked ones score -1."""
    return int(np.count_nonzero(scores == -1.0))


def magnitude_mask(
    weight: np.ndarray,
    sparsity: float,
    old_mask: np.ndarray | None = None,
    granularity: Granularity | str | tuple | None = None,
) -> np.ndarray:
    """Mask that zeroes the `round(sparsity * n)` smallest-magnitude entries of `weight`.

    Args:
        weight: the weight array.
        sparsity: target fraction of zeros, in [0, 1].
        old_mask: the current mask; its zeros stay zeros, and if it is already sparser than
            `sparsity` it is returned unchanged.
        granularity: single weights (default), or blocks ranked by mean magnitude, e.g.
            "block:4x1" on a Dense kernel groups 4 consecutive inputs of one output: TFLite's
            1x4 block-sparse FULLY_CONNECTED layout; "block:4x1:whole" always zeroes the blocks
            that stick out past the weight's edge (counted as already pruned).
    """
    weight = np.asarray(weight)
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"Argument `sparsity` must be in [0, 1]. Received: sparsity={sparsity}")
    granularity = Granularity.parse(granularity)
    block = _check_block(granularity.block, weight.ndim)
    if old_mask is not None:
        old_mask = check_mask(old_mask, weight.shape)
    scores = _scores(weight, old_mask, block, granularity.whole_blocks)
    count = max(int(round(sparsity * scores.size)), _already_pruned(scores))
    mask = _zero_lowest(scores, count)
    if block is not None:
        mask = _from_blocks(mask, block, weight.shape)
    if old_mask is not None:
        mask = mask * old_mask
    return mask.astype(np.float32, copy=False)


def layerwise_masks(
    weights: Mapping[str, np.ndarray],
    sparsity: float,
    old_masks: Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, float] | None = None,
    granularity: Granularity | str | tuple | None = None,
) -> Masks:
    """Each tensor pruned to its own target: `targets[name]`, else `sparsity`.

    `granularity` applies to every tensor, as in `magnitude_mask`.
    """
    old_masks = old_masks or {}
    targets = targets or {}
    granularity = Granularity.parse(granularity)
    return {
        name: magnitude_mask(w, targets.get(name, sparsity), old_masks.get(name), granularity)
        for name, w in weights.items()
    }


def global_masks(
    weights: Mapping[str, np.ndarray],
    sparsity: float,
    old_masks: Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, float] | None = None,
    granularity: Granularity | str | tuple | None = None,
) -> Masks:
    """One magnitude threshold across all tensors (Frankle & Carbin's global pruning).

    Tensors named in `targets` are pruned layer-wise to their own target and left out of the
    global ranking. Exactly `round(sparsity * n_pool)` weights (or blocks) of the pool are zero
    (or the already-pruned ones, and with whole blocks only the partial edge blocks, if they
    are more).
    """
    old_masks = old_masks or {}
    targets = targets or {}
    granularity = Granularity.parse(granularity)
    block, partial = granularity.block, granularity.whole_blocks
    out = layerwise_masks({k: v for k, v in weights.items() if k in targets}, sparsity,
                          old_masks, targets, granularity)
    pool = [k for k in weights if k not in targets]
    if not pool:
        return out
    blocks = {k: _check_block(block, np.ndim(weights[k])) for k in pool}
    checked = {k: check_mask(old_masks[k], np.shape(weights[k])) for k in pool if k in old_masks}
    scores = {k: _scores(np.asarray(weights[k]), checked.get(k), blocks[k], partial)
              for k in pool}
    flat = np.concatenate([scores[k].ravel().astype(np.float64, copy=False) for k in pool])
    already = _already_pruned(flat)
    flat_mask = _zero_lowest(flat, max(int(round(sparsity * flat.size)), already))
    offset = 0
    for k in pool:
        n = scores[k].size
        mask = flat_mask[offset : offset + n].reshape(scores[k].shape)
        offset += n
        if blocks[k] is not None:
            mask = _from_blocks(mask, blocks[k], np.shape(weights[k]))
        if k in checked:
            mask = mask * checked[k]
        out[k] = mask.astype(np.float32, copy=False)
    return {k: out[k] for k in weights}


def check_blocks(shapes: Mapping[str, tuple], granularity) -> None:
    """Raises when blocks do not fit the weights they would prune: a block that covers a
    whole weight leaves it only 0% or 100% sparse, and with whole blocks only, a weight
    smaller than one block would be zeroed entirely."""
    granularity = Granularity.parse(granularity)
    if granularity.block is None:
        return
    for name, shape in shapes.items():
        block = _check_block(granularity.block, len(shape))
        blocks = math.prod(math.ceil(s / b) for s, b in zip(shape, block))
        whole = math.prod(s // b for s, b in zip(shape, block))
        if blocks == 1 or (granularity.whole_blocks and whole == 0):
            fail("granularity", str(granularity), f"a block shape smaller than the weights it "
                 f"prunes: weight {name!r} of shape {tuple(shape)} holds "
                 f"{'no whole block' if blocks > 1 else 'a single block'}, so it could only "
                 "be left dense or zeroed entirely. Use a smaller block, or exclude that layer")


def lamp_scores(weight: np.ndarray) -> np.ndarray:
    """LAMP scores (Lee et al., "Layer-adaptive sparsity for the magnitude-based pruning",
    ICLR 2021): each weight's square over the sum of the squares of the weights of its tensor
    that are at least as large. The largest weight of every tensor scores 1, so a global
    ranking of these scores never empties a layer, and it prunes more from large layers whose
    weights are alike."""
    w = np.abs(np.asarray(weight, dtype=np.float64)).ravel()
    order = np.argsort(w, kind="stable")
    squares = w[order] ** 2
    suffix = np.cumsum(squares[::-1])[::-1]
    scores = np.empty_like(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores[order] = np.where(suffix > 0, squares / suffix, 0.0)
    return scores.reshape(np.shape(weight))


def lamp_masks(
    weights: Mapping[str, np.ndarray],
    sparsity: float,
    old_masks: Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, float] | None = None,
    granularity: Granularity | str | tuple | None = None,
) -> Masks:
    """One threshold across all tensors on their LAMP scores (`lamp_scores`) instead of raw
    magnitudes; pruned weights (zeros) add nothing to the sums. Tensors in `targets` are
    pruned layer-wise, as in `global_masks`."""
    old_masks = old_masks or {}
    scored = {}
    for name, w in weights.items():
        w = np.asarray(w)
        if name in (targets or {}):
            scored[name] = w
            continue
        if name in old_masks:
            w = w * check_mask(old_masks[name], w.shape)
        scored[name] = lamp_scores(w).astype(np.float64)
    return global_masks(scored, sparsity, old_masks, targets, granularity)


def erk_densities(shapes: Mapping[str, tuple], density: float) -> dict[str, float]:
    """Per-tensor densities in Erdos-Renyi-kernel proportions (Evci et al., "Rigging the
    Lottery", 2020): density proportional to sum(shape) / prod(shape), scaled so the total
    number of kept weights is `density` of all, tensors that would exceed 1 kept dense."""
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    raw = {k: sum(s) / max(sizes[k], 1) for k, s in shapes.items()}
    dense: set[str] = set()
    total = sum(sizes.values())
    while True:
        budget = density * total - sum(sizes[k] for k in dense)
        free = [k for k in shapes if k not in dense]
        weight = sum(raw[k] * sizes[k] for k in free)
        eps = budget / weight if weight > 0 else 0.0
        over = [k for k in free if eps * raw[k] > 1.0]
        if not over:
            break
        dense.update(over)
    return {k: 1.0 if k in dense else min(1.0, max(0.0, eps * raw[k])) for k in shapes}


def erk_masks(
    weights: Mapping[str, np.ndarray],
    sparsity: float,
    old_masks: Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, float] | None = None,
    granularity: Granularity | str | tuple | None = None,
) -> Masks:
    """Each tensor pruned layer-wise to its Erdos-Renyi-kernel share of `sparsity`
    (`erk_densities`); tensors in `targets` keep their own target and the rest share what
    remains of the total."""
    targets = dict(targets or {})
    pool = {k: np.shape(w) for k, w in weights.items() if k not in targets}
    if pool:
        n = {k: math.prod(np.shape(w)) for k, w in weights.items()}
        kept_fixed = sum(n[k] * (1.0 - t) for k, t in targets.items() if k in n)
        pool_n = sum(n[k] for k in pool)
        density = ((1.0 - sparsity) * sum(n.values()) - kept_fixed) / max(pool_n, 1)
        density = min(1.0, max(0.0, density))
        targets.update({k: 1.0 - d for k, d in erk_densities(pool, density).items()})
    return layerwise_masks(weights, sparsity, old_masks, targets, granularity)


Strategy = Callable[..., Masks]

STRATEGIES: dict[str, Strategy] = {"layer": layerwise_masks, "global": global_masks,
                                   "lamp": lamp_masks, "erk": erk_masks}


def get(scope: str) -> Strategy:
    """The strategy for `scope`; custom strategies register in `STRATEGIES`."""
    if scope not in STRATEGIES:
        raise ValueError(
            f"Argument `scope` must be one of {sorted(STRATEGIES)}. Received: scope={scope!r}"
        )
    return STRATEGIES[scope]
