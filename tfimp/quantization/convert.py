"""What `tfimp.export.to_tflite` needs to convert a quantization-aware model to int8.

The converter takes the ranges from the model's fake-quant ops. Two settings differ from
post-training quantization:

- per-channel fake-quantized Dense kernels need the converter's QDQ conversion mode
  (`_experimental_qdq_conversion_mode = "STATIC"`); its default QAT path transposes the
  per-channel kernel for FULLY_CONNECTED and fails ("'tfl.transpose' op has mismatched
  quantized axes of input and output");
- the int8-only target still asks for calibration inputs, although every tensor already
  has its range: inputs drawn inside the model's input ranges serve when none are given.
"""

from __future__ import annotations

import keras
import numpy as np

from tfimp.quantization.fake_quant import FakeQuant
from tfimp.quantization.qat import is_quantize_aware, not_ready, per_channel_dense, strip

__all__ = ["configure_converter", "export_model", "is_quantize_aware", "sample_inputs"]


def export_model(model: keras.Model, config) -> keras.Model:
    """The model to convert with `config` (a `tfimp.export.quantization` config): mask wrappers
    stripped, after checking that it can be converted.

    Raises:
        ValueError: `config` is not int8 (or disagrees with the model on per-channel Dense
            scales), or some activation range was never set.
    """
    quantization = config.name
    if quantization != "int8":
        raise ValueError(
            f"Argument `quantization` must be 'int8' (or a tfimp.export.Int8 config) for a "
            f"quantization-aware model: its fake quantization simulates int8. Received: "
            f"quantization={quantization!r}. Convert the model from before "
            "tfimp.quantize_aware for other formats.")
    dense = per_channel_dense(model)
    if dense is not None and dense != config.per_channel_dense:
        raise ValueError(
            f"Argument `quantization` must agree with the quantization-aware model on Dense "
            f"weight scales: the model has {'one per unit' if dense else 'one per kernel'}. "
            f"Received: quantization={config!r}. Pass Int8(per_channel_dense={dense}), or "
            f"rebuild with tfimp.quantize_aware(..., per_channel_dense={not dense}).")
    missing = not_ready(model)
    if missing:
        raise ValueError(
            f"Argument `model` ('{model.name}') has activation ranges that were never set "
            f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}): pass "
            "representative_data to tfimp.quantize_aware, or train it for at least one step "
            "before converting.")
    return strip(model)


def configure_converter(converter) -> None:
    """Sets the converter's QDQ mode, which keeps per-channel Dense kernels."""
    converter._experimental_qdq_conversion_mode = "STATIC"


def sample_inputs(model: keras.Model, n: int = 64, seed: int = 0) -> list[np.ndarray]:
    """`n` inputs per model input, uniform over the range of the input's `FakeQuant`."""
    rng = np.random.default_rng(seed)
    xs = []
    for tensor in model.inputs:
        shape = (n, *[d or 1 for d in tuple(tensor.shape)[1:]])
        layer = _input_quantizer(model, tensor)
        if layer is None:  # an integer input: token ids from 0
            xs.append(rng.integers(0, 2, size=shape).astype(tensor.dtype))
            continue
        lo, hi = (float(keras.ops.convert_to_numpy(v))
                  for v in (layer.range_min, layer.range_max))
        xs.append(rng.uniform(lo, hi, size=shape).astype(np.float32))
    return xs


def _input_quantizer(model, tensor) -> FakeQuant | None:
    for layer in model.layers:
        if isinstance(layer, FakeQuant) and any(
                tensor is node.input_tensors[0] for node in layer._inbound_nodes):
            return layer
    return None
