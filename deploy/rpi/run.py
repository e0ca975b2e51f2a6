#!/usr/bin/env python3
"""Runs the bundled LiteRT model on an input and prints the top-k classes, or JSON.

Needs only numpy and the LiteRT runtime (`pip install -r requirements.txt`).

    python3 run.py INPUT [INPUT ...] [--top-k K] [--json] [--threads N] [--no-preprocess]
    python3 run.py --check            # verify the model, run it on zeros and random input
    python3 run.py --bench 100        # latency with the LiteRT interpreter

INPUT, one per model input: an `.npy` array of real values (the manifest's preprocessing and
quantization are applied; a leading batch axis runs each sample), an image (`.png`, `.pgm`,
`.ppm` built in; other formats when Pillow is installed), or raw bytes (`.bin`, `.raw`) already
in the model's input type and shape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = "install the bundle's requirements: python3 -m pip install -r requirements.txt"


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        sys.exit(f"error: {sys.executable} has no `{module}`; {INSTALL_HINT}")


np = _require("numpy")
IMAGE_EXTENSIONS = (".png", ".pgm", ".ppm", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class BundleError(Exception):
    """The bundle or an input is not usable; the message says why and what to do."""


def load_manifest(folder: str) -> dict:
    path = os.path.join(folder, "manifest.json")
    if not os.path.isfile(path):
        raise BundleError(f"{path} is missing; copy the whole bundle folder.")
    with open(path) as f:
        return json.load(f)


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

def _png(data: bytes) -> np.ndarray:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise BundleError("not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise BundleError("only 8-bit, non-interlaced grey/RGB(A) PNGs are built in; "
                          "install Pillow for other images")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    return _unfilter(rows, channels).reshape(height, width, channels)


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    out = np.zeros((rows.shape[0], rows.shape[1] - 1), np.uint8)
    prev = np.zeros(rows.shape[1] - 1, np.int32)
    for y, row in enumerate(rows):
        kind, line = row[0], row[1:].astype(np.int32)
        if kind == 1:
            line = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:
            line = (line + prev) & 255
        elif kind in (3, 4):
            for i in range(line.size):
                left = line[i - bpp] if i >= bpp else 0
                if kind == 3:
                    line[i] = (line[i] + (left + prev[i]) // 2) & 255
                else:
                    upleft = prev[i - bpp] if i >= bpp else 0
                    line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 255
        out[y] = line
        prev = line
    return out


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _netpbm(data: bytes) -> np.ndarray:
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval > 255:
        raise BundleError("only binary 8-bit PGM (P5) and PPM (P6) are built in")
    channels = 1 if magic == b"P5" else 3
    pixels = np.frombuffer(data[pos + 1:pos + 1 + width * height * channels], np.uint8)
    return pixels.reshape(height, width, channels)


def read_image(path: str, height: int, width: int, channels: int) -> np.ndarray:
    """The image as float32 (height, width, channels) with values 0..255."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
            pixels = np.asarray(img, np.uint8).reshape(height, width, channels)
        return pixels.astype(np.float32)
    with open(path, "rb") as f:
        data = f.read()
    if path.lower().endswith(".png"):
        pixels = _png(data)
    elif path.lower().endswith((".pgm", ".ppm")):
        pixels = _netpbm(data)
    else:
        raise BundleError(f"{path}: install Pillow (`pip install pillow`) to read this format")
    if pixels.shape[2] in (2, 4):
        pixels = pixels[..., :-1]
    if pixels.shape[2] == 3 and channels == 1:
        pixels = (pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114]))[..., None]
    elif pixels.shape[2] == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=2)
    rows = np.arange(height) * pixels.shape[0] // height
    cols = np.arange(width) * pixels.shape[1] // width
    return pixels[rows][:, cols].astype(np.float32)


def read_input(path: str, spec: dict) -> tuple[np.ndarray, bool]:
    """The samples in `path` (batch first) and whether they still need preprocessing."""
    shape, dtype = spec["shape"], np.dtype(spec["dtype"])
    lower = path.lower()
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
        x = np.load(path, allow_pickle=False)
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
    return (np.asarray(x, np.float32) - mean) / std


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


def bench(interpreter, manifest: dict, runs: int) -> dict:
    batches = synthetic(manifest, "random")
    for detail, batch in zip(interpreter.get_input_details(), batches):
        interpreter.set_tensor(detail["index"], batch)
    interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1000.0)
    times.sort()
    return {"runs": runs, "median_us": times[len(times) // 2],
            "p90_us": times[min(len(times) - 1, int(0.9 * len(times)))],
            "avg_us": sum(times) / len(times), "min_us": times[0]}


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
    parser.add_argument("--bundle", default=HERE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (args.inputs or args.check or args.bench):
        parser.error("give an input file, --check or --bench RUNS")
    if args.top_k < 1 or args.threads < 1 or args.bench < 0:
        parser.error("--top-k and --threads must be >= 1, --bench >= 0")
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
            print(json.dumps(bench(interpreter, manifest, args.bench)))
            return 0
        batches = prepare(args.inputs, manifest, args.preprocess)
        report_results(run_samples(interpreter, manifest, batches), manifest, args)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
