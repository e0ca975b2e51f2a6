"""`manifest.json`: what a bundle holds, so the device side can check and feed the model."""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from tfimp._util.validate import not_a_file

FORMAT = "tfimp-bundle/1"
MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Normalization that turns raw values (e.g. 0..255 pixels) into the model's real inputs.

    The runners compute `(x - mean) / std` (per channel when given per channel), then quantize
    with the input's scale and zero point.

    Example:
        >>> Preprocessing(mean=127.5, std=127.5)      # pixels to [-1, 1]
        >>> Preprocessing(std=255.0)                  # pixels to [0, 1]
    """

    mean: float | tuple[float, ...] = 0.0
    std: float | tuple[float, ...] = 1.0

    def __post_init__(self):
        for name in ("mean", "std"):
            value = getattr(self, name)
            values = value if isinstance(value, (tuple, list)) else (value,)
            if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and np.isfinite(v) for v in values):
                raise ValueError(f"Argument `{name}` must be a finite number or a tuple of them "
                                 f"(one per channel). Received: {name}={value!r}")
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        if any(s == 0 for s in stds):
            raise ValueError(f"Argument `std` must be non-zero. Received: std={self.std!r}")

    def get_config(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict) -> Preprocessing:
        return cls(**config)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labels(labels) -> list[str] | None:
    """Labels from a file (one per line) or a sequence of strings; None stays None."""
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if not path.is_file():
            raise ValueError(f"Argument `labels` must be a text file with one label per line or "
                             f"a list of strings. Received: labels={str(labels)!r} "
                             f"{not_a_file(path)}")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    labels = list(labels)
    if not all(isinstance(x, str) for x in labels):
        raise ValueError(f"Argument `labels` must hold strings. Received: labels={labels[:5]!r}")
    return labels


def tensor_spec(t) -> dict:
    """Name, shape, dtype and quantization of one input or output tensor (an inspect row)."""
    quant = None
    if t.scales:
        quant = {"scale": t.scales[0], "zero_point": t.zero_points[0] if t.zero_points else 0}
        if len(t.scales) > 1:
            quant.update(scales=list(t.scales), zero_points=list(t.zero_points))
    return {"name": t.name, "index": t.index, "shape": list(t.shape), "dtype": t.dtype,
            "bytes": int(np.prod(t.shape or (1,))) * np.dtype(t.dtype).itemsize,
            "quantization": quant}


def sparsity_figures(info) -> dict:
    """Zeros over the weight tensors (rank >= 2) as stored in the file."""
    weights = [t for t in info.constants if len(t.shape) >= 2 and t.zero_fraction is not None]
    total = sum(t.size for t in weights)
    zeros = sum(round(t.zero_fraction * t.size) for t in weights)
    return {"weights": total, "zeros": zeros, "fraction": zeros / total if total else 0.0,
            "sparse_tensors": len(info.sparse_tensors),
            "sparse_index_bytes": info.index_bytes}


def size_figures(path: Path, info) -> dict:
    data = path.read_bytes()
    return {"file_bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
            "constant_bytes": info.constant_bytes}


def runtime_versions() -> dict:
    """Versions of the runtimes installed here, which checked and profiled the model."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("ai-edge-litert", "tflite-micro", "tensorflow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def host_description() -> dict:
    return {"machine": platform.machine(), "system": platform.system(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def make_manifest(path: Path, info, target: str, labels: list[str] | None,
                  preprocessing: Preprocessing | None, export: dict | None) -> dict:
    """The manifest of the model at `path`; targets add their own sections."""
    from tfimp import __version__

    tensors = {t.index: t for t in info.tensors if t.index >= 0}
    return {
        "format": FORMAT,
        "target": target,
        "tfimp_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"file": path.name, "sha256": sha256_file(path)},
        "inputs": [tensor_spec(tensors[i]) for i in info.inputs],
        "outputs": [tensor_spec(tensors[i]) for i in info.outputs],
        "ops": sorted(set(info.ops)),
        "op_counts": info.op_counts,
        "preprocessing": None if preprocessing is None else preprocessing.get_config(),
        "labels": labels,
        "sparsity": sparsity_figures(info),
        "size": size_figures(path, info),
        "export": export,
        "runtimes": runtime_versions(),
        "profile": None,
    }


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of the bundle in `folder`."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"Argument `bundle` must be a folder built by `tfimp bundle`. "
                                f"Received: bundle={str(folder)!r} (no {MANIFEST} in it)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"Argument `bundle` must be a folder built by `tfimp bundle`; its "
                         f"{MANIFEST} is damaged ({e}). Received: bundle={str(folder)!r}. "
                         "Rebuild the bundle with `tfimp bundle`.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"Argument `bundle` must be a folder built by `tfimp bundle` (format "
                         f"{FORMAT!r}); {path} is not. Received: bundle={str(folder)!r}")
    return manifest


def verify_bundle(folder: str | os.PathLike) -> dict:
    """The manifest, after checking that the model's sha256 matches it."""
    manifest = read_manifest(folder)
    try:
        model, expected = Path(folder) / manifest["model"]["file"], manifest["model"]["sha256"]
    except (KeyError, TypeError):
        raise ValueError(f"Argument `bundle` must be a folder built by `tfimp bundle`; its "
                         f"{MANIFEST} names no model file and sha256. Received: "
                         f"bundle={str(folder)!r}") from None
    actual = sha256_file(model) if model.is_file() else "missing"
    if actual != expected:
        raise ValueError(f"{model} does not match {MANIFEST}: sha256 {actual}, expected "
                         f"{manifest['model']['sha256']}. Rebuild the bundle with `tfimp bundle`.")
    return manifest
