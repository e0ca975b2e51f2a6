"""Clustered weights become 2-4 bit LUT indices in TFLite Micro, bit-exact."""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.clustering import cluster
from tfimp.export import Int8, to_micro, to_tflite
from tfimp.export import tflm_compression as tc


@pytest.fixture(scope="module")
def half_pruned():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    return tfimp.strip(tfimp.prune(model, 0.5)), x


@pytest.mark.parametrize("clusters,bits", [(4, 2), (16, 4)])
def test_clustered_int8_weights_fit_lut_widths(half_pruned, clusters, bits, tmp_path):
    model, x = half_pruned
    data = to_tflite(cluster(model, clusters=clusters, per_channel=True),
                     quantization=Int8(integer_io=True), representative_data=x).model_bytes
    kernels = [o for o in tc.tensor_options(data) if o.dtype == "int8" and not o.reason]
    assert kernels and max(o.values_per_channel for o in kernels) <= clusters
    assert {o.lut_bits for o in kernels} <= set(range(1, bits + 1))
    art = to_micro(data, tmp_path, inputs=x, compression="auto")
    rows = {r.name: r for r in art.encodings}
    assert rows["lut"].flash_bytes < rows["pruning"].flash_bytes < rows["none"].flash_bytes
    assert art.model_bytes == rows["pruning+lut"].flash_bytes <= rows["lut"].flash_bytes
    assert all(t.bits <= bits for t in art.tensors if t.encoding == "lut")
    assert all(r.bit_exact for r in art.encodings if r.flash_bytes)
