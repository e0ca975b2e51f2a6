"""The device targets of a bundle: what each checks in the model and which files it writes."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import ClassVar

from tfimp._util.errors import TfimpError
from tfimp.bundle import micro_files
from tfimp.bundle._templates import render_file, template_root
from tfimp.bundle.kotlin import kotlin_sample
from tfimp.profile import timing

LITERT_FALLBACK_REQUIREMENT = ">=1.2"
NUMPY_REQUIREMENT = ">=1.23"
PILLOW_REQUIREMENT = ">=9.0"
LITERT_ANDROID_VERSION = "1.4.0"
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


class Target:
    """A device family; subclasses set `name` and override `check` and `write`."""

    name: ClassVar[str] = ""
    needs_board: ClassVar[bool] = False

    def check(self, info, board: str | None) -> None:
        """Raises `BundleError` when the target cannot run the model as exported."""
        if board is not None and not self.needs_board:
            raise BundleError(f"Argument `board` applies to the micro target only. Received: "
                              f"board={board!r} with target={self.name!r}. Drop --board.")

    def write(self, stage: Path, ctx: Context) -> None:
        """Writes the target's files into `stage` and completes `ctx.manifest`."""
        raise NotImplementedError(f"{type(self).__name__} must override `write`.")


def _copy_template(target: str, name: str, dest: Path, executable: bool = False) -> None:
    shutil.copyfile(template_root() / target / name, dest / name)
    if executable:
        os.chmod(dest / name, 0o755)


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


def litert_profile(model: Path) -> dict:
    """Latency and memory of the model in LiteRT on this machine."""
    from tfimp import profile
    from tfimp.bundle.manifest import host_description

    r = profile.litert(str(model), threads=1, runs=DEFAULT_RUNS)
    return {"tool": r.tool, "host": host_description(), "threads": r.threads, "runs": r.runs,
            "init_us": r.init_us, "avg_us": r.avg_us, "median_us": r.median_us,
            "p90_us": r.p90_us, "mem_increase_bytes": r.mem_increase_bytes}


def litert_requirement() -> str:
    """At least the LiteRT release that ran the model here: older ones may lack its ops."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return ">=" + ".".join(version("ai-edge-litert").split(".")[:2])
    except PackageNotFoundError:
        return LITERT_FALLBACK_REQUIREMENT


class Rpi(Target):
    """Linux boards with Python 3 (Raspberry Pi, other 64-bit ARM or x86): LiteRT runtime."""

    name = "rpi"

    def write(self, stage: Path, ctx: Context) -> None:
        if ctx.profile:
            ctx.manifest["profile"] = litert_profile(ctx.model)
        values = readme_values(ctx.manifest)
        values.update(litert_spec=litert_requirement(), numpy_spec=NUMPY_REQUIREMENT,
                      pillow_spec=PILLOW_REQUIREMENT)
        _copy_template("rpi", "run.py", stage, executable=True)
        # run.py --bench times and summarizes with the profiler's own routine.
        shutil.copyfile(timing.__file__, stage / "timing.py")
        for name in ("requirements.txt", "bench.sh", "README.md"):
            (stage / name).write_text(render_file("rpi", name, values))
        os.chmod(stage / "bench.sh", 0o755)


class Android(Target):
    """Android phones: a `benchmark_model` script for adb and a Kotlin/LiteRT sample."""

    name = "android"

    def write(self, stage: Path, ctx: Context) -> None:
        if ctx.profile:
            ctx.manifest["profile"] = litert_profile(ctx.model)
        kotlin = kotlin_sample(ctx.manifest)
        values = readme_values(ctx.manifest)
        values.update(kotlin_sample=kotlin.strip(), litert_android_version=LITERT_ANDROID_VERSION)
        (stage / "ModelRunner.kt").write_text(kotlin)
        (stage / "README.md").write_text(render_file("android", "README.md", values))
        (stage / "run_benchmark.sh").write_text(
            render_file("android", "run_benchmark.sh", values))
        os.chmod(stage / "run_benchmark.sh", 0o755)


class Micro(Target):
    """Microcontrollers with TensorFlow Lite Micro: int8 models as C arrays."""

    name = "micro"
    needs_board = True

    def check(self, info, board: str | None) -> None:
        from tfimp.export.micro import MicroError, check_micro_compatible

        try:
            check_micro_compatible(info)
        except MicroError as e:
            raise BundleError(f"The model cannot run on the micro target: {e}") from None
        micro_files.check_board(board)

    def write(self, stage: Path, ctx: Context) -> None:
        micro_files.write(stage, ctx)


TARGETS: dict[str, Target] = {t.name: t for t in (Rpi(), Android(), Micro())}


def get(name: str) -> Target:
    """The target called `name`; the error lists the valid names."""
    if name not in TARGETS:
        raise ValueError(f"Argument `target` must be one of {sorted(TARGETS)}. "
                         f"Received: target={name!r}")
    return TARGETS[name]
