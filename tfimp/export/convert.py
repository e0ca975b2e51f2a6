"""`to_tflite`: a (pruned) Keras model to a verified, compressed .tflite file."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import itertools
import os
import warnings
from collections.abc import Callable

import numpy as np

from tfimp._util import tf_logs
from tfimp._util.io import atomic_write_bytes
from tfimp.export import _sandbox, quantization as quant_lib, recurrent
from tfimp.export.inspect import inspect
from tfimp.export.report import Candidate, ExportReport
from tfimp.export.verify import Verification, VerificationError, verify as verify_fn

_SPARSE_CHOICES = {False: (False,), True: (True,), "auto": (False, True)}
_SPARSE_HINT = (
    "The sparse encoding works in LiteRT with float32 and int8 weights. With int8 weights the "
    "converter keeps FULLY_CONNECTED weights sparse only when their zeros come in 1x16 blocks "
    "(prune Dense kernels with granularity='block:16x1:whole'); otherwise it adds DENSIFY ops "
    "that the XNNPACK delegate refuses. Sparse float16, dynamic-range and int16x8 tensors give "
    "wrong outputs."
)


@dataclasses.dataclass(frozen=True)
class ExportArtifact:
    """The exported model: where it was written (if anywhere), its bytes and its report."""

    path: str | None
    model_bytes: bytes
    report: ExportReport


def to_tflite(
    model,
    path: str | os.PathLike | None = None,
    quantization: str | quant_lib.Quantization | None = None,
    sparse: bool | str = False,
    representative_data=None,
    verify: tuple | None = None,
    tolerance: float | None = None,
) -> ExportArtifact:
    """Converts a Keras 3 model (pruned or plain) to a .tflite model that LiteRT runs.

    Args:
        model: a built Keras 3 model; a model pruned with `tfimp.prune` is stripped first. A
            model from `tfimp.quantize_aware` converts to int8 with the ranges it learned
            (its `representative_data` is optional).
        path: where to write the .tflite file (atomically); None keeps it in memory.
        quantization: None/"float32", "dynamic", "float16", "int8", "int16x8" or a config
            from `tfimp.export.quantization` (e.g. `Int8(integer_io=True)`).
        sparse: True stores tensors with many zeros in TFLite's sparse encoding; "auto"
            converts both ways and keeps the smaller file that runs and passes verification.
        representative_data: calibration inputs for "int8"/"int16x8": an array (or a list of
            arrays, one per model input) with samples first, or a callable returning an
            iterable of input lists, as `TFLiteConverter.representative_dataset`.
        verify: `(x, y)` to run the .tflite on in LiteRT and compare with Keras.
        tolerance: largest accepted accuracy drop (fraction; or max abs output difference
            without labels); exceeding it raises `VerificationError` and writes nothing.

    Returns:
        An `ExportArtifact` with `path`, `model_bytes` and `report` (an `ExportReport`).

    Raises:
        ValueError: bad arguments, a failed conversion, or a combination of options that the
            default LiteRT interpreter refuses to run (the message names the fix).

    Example:
    >>> art = to_tflite(model, "m.tflite", quantization="int8",  # doctest: +SKIP
    ...                 representative_data=x[:256], sparse="auto", verify=(x_val, y_val))
    """
    model = _plain_model(model)
    recurrent.check_exportable(model)
    config = quant_lib.get(quantization)
    if _quantize_aware(model):
        from tfimp.quantization.convert import export_model, sample_inputs

        model = export_model(model, config)
        if representative_data is None:
            representative_data = sample_inputs(model)
    if not isinstance(sparse, (bool, str)) or sparse not in _SPARSE_CHOICES:
        raise ValueError(
            f"Argument `sparse` must be True, False or 'auto'. Received: sparse={sparse!r}")
    rep = _representative(model, representative_data, config)
    first = convert_bytes(model, config, _SPARSE_CHOICES[sparse][0], rep)
    check = _Check.build(model, first, verify, rep, config)
    tried = [_try(model, config, sp, rep, check, verify, tolerance, first if k == 0 else None)
             for k, sp in enumerate(_SPARSE_CHOICES[sparse])]
    blob, result = _choose(tried, config, sparse)
    dense = _dense_float32_bytes(model, config, tried)
    report = _report(model, blob, config, result, dense, tried, path)
    if path is not None:
        atomic_write_bytes(path, blob)
    return ExportArtifact(None if path is None else os.fspath(path), blob, report)


@dataclasses.dataclass(frozen=True)
class _Check:
    """Sample inputs and Keras's outputs on them, to catch conversions that compute garbage."""

    inputs: list[np.ndarray]
    reference: np.ndarray | None
    rtol: float

    @classmethod
    def build(cls, model, blob: bytes, verify, rep, config) -> _Check:
        if rep is not None:  # calibrated modes are only faithful on the calibration range
            samples = list(itertools.islice(rep(), 64))
            xs = [np.concatenate([np.asarray(s[i]) for s in samples])
                  for i in range(len(samples[0]))]
        elif verify is not None:
            xs = [x[:64] for x in _sandbox.as_list(verify[0])]
        else:
            xs = _random_inputs(blob, 32)
        ref = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        ref = None if isinstance(ref, (list, tuple, dict)) else np.asarray(ref, np.float32)
        return cls(xs, ref, config.sanity_rtol)

    def problem(self, blob: bytes) -> str:
        """Why the model's outputs are not a faithful conversion, or "" if they are."""
        outputs = _sandbox.run("litert", blob, self.inputs).dequantized
        if not all(np.all(np.isfinite(o)) for o in outputs):
            return "its outputs hold NaN or infinite values"
        if self.reference is None:
            return ""
        lite = outputs[0].reshape(self.reference.shape)
        scale = max(float(np.max(np.abs(self.reference))), 1e-6)
        rel = float(np.max(np.abs(lite - self.reference))) / scale
        if rel > self.rtol:
            return (f"its outputs differ from Keras's by {100 * rel:.3g}% of the output range "
                    f"(a faithful conversion stays within {100 * self.rtol:g}%)")
        return ""


def _random_inputs(blob: bytes, n: int) -> list[np.ndarray]:
    info = inspect(blob)
    rng = np.random.default_rng(0)
    shapes = [info.tensors[i].shape for i in info.inputs]
    return [rng.standard_normal((n, *s[1:])).astype(np.float32) for s in shapes]


@dataclasses.dataclass
class _Try:
    sparse: bool
    blob: bytes
    error: str = ""
    verification: Verification | None = None
    failed_verification: VerificationError | None = None

    @property
    def ok(self) -> bool:
        return not self.error and self.failed_verification is None


def _try(model, config, sparse: bool, rep, check: _Check, data, tolerance, blob=None) -> _Try:
    blob = blob if blob is not None else convert_bytes(model, config, sparse, rep)
    attempt = _Try(sparse, blob)
    try:
        problem = check.problem(blob)
        if problem:
            attempt.error = f"LiteRT runs the model but {problem}"
        elif data is not None:
            attempt.verification = verify_fn(blob, data, model, tolerance)
    except VerificationError as e:
        attempt.failed_verification = e
        attempt.verification = e.verification
    except (RuntimeError, ValueError) as e:
        attempt.error = str(e)
    return attempt


def _choose(tried: list[_Try], config, sparse) -> tuple[bytes, _Try]:
    good = [t for t in tried if t.ok]
    if good:
        best = min(good, key=lambda t: len(t.blob))
        return best.blob, best
    failed = [t for t in tried if t.failed_verification is not None]
    if failed:
        raise min(failed, key=lambda t: len(t.blob)).failed_verification
    error = tried[-1].error
    if sparse is True:
        raise ValueError(
            f"sparse=True with quantization='{config.name}' produced a model that the default "
            f"LiteRT interpreter does not run correctly: {error.splitlines()[0] if error else ''}"
            f"\n{_partial_blocks(tried[-1].blob)}{_SPARSE_HINT} Use sparse='auto' (keeps the "
            "smaller file that runs correctly), sparse=False, or another quantization."
        )
    raise ValueError(f"The converted model (quantization='{config.name}') does not run "
                     f"correctly in the default LiteRT interpreter: {error}")


def _partial_blocks(blob: bytes) -> str:
    """Names the tensors whose last sparse block sticks out of the matrix, if any."""
    names = [f"{t.name} {list(t.shape)}" for t in inspect(blob).sparse_tensors
             if t.block and t.dtype == "int8" and t.shape[-1] % t.block[-1]]
    if not names:
        return ""
    return ("LiteRT's int8 1x16 block-sparse FULLY_CONNECTED kernel miscomputes a kept block "
            f"that lies partly outside the weight matrix: {', '.join(names)} has an input count "
            "that is not a multiple of 16. Keep the trailing (in % 16) inputs of such Dense "
            "kernels pruned. ")


def convert_bytes(model, config: quant_lib.Quantization, sparse: bool, rep=None) -> bytes:
    """The converter's .tflite bytes for `model` with one quantization and sparse setting."""
    import tensorflow as tf

    recurrent.check_exportable(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    config.configure(converter, tf)
    if sparse:
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if config.needs_representative_data:
        converter.representative_dataset = rep
    if config.integer_only and _quantize_aware(model):
        from tfimp.quantization.convert import configure_converter

        configure_converter(converter)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Keras prints the temporary export to stdout. The warning is about TF1's
            # `quantized_input_stats`, which TFLiteConverterV2 never uses.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
            with tf_logs.held_back_if_quiet(), recurrent.unrolled(model):
                return bytes(converter.convert())
    except Exception as e:
        raise ValueError(f"The TFLite converter failed on model '{model.name}' with "
                         f"quantization='{config.name}', sparse={sparse}: {e}") from None


def _dense_float32_bytes(model, config, tried: list[_Try]) -> int:
    for t in tried:
        if isinstance(config, quant_lib.Float32) and not t.sparse:
            return len(t.blob)
    return len(convert_bytes(model, quant_lib.Float32(), False))


def _report(model, blob, config, chosen: _Try, dense: int, tried, path) -> ExportReport:
    weights = [np.asarray(w) for w in model.weights]
    kernels = [w for w in weights if w.ndim >= 2]
    zeros = sum(int(np.count_nonzero(w == 0)) for w in kernels)
    candidates = tuple(
        Candidate(t.sparse, len(t.blob), not t.error, t.failed_verification is None,
                  t.error.splitlines()[0][:200] if t.error else "")
        for t in tried
    )
    return ExportReport.from_info(
        inspect(blob),
        quantization=config.get_config(),
        sparse=chosen.sparse,
        keras_weight_bytes=4 * sum(w.size for w in weights),
        keras_sparsity=zeros / max(1, sum(w.size for w in kernels)),
        gzip_bytes=len(gzip.compress(blob, compresslevel=9, mtime=0)),
        dense_float32_bytes=dense,
        verification=chosen.verification,
        candidates=candidates,
        path=None if path is None else os.fspath(path),
    )


def _plain_model(model):
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError("Argument `model` must be a Keras 3 model (keras.Model). "
                         f"Received: model of type {type(model).__name__}")
    if not model.built:
        raise ValueError(f"Argument `model` ('{model.name}') is not built: it has no weights to "
                         "convert. Build it first, e.g. with keras.Input in the model or "
                         "model.build(input_shape), or by calling it on data.")
    from tfimp.sparsity.engine import is_pruned, strip

    return strip(model) if is_pruned(model) else model


def _quantize_aware(model) -> bool:
    from tfimp.quantization.qat import is_quantize_aware

    return is_quantize_aware(model)


def _input_shapes(model) -> list[tuple]:
    try:
        return [tuple(t.shape) for t in model.inputs]
    except (AttributeError, ValueError):
        return []


def _representative(model, data, config) -> Callable | None:
    if not config.needs_representative_data:
        return None
    if data is None:
        raise ValueError(f"Argument `representative_data` is required for quantization="
                         f"'{config.name}': pass ~100-500 typical inputs, e.g. "
                         "representative_data=x_train[:256]. Received: representative_data=None")
    if callable(data):
        return data
    xs = _sandbox.as_list(data)
    shapes = _input_shapes(model)
    for i, (x, shape) in enumerate(zip(xs, shapes)):
        wrong = any(s is not None and s != d for s, d in zip(shape[1:], x.shape[1:]))
        if x.ndim != len(shape) or wrong:
            raise ValueError(
                f"Argument `representative_data` must hold samples of the model's input shape "
                f"{shape} (samples first). Received: input {i} of shape {x.shape}")
    if shapes and len(xs) != len(shapes):
        raise ValueError(f"Argument `representative_data` must hold one array per model input "
                         f"({len(shapes)}). Received: {len(xs)} arrays")
    if len(xs[0]) == 0:
        raise ValueError("Argument `representative_data` must hold at least one sample. "
                         "Received: 0 samples")

    def dataset():
        for i in range(len(xs[0])):
            # Integer inputs (token ids) keep their dtype; only float data is calibrated.
            yield [x[i : i + 1] if np.issubdtype(x.dtype, np.integer)
                   else x[i : i + 1].astype(np.float32) for x in xs]

    return dataset
