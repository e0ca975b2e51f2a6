"""The dataset value object, the bundled digits and helpers every loader shares.

Every loader returns `Dataset(x_train, y_train, x_test, y_test, info)`: float32 features (images
scaled to [0, 1]), int64 class labels, and `info` saying where the data came from
(`info["synthetic"]` is True for generated data, with `info["note"]` saying what it is good for).
"""

from __future__ import annotations

import dataclasses

import numpy as np

SYNTHETIC_NOTE = "synthetic data: accuracy is meaningless; sizes and latencies hold"
KWS_WORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
"""The ten keywords of MLPerf Tiny KWS; labels 10 and 11 are silence and unknown."""


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

    @property
    def input_shape(self) -> tuple:
        """Shape of one sample."""
        return tuple(self.x_train.shape[1:])

    def subset(self, num_train: int | None = None, num_test: int | None = None) -> Dataset:
        """The first `num_train` training and `num_test` test samples (None keeps all)."""
        for name, value in (("num_train", num_train), ("num_test", num_test)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(
                    f"Argument `{name}` must be a positive integer or None. Received: "
                    f"{name}={value!r}"
                )
        return Dataset(self.x_train[:num_train], self.y_train[:num_train],
                       self.x_test[:num_test], self.y_test[:num_test], dict(self.info))


def digits(
    size: int = 8, flatten: bool = True, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
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
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    images = images.reshape(len(images), -1) if flatten else images[..., None]
    return Dataset(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        {"name": f"digits{size}", "source": "scikit-learn load_digits (offline)",
         "synthetic": False},
    )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    """Train and test indices, each class split in the same proportion (scikit-learn's)."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Splitting datasets needs scikit-learn: pip install 'tfimp[data]'") from e
    return train_test_split(np.arange(len(labels)), test_size=test_fraction, random_state=seed,
                            stratify=labels)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    out = tf.image.resize(images[..., None], (size, size), method="bilinear")
    return np.asarray(out)[..., 0].astype("float32")


