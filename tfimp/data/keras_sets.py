"""The Keras datasets (MNIST, Fashion-MNIST, CIFAR-10, IMDB): downloaded by `keras.datasets`
when `path` is None, or read from the same files on disk."""

from __future__ import annotations

import functools
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tfimp.data.base import Dataset
from tfimp.data.readers import _idx_split, _npz_split, _NumpyOnlyUnpickler, _require

# Real datasets.


def _image_dataset(train, test, name: str, source: str, flatten: bool = False) -> Dataset:
    (x_train, y_train), (x_test, y_test) = train, test

    def prep(x):
        x = np.asarray(x, dtype="float32") / 255.0
        if x.ndim == 3:
            x = x[..., None]
        return x.reshape(len(x), -1) if flatten else x

    return Dataset(prep(x_train), np.asarray(y_train, "int64").reshape(-1),
                   prep(x_test), np.asarray(y_test, "int64").reshape(-1),
                   {"name": name, "source": source, "synthetic": False})


def mnist(path: str | Path | None = None, flatten: bool = False) -> Dataset:
    """MNIST: 60,000 + 10,000 handwritten digits, `(28, 28, 1)` in [0, 1].

    Args:
        path: a Keras `mnist.npz`; None downloads it with `keras.datasets.mnist`.
        flatten: return `(n, 784)` vectors.
    """
    if path is None:
        import keras

        train, test = keras.datasets.mnist.load_data()
        source = "keras.datasets.mnist"
    else:
        train, test = _npz_split(_require(path, "a Keras mnist.npz file"))
        source = str(path)
    return _image_dataset(train, test, "mnist", source, flatten)


def fashion_mnist(path: str | Path | None = None, flatten: bool = False) -> Dataset:
    """Fashion-MNIST: 60,000 + 10,000 clothing images, `(28, 28, 1)` in [0, 1].

    Args:
        path: a folder with the four IDX files that Keras downloads
            (`train-images-idx3-ubyte.gz`, ...) or an `.npz` like mnist.npz; None downloads
            with `keras.datasets.fashion_mnist`.
        flatten: return `(n, 784)` vectors.
    """
    if path is None:
        import keras

        train, test = keras.datasets.fashion_mnist.load_data()
        source = "keras.datasets.fashion_mnist"
    else:
        path = _require(path, "the Fashion-MNIST IDX folder or an .npz file")
        train, test = _npz_split(path) if path.suffix == ".npz" else _idx_split(path)
        source = str(path)
    return _image_dataset(train, test, "fashion_mnist", source, flatten)


def _cifar_batches(path: Path) -> dict[str, Callable[[], bytes]]:
    """Maps batch names (data_batch_1, ..., test_batch) to readers, from a folder or tar.gz."""
    if path.is_file():
        archive = tarfile.open(path, "r:*")
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        return {k: functools.partial(lambda m: archive.extractfile(m).read(), v)
                for k, v in members.items() if k.startswith(("data_batch_", "test_batch"))}
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    return {p.name: p.read_bytes for p in path.iterdir()
            if p.name.startswith(("data_batch_", "test_batch"))}


def _read_cifar_batch(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    images = np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch["labels"], "int64")


def _cifar_split(path: Path) -> tuple:
    batches = _cifar_batches(path)
    train_names = sorted((n for n in batches if n.startswith("data_batch_")),
                         key=lambda n: int(n.rsplit("_", 1)[1]))
    if not train_names or "test_batch" not in batches:
        raise FileNotFoundError(
            f"{path} holds no CIFAR-10 python batches (data_batch_N and test_batch)."
        )
    train = [_read_cifar_batch(batches[n]()) for n in train_names]
    x_test, y_test = _read_cifar_batch(batches["test_batch"]())
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])), (
        x_test, y_test)


def cifar10(path: str | Path | None = None) -> Dataset:
    """CIFAR-10: 50,000 + 10,000 color images, `(32, 32, 3)` in [0, 1], 10 classes.

    Args:
        path: the python-version batches: the `cifar-10-python.tar.gz` archive, the
            `cifar-10-batches-py` folder or its parent; None downloads with
            `keras.datasets.cifar10`.
    """
    if path is None:
        import keras

        train, test = keras.datasets.cifar10.load_data()
        source = "keras.datasets.cifar10"
    else:
        train, test = _cifar_split(_require(path, "the CIFAR-10 python batches"))
        source = str(path)
    return _image_dataset(train, test, "cifar10", source)


def _imdb_like_keras(x_train, y_train, x_test, y_test, vocab_size: int, seed: int = 113):
    """The transformation of `keras.datasets.imdb.load_data` on the raw file (its defaults:
    shuffle with seed 113, start token 1, out-of-vocabulary token 2, ids shifted by 3)."""
    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, y_train = x_train[order], y_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, y_test = x_test[order], y_test[order]

    def encode(seq):
        ids = [1] + [int(w) + 3 for w in seq]
        return [w if w < vocab_size else 2 for w in ids]

    return [encode(s) for s in x_train], y_train, [encode(s) for s in x_test], y_test


def imdb(path: str | Path | None = None, vocab_size: int = 20000, seq_len: int = 200) -> Dataset:
    """IMDB movie reviews (25,000 + 25,000), sentiment labels, as padded token-id sequences.

    Token ids follow `keras.datasets.imdb`: 0 pads, 1 starts a review, 2 is out of vocabulary;
    sequences are padded and cut at the front to `seq_len` (Keras `pad_sequences` defaults).

    Args:
        path: a Keras `imdb.npz`; None downloads with `keras.datasets.imdb`.
        vocab_size: ids >= vocab_size become 2 (Keras' `num_words`).
        seq_len: length of every returned sequence.
    """
    import keras

    for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 4:
            raise ValueError(
                f"Argument `{name}` must be an integer >= 4. Received: {name}={value!r}")
    if path is None:
        (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=vocab_size)
        source = "keras.datasets.imdb"
    else:
        (x_train, y_train), (x_test, y_test) = _npz_split(_require(path, "a Keras imdb.npz file"))
        x_train, y_train, x_test, y_test = _imdb_like_keras(
            x_train, y_train, x_test, y_test, vocab_size)
        source = str(path)

    def pad(seqs):
        return keras.utils.pad_sequences(list(seqs), maxlen=seq_len).astype("int32")

    return Dataset(pad(x_train), np.asarray(y_train, "int64"), pad(x_test),
                   np.asarray(y_test, "int64"),
                   {"name": "imdb", "source": source, "synthetic": False,
                    "vocab_size": vocab_size, "seq_len": seq_len})


