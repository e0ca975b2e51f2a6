import json

import keras
import numpy as np
import pytest

from tfimp.export import inspect, to_tflite


def _model_with_kernel(kernel: np.ndarray):
    model = keras.Sequential([keras.Input((kernel.shape[0],)), keras.layers.Dense(kernel.shape[1])])
    model.layers[0].set_weights([kernel, np.full(kernel.shape[1], 0.5, np.float32)])
    return model


def _kernel(block: int, keep_every: int) -> np.ndarray:
    """A 32x8 kernel of values 1..256 where only every `keep_every`-th block of inputs is kept."""
    kernel = np.arange(1, 257, dtype=np.float32).reshape(32, 8)
    blocks = np.arange(32 // block)[:, None] + np.arange(8)[None, :]
    kept = np.repeat(blocks % keep_every == 0, block, axis=0)
    return np.where(kept, kernel, 0.0).astype(np.float32)


def _weight(info):
    (t,) = [t for t in info.constants if len(t.shape) == 2]
    return t


@pytest.mark.parametrize("block,expected_block", [(1, None), (4, (1, 4))])
def test_sparse_tensor_read_back_exactly(block, expected_block):
    kernel = _kernel(block, keep_every=4)
    nnz = int(np.count_nonzero(kernel))
    info = inspect(to_tflite(_model_with_kernel(kernel), sparse=True).model_bytes)
    t = _weight(info)
    assert t.encoding == "sparse" and t.block == expected_block
    assert t.shape == (8, 32)  # TFLite stores FULLY_CONNECTED weights as (out, in)
    assert t.dtype == "float32"
    assert t.zero_fraction == pytest.approx(1 - nnz / kernel.size)
    assert t.value_bytes == 4 * nnz  # only the kept values (whole kept blocks) are stored
    assert t.index_bytes > 0 and t.bytes == t.value_bytes + t.index_bytes
    assert info.sparse_tensors == (t,)
    # Unstructured zeros are densified at load time; 1x4 blocks feed the sparse kernel directly.
    assert ("DENSIFY" in info.op_counts) == (expected_block is None)


def test_dense_tensor_and_totals():
    kernel = _kernel(1, keep_every=2)
    blob = to_tflite(_model_with_kernel(kernel), sparse=False).model_bytes
    info = inspect(blob)
    t = _weight(info)
    assert t.encoding == "dense" and t.block is None and t.index_bytes == 0
    assert t.value_bytes == 4 * kernel.size
    assert t.zero_fraction == pytest.approx(np.mean(kernel == 0))
    assert info.file_bytes == len(blob)
    assert info.op_counts == {"FULLY_CONNECTED": 1}
    assert len(info.inputs) == 1 and len(info.outputs) == 1
    assert info.tensors[info.inputs[0]].shape == (1, 32)
    bias = [c for c in info.constants if c.shape == (8,)][0]
    assert bias.zero_fraction == 0.0


def test_int8_quantization_parameters_and_zero_point():
    kernel = _kernel(1, keep_every=2)
    x = np.random.default_rng(0).random((16, 32)).astype(np.float32)
    blob = to_tflite(_model_with_kernel(kernel), quantization="int8",
                     representative_data=x).model_bytes
    t = _weight(inspect(blob))
    assert t.dtype == "int8" and len(t.scales) == 8 and set(t.zero_points) == {0}
    assert t.zero_fraction == pytest.approx(np.mean(kernel == 0), abs=0.02)


def test_table_and_json():
    info = inspect(to_tflite(_model_with_kernel(_kernel(4, 4)), sparse=True).model_bytes)
    table = info.table()
    assert "sparse 1x4" in table and "FULLY_CONNECTED x1" in table and "%" in table
    data = json.loads(info.to_json())
    assert data["file_bytes"] == info.file_bytes
    assert data["tensors"][_weight(info).index]["encoding"] == "sparse"
    assert str(info) == table


def test_truncated_and_corrupted_files_raise_value_error(tmp_path):
    blob = to_tflite(_model_with_kernel(_kernel(1, 2))).model_bytes
    for n in (0, 7, 12, 100, len(blob) // 2):
        with pytest.raises(ValueError, match="Argument `model`"):
            inspect(blob[:n])
    with pytest.raises(ValueError, match="TFL3"):
        inspect(b"GIF89a" + bytes(100))
    garbage = blob[:8] + bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8))
    with pytest.raises(ValueError, match="corrupted"):
        inspect(garbage)
    with pytest.raises(ValueError, match="no such file"):
        inspect(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="Received: model of type int"):
        inspect(42)
