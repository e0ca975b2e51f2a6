import numpy as np
import pytest
from sshd_fixture import sshd  # noqa: F401  (the real OpenSSH server for the deploy tests)

LABELS = [f"class-{i}" for i in range(10)]


def small_cnn(seed: int = 0, zero_fraction: float = 0.5):
    """An 8x8x1 -> 10 CNN whose dense kernel has `zero_fraction` zeros (smallest magnitudes)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
        keras.layers.Softmax(),
    ])
    dense = model.layers[2]
    w, b = dense.get_weights()
    w[np.abs(w) < np.quantile(np.abs(w), zero_fraction)] = 0.0
    dense.set_weights([w, b])
    return model


def _calibration(n=32, shape=(8, 8, 1)):
    return np.random.default_rng(1).random((n, *shape)).astype("float32")


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Paths of small .tflite models converted with the real TFLite converter."""
    import keras

    from tfimp.export import Int8, to_tflite

    folder = tmp_path_factory.mktemp("models")
    cnn = small_cnn()
    paths = {"int8": folder / "cnn_int8.tflite", "float": folder / "cnn_float.tflite",
             "sparse": folder / "mlp_sparse.tflite", "big": folder / "mlp_big_int8.tflite"}
    to_tflite(cnn, paths["int8"], quantization=Int8(integer_io=True),
              representative_data=_calibration())
    to_tflite(cnn, paths["float"])
    keras.utils.set_random_seed(2)
    mlp = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(10)])
    for layer in mlp.layers:
        w, b = layer.get_weights()
        w[np.random.default_rng(3).random(w.shape) < 0.9] = 0.0
        layer.set_weights([w, b])
    to_tflite(mlp, paths["sparse"], sparse=True)
    big = keras.Sequential([keras.Input((784,)), keras.layers.Dense(400), keras.layers.Dense(10)])
    to_tflite(big, paths["big"], quantization=Int8(integer_io=True),
              representative_data=_calibration(16, (784,)))
    return paths


@pytest.fixture(scope="session")
def labels():
    return list(LABELS)


@pytest.fixture(scope="session")
def labels_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


@pytest.fixture(scope="session")
def rpi_bundle(models, labels_file, tmp_path_factory):
    """An rpi bundle of the int8 CNN with labels and pixel preprocessing, profiled here."""
    from tfimp.bundle import build

    return build(models["int8"], "rpi", tmp_path_factory.mktemp("b") / "rpi",
                 labels=labels_file, preprocessing={"mean": 0.0, "std": 255.0})

