"""How the `tfimp` verbs report errors.

A user error (a bad argument, a missing file, a model a runtime refuses) prints one line
naming the problem and exits with status 2, argparse's convention; `--debug` (any verb) or
`TFIMP_DEBUG=1` prints its traceback too. An unexpected error, one that tfimp did not raise
on purpose, keeps its traceback: it is a bug to report.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from tfimp._util.errors import TfimpError

__all__ = ["DEBUG_HELP", "debugging", "exit_code", "is_user_error", "one_line", "verb"]

DEBUG_HELP = "--debug (any verb) or TFIMP_DEBUG=1: show the traceback of an error"
_PACKAGE = Path(__file__).resolve().parents[1]
_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)
_LIMIT = 1000


def debugging(argv: list[str]) -> bool:
    """Whether `--debug` is among `argv` or `TFIMP_DEBUG` is set (and not 0)."""
    return "--debug" in argv or os.environ.get("TFIMP_DEBUG", "").strip() not in ("", "0")


def is_user_error(error: BaseException) -> bool:
    """True for errors tfimp raises on purpose: `TfimpError`s, errors about the user's
    paths, and `ValueError`/`TypeError`s raised by tfimp's own code (not from inside
    TensorFlow, Keras or numpy, where they mean an unchecked case: a bug)."""
    if isinstance(error, TfimpError):
        return True
    if isinstance(error, _PATH_ERRORS + (ValueError, TypeError)):
        return _raised_in_tfimp(error)
    return False


def _raised_in_tfimp(error: BaseException) -> bool:
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def exit_code(error: BaseException) -> int:
    """2 for a bad input; an error class may say otherwise (1: the work ran and its result
    failed a check, e.g. a verification beyond the tolerance)."""
    return int(getattr(error, "exit_code", 2))


def one_line(error: BaseException) -> str:
    """The error's message on one line (long ones cut, with a pointer to --debug)."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > _LIMIT:
        text = text[:_LIMIT] + " ... (the full message: --debug)"
    return text


def verb(prog: str) -> Callable:
    """Decorates a verb's `main(argv) -> int` with this error reporting."""

    def decorate(main: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            argv = sys.argv[1:] if argv is None else list(argv)
            debug = debugging(argv)
            try:
                return main([a for a in argv if a != "--debug"])
            except Exception as e:  # noqa: BLE001 - sorted into user errors and bugs below
                if not is_user_error(e):
                    raise
                if debug:
                    traceback.print_exc()
                print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
                return exit_code(e)

        return run

    return decorate
