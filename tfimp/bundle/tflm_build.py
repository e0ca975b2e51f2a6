"""Builds a micro bundle against TensorFlow Lite Micro and runs it, here or on an emulated core.

`run_bundle` compiles the bundle's `main.cc` and `model_data.cc` with a `test_inputs.h` of raw
input bytes, links a prebuilt `libtensorflow-microlite.a` and runs the program: on this host
(`target="host"`), or on a Cortex-M4F under QEMU (`target="cortex-m4"`: the MPS2-AN386 board of
`qemu-system-arm`, output through semihosting). The runner prints each output's raw bytes;
`check_bit_exact` compares them with the `tflite-micro` Python interpreter.

On the emulated core, QEMU runs with `-icount shift=0` (one instruction = 1 ns of virtual
time) and the runner reads the SysTick timer (25 MHz processor clock) around each inference,
so `BundleRun.instructions` counts instructions to within 40. Instruction counts are not
cycles: a Cortex-M4 spends 1 to 12+ cycles per instruction, with wait states on top.

Libraries come from TFLite Micro's own Makefile, run once in the TFLite Micro tree:

    make -f tensorflow/lite/micro/tools/make/Makefile -j2 microlite
    make -f tensorflow/lite/micro/tools/make/Makefile -j2 TARGET=cortex_m_generic \\
        TARGET_ARCH=cortex-m4+fp TARGET_TOOLCHAIN_ROOT=/usr/bin/ microlite

Command line: `python -m tfimp.bundle.tflm_build BUNDLE --tflm-dir DIR --target cortex-m4`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tfimp._util import validate as v
from tfimp._util.errors import TfimpError

TARGETS = ("host", "cortex-m4")
# Library folders under TFLM's gen/, per target; the first one found is used.
LIBRARY_DIRS = {
    "host": ("linux_x86_64_default_gcc",),
    "cortex-m4": ("cortex_m_generic_cortex-m4+fp_default_gcc",
                  "cortex_m_generic_cortex-m4+fp_default_cmsis_nn_gcc"),
}
LIBRARY = "libtensorflow-microlite.a"
SPARSE_KERNEL = "sparse_fully_connected.cc"  # in bundles whose model uses tfimp's sparse op
_DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
_DFP = f"{_DOWNLOADS}/cmsis/Cortex_DFP/Device/ARMCM4"
_FLAGS = ["-std=c++17", "-O2", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics",
          "-ffunction-sections", "-fdata-sections", "-DTF_LITE_STATIC_MEMORY",
          "-DTFIMP_TEST_INPUTS"]
_ARM = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb"]
_ARM_CXX = "arm-none-eabi-g++"
_QEMU = "qemu-system-arm"
# MPS2-AN386: 4 MiB of SSRAM for code at 0x0 and 4 MiB for data at 0x20000000.
_MEMORY = {"__ROM_SIZE": 0x400000, "__RAM_SIZE": 0x400000, "__STACK_SIZE": 0x10000,
           "__HEAP_SIZE": 0x40000}
NS_PER_TICK = 40  # SysTick on the board's 25 MHz clock; -icount shift=0 runs 1 insn per ns
_OUT_RE = re.compile(r"tfimp_out (\d+) (\d+) (\d+) ([0-9a-f]*)")
_TICKS_RE = re.compile(r"tfimp_ticks (\d+) (-?\d+)")
_ARENA_RE = re.compile(r"arena used (\d+) of (\d+) bytes")


class TflmBuildError(TfimpError, RuntimeError):
    """The bundle did not compile, link or run against TensorFlow Lite Micro."""


@dataclasses.dataclass(frozen=True)
class BundleRun:
    """One run of a bundle's runner on test inputs.

    `outputs` holds each model output's raw values, batch-first, as the runner wrote them;
    `instructions` the instructions per inference on the emulated core (None on the host),
    `flash_bytes` the program's code and read-only data (text + data sections, Cortex-M4).
    """

    target: str
    outputs: list[np.ndarray]
    arena_used: int
    arena_size: int
    instructions: tuple[int, ...] | None
    flash_bytes: int | None
    program: str
    seconds_build: float
    seconds_run: float
    log: str


def find_library(tflm_dir, target: str) -> Path:
    """The prebuilt `libtensorflow-microlite.a` for `target` under `tflm_dir`/gen."""
    _check_target(target)
    gen = Path(tflm_dir) / "gen"
    for name in LIBRARY_DIRS[target]:
        lib = gen / name / "lib" / LIBRARY
        if lib.is_file():
            return lib
    raise TflmBuildError(f"No {LIBRARY} for {target} under {gen}: build it first "
                         f"(see `python -m tfimp.bundle.tflm_build --help`).")


def _library_file(library) -> Path:
    """`library` itself, or the TFLM library in that folder or its lib/ (a gen/ build folder)."""
    path = Path(library)
    for candidate in (path, path / LIBRARY, path / "lib" / LIBRARY):
        if candidate.is_file():
            return candidate
    v.fail("library", str(library), f"{LIBRARY}, or a folder holding it (directly or in lib/)")


def run_bundle(bundle, inputs, target: str = "host", tflm_dir=None, library=None,
               work_dir=None, timeout: float = 600) -> BundleRun:
    """Compiles `bundle` with `inputs` compiled in and runs it on `target`.

    Args:
        bundle: a folder written by `tfimp bundle --target micro`.
        inputs: batch-first arrays, one per model input, in the input's dtype (raw values).
        target: "host" or "cortex-m4" (QEMU's mps2-an386 board).
        tflm_dir: the TensorFlow Lite Micro tree (headers and downloads); None reads the
            TFIMP_TFLM_DIR environment variable.
        library: the `libtensorflow-microlite.a` to link, or its build folder (e.g.
            gen/cortex_m_generic_cortex-m4+fp_default_cmsis_nn_gcc); None finds it under
            `tflm_dir`/gen.
        work_dir: folder for the build; None uses a temporary one, removed afterwards.
        timeout: seconds allowed for the run.
    """
    import time

    _check_target(target)
    bundle = Path(bundle)
    tflm = tflm_tree(tflm_dir)
    lib = find_library(tflm, target) if library is None else _library_file(library)
    specs = _output_specs(bundle)
    xs = _raw_inputs(bundle, inputs)
    with _folder(work_dir) as work:
        shutil.copytree(bundle, work, dirs_exist_ok=True)
        (work / "test_inputs.h").write_text(test_inputs_header(xs))
        start = time.monotonic()
        program = _compile(work, tflm, lib, target)
        built = time.monotonic()
        log = _run(program, target, timeout)
        ran = time.monotonic()
        flash = _flash_bytes(program) if target != "host" else None
        outputs, instructions, used, size = _parse(log, specs, len(xs[0]), target)
    return BundleRun(target, outputs, used, size, instructions, flash, str(program),
                     built - start, ran - built, log)


def test_inputs_header(xs: list[np.ndarray]) -> str:
    """C++ for `test_inputs.h`: the raw bytes of every input, sample after sample."""
    n = len(xs[0])
    blob = b"".join(np.ascontiguousarray(x[s]).tobytes() for s in range(n) for x in xs)
    rows = [", ".join(f"0x{b:02x}" for b in blob[i : i + 16]) for i in range(0, len(blob), 16)]
    return "\n".join(["#pragma once", "// Written by tfimp.bundle.tflm_build: raw input bytes.",
                      f"constexpr int kTestSamples = {n};",
                      "alignas(16) const unsigned char kTestInputData[] = {",
                      *(f"  {r}," for r in rows), "};", ""])


def check_bit_exact(bundle, inputs, run: BundleRun) -> None:
    """Raises `TflmBuildError` unless `run` reproduces the Python TFLM interpreter bit for bit.

    A model with tfimp's sparse FULLY_CONNECTED op is compared with its dense stand-in (the
    interpreter lacks the op; `to_micro` checked the op against it with the numpy mirror).
    """
    from tfimp.export import run_micro, tflm_sparse

    data = _model_path(bundle).read_bytes()
    if tflm_sparse.has_sparse(data):
        data = tflm_sparse.densify(data)
    reference = run_micro(data, _raw_inputs(bundle, inputs)).outputs
    for k, (want, got) in enumerate(zip(reference, run.outputs)):
        want = np.asarray(want).reshape(got.shape)
        if want.dtype != got.dtype or not np.array_equal(want.view(np.uint8), got.view(np.uint8)):
            bad = int(np.sum(np.any((want != got).reshape(len(got), -1), axis=1)))
            raise TflmBuildError(f"Output {k} on {run.target} differs from the Python TFLite "
                                 f"Micro interpreter in {bad} of {len(got)} samples.")


def random_inputs(bundle, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` random samples per model input, raw values in the input's dtype."""
    from tfimp.export import inspect
    from tfimp.export.micro import random_inputs as model_inputs

    return model_inputs(inspect(_model_path(bundle)), n, seed)


def _check_target(target) -> None:
    if target not in TARGETS:
        raise ValueError(f"Argument `target` must be one of {list(TARGETS)}. "
                         f"Received: target={target!r}")


def tflm_tree(tflm_dir) -> Path:
    """`tflm_dir` (or TFIMP_TFLM_DIR) checked to be a TFLite Micro tree with its downloads."""
    value = tflm_dir if tflm_dir is not None else os.environ.get("TFIMP_TFLM_DIR")
    if value is None:
        raise ValueError("Argument `tflm_dir` must name a TensorFlow Lite Micro tree (or set "
                         "TFIMP_TFLM_DIR). Received: tflm_dir=None")
    path = Path(value)
    if not (path / _DOWNLOADS / "flatbuffers").is_dir():
        v.fail("tflm_dir", str(value), "a TensorFlow Lite Micro tree whose third-party "
               f"downloads are in place ({_DOWNLOADS}/flatbuffers is missing)")
    return path.resolve()


class _folder:
    """A given folder (created), or a temporary one removed on exit."""

    def __init__(self, path):
        self.path, self.temp = path, None

    def __enter__(self) -> Path:
        if self.path is None:
            self.temp = tempfile.mkdtemp(prefix="tfimp-tflm-")
            return Path(self.temp)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        return Path(self.path)

    def __exit__(self, *exc):
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)


def _model_path(bundle) -> Path:
    from tfimp.bundle import read_manifest

    return Path(bundle) / read_manifest(bundle)["model"]["file"]


def _output_specs(bundle) -> list[tuple[np.dtype, tuple]]:
    from tfimp.export import inspect

    info = inspect(_model_path(bundle))
    return [(np.dtype(info.tensors[i].dtype), tuple(info.tensors[i].shape[1:]))
            for i in info.outputs]


def _raw_inputs(bundle, inputs) -> list[np.ndarray]:
    from tfimp.export import inspect

    info = inspect(_model_path(bundle))
    xs = v.matches_shapes("inputs", inputs, v.tflite_input_shapes(info))
    out = []
    for x, i in zip(xs, info.inputs):
        want = np.dtype(info.tensors[i].dtype)
        if np.asarray(x).dtype != want:
            v.fail("inputs", f"an array of {np.asarray(x).dtype}", f"raw values of the model "
                   f"input's type {want} (the runner copies them byte for byte)")
        out.append(np.asarray(x))
    return out


def _includes(tflm: Path) -> list[str]:
    dl = tflm / _DOWNLOADS
    return [f"-I{tflm}", f"-I{dl}/flatbuffers/include", f"-I{dl}/gemmlowp", f"-I{dl}/ruy"]


def _compile(work: Path, tflm: Path, lib: Path, target: str) -> Path:
    sources = [str(work / name) for name in ("main.cc", "model_data.cc", SPARSE_KERNEL)
               if (work / name).is_file()]
    if target == "host":
        program = work / "model_runner"
        _call([_tool("g++"), *_FLAGS, f"-I{work}", *_includes(tflm), *sources, str(lib),
               "-Wl,--gc-sections", "-lm", "-o", str(program)], "compile for the host")
        return program
    arm = _tool(_ARM_CXX)
    gcc = _tool("arm-none-eabi-gcc")
    dfp = tflm / _DFP
    dev = ["-DARMCM4", f"-I{dfp}/Include", f"-I{tflm / _DOWNLOADS}/cmsis/CMSIS/Core/Include"]
    objs = []
    for name in ("startup_ARMCM4.c", "system_ARMCM4.c"):
        obj = work / (name[:-2] + ".o")
        _call([gcc, *_ARM, *dev, "-O2", "-c", str(dfp / "Source" / name), "-o", str(obj)],
              f"compile {name}")
        objs.append(str(obj))
    (work / "mps2_an386.ld").write_text(_linker_script(dfp / "Config" / "ARMCM4_gcc.ld"))
    program = work / "model_runner.elf"
    _call([arm, *_ARM, *_FLAGS, "-DTFIMP_LOG_TO_STDOUT", "-DTFIMP_SYSTICK", f"-I{work}",
           *_includes(tflm), "--specs=rdimon.specs", "-T", str(work / "mps2_an386.ld"),
           "-Wl,--gc-sections", *objs, *sources, str(lib), "-lm", "-o", str(program)],
          "compile for the Cortex-M4")
    return program


def _linker_script(template: Path) -> str:
    """CMSIS's ARMCM4 linker script with the MPS2-AN386 memory sizes."""
    text = template.read_text()
    for name, value in _MEMORY.items():
        text, n = re.subn(rf"{name}\s*=\s*0x[0-9A-Fa-f]+;", f"{name} = 0x{value:08X};", text)
        if n != 1:
            raise TflmBuildError(f"{template} has no single `{name} = ...;` line to set.")
    return text


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TflmBuildError(f"{name} is not installed (Debian: g++, gcc-arm-none-eabi, "
                             f"libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-newlib, "
                             f"qemu-system-arm).")
    return path


def _call(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TflmBuildError(f"Could not {what}:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")


def _run(program: Path, target: str, timeout: float) -> str:
    if target == "host":
        cmd = [str(program)]
    else:
        cmd = [_tool(_QEMU), "-M", "mps2-an386", "-nographic", "-monitor", "none",
               "-serial", "null", "-icount", "shift=0",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(program)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TflmBuildError(f"The runner did not finish within {timeout} s on {target}.") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 or not _ARENA_RE.search(log):
        raise TflmBuildError(f"The runner failed on {target} (exit {proc.returncode}):\n"
                             f"{log[-4000:]}")
    return log


def _parse(log: str, specs, n: int, target: str):
    chunks: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for s, k, offset, hexes in _OUT_RE.findall(log):
        chunks.setdefault((int(s), int(k)), []).append((int(offset), bytes.fromhex(hexes)))
    outputs = []
    for k, (dtype, shape) in enumerate(specs):
        rows = []
        for s in range(n):
            parts = sorted(chunks.get((s, k), []))
            data = b"".join(p for _, p in parts)
            rows.append(np.frombuffer(data, dtype).reshape(shape))
        outputs.append(np.stack(rows))
    ticks = [int(t) for _, t in sorted(_TICKS_RE.findall(log), key=lambda m: int(m[0]))]
    instructions = None
    if target != "host":
        if len(ticks) != n or min(ticks) < 0:
            raise TflmBuildError(f"The runner reported no usable SysTick counts:\n{log[-2000:]}")
        instructions = tuple(t * NS_PER_TICK for t in ticks)
    used, size = map(int, _ARENA_RE.search(log).groups())
    return outputs, instructions, used, size


def _flash_bytes(program: Path) -> int | None:
    size = shutil.which("arm-none-eabi-size")
    if size is None:
        return None
    out = subprocess.run([size, "-A", str(program)], capture_output=True, text=True).stdout
    sections = dict(re.findall(r"^(\.\S+)\s+(\d+)", out, re.M))
    keep = (".text", ".ARM.exidx", ".copy.table", ".zero.table", ".data")
    return sum(int(sections.get(s, 0)) for s in keep)


def _row(bundle: Path, run: BundleRun) -> str:
    from tfimp.bundle import read_manifest

    encoding = read_manifest(bundle)["micro"]["compression"]["encoding"]
    insns = "-" if run.instructions is None else f"{int(np.median(run.instructions)):,}"
    flash = "-" if run.flash_bytes is None else f"{run.flash_bytes:,}"
    return (f"| {bundle.name} | {encoding} | {run.target} | yes | {run.arena_used:,} | {flash} | "
            f"{insns} | {run.seconds_build:.1f} | {run.seconds_run:.1f} |")


def main(argv=None) -> int:
    """Builds and runs bundles, checks them against Python TFLM and prints one row each."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tfimp.bundle.tflm_build", description=__doc__.split("\n\n")[0],
        epilog="Instructions are counted on QEMU's emulated Cortex-M4 (-icount, SysTick); "
               "they are not cycles.")
    parser.add_argument("bundles", nargs="+", help="micro bundle folders")
    parser.add_argument("--tflm-dir", help="TensorFlow Lite Micro tree (default: $TFIMP_TFLM_DIR)")
    parser.add_argument("--target", choices=[*TARGETS, "both"], default="both")
    parser.add_argument("--library", help=f"{LIBRARY} to link, or its build folder "
                        "(default: found under the tree's gen/)")
    parser.add_argument("--samples", type=int, default=4, help="random test inputs per model")
    args = parser.parse_args(argv)
    targets = TARGETS if args.target == "both" else (args.target,)
    print("| bundle | encoding | target | bit-exact vs Python TFLM | arena used B | program "
          "flash B | instructions/inference | build s | run s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in map(Path, args.bundles):
        for target in targets:
            try:
                xs = random_inputs(folder, args.samples)
                run = run_bundle(folder, xs, target, args.tflm_dir, args.library)
                check_bit_exact(folder, xs, run)
            except (TflmBuildError, ValueError, FileNotFoundError) as e:
                print(f"error: {folder} on {target}: {e}")
                return 1
            print(_row(folder, run), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
