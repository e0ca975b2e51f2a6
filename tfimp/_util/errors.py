"""The one exception base of tfimp.

Every error tfimp raises on purpose derives from `TfimpError`, and also from the built-in
class an `except` clause would expect (`ValueError` for bad arguments, `RuntimeError` for a
runtime that refused a model), so code written against either keeps working:

    try:
        tfimp.export.to_tflite(model, "m.tflite", quantization="int3")
    except tfimp.TfimpError as e:
        print(e)
"""

from __future__ import annotations

__all__ = ["InvalidArgumentError", "TfimpError"]


class TfimpError(Exception):
    """Base class of the errors tfimp raises on purpose."""


class InvalidArgumentError(TfimpError, ValueError):
    """An argument has the wrong type, range or content; the message names it and the fix."""
