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


def not_a_file(path) -> str:
    """Why `path` names no file, for a "Received: ... (why)" message."""
    return "(it names a folder)" if os.path.isdir(path) else "(no such file)"


def tflite_path(model) -> Path:
    """Checks that `model` names a readable .tflite file and returns it as an absolute Path."""
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"Argument `model` must be a path to a .tflite file or its bytes. "
                        f"Received: model of type {type(model).__name__}")
    path = Path(model).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"Argument `model` must name an existing .tflite file. "
                                f"Received: model={str(model)!r} {not_a_file(path)}")
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


# ---------------------------------------------------------------------------- output paths
def output_file(name: str, path) -> Path:
    """`path` as a Path if a file can be written there: not empty, not a folder, and under a
    folder (existing or creatable), not under a file."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        fail(name, path, "a file path")
    out = Path(path).expanduser()
    if out.is_dir():
        fail(name, os.fspath(path), "a file path; it names an existing folder")
    _check_parent(name, out, path)
    return out


def output_folder(name: str, path) -> Path:
    """`path` as a Path if a folder can be created (or used) there: not a file, not under a
    file, and under a writable folder."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        fail(name, path, "a folder path")
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        fail(name, os.fspath(path), "a folder path; it names an existing file")
    _check_parent(name, out, path)
    return out


def _check_parent(name: str, out: Path, given) -> None:
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        fail(name, os.fspath(given), f"a path under a folder; {str(parent)!r} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(name, os.fspath(given), f"a path you can write to; {str(parent)!r} is not writable")


def input_file(name: str, path, what: str = "an existing file") -> Path:
    """`path` as a Path if it names an existing file (not a folder)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        fail(name, path, what)
    file = Path(path).expanduser()
    if file.is_dir():
        fail(name, os.fspath(path), f"{what}; it names a folder")
    if not file.is_file():
        fail(name, os.fspath(path), f"{what}; there is no such file")
    return file


def keras_file(name: str, path) -> Path:
    """`path` if it names a .keras model file: a zip archive holding `config.json`. A
    .tflite file or a damaged archive gets an error that says which."""
    import zipfile

    file = input_file(name, path, "a .keras model file")
    with open(file, "rb") as f:
        head = f.read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        fail(name, os.fspath(path), "a .keras model file; this is a .tflite model (already "
             "converted): read it with `tfimp inspect`, or export from the .keras file")
    try:
        with zipfile.ZipFile(file) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        fail(name, os.fspath(path), "a .keras model file (a zip archive written by "
             "model.save); this file is not a zip archive: it is damaged or of another kind")
    if damaged is not None or "config.json" not in names:
        fail(name, os.fspath(path), "a .keras model file written by model.save; the archive "
             f"{'is damaged at ' + repr(damaged) if damaged else 'holds no config.json'}")
    return file


# ---------------------------------------------------------------------------- data arrays
def as_arrays(name: str, data) -> list:
    """One array, or a list/tuple/dict of arrays (one per model input), as a list of arrays."""
    import numpy as np

    items = list(data.values()) if isinstance(data, dict) else (
        list(data) if isinstance(data, (list, tuple)) else [data])
    if not items:
        fail(name, data, "an array of samples (or one array per model input)")
    out = []
    for item in items:
        try:
            array = np.asarray(item)
        except (ValueError, TypeError):
            fail(name, summary(item), "an array of samples (or one array per model input)")
        if array.dtype.kind not in "biufc" or array.ndim == 0:
            fail(name, summary(item), "a numeric array with samples first")
        out.append(array)
    return out


class Described(str):
    """A received value shown as-is (not quoted) in an error message."""

    def __repr__(self) -> str:
        return str(self)


def summary(value):
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None:
        return Described(f"<array of shape {tuple(shape)}, {dtype}>")
    if isinstance(value, (int, float, str, type(None))):
        return value
    return Described(f"<{type(value).__name__}>")


def sample_count(name: str, x) -> int:
    """The number of samples in `x`: an array, or a dict of arrays (one per named input)."""
    if isinstance(x, dict):
        if not x:
            fail(name, Described("<(x, y) with x={}>"), "a tuple (x, y) whose x is an array, "
                 "or a dict of arrays keyed by the model's input names; x is an empty dict")
        x = next(iter(x.values()))
    if not hasattr(x, "__len__"):
        fail(name, summary(x), "a tuple (x, y) of arrays with samples first")
    return len(x)


def finite(name: str, data) -> None:
    """Raises unless every float value in `data` (an array or arrays) is finite: NaN or
    infinity in training, calibration or verification data gives a broken model without a
    word, or crashes the converter."""
    import numpy as np

    for k, array in enumerate(as_arrays(name, data)):
        if array.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            first = np.unravel_index(int(np.flatnonzero(bad)[0]), array.shape)
            where = f"input {k}, " if isinstance(data, (list, tuple, dict)) else ""
            fail(name, Described(f"<array of shape {array.shape}, {array.dtype}>"),
                 f"free of NaN and infinite values; found {int(np.isnan(array).sum())} NaN and "
                 f"{int(np.isinf(array).sum())} infinite values (first at {where}sample "
                 f"{first[0]}). Clean or drop those samples")


def finite_weights(name: str, model) -> None:
    """Raises unless every float weight of the Keras `model` is finite: a diverged training or
    damaged weights convert, then every output of the converted model is NaN."""
    import keras
    import numpy as np

    for var in model.weights:
        value = keras.ops.convert_to_numpy(var)
        if value.dtype.kind not in "fc" or np.all(np.isfinite(value)):
            continue
        fail(name, Described(f"<model with non-finite weights in '{var.path}'>"),
             f"a model with finite weights; weight '{var.path}' holds "
             f"{int(np.count_nonzero(~np.isfinite(value)))} NaN or infinite values (a "
             "diverged training, or damaged weights)")


def model_input_shapes(model) -> list[tuple] | None:
    """The input shapes of a Keras model (batch first, None for free dims), or None when the
    model does not declare them (a subclassed model)."""
    try:
        return [tuple(t.shape) for t in model.inputs]
    except (AttributeError, ValueError, TypeError):
        return None


def model_output_shapes(model) -> list[tuple] | None:
    try:
        return [tuple(t.shape) for t in model.outputs]
    except (AttributeError, ValueError, TypeError):
        return None


def matches_inputs(name: str, data, model) -> list:
    """`data` as a list of arrays after checking it has one array per input of the Keras
    `model`, each of the input's shape after the sample axis, as many samples in each."""
    shapes = model_input_shapes(model)
    if isinstance(data, dict) and shapes is not None:  # keyed by input name: model order
        names = [getattr(t, "name", None) for t in model.inputs]
        if set(data) != set(names):
            fail(name, Described(f"<dict with keys {sorted(data)}>"), f"keyed by the model's "
                 f"input names {names}")
        data = [data[n] for n in names]
    return matches_shapes(name, data, shapes)


def matches_shapes(name: str, data, shapes: list | None) -> list:
    """`data` as a list of arrays after checking it against input `shapes` (batch first; the
    first axis and None dims are free; None skips the shape checks): one array per input,
    at least one sample, the same number in each."""
    xs = as_arrays(name, data)
    if shapes is not None and len(xs) != len(shapes):
        fail(name, Described(f"<{len(xs)} arrays>"), f"one array per model input "
             f"({len(shapes)}: shapes {[list(s) for s in shapes]})")
    for k, (x, shape) in enumerate(zip(xs, shapes or [])):
        wrong = x.ndim != len(shape) or any(
            s is not None and s != d for s, d in zip(tuple(shape)[1:], x.shape[1:]))
        if wrong:
            which = f"input {k}'s shape" if len(xs) > 1 else "input shape"
            fail(name, Described(f"<array of shape {x.shape}>"), f"samples of the model's "
                 f"{which} {tuple(shape)} (samples first, the first axis free)")
    counts = {len(x) for x in xs}
    if len(counts) != 1:
        fail(name, Described(f"<arrays of {[len(x) for x in xs]} samples>"),
             "the same number of samples in every input")
    if not counts.pop():
        fail(name, Described("<0 samples>"), "at least one sample")
    return xs


def tflite_input_shapes(info) -> list[tuple]:
    """The input shapes of a .tflite model read back by `tfimp.export.inspect`."""
    return [tuple(info.tensors[i].shape) for i in info.inputs]


def tflite_classes(info) -> int | None:
    """Like `class_count`, for a .tflite model read back by `tfimp.export.inspect`."""
    if len(info.outputs) != 1:
        return None
    shape = info.tensors[info.outputs[0]].shape
    return int(shape[-1]) if shape and shape[-1] > 1 else None


def class_count(model) -> int | None:
    """The number of classes of a single-output classifier (the output's last dimension),
    or None when the model has several outputs or one value per sample."""
    shapes = model_output_shapes(model)
    if not shapes or len(shapes) != 1 or shapes[0][-1] is None or shapes[0][-1] < 2:
        return None
    return int(shapes[0][-1])


def labels(name: str, y, samples: int, classes: int | None, sparse: bool = False):
    """`y` as an array after checking it has `samples` rows, finite values and, when they
    are class indices (integers, or any values with `sparse`), indices in [0, classes)."""
    import numpy as np

    y = as_arrays(name, np.asarray(y) if isinstance(y, (list, tuple)) else y)[0]
    if len(y) != samples:
        fail(name, Described(f"<{len(y)} labels>"), f"one label per sample ({samples})")
    finite(name, y)
    indices = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and classes is not None)
    if classes is None or not indices or not (y.dtype.kind in "iub" or sparse):
        return y
    bad = (y < 0) | (y >= classes) | (np.mod(y, 1) != 0)
    if bad.any():
        fail(name, Described(f"<labels from {y.min()!r} to {y.max()!r}>"), f"class indices "
             f"in [0, {classes}) for a model with {classes} outputs; "
             f"{int(bad.sum())} labels are not (first at sample "
             f"{int(np.flatnonzero(bad.reshape(len(y), -1).any(axis=1))[0])})")
    return y


def sparse_labels(model) -> bool:
    """Whether `model` is compiled with a sparse categorical loss (labels are class indices)."""
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else (
        getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    return "sparse_categorical" in str(name).lower()


def fits_model(name: str, x, y, model) -> None:
    """Checks arrays `(x, y)` against a compiled Keras model: one input array per model
    input with its shape, finite values, one label per sample, and class indices within the
    model's outputs."""
    xs = matches_inputs(name, x, model)
    finite(name, x)
    if y is not None:
        labels(name, y, len(xs[0]), class_count(model), sparse=sparse_labels(model))


# ---------------------------------------------------------------------------- tf.data
_DATASET_MARK = "tfimp-bad-batch"


def checked_dataset(name: str, dataset, classes: int | None = None):
    """`dataset` with every batch checked on the fly: float values finite, and (with
    `classes`) integer labels in [0, classes). A bad batch stops `fit`/`evaluate` with an
    error that `dataset_errors()` turns into a clear one naming `name` and the batch."""
    import tensorflow as tf

    def check(index, batch):
        parts = batch if isinstance(batch, tuple) else (batch,)
        tests = [tf.reduce_all(tf.math.is_finite(t)) for t in tf.nest.flatten(parts[0])
                 if t.dtype.is_floating]
        y = parts[1] if len(parts) > 1 else None
        if y is not None and not isinstance(y, (dict, list, tuple)) and y.dtype.is_floating:
            tests.append(tf.reduce_all(tf.math.is_finite(y)))
        elif classes is not None and y is not None and not isinstance(y, (dict, list, tuple)) \
                and y.dtype.is_integer and (y.shape.rank == 1 or y.shape[-1] == 1):
            tests.append(tf.reduce_all((y >= 0) & (y < classes)))
        if not tests:
            return batch
        ok = tf.reduce_all(tf.stack(tests))
        assertion = tf.debugging.Assert(ok, [f"{_DATASET_MARK}:{name}:", index])
        with tf.control_dependencies([assertion]):
            return tf.nest.map_structure(tf.identity, batch)

    return dataset.enumerate().map(check)


class dataset_errors:  # noqa: N801 - used as a context manager, like contextlib's
    """Turns the error of a batch that `checked_dataset` refused into an
    `InvalidArgumentError` naming the argument and the batch."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or _DATASET_MARK not in str(error):
            return False
        import re

        found = re.search(rf"{_DATASET_MARK}:(\w+):\W*\[?(\d+)", str(error))
        name, batch = (found.group(1), found.group(2)) if found else ("data", "?")
        raise InvalidArgumentError(
            f"Argument `{name}` must hold finite values (and class indices within the model's "
            f"outputs); batch {batch} of the dataset does not. Clean or filter the dataset, "
            f"e.g. dataset.filter(...). Received: {name}=<tf.data.Dataset>") from None


def first_batch_finite(name: str, dataset) -> None:
    """Checks the first batch of a `tf.data.Dataset` of `(x, y)` for NaN and infinity."""
    import tensorflow as tf

    first = next(iter(dataset.take(1)), None)
    if first is None:
        return
    for part in tf.nest.flatten(first):
        array = part.numpy() if hasattr(part, "numpy") else part
        finite(name, array)
