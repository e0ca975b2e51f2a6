"""TensorFlow's C++ start-up lines stay off the terminal unless `tfimp --verbose` asks for them."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from tfimp._util import tf_logs

ROOT = Path(__file__).resolve().parents[1]
SEEN_HERE = [  # lines TensorFlow 2.21 printed on a CPU-only machine
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795851856.316834    5216 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1795851868.561318    5216 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "2023-08-25 11:11:47.547250: I tensorflow/core/util/port.cc:113] oneDNN custom operations "
    "are on. You may see slightly different numerical results.",
    "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, "
    "output_inference_type: FLOAT32",
]


def _user_env() -> dict:
    """The environment of a shell that never heard of TensorFlow's logging switches."""
    env = {k: v for k, v in os.environ.items()
           if k not in (tf_logs.LEVEL_VAR, "CUDA_VISIBLE_DEVICES")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return env


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=_user_env(), cwd=cwd, timeout=300)


def _message(line: str) -> str:
    """A log line without its time stamp and thread id."""
    return line.split("] ", 1)[-1]


def test_noise_lines_are_recognized_and_others_are_not():
    assert all(tf_logs.is_noise(line) for line in SEEN_HERE)
    assert not any(tf_logs.is_noise(line) for line in [
        "tfimp export: no such model file: m.keras", "Traceback (most recent call last):",
        "UserWarning: something a user should read", "I am not a log line] at all"])


def test_held_back_drops_log_lines_only(capfd):
    with tf_logs.held_back():
        os.write(2, ("kept line\n" + "\n".join(SEEN_HERE) + "\nand this one\n").encode())
    assert capfd.readouterr().err == "kept line\nand this one\n"


def test_held_back_passes_everything_on_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError), tf_logs.held_back():
        os.write(2, (SEEN_HERE[1] + "\n").encode())
        raise RuntimeError("boom")
    assert capfd.readouterr().err == SEEN_HERE[1] + "\n"


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="d")])
    model.save(folder / "m.keras")
    return folder


def _export(folder, *flags: str, int8: bool = True) -> subprocess.CompletedProcess:
    quantize = ["-q", "int8", "--representative", "digits8"] if int8 else []
    done = _run("-m", "tfimp.cli", *flags, "export", "m.keras", "-o", "m.tflite", *quantize,
                cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_cli_is_quiet_by_default(keras_file):
    err = _export(keras_file).stderr
    assert [line for line in err.splitlines() if tf_logs.is_noise(line)] == []
    for word in ("cuInit", "cuda", "oneDNN", "absl", "fully_quantize", "Statistics for"):
        assert word not in err


def test_verbose_shows_what_tensorflow_prints_at_start_up(keras_file):
    bare = _run("-c", "import tensorflow", cwd=keras_file)
    expected = {_message(line) for line in bare.stderr.splitlines() if tf_logs.is_noise(line)}
    err = _export(keras_file, "--verbose", int8=False).stderr  # the start-up lines suffice
    shown = {_message(line) for line in err.splitlines()}
    assert expected <= shown
