"""`to_tflite`: a (pruned) Keras model to a verified, compressed .tflite file."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import os

import numpy as np
from absl import logging

from tfimp._util import validate as v
from tfimp._util.errors import InvalidArgumentError
from tfimp._util.io import atomic_write_bytes
from tfimp.export import _converter, _sandbox, quantization as quant_lib
from tfimp.export.inspect import inspect
from tfimp.export.report import Candidate, ExportReport
from tfimp.export.verify import Verification, VerificationError, verify as verify_fn

_SPARSE_CHOICES = {False: (False,), True: (True,), "auto": (False, True)}
_SPARSE_HINT = (
    "The sparse encoding works in LiteRT with float32 and int8 weights. With int8 weights the "
    "converter keeps FULLY_CONNECTED weights sparse only when their zeros come in 1x16 blocks "
    "(prune Dense kernels with granularity='block:16x1:whole'); otherwise it adds DENSIFY ops "
    "that the XNNPACK delegate refuses. Sparse dynamic-range weights are refused or give "
    "wrong outputs, and int16x8 with 1x16 blocks gives wrong outputs; float16 and float32 "
    "work."
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
    v.finite_weights("model", model)
    _check_recurrent(model)
    out = None if path is None else v.output_file("path", path)
    config = quant_lib.get(quantization)
    if _quantize_aware(model):
        from tfimp.quantization.convert import export_model, sample_inputs

        model = export_model(model, config)
        if representative_data is None:
            representative_data = sample_inputs(model)
    if not isinstance(sparse, (bool, str)) or sparse not in _SPARSE_CHOICES:
        v.fail("sparse", sparse, "True, False or 'auto'")
    verify = _verify_data(model, verify, tolerance)
    samples = _representative(model, representative_data, config)
    choices = _SPARSE_CHOICES[sparse]
    qdq = bool(config.integer_only and _quantize_aware(model))
    results = _converter.convert(model, _jobs(config, choices, qdq), samples)
    results[:len(choices)] = [_repaired(r, sp) for sp, r in zip(choices, results)]
    first = _converted(model, config, choices[0], results[0])
    rep = None if samples is None else (lambda: iter(samples))
    check = _Check.build(model, first, verify, rep, config)
    tried = [_try(model, sp, result, check, verify, tolerance)
             for sp, result in zip(choices, results)]
    blob, result = _choose(tried, config, sparse)
    dense = len(_converted(model, quant_lib.Float32(), False,
                           _dense_float32(config, choices, results)))
    report = _report(model, blob, config, result, dense, tried, path)
    if out is not None:
        atomic_write_bytes(out, blob)
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


def _try(model, sparse: bool, result: bytes | str, check: _Check, data, tolerance) -> _Try:
    if isinstance(result, str):  # the converter refused or crashed on this setting
        return _Try(sparse, b"", error=f"the TFLite converter failed: {result}")
    attempt = _Try(sparse, result)
    try:
        problem = check.problem(result)
        if problem:
            attempt.error = f"LiteRT runs the model but {problem}"
        elif data is not None:
            attempt.verification = verify_fn(result, data, model, tolerance)
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
            f"\n{_partial_blocks(tried[-1].blob) if tried[-1].blob else ''}"
            f"{_SPARSE_HINT} Use sparse='auto' (keeps the "
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
    """The converter's .tflite bytes for `model` with one quantization and sparse setting.

    The converter runs in a child process: a converter crash raises `ConverterError` here.
    """
    _check_recurrent(model)
    samples = None if rep is None or not config.needs_representative_data else list(rep())
    qdq = bool(config.integer_only and _quantize_aware(model))
    result = _converter.convert(model, [_converter.Job(config.get_config(), sparse, qdq)],
                                samples)
    return _converted(model, config, sparse, _repaired(result[0], sparse))


def _repaired(result: bytes | str, sparse: bool) -> bytes | str:
    """A sparse conversion with the DENSIFY ops that the converter sometimes leaves out
    (`tfimp.export.sparse_repair`), and the tensors those ops decode in their smallest
    encoding (`tfimp.export.sparse_encoding`); other results as they are."""
    if not sparse or isinstance(result, str):
        return result
    from tfimp.export.sparse_encoding import compact_densified
    from tfimp.export.sparse_repair import add_missing_densify

    repaired, names = add_missing_densify(result)
    if names:
        logging.info("Added the DENSIFY op the converter left out for %s.", ", ".join(names))
    compact, changed = compact_densified(repaired)
    for c in changed:
        logging.info("Wrote %s in CSR: %d B instead of %d B.", c.name, c.after, c.before)
    return compact


def _jobs(config, choices: tuple, qdq: bool = False) -> list[_converter.Job]:
    """The conversions `to_tflite` needs: each sparse choice, and the dense float32 model
    that the report compares sizes with."""
    jobs = [_converter.Job(config.get_config(), sp, qdq) for sp in choices]
    if not (isinstance(config, quant_lib.Float32) and False in choices):
        jobs.append(_converter.Job(quant_lib.Float32().get_config(), False))
    return jobs


def _dense_float32(config, choices: tuple, results: list):
    if isinstance(config, quant_lib.Float32) and False in choices:
        return results[choices.index(False)]
    return results[-1]


def _converted(model, config, sparse: bool, result: bytes | str) -> bytes:
    if isinstance(result, str):
        raise _converter.ConverterError(
            f"The TFLite converter failed on model '{model.name}' with quantization="
            f"'{config.name}', sparse={sparse}: {result}")
    return result


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
        v.fail("model", v.summary(model), "a Keras 3 model (keras.Model); to read a .tflite "
               "file use tfimp.export.inspect")
    if not model.built:
        v.fail("model", model.name, "a built model (it has no weights to convert yet): use "
               "keras.Input in the model, model.build(input_shape), or call it on data")
    from tfimp.sparsity.engine import is_pruned, strip

    return strip(model) if is_pruned(model) else model


_MAX_SAMPLES = 10_000


def _check_recurrent(model) -> None:
    """Recurrent layers must be exportable unrolled (imported here: it loads Keras)."""
    from tfimp.export import recurrent

    recurrent.check_exportable(model)


def _quantize_aware(model) -> bool:
    from tfimp.quantization.qat import is_quantize_aware

    return is_quantize_aware(model)


def _input_shapes(model) -> list[tuple]:
    try:
        return [tuple(t.shape) for t in model.inputs]
    except (AttributeError, ValueError):
        return []


def _representative(model, data, config) -> list | None:
    """The calibration samples, checked (finite, the model's input shapes), as a list of
    samples of one row each; None when `config` is not calibrated."""
    if not config.needs_representative_data:
        return None
    if data is None:
        v.fail("representative_data", None, f"given for quantization='{config.name}': pass "
               "~100-500 typical inputs, e.g. representative_data=x_train[:256]")
    if callable(data):
        return _drain(model, data)
    xs = v.matches_inputs("representative_data", data, model)
    v.finite("representative_data", data)
    # Integer inputs (token ids) keep their dtype; only float data is calibrated.
    xs = [x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32) for x in xs]
    return [[x[i : i + 1] for x in xs] for i in range(len(xs[0]))]


def _drain(model, data) -> list:
    """The samples a representative-dataset callable yields, each one checked."""
    try:
        samples = iter(data())
    except TypeError:
        v.fail("representative_data", data, "an array, a list of arrays (one per input), or "
               "a callable that returns an iterable of samples")
    out = []
    for k, sample in enumerate(samples):
        if k == _MAX_SAMPLES:
            v.fail("representative_data", data, f"a callable that yields at most {_MAX_SAMPLES} "
                   "samples (an endless generator never lets the converter finish)")
        if not isinstance(sample, dict):
            sample = list(sample) if isinstance(sample, (list, tuple)) else [sample]
        try:
            v.matches_inputs("representative_data", sample, model)
            v.finite("representative_data", sample)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{e} (in sample {k} of representative_data())") from None
        out.append(sample)
    if not out:
        v.fail("representative_data", data, "a callable that yields at least one sample")
    return out


def _verify_data(model, verify, tolerance):
    """`verify` as checked `(x, y)` (x finite and of the model's input shapes, one label per
    sample, class indices within the model's outputs), or None."""
    if tolerance is not None:
        v.non_negative("tolerance", tolerance, "a finite number >= 0 (the largest accepted "
                       "accuracy drop as a fraction, or output difference without labels)")
        if verify is None:
            v.fail("tolerance", tolerance, "used with `verify` data (x, y) to compare on; "
                   "pass verify=(x_val, y_val) or drop `tolerance`")
    if verify is None:
        return None
    if not isinstance(verify, (tuple, list)) or len(verify) != 2:
        v.fail("verify", v.summary(verify), "a pair (x, y) of arrays (y may be None)")
    x, y = verify
    xs = v.matches_inputs("verify", x, model)
    v.finite("verify", x)
    if y is not None:
        y = v.labels("verify", y, len(xs[0]), v.class_count(model), sparse=True)
    return (xs if len(xs) > 1 else xs[0], y)
