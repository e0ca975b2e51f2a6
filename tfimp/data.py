"""Datasets: real loaders plus offline defaults that need no network.

Every loader returns `Dataset(x_train, y_train, x_test, y_test, info)`: float32 features (images
scaled to [0, 1]), int64 class labels, and `info` saying where the data came from
(`info["synthetic"]` is True for generated data, with `info["note"]` saying what it is good for).

Real loaders read the Keras datasets (downloaded by `keras.datasets` when `path` is None, or read
from the same files on disk: `mnist.npz`, the Fashion-MNIST IDX `.gz` files, the CIFAR-10 python
batches, `imdb.npz`), Speech Commands and Visual Wake Words from a folder. `get(name)` tries the
real data and falls back to an offline default when it can't be had:

    ds = tfimp.data.get("cifar10")               # real CIFAR-10, or synthetic 32x32x3 offline
    ds = tfimp.data.get("mnist", offline=True)   # scikit-learn digits resized to 28x28
    ds = tfimp.data.get("speech_commands", path="data/speech_commands_v0.02")
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import inspect
import io
import logging
import pickle
import re
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tfimp.audio import MfccConfig, fit_clip, read_wav

logger = logging.getLogger(__name__)

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
    train_idx, test_idx = _stratified_split(labels, test_fraction, seed)
    images = images.reshape(len(images), -1) if flatten else images[..., None]
    return Dataset(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        {"name": f"digits{size}", "source": "scikit-learn load_digits (offline)",
         "synthetic": False},
    )


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(labels), bool)
    test_mask[test_idx] = True
    return rng.permutation(np.flatnonzero(~test_mask)), np.flatnonzero(test_mask)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    out = tf.image.resize(images[..., None], (size, size), method="bilinear")
    return np.asarray(out)[..., 0].astype("float32")


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Speech Commands (keyword spotting) from a folder.


def _speaker_bucket(relative: str) -> int:
    """Which percent bucket a clip falls into, by speaker, so a speaker stays in one split."""
    speaker = re.sub(r"_nohash_.*$", "", Path(relative).name)
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 100


def _kws_split_of(relative: str, testing: set | None, validation: set | None) -> str:
    if testing is not None:
        return "test" if relative in testing else (
            "validation" if validation and relative in validation else "train")
    bucket = _speaker_bucket(relative)
    return "validation" if bucket < 10 else "test" if bucket < 20 else "train"


def _read_list(path: Path) -> set | None:
    return set(path.read_text().split()) if path.exists() else None


def _kws_files(root: Path, words: Sequence[str]) -> dict[str, list[tuple[Path, int]]]:
    """Clips per split with labels: word index, or len(words) + 1 for an unknown word."""
    testing = _read_list(root / "testing_list.txt")
    validation = _read_list(root / "validation_list.txt")
    splits: dict[str, list] = {"train": [], "test": [], "validation": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        label = words.index(folder.name) if folder.name in words else len(words) + 1
        for wav in sorted(folder.glob("*.wav")):
            relative = f"{folder.name}/{wav.name}"
            splits[_kws_split_of(relative, testing, validation)].append((wav, label))
    return splits


def _kws_split(files, background, words, config, fractions, rng) -> tuple:
    silence_fraction, unknown_fraction = fractions
    known = [f for f in files if f[1] < len(words)]
    unknown = [f for f in files if f[1] == len(words) + 1]
    n_unknown = min(len(unknown), int(round(unknown_fraction * len(known))))
    picked = known + [unknown[i] for i in rng.choice(len(unknown), n_unknown, replace=False)]
    n = config.clip_samples
    clips = [fit_clip(_read_rate(path, config.sample_rate), n) for path, _ in picked]
    n_silence = int(round(silence_fraction * len(known)))
    clips += [_silence_clip(background, n, rng) for _ in range(n_silence)]
    labels = [label for _, label in picked] + [len(words)] * n_silence
    order = rng.permutation(len(clips))
    waves = np.stack(clips) if clips else np.zeros((0, n), "float32")
    return config(waves[order]), np.asarray(labels, "int64")[order]


def _read_rate(path: Path, sample_rate: int) -> np.ndarray:
    samples, rate = read_wav(path)
    if rate != sample_rate:
        raise ValueError(f"{path} is sampled at {rate} Hz; the front end expects {sample_rate} Hz.")
    return samples


def _silence_clip(background: list[np.ndarray], n: int, rng) -> np.ndarray:
    """Silence: a random stretch of background noise at a random volume (zeros without noise)."""
    if not background:
        return np.zeros(n, "float32")
    noise = background[rng.integers(len(background))]
    start = rng.integers(0, max(len(noise) - n, 0) + 1)
    clip = np.pad(noise[start : start + n], (0, max(n - len(noise), 0)))
    return (clip * rng.uniform(0.0, 1.0)).astype("float32")


def speech_commands(
    path: str | Path,
    words: Sequence[str] = KWS_WORDS,
    silence_fraction: float = 0.1,
    unknown_fraction: float = 0.1,
    front_end: MfccConfig | None = None,
    seed: int = 0,
) -> Dataset:
    """Speech Commands from its folder, as MFCC features (MLPerf Tiny KWS: `(49, 10, 1)`).

    The folder holds one sub-folder of 16 kHz WAV clips per word, optionally
    `_background_noise_/` and the `testing_list.txt` / `validation_list.txt` of the official
    release (without them, clips are split by a hash of the speaker: 10% validation, 10% test).
    Labels: the index of the word in `words`, then silence, then unknown (any other word). Each
    split gets `silence_fraction` and `unknown_fraction` times its number of keyword clips of
    silence (background noise) and unknown-word clips. The validation clips are left out.

    Args:
        path: the dataset folder.
        words: the keywords, in label order.
        silence_fraction: silence clips per keyword clip.
        unknown_fraction: unknown-word clips per keyword clip.
        front_end: the MFCC settings; MLPerf Tiny's by default.
        seed: seed of the silence/unknown sampling and of the shuffling.
    """
    root = _require(path, "a Speech Commands folder (one folder of WAV clips per word)")
    for name, value in (("silence_fraction", silence_fraction),
                        ("unknown_fraction", unknown_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"Argument `{name}` must be in [0, 1]. Received: {name}={value!r}")
    words = list(words)
    missing = [w for w in words if not (root / w).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} has no folder for the words {missing}.")
    config = front_end or MfccConfig()
    rng = np.random.default_rng(seed)
    background = [_read_rate(p, config.sample_rate)
                  for p in sorted((root / "_background_noise_").glob("*.wav"))]
    splits = _kws_files(root, words)
    fractions = (silence_fraction, unknown_fraction)
    x_train, y_train = _kws_split(splits["train"], background, words, config, fractions, rng)
    x_test, y_test = _kws_split(splits["test"], background, words, config, fractions, rng)
    return Dataset(x_train, y_train, x_test, y_test, {
        "name": "speech_commands", "source": str(root), "synthetic": False,
        "class_names": words + ["_silence_", "_unknown_"], "front_end": config.get_config(),
    })


# ---------------------------------------------------------------------------------------------
# Visual Wake Words from a folder.


def visual_wake_words(
    path: str | Path, size: int = 96, test_fraction: float = 0.1, seed: int = 0
) -> Dataset:
    """Visual Wake Words images from a folder with `non_person/` and `person/` sub-folders
    (labels 0 and 1, as MLPerf Tiny's `vw_coco2014_96`), resized to `(size, size, 3)` in [0, 1].

    Args:
        path: the folder.
        size: output height and width.
        test_fraction: fraction held out, stratified by class.
        seed: seed of the split.
    """
    import tensorflow as tf

    root = _require(path, "a folder with person/ and non_person/ image folders")
    images, labels = [], []
    for label, cls in enumerate(("non_person", "person")):
        files = sorted(f for f in (root / cls).glob("*")
                       if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".gif"))
        if not files:
            raise FileNotFoundError(f"{root / cls} holds no images.")
        for f in files:
            image = tf.io.decode_image(f.read_bytes(), channels=3, expand_animations=False)
            images.append(tf.image.resize(image, (size, size)).numpy() / 255.0)
            labels.append(label)
    x, y = np.stack(images).astype("float32"), np.asarray(labels, "int64")
    train_idx, test_idx = _stratified_split(y, test_fraction, seed)
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx],
                   {"name": "visual_wake_words", "source": str(root), "synthetic": False,
                    "class_names": ["non_person", "person"]})


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# The registry.


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name: its real loader and the offline default that replaces it.

    Args:
        real: loads the real data (`path=None` downloads it where that is possible).
        offline: builds the offline default (bundled or generated data).
        needs_path: the real data comes only from a folder the user supplies.
        description: one line for listings.
    """

    real: Callable[..., Dataset]
    offline: Callable[..., Dataset]
    needs_path: bool = False
    description: str = ""

    def __post_init__(self):
        if not (callable(self.real) and callable(self.offline)):
            raise TypeError("Arguments `real` and `offline` must be callables returning a Dataset.")


def _digits_for(stands_in_for: str) -> Callable[..., Dataset]:
    def load(flatten: bool = False, seed: int = 0) -> Dataset:
        ds = digits(size=28, flatten=flatten, seed=seed)
        ds.info.update(stands_in_for=stands_in_for,
                       note="scikit-learn digits resized to 28x28, offline; accuracy is not "
                            f"comparable with {stands_in_for}")
        return ds

    return load


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(digits, digits, description="scikit-learn 8x8 digits (bundled)"),
    "mnist": DatasetSpec(mnist, _digits_for("mnist"), description="MNIST 28x28x1, 10 classes"),
    "fashion_mnist": DatasetSpec(fashion_mnist, _digits_for("fashion_mnist"),
                                 description="Fashion-MNIST 28x28x1, 10 classes"),
    "cifar10": DatasetSpec(cifar10, functools.partial(
        synthetic_images, (32, 32, 3), 10, name="synthetic_cifar10", stands_in_for="cifar10"),
        description="CIFAR-10 32x32x3, 10 classes"),
    "imdb": DatasetSpec(imdb, synthetic_text, description="IMDB reviews as token ids, 2 classes"),
    "speech_commands": DatasetSpec(speech_commands, synthetic_kws, needs_path=True,
                                   description="Speech Commands as 49x10x1 MFCCs, 12 classes"),
    "vww": DatasetSpec(visual_wake_words, functools.partial(
        synthetic_images, (96, 96, 3), 2, name="synthetic_vww", stands_in_for="vww"),
        needs_path=True, description="Visual Wake Words 96x96x3, 2 classes"),
}


def _accepted(fn: Callable, kwargs: dict) -> dict:
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def _is_download_error(error: Exception) -> bool:
    # keras.utils.get_file reports a failed download as a bare Exception("URL fetch failure ...").
    return isinstance(error, OSError) or type(error) is Exception


def get(name: str, offline: bool | None = None, **kwargs) -> Dataset:
    """Loads dataset `name`: the real data, or its offline default.

    Keyword arguments go to whichever loader runs, each taking those it knows (e.g. `path`
    and `vocab_size` for `imdb`, `num_train` for generated data).

    Args:
        name: a key of `DATASETS`.
        offline: None tries the real data and falls back to the offline default, with a
            logged warning, when it can't be downloaded (or, for folder-only datasets, when no
            `path` is given); True uses the offline default; False insists on the real data.
        **kwargs: loader arguments.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Argument `name` must be one of {sorted(DATASETS)}. Received: name={name!r}")
    if offline not in (None, True, False):
        raise ValueError(
            f"Argument `offline` must be None, True or False. Received: offline={offline!r}")
    spec = DATASETS[name]
    real_kw, offline_kw = _accepted(spec.real, kwargs), _accepted(spec.offline, kwargs)
    unknown = set(kwargs) - set(real_kw) - set(offline_kw)
    if unknown:
        valid = sorted(set(inspect.signature(spec.real).parameters)
                       | set(inspect.signature(spec.offline).parameters))
        raise TypeError(f"Unknown arguments {sorted(unknown)} for dataset '{name}'; valid: {valid}")
    path = kwargs.get("path")
    if offline is True:
        if path is not None:
            raise ValueError(f"Argument `path` reads the real '{name}' data; drop it or pass "
                             f"offline=None. Received: path={path!r}, offline=True")
        return spec.offline(**offline_kw)
    if spec.needs_path and path is None:
        if offline is False:
            raise ValueError(f"Dataset '{name}' can't be downloaded; pass path=FOLDER. "
                             "Received: path=None, offline=False")
        return _fallback(name, spec, offline_kw, "no `path` was given")
    try:
        return spec.real(**real_kw)
    except Exception as error:
        if offline is False or path is not None or not _is_download_error(error):
            raise
        return _fallback(name, spec, offline_kw, f"{type(error).__name__}: {error}")


def _fallback(name: str, spec: DatasetSpec, kwargs: dict, reason: str) -> Dataset:
    ds = spec.offline(**kwargs)
    logger.warning("Dataset '%s' is unavailable (%s); using the offline default '%s'%s.", name,
                   reason, ds.info["name"], f" ({SYNTHETIC_NOTE})" if ds.info["synthetic"] else "")
    return dataclasses.replace(ds, info={**ds.info, "fallback_reason": reason})
