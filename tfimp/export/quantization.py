"""Quantization settings for the TFLite converter, as small config objects.

Each config knows whether it needs representative data and how to set up a
`tf.lite.TFLiteConverter`. `get(None | name | config)` returns a config:

>>> get("int8") == Int8()
True
>>> get(Int8(integer_io=True)).get_config()
{'name': 'int8', 'integer_io': True}
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class Quantization:
    """Base of the quantization configs; subclasses set `name` and override `configure`."""

    name: ClassVar[str] = ""
    needs_representative_data: ClassVar[bool] = False
    integer_only: ClassVar[bool] = False
    # Largest |tflite - keras| / max|keras| on sample inputs that still counts as a faithful
    # conversion; far above this mode's rounding error, far below a broken kernel's error.
    sanity_rtol: ClassVar[float] = 1e-4

    def configure(self, converter: Any, tf: Any) -> None:
        """Sets the converter's options for this mode (optimizations, types, op sets)."""
        raise NotImplementedError(f"{type(self).__name__} must override `configure`.")

    def get_config(self) -> dict:
        """The mode's name and fields; `from_config` rebuilds it."""
        return {"name": self.name, **dataclasses.asdict(self)}

    @classmethod
    def from_config(cls, config: dict) -> Quantization:
        """The config that `get_config` returned; on the base class, any registered mode."""
        config = dict(config)
        name = config.pop("name", cls.name)
        target = QUANTIZATIONS.get(name) if cls is Quantization else cls
        if target is None or name != target.name:
            raise ValueError(
                f"Argument `config` must name one of {sorted(QUANTIZATIONS)}. "
                f"Received: config={{'name': {name!r}, ...}}"
            )
        return target(**config)


@dataclasses.dataclass(frozen=True)
class Float32(Quantization):
    """No quantization: float32 weights and activations."""

    name: ClassVar[str] = "float32"

    def configure(self, converter: Any, tf: Any) -> None:
        converter.optimizations = []


@dataclasses.dataclass(frozen=True)
class DynamicRange(Quantization):
    """int8 weights, float activations quantized on the fly; no data needed."""

    name: ClassVar[str] = "dynamic"
    sanity_rtol: ClassVar[float] = 0.1

    def configure(self, converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]


@dataclasses.dataclass(frozen=True)
class Float16(Quantization):
    """float16 weights, dequantized to float32 at load time."""

    name: ClassVar[str] = "float16"
    sanity_rtol: ClassVar[float] = 0.01

    def configure(self, converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]


@dataclasses.dataclass(frozen=True)
class Int8(Quantization):
    """Full-integer int8 weights and activations, calibrated on representative data.

    Args:
        integer_io: make the model's inputs and outputs int8 too (needed on
            microcontrollers); otherwise they stay float32 with QUANTIZE/DEQUANTIZE ops.
        per_channel_dense: one weight scale per output unit of Dense (FULLY_CONNECTED)
            layers. False uses one scale per tensor: the file then saves 24 bytes per unit
            (an int64 zero point and a float scale for the weights and for the bias), which
            is most of a highly pruned model's size; check the accuracy in the report.
    """

    integer_io: bool = False
    per_channel_dense: bool = True
    name: ClassVar[str] = "int8"
    sanity_rtol: ClassVar[float] = 0.25
    needs_representative_data: ClassVar[bool] = True
    integer_only: ClassVar[bool] = True

    def __post_init__(self):
        for field in ("integer_io", "per_channel_dense"):
            value = getattr(self, field)
            if not isinstance(value, bool):
                raise ValueError(
                    f"Argument `{field}` must be True or False. Received: {field}={value!r}")

    def configure(self, converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if self.integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if not self.per_channel_dense:
            # The converter's only switch for this is an experimental attribute.
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True


@dataclasses.dataclass(frozen=True)
class Int16x8(Quantization):
    """int16 activations with int8 weights, calibrated on representative data."""

    name: ClassVar[str] = "int16x8"
    sanity_rtol: ClassVar[float] = 0.05
    needs_representative_data: ClassVar[bool] = True
    integer_only: ClassVar[bool] = True

    def configure(self, converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [ops]


QUANTIZATIONS: dict[str, type[Quantization]] = {
    cls.name: cls for cls in (Float32, DynamicRange, Float16, Int8, Int16x8)
}


def get(quantization: str | Quantization | dict | None) -> Quantization:
    """The config for a short name, a config dict, a config object, or None (float32)."""
    if quantization is None:
        return Float32()
    if isinstance(quantization, Quantization):
        return quantization
    if isinstance(quantization, dict):
        return Quantization.from_config(quantization)
    if isinstance(quantization, str) and quantization in QUANTIZATIONS:
        return QUANTIZATIONS[quantization]()
    raise ValueError(
        f"Argument `quantization` must be None, one of {sorted(QUANTIZATIONS)} or a "
        f"tfimp.export.quantization config. Received: quantization={quantization!r}"
    )


def configure_converter(converter: Any, tf: Any, config: Quantization, sparse: bool,
                        rep=None, qdq: bool = False) -> None:
    """Sets a `tf.lite.TFLiteConverter` up for one quantization and sparse setting; `qdq`
    for a quantization-aware model converted to int8 (keeps its learned ranges)."""
    config.configure(converter, tf)
    if sparse:
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if config.needs_representative_data:
        converter.representative_dataset = rep
    if qdq:
        from tfimp.quantization.convert import configure_converter as keep_learned_ranges

        keep_learned_ranges(converter)
