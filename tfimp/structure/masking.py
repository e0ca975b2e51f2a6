"""Channel masks on a Keras model: `tfimp.prune(..., granularity="channel")` and its updates.

Every layer that a prunable channel group slices is wrapped in a `PruneLowMagnitude` whose
masks cover all trainable slices of the group's channels: the producing filters and biases,
the BatchNormalization scale and offset, the depthwise filters, and the input rows of the
layers that read the channels. A removed channel therefore contributes nothing anywhere,
whatever its activation emits for 0 (sigmoid(0) = 0.5, BN's offset, ...): the masked model
computes exactly what `tfimp.shrink` builds, with any padding, and training it trains the
smaller network.

Exclusions and per-layer rates live on the wrappers (an excluded layer that still reads a
pruned group is wrapped with target 0.0), so a saved and reloaded model keeps them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from tfimp.sparsity import schedules as schedules_lib, strategies
from tfimp.sparsity.engine import clone_wrapped, layer_sparsity, pruned_layers
from tfimp.sparsity.engine import matches as _matches
from tfimp.sparsity.wrapper import PruneLowMagnitude
from tfimp.structure import channels as channels_lib
from tfimp.structure.graph import ChannelGraph, Group, LayerEntry, trace
from tfimp.structure.registry import channel_variables

__all__ = ["ChannelStrategy", "channel_sparsity", "prune_channels", "set_channel_sparsity",
           "update_channels"]


def _channels(wrapper) -> channels_lib.Channels | None:
    """The wrapper's `Channels` settings if it masks whole channels."""
    granularity = wrapper.granularity
    return granularity if isinstance(granularity, channels_lib.Channels) else None


# ---------------------------------------------------------------------------- prune
@dataclasses.dataclass(frozen=True)
class _ChannelPlan:
    """What `clone_wrapped` asks: which layers to wrap, and how."""

    schedule: schedules_lib.PruningSchedule | None
    scope: str
    channels: channels_lib.Channels
    wrapped: frozenset  # id() of the original layers to wrap

    def wants(self, layer) -> bool:
        return id(layer) in self.wrapped

    def wrap(self, layer) -> PruneLowMagnitude:
        wrapper = PruneLowMagnitude(layer, schedule=self.schedule, scope=self.scope,
                                    granularity=self.channels, name=f"prune_{layer.name}")
        wrapper.build()
        return wrapper


def prune_channels(model: keras.Model, schedule, *, scope: str, exclude: tuple,
                   targets: Mapping, channels: channels_lib.Channels) -> keras.Model:
    """Wraps `model`'s channel groups (see `tfimp.prune`); checks everything first."""
    graph = trace(model)
    excluded = _excluded(graph, exclude)
    group_targets = _group_targets(graph, targets, excluded)
    prunable = [g for g in graph.groups if g.prunable and g.index not in excluded]
    if not prunable:
        raise ValueError(
            f"Argument `model` ('{model.name}') has no channels that channel pruning can "
            f"remove (after exclusions {list(exclude)}): every channel is a model input or "
            "output, or reaches a layer the graph does not track. "
            + " ".join(graph.notes)
        )
    _check_rates(graph, prunable, schedule, group_targets, scope)
    graph.warn()
    wrap = _wrap_targets(graph, prunable, targets, excluded)
    plan = _ChannelPlan(schedule, scope, channels, frozenset(id(e.layer) for e in wrap))
    pruned = clone_wrapped(model, plan)
    # The clone's graph lists the same layers in the same order: set the targets by position.
    for entry, clone in zip(graph.entries, trace(pruned).entries):
        if entry in wrap:
            clone.op.target = wrap[entry]
    return pruned


def _excluded(graph: ChannelGraph, exclude: tuple) -> dict[int, list[str]]:
    """Group index -> excluded owners; a group partly excluded is an error naming the rest."""
    out: dict[int, list[str]] = {}
    for entry in graph.entries:
        if any(_matches(entry.layer, sel) for sel in exclude):
            for g in entry.groups(graph, "out"):
                out.setdefault(g, []).append(entry.name)
    for g, names in out.items():
        group = graph.groups[g]
        rest = [n for n in group.owners if n not in names]
        if group.prunable and rest:
            raise ValueError(
                f"Argument `exclude` names {names}, whose output channels are tied to those "
                f"of {rest} (one channel group: they meet in an Add/Multiply/... or a shared "
                "layer, or pass through normalization/depthwise layers). A group is kept or "
                f"pruned as a whole: exclude all of it, exclude={list(group.owners)}, or none "
                "of it."
            )
    return out


def _group_targets(graph: ChannelGraph, targets: Mapping, excluded: Mapping) -> dict[int, float]:
    """Group index -> the smallest target among its owners."""
    out: dict[int, float] = {}
    for sel, value in targets.items():
        hit = [(e, g) for e in graph.entries if _matches(e.layer, sel)
               for g in e.groups(graph, "out") if graph.groups[g].prunable]
        if not hit:
            raise ValueError(
                f"Argument `targets` names {sel!r}, which has no output channels that channel "
                f"pruning can remove ({_why_not(graph, sel)}). Remove it from `targets`."
            )
        for entry, g in hit:
            if g in excluded:
                raise ValueError(
                    f"Argument `targets` names {entry.name!r}, but `exclude` keeps its channel "
                    f"group whole (it excludes {excluded[g]}). Drop one of the two."
                )
            out[g] = min(out.get(g, 1.0), float(value))
    return out


def _why_not(graph: ChannelGraph, sel) -> str:
    names = [e.name for e in graph.entries if _matches(e.layer, sel)]
    if not names:
        return "it is not a Conv, Dense, SeparableConv, DepthwiseConv or BatchNormalization " \
               "layer in the traced graph"
    reasons = set()
    for name in names:
        for c in graph.entry(name).out_classes.tolist():
            reasons.update(graph.reasons.get(c, ()))
    return "; ".join(sorted(reasons)) or "its channels are fixed"


def _check_rates(graph: ChannelGraph, groups: list[Group], schedule, targets: Mapping,
                 scope: str) -> None:
    final = 0.0 if schedule is None else schedule.end_sparsity()
    for group in groups:
        n = int(np.count_nonzero(~group.fixed))
        rate = targets.get(group.index, final if scope == "layer" else None)
        if rate is None:
            continue
        if n and round(rate * n) >= n:
            raise ValueError(
                f"A channel sparsity of {rate} removes every channel of {list(group.sources)} "
                f"({n} channels). Use a rate below {1 - 0.5 / n:.4g} for them (per-layer "
                "`targets`), or scope='global'."
            )
    pooled = sum(int(np.count_nonzero(~g.fixed)) for g in groups if g.index not in targets)
    if scope == "global" and pooled and round(final * pooled) >= pooled:
        raise ValueError(f"A channel sparsity of {final} removes every channel ({pooled} in "
                         f"all). Use a rate below {1 - 0.5 / pooled:.4g}.")


def _wrap_targets(graph: ChannelGraph, prunable: list[Group], targets: Mapping,
                  excluded: Mapping) -> dict:
    """The entries to wrap, with their targets (0.0 keeps an excluded layer's channels)."""
    live = {g.index for g in prunable}
    out = {}
    for entry in graph.entries:
        if not entry.groups(graph) & live:
            continue
        owned = entry.groups(graph, "out")
        if owned & set(excluded):
            target = 0.0
        else:
            hits = [float(v) for sel, v in targets.items() if _matches(entry.layer, sel)]
            target = hits[-1] if hits and owned & live else None
        out[entry] = target
    return out


# ---------------------------------------------------------------------------- updates
@dataclasses.dataclass
class _State:
    """The traced graph of a channel-pruned model, with its wrappers per entry."""

    graph: ChannelGraph
    wrappers: list[PruneLowMagnitude | None]
    fixed: np.ndarray


def _state(model) -> _State:
    state = getattr(model, "_tfimp_channel_state", None)
    if state is None:
        graph = trace(model)
        wrappers = [e.op if isinstance(e.op, PruneLowMagnitude) and _channels(e.op) else None
                    for e in graph.entries]
        fixed = graph.fixed.copy()
        for e, w in zip(graph.entries, wrappers):
            if w is None:  # a group that some unwrapped layer slices cannot be masked
                for g in e.groups(graph):
                    fixed[graph.groups[g].classes] = True
        state = _State(graph, wrappers, fixed)
        # A plain attribute, not tracked (or saved) by Keras.
        object.__setattr__(model, "_tfimp_channel_state", state)
    return state


def _variables(wrapper: PruneLowMagnitude) -> dict[str, tuple]:
    return {v.name: (v, m) for v, m in zip(wrapper.pruned_weights, wrapper.get_masks())}


def _out_slice(entry: LayerEntry):
    for s in entry.slices:
        if s.side == "out" and s.variable in ("kernel", "pointwise_kernel"):
            return s
    raise AssertionError(f"source '{entry.name}' has no output slice")


def _alive(mask: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(mask, axis, 0).reshape(mask.shape[axis], -1).any(axis=1)


def channel_sparsity(model) -> float:
    """The fraction of `model`'s prunable channels (classes) that its masks remove."""
    state = _state(model)
    prunable = ~state.fixed
    removed = prunable & ~_old_keep(state)
    return float(np.count_nonzero(removed) / max(np.count_nonzero(prunable), 1))


def _old_keep(state: _State) -> np.ndarray:
    graph = state.graph
    alive = np.zeros(graph.n_classes, dtype=bool)
    seen = np.zeros(graph.n_classes, dtype=bool)
    for e, w in zip(graph.entries, state.wrappers):
        if w is None or e.kind != "source":
            continue
        s = _out_slice(e)
        _, mask = _variables(w)[s.variable]
        alive[s.classes[_alive(mask, s.axis)]] = True
        seen[s.classes] = True
    return alive | ~seen


def _scores(state: _State, channels: channels_lib.Channels) -> np.ndarray:
    graph = state.graph
    norms, classes = {}, {}
    for i, e in enumerate(graph.entries):
        if e.kind != "source" or state.wrappers[i] is None:
            continue
        s = _out_slice(e)
        var, _ = _variables(state.wrappers[i])[s.variable]
        key = f"{i}:{e.name}"
        norms[key] = channels_lib.filter_norms(keras.ops.convert_to_numpy(var), s.axis,
                                               channels.norm)
        classes[key] = s.classes
    scales = _bn_scales(state) if channels.bn_scale else None
    return channels_lib.class_scores(norms, classes, graph.n_classes, scales)


def _bn_scales(state: _State) -> np.ndarray:
    """Per class, the mean |gamma| of the BatchNormalization layers it passes (1 if none)."""
    n = state.graph.n_classes
    total, count = np.zeros(n), np.zeros(n)
    for e in state.graph.entries:
        if isinstance(e.layer, keras.layers.BatchNormalization) and e.layer.scale:
            gamma = np.abs(keras.ops.convert_to_numpy(e.layer.gamma)).astype(np.float64)
            total += np.bincount(e.out_classes, weights=gamma, minlength=n)
            count += np.bincount(e.out_classes, minlength=n)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


def _targets_by_group(state: _State, layer_targets: Mapping[int, float]) -> dict[int, float]:
    """Per group, the smallest target among the wrappers (by id) that own its channels."""
    graph = state.graph
    out: dict[int, float] = {}
    for e, w in zip(graph.entries, state.wrappers):
        if w is None or id(w) not in layer_targets:
            continue
        for g in e.groups(graph, "out"):
            out[g] = min(out.get(g, 1.0), layer_targets[id(w)])
    return out


def _scheduled_targets(state: _State, step: int) -> dict[int, float]:
    return {id(w): layer_sparsity(w, step) for w in state.wrappers
            if w is not None and w.target is not None and w.schedule is not None}


def compute_keep(state: _State, channels: channels_lib.Channels, scope: str, sparsity: float,
                 layer_targets: Mapping[int, float]) -> np.ndarray:
    """The next keep vector of a channel-pruned model at `sparsity`, with per-wrapper (by id)
    targets."""
    graph = state.graph
    layers = {f"{i}:{e.name}": e.out_classes for i, e in enumerate(graph.entries)
              if e.kind == "source" and state.wrappers[i] is not None}
    return channels_lib.channel_keep(
        _scores(state, channels), graph.class_group, sparsity, scope=scope, fixed=state.fixed,
        old_keep=_old_keep(state), targets=_targets_by_group(state, layer_targets), layers=layers,
        min_channels=channels.min_channels)


def set_channel_sparsity(model, sparsity: float,
                         targets: Sequence[float | None] | None = None) -> None:
    """Removes channels of a channel-pruned `model` now, up to `sparsity` (IMP rounds).

    Args:
        model: a model from `tfimp.prune(..., granularity="channel")`.
        sparsity: fraction of the prunable channels removed (old removals count).
        targets: per wrapper, in `tfimp.sparsity.engine.pruned_layers(model)` order, its own
            sparsity, or None. Layers excluded at prune time stay whole either way.
    """
    state = _state(model)
    wrappers = [w for w in pruned_layers(model) if _channels(w)]
    if not wrappers:
        raise ValueError(f"Argument `model` ('{model.name}') has no channel masks; prune it "
                         "with tfimp.prune(model, None, granularity='channel') first.")
    layer_targets = {id(w): 0.0 for w in wrappers if w.target == 0.0}
    for w, t in zip(wrappers, targets or ()):
        if t is not None and id(w) not in layer_targets:
            layer_targets[id(w)] = float(t)
    first = wrappers[0]
    assign_keep(state, compute_keep(state, first.granularity, first.scope, sparsity, layer_targets))


def assign_keep(state: _State, keep: np.ndarray, step: int | None = None) -> None:
    """Sets every channel wrapper's masks from `keep` (never denser than its masks now)."""
    for e, w in zip(state.graph.entries, state.wrappers):
        if w is None:
            continue
        masks = []
        for var, old in _variables(w).values():
            slices = [(s.axis, s.classes) for s in e.slices if s.variable == var.name]
            masks.append(channels_lib.slice_mask(tuple(old.shape), slices, keep) * old)
        w.assign_masks(masks, step)


def update_channels(model, wrappers: list[PruneLowMagnitude], step: int,
                    force: bool = False) -> bool:
    """Recomputes the channel masks of `model` if its schedule prunes at `step`."""
    for w in wrappers:
        w.driven = True
    scheduled = [w for w in wrappers if w.schedule is not None]
    if not scheduled:
        return False
    schedule = scheduled[0].schedule
    due = step if force else schedule.latest_pruning_step(step)
    if due is None or (not force and due <= max(w.last_pruned_step() for w in scheduled)):
        return False
    if model is None:
        raise ValueError("Channel masks span layers: pass the model, e.g. "
                         "tfimp.update_masks(model, step=...).")
    state = _state(model)
    first = scheduled[0]
    keep = compute_keep(state, first.granularity, first.scope, schedule.sparsity(due),
                        _scheduled_targets(state, due))
    assign_keep(state, keep, due)
    return True


class ChannelStrategy(strategies.GranularityStrategy):
    """Channel granularity for the sparsity engine: masks over whole channel groups."""

    def variables(self, layer) -> list:
        return channel_variables(layer)

    def prune(self, model, plan) -> keras.Model:
        return prune_channels(model, plan.schedule, scope=plan.scope, exclude=plan.exclude,
                              targets=plan.targets, channels=plan.granularity)

    def update(self, model, wrappers: list, step: int, force: bool) -> bool:
        return update_channels(model, wrappers, step, force)


strategies.register_granularity("channel", ChannelStrategy())
