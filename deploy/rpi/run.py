#!/usr/bin/env python3
"""Runs the bundled LiteRT model on an input and prints the top-k classes, or JSON.

Needs only numpy, the LiteRT runtime and Pillow for images (`pip install -r requirements.txt`).

    python3 run.py INPUT [INPUT ...] [--top-k K] [--json] [--threads N] [--no-preprocess]
    python3 run.py --check            # verify the model, run it on zeros and random input
    python3 run.py --bench 100        # latency with the LiteRT interpreter, as `tfimp bench`

INPUT, one per model input: an `.npy` array of real values (the manifest's preprocessing and
quantization are applied; a leading batch axis runs each sample), an image (any format Pillow
reads: .png, .jpg, .pgm, ...), or raw bytes (`.bin`, `.raw`) already in the model's input type
and shape.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = "install the bundle's requirements: python3 -m pip install -r requirements.txt"


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        sys.exit(f"error: {sys.executable} has no `{module}`; {INSTALL_HINT}")


def _load_timing():
    """`timing.py` beside this file: tfimp's timing routine, so figures match `tfimp bench`."""
    spec = importlib.util.spec_from_file_location("bundle_timing", os.path.join(HERE, "timing.py"))
    module = importlib.util.module_from_spec(spec)
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the bundle
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes
    return module


np = _require("numpy")
timing = _load_timing()
IMAGE_EXTENSIONS = (".png", ".pgm", ".ppm", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class BundleError(Exception):
    """The bundle or an input is not usable; the message says why and what to do."""


def load_manifest(folder: str) -> dict:
    path = os.path.join(folder, "manifest.json")
    if not os.path.isfile(path):
        raise BundleError(f"{path} is missing; copy the whole bundle folder.")
    try:
        with open(path) as f:
            manifest = json.load(f)
        model, inputs, outputs = manifest["model"], manifest["inputs"], manifest["outputs"]
        fields = [model["file"], model["sha256"]]
        fields += [spec[k] for spec in inputs + outputs for k in ("name", "shape", "dtype")]
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{path} is damaged ({type(e).__name__}: {e}); copy the bundle "
                          f"again or rebuild it with `tfimp bundle`.") from None
    return manifest


def verify_model(folder: str, manifest: dict) -> str:
    """The model's path, after checking its sha256 against the manifest."""
    path = os.path.join(folder, manifest["model"]["file"])
    if not os.path.isfile(path):
        raise BundleError(f"{path} is missing; copy the whole bundle folder.")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    expected = manifest["model"]["sha256"]
    if digest.hexdigest() != expected:
        raise BundleError(
            f"{path} does not match manifest.json (sha256 {digest.hexdigest()}, expected "
            f"{expected}); refusing to load it. The file was changed or damaged: copy the "
            f"bundle again or rebuild it with `tfimp bundle`.")
    return path


def make_interpreter(path: str, threads: int):
    Interpreter = _require("ai_edge_litert.interpreter").Interpreter
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


# ---- inputs -------------------------------------------------------------------------------

def read_image(path: str, height: int, width: int, channels: int) -> np.ndarray:
    """The image as float32 (height, width, channels) with values 0..255."""
    image = _require("PIL.Image")
    try:
        with image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
            pixels = np.asarray(img, np.uint8).reshape(height, width, channels)
    except OSError as e:
        raise BundleError(f"{path}: not an image that Pillow can read ({e})") from None
    return pixels.astype(np.float32)


def read_input(path: str, spec: dict) -> tuple[np.ndarray, bool]:
    """The samples in `path` (batch first) and whether they still need preprocessing."""
    shape, dtype = spec["shape"], np.dtype(spec["dtype"])
    lower = path.lower()
    if not os.path.isfile(path):
        raise BundleError(f"{path}: no such file")
    if lower.endswith((".bin", ".raw")):
        data = np.fromfile(path, dtype)
        if data.size % int(np.prod(shape[1:])):
            raise BundleError(f"{path}: {data.size} {dtype.name} values do not fill samples of "
                              f"shape {shape[1:]}")
        return data.reshape(-1, *shape[1:]), False
    if lower.endswith(IMAGE_EXTENSIONS):
        if len(shape) != 4 or shape[3] not in (1, 3):
            raise BundleError(f"input {spec['name']!r} has shape {shape}, not an image (N,H,W,C)")
        return read_image(path, shape[1], shape[2], shape[3])[None], True
    if lower.endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise BundleError(f"{path}: not a readable .npy array ({e})") from None
        if x.dtype.kind not in "biuf":
            raise BundleError(f"{path}: holds {x.dtype} values, not numbers")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise BundleError(f"{path}: holds NaN or infinite values")
        if list(x.shape) == list(shape[1:]):
            x = x[None]
        if list(x.shape[1:]) != list(shape[1:]):
            raise BundleError(f"{path}: shape {list(x.shape)} does not match the input "
                              f"{spec['name']!r} of shape {shape} (batch axis optional)")
        return x, True
    raise BundleError(f"{path}: unknown input type; use .npy, an image or .bin/.raw")


def preprocess(x: np.ndarray, manifest: dict) -> np.ndarray:
    pre = manifest.get("preprocessing") or {}
    mean = np.asarray(pre.get("mean", 0.0), np.float32)
    std = np.asarray(pre.get("std", 1.0), np.float32)
    try:
        return (np.asarray(x, np.float32) - mean) / std
    except ValueError:
        raise BundleError(f"the manifest's preprocessing (mean {mean.tolist()}, std "
                          f"{std.tolist()}) does not fit inputs of shape {list(x.shape[1:])}: "
                          f"one value or one per channel; rebuild the bundle") from None


def quantize(x: np.ndarray, spec: dict) -> np.ndarray:
    """Real values to the input's type, with the manifest's scale and zero point."""
    dtype, quant = np.dtype(spec["dtype"]), spec.get("quantization")
    if dtype.kind == "f" or not quant:
        return np.asarray(x).astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / quant["scale"] + quant["zero_point"])
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, spec: dict) -> np.ndarray:
    quant = spec.get("quantization")
    if np.dtype(spec["dtype"]).kind == "f" or not quant:
        return np.asarray(q, np.float32)
    return ((np.asarray(q, np.float64) - quant["zero_point"]) * quant["scale"]).astype(np.float32)


# ---- running ------------------------------------------------------------------------------

def run_samples(interpreter, manifest: dict, batches: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Runs each sample; returns, per sample, the dequantized outputs."""
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    results = []
    for i in range(len(batches[0])):
        for detail, batch in zip(ins, batches):
            interpreter.set_tensor(detail["index"], batch[i:i + 1].reshape(detail["shape"]))
        interpreter.invoke()
        results.append([dequantize(interpreter.get_tensor(d["index"]), spec)
                        for d, spec in zip(outs, manifest["outputs"])])
    return results


def prepare(paths: list[str], manifest: dict, preprocessing: bool) -> list[np.ndarray]:
    specs = manifest["inputs"]
    if len(paths) != len(specs):
        raise BundleError(f"the model has {len(specs)} input(s) "
                          f"({', '.join(s['name'] for s in specs)}); got {len(paths)} file(s)")
    batches = []
    for path, spec in zip(paths, specs):
        x, needs_processing = read_input(path, spec)
        if needs_processing:
            x = quantize(preprocess(x, manifest) if preprocessing else x, spec)
        batches.append(x.astype(np.dtype(spec["dtype"])))
    if len({len(b) for b in batches}) != 1:
        raise BundleError("all inputs must hold the same number of samples")
    return batches


def synthetic(manifest: dict, kind: str, seed: int = 0) -> list[np.ndarray]:
    rng, batches = np.random.default_rng(seed), []
    for spec in manifest["inputs"]:
        shape, dtype = spec["shape"], np.dtype(spec["dtype"])
        if kind == "zeros":
            batches.append(quantize(np.zeros(shape, np.float32), spec))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            batches.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape,
                                        dtype=dtype))
        else:
            batches.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
    return batches


def top_k(scores: np.ndarray, k: int, labels: list | None) -> list[dict]:
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]
    return [{"index": int(i), "label": labels[i] if labels and i < len(labels) else None,
             "score": float(flat[i])} for i in order]


def check(interpreter, manifest: dict, path: str) -> dict:
    """Runs the model on zeros and on random input; the report of what was checked."""
    report = {"ok": True, "model": os.path.basename(path), "sha256": manifest["model"]["sha256"],
              "runtime": runtime_version(), "runs": {}}
    built_with = (manifest.get("runtimes") or {}).get("ai-edge-litert")
    if built_with and _version(report["runtime"]) < _version(built_with):
        report["warnings"] = [f"LiteRT {report['runtime']} here is older than {built_with}, "
                              f"which the bundle was checked with; {INSTALL_HINT}"]
    for kind in ("zeros", "random"):
        start = time.perf_counter()
        outputs = run_samples(interpreter, manifest, synthetic(manifest, kind))[0]
        elapsed_us = (time.perf_counter() - start) * 1e6
        finite = all(bool(np.all(np.isfinite(o))) for o in outputs)
        report["ok"] = report["ok"] and finite
        report["runs"][kind] = {"latency_us": round(elapsed_us, 1), "finite": finite,
                                "output_shapes": [list(o.shape) for o in outputs]}
    return report


def bench(interpreter, manifest: dict, runs: int, warmup: int) -> dict:
    """Latency on random input: `warmup` runs set apart, then `runs` timed ones (us)."""
    for detail, batch in zip(interpreter.get_input_details(), synthetic(manifest, "random")):
        interpreter.set_tensor(detail["index"], batch)
    raw = timing.measure(interpreter.invoke, runs, warmup)
    return {"runs": runs, "warmup": warmup, **timing.summarize(raw["times_us"])}


def _version(text: str) -> tuple:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def runtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", help="one file per model input")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print all outputs as JSON")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                        help="the .npy/image values are already normalized")
    parser.add_argument("--check", action="store_true",
                        help="verify the model and run it on zeros and random input")
    parser.add_argument("--bench", type=int, metavar="RUNS", default=0,
                        help="time RUNS inferences on random input")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed inferences before --bench's (default 5, as `tfimp bench`)")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (or set TFIMP_DEBUG=1)")
    parser.add_argument("--bundle", default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (args.inputs or args.check or args.bench):
        parser.error("give an input file, --check or --bench RUNS")
    if args.top_k < 1 or args.threads < 1 or args.bench < 0 or args.warmup < 0:
        parser.error("--top-k and --threads must be >= 1, --bench and --warmup >= 0")
    return args


def report_results(results: list, manifest: dict, args: argparse.Namespace) -> None:
    labels = manifest.get("labels")
    if args.json:
        print(json.dumps({"samples": [{"outputs": [o.reshape(-1).tolist() for o in outs],
                                       "top_k": top_k(outs[0], args.top_k, labels)}
                                      for outs in results]}))
        return
    for n, outs in enumerate(results):
        if len(results) > 1:
            print(f"sample {n}:")
        for row in top_k(outs[0], args.top_k, labels):
            name = row["label"] if row["label"] is not None else f"class {row['index']}"
            print(f"  {row['score']:10.5f}  {name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        manifest = load_manifest(args.bundle)
        path = verify_model(args.bundle, manifest)
        # Inputs are read (and refused) before the runtime starts and prints its notices.
        batches = prepare(args.inputs, manifest, args.preprocess) if args.inputs else None
        interpreter = make_interpreter(path, args.threads)
        if args.check:
            report = check(interpreter, manifest, path)
            print(json.dumps(report) if args.json else
                  f"{'OK' if report['ok'] else 'FAILED'}: {report['model']} sha256 verified, "
                  f"ran on zeros and random input (LiteRT {report['runtime']})")
            for warning in report.get("warnings", []):
                print(f"warning: {warning}", file=sys.stderr)
            return 0 if report["ok"] else 1
        if args.bench:
            print(json.dumps(bench(interpreter, manifest, args.bench, args.warmup)))
            return 0
        report_results(run_samples(interpreter, manifest, batches), manifest, args)
    except BundleError as e:
        if args.debug or os.environ.get("TFIMP_DEBUG", "").strip() not in ("", "0"):
            import traceback

            traceback.print_exc()
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
