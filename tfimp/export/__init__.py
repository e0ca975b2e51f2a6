"""Export: Keras model to a verified, compressed .tflite; read-back; microcontroller C arrays
and TFLite Micro compression (DECODE: pruning bitmap, LUT; tfimp's sparse FULLY_CONNECTED
kernel).

TensorFlow is imported only when a conversion runs, so `inspect` and the runtimes stay light.
"""

from tfimp.export._converter import ConverterError
from tfimp.export.convert import ExportArtifact, to_tflite
from tfimp.export.inspect import ModelInfo, TensorInfo, inspect
from tfimp.export.micro import (
    MicroArtifact,
    MicroCompression,
    MicroEncoding,
    measure_arena,
    run_micro,
    to_micro,
)
from tfimp.export.quantization import (
    DynamicRange,
    Float16,
    Float32,
    Int8,
    Int16x8,
    Quantization,
)
from tfimp.export.report import ExportReport
from tfimp.export.tflm_compression import CompressedModel, Lut, compress_tflm, decompress_tflm
from tfimp.export.verify import Verification, VerificationError, run_litert, verify

__all__ = [
    "CompressedModel", "ConverterError", "DynamicRange", "ExportArtifact", "ExportReport",
    "Float16", "Float32", "Int16x8", "Int8", "Lut", "MicroArtifact", "MicroCompression",
    "MicroEncoding", "ModelInfo", "Quantization", "TensorInfo", "Verification",
    "VerificationError", "compress_tflm", "decompress_tflm", "inspect", "measure_arena",
    "run_litert", "run_micro", "to_micro", "to_tflite", "verify",
]
