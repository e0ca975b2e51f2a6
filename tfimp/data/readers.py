"""Safe readers for dataset files: npz/npy without arbitrary pickles, IDX, CIFAR batches."""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

# Reading the Keras datasets' own file formats without running code from the files.

_SAFE_PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; refuses every other global."""

    def find_class(self, module, name):
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to load `{module}.{name}` from a dataset file.")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Reads an .npz archive; object arrays (IMDB's ragged lists) go through a safe unpickler."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                arrays[member[:-4]] = _read_npy(io.BytesIO(archive.read(member)))
    return arrays


def _read_npy(buffer: io.BytesIO) -> np.ndarray:
    try:
        return np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError:
        buffer.seek(0)
        major, _ = np.lib.format.read_magic(buffer)
        # Format 3.0 differs from 2.0 only in the header's text encoding, not its length field.
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        read_header(buffer)
        return _NumpyOnlyUnpickler(buffer).load()


def _require(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"Argument `path` must point to {what}. Received: path='{path}'")
    return path


def _npz_split(path: Path) -> tuple:
    arrays = _load_npz(path)
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks the arrays {sorted(missing)} of a Keras dataset .npz file.")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (the MNIST/Fashion-MNIST format), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    dims = np.frombuffer(data, ">i4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_split(folder: Path) -> tuple:
    found = []
    for stem in _IDX_FILES:
        candidates = [folder / (stem + ".gz"), folder / stem]
        hit = next((c for c in candidates if c.exists()), None)
        if hit is None:
            raise FileNotFoundError(f"{folder} lacks {stem}.gz (an MNIST-format IDX file).")
        found.append(_read_idx(hit))
    return (found[0], found[1]), (found[2], found[3])


