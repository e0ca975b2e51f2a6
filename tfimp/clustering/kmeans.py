"""Zero-preserving weight clustering as pure array functions (Deep Compression's second stage).

The non-zero weights of a tensor (or of each channel) are grouped by one-dimensional k-means
and replaced by their cluster's centroid; zeros, and weights a mask prunes, stay exactly 0 and
count as one of the shared values. Nothing here touches a model.

Example:
>>> w = np.array([0.0, 0.1, 0.12, 0.9, -0.5, 0.0])
>>> cluster_array(w, clusters=4).values  # zero and three shared values
array([ 0.  ,  0.11,  0.11,  0.9 , -0.5 ,  0.  ])
"""

from __future__ import annotations

import dataclasses

import numpy as np

INITS = ("linear", "kmeans++")
_MAX_ITER = 300


@dataclasses.dataclass(frozen=True)
class Clustered:
    """A clustered tensor.

    Attributes:
        values: the weights with each non-zero replaced by its centroid; zeros stay 0.
        segments: per weight its cluster id, unique over channels; -1 for the zeros.
        num_segments: number of cluster ids in use (ids are 0..num_segments-1).
    """

    values: np.ndarray
    segments: np.ndarray
    num_segments: int

    def distinct(self) -> int:
        """Distinct values of the tensor, zero included."""
        return int(np.unique(self.values).size)


def _check_clusters(clusters) -> int:
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 2:
        raise ValueError(f"Argument `clusters` must be an integer >= 2 (the shared values per "
                         f"tensor or channel, zero included). Received: clusters={clusters!r}")
    return clusters


def _initial(values: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    centroids = [values[rng.integers(values.size)]]
    for _ in range(1, k):
        gaps = np.min(np.abs(values[:, None] - np.asarray(centroids)[None, :]), axis=1) ** 2
        total = gaps.sum()
        pick = rng.choice(values.size, p=gaps / total) if total > 0 else rng.integers(values.size)
        centroids.append(values[pick])
    return np.sort(np.asarray(centroids, np.float64))


def kmeans_1d(values: np.ndarray, k: int, init: str = "linear",
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-dimensional k-means (Lloyd's algorithm), deterministic for a seed.

    Args:
        values: the points, any shape (flattened).
        k: number of clusters; at most the number of distinct values.
        init: "linear" (centroids spread evenly between min and max, Deep Compression's best
            choice) or "kmeans++" (seeded).
        seed: seed of "kmeans++".

    Returns:
        `(centroids, labels)`: sorted centroids (clusters left empty are dropped) and each
        point's cluster index.
    """
    if init not in INITS:
        raise ValueError(f"Argument `init` must be one of {list(INITS)}. Received: init={init!r}")
    points = np.asarray(values, np.float64).reshape(-1)
    distinct = np.unique(points)
    if k >= distinct.size:
        return distinct, np.searchsorted(distinct, points)
    centroids = _initial(points, k, init, np.random.default_rng(seed))
    for _ in range(_MAX_ITER):
        labels = _assign(points, centroids)
        sums = np.bincount(labels, points, minlength=centroids.size)
        counts = np.bincount(labels, minlength=centroids.size)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if not counts.all():
            updated = _reseed_empty(points, updated, labels, counts)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    labels = _assign(points, centroids)
    used = np.unique(labels)
    order = used[np.argsort(centroids[used], kind="stable")]
    remap = np.full(centroids.size, -1)
    remap[order] = np.arange(order.size)
    return centroids[order], remap[labels]


def _reseed_empty(points, centroids, labels, counts) -> np.ndarray:
    """Moves each empty cluster onto the point farthest from its centroid, so none is lost."""
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return centroids
    far = np.argsort(-np.abs(points - centroids[labels]), kind="stable")
    taken = set(centroids.tolist())
    out = centroids.copy()
    picks = (points[i] for i in far if points[i] not in taken)
    for c, value in zip(empty, picks):
        out[c] = value
        taken.add(value)
    return out


def _assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid of each point (centroids sorted)."""
    order = np.argsort(centroids, kind="stable")
    sorted_c = centroids[order]
    edges = (sorted_c[1:] + sorted_c[:-1]) / 2.0
    return order[np.searchsorted(edges, points)]


def _channel_view(array: np.ndarray, per_channel: bool, axis: int) -> np.ndarray:
    """The tensor as (channels, elements per channel)."""
    if not per_channel:
        return array.reshape(1, -1)
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def cluster_array(weights: np.ndarray, clusters: int, mask: np.ndarray | None = None,
                  per_channel: bool = False, axis: int = -1, init: str = "linear",
                  seed: int = 0) -> Clustered:
    """Clusters a weight tensor to at most `clusters` values (per channel), zero kept.

    The zeros, and the weights where `mask` is 0, become exactly 0 and form one of the
    `clusters` values whenever the tensor (channel) has any; k-means shares the others. A
    channel that already holds no more distinct values than it may keep is left as it is.

    Args:
        weights: the tensor.
        clusters: shared values per tensor (per channel with `per_channel`), zero included.
        mask: 0/1 array of the weights' shape; 0 prunes a weight (it becomes 0).
        per_channel: cluster each slice along `axis` on its own.
        axis: the channel axis (Keras kernels: the last).
        init: "linear" or "kmeans++" (see `kmeans_1d`).
        seed: seed of "kmeans++".

    Raises:
        ValueError: `clusters` is not an integer >= 2, the mask's shape differs, or the
            tensor has fewer distinct non-zero values than `clusters` asks to share.
    """
    clusters = _check_clusters(clusters)
    weights = np.asarray(weights)
    keep = weights != 0
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != weights.shape:
            raise ValueError(f"Argument `mask` must have the weights' shape {weights.shape}. "
                             f"Received: mask of shape {mask.shape}")
        keep &= mask != 0
    nonzero = np.unique(weights[keep])
    wanted = clusters - 1 if not keep.all() else clusters
    if nonzero.size < wanted:
        raise ValueError(f"Argument `clusters` asks for {clusters} shared values, but the tensor "
                         f"{weights.shape} holds only {nonzero.size} distinct non-zero values"
                         f"{' and zero' if not keep.all() else ''}. Use clusters <= "
                         f"{nonzero.size + (not keep.all())}.")
    channels = _channel_view(weights, per_channel, axis)
    kept = _channel_view(keep, per_channel, axis)
    out = np.zeros(channels.shape, weights.dtype)
    segments = np.full(channels.shape, -1, np.int32)
    used = 0
    for c in range(channels.shape[0]):
        k = clusters - 1 if not kept[c].all() else clusters
        if not kept[c].any():
            continue
        centroids, labels = kmeans_1d(channels[c][kept[c]], k, init, seed)
        out[c][kept[c]] = centroids[labels].astype(weights.dtype)
        segments[c][kept[c]] = labels + used
        used += centroids.size
    return Clustered(_restore(out, weights.shape, per_channel, axis),
                     _restore(segments, weights.shape, per_channel, axis), used)


def _restore(view: np.ndarray, shape: tuple, per_channel: bool, axis: int) -> np.ndarray:
    if not per_channel:
        return view.reshape(shape)
    moved = np.moveaxis(np.empty(shape, dtype=np.int8), axis, 0).shape
    return np.moveaxis(view.reshape(moved), 0, axis)


def shared_values(values: np.ndarray, segments: np.ndarray, num_segments: int) -> np.ndarray:
    """Each cluster's mean over `values`, written back to all its members; zeros stay 0.

    This is the update that keeps weights shared while they train: after an optimizer step,
    every member of a cluster takes the cluster's mean (a centroid update, as Deep
    Compression's summed gradients, scaled by the cluster's size).
    """
    flat, ids = np.asarray(values).reshape(-1), np.asarray(segments).reshape(-1)
    inside = ids >= 0
    sums = np.bincount(ids[inside], flat[inside], minlength=num_segments)
    counts = np.bincount(ids[inside], minlength=num_segments)
    means = sums / np.maximum(counts, 1)
    out = np.zeros_like(flat)
    out[inside] = means[ids[inside]]
    return out.reshape(np.shape(values))
