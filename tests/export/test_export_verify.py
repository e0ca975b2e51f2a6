import keras
import numpy as np
import pytest

from tfimp.export import Int8, to_tflite, verify
from tfimp.export.verify import Verification, VerificationError, run_litert


@pytest.fixture(scope="module")
def float_blob(mlp16):
    return to_tflite(mlp16).model_bytes


def _shifted_copy(model, delta):
    """A copy whose last-layer bias is `delta` larger: every output moves by exactly `delta`."""
    copy = keras.models.clone_model(model)
    weights = model.get_weights()
    weights[-1] = weights[-1] + delta
    copy.set_weights(weights)
    return copy


def test_accuracy_from_labels_and_from_one_hot(float_blob, mlp16, data64):
    x, y = data64
    out = mlp16.predict(x, verbose=0)
    expected = float(np.mean(out.argmax(1) == y))
    result = verify(float_blob, (x, y), mlp16)
    assert result.accuracy_tflite == pytest.approx(expected)
    assert result.accuracy_keras == pytest.approx(expected)
    assert result.delta_pp == pytest.approx(0.0) and result.agreement == 1.0
    assert result.max_abs_diff < 1e-5 and result.passed
    one_hot = np.eye(10)[y]
    assert verify(float_blob, (x, one_hot), mlp16).accuracy_tflite == pytest.approx(expected)


def test_outputs_match_keras_over_batches_and_odd_sizes(float_blob, mlp16):
    x = np.random.default_rng(3).random((300, 64)).astype(np.float32)  # > one 256 chunk
    (out,) = run_litert(float_blob, x)
    assert out.shape == (300, 10)
    np.testing.assert_allclose(out, mlp16.predict(x, verbose=0), atol=1e-5)


def test_tolerance_on_max_abs_diff_without_labels(float_blob, mlp16, data64):
    x, _ = data64
    other = _shifted_copy(mlp16, 0.05)
    result = verify(float_blob, (x, None), other, tolerance=0.06)
    assert result.max_abs_diff == pytest.approx(0.05, abs=1e-4)
    assert result.accuracy_tflite is None
    with pytest.raises(VerificationError, match="max abs output difference") as err:
        verify(float_blob, (x, None), other, tolerance=0.01)
    assert isinstance(err.value.verification, Verification)
    assert err.value.verification.passed is False


def test_tolerance_on_accuracy_drop(float_blob, mlp16, data64):
    x, _ = data64
    other = _shifted_copy(mlp16, 0.0)
    w = other.layers[-1].get_weights()
    w[1] = w[1] + np.eye(10)[0] * 100.0  # the other model always answers class 0
    other.layers[-1].set_weights(w)
    labels = np.zeros(len(x), np.int64)
    result = verify(float_blob, (x, labels), other, tolerance=1.0)
    assert result.delta_pp > 50
    with pytest.raises(VerificationError, match="accuracy drop"):
        verify(float_blob, (x, labels), other, tolerance=0.01)


def test_int8_inputs_and_outputs_are_quantized_and_dequantized(mlp16, data64):
    x, y = data64
    blob = to_tflite(mlp16, quantization=Int8(integer_io=True), representative_data=x).model_bytes
    result = verify(blob, (x, y), mlp16)
    assert result.agreement >= 0.9
    ref = mlp16.predict(x, verbose=0)
    assert result.max_abs_diff < 0.1 * np.max(np.abs(ref))


def test_bad_data_and_damaged_models(float_blob, data64):
    x, y = data64
    with pytest.raises(ValueError, match="pair"):
        verify(float_blob, x)
    with pytest.raises(ValueError, match="at least one sample"):
        verify(float_blob, (x[:0], None))
    with pytest.raises(ValueError, match="tolerance"):
        verify(float_blob, (x, y), tolerance=-1)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        verify(float_blob[: len(float_blob) // 2], (x, y))
    with pytest.raises(ValueError, match="TFL3"):
        verify(b"\x00" * 64, (x, y))
