"""Argument validators: Keras-style errors that name the argument, the value and the fix.

Each returns the checked (and normalized) value, so call sites read `rate = fraction("rate",
rate)`. All raise `InvalidArgumentError`, a `ValueError`.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tfimp._util.errors import InvalidArgumentError

TFLITE_IDENTIFIER = b"TFL3"


def fail(name: str, value, must: str):
    """Raises `InvalidArgumentError`: "Argument `name` must be <must>. Received: name=value"."""
    raise InvalidArgumentError(f"Argument `{name}` must be {must}. Received: {name}={value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(name: str, value, minimum: int = 0) -> int:
    """`value` if it is an int >= `minimum` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(name, value, "a positive integer" if minimum == 1 else f"an integer >= {minimum}")
    return int(value)


def positive_int(name: str, value) -> int:
    """`value` if it is an integer >= 1."""
    return integer(name, value, 1)


def positive_number(name: str, value) -> float:
    """`value` as a float if it is a finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or not value > 0:
        fail(name, value, "a positive number")
    return float(value)


def non_negative(name: str, value, what: str = "a finite number >= 0") -> float:
    """`value` as a float if it is a finite number >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        fail(name, value, what)
    return float(value)


def fraction(name: str, value, allow_zero: bool = False) -> float:
    """`value` as a float in (0, 1), or [0, 1) with `allow_zero`."""
    low_ok = _is_number(value) and ((value >= 0.0) if allow_zero else (value > 0.0))
    if not (low_ok and value < 1):
        fail(name, value, f"a number in {'[0, 1)' if allow_zero else '(0, 1)'}")
    return float(value)


def choice(name: str, value, choices: tuple):
    """`value` if it is one of `choices`."""
    if isinstance(value, bool) or value not in choices:
        fail(name, value, f"one of {list(choices)}")
    return value


def flag(name: str, value) -> bool:
    """`value` if it is True or False."""
    if not isinstance(value, bool):
        fail(name, value, "True or False")
    return value


def check_tflite_bytes(data: bytes, where: str) -> None:
    """Raises ValueError unless `data` starts like a TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(
            f"Argument `model` must be a TFLite flatbuffer (file identifier 'TFL3' at byte 4). "
            f"Received: model={where!r} ({len(data)} bytes, identifier {data[4:8]!r}). "
            f"Pass a .tflite file written by the TFLite converter or tfimp.export.to_tflite."
        )


def tflite_path(model) -> Path:
    """Checks that `model` names a readable .tflite file and returns it as an absolute Path."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"Argument `model` must be a path to a .tflite file or its bytes. "
                        f"Received: model of type {type(model).__name__}")
    path = Path(model).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"Argument `model` must name an existing .tflite file. "
                                f"Received: model={str(model)!r} (no such file)")
    with open(path, "rb") as f:
        check_tflite_bytes(f.read(8), str(model))
    return path


@contextmanager
def model_file(model):
    """Yields a checked path for `model`, a path or the model's bytes (then a temp file)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        check_tflite_bytes(data, f"<{len(data)} bytes>")
        with tempfile.TemporaryDirectory(prefix="tfimp-model-") as tmp:
            path = Path(tmp) / "model.tflite"
            path.write_bytes(data)
            yield path
    else:
        yield tflite_path(model)
