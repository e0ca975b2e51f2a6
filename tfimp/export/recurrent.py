"""Recurrent layers (SimpleRNN, GRU, LSTM, Bidirectional, ConvLSTM) in a .tflite file.

Keras 3 runs a recurrent layer as a `tf.while_loop` over TensorList ops. The TFLite converter
(TensorFlow 2.21) lowers those only with a fixed batch size; the result then holds
READ_VARIABLE ops that LiteRT refuses to run, and int8 quantization of the loop crashes the
converter. Keras 3 layers also lack the `api_implements` annotation from which the converter
builds its fused LSTM op. Unrolled over their time steps (`unroll=True`), the same layers
trace to plain FULLY_CONNECTED, ADD, MUL, LOGISTIC and TANH ops: they convert with every
quantization, run in LiteRT and TFLite Micro, and compute what the loop computes. That needs a
fixed number of time steps, and layers without state kept between calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


def recurrent_layers(model: keras.Model) -> list[keras.layers.RNN]:
    """The recurrent layers in `model`, nested ones (in Bidirectional, sub-models) included."""
    return [lay for lay in model._flatten_layers(include_self=False)
            if isinstance(lay, keras.layers.RNN)]


def _time_steps(layer: keras.layers.RNN) -> int | None | str:
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    shape = shapes.get("sequences_shape")
    return shape[1] if shape is not None and len(shape) > 1 else "unknown"


def check_exportable(model: keras.Model) -> None:
    """Raises ValueError, naming the fix, for recurrent layers that a .tflite cannot hold."""
    for layer in recurrent_layers(model):
        where = f"Layer '{layer.name}' ({type(layer).__name__}) in model '{model.name}'"
        if layer.stateful:
            raise ValueError(
                f"{where} is stateful (stateful=True): it carries its state from one call to "
                "the next, which a .tflite model cannot. Export a copy built with "
                "stateful=False and the same weights (model.get_weights()/set_weights()).")
        if _time_steps(layer) is None:
            raise ValueError(
                f"{where} reads sequences of any length (input shape "
                f"{layer._build_shapes_dict['sequences_shape']}); the TFLite converter needs "
                "a fixed number of time steps to unroll it. Build the model with a fixed "
                "sequence length, e.g. keras.Input((steps, features)), and copy the weights.")


@contextlib.contextmanager
def unrolled(model: keras.Model) -> Iterator[None]:
    """Sets `unroll=True` on every recurrent layer of `model` while the block runs.

    Tracing `model` inside the block (as the TFLite converter does) gives the unrolled graph;
    the layers get their own setting back afterwards.
    """
    layers = recurrent_layers(model)
    saved = [layer.unroll for layer in layers]
    try:
        for layer in layers:
            layer.unroll = True
        yield
    finally:
        for layer, unroll in zip(layers, saved):
            layer.unroll = unroll
