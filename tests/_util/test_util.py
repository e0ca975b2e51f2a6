"""The shared pieces: the child-process runner, atomic writes, tables, validators, errors."""

import os
import sys
import time

import pytest

import tfimp
from tfimp._util import proc, validate
from tfimp._util.errors import InvalidArgumentError, TfimpError
from tfimp._util.io import atomic_write_bytes, atomic_write_text
from tfimp._util.tables import markdown_table, text_table


def test_run_returns_output_and_describes_failures():
    done = proc.run([sys.executable, "-c", "print('hi')"], 60, "echo")
    assert done.stdout.strip() == "hi"
    with pytest.raises(proc.ChildProcessFailed, match="exit status 3"):
        proc.run([sys.executable, "-c", "import sys; sys.exit(3)"], 60, "exit")
    with pytest.raises(proc.ChildProcessFailed, match="killed by signal SIGSEGV"):
        proc.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 11)"], 60,
                 "crash")
    assert proc.run([sys.executable, "-c", "import sys; sys.exit(4)"], 60, "x",
                    check=False).returncode == 4


def test_run_kills_the_whole_group_on_timeout(tmp_path):
    marker = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; "
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    with pytest.raises(proc.ChildProcessFailed, match="did not finish within"):
        proc.run([sys.executable, "-c", code], 3, "sleeper")
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the kill is immediate; the reaping by init may take a moment
            os.kill(pid, 0)
            time.sleep(0.1)


def test_run_raises_the_callers_error_class():
    class Mine(TfimpError, RuntimeError):
        pass

    with pytest.raises(Mine):
        proc.run([sys.executable, "-c", "raise SystemExit(1)"], 60, "x", error=Mine)


def test_quiet_env_keeps_the_users_settings():
    env = proc.quiet_env({"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0" and env["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_atomic_writes_replace_whole_files_and_leave_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, 3)  # not bytes: the old file stays, no temporary remains
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]


def test_tables():
    text = text_table(["a", "bb"], [["1", "2"], ["333", "4"]])
    assert text.splitlines() == ["a    bb", "---  --", "1    2", "333  4"]
    assert markdown_table(["x"], [[1]]) == ["| x |", "|---|", "| 1 |"]


@pytest.mark.parametrize("check, value", [
    (lambda x: validate.positive_int("n", x), 0),
    (lambda x: validate.positive_int("n", x), True),
    (lambda x: validate.positive_number("n", x), float("nan")),
    (lambda x: validate.positive_number("n", x), float("inf")),
    (lambda x: validate.fraction("n", x), 1.0),
    (lambda x: validate.fraction("n", x), "0.5"),
    (lambda x: validate.non_negative("n", x), -1),
    (lambda x: validate.choice("n", x, ("a",)), "b"),
    (lambda x: validate.flag("n", x), 1),
    (lambda x: validate.integer("n", x, 2), 1),
])
def test_validators_name_the_argument_and_value(check, value):
    with pytest.raises(InvalidArgumentError, match=r"Argument `n` must be .*Received: n="):
        check(value)


def test_error_classes_keep_their_builtin_bases():
    assert issubclass(InvalidArgumentError, ValueError) and tfimp.TfimpError is TfimpError
    from tfimp.export import VerificationError
    from tfimp.profile import ProfilingError

    assert issubclass(ProfilingError, (TfimpError, RuntimeError))
    assert issubclass(VerificationError, (TfimpError, ValueError))
