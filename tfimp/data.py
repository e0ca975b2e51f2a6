"""Datasets: real loaders plus offline defaults that need no network.

Every loader returns `Dataset(x_train, y_train, x_test, y_test, info)`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split of numpy arrays plus a description of where it came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def digits(size: int = 8, flatten: bool = True, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images), offline.

    Args:
        size: 8 keeps the native 8x8 images; 28 resizes them bilinearly to MNIST's 28x28.
        flatten: return `(n, size*size)` vectors instead of `(n, size, size, 1)` images.
        test_fraction: fraction of samples held out, stratified by class.
        seed: seed of the split.
    """
    if size not in (8, 28):
        raise ValueError(f"Argument `size` must be 8 or 28. Received: size={size}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"Argument `test_fraction` must be in (0, 1). Received: test_fraction={test_fraction}"
        )
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The offline digits data needs scikit-learn: pip install 'tfimp[data]'"
        ) from e
    bunch = load_digits()
    images = (bunch.images / 16.0).astype("float32")
    labels = bunch.target.astype("int64")
    if size == 28:
        images = _resize(images, 28)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(labels), bool)
    test_mask[test_idx] = True
    train_order = rng.permutation(np.flatnonzero(~test_mask))
    test_order = np.flatnonzero(test_mask)
    images = images.reshape(len(images), -1) if flatten else images[..., None]
    return Dataset(
        images[train_order],
        labels[train_order],
        images[test_order],
        labels[test_order],
        {"name": f"digits{size}", "source": "scikit-learn load_digits (offline)", "synthetic": False},
    )


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    out = tf.image.resize(images[..., None], (size, size), method="bilinear")
    return np.asarray(out)[..., 0].astype("float32")
