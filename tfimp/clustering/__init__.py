"""Zero-preserving weight clustering: a few shared values per tensor, zeros kept exactly.

`cluster(model, clusters=16)` returns a clustered copy whose weights keep their sharing while
they fine-tune (`ClusterConstraint`); TFLite Micro then stores them as LUT indices of 2-4 bits
(`tfimp.export.to_micro(..., compression="auto")`). The array functions (`cluster_array`,
`kmeans_1d`, `shared_values`) never touch a model, and importing them does not load Keras.
"""

import importlib

_LAZY = {
    "ClusterConstraint": "tfimp.clustering.constraint",
    "cluster": "tfimp.clustering.engine",
    "keep_shared": "tfimp.clustering.engine",
    "shared_values_per_tensor": "tfimp.clustering.engine",
    "stop_sharing": "tfimp.clustering.engine",
    "Clustered": "tfimp.clustering.kmeans",
    "cluster_array": "tfimp.clustering.kmeans",
    "kmeans_1d": "tfimp.clustering.kmeans",
    "shared_values": "tfimp.clustering.kmeans",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfimp.clustering' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
