"""`tfimp export` and `tfimp inspect`."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

_DATA_HELP = ".npy file of inputs (samples first), or 'digits8'/'digits28' for the offline digits"


def _load_inputs(spec: str | None, flatten: bool = True):
    """Inputs (and labels, when the source has them) from a .npy/.npz path or a dataset name."""
    if spec is None:
        return None, None
    if spec in ("digits8", "digits28"):
        from tfimp.data import digits

        ds = digits(size=int(spec[6:]), flatten=flatten)
        return ds.x_test, ds.y_test
    if spec.endswith(".npz"):
        with np.load(spec) as data:
            return data["x"], data["y"] if "y" in data.files else None
    return np.load(spec), None


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfimp export",
                                description="Convert a .keras model to a verified .tflite.")
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


def export_main(argv: list[str]) -> int:
    """`tfimp export MODEL -o OUT.tflite [options]`; prints the export report."""
    args = _export_parser().parse_args(argv)
    import keras

    from tfimp._util.keras_objects import register_keras_objects
    from tfimp.export import quantization as q
    from tfimp.export.convert import to_tflite

    if not os.path.isfile(args.model):
        print(f"tfimp export: no such model file: {args.model}", file=sys.stderr)
        return 2
    register_keras_objects()  # a pruned model names tfimp's wrapper and constraint
    model = keras.models.load_model(args.model, compile=False)
    flatten = len(model.inputs[0].shape) == 2
    config = q.Int8(integer_io=True) if args.integer_io else q.get(args.quantization)
    rep, _ = _load_inputs(args.representative, flatten)
    x, y = _load_inputs(args.verify, flatten)
    sparse = {"true": True, "false": False, "auto": "auto"}[args.sparse]
    try:
        art = to_tflite(model, args.output, quantization=config, sparse=sparse,
                        representative_data=rep, verify=None if x is None else (x, y),
                        tolerance=args.tolerance)
    except ValueError as e:
        print(f"tfimp export: {e}", file=sys.stderr)
        return 1
    print(art.report.to_json() if args.json else art.report.table())
    return 0


def inspect_main(argv: list[str]) -> int:
    """`tfimp inspect MODEL [--json] [--all]`: per-tensor encoding, bytes, zeros; ops."""
    p = argparse.ArgumentParser(prog="tfimp inspect",
                                description="Read a .tflite back: tensors, encodings, zeros, ops.")
    p.add_argument("model", help="a .tflite file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--all", action="store_true", help="list activations too, not only constants")
    args = p.parse_args(argv)
    from tfimp.export.inspect import inspect

    try:
        info = inspect(args.model)
    except ValueError as e:
        print(f"tfimp inspect: {e}", file=sys.stderr)
        return 1
    print(info.to_json() if args.json else info.table(all_tensors=args.all))
    return 0
