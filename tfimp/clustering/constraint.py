"""`ClusterConstraint`: keeps clustered weights shared while they train.

Keras optimizers apply a variable's constraint after every update, so with this constraint
every member of a cluster takes the cluster's mean after each step (the centroids train, the
sharing stays exact) and the zero cluster stays exactly 0, in `fit` and in custom loops, with
any optimizer.
"""

from __future__ import annotations

import base64
import zlib

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="tfimp")
class ClusterConstraint(keras.constraints.Constraint):
    """Replaces each weight by the mean of its cluster after the weight's own constraint.

    Args:
        segments: per weight its cluster id (0..num_segments-1), -1 for the weights that stay 0.
        num_segments: number of cluster ids.
        base: the weight's own constraint, applied first.
    """

    def __init__(self, segments, num_segments: int, base=None):
        self.segments = np.asarray(segments, np.int32)
        self.num_segments = int(num_segments)
        if self.segments.size and (self.segments.max() >= self.num_segments
                                   or self.segments.min() < -1):
            raise ValueError(f"Argument `segments` must hold ids in -1..{self.num_segments - 1}. "
                             f"Received ids from {self.segments.min()} to {self.segments.max()}")
        self.base = base
        ids = self.segments.reshape(-1)
        # The zeros go to one extra segment whose value is forced to 0.
        self._ids = np.where(ids < 0, self.num_segments, ids).astype(np.int32)
        counts = np.bincount(self._ids, minlength=self.num_segments + 1).astype(np.float64)
        self._scale = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
        self._scale[self.num_segments] = 0.0

    def __call__(self, w):
        if self.base is not None:
            w = self.base(w)
        ops = keras.ops
        flat = ops.reshape(w, (-1,))
        ids = ops.convert_to_tensor(self._ids)
        sums = ops.segment_sum(flat, ids, num_segments=self.num_segments + 1)
        means = sums * ops.cast(ops.convert_to_tensor(self._scale), flat.dtype)
        return ops.reshape(ops.take(means, ids), ops.shape(w))

    def get_config(self):
        ids = self.segments.astype(np.int32)
        packed = base64.b64encode(zlib.compress(ids.tobytes(), 9)).decode("ascii")
        return {"segments": {"shape": list(ids.shape), "int32_zlib_b64": packed},
                "num_segments": self.num_segments,
                "base": keras.constraints.serialize(self.base) if self.base else None}

    @classmethod
    def from_config(cls, config):
        seg = config["segments"]
        if isinstance(seg, dict):
            raw = zlib.decompress(base64.b64decode(seg["int32_zlib_b64"]))
            seg = np.frombuffer(raw, np.int32).reshape(seg["shape"])
        base = config.get("base")
        return cls(seg, config["num_segments"],
                   keras.constraints.deserialize(base) if base else None)
