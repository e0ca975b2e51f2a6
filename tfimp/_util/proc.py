"""The one child-process runner: bounded in time, killed as a process group, described on exit.

Native code (the TFLite converter, LiteRT, TFLite Micro, `benchmark_model`, ssh) runs in
children so that a crash or a hang is reported as an error instead of taking the caller down.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from tfimp._util.errors import TfimpError

__all__ = ["ChildProcessFailed", "describe_exit", "quiet_env", "run", "tail"]

_TAIL_CHARS = 4000

# TensorFlow's C++ start-up lines (CUDA probing, oneDNN notices) are noise on a CPU machine.
_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


class ChildProcessFailed(TfimpError, RuntimeError):
    """A child process timed out, died of a signal, or exited non-zero."""


def quiet_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) with TensorFlow's start-up logging turned down, unless
    the user set those variables."""
    env = dict(os.environ if env is None else env)
    for key, value in _QUIET.items():
        env.setdefault(key, value)
    return env


def tail(text: str, limit: int = _TAIL_CHARS) -> str:
    """The end of a child's output, for error messages."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd: Sequence[str], timeout: float, what: str, env: dict | None = None,
        check: bool = True, cwd: str | None = None,
        error: type[Exception] = ChildProcessFailed) -> subprocess.CompletedProcess:
    """Runs `cmd` in its own process group and returns its finished process.

    Args:
        cmd: the command and its arguments.
        timeout: seconds after which the whole process group is killed.
        what: a few words for error messages ("benchmark_model", "ssh").
        env: the environment; None keeps the caller's.
        check: raise `error` when the command exits non-zero or dies of a signal.
        cwd: the working directory.
        error: the exception class raised (a subclass of `ChildProcessFailed` or the caller's).

    Raises:
        error: the command timed out, was killed by a signal, or (with `check`) exited
            non-zero; the message holds the command and the end of its output.
        FileNotFoundError: the program does not exist.
    """
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise error(
            f"{what} did not finish within {timeout:g} s and was killed.\n"
            f"Command: {shlex.join(cmd)}\nOutput:\n{tail(out + err)}"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    _kill_group(proc)  # grandchildren that outlived their parent
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise error(f"{what} failed: {describe_exit(proc.returncode)}.\n"
                    f"Command: {shlex.join(cmd)}\nOutput:\n{tail(out + err)}")
    return result


def describe_exit(returncode: int) -> str:
    """'exit status 3' or 'killed by signal SIGSEGV'."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
