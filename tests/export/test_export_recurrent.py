"""Pruned recurrent models export to a .tflite that LiteRT runs and that matches Keras.

float32 and int8 (full integer with float I/O) for each kind; the converter gets the layers
unrolled over their fixed time steps. Layers a .tflite cannot hold are refused with the fix.
"""

import keras
import numpy as np
import pytest

import tfimp
from tfimp.export import inspect, to_tflite

L = keras.layers
STEPS, FEATURES = 6, 3
KINDS = {
    "gru after conv1d": lambda: [L.Conv1D(4, 3, activation="relu"), L.GRU(5)],
    "lstm": lambda: [L.LSTM(5)],
    "bidirectional lstm": lambda: [L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                   L.Flatten()],
    "simple rnn": lambda: [L.SimpleRNN(5)],
}
# Largest |LiteRT - Keras| on outputs of about unit size.
TOLERANCE = {"float32": 1e-5, "int8": 0.1}


def _x(n=24, seed=0):
    return np.random.default_rng(seed).normal(size=(n, STEPS, FEATURES)).astype("float32")


def _pruned(kind: str):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), *KINDS[kind](), L.Dense(3)])
    pruned = tfimp.prune(model, 0.5)
    tfimp.update_masks(pruned, step=0, force=True)
    return pruned


@pytest.mark.parametrize("quantization", sorted(TOLERANCE))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_pruned_recurrent_model_exports_and_matches_keras(kind, quantization):
    pruned = _pruned(kind)
    x = _x()
    art = to_tflite(pruned, quantization=quantization, representative_data=x,
                    verify=(x, None), tolerance=TOLERANCE[quantization])
    assert art.report.verification.passed
    assert art.report.verification.max_abs_diff <= TOLERANCE[quantization]
    assert "WHILE" not in inspect(art.model_bytes).ops
    assert art.report.keras_sparsity > 0.3  # the pruned kernels kept their zeros
    assert not any(layer.unroll for layer in tfimp.export.recurrent.recurrent_layers(pruned))


def test_a_stateful_layer_is_refused_with_the_fix():
    model = keras.Sequential([keras.Input(batch_shape=(1, STEPS, FEATURES)),
                              L.LSTM(4, stateful=True), L.Dense(2)])
    with pytest.raises(ValueError, match="stateful=True.*Export a copy built with stateful=False"):
        to_tflite(model)


def test_sequences_of_any_length_are_refused_with_the_fix():
    model = keras.Sequential([keras.Input((None, FEATURES)), L.GRU(4), L.Dense(2)])
    with pytest.raises(ValueError, match="sequences of any length.*keras.Input\\(\\(steps"):
        to_tflite(model)
