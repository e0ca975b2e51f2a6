"""`tfimp bench MODEL [MODEL...]`: profile and compare .tflite models."""

from __future__ import annotations

import argparse
import sys

from tfimp._util import validate
from tfimp._util.cli import DEBUG_HELP, verb


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfimp bench",
        description="Profile .tflite models with LiteRT and TFLite Micro; compare them with "
                    "the first one.", epilog=DEBUG_HELP)
    p.add_argument("models", nargs="+", help=".tflite files; the first is the reference")
    p.add_argument("--runs", type=int, default=50, help="timed runs per setting (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs per setting")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to measure (default: 1 2)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per benchmark run")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="OUT.png", help="write a bar chart (needs matplotlib)")
    return p


@verb("tfimp bench")
def main(argv: list[str] | None = None) -> int:
    """Entry point of `tfimp bench`; returns the exit status."""
    from tfimp.profile.compare import compare

    args = _parser().parse_args(argv)
    if args.plot is not None:  # before the benchmark, not after it
        validate.output_file("--plot", args.plot)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            validate.fail("--plot", args.plot, "given only where matplotlib is installed "
                          "(pip install 'tfimp[plots]')")
    result = compare(args.models, runs=args.runs, warmup=args.warmup,
                     threads=tuple(args.threads), timeout=args.timeout)
    print(result.to_json() if args.json else result.table())
    if args.plot:
        print(f"wrote {result.plot(args.plot)}", file=sys.stderr)
    return 0
