import json

import pytest

from tfimp.export import ExportReport, inspect, to_tflite
from tfimp.export.report import Candidate


@pytest.fixture(scope="module")
def info(mlp16):
    return inspect(to_tflite(mlp16, sparse=True).model_bytes)


def _report(info, **overrides):
    fields = dict(quantization={"name": "float32"}, sparse=True, keras_weight_bytes=9000,
                  keras_sparsity=0.5, gzip_bytes=info.file_bytes // 2,
                  dense_float32_bytes=4 * info.file_bytes,
                  candidates=(Candidate(False, 4 * info.file_bytes, True, True),
                              Candidate(True, info.file_bytes, True, True)))
    fields.update(overrides)
    return ExportReport.from_info(info, **fields)


def test_ratios_and_tensor_rows(info):
    report = _report(info)
    assert report.tflite_bytes == info.file_bytes
    assert report.compression_ratio == pytest.approx(4.0)
    assert report.gzip_ratio == pytest.approx(4 * info.file_bytes / (info.file_bytes // 2))
    assert len(report.tensors) == 2  # the two kernels; biases are not weight matrices
    assert all(t.encoding == "sparse" for t in report.tensors)


def test_json_and_table(info):
    report = _report(info)
    data = json.loads(report.to_json())
    assert data["compression_ratio"] == pytest.approx(4.0)
    assert data["tensors"][0]["encoding"] == "sparse" and data["verification"] is None
    table = report.table()
    assert "4.0x smaller" in table and "sparse 1x4" in table and "tried sparse=False" in table
