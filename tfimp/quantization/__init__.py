"""Quantization-aware training (QAT) for Keras 3 that keeps pruning masks exact.

`quantize_aware(model)` rebuilds a (pruned) model so that it trains with the int8 arithmetic
of its TFLite conversion; `tfimp.export.to_tflite(qat, quantization="int8")` then writes an
int8 model whose outputs match it. Modules: `fake_quant` (the int8 rounding as the converter
does it, and the range-tracking `FakeQuant` layer), `layers` (`QuantizeWrapper`, the table of
supported layers), `qat` (the model rewrite, calibration, `strip`).
"""

from tfimp.quantization.fake_quant import (
    FakeQuant,
    activation_params,
    unquantized,
    weight_scales,
)
from tfimp.quantization.layers import KINDS, QuantizeWrapper
from tfimp.quantization.qat import (
    calibrate,
    fake_quant_layers,
    is_quantize_aware,
    not_ready,
    quantize_aware,
    strip,
)

__all__ = [
    "FakeQuant", "KINDS", "QuantizeWrapper", "activation_params", "calibrate",
    "fake_quant_layers", "is_quantize_aware", "not_ready", "quantize_aware", "strip",
    "unquantized", "weight_scales",
]
