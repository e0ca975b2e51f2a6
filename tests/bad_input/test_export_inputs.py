"""Bad inputs to `to_tflite`, `verify`, `run_litert`, `inspect`, `to_micro`, `run_micro` and
`measure_arena`: a clear error before any conversion, no file written, and a converter or
runtime crash that ends as an error while this process keeps running."""

import math
import os

import numpy as np
import pytest
from bad_input_helpers import FEATURES, tiny_model, with_value

from tfimp.export import (Int8, _converter, inspect, measure_arena, quantization, run_litert,
                          run_micro, to_micro, to_tflite, verify)
from tfimp._util.errors import InvalidArgumentError

NAN, INF = math.nan, math.inf


def _x(n=16, features=FEATURES, value=None):
    x = np.random.default_rng(0).random((n, features)).astype("float32")
    return x if value is None else with_value(x, value, (n - 1, 1))


def _unbuilt():
    import keras

    return keras.Sequential([keras.layers.Dense(3)])


def _endless():
    while True:
        yield [_x(1)]


# (keyword arguments of to_tflite beyond the model, or a whole call), error, argument
TO_TFLITE_CASES = [
    (dict(model="model.keras"), InvalidArgumentError, "model"),
    (dict(model=_unbuilt()), InvalidArgumentError, "model"),
    (dict(quantization="int3"), ValueError, "quantization"),
    (dict(quantization=8), ValueError, "quantization"),
    (dict(quantization={"name": "int3"}), ValueError, "config"),
    (dict(sparse="yes"), InvalidArgumentError, "sparse"),
    (dict(sparse=None), InvalidArgumentError, "sparse"),
    (dict(quantization="int8"), InvalidArgumentError, "representative_data"),
    (dict(quantization="int8", representative_data=_x(value=INF)), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=np.full((16, 8), np.inf, "float32")),
     InvalidArgumentError, "representative_data"),
    (dict(quantization="int16x8", representative_data=_x(value=NAN)), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=_x(features=7)), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=_x()[:, 0]), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=_x()[:0]), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=[_x(), _x()]), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=_x().astype(str)), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=lambda: ([_x(1, value=INF)] for _ in "ab")),
     InvalidArgumentError, "representative_data"),
    (dict(quantization="int8", representative_data=lambda: iter([])), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=lambda: 5), InvalidArgumentError,
     "representative_data"),
    (dict(quantization="int8", representative_data=lambda: ([_x(1, 5)] for _ in "ab")),
     InvalidArgumentError, "representative_data"),
    (dict(quantization="int8", representative_data=_endless), InvalidArgumentError,
     "representative_data"),
    (dict(verify=(_x(),)), InvalidArgumentError, "verify"),
    (dict(verify=_x()), InvalidArgumentError, "verify"),
    (dict(verify=(_x(features=5), None)), InvalidArgumentError, "verify"),
    (dict(verify=(_x(value=NAN), None)), InvalidArgumentError, "verify"),
    (dict(verify=(_x(), np.full(16, 7))), InvalidArgumentError, "verify"),
    (dict(verify=(_x(), np.full(16, -1))), InvalidArgumentError, "verify"),
    (dict(verify=(_x(), np.full(16, 0.5))), InvalidArgumentError, "verify"),
    (dict(verify=(_x(), np.zeros(3))), InvalidArgumentError, "verify"),
    (dict(verify=(_x(), np.zeros(16)), tolerance=-1), InvalidArgumentError, "tolerance"),
    (dict(verify=(_x(), np.zeros(16)), tolerance=NAN), InvalidArgumentError, "tolerance"),
    (dict(verify=(_x(), np.zeros(16)), tolerance="0.1"), InvalidArgumentError, "tolerance"),
    (dict(tolerance=0.01), InvalidArgumentError, "tolerance"),
]


@pytest.mark.parametrize("kwargs, kind, argument", TO_TFLITE_CASES)
def test_to_tflite_refuses_before_converting(kwargs, kind, argument, tmp_path):
    kwargs = dict(kwargs)
    model = kwargs.pop("model", None) or tiny_model()
    out = tmp_path / "m.tflite"
    with pytest.raises(kind, match=f"Argument `{argument}`"):
        to_tflite(model, out, **kwargs)
    assert not out.exists()


@pytest.mark.parametrize("where", ["folder", "under_file", "empty"])
def test_to_tflite_refuses_output_paths_before_converting(where, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    path = {"folder": tmp_path, "under_file": file / "m.tflite", "empty": ""}[where]
    with pytest.raises(InvalidArgumentError, match="Argument `path`"):
        to_tflite(tiny_model(), path)
    assert file.read_text() == "x"


def test_quantization_configs_check_their_fields():
    with pytest.raises(ValueError, match="Argument `integer_io`"):
        Int8(integer_io="yes")
    with pytest.raises(ValueError, match="Argument `config`"):
        quantization.Quantization.from_config({"name": "int3"})


def test_the_crash_in_the_issue_is_now_a_clear_error():
    # This call used to end the calling process inside the converter (SIGSEGV).
    with pytest.raises(InvalidArgumentError, match="Argument `representative_data`.*infinite"):
        to_tflite(tiny_model(), None, quantization="int8",
                  representative_data=np.full((16, 8), np.inf, "float32"))


def test_a_converter_crash_is_contained_and_the_next_conversion_runs():
    # Past the checks, infinite calibration data still kills the converter: it runs in a
    # child, so the crash is this conversion's error and the process goes on.
    model = tiny_model()
    bad = [[np.full((1, FEATURES), np.inf, "float32")] for _ in range(4)]
    good = [[_x(1)] for _ in range(4)]
    int8 = _converter.Job(Int8().get_config(), False)
    crashed, dense = _converter.convert(
        model, [int8, _converter.Job(quantization.Float32().get_config(), False)], bad)
    assert isinstance(crashed, str) and "crashed" in crashed and "SIGSEGV" in crashed
    assert isinstance(dense, bytes) and dense[4:8] == b"TFL3"
    (after,) = _converter.convert(model, [int8], good)
    assert isinstance(after, bytes) and inspect(after).tensors
    assert os.getpid() > 0  # still here


VERIFY_CASES = [
    (lambda f: verify(f.tflite, (_x(features=5), None)), "verify"),
    (lambda f: verify(f.tflite, (_x(value=NAN), None)), "verify"),
    (lambda f: verify(f.tflite, (_x(), np.full(16, 3))), "verify"),
    (lambda f: verify(f.tflite, (_x(), np.zeros(4))), "verify"),
    (lambda f: verify(f.tflite, _x()), "verify"),
    (lambda f: verify(f.tflite, (_x(), None), tolerance=-0.5), "tolerance"),
    (lambda f: verify(f.folder / "missing.tflite", (_x(), None)), "model"),
    (lambda f: verify(f.text, (_x(), None)), "model"),
    (lambda f: run_litert(f.tflite, _x(features=3)), "inputs"),
    (lambda f: run_litert(f.tflite, _x(value=INF)), "inputs"),
    (lambda f: run_litert(f.tflite, [_x(), _x()]), "inputs"),
    (lambda f: inspect(f.folder / "missing.tflite"), "model"),
    (lambda f: inspect(f.a_folder), "model"),
    (lambda f: inspect(f.text), "model"),
    (lambda f: inspect(f.truncated_tflite), "model"),
    (lambda f: inspect(f.keras), "model"),
    (lambda f: inspect(123), "model"),
    (lambda f: inspect(b"short"), "model"),
    (lambda f: to_micro(f.folder / "missing.tflite", f.folder / "micro"), "tflite_path"),
    (lambda f: to_micro(f.int8, f.text), "out_dir"),
    (lambda f: to_micro(f.int8, f.text / "micro"), "out_dir"),
    (lambda f: to_micro(f.int8, f.folder / "micro", margin=NAN), "margin"),
    (lambda f: to_micro(f.int8, f.folder / "micro", name="1model"), "name"),
    (lambda f: to_micro(f.int8, f.folder / "micro", max_diff_steps=-1), "max_diff_steps"),
    (lambda f: to_micro(f.int8, f.folder / "micro", inputs=_x(features=4)), "inputs"),
    (lambda f: run_micro(f.int8, _x(value=NAN)), "inputs"),
    (lambda f: run_micro(f.int8, _x(), arena_size=0), "arena_size"),
    (lambda f: measure_arena(b"12345678"), "model"),
]


@pytest.mark.parametrize("call, argument", VERIFY_CASES)
def test_readers_and_runtimes_name_the_argument(call, argument, files):
    with pytest.raises(ValueError, match=f"Argument `{argument}`"):
        call(files)
    assert not (files.folder / "micro").exists()
