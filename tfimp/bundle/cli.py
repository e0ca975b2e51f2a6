"""`tfimp bundle` and `tfimp deploy`: build a device bundle; copy it to a board and check it."""

from __future__ import annotations

import argparse
import json

from tfimp._util.cli import DEBUG_HELP, verb

from tfimp.bundle.targets import TARGETS
from tfimp.export.boards import BOARDS


def _bundle_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfimp bundle",
                                description="Build a checked device bundle for a .tflite model.",
                                epilog=DEBUG_HELP)
    p.add_argument("model", help="the .tflite model")
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("--out", required=True, help="bundle folder (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--board", help=f"micro: the board the model must fit ({', '.join(BOARDS)})")
    p.add_argument("--compression", choices=["none", "pruning", "lut", "sparse", "auto"],
                   help="micro: store weights in TFLite Micro's DECODE encodings (pruning "
                   "bitmap, LUT) or for tfimp's sparse FULLY_CONNECTED kernel, verified bit "
                   "for bit; auto takes the smallest that fits")
    p.add_argument("--labels", help="text file with one class label per line")
    p.add_argument("--mean", type=_floats, help="preprocessing (x - mean) / std: a number, or "
                   "one per channel separated by commas (e.g. 123.7,116.3,103.5)")
    p.add_argument("--std", type=_floats, help="preprocessing (x - mean) / std, like --mean")
    p.add_argument("--export-report", help="JSON of the export report, to record its settings")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip measuring latency/memory on this machine")
    return p


def _floats(text: str) -> float | tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas, "
                                         f"got {text!r}") from None
    return values[0] if len(values) == 1 else values


@verb("tfimp bundle")
def bundle_main(argv: list[str] | None = None) -> int:
    """`tfimp bundle --target android|rpi|micro MODEL.tflite --out DIR`."""
    args = _bundle_parser().parse_args(argv)
    from tfimp.bundle.build import build

    pre = None
    if args.mean is not None or args.std is not None:
        pre = {"mean": 0.0 if args.mean is None else args.mean,
               "std": 1.0 if args.std is None else args.std}
    out = build(args.model, args.target, args.out, force=args.force, board=args.board,
                labels=args.labels, preprocessing=pre, profile=args.profile,
                export_report=args.export_report,
                compression=None if args.compression in (None, "none") else args.compression)
    print(f"{args.target} bundle written to {out}")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:<24}{path.stat().st_size:>12,} bytes")
    return 0


def _deploy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfimp deploy",
                                description="Copy a bundle to a board over ssh and check it there.",
                                epilog=DEBUG_HELP)
    p.add_argument("target", choices=["rpi"], help="the bundle's device family")
    p.add_argument("host", help="USER@HOST")
    p.add_argument("bundle", help="the bundle folder built by `tfimp bundle --target rpi`")
    p.add_argument("--port", type=int, default=22)
    p.add_argument("--identity", help="ssh private key file")
    p.add_argument("--python", default="python3", help="the board's Python (default python3)")
    p.add_argument("--remote-dir", help="destination on the board (default tfimp/<name>)")
    p.add_argument("--setup", action="store_true",
                   help="create a virtualenv there and pip install the bundle's requirements")
    p.add_argument("-o", "--ssh-option", action="append", default=[],
                   help="extra ssh/scp -o option, e.g. StrictHostKeyChecking=accept-new")
    p.add_argument("--json", action="store_true", help="print the check's report as JSON")
    return p


@verb("tfimp deploy")
def deploy_main(argv: list[str] | None = None) -> int:
    """`tfimp deploy rpi USER@HOST DIR [--port N] [--identity KEY] [--python PY]`."""
    args = _deploy_parser().parse_args(argv)
    from tfimp.bundle.deploy import deploy_rpi

    result = deploy_rpi(args.host, args.bundle, port=args.port, identity=args.identity,
                        python=args.python, remote_dir=args.remote_dir, setup=args.setup,
                        ssh_options=args.ssh_option)
    if args.json:
        print(json.dumps({"host": result.host, "remote_dir": result.remote_dir,
                          "check": result.check}))
        return 0
    runs = result.check["runs"]
    print(f"deployed to {result.host}:{result.remote_dir}; sha256 verified there; "
          f"LiteRT {result.check['runtime']} ran it on zeros ({runs['zeros']['latency_us']:.0f} us)"
          f" and random input ({runs['random']['latency_us']:.0f} us)")
    return 0
