"""Run directories: a folder per run named from a hash of its config, written atomically.

Layout of `<workdir>/imp-<hash>/`:

    config.json      the run's config (what the hash is taken of)
    manifest.json    progress: history rows, the round and epoch completed; written last
    init.npz         the weights at initialization (for rewinding)
    rewind.npz       the weights at the rewind point, when rewinding to step/epoch k
    round_NN.npz     end-of-round plain weights and masks
    state.npz        mid-round state: model weights, masks and optimizer variables

Every file is written to a temporary name and moved into place with `os.replace`, so a kill
at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import zipfile

import numpy as np

from tfimp._util.io import atomic_write_bytes, atomic_write_text

__all__ = ["RunDir", "config_hash", "pack", "unpack"]

MANIFEST_VERSION = 1


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serializable config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class RunDir:
    """A run's folder; refuses folders that belong to another run or are corrupted."""

    def __init__(self, parent: os.PathLike, config: dict):
        self.config = config
        self.hash = config_hash(config)
        self.path = pathlib.Path(parent) / f"imp-{self.hash}"
        self.created: pathlib.Path | None = None  # the top folder that open() made

    def open(self) -> dict | None:
        """Creates the folder or checks it; returns the manifest of a run to resume, or None."""
        if not self.path.exists():
            top = self.path
            while not top.parent.exists():
                top = top.parent
            self.created = self.created or top
            self.path.mkdir(parents=True)
            atomic_write_text(self.path / "config.json", json.dumps(self.config, indent=2,
                                                                    default=str))
            return None
        config_file = self.path / "config.json"
        if not config_file.exists():
            raise ValueError(
                f"Folder {self.path} exists but is not a tfimp run (no config.json). Remove it "
                "or choose another `workdir`."
            )
        try:
            stored = json.loads(config_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"Run folder {self.path} has a corrupted config.json ({e}). "
                             "Remove the folder to start over.") from e
        if config_hash(stored) != self.hash:
            raise ValueError(
                f"Run folder {self.path} holds a run with a different config (hash "
                f"{config_hash(stored)}, expected {self.hash}). It was edited or belongs to "
                "another run; remove it or choose another `workdir`."
            )
        return self.read_manifest()

    def read_manifest(self) -> dict | None:
        path = self.path / "manifest.json"
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"Run folder {self.path} has a corrupted manifest.json ({e}). "
                             "Remove the folder to start over.") from e
        if manifest.get("version") != MANIFEST_VERSION or manifest.get("hash") != self.hash:
            raise ValueError(f"Run folder {self.path} has a manifest of another run or tfimp "
                             "version; remove the folder to start over.")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        manifest = dict(manifest, version=MANIFEST_VERSION, hash=self.hash)
        atomic_write_text(self.path / "manifest.json", json.dumps(manifest, indent=2,
                                                                  default=float))

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        atomic_write_bytes(self.path / name, _npz_bytes(arrays))

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        path = self.path / name
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"Checkpoint {path} cannot be read ({e}). Remove the run folder "
                             f"{self.path} to start over.") from e

    def discard(self) -> None:
        """Removes what `open()` created (a run that failed before its first checkpoint)."""
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
            self.created = None

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    def remove(self, name: str) -> None:
        if self.has(name):
            os.unlink(self.path / name)


def pack(prefix: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A list of arrays as npz entries `prefix0000`, `prefix0001`, ..."""
    return {f"{prefix}{i:04d}": a for i, a in enumerate(arrays)}


def unpack(prefix: str, data: dict[str, np.ndarray]) -> list[np.ndarray]:
    keys = sorted(k for k in data if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [data[k] for k in keys]
