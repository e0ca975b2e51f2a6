"""`shrink()`: a channel-pruned model to a smaller plain Keras model, channels physically gone.

A channel (a class of the dependency graph, see `tfimp.structure.graph`) is removed when the
model no longer depends on it:

- every layer that reads it has zero rows for it (what `tfimp.prune(..., granularity=
  "channel")` masks), so dropping it changes nothing; or
- its filters are zero, so it carries a constant (e.g. BatchNormalization's offset after a
  zeroed filter, or sigmoid(0)), and every layer that reads it can take that constant into
  its bias exactly: a Dense layer, or a convolution whose window never covers padding
  ("valid", or a 1x1 kernel). Otherwise the channel stays.

Every layer keeps at least one channel. The result is built from the layers' configs, so it
holds only standard Keras layers and loads without tfimp; the input model is not modified.

Example:

    pruned = tfimp.prune(model, 0.5, granularity="channel")
    small = tfimp.shrink(pruned)          # same outputs as tfimp.strip(pruned)
    print(tfimp.structure.structure_report(small, reference=model))
"""

from __future__ import annotations

import keras
import numpy as np
from keras import tree

from tfimp.sparsity.engine import check_model as _check_model
from tfimp.sparsity.engine import is_pruned, strip
from tfimp.structure.graph import (
    _Call,
    _channels,
    _elementwise_activation,
    ChannelGraph,
    LayerEntry,
    trace,
    walk,
)

__all__ = ["shrink"]

L = keras.layers


def shrink(model: keras.Model) -> keras.Model:
    """A new plain Keras model without the channels that `model` no longer uses.

    Args:
        model: a Functional or Sequential model, pruned by `tfimp.prune(...,
            granularity="channel")` (wrapped, or stripped by `tfimp.strip`), or any model
            whose unused channels show as zero weights.

    Returns:
        A new model with the same inputs and outputs (within float tolerance), fewer
        channels, and the layer names of `model`.

    Raises:
        ValueError: for a subclassed model, whose layer graph cannot be read.
    """
    _check_model(model)
    plain = strip(model) if is_pruned(model) else model
    graph = trace(plain)
    values = {id(e): {v.name: keras.ops.convert_to_numpy(v) for v in e.layer.weights}
              for e in graph.entries}
    in_constants = _input_constants(plain, graph, values)
    keep, folds = _plan(graph, values, in_constants)
    return _Rebuild(plain, graph, values, keep, folds).model()


# ---------------------------------------------------------------------------- what goes
def _alive(array: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1).any(axis=1)


def _read_rows(graph: ChannelGraph, values: dict) -> np.ndarray:
    """Per class, whether some layer reads it with a non-zero weight."""
    read = np.zeros(graph.n_classes, dtype=bool)
    for e in graph.entries:
        for s in e.slices:
            if s.side == "in":
                read[s.classes[_alive(values[id(e)][s.variable], s.axis)]] = True
    return read


def _plan(graph: ChannelGraph, values: dict, in_constants: dict):
    """The keep vector, and per reading entry the bias it gains from removed constants."""
    read = _read_rows(graph, values)
    keep = graph.fixed | read
    pending = {}
    for c in np.flatnonzero(~graph.fixed & read).tolist():
        deltas = _fold(graph, values, in_constants, c)
        if deltas is not None:
            keep[c] = False
            pending[c] = deltas
    for e in graph.entries:  # every layer keeps a channel; keeping one is always exact
        if e.kind == "source" and len(e.out_classes) and not keep[e.out_classes].any():
            keep[e.out_classes[0]] = True
    folds: dict[int, np.ndarray] = {}
    for c, deltas in pending.items():
        if not keep[c]:
            for key, delta in deltas.items():
                folds[key] = folds.get(key, 0.0) + delta
    return keep, folds


def _fold(graph: ChannelGraph, values: dict, in_constants: dict, c: int):
    """Per consumer, the bias change that removing constant class `c` needs; None if a
    reader cannot take it exactly."""
    deltas = {}
    for e in graph.entries:
        for s in e.slices:
            if s.side != "in":
                continue
            rows = np.flatnonzero(s.classes == c)
            if not rows.size:
                continue
            weight = values[id(e)][s.variable]
            if not np.take(weight, rows, axis=s.axis).any():
                continue
            if not _foldable(e) or s.variable != "kernel":
                return None
            const = in_constants.get(id(e))
            if const is None or not np.all(np.isfinite(const[rows])):
                return None
            deltas[id(e)] = deltas.get(id(e), 0.0) + _bias_delta(e, weight, s.axis, rows,
                                                                 const[rows])
    return deltas


def _foldable(e: LayerEntry) -> bool:
    layer = e.layer
    if isinstance(layer, L.Dense):
        return True
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return layer.padding == "valid" or all(k == 1 for k in layer.kernel_size)
    return False


def _bias_delta(e: LayerEntry, kernel: np.ndarray, in_axis: int, rows: np.ndarray,
                const: np.ndarray) -> np.ndarray:
    """What rows `rows` add to each output when they read the constants `const`."""
    taken = np.take(kernel, rows, axis=in_axis).astype(np.float64)
    spatial = tuple(range(in_axis))
    summed = taken.sum(axis=spatial) if spatial else taken  # (rows, out)
    return const.astype(np.float64) @ summed


# ---------------------------------------------------------------------------- constants
_SHAPE_ONLY = tuple(getattr(L, n) for n in (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Identity", "UpSampling1D",
    "UpSampling2D", "UpSampling3D", "Cropping1D", "Cropping2D", "Cropping3D", "Permute",
    "RepeatVector") if hasattr(L, n))
_ZERO_PADDING = tuple(getattr(L, n) for n in ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"))
_APPLIED = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU)
_MERGES = {L.Add: np.add, L.Subtract: np.subtract, L.Maximum: np.maximum,
           L.Minimum: np.minimum}


def _input_constants(model, graph: ChannelGraph, values: dict) -> dict[int, np.ndarray]:
    """Per entry, the constant that each of its input channels carries (NaN: not constant)."""
    by_layer = {id(e.layer): e for e in graph.entries}
    seen: dict[int, np.ndarray] = {}

    def call(node, ins):
        c = _Call.of(node, ins)
        entry = by_layer.get(id(c.layer))
        if entry is not None and ins:
            first = np.asarray(ins[0], dtype=np.float64)
            old = seen.get(id(entry))
            seen[id(entry)] = first if old is None else np.where(old == first, old, np.nan)
        return _constant_out(c, entry, values)

    nan = [np.full(_channels(tuple(x.shape)), np.nan) for x in model.inputs]
    walk(model, nan, call)
    return seen


def _constant_out(c: _Call, entry, values: dict) -> list[np.ndarray]:
    outs = [np.full(_channels(s), np.nan) for s in c.out_shapes]
    layer, ins = c.layer, c.inputs
    if len(outs) != 1 or not ins:
        return outs
    n = len(outs[0])
    if entry is not None and entry.kind == "source":
        return [_source_constant(entry, values[id(entry)])]
    if isinstance(layer, L.BatchNormalization) and entry is not None:
        return [_bn_constant(layer, values[id(entry)], ins[0])]
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)) and entry is not None:
        return [_depthwise_constant(layer, values[id(entry)], ins[0])]
    x = np.asarray(ins[0], dtype=np.float64)
    if isinstance(layer, _SHAPE_ONLY) and len(x) == n:
        return [x]
    if isinstance(layer, _ZERO_PADDING) and len(x) == n:
        return [np.where(x == 0, 0.0, np.nan)]
    if isinstance(layer, _APPLIED) and len(x) == n:
        return [_apply(layer, x)]
    if isinstance(layer, (L.Flatten, L.Reshape)) and n % len(x) == 0:
        return [np.tile(x, n // len(x))]
    if isinstance(layer, L.Concatenate) and sum(len(a) for a in ins) == n:
        return [np.concatenate([np.asarray(a, np.float64) for a in ins])]
    return [_merge_constant(layer, ins, n)] if isinstance(
        layer, (L.Add, L.Subtract, L.Maximum, L.Minimum, L.Multiply, L.Average)) else outs


def _apply(fn, x: np.ndarray) -> np.ndarray:
    safe = np.nan_to_num(x).astype(np.float32)[None, :]
    out = keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(safe)))[0]
    return np.where(np.isnan(x), np.nan, out.astype(np.float64))


def _source_constant(e: LayerEntry, vals: dict) -> np.ndarray:
    out = next(s for s in e.slices if s.side == "out" and s.variable != "bias")
    zero = ~_alive(vals[out.variable], out.axis)
    bias = vals.get("bias", np.zeros(len(zero))).astype(np.float64)
    if not _elementwise_activation(e.layer):
        return np.full(len(zero), np.nan)
    return np.where(zero, _apply(e.layer.activation, bias), np.nan)


def _bn_constant(layer, vals: dict, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    gamma = vals.get("gamma", np.ones_like(x))
    beta = vals.get("beta", np.zeros_like(x))
    std = np.sqrt(vals["moving_variance"].astype(np.float64) + layer.epsilon)
    return gamma * (x - vals["moving_mean"]) / std + beta


def _depthwise_constant(layer, vals: dict, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = layer.depth_multiplier
    kernel = vals["kernel"].astype(np.float64)
    bias = vals.get("bias", np.zeros(len(x) * m)).astype(np.float64)
    if layer.padding == "valid":
        sums = kernel.reshape(-1, len(x), m).sum(axis=0)  # (C, m)
        out = (x[:, None] * sums).reshape(-1) + bias
    else:  # padding makes border windows differ unless the channel is 0
        out = np.where(np.repeat(x, m) == 0, bias, np.nan)
    if not _elementwise_activation(layer):
        return np.full(len(out), np.nan)
    return _apply(layer.activation, out)


def _merge_constant(layer, ins: list, n: int) -> np.ndarray:
    arrays = [np.broadcast_to(np.asarray(a, np.float64), (n,)) if len(a) in (1, n) else None
              for a in ins]
    if any(a is None for a in arrays):
        return np.full(n, np.nan)
    if isinstance(layer, L.Multiply):
        zero = np.any([a == 0 for a in arrays], axis=0)
        return np.where(zero, 0.0, np.prod(arrays, axis=0))
    if isinstance(layer, L.Average):
        return np.mean(arrays, axis=0)
    fn = next(f for cls, f in _MERGES.items() if isinstance(layer, cls))
    out = arrays[0]
    for a in arrays[1:]:
        out = fn(out, a)
    return out


# ---------------------------------------------------------------------------- rebuild
class _Rebuild:
    """Builds the smaller model: new layers from configs, called on new tensors in order."""

    def __init__(self, plain, graph: ChannelGraph, values: dict, keep: np.ndarray, folds: dict):
        self.plain, self.graph, self.values, self.keep, self.folds = (plain, graph, values,
                                                                      keep, folds)
        self.entries = {id(e.layer): e for e in graph.entries}
        self.new: dict[int, tuple] = {}  # id(old op) -> (old op, new op)
        self.nested: dict[int, keras.Model] = {}

    def model(self) -> keras.Model:
        inputs = [_input_like(x) for x in self.plain.inputs]
        outputs = walk(self.plain, inputs, self.call, self.enter)
        model = keras.Model(_pack(self.plain, "inputs", inputs),
                            _pack(self.plain, "outputs", outputs), name=self.plain.name)
        for old, new in self.new.values():
            self._set_weights(old, new)
        return model

    def enter(self, sub: keras.Model, ins: list) -> list:
        new = self.nested.get(id(sub))
        if new is None:
            inputs = [keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype) for x in ins]
            outs = walk(sub, inputs, self.call, self.enter)
            new = keras.Model(inputs if len(inputs) > 1 else inputs[0],
                              outs if len(outs) > 1 else outs[0], name=sub.name)
            self.nested[id(sub)] = new
        return tree.flatten(new(ins if len(ins) > 1 else ins[0]))

    def call(self, node, ins: list) -> list:
        op = node.operation
        if id(op) not in self.new:
            self.new[id(op)] = (op, self._layer(op, node, ins))
        new = self.new[id(op)][1]
        args, kwargs = node.arguments.fill_in(
            {id(x): v for x, v in zip(node.input_tensors, ins)})
        return tree.flatten(new(*args, **kwargs))

    def _layer(self, op, node, ins):
        if not isinstance(op, keras.layers.Layer):
            return op  # a stateless keras op (e.g. `x + y`): reuse it
        config = op.get_config()
        entry = self.entries.get(id(op))
        if entry is not None and entry.kind == "source":
            n = int(np.count_nonzero(self.keep[entry.out_classes]))
            config["units" if "units" in config else "filters"] = n
            if id(entry) in self.folds and not config.get("use_bias", True):
                config["use_bias"] = True
        if isinstance(op, L.Reshape):
            config["target_shape"] = _reshaped(config["target_shape"], node, ins)
        noise = config.get("noise_shape")
        if noise and noise[-1] == node.input_tensors[0].shape[-1]:  # Dropout per channel
            config["noise_shape"] = (*noise[:-1], ins[0].shape[-1])
        return op.__class__.from_config(config)

    def _set_weights(self, old, new) -> None:
        if not isinstance(new, keras.layers.Layer) or not new.weights:
            return
        entry = self.entries.get(id(old))
        if entry is None:
            new.set_weights(old.get_weights())
            return
        arrays = self._sliced(entry)
        for v in new.weights:
            value = arrays[v.name]
            if tuple(value.shape) != tuple(v.shape):
                raise AssertionError(f"shrink: {entry.name}/{v.name} is {value.shape}, "
                                     f"the new layer wants {tuple(v.shape)}")
            v.assign(value)

    def _sliced(self, entry: LayerEntry) -> dict[str, np.ndarray]:
        out = {}
        for name, value in self.values[id(entry)].items():
            for s in entry.slices:
                if s.variable == name:
                    value = np.take(value, np.flatnonzero(self.keep[s.classes]), axis=s.axis)
            out[name] = value
        if id(entry) in self.folds:
            kept = np.flatnonzero(self.keep[entry.out_classes])
            delta = np.asarray(self.folds[id(entry)])[kept]
            bias = out.get("bias", np.zeros(len(kept), dtype=np.float32))
            out["bias"] = (bias.astype(np.float64) + delta).astype(bias.dtype)
        return out


def _input_like(x) -> keras.KerasTensor:
    layer = x._keras_history.operation
    return keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=layer.name)


def _pack(model, kind: str, tensors: list):
    struct = getattr(model, f"_{kind}_struct", None)
    if struct is None:
        return tensors if len(tensors) > 1 else tensors[0]
    return tree.pack_sequence_as(struct, tensors)


def _reshaped(target: tuple, node, ins: list) -> tuple:
    old_in = node.input_tensors[0].shape[-1]
    new_in = ins[0].shape[-1]
    target = list(target)
    if target[-1] != -1 and old_in != new_in:
        target[-1] = target[-1] // old_in * new_in
    return tuple(target)

