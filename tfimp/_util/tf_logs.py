"""TensorFlow's C++ log lines on a CPU machine: quiet by default on the command line.

`TF_CPP_MIN_LOG_LEVEL=3` is TensorFlow's own switch, and child processes inherit it, but some
lines ignore it: the CUDA stub's "Could not find cuda drivers" and absl's "All log messages
before absl::InitializeLog()" are written while TensorFlow's shared libraries load, before any
setting is read, and the converter prints "fully_quantize: ..." directly. `quiet()` sets the
switch and holds back those lines while TensorFlow loads; `held_back()` does the same around
any other call that prints them. Other output is passed on unchanged, and everything is passed
on when the call fails. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from tfimp._util import import_hooks

LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "3"
_NOISE = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # absl: I0000 00:00:17.3 5216 file.cc:31]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] "  # TensorFlow's older format
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with"  # cpu_feature_guard
    r"|fully_quantize: \d+, inference_type: "  # the converter's quantizer
)


def is_noise(line: str) -> bool:
    """Whether `line` is one of TensorFlow's C++ log lines."""
    return _NOISE.match(line) is not None


def is_quiet() -> bool:
    """Whether TensorFlow's C++ logs are turned off (`TF_CPP_MIN_LOG_LEVEL=3`)."""
    return os.environ.get(LEVEL_VAR, "").strip() == QUIET_LEVEL


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """Holds back what is written to file descriptor 2 (C++ code too) and passes it on after.

    TensorFlow's C++ log lines are dropped, unless the block raises; other lines are kept.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode(errors="replace")
            kept = text.splitlines(keepends=True)
            if not failed:
                kept = [line for line in kept if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def held_back_if_quiet() -> contextlib.AbstractContextManager:
    """`held_back()` when TensorFlow's C++ logs are turned off, else nothing."""
    return held_back() if is_quiet() else contextlib.nullcontext()


def _load_held_back(load) -> None:
    with held_back():
        load()


def quiet() -> None:
    """Turns TensorFlow's C++ logs off here and in child processes, before TensorFlow loads."""
    os.environ[LEVEL_VAR] = QUIET_LEVEL
    if "tensorflow" not in sys.modules:
        import_hooks.around_first_import("tensorflow", _load_held_back)
