"""Channel dependency groups of a Keras functional graph: which channels must go together.

The graph is read, not run. Every tensor's last (channel) axis gets one *atom* per channel.
A layer that makes new channels (Conv, Dense, SeparableConv, Conv*Transpose: a *source*)
creates fresh atoms; layers that keep channels apart (BatchNormalization, DepthwiseConv,
activations, pooling, Dropout, padding, ...) pass them on; `Add`/`Multiply`/`Subtract`/
`Maximum`/`Minimum`/`Average` tie the atoms of their inputs together (a union-find);
`Concatenate` lays them side by side; `Flatten`/`Reshape` repeat them over the positions that
merge into the channel axis. A *class* is a set of tied atoms: one channel that every layer
touching it must keep or drop together. A *group* is the set of classes that the same
source layers produce, e.g. the channels of a residual stage.

A layer the graph cannot see through (LSTM, LayerNormalization, Lambda, a softmax, a
grouped convolution, ...) keeps every channel that reaches it and every channel it makes:
the channels are *fixed*, so pruning never produces a wrong model. The model's inputs and
outputs are fixed too.

This follows the dependency-graph idea of Fang et al., "DepGraph: Towards Any Structural
Pruning" (CVPR 2023): one object answers "if this channel goes, what else must change".

Example:

    graph = trace(model)
    group = graph.group_of("conv1")
    group.sources            # ('conv1', 'conv2'): tied by a residual Add
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import keras
import numpy as np

from tfimp.sparsity.wrapper import PruneLowMagnitude

__all__ = ["CHANNEL_RULES", "ChannelGraph", "Group", "LayerEntry", "Slice", "trace", "walk"]

L = keras.layers

# Activations applied per channel; any other (softmax, glu, custom callables) mixes channels.
ELEMENTWISE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
    "swish", "silu", "gelu", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu",
    "exponential", "mish", "log_sigmoid", "celu", "hard_tanh", "squareplus", "tanh_shrink",
    "hard_shrink", "soft_shrink", "sparse_plus", "sparse_sigmoid", "threshold",
})


@dataclasses.dataclass(frozen=True)
class Slice:
    """One axis of one variable that channel removal cuts.

    Attributes:
        variable: the variable's name in its layer ("kernel", "bias", "gamma", ...).
        axis: the axis that is cut.
        classes: the class of each index along `axis`.
        side: "out" when the index is one of the layer's own output channels, "in" when it
            reads an input channel.
    """

    variable: str
    axis: int
    classes: np.ndarray
    side: str


@dataclasses.dataclass(eq=False)
class LayerEntry:
    """A layer with weights that channel removal slices.

    Attributes:
        layer: the layer (the inner layer of a `PruneLowMagnitude`).
        op: the layer as it sits in the graph (the wrapper, if wrapped).
        kind: "source" (makes channels), "channelwise" (BatchNormalization, DepthwiseConv).
        slices: the variable axes it cuts.
        out_classes: the class of each of its output channels.
        in_classes: the class of each input channel it reads (its last input axis).
    """

    layer: keras.layers.Layer
    op: keras.layers.Layer
    kind: str
    slices: list[Slice]
    out_classes: np.ndarray
    in_classes: np.ndarray

    @property
    def name(self) -> str:
        return self.layer.name

    def groups(self, graph: ChannelGraph, side: str | None = None) -> set[int]:
        """Indices of the groups this layer's slices touch (on one `side`, or both)."""
        return {int(g) for s in self.slices if side in (None, s.side)
                for g in graph.class_group[s.classes]}


@dataclasses.dataclass(frozen=True)
class Group:
    """Channels that the same source layers produce and that go together.

    Attributes:
        index: position in `ChannelGraph.groups`.
        classes: the class indices of the group, ascending.
        fixed: per class, whether it must stay (model input/output, untracked layer).
        sources: names of the layers whose output channels are the group's classes.
        members: names of every layer the group's removal slices (sources, normalization,
            depthwise, and the layers reading the channels).
        owners: names of the layers whose own output channels are in the group (sources
            and channel-wise layers); excluding one of them keeps the group.
    """

    index: int
    classes: np.ndarray
    fixed: np.ndarray
    sources: tuple[str, ...]
    members: tuple[str, ...]
    owners: tuple[str, ...]

    @property
    def prunable(self) -> bool:
        return bool(np.any(~self.fixed))


@dataclasses.dataclass
class ChannelGraph:
    """The result of `trace`: layers with their slices, classes and groups.

    Attributes:
        model: the traced model.
        entries: the layers that channel removal slices, in graph order.
        n_classes: number of classes.
        class_group: group index of each class.
        fixed: per class, whether it must stay.
        reasons: per fixed class, why (e.g. "model output", "LSTM 'lstm' is not tracked").
        groups: the groups, ordered by their first source.
        notes: warnings about layers that keep prunable channels (see `warn`).
    """

    model: keras.Model
    entries: list[LayerEntry]
    n_classes: int
    class_group: np.ndarray
    fixed: np.ndarray
    reasons: dict[int, list[str]]
    groups: list[Group]
    notes: list[str]

    def entry(self, name: str) -> LayerEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"No sliced layer named {name!r}; sliced layers: "
                       f"{[e.name for e in self.entries]}")

    def group_of(self, name: str) -> Group:
        """The group holding the output channels of layer `name`."""
        groups = self.entry(name).groups(self, "out")
        if len(groups) != 1:
            raise KeyError(f"Layer {name!r} owns channels of groups {sorted(groups)}.")
        return self.groups[groups.pop()]

    def warn(self) -> None:
        """Issues the notes as warnings (layers that keep channels which could go)."""
        for note in self.notes:
            warnings.warn(note, stacklevel=3)


# ---------------------------------------------------------------------------- tracing
@dataclasses.dataclass
class _Call:
    op: object
    layer: object
    inputs: list[np.ndarray]
    in_shapes: list[tuple]
    out_shapes: list[tuple]

    @classmethod
    def of(cls, node, inputs: list) -> _Call:
        op = node.operation
        layer = op.layer if isinstance(op, PruneLowMagnitude) else op
        return cls(op, layer, inputs, [tuple(x.shape) for x in node.input_tensors],
                   [tuple(x.shape) for x in node.outputs])

    @property
    def name(self) -> str:
        return getattr(self.layer, "name", type(self.layer).__name__)

    def describe(self) -> str:
        return f"{type(self.layer).__name__} '{self.name}'"


@dataclasses.dataclass
class _Record:
    layer: object
    op: object
    kind: str
    slices: list  # (variable, axis, atoms, side)
    out_atoms: np.ndarray
    in_atoms: np.ndarray


class _Tracer:
    def __init__(self):
        self.parent: list[int] = []
        self.pins: list[tuple[np.ndarray, str]] = []
        self.records: dict[int, _Record] = {}
        self.opaque: dict[int, tuple[str, str, list[np.ndarray]]] = {}

    # --- atoms
    def fresh(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def pin(self, atoms: np.ndarray, reason: str) -> None:
        self.pins.append((np.asarray(atoms), reason))

    # --- graph walking
    def run(self, model, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return walk(model, inputs, self.call)

    def call(self, node, inputs: list[np.ndarray]) -> list[np.ndarray]:
        call = _Call.of(node, inputs)
        if isinstance(call.layer, keras.Model):
            return opaque(self, call, "a subclassed model, whose graph cannot be read")
        outs = _rule(call.layer)(self, call)
        for atoms, shape in zip(outs, call.out_shapes):
            if len(atoms) != _channels(shape):
                raise AssertionError(f"{call.describe()}: {len(atoms)} atoms for shape {shape}")
        return outs

    def record(self, call: _Call, kind: str, in_atoms: np.ndarray, n_out: int | None,
               slices: Callable[[np.ndarray, np.ndarray], list]) -> np.ndarray:
        """Registers a weighted layer; a shared layer ties the inputs of all its calls."""
        rec = self.records.get(id(call.layer))
        if rec is None:
            out = self.fresh(n_out) if n_out is not None else in_atoms
            rec = _Record(call.layer, call.op, kind, slices(in_atoms, out), out, in_atoms)
            self.records[id(call.layer)] = rec
        else:
            self.union(rec.in_atoms, in_atoms)
            if n_out is None:
                self.union(rec.out_atoms, in_atoms)
        return rec.out_atoms

    # --- result
    def resolve(self, model) -> ChannelGraph:
        roots = np.array([self.find(a) for a in range(len(self.parent))], dtype=np.int64)
        uniq, atom_class = np.unique(roots, return_inverse=True)
        n = len(uniq)
        fixed = np.zeros(n, dtype=bool)
        reasons: dict[int, list[str]] = {}
        for atoms, reason in self.pins:
            for c in np.unique(atom_class[atoms]).tolist():
                fixed[c] = True
                reasons.setdefault(c, []).append(reason)
        entries = [_entry(rec, atom_class) for rec in self.records.values()]
        sourced = np.zeros(n, dtype=bool)
        for e in entries:
            if e.kind == "source":
                sourced[e.out_classes] = True
        for c in np.flatnonzero(~sourced).tolist():
            reasons.setdefault(c, []).append("no layer makes it (a model input)")
        fixed |= ~sourced
        class_group, groups = _groups(entries, fixed, n)
        graph = ChannelGraph(model, entries, n, class_group, fixed, reasons, groups, [])
        graph.notes = self.notes(graph, atom_class)
        return graph

    def notes(self, graph: ChannelGraph, atom_class: np.ndarray) -> list[str]:
        out = []
        sources_of = _sources_by_class(graph)
        boundary = ("model input", "model output")
        for desc, reason, pinned in self.opaque.values():
            classes = {c for atoms in pinned for c in np.unique(atom_class[atoms]).tolist()
                       if not set(boundary) & set(graph.reasons.get(c, ()))}
            kept = sorted({s for c in classes for s in sources_of.get(c, ())})
            if kept:
                out.append(f"Channel pruning does not track {desc} ({reason}); it keeps every "
                           f"channel that reaches it: the output channels of {kept} are kept "
                           "whole.")
        return out


def _entry(rec: _Record, atom_class: np.ndarray) -> LayerEntry:
    slices = [Slice(var, axis, atom_class[atoms], side) for var, axis, atoms, side in rec.slices]
    return LayerEntry(rec.layer, rec.op, rec.kind, slices, atom_class[rec.out_atoms],
                      atom_class[rec.in_atoms])


def _sources_by_class(graph: ChannelGraph) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for e in graph.entries:
        if e.kind == "source":
            for c in e.out_classes.tolist():
                out.setdefault(c, set()).add(e.name)
    return out


def _groups(entries: list[LayerEntry], fixed: np.ndarray, n: int):
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for e in entries:
        if e.kind == "source" and len(e.out_classes):
            first = find(int(e.out_classes[0]))
            for c in e.out_classes.tolist():
                r = find(c)
                parent[max(r, first)] = min(r, first)
                first = min(r, first)
    roots = np.array([find(c) for c in range(n)], dtype=np.int64)
    uniq, class_group = np.unique(roots, return_inverse=True)
    order = _group_order(entries, class_group, len(uniq))
    class_group = order[class_group]
    touched = [set(np.unique(class_group[np.concatenate([s.classes for s in e.slices])]).tolist())
               for e in entries]
    owned = [set(np.unique(class_group[e.out_classes]).tolist()) for e in entries]
    groups = []
    for g in range(len(uniq)):
        classes = np.flatnonzero(class_group == g)
        touching = [e for e, t in zip(entries, touched) if g in t]
        own = [e for e, o in zip(entries, owned) if g in o]
        groups.append(Group(g, classes, fixed[classes],
                            tuple(e.name for e in own if e.kind == "source"),
                            tuple(e.name for e in touching), tuple(e.name for e in own)))
    return class_group, groups


def _group_order(entries, class_group: np.ndarray, n_groups: int) -> np.ndarray:
    """A permutation numbering groups by first appearance in the layer order."""
    seen: list[int] = []
    for e in entries:
        for g in class_group[e.out_classes].tolist():
            if g not in seen:
                seen.append(g)
    seen += [g for g in range(n_groups) if g not in seen]
    order = np.empty(n_groups, dtype=np.int64)
    order[seen] = np.arange(n_groups)
    return order


def walk(model, inputs: list, call: Callable, enter: Callable | None = None) -> list:
    """Runs `call(node, input_values) -> output_values` over the graph of `model` in order.

    Values are anything (channel atoms, new tensors, constants). A nested Functional or
    Sequential model is walked through, or handed to `enter(model, input_values)` if given;
    any other nested model goes to `call` like a layer.
    """
    graph = _functional(model)
    env = {id(x): v for x, v in zip(graph.inputs, inputs)}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(x) not in env for x in node.input_tensors):
                continue
            ins = [env[id(x)] for x in node.input_tensors]
            op = node.operation
            if (isinstance(op, keras.Model) and _functional(op, strict=False) is not None
                    and len(op.inputs) == len(ins)):
                outs = enter(op, ins) if enter else walk(op, ins, call)
            else:
                outs = call(node, ins)
            for x, v in zip(node.outputs, outs):
                env[id(x)] = v
    return [env[id(x)] for x in graph.outputs]


def _functional(model, strict: bool = True):
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
    elif type(model).__name__ == "Functional" or hasattr(model, "_nodes_by_depth"):
        graph = model
    else:
        graph = None
    if graph is None and strict:
        raise ValueError(
            f"Argument `model` ('{model.name}', {type(model).__name__}) has no layer graph "
            "that channel pruning can read: it is a subclassed model (or a Sequential model "
            "without a known input shape). Build it as a Functional or Sequential model with "
            "keras.Input(shape=...), or use granularity='weight'."
        )
    return graph


def _channels(shape: tuple) -> int:
    if len(shape) < 2:
        return 1
    if shape[-1] is None:
        raise ValueError(
            f"Channel pruning needs a known channel count on every tensor; a tensor has shape "
            f"{shape}. Give the model's inputs a fixed last dimension."
        )
    return int(shape[-1])


def trace(model: keras.Model) -> ChannelGraph:
    """The channel dependency graph of a Functional or Sequential model (wrappers allowed).

    Raises:
        ValueError: for a subclassed model, whose layer graph cannot be read.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"Argument `model` must be a keras.Model. Received: {type(model)}")
    _functional(model)
    tracer = _Tracer()
    inputs = []
    for x in model.inputs:
        atoms = tracer.fresh(_channels(tuple(x.shape)))
        tracer.pin(atoms, "model input")
        inputs.append(atoms)
    for atoms in tracer.run(model, inputs):
        tracer.pin(atoms, "model output")
    return tracer.resolve(model)


# ---------------------------------------------------------------------------- rules
Rule = Callable[[_Tracer, _Call], list]


def opaque(t: _Tracer, call: _Call, reason: str) -> list[np.ndarray]:
    """A layer the graph does not see through: its input and output channels stay."""
    desc = call.describe()
    for atoms in call.inputs:
        t.pin(atoms, f"{desc} is not tracked")
    outs = [t.fresh(_channels(s)) for s in call.out_shapes]
    for atoms in outs:
        t.pin(atoms, f"{desc} is not tracked")
    known = t.opaque.setdefault(id(call.layer), (desc, reason, []))
    known[2].extend(call.inputs)
    return outs


def _single(t: _Tracer, call: _Call) -> np.ndarray | None:
    if len(call.inputs) != 1 or len(call.out_shapes) != 1:
        return None
    return call.inputs[0]


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _activation_name(layer) -> str | None:
    fn = getattr(layer, "activation", None)
    if fn is None:
        return "linear"
    try:
        name = keras.activations.serialize(fn)
    except Exception:  # a custom callable: unknown
        return None
    return name if isinstance(name, str) else None


def _elementwise_activation(layer) -> bool:
    return _activation_name(layer) in ELEMENTWISE_ACTIVATIONS


def passthrough(t: _Tracer, call: _Call) -> list[np.ndarray]:
    """Channels in, the same channels out (activations, pooling, dropout, padding, ...)."""
    x = _single(t, call)
    if x is None or not _channels_last(call.layer):
        return opaque(t, call, "several inputs or channels_first")
    if _channels(call.out_shapes[0]) != len(x):
        return opaque(t, call, "it changes the channel count")
    return [x]


def activation(t: _Tracer, call: _Call) -> list[np.ndarray]:
    if not _elementwise_activation(call.layer):
        return opaque(t, call, f"activation {_activation_name(call.layer)!r} mixes channels")
    return passthrough(t, call)


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _source(t: _Tracer, call: _Call, n_out: int,
            slices: Callable[[np.ndarray, np.ndarray], list]) -> list[np.ndarray]:
    layer = call.layer
    if (len(call.inputs) != 1 or len(call.out_shapes) != 1 or not _channels_last(layer)
            or getattr(layer, "groups", 1) != 1):
        return opaque(t, call, "channels_first, grouped, or several inputs or outputs")

    def with_bias(in_atoms, out_atoms):
        out = slices(in_atoms, out_atoms)
        if getattr(layer, "use_bias", False):
            out.append(("bias", 0, out_atoms, "out"))
        return out

    out = t.record(call, "source", call.inputs[0], n_out, with_bias)
    if not _elementwise_activation(layer):
        reason = f"its activation {_activation_name(layer)!r} mixes channels"
        t.pin(out, f"{call.describe()}: {reason}")
        t.opaque.setdefault(id(layer), (call.describe(), reason, []))[2].append(out)
    return [out]


def dense(t: _Tracer, call: _Call) -> list[np.ndarray]:
    return _source(t, call, call.layer.units,
                   lambda a, o: [("kernel", 0, a, "in"), ("kernel", 1, o, "out")])


def conv(t: _Tracer, call: _Call) -> list[np.ndarray]:
    rank = len(call.layer.kernel.shape)
    return _source(t, call, call.layer.filters,
                   lambda a, o: [("kernel", rank - 2, a, "in"), ("kernel", rank - 1, o, "out")])


def conv_transpose(t: _Tracer, call: _Call) -> list[np.ndarray]:
    rank = len(call.layer.kernel.shape)
    return _source(t, call, call.layer.filters,
                   lambda a, o: [("kernel", rank - 1, a, "in"), ("kernel", rank - 2, o, "out")])


def separable_conv(t: _Tracer, call: _Call) -> list[np.ndarray]:
    layer = call.layer
    rank = len(layer.depthwise_kernel.shape)
    m = layer.depth_multiplier
    return _source(t, call, layer.filters, lambda a, o: [
        ("depthwise_kernel", rank - 2, a, "in"),
        ("pointwise_kernel", rank - 2, np.repeat(a, m), "in"),
        ("pointwise_kernel", rank - 1, o, "out")])


def batch_norm(t: _Tracer, call: _Call) -> list[np.ndarray]:
    layer = call.layer
    x = _single(t, call)
    rank = len(call.in_shapes[0]) if call.in_shapes else 0
    if x is None or _axis(layer.axis, rank) != rank - 1:
        return opaque(t, call, "it normalizes over an axis other than the last")
    names = [n for n, on in (("gamma", layer.scale), ("beta", layer.center)) if on]
    names += ["moving_mean", "moving_variance"]

    def slices(in_atoms, out_atoms):
        return [(n, 0, in_atoms, "out") for n in names]

    return [t.record(call, "channelwise", x, None, slices)]


def depthwise_conv(t: _Tracer, call: _Call) -> list[np.ndarray]:
    layer = call.layer
    x = _single(t, call)
    if x is None or not _channels_last(layer):
        return opaque(t, call, "channels_first")
    m = layer.depth_multiplier
    rank = len(layer.kernel.shape)

    def slices(in_atoms, out_atoms):
        out = [("kernel", rank - 2, in_atoms, "out")]
        if layer.use_bias:
            out.append(("bias", 0, np.repeat(in_atoms, m), "out"))
        return out

    rec_in = t.record(call, "channelwise", x, None, slices)
    return [np.repeat(rec_in, m)]


def merge(t: _Tracer, call: _Call) -> list[np.ndarray]:
    """Element-wise merges tie the channels of their inputs; broadcast inputs stay whole."""
    if len(call.out_shapes) != 1 or not call.inputs:
        return opaque(t, call, "several outputs")
    n = _channels(call.out_shapes[0])
    full = [a for a in call.inputs if len(a) == n]
    if not full:
        return opaque(t, call, "no input has the output's channels")
    for a in call.inputs:
        if len(a) != n:
            t.pin(a, f"{call.describe()} broadcasts it over channels")
    for a in full[1:]:
        t.union(full[0], a)
    return [full[0]]


def concatenate(t: _Tracer, call: _Call) -> list[np.ndarray]:
    rank = len(call.out_shapes[0])
    axis = _axis(call.layer.axis, rank)
    if axis == rank - 1:
        return [np.concatenate(call.inputs)]
    return merge(t, call)


def flatten(t: _Tracer, call: _Call) -> list[np.ndarray]:
    x = _single(t, call)
    if x is None or not _channels_last(call.layer):
        return opaque(t, call, "channels_first")
    n = _channels(call.out_shapes[0])
    if n % len(x):
        return opaque(t, call, "an unexpected shape")
    return [np.tile(x, n // len(x))]


def reshape(t: _Tracer, call: _Call) -> list[np.ndarray]:
    """Reshapes that keep the channel axis last, or merge positions into it, are tracked."""
    x = _single(t, call)
    if x is None:
        return opaque(t, call, "several inputs")
    n = _channels(call.out_shapes[0])
    if n % len(x):
        return opaque(t, call, "it splits the channel axis")
    return [np.tile(x, n // len(x))]


def permute(t: _Tracer, call: _Call) -> list[np.ndarray]:
    dims = tuple(call.layer.dims)
    if dims[-1] != len(dims):
        return opaque(t, call, "it moves the channel axis")
    return passthrough(t, call)


def repeat_vector(t: _Tracer, call: _Call) -> list[np.ndarray]:
    return passthrough(t, call)


def _register() -> dict[type, Rule]:
    rules: dict[type, Rule] = {
        L.Dense: dense,
        L.Conv1D: conv, L.Conv2D: conv, L.Conv3D: conv,
        L.Conv1DTranspose: conv_transpose, L.Conv2DTranspose: conv_transpose,
        L.Conv3DTranspose: conv_transpose,
        L.SeparableConv1D: separable_conv, L.SeparableConv2D: separable_conv,
        L.DepthwiseConv1D: depthwise_conv, L.DepthwiseConv2D: depthwise_conv,
        L.BatchNormalization: batch_norm,
        L.Activation: activation,
        L.Add: merge, L.Subtract: merge, L.Multiply: merge, L.Maximum: merge,
        L.Minimum: merge, L.Average: merge,
        L.Concatenate: concatenate,
        L.Flatten: flatten, L.Reshape: reshape, L.Permute: permute,
        L.RepeatVector: repeat_vector,
    }
    passing = [
        "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
        "SpatialDropout3D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
        "ActivityRegularization", "Identity", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
        "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D",
        "UpSampling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
        "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
        "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    ]
    for name in passing:
        if hasattr(L, name):
            rules[getattr(L, name)] = passthrough
    rules.update(_op_rules())
    return rules


def _op_rules() -> dict[type, Rule]:
    """Keras ops called on symbolic tensors (`x + y`, `keras.ops.relu(x)`) in a graph."""
    from keras.src.ops import nn as nn_ops
    from keras.src.ops import numpy as np_ops

    rules: dict[type, Rule] = {}
    for name in ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Divide", "TrueDivide"):
        if hasattr(np_ops, name):
            rules[getattr(np_ops, name)] = merge
    unary = ("Relu", "Relu6", "Sigmoid", "Silu", "HardSigmoid", "HardSilu", "Gelu", "Elu",
             "Selu", "LeakyRelu", "Softplus", "Softsign", "LogSigmoid", "Celu", "HardTanh")
    for name in unary:
        if hasattr(nn_ops, name):
            rules[getattr(nn_ops, name)] = passthrough
    for name in ("Tanh", "Abs", "Exp", "Square", "Sqrt", "Negative"):
        if hasattr(np_ops, name):
            rules[getattr(np_ops, name)] = passthrough
    return rules


CHANNEL_RULES: dict[type, Rule] = _register()


def _rule(layer) -> Rule:
    for cls in type(layer).__mro__:
        if cls in CHANNEL_RULES:
            return CHANNEL_RULES[cls]
    return lambda t, call: opaque(t, call, "no channel rule for this layer type")
