"""The one child-process runner: bounded in time, killed as a process group, described on exit.

Native code (the TFLite converter, LiteRT, TFLite Micro, `benchmark_model`, ssh) runs in
children so that a crash or a hang is reported as an error instead of taking the caller down.
`run` runs a command to its end; `Worker` keeps one child alive between requests, for work
whose start-up (importing TensorFlow) costs more than the work itself.
"""

from __future__ import annotations

import atexit
import os
import select
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence

from tfimp._util.errors import TfimpError

__all__ = ["ChildProcessFailed", "Worker", "describe_exit", "quiet_env", "run", "tail"]

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


class Worker:
    """A long-lived child that answers one request at a time, one line in, one line out.

    The child runs in its own process group, is killed with it when a request times out and
    when this process exits, and is started again for the next request after it died (a
    crash ends only the request it was working on). It reads requests from stdin and writes
    each answer as one line to the file descriptor given as its last argument; its stdout
    and stderr go to a log whose end describes a crash. A child should exit when stdin
    closes (this process is gone) and may exit when idle; it is restarted on demand.

    Args:
        cmd: the command; the answer descriptor's number is appended to it.
        what: a few words for error messages ("the TFLite converter").
        env: the environment; None keeps the caller's.
        max_requests: requests after which the child is replaced (bounds its memory growth).
    """

    def __init__(self, cmd: Sequence[str], what: str, env: dict | None = None,
                 max_requests: int = 100):
        self.cmd, self.what, self.env = [str(c) for c in cmd], what, env
        self.max_requests = max_requests
        self._proc: subprocess.Popen | None = None
        self._answers = None
        self._log = None
        self._owner = 0
        self._served = 0
        self._lock = threading.Lock()
        atexit.register(self.close)

    def request(self, line: str, timeout: float) -> str:
        """Sends `line` and returns the child's answer (one line, without its newline).

        Raises:
            ChildProcessFailed: the child died or did not answer within `timeout` s; the
                message says how it ended and holds the end of its output.
        """
        with self._lock:
            for _ in range(2):  # once more if the child had just left on its own (idle)
                self._ensure_started()
                self._served += 1
                try:
                    self._proc.stdin.write(line.rstrip("\n") + "\n")
                    self._proc.stdin.flush()
                except OSError:
                    pass  # the child is gone; reading its answer reports how it ended
                answer = self._read_answer(timeout)
                if answer is not None:
                    break
            else:
                raise ChildProcessFailed(f"{self.what} exited without answering.")
            if self._served >= self.max_requests:
                self._stop()
            return answer

    def close(self) -> None:
        """Stops the child (its whole process group)."""
        with self._lock:
            self._stop()

    def _ensure_started(self) -> None:
        alive = self._proc is not None and self._proc.poll() is None
        if alive and self._owner == os.getpid():
            return
        if self._owner == os.getpid():
            self._stop()
        read_fd, write_fd = os.pipe()
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [*self.cmd, str(write_fd)], stdin=subprocess.PIPE, stdout=self._log,
            stderr=subprocess.STDOUT, text=True, env=self.env, pass_fds=(write_fd,),
            start_new_session=True)
        os.close(write_fd)
        self._answers = os.fdopen(read_fd, "r")
        self._owner, self._served = os.getpid(), 0

    def _read_answer(self, timeout: float) -> str | None:
        """The answer; None when the child exited cleanly without one (it was leaving)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready = select.select([self._answers], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self._stop()
                raise ChildProcessFailed(f"{self.what} did not answer within {timeout:g} s "
                                         f"and was killed.\nOutput:\n{self._tail()}")
            answer = self._answers.readline()
            if answer:
                return answer.rstrip("\n")
            code = self._proc.wait()
            output = self._tail()
            self._stop()
            if code == 0:
                return None
            raise ChildProcessFailed(f"{self.what} failed: {describe_exit(code)}.\n"
                                     f"Output:\n{output}")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return tail(self._log.read().decode(errors="replace"))

    def _stop(self) -> None:
        if self._proc is not None and self._owner == os.getpid():
            _kill_group(self._proc)
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.wait()
        for handle in (self._answers, self._log):
            if handle is not None:
                handle.close()
        self._proc = self._answers = self._log = None
