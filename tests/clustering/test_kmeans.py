"""Zero-preserving clustering on toy arrays: exact zeros, shared values, determinism."""

import numpy as np
import pytest

from tfimp.clustering.kmeans import cluster_array, kmeans_1d, shared_values


def test_kmeans_on_exact_toy_points():
    centroids, labels = kmeans_1d(np.arange(10.0), 3)
    np.testing.assert_allclose(centroids, [1.0, 4.5, 8.0])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2])


def test_every_cluster_is_used_even_with_outliers():
    points = np.concatenate([np.linspace(-0.01, 0.01, 200), [5.0, -7.0]])
    centroids, labels = kmeans_1d(points, 6)
    assert centroids.size == 6 and np.all(np.diff(centroids) > 0)
    assert set(labels) == set(range(6))


def test_zero_is_kept_and_counts_as_a_value():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 8))
    w[rng.random(w.shape) < 0.6] = 0.0
    out = cluster_array(w, clusters=4)
    assert np.array_equal(out.values == 0, w == 0)
    assert np.unique(out.values).size == 4 and out.num_segments == 3
    assert np.all(out.segments[w == 0] == -1) and np.all(out.segments[w != 0] >= 0)


def test_mask_prunes_and_nothing_revives():
    w = np.arange(1.0, 13.0).reshape(3, 4)
    mask = (np.arange(12).reshape(3, 4) % 3 != 0).astype(np.float32)
    out = cluster_array(w, clusters=3, mask=mask)
    assert np.all(out.values[mask == 0] == 0) and np.all(out.values[mask == 1] != 0)


def test_per_channel_clusters_each_output_channel():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((30, 5)) * np.array([0.01, 0.1, 1.0, 10.0, 100.0])
    out = cluster_array(w, clusters=3, per_channel=True)
    for c in range(5):
        assert np.unique(out.values[:, c]).size == 3
    assert out.num_segments == 15
    tensor = cluster_array(w, clusters=3)
    assert np.unique(tensor.values).size == 3


def test_deterministic_for_a_seed_and_input_untouched():
    rng = np.random.default_rng(2)
    w = rng.standard_normal(500)
    copy = w.copy()
    a = cluster_array(w, 8, init="kmeans++", seed=7).values
    b = cluster_array(w, 8, init="kmeans++", seed=7).values
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(w, copy)


def test_shared_values_is_the_cluster_mean_and_keeps_zeros():
    values = np.array([1.0, 3.0, 0.5, 10.0, 12.0])
    segments = np.array([0, 0, -1, 1, 1])
    np.testing.assert_allclose(shared_values(values, segments, 2), [2.0, 2.0, 0.0, 11.0, 11.0])


def test_too_many_clusters_and_bad_arguments():
    w = np.array([0.0, 1.0, 2.0, 2.0, 3.0])
    assert np.unique(cluster_array(w, 4).values).size == 4  # zero + 3 values: allowed
    with pytest.raises(ValueError, match="only 3 distinct non-zero values and zero. Use "
                                         "clusters <= 4"):
        cluster_array(w, 5)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="`clusters` must be an integer >= 2"):
            cluster_array(w, bad)
    with pytest.raises(ValueError, match="`mask` must have the weights' shape"):
        cluster_array(w, 2, mask=np.ones(3))
    with pytest.raises(ValueError, match="`init` must be one of"):
        kmeans_1d(w, 2, init="random")
