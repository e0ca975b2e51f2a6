"""Datasets by name: the real loader and the offline default that replaces it.

    ds = tfimp.data.get("cifar10")               # real CIFAR-10, or synthetic 32x32x3 offline
    ds = tfimp.data.get("mnist", offline=True)   # scikit-learn digits resized to 28x28
    ds = tfimp.data.get("speech_commands", path="data/speech_commands_v0.02")
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable

from absl import logging

from tfimp._util.validate import fail
from tfimp.data.base import SYNTHETIC_NOTE, Dataset, digits
from tfimp.data.keras_sets import cifar10, fashion_mnist, imdb, mnist
from tfimp.data.speech import speech_commands
from tfimp.data.synthetic import synthetic_images, synthetic_kws, synthetic_text
from tfimp.data.vww import visual_wake_words

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
    if path is not None and (not isinstance(path, (str, os.PathLike)) or not os.path.exists(path)):
        fail("path", path, f"an existing file or folder that holds the real '{name}' data")
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
    logging.warning("Dataset '%s' is unavailable (%s); using the offline default '%s'%s.", name,
                   reason, ds.info["name"], f" ({SYNTHETIC_NOTE})" if ds.info["synthetic"] else "")
    return dataclasses.replace(ds, info={**ds.info, "fallback_reason": reason})
