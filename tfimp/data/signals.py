"""MNIST-1D (Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024).

Ten 1-D digit templates, padded, scaled, translated, sheared and noised into 40-sample signals:
harder than scikit-learn's digits, yet small enough to train in seconds. The `mnist1d` package
generates the data offline from its templates; its standard arguments (seed 42) give the
standard 4,000 / 1,000 split, so nothing is downloaded (its `get_dataset` would download).
"""

from __future__ import annotations

import functools
import random

import numpy as np

from tfimp._util.validate import flag, integer
from tfimp.data.base import Dataset

STANDARD_SEED = 42
"""The seed of the package's standard arguments, which give the standard split."""


def mnist1d(flatten: bool = False, seed: int = STANDARD_SEED) -> Dataset:
    """MNIST-1D: 4,000 + 1,000 signals of 40 samples, 10 classes, generated offline.

    The signals are standardized over the whole set (mean 0, standard deviation 1), as the
    generator returns them; generated once per seed and process, then served from memory.

    Args:
        flatten: return `(n, 40)` vectors instead of `(n, 40, 1)` sequences.
        seed: the generator's seed; 42 (the default) gives the standard dataset.

    Raises:
        ImportError: the `mnist1d` package is not installed; the message names the fix.
    """
    integer("seed", seed, 0)
    flag("flatten", flatten)
    x_train, y_train, x_test, y_test = _generate(seed)
    shape = (-1, 40) if flatten else (-1, 40, 1)
    info = {"name": "mnist1d", "synthetic": False,
            "source": f"mnist1d.data.make_dataset, standard arguments, seed {seed} (offline)"}
    if seed != STANDARD_SEED:
        info["note"] = f"generated with seed {seed}, not the standard MNIST-1D split (seed 42)"
    # Copies: the cached arrays stay as generated whatever the caller does with these.
    return Dataset(x_train.reshape(shape).copy(), y_train.copy(), x_test.reshape(shape).copy(),
                   y_test.copy(), info)


@functools.lru_cache(maxsize=4)
def _generate(seed: int) -> tuple[np.ndarray, ...]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise ImportError("The MNIST-1D data needs the `mnist1d` package: pip install mnist1d "
                          "(or pip install 'tfimp[mnist1d]')") from e
    args = get_dataset_args()
    args.seed = seed
    # make_dataset seeds the global `random` and numpy generators; the caller's stay as they were.
    state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(state)
        np.random.set_state(np_state)
    arrays = (np.asarray(data["x"], "float32"), np.asarray(data["y"], "int64"),
              np.asarray(data["x_test"], "float32"), np.asarray(data["y_test"], "int64"))
    for a in arrays:
        a.flags.writeable = False
    return arrays
