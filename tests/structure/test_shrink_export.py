"""A shrunk model goes through the converter (int8) and runs in LiteRT, smaller than dense."""

import keras
import numpy as np
from ai_edge_litert.interpreter import Interpreter

import tfimp
from tfimp.export import to_tflite
from tfimp.structure.shrink import shrink


def litert_outputs(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for row in x:
        interp.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].astype(np.float32))
    return np.stack(rows)


def test_shrunk_lenet5_converts_to_int8_and_runs_in_litert():
    keras.utils.set_random_seed(0)
    model = tfimp.models.lenet5(input_shape=(16, 16, 1), classifier_activation=None)
    pruned = tfimp.prune(model, 0.5, granularity="channel")
    small = shrink(pruned)
    x = np.random.default_rng(0).random((32, 16, 16, 1)).astype("float32")
    dense = to_tflite(tfimp.strip(pruned), quantization="int8", representative_data=x)
    art = to_tflite(small, quantization="int8", representative_data=x, verify=(x, None))
    assert art.report.verification.passed
    assert art.report.tflite_bytes < 0.5 * dense.report.tflite_bytes
    ref = pruned.predict(x, verbose=0)
    got = litert_outputs(art.model_bytes, x)
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 0.05
