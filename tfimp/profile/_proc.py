"""Runs the commands of a benchmark: bounded in time, and never leaving a child behind."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Sequence

from tfimp.profile.result import ProfilingError

_TAIL_CHARS = 4000


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd: Sequence[str], timeout: float, what: str, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs `cmd` in its own process group and returns its finished process.

    Args:
        cmd: the command and its arguments.
        timeout: seconds after which the whole process group is killed.
        what: a few words for error messages ("benchmark_model", "ssh").
        env: the environment; None keeps the caller's.
        check: raise `ProfilingError` when the command exits non-zero or dies of a signal.

    Raises:
        ProfilingError: the command timed out, was killed by a signal, or (with `check`)
            exited non-zero; the message holds the command and the end of its output.
        FileNotFoundError: the program does not exist.
    """
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise ProfilingError(
            f"{what} did not finish within {timeout:g} s and was killed.\n"
            f"Command: {shlex.join(cmd)}\nOutput:\n{_tail(out + err)}"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    _kill_group(proc)  # grandchildren that outlived their parent
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise ProfilingError(f"{what} failed: {describe_exit(proc.returncode)}.\n"
                             f"Command: {shlex.join(cmd)}\nOutput:\n{_tail(out + err)}")
    return result


def describe_exit(returncode: int) -> str:
    """'exit status 3' or 'killed by signal SIGSEGV'."""
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
