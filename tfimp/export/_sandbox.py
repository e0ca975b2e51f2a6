"""Runs a .tflite model in a child process, so a crash in native code cannot take us down."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile

import numpy as np

from tfimp._util import proc
from tfimp._util.errors import TfimpError
from tfimp._util.proc import describe_exit, quiet_env

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")
# Run the child by path but from an empty working directory: run as `python _child.py`, its
# folder would lead sys.path and `inspect.py` there would shadow the standard library's.
_BOOT = ("import runpy, sys; sys.argv = sys.argv[1:]; "
         "runpy.run_path(sys.argv[0], run_name='__main__')")
_RUNTIMES = {"litert": "the LiteRT interpreter", "tflm": "the TFLite Micro interpreter",
             "litert_builtin": "the LiteRT interpreter (builtin kernels, no XNNPACK)"}


class RuntimeRefusedError(TfimpError, RuntimeError):
    """The runtime refused or failed to run the model (it raised, crashed or timed out)."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outputs of one run: as the model returns them, and dequantized to float32."""

    raw: list[np.ndarray]
    dequantized: list[np.ndarray]
    info: dict
    stderr: str


def as_list(inputs) -> list[np.ndarray]:
    """One array or a list of arrays (one per model input), batch first."""
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(x) for x in inputs]
    return [np.asarray(inputs)]


def run(runtime: str, model: bytes, inputs, timeout: float = 300.0, arena: int = 0) -> RunResult:
    """Runs `model` on `inputs` with `runtime` ("litert", "litert_builtin" or "tflm") in a
    child process.

    Raises:
        RuntimeRefusedError: the runtime raised, crashed, or did not finish in `timeout` s.
    """
    xs = as_list(inputs)
    with tempfile.TemporaryDirectory(prefix="tfimp-run-") as folder:
        with open(os.path.join(folder, "model.tflite"), "wb") as f:
            f.write(model)
        np.savez(os.path.join(folder, "inputs.npz"), **{f"x{i}": x for i, x in enumerate(xs)})
        cmd = [sys.executable, "-c", _BOOT, _CHILD, runtime, folder, str(int(arena))]
        done = _call(cmd, timeout, runtime, folder)
        error_path = os.path.join(folder, "error.json")
        if os.path.exists(error_path):
            with open(error_path) as f:
                err = json.load(f)
            raise RuntimeRefusedError(
                f"{_RUNTIMES[runtime]} refused the model: {err['type']}: {err['message']}"
                + _log_tail(done.stderr))
        if done.returncode != 0:
            raise RuntimeRefusedError(
                f"{_RUNTIMES[runtime]} crashed on the model ({describe_exit(done.returncode)}); "
                f"the file is corrupted or uses something the runtime cannot handle.\n"
                f"{done.stderr[-2000:]}")
        with np.load(os.path.join(folder, "outputs.npz")) as data:
            n = len(data.files) // 2
            raw = [data[f"raw{i}"] for i in range(n)]
            deq = [data[f"deq{i}"] for i in range(n)]
        with open(os.path.join(folder, "result.json")) as f:
            info = json.load(f)
    return RunResult(raw, deq, info, done.stderr)


def _call(cmd: list[str], timeout: float, runtime: str, cwd: str):
    return proc.run(cmd, timeout, _RUNTIMES[runtime], env=quiet_env(), check=False, cwd=cwd,
                    error=RuntimeRefusedError)


def _log_tail(stderr: str, lines: int = 4) -> str:
    """The runtime's last log lines (TFLM names the failing kernel check there)."""
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-lines:]
    return "\n" + "\n".join(tail) if tail else ""
