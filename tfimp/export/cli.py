"""`tfimp export` and `tfimp inspect`."""

from __future__ import annotations

import argparse
import zipfile

import numpy as np

from tfimp._util import validate as v
from tfimp._util.cli import DEBUG_HELP, verb
from tfimp._util.errors import InvalidArgumentError

_DATA_HELP = ".npy file of inputs (samples first), or 'digits8'/'digits28' for the offline digits"


def _load_inputs(flag: str, spec: str | None, flatten: bool = True):
    """Inputs (and labels, when the source has them) from a .npy/.npz path or a dataset name."""
    if spec is None:
        return None, None
    if spec in ("digits8", "digits28"):
        from tfimp.data import digits

        ds = digits(size=int(spec[6:]), flatten=flatten)
        return ds.x_test, ds.y_test
    path = v.input_file(flag, spec, "'digits8', 'digits28' or an existing .npy/.npz file")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head.startswith((b"\x93NUMPY", b"PK")):
        v.fail(flag, spec, f"a .npy file (or a .npz with `x` and `y`) written by numpy; this "
               f"file is not one (it starts with {head!r}, not numpy's header)")
    try:
        if spec.endswith(".npz"):
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data.files:
                    v.fail(flag, spec, f"a .npz file with an array `x` (and `y` for labels); "
                           f"it holds {data.files}")
                return data["x"], data["y"] if "y" in data.files else None
        return np.load(path, allow_pickle=False), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, InvalidArgumentError):
            raise
        if "pickled" in str(e):
            v.fail(flag, spec, "a .npy file (or a .npz with `x` and `y`) of numbers; this one "
                   "holds Python objects (pickled data), which tfimp does not load")
        v.fail(flag, spec, f"a .npy file (or a .npz with `x` and `y`) written by numpy; it "
               f"cannot be read ({type(e).__name__}: {e})")


def _load_model(path: str):
    import keras

    from tfimp._util.keras_objects import register_keras_objects

    v.keras_file("model", path)
    register_keras_objects()  # a pruned model names tfimp's wrapper and constraint
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many kinds for one bad file
        v.fail("model", path, f"a .keras model that Keras can load; loading it failed with "
               f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfimp export",
                                description="Convert a .keras model to a verified .tflite.",
                                epilog=DEBUG_HELP)
    p.add_argument("model", help="a .keras file (a pruned model is stripped)")
    p.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    p.add_argument("-q", "--quantization", default="float32",
                   choices=["float32", "dynamic", "float16", "int8", "int16x8"])
    p.add_argument("--integer-io", action="store_true", help="int8 inputs and outputs (int8)")
    p.add_argument("--sparse", default="auto", choices=["true", "false", "auto"])
    p.add_argument("--representative", help=_DATA_HELP)
    p.add_argument("--verify", help=".npz with x and y, or 'digits8'/'digits28'")
    p.add_argument("--tolerance", type=float, help="largest accepted accuracy drop (fraction)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _check_cli_inputs(model, config, rep, x) -> None:
    """The checks `to_tflite` makes of its data, naming the command's flags."""
    from tfimp.quantization.qat import is_quantize_aware

    if rep is None and config.needs_representative_data and not is_quantize_aware(model):
        v.fail("--representative", None, f"given with -q {config.name}: ~100-500 typical "
               "inputs as a .npy/.npz file, or 'digits8'/'digits28'")
    for flag, data in (("--representative", rep), ("--verify", x)):
        if data is not None:
            v.matches_inputs(flag, data, model)
            v.finite(flag, data)


@verb("tfimp export")
def export_main(argv: list[str]) -> int:
    """`tfimp export MODEL -o OUT.tflite [options]`; prints the export report."""
    args = _export_parser().parse_args(argv)
    from tfimp.export import quantization as q
    from tfimp.export.convert import to_tflite

    v.keras_file("model", args.model)
    output = v.output_file("--output", args.output)
    for flag, spec in (("--representative", args.representative), ("--verify", args.verify)):
        if spec is not None and spec not in ("digits8", "digits28"):
            v.input_file(flag, spec, "'digits8', 'digits28' or an existing .npy/.npz file")
    if args.integer_io and args.quantization != "int8":
        v.fail("--integer-io", True, f"used with -q int8 (integer inputs and outputs are an "
               f"int8 setting), not with -q {args.quantization}")
    model = _load_model(args.model)
    shapes = v.model_input_shapes(model)
    flatten = shapes is None or len(shapes[0]) == 2
    config = q.Int8(integer_io=True) if args.integer_io else q.get(args.quantization)
    rep, _ = _load_inputs("--representative", args.representative, flatten)
    x, y = _load_inputs("--verify", args.verify, flatten)
    _check_cli_inputs(model, config, rep, x)
    sparse = {"true": True, "false": False, "auto": "auto"}[args.sparse]
    art = to_tflite(model, output, quantization=config, sparse=sparse, representative_data=rep,
                    verify=None if x is None else (x, y), tolerance=args.tolerance)
    print(art.report.to_json() if args.json else art.report.table())
    return 0


@verb("tfimp inspect")
def inspect_main(argv: list[str]) -> int:
    """`tfimp inspect MODEL [--json] [--all]`: per-tensor encoding, bytes, zeros; ops."""
    p = argparse.ArgumentParser(prog="tfimp inspect",
                                description="Read a .tflite back: tensors, encodings, zeros, ops.",
                                epilog=DEBUG_HELP)
    p.add_argument("model", help="a .tflite file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--all", action="store_true", help="list activations too, not only constants")
    args = p.parse_args(argv)
    from tfimp.export.inspect import inspect

    info = inspect(args.model)
    print(info.to_json() if args.json else info.table(all_tensors=args.all))
    return 0
