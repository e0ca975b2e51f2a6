"""Runs a .tflite model with LiteRT on data and compares it with the Keras model."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from tfimp._util import validate as v
from tfimp._util.errors import TfimpError
from tfimp.export import _sandbox
from tfimp.export.inspect import inspect, read_model_bytes


class VerificationError(TfimpError, ValueError):
    """The .tflite model differs from the Keras model by more than the tolerance."""

    exit_code = 1  # on the command line: the export ran, its result failed the check

    def __init__(self, message: str, verification: Verification | None = None):
        super().__init__(message)
        self.verification = verification


@dataclasses.dataclass(frozen=True)
class Verification:
    """How the .tflite model compares with Keras on the same data.

    `accuracy_*` are set when labels were given (class indices or one-hot); `delta_pp` is
    Keras accuracy minus .tflite accuracy in percentage points. `max_abs_diff` is the largest
    difference between the two models' (dequantized) outputs.
    """

    samples: int
    accuracy_tflite: float | None = None
    accuracy_keras: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    passed: bool = True

    @property
    def delta_pp(self) -> float | None:
        if self.accuracy_tflite is None or self.accuracy_keras is None:
            return None
        return 100.0 * (self.accuracy_keras - self.accuracy_tflite)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "delta_pp": self.delta_pp}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        parts = [f"{self.samples} samples"]
        if self.accuracy_tflite is not None:
            parts.append(f"accuracy {100 * self.accuracy_tflite:.2f}%")
        if self.delta_pp is not None:
            parts.append(f"vs Keras {-self.delta_pp:+.2f} pp")
        if self.max_abs_diff is not None:
            parts.append(f"max |diff| {self.max_abs_diff:.3g}")
        parts.append("passed" if self.passed else f"FAILED (tolerance {self.tolerance})")
        return ", ".join(parts)


def run_litert(model: str | os.PathLike | bytes, inputs) -> list[np.ndarray]:
    """Float (dequantized) outputs of the default LiteRT interpreter on batch-first inputs.

    The model runs in a child process: a model that crashes the interpreter raises
    `RuntimeError` here instead of ending the caller.
    """
    data = read_model_bytes(model)
    xs = v.matches_shapes("inputs", inputs, v.tflite_input_shapes(inspect(data)))
    v.finite("inputs", inputs)
    return _sandbox.run("litert", data, xs).dequantized


def verify(
    model: str | os.PathLike | bytes,
    data: tuple,
    keras_model=None,
    tolerance: float | None = None,
) -> Verification:
    """Runs `model` on `data` in LiteRT and compares it with `keras_model`.

    Args:
        model: the .tflite path or bytes.
        data: `(x, y)`; `y` may be None. Labels (class indices or one-hot) give accuracy.
        keras_model: the Keras model to compare with; None reports the .tflite metrics only.
        tolerance: with labels, the largest accepted accuracy drop vs Keras as a fraction
            (0.01 = 1 percentage point); without labels, the largest accepted absolute
            output difference. Exceeding it raises `VerificationError`.

    Raises:
        VerificationError: the difference exceeds `tolerance`.
        ValueError: bad arguments, or a model the runtime cannot run.
    """
    blob = read_model_bytes(model)
    x, y = _check_data(data, blob)
    if tolerance is not None:
        v.non_negative("tolerance", tolerance, "a finite number >= 0 (the largest accepted "
                       "accuracy drop as a fraction, or output difference without labels)")
    try:
        lite = run_litert(blob, x)[0]
    except RuntimeError as e:
        raise ValueError(f"Argument `model` could not be run for verification: {e}") from None
    ref = None
    if keras_model is not None:
        ref = np.asarray(keras_model.predict(x if len(x) > 1 else x[0], verbose=0))
        ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    return _compare(lite, ref, y, tolerance, len(x[0]))


def _check_data(data, blob: bytes) -> tuple[list[np.ndarray], np.ndarray | None]:
    """`data` as (inputs, labels) after checking them against the model: one finite array
    per input of its shape, one label per sample, class indices within its outputs."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        v.fail("verify", v.summary(data), "a pair (x, y) of arrays (y may be None)")
    info = inspect(blob)
    x = v.matches_shapes("verify", data[0], v.tflite_input_shapes(info))
    n = len(x[0])
    v.finite("verify", data[0])
    y = data[1]
    if y is not None:
        y = v.labels("verify", y, n, v.tflite_classes(info), sparse=True)
    return x, y


def _labels(y: np.ndarray | None, classes: int) -> np.ndarray | None:
    if y is None or classes < 2:
        return None
    if y.ndim == 2 and y.shape[1] == classes:
        return y.argmax(axis=1)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        labels = y.reshape(-1)
        if np.issubdtype(labels.dtype, np.integer) or np.all(np.mod(labels, 1) == 0):
            return labels.astype(np.int64)
    return None


def _compare(lite, ref, y, tolerance, n) -> Verification:
    lite = np.asarray(lite, np.float32).reshape(n, -1)
    labels = _labels(y, lite.shape[1])
    acc_lite = acc_ref = agree = diff = None
    if labels is not None:
        acc_lite = float(np.mean(lite.argmax(1) == labels))
    if ref is not None:
        ref = np.asarray(ref, np.float32).reshape(n, -1)
        diff = float(np.max(np.abs(ref - lite)))
        if labels is not None:
            acc_ref = float(np.mean(ref.argmax(1) == labels))
            agree = float(np.mean(ref.argmax(1) == lite.argmax(1)))
    result = Verification(n, acc_lite, acc_ref, agree, diff, tolerance)
    if tolerance is None or ref is None:
        return result
    drop = (acc_ref - acc_lite) if labels is not None else diff
    if drop > tolerance:
        result = dataclasses.replace(result, passed=False)
        what = (f"accuracy drop {100 * drop:.2f} pp" if labels is not None
                else f"max abs output difference {drop:.4g}")
        raise VerificationError(
            f"The .tflite model differs from the Keras model by more than the tolerance: "
            f"{what} > tolerance={tolerance}. ({result.summary()}) Try a milder quantization "
            "(e.g. quantization='float16' or 'dynamic'), more representative data, or a larger "
            "`tolerance`.", result)
    return result
