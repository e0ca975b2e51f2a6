"""The device targets of a bundle: what each checks in the model and which files it writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tfimp.bundle import micro_files
from tfimp.bundle._templates import render_file, template_root
from tfimp.bundle.base import (
    DEFAULT_RUNS,
    BundleError,
    Context,
    Target,
    describe_tensors,
    readme_values,
)
from tfimp.bundle.kotlin import kotlin_sample
from tfimp.profile import timing

__all__ = ["TARGETS", "Android", "BundleError", "Context", "Micro", "Rpi", "Target",
           "describe_tensors", "get", "readme_values"]

LITERT_FALLBACK_REQUIREMENT = ">=1.2"
NUMPY_REQUIREMENT = ">=1.23"
PILLOW_REQUIREMENT = ">=9.0"
LITERT_ANDROID_VERSION = "1.4.0"


def _copy_template(target: str, name: str, dest: Path, executable: bool = False) -> None:
    shutil.copyfile(template_root() / target / name, dest / name)
    if executable:
        os.chmod(dest / name, 0o755)


def litert_profile(model: Path) -> dict:
    """Latency and memory of the model in LiteRT on this machine."""
    from tfimp.bundle.manifest import host_description
    from tfimp.profile.litert import litert

    r = litert(str(model), threads=1, runs=DEFAULT_RUNS)
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

    def check(self, info, board: str | None, compression=None) -> None:
        micro_files.check(info, board, compression)

    def write(self, stage: Path, ctx: Context) -> None:
        micro_files.write(stage, ctx)


TARGETS: dict[str, Target] = {t.name: t for t in (Rpi(), Android(), Micro())}


def get(name: str) -> Target:
    """The target called `name`; the error lists the valid names."""
    if name not in TARGETS:
        raise ValueError(f"Argument `target` must be one of {sorted(TARGETS)}. "
                         f"Received: target={name!r}")
    return TARGETS[name]
