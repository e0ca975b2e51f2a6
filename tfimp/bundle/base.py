"""What every bundle target shares: its contract, its context, its error and README fields.

`targets` (the device families) and `micro_files` (the micro target's files) both import from
here; nothing here imports them, so imports go one way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from tfimp._util.errors import TfimpError

DEFAULT_THREADS = 4
DEFAULT_RUNS = 50


class BundleError(TfimpError, ValueError):
    """The model cannot be bundled for the target; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class Context:
    """What a target needs to write its files: the staged model and its manifest."""

    model: Path
    info: object  # tfimp.export.ModelInfo
    manifest: dict
    board: str | None
    profile: bool
    compression: object = None  # micro: None, a mode name or a tfimp.export.MicroCompression


class Target:
    """A device family; subclasses set `name` and override `check` and `write`."""

    name: ClassVar[str] = ""
    needs_board: ClassVar[bool] = False

    def check(self, info, board: str | None, compression=None) -> None:
        """Raises `BundleError` when the target cannot run the model as exported."""
        if board is not None and not self.needs_board:
            raise BundleError(f"Argument `board` applies to the micro target only. Received: "
                              f"board={board!r} with target={self.name!r}. Drop --board.")
        if compression is not None and not self.needs_board:
            raise BundleError(f"Argument `compression` applies to the micro target only. "
                              f"Received: compression={compression!r} with target="
                              f"{self.name!r}. Drop --compression.")

    def write(self, stage: Path, ctx: Context) -> None:
        """Writes the target's files into `stage` and completes `ctx.manifest`."""
        raise NotImplementedError(f"{type(self).__name__} must override `write`.")


def describe_tensors(specs: list[dict]) -> str:
    """One line for a README: name, shape, dtype and quantization of each tensor."""
    parts = []
    for s in specs:
        q = s["quantization"]
        quant = f", scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else ""
        parts.append(f"`{s['name']}` {s['shape']} {s['dtype']}{quant}")
    return "; ".join(parts)


def readme_values(manifest: dict) -> dict:
    """The fields every README template uses."""
    sp, prof, pre = manifest["sparsity"], manifest.get("profile"), manifest.get("preprocessing")
    latency = "not measured"
    if prof and prof.get("median_us") is not None:
        latency = (f"median {prof['median_us']:.1f} us, p90 {prof['p90_us']:.1f} us "
                   f"({prof['tool']}, {prof['threads']} thread(s), {prof['runs']} runs, "
                   f"{prof['host']['machine']})")
    return {
        "tfimp_version": manifest["tfimp_version"], "model_file": manifest["model"]["file"],
        "sha256": manifest["model"]["sha256"], "model_bytes": manifest["size"]["file_bytes"],
        "gzip_bytes": manifest["size"]["gzip_bytes"],
        "inputs": describe_tensors(manifest["inputs"]),
        "outputs": describe_tensors(manifest["outputs"]),
        "sparsity": f"{100 * sp['fraction']:.1f}% zeros over {sp['weights']:,} weights "
                    f"({sp['sparse_tensors']} tensor(s) in sparse encoding)",
        "preprocessing": f"(x - {pre['mean']}) / {pre['std']}" if pre else "none",
        "profile": latency, "threads": DEFAULT_THREADS, "runs": DEFAULT_RUNS,
    }
