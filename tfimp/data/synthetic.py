"""Generated stand-ins for datasets that can't be had offline, clearly labelled as such."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfimp.data.base import KWS_WORDS, SYNTHETIC_NOTE, Dataset

# Generated data: learnable (each class has its own pattern), deterministic by seed, small.


def _check_sizes(num_train, num_test, num_classes):
    for name, value in (("num_train", num_train), ("num_test", num_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Argument `{name}` must be a positive integer. Received: {name}={value!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"Argument `num_classes` must be an integer >= 2. Received: "
                         f"num_classes={num_classes!r}")


def _synthetic(x_train, y_train, x_test, y_test, name: str, stands_in_for: str, **info) -> Dataset:
    return Dataset(x_train, y_train, x_test, y_test, {
        "name": name, "source": "generated (offline)", "synthetic": True, "note": SYNTHETIC_NOTE,
        "stands_in_for": stands_in_for, **info})


def synthetic_images(
    shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    num_train: int = 512,
    num_test: int = 128,
    noise: float = 0.25,
    seed: int = 0,
    name: str = "synthetic_images",
    stands_in_for: str = "images",
) -> Dataset:
    """Generated images in [0, 1]: a smooth random pattern per class plus pixel noise.

    Args:
        shape: `(height, width, channels)`.
        num_classes: number of classes.
        num_train: training samples.
        num_test: test samples.
        noise: standard deviation of the per-pixel Gaussian noise.
        seed: seed of the patterns and samples.
        name: `info["name"]`.
        stands_in_for: the real dataset this replaces, for `info`.
    """
    import tensorflow as tf

    _check_sizes(num_train, num_test, num_classes)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"Argument `shape` must be (height, width, channels). Received: {shape!r}")
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.1, 0.9, (num_classes, 4, 4, shape[2])).astype("float32")
    patterns = tf.image.resize(coarse, shape[:2], method="bicubic").numpy()

    def sample(n):
        y = rng.integers(0, num_classes, n)
        shift = rng.uniform(-0.1, 0.1, (n, 1, 1, 1))
        x = patterns[y] + shift + rng.normal(0.0, noise, (n, *shape))
        return np.clip(x, 0.0, 1.0).astype("float32"), y.astype("int64")

    return _synthetic(*sample(num_train), *sample(num_test), name, stands_in_for)


def synthetic_kws(
    num_train: int = 512,
    num_test: int = 128,
    num_classes: int = 12,
    shape: Sequence[int] = (49, 10, 1),
    seed: int = 0,
) -> Dataset:
    """Generated MFCC-like features `(49, 10, 1)`: a per-class time-coefficient pattern, shifted
    in time by up to 3 frames, plus noise.

    Args:
        num_train: training samples.
        num_test: test samples.
        num_classes: number of classes (12 = 10 words + silence + unknown).
        shape: `(frames, coefficients, 1)`.
        seed: seed of the patterns and samples.
    """
    _check_sizes(num_train, num_test, num_classes)
    rng = np.random.default_rng(seed)
    frames, coeffs = shape[0], shape[1]
    coarse = rng.normal(0.0, 1.0, (num_classes, max(frames // 7, 1), coeffs))
    patterns = np.repeat(coarse, -(-frames // coarse.shape[1]), axis=1)[:, :frames]

    def sample(n):
        y = rng.integers(0, num_classes, n)
        x = np.stack([np.roll(patterns[c], rng.integers(-3, 4), axis=0) for c in y])
        x = x + rng.normal(0.0, 0.5, x.shape)
        return x[..., None].astype("float32"), y.astype("int64")

    return _synthetic(*sample(num_train), *sample(num_test), "synthetic_kws", "speech_commands",
                      class_names=list(KWS_WORDS) + ["_silence_", "_unknown_"]
                      if num_classes == 12 else None)


def synthetic_text(
    vocab_size: int = 20000,
    seq_len: int = 200,
    num_classes: int = 2,
    num_train: int = 512,
    num_test: int = 128,
    seed: int = 0,
) -> Dataset:
    """Generated token-id sequences in the Keras IMDB convention (0 pads at the front, 1 starts).

    Most tokens are drawn from a Zipf-like distribution shared by all classes; about 10% are
    marker tokens of the sample's class (at least two per sequence), which is what a
    classifier can learn.

    Args:
        vocab_size: token ids are in [0, vocab_size).
        seq_len: length of every sequence.
        num_classes: number of classes.
        num_train: training samples.
        num_test: test samples.
        seed: seed of the vocabulary split and samples.
    """
    _check_sizes(num_train, num_test, num_classes)
    if not isinstance(vocab_size, int) or vocab_size < 3 + 4 * num_classes + 8:
        raise ValueError(f"Argument `vocab_size` must be an integer >= {3 + 4 * num_classes + 8}. "
                         f"Received: vocab_size={vocab_size!r}")
    if not isinstance(seq_len, int) or seq_len < 4:
        raise ValueError(
            f"Argument `seq_len` must be an integer >= 4. Received: seq_len={seq_len!r}")
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(3, vocab_size))
    per_class = min(20, (vocab_size - 3) // (2 * num_classes))
    markers = ids[: per_class * num_classes].reshape(num_classes, per_class)
    common = ids[per_class * num_classes :]
    weights = 1.0 / np.arange(1, len(common) + 1)
    weights /= weights.sum()

    def sample(n):
        y = rng.integers(0, num_classes, n)
        x = np.zeros((n, seq_len), "int32")
        for i, c in enumerate(y):
            length = rng.integers(max(seq_len // 4, 3), seq_len + 1)
            tokens = rng.choice(common, length - 1, p=weights)
            hits = rng.random(length - 1) < 0.1
            hits[rng.choice(length - 1, 2, replace=False)] = True  # never marker-free
            tokens[hits] = rng.choice(markers[c], hits.sum())
            x[i, seq_len - length :] = np.concatenate([[1], tokens])
        return x, y.astype("int64")

    return _synthetic(*sample(num_train), *sample(num_test), "synthetic_text", "imdb",
                      vocab_size=vocab_size, seq_len=seq_len)


