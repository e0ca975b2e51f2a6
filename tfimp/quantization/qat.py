"""`quantize_aware`: a Keras 3 model rebuilt to train with int8 fake quantization.

Example:

    pruned = tfimp.prune(model, 0.6)                  # or a model from tfimp.imp
    qat = tfimp.quantize_aware(pruned, representative_data=x_train[:256])
    qat.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(x_train, y_train, epochs=2)               # masks stay exact
    tfimp.export.to_tflite(qat, "model.tflite", quantization="int8")

What the rebuilt model computes, per tensor, is what the converter's int8 model computes:

- Dense, Conv1D/2D, DepthwiseConv1D/2D, SeparableConv1D/2D (plain or pruned) become a
  `QuantizeWrapper`: per-channel symmetric int8 weights, a following `BatchNormalization`
  folded in (the converter folds it; its moving statistics stay fixed during QAT), a following
  ReLU/ReLU6 fused, and the output fake-quantized.
- A `BatchNormalization` that follows no such layer computes as the int8 1x1 depthwise
  convolution it becomes in the file (its moving statistics also stay fixed).
- Each float model input, and the output of each layer that computes new values (Add,
  Concatenate, activations, ...), gets a `FakeQuant`; average pooling rounds its output to
  its input's range, as TFLite's int8 average pool does.
- Layers that only move or select values (max pooling, Flatten, Reshape, padding, dropout)
  keep their input's quantization, as their int8 kernels do.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfimp.quantization.fake_quant import FIXED_RANGES, FakeQuant, calibrating
from tfimp.quantization.layers import KINDS, QuantizeWrapper, activation_name, kind_of
from tfimp.sparsity import strategies
from tfimp.sparsity.registry import prunable_weights
from tfimp.sparsity.wrapper import PruneLowMagnitude

__all__ = [
    "calibrate",
    "fake_quant_layers",
    "is_quantize_aware",
    "quantize_aware",
    "strip",
]

L = keras.layers
# int8 kernels whose output keeps the input's scale and zero point: no new range needed.
SAME_SCALE: tuple[type, ...] = (
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
    L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.Flatten, L.Reshape, L.Permute, L.RepeatVector, L.Identity,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
    L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
    L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
)
# int8 kernels that compute new values but keep the input's scale: their output is rounded
# to the input's range.
SAME_SCALE_ROUNDED: tuple[type, ...] = (L.AveragePooling1D, L.AveragePooling2D,
                                        L.AveragePooling3D)


def _fixed_activation(layer) -> str | None:
    """The activation a layer applies, if it is only an activation (else None)."""
    if isinstance(layer, L.Activation):
        return activation_name(layer.activation)
    if isinstance(layer, L.Softmax):
        return "softmax"
    if isinstance(layer, L.ReLU) and not layer.negative_slope and not layer.threshold:
        if layer.max_value is None:
            return "relu"
        if float(layer.max_value) == 6.0:
            return "relu6"
    return None


def is_quantize_aware(model) -> bool:
    """Whether `model` holds tfimp fake-quantization layers."""
    return isinstance(model, keras.Model) and bool(fake_quant_layers(model))


def fake_quant_layers(model) -> list[FakeQuant]:
    """All `FakeQuant` layers of a model, those inside `QuantizeWrapper`s included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, FakeQuant):
            found.append(layer)
        elif isinstance(layer, QuantizeWrapper):
            found.extend(layer.quantizers)
    return found


@dataclasses.dataclass
class _Fusion:
    """A kernel layer's node and the batch norm / activation nodes folded into it."""

    node: object
    batch_norm: object = None
    activation: object = None

    @property
    def activation_name(self) -> str | None:
        return None if self.activation is None else _fixed_activation(self.activation.operation)

    @property
    def last(self):
        return self.activation or self.batch_norm or self.node


def _check_model(model) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Keras 3 `keras.Model`. Received: "
            f"model={type(model).__module__}.{type(model).__name__}. (tf_keras / tf.keras 2 "
            "models are not supported: build the model with `import keras`.)")
    if not model.built:
        raise ValueError(
            f"Argument `model` must be a built model; '{model.name}' is not built. Give it a "
            "`keras.Input(shape=...)` or call it on data first.")
    if is_quantize_aware(model):
        raise ValueError(
            f"Argument `model` ('{model.name}') is already quantization-aware (it holds "
            "FakeQuant layers). Keep training it, or pass the original model.")
    graph = model if type(model).__name__ == "Functional" else getattr(model, "_functional", None)
    if graph is None:
        raise ValueError(
            f"Argument `model` ('{model.name}', {type(model).__name__}) must be a Sequential "
            "or Functional model: quantize_aware rebuilds the layer graph, which a subclassed "
            "model does not expose. Rebuild it as a Functional model first.")
    return graph


def _nodes(graph) -> list:
    return [node for depth in sorted(graph._nodes_by_depth, reverse=True)
            for node in graph._nodes_by_depth[depth] if node.operation and not node.is_input]


def _unsupported(layer, why: str) -> ValueError:
    names = sorted(c.__name__ for c in KINDS)
    return ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) {why}. quantize_aware quantizes "
        f"the kernels of {names} (also inside PruneLowMagnitude) and BatchNormalization, "
        "and passes layers without weights. Replace or remove the layer, or quantize the "
        "model after training with tfimp.export.to_tflite(..., quantization='int8').")


def _check_layer(layer) -> None:
    base = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
    if isinstance(base, keras.Model):
        raise _unsupported(base, "is a nested model; flatten it into one Functional model")
    if kind_of(base) is not None:
        _check_kernel_layer(layer, base)
    elif base.weights:
        raise _unsupported(base, "has weights that int8 quantization-aware training does not "
                                 "support")
    if keras.backend.standardize_dtype(base.compute_dtype) != "float32":
        raise _unsupported(base, f"computes in {base.compute_dtype}; fake quantization needs "
                                 "float32 (use the 'float32' dtype policy)")


def _check_kernel_layer(layer, base) -> None:
    if getattr(base, "quantization_mode", None) or getattr(base, "lora_enabled", False):
        raise _unsupported(base, "is already quantized or uses LoRA")
    if getattr(base, "data_format", "channels_last") != "channels_last":
        raise _unsupported(base, "uses data_format='channels_first' (TFLite is channels-last)")
    if getattr(base, "groups", 1) != 1:
        raise _unsupported(base, f"is a grouped convolution (groups={base.groups})")
    if isinstance(layer, PruneLowMagnitude) and layer.schedule_pending():
        raise ValueError(
            f"Layer '{layer.name}' is still being pruned by its schedule; quantization-aware "
            "training keeps masks fixed. Finish pruning first (train until the schedule's "
            "last step), or prune with a float sparsity / schedule=None.")


def _plan(graph) -> dict[int, _Fusion]:
    """Fusions keyed by the id of every node they cover; validates the layers."""
    consumers: dict[int, list] = {}
    nodes = _nodes(graph)
    for node in nodes:
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(node)
    outputs = {id(t) for t in graph.outputs}

    def only_consumer(node, accept):
        out = node.outputs[0]
        users = consumers.get(id(out), [])
        if len(node.outputs) != 1 or id(out) in outputs or len(users) != 1:
            return None
        return users[0] if accept(users[0].operation) else None

    fusions: dict[int, _Fusion] = {}
    for node in nodes:
        layer = node.operation
        if not isinstance(layer, keras.layers.Layer):
            continue
        _check_layer(layer)
        base = layer.layer if isinstance(layer, PruneLowMagnitude) else layer
        if kind_of(base) is None or id(node) in fusions:
            continue
        if len(layer._inbound_nodes) > 1:
            raise _unsupported(base, "is shared (called more than once); give each call its "
                                     "own layer")
        rank = len(node.outputs[0].shape)
        if isinstance(base, L.BatchNormalization) and not (
                2 <= rank <= 4 and base.axis in (-1, rank - 1)):
            raise _unsupported(base, f"normalizes axis {base.axis} of a rank-{rank} tensor; "
                                     "int8 batch norm needs the channels last, at rank 2 to 4")
        fusion = _Fusion(node)
        if activation_name(getattr(base, "activation", None)) == "linear":
            if kind_of(base).fold is not None:
                fusion.batch_norm = only_consumer(node, lambda op, r=rank: _foldable_bn(op, r))
            fusion.activation = only_consumer(
                fusion.last, lambda op: _fixed_activation(op) in ("linear", "relu", "relu6"))
        for part in (fusion.node, fusion.batch_norm, fusion.activation):
            if part is not None:
                fusions[id(part)] = fusion
    return fusions


def _foldable_bn(op, rank: int) -> bool:
    """A batch norm over the channels (last axis) that nothing else calls folds in."""
    return (isinstance(op, L.BatchNormalization) and len(op._inbound_nodes) == 1
            and op.axis in (-1, rank - 1))


def _copy(layer):
    """A fresh copy of a layer with the same weights (masks and mask constraints included)."""
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a stateless op of a functional graph (e.g. `x + y`)
    clone = type(layer).from_config(layer.get_config())
    if isinstance(layer, PruneLowMagnitude):
        clone.build()
    else:
        clone.build_from_config(layer.get_build_config())
    clone.set_weights(layer.get_weights())
    return clone


def _range_of(tensor) -> FakeQuant | None:
    """The `FakeQuant` whose range a tensor of the rebuilt graph is on, if any."""
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        op = history.operation
        if isinstance(op, FakeQuant):
            return op
        node = op._inbound_nodes[history.node_index]
        if not isinstance(op, SAME_SCALE) or len(node.input_tensors) != 1:
            return None
        tensor = node.input_tensors[0]


class _Rebuild:
    """Runs a model's graph on new inputs with quantization-aware layers in place."""

    def __init__(self, model, decay: float, per_channel_dense: bool):
        self.decay = decay
        self.per_channel_dense = per_channel_dense
        self.names = {layer.name for layer in model.layers}

    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def run(self, model, graph, fusions: dict[int, _Fusion]) -> keras.Model:
        inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name)
                  for t in graph.inputs]
        tensors = {id(old): self.quantize(new, new.name) for old, new in zip(graph.inputs, inputs)}
        copies: dict[int, object] = {}
        for node in _nodes(graph):
            fusion = fusions.get(id(node))
            if fusion is not None and node is not fusion.node:
                continue  # computed by its kernel layer's wrapper
            args, kwargs = node.arguments.fill_in(tensors)
            if fusion is not None:
                wrapper = self.wrap(fusion)
                out = self.quantize(wrapper(*args, **kwargs), wrapper.name, wrapper.output_range)
                node = fusion.last
            else:
                if id(node.operation) not in copies:
                    copies[id(node.operation)] = _copy(node.operation)
                out = self.outputs_of(copies[id(node.operation)], args, kwargs)
            for old, new in zip(node.outputs, keras.tree.flatten(out)):
                tensors[id(old)] = new
        outputs = keras.tree.pack_sequence_as(graph._outputs_struct,
                                              [tensors[id(t)] for t in graph.outputs])
        return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)

    def outputs_of(self, op, args, kwargs):
        """The op's outputs, quantized as its int8 kernel's: on a new range (fixed for
        softmax &c), on its input's (max pooling, reshapes), or rounded to its input's
        (average pooling)."""
        outputs = op(*args, **kwargs)
        if isinstance(op, SAME_SCALE):
            return outputs
        if isinstance(op, SAME_SCALE_ROUNDED) and len(op._inbound_nodes) == 1:
            source = _range_of(op.input)
            if source is not None:
                return source(outputs, track=False)
        name = getattr(op, "name", type(op).__name__.lower())
        return self.quantize(outputs, name, FIXED_RANGES.get(_fixed_activation(op) or ""))

    def quantize(self, outputs, name: str, fixed=None):
        flat = keras.tree.flatten(outputs)
        done = [FakeQuant(self.decay, fixed_range=fixed, name=self.unique(f"{name}_quant"))(t)
                if keras.backend.is_float_dtype(t.dtype) else t for t in flat]
        return keras.tree.pack_sequence_as(outputs, done)

    def wrap(self, fusion: _Fusion) -> QuantizeWrapper:
        layer = fusion.node.operation
        bn = None if fusion.batch_norm is None else _copy(fusion.batch_norm.operation)
        pruned = isinstance(layer, PruneLowMagnitude)
        base = layer.layer if pruned else layer
        per_channel = self.per_channel_dense or not isinstance(base, L.Dense)
        return QuantizeWrapper(_copy(layer), batch_norm=bn, activation=fusion.activation_name,
                               decay=self.decay, per_channel=per_channel,
                               name=self.unique(base.name) if pruned else layer.name)


def quantize_aware(
    model: keras.Model,
    *,
    representative_data=None,
    decay: float = 0.99,
    per_channel_dense: bool = True,
    batch_size: int = 32,
) -> keras.Model:
    """A copy of `model` that trains with the int8 arithmetic of its TFLite conversion.

    Dense and convolution layers compute with per-channel symmetric int8 weights (range
    [-127, 127], so zeros, and a pruned model's masked weights, stay exactly zero); every
    tensor the int8 model stores gets a per-tensor asymmetric int8 range, tracked by moving
    averages in training. A `tfimp.prune`d model keeps its masks: pruned weights are 0.0 after
    every optimizer step. `tfimp.export.to_tflite(qat, quantization="int8")` writes the int8
    model, whose outputs match this model's.

    Args:
        model: a built Sequential or Functional Keras 3 model, plain or pruned (its pruning
            schedule, if any, finished).
        representative_data: typical inputs (an array, or a list of arrays for several
            inputs, samples first) that set the initial ranges as post-training calibration
            would; None sets them from the first training batch.
        decay: moving-average decay of the activation ranges during training.
        per_channel_dense: one weight scale per output unit of Dense layers, as
            `tfimp.export.Int8()` converts them; False uses one scale per Dense kernel (as
            `Int8(per_channel_dense=False)`, smaller files). Convolutions are per channel.
        batch_size: batch size of the calibration passes.

    Returns:
        A new Functional model (not compiled); `model` is left untouched.

    Raises:
        ValueError: a layer that int8 quantization-aware training does not support (the
            message names it), a subclassed model, or bad `representative_data`.
    """
    graph = _check_model(model)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ValueError(f"Argument `decay` must be a number in [0, 1). Received: decay={decay!r}")
    if not isinstance(per_channel_dense, bool):
        raise ValueError(f"Argument `per_channel_dense` must be True or False. Received: "
                         f"per_channel_dense={per_channel_dense!r}")
    rebuild = _Rebuild(model, float(decay), per_channel_dense)
    qat = rebuild.run(model, graph, _plan(graph))
    if representative_data is not None:
        calibrate(qat, representative_data, batch_size=batch_size)
    return qat


def calibrate(model: keras.Model, representative_data, batch_size: int = 32) -> None:
    """Sets every activation range of a quantization-aware model to the min and max that
    `representative_data` produces in float, as post-training calibration does."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Argument `batch_size` must be a positive integer. Received: "
                         f"batch_size={batch_size!r}")
    xs = _check_data(model, representative_data)
    with calibrating():
        for start in range(0, len(xs[0]), batch_size):
            batch = [x[start:start + batch_size] for x in xs]
            model(batch if len(batch) > 1 else batch[0], training=False)
    for q in fake_quant_layers(model):
        q.finish_calibration()


def _check_data(model, data) -> list[np.ndarray]:
    what = ("an array of model inputs (samples first), or a list of such arrays, one per "
            "model input")
    if isinstance(data, (list, tuple)):
        arrays = list(data)
    elif isinstance(data, np.ndarray) or hasattr(data, "__array__"):
        arrays = [data]
    else:
        raise ValueError(f"Argument `representative_data` must be {what}. Received: "
                         f"representative_data of type {type(data).__name__}")
    shapes = [tuple(t.shape) for t in model.inputs]
    if len(arrays) != len(shapes):
        raise ValueError(f"Argument `representative_data` must hold one array per model input "
                         f"({len(shapes)}). Received: {len(arrays)} arrays")
    xs = []
    for i, (x, shape) in enumerate(zip(arrays, shapes)):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"Argument `representative_data` must hold numbers. Received: "
                             f"input {i} of dtype {x.dtype}")
        if x.ndim != len(shape) or any(s is not None and s != d
                                       for s, d in zip(shape[1:], x.shape[1:])):
            raise ValueError(f"Argument `representative_data` must hold samples of the model's "
                             f"input shape {shape} (samples first). Received: input {i} of "
                             f"shape {x.shape}")
        if len(x) == 0:
            raise ValueError("Argument `representative_data` must hold at least one sample. "
                             "Received: 0 samples")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ValueError(f"Argument `representative_data` must be finite. Received: input "
                             f"{i} holds NaN or infinite values")
        xs.append(x.astype(np.float32) if x.dtype.kind == "f" else x)
    if len({len(x) for x in xs}) != 1:
        raise ValueError(f"Argument `representative_data` must hold the same number of samples "
                         f"for every input. Received: {[len(x) for x in xs]}")
    return xs


def strip(model: keras.Model) -> keras.Model:
    """A quantization-aware model without its `PruneLowMagnitude` wrappers.

    Same outputs, pruned weights at exactly 0.0, the same activation ranges and folded batch
    norms; this is what `tfimp.export.to_tflite` converts. A model without mask wrappers is
    returned as it is.
    """
    if not isinstance(model, keras.Model) or not is_quantize_aware(model):
        raise ValueError(
            "Argument `model` must be a model returned by tfimp.quantize_aware. Received: "
            f"model={getattr(model, 'name', type(model).__name__)!r}")
    if not any(isinstance(lay, QuantizeWrapper) and isinstance(lay.layer, PruneLowMagnitude)
               for lay in model.layers):
        return model
    return keras.models.clone_model(model, clone_function=_strip_layer)


def _strip_if_quantize_aware(model) -> keras.Model | None:
    """`tfimp.strip`'s hook: a quantization-aware model keeps its fake quantization."""
    return strip(model) if is_quantize_aware(model) else None


strategies.register_strip_hook(_strip_if_quantize_aware)


def _strip_layer(layer):
    if not (isinstance(layer, QuantizeWrapper) and isinstance(layer.layer, PruneLowMagnitude)):
        return _copy(layer)
    wrapper = layer.layer
    base = type(wrapper.layer).from_config(wrapper.layer.get_config())
    base.build_from_config(wrapper.layer.get_build_config())
    base.set_weights(wrapper.layer.get_weights())
    for var, mask in zip(prunable_weights(base), wrapper.get_masks()):
        var.assign(keras.ops.convert_to_numpy(var) * mask)
    bn = None if layer.batch_norm is None else _copy(layer.batch_norm)
    own = activation_name(getattr(base, "activation", None))
    new = QuantizeWrapper(base, batch_norm=bn,
                          activation=None if own == layer.activation_name
                          else layer.activation_name,
                          decay=layer.decay, per_channel=layer.per_channel, name=layer.name)
    new.build(layer.get_build_config()["input_shape"])
    for src, dst in zip(layer.quantizers, new.quantizers):
        dst.set_weights(src.get_weights())
    return new


def per_channel_dense(model: keras.Model) -> bool | None:
    """Whether the model's Dense kernels have one scale per unit; None without Dense."""
    found = {lay.per_channel for lay in model.layers
             if isinstance(lay, QuantizeWrapper) and isinstance(lay.base, L.Dense)}
    return None if not found else found.pop() if len(found) == 1 else None


def not_ready(model: keras.Model) -> list[str]:
    """Names of the `FakeQuant` layers whose range was never set (no calibration, no
    training step)."""
    return [q.path for q in fake_quant_layers(model) if not q.is_ready]

