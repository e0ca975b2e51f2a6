"""The `tfimp` command: `tfimp VERB [args]`.

Each verb lives next to the code it drives and is a function `main(argv) -> int` that parses
its own arguments; this module only dispatches, so `tfimp --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from tfimp._util import tf_logs

VERBS = {
    "run": ("tfimp.pipeline.runner", "main", "a recipe end to end: IMP, export, verify, profile"),
    "export": ("tfimp.export.cli", "export_main", "convert a Keras model to a verified .tflite"),
    "inspect": ("tfimp.export.cli", "inspect_main", "per-tensor encoding, bytes, zeros; ops"),
    "bench": ("tfimp.profile.cli", "main", "profile and compare .tflite models"),
    "bundle": ("tfimp.bundle.cli", "bundle_main", "build a device bundle (android|rpi|micro)"),
    "deploy": ("tfimp.bundle.cli", "deploy_main", "copy a bundle to a board and check it"),
    "search": ("tfimp.search.cli", "main", "search IMP settings: Pareto front, workers, Ray"),
}


VERBOSE_FLAG = "--verbose"


def _usage() -> str:
    lines = ["usage: tfimp [--verbose] VERB [args]   (tfimp VERB --help for a verb's arguments)",
             "", "verbs:"]
    lines += [f"  {name:<8} {help_}" for name, (_, _, help_) in VERBS.items()]
    lines += ["", f"{VERBOSE_FLAG} (anywhere before a lone --): show TensorFlow's C++ log lines, "
              "which are hidden by default",
              "--debug (any verb) or TFIMP_DEBUG=1: show the traceback of an error; without it a "
              "bad input prints one line and exits with status 2"]
    return "\n".join(lines)


def _split_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """`argv` without `--verbose` (before a lone `--`), and whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a != VERBOSE_FLAG] + argv[end:]
    return kept, len(kept) != len(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tfimp` console script."""
    argv, verbose = _split_verbose(sys.argv[1:] if argv is None else list(argv))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from tfimp import __version__

        print(__version__)
        return 0
    verb = argv[0]
    if verb not in VERBS:
        print(f"tfimp: unknown verb {verb!r}; expected one of: {', '.join(VERBS)}", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    if not verbose:
        tf_logs.quiet()  # before the verb's module can load TensorFlow
    module, func, _ = VERBS[verb]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
