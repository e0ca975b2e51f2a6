"""Shared pieces of the bad-input suite: tiny models, data and files, and the checks that
every case makes (the exception type, the argument named in the message, nothing written).

Every model here is tiny (8 inputs, 3 classes) and converted once per session with the real
TFLite converter, so the suite stays fast.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FEATURES, CLASSES = 8, 3


def tiny_model(seed: int = 0):
    """An 8-16-3 softmax classifier with named layers `hidden` and `out`."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((FEATURES,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(CLASSES, activation="softmax", name="out"),
    ], name="tiny")


def builder(lr=0.05, features: int = FEATURES):
    """A `build_model` for `tfimp.imp`: the tiny classifier compiled with SGD at `lr`."""

    def build():
        import keras

        model = keras.Sequential([
            keras.Input((features,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(CLASSES, activation="softmax", name="out"),
        ])
        model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    return build


def toy_data(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = (rng.normal(size=(CLASSES, FEATURES))[y] * 2 + rng.normal(size=(n, FEATURES)))
    return x.astype("float32"), y


def with_value(x, value, index=(3, 2)):
    """A copy of `x` with one entry set to `value` (NaN, inf, ...)."""
    x = np.array(x, dtype="float32" if x.dtype.kind == "f" else x.dtype)
    x[index] = value
    return x


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (relative path -> bytes), to compare before and after."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_line(stderr: str) -> str:
    """The single line a command printed on stderr; fails on a traceback or more lines."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def run_cli(main, argv, capsys):
    """Runs a verb's `main(argv)` as the `tfimp` command does; (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def tfimp_command(*args, env=None, timeout=300):
    """`python -m tfimp.cli ARGS` in a real child process, as a user runs it."""
    root = Path(__file__).resolve().parents[2]
    environ = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tfimp.cli", *map(str, args)],
                          capture_output=True, text=True, env=environ, timeout=timeout)


class Files:
    """Paths of the session's model files and of damaged ones."""

    def __init__(self, folder: Path, keras_path: Path, float_tflite: Path, int8_tflite: Path):
        self.folder, self.keras, self.tflite, self.int8 = folder, keras_path, float_tflite, \
            int8_tflite
        self.text = folder / "notes.txt"
        self.text.write_text("not a model\n")
        self.truncated_tflite = folder / "truncated.tflite"
        self.truncated_tflite.write_bytes(float_tflite.read_bytes()[:200])
        self.corrupt_keras = folder / "corrupt.keras"
        self.corrupt_keras.write_bytes(keras_path.read_bytes()[:300])
        self.zip_without_config = folder / "other.keras"
        shutil.make_archive(str(folder / "other"), "zip", folder, "notes.txt")
        (folder / "other.zip").rename(self.zip_without_config)
        self.npz_without_x = folder / "no_x.npz"
        np.savez(self.npz_without_x, inputs=np.zeros((2, FEATURES)))
        self.garbage_npy = folder / "garbage.npy"
        self.garbage_npy.write_bytes(b"\x93NUMPY garbage")
        self.a_folder = folder / "a_folder"
        self.a_folder.mkdir()
        (self.a_folder / "keep.txt").write_text("keep")


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("bad_input_files")
    model = tiny_model()
    model.save(folder / "tiny.keras")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    (folder / "tiny.tflite").write_bytes(converter.convert())
    x, _ = toy_data()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (folder / "tiny_int8.tflite").write_bytes(converter.convert())
    cnn = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 3),
                            keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    (folder / "cnn.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(cnn).convert())
    files = Files(folder, folder / "tiny.keras", folder / "tiny.tflite",
                  folder / "tiny_int8.tflite")
    files.cnn = folder / "cnn.tflite"
    return files


@pytest.fixture(scope="session")
def model():
    return tiny_model()


@pytest.fixture(scope="session")
def data():
    return toy_data()


@pytest.fixture(scope="session")
def imp_run(tmp_path_factory):
    """A finished, valid IMP run (one round): its parent folder, settings and result."""
    import tfimp

    parent = tmp_path_factory.mktemp("earlier_run")
    train, val = toy_data(48, 0), toy_data(24, 1)
    settings = dict(rounds=1, rate=0.5, epochs_per_round=1, batch_size=16, verbose=0)
    result = tfimp.imp(builder(), train, val, workdir=parent, **settings)
    return parent, (train, val, settings), result
