"""Visual Wake Words from a folder of person / non-person images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfimp.data.base import Dataset, stratified_split
from tfimp.data.readers import _require

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
    train_idx, test_idx = stratified_split(y, test_fraction, seed)
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx],
                   {"name": "visual_wake_words", "source": str(root), "synthetic": False,
                    "class_names": ["non_person", "person"]})


