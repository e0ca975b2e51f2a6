"""Argument checks shared by the profilers: Keras-style errors that name the fix."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

TFLITE_IDENTIFIER = b"TFL3"


def positive_int(name: str, value) -> int:
    """Returns `value` if it is an integer >= 1, else raises ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return value


def positive_number(name: str, value) -> float:
    """Returns `value` as a float if it is a number > 0, else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Argument `{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


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
