"""`benchmark_model()`: runs TFLite's official `benchmark_model` binary and parses its output.

The binary runs on this machine, on an Android device over adb, or on a Linux board over ssh;
a board without the binary gets the LiteRT Python benchmark instead (`tfimp.profile.litert`'s
child script, copied over and run with the board's Python).
"""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from tfimp._util.validate import model_file, positive_int, positive_number
from tfimp.export.inspect import inspect
from tfimp.profile.benchmark_output import parse_benchmark_output
from tfimp.profile.litert import (
    CHILD_SCRIPT,
    TIMING_SCRIPT,
    child_command,
    result_from_child_output,
)
from tfimp.profile.result import BenchResult, ProfilingError, run_checked
from tfimp.profile.targets import AdbTarget, LocalTarget, SshTarget, parse_target

_BUILD_HINT = ("build it with `bazel build -c opt tensorflow/lite/tools/benchmark:benchmark_model` "
               "(for Android add --config=android_arm64), or use tfimp.profile.litert()")


def benchmark_flags(graph: str, threads: int, runs: int, warmup: int, xnnpack: bool,
                    op_profiling: bool, extra_flags: Sequence[str] = ()) -> list[str]:
    """The `benchmark_model` command-line flags for one run."""
    flags = [f"--graph={graph}", f"--num_threads={threads}", f"--num_runs={runs}",
             f"--warmup_runs={warmup}", f"--use_xnnpack={str(xnnpack).lower()}",
             "--report_peak_memory_footprint=true"]
    if op_profiling:
        flags.append("--enable_op_profiling=true")
    return flags + [str(f) for f in extra_flags]


def _local_binary(binary) -> str:
    if binary is None:
        found = shutil.which("benchmark_model")
        if found is None:
            raise FileNotFoundError(f"No `benchmark_model` binary on PATH. Pass "
                                    f"binary='/path/to/benchmark_model' or {_BUILD_HINT}.")
        return found
    path = Path(binary).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Argument `binary` must name an existing benchmark_model "
                                f"binary. Received: binary={str(binary)!r}; {_BUILD_HINT}.")
    return str(path.resolve())


def _require_tool(name: str, package: str) -> None:
    if shutil.which(name) is None:
        raise FileNotFoundError(f"The `{name}` command is not installed; install {package}.")


def _run_local(target: LocalTarget, model: Path, binary, flags, timeout: float):
    exe = _local_binary(binary)
    if not os.access(exe, os.X_OK):
        raise PermissionError(f"Argument `binary` must be executable. Received: binary={exe!r} "
                              f"(run `chmod +x {shlex.quote(exe)}`)")
    done = run_checked([exe, *flags(str(model))], timeout, "benchmark_model")
    return done.stdout + done.stderr, "benchmark_model"


def _adb_shell(target: AdbTarget, command: list[str], timeout: float, check: bool = True):
    return run_checked([*target.adb_args(), "shell", shlex.join(command)], timeout,
                     f"adb shell on {target}", check=check)


def _run_adb(target: AdbTarget, model: Path, binary, flags, timeout: float):
    _require_tool("adb", "Android platform-tools (Debian: apt-get install adb)")
    state = run_checked([*target.adb_args(), "get-state"], 30, "adb get-state", check=False)
    if state.stdout.strip() != "device":
        raise ProfilingError(f"Android device {target.serial or '(default)'} is not ready: "
                             f"{(state.stdout + state.stderr).strip()}\nCheck `adb devices`.")
    rdir = f"{target.workdir}/tfimp-bench-{uuid.uuid4().hex[:8]}"
    exe = f"{rdir}/benchmark_model" if binary is not None else f"{target.workdir}/benchmark_model"
    _adb_shell(target, ["mkdir", "-p", rdir], 30)
    try:
        run_checked([*target.adb_args(), "push", str(model), f"{rdir}/model.tflite"], timeout,
                  "adb push")
        if binary is not None:
            run_checked([*target.adb_args(), "push", _local_binary(binary), exe], timeout,
                      "adb push")
            _adb_shell(target, ["chmod", "755", exe], 30)
        elif _adb_shell(target, ["test", "-x", exe], 30, check=False).returncode != 0:
            raise FileNotFoundError(f"No benchmark_model at {exe} on {target}; pass binary= "
                                    f"with an Android build ({_BUILD_HINT}).")
        done = _adb_shell(target, [exe, *flags(f"{rdir}/model.tflite")], timeout)
        return done.stdout + done.stderr, "benchmark_model"
    finally:
        _adb_shell(target, ["rm", "-rf", rdir], 30, check=False)


def _ssh(target: SshTarget, command: list[str], timeout: float, check: bool = True):
    return run_checked([*target.ssh_args(), shlex.join(command)], timeout, f"ssh to {target}",
                     check=check)


def _scp(target: SshTarget, local, remote: str, timeout: float) -> None:
    run_checked(target.scp_args(str(local), remote), timeout, f"scp to {target}")


def _ssh_binary(target: SshTarget, rdir: str, binary, timeout: float) -> str | None:
    if binary is not None:
        exe = f"{rdir}/benchmark_model"
        _scp(target, _local_binary(binary), exe, timeout)
        _ssh(target, ["chmod", "755", exe], 30)
        return exe
    found = _ssh(target, ["sh", "-c", "command -v benchmark_model"], 30, check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def _run_ssh(target: SshTarget, model: Path, binary, flags, timeout: float, litert_args=None):
    _require_tool("ssh", "OpenSSH (Debian: apt-get install openssh-client)")
    rdir = _ssh(target, ["mktemp", "-d", "/tmp/tfimp-bench.XXXXXX"], 60).stdout.strip()
    if not rdir.startswith("/tmp/tfimp-bench."):
        raise ProfilingError(f"Unexpected answer from `mktemp` on {target}: {rdir!r}")
    try:
        _scp(target, model, f"{rdir}/model.tflite", timeout)
        exe = _ssh_binary(target, rdir, binary, timeout)
        if exe is not None:
            done = _ssh(target, [exe, *flags(f"{rdir}/model.tflite")], timeout)
            return done.stdout + done.stderr, "benchmark_model"
        for script in (CHILD_SCRIPT, TIMING_SCRIPT):
            _scp(target, script, f"{rdir}/{script.name}", timeout)
        cmd = child_command(target.python, f"{rdir}/{CHILD_SCRIPT.name}",
                            f"{rdir}/model.tflite", **litert_args)
        done = _ssh(target, cmd, timeout)
        return done.stdout + "\n" + done.stderr, "litert"
    finally:
        _ssh(target, ["rm", "-rf", rdir], 60, check=False)


def benchmark_model(model, binary=None, target=None, threads: int = 1, runs: int = 50,
                    warmup: int = 1, xnnpack: bool = True, op_profiling: bool = False,
                    extra_flags: Sequence[str] = (), timeout: float = 600.0) -> BenchResult:
    """Runs TFLite's `benchmark_model` on a model and parses timings, memory and op tables.

    Args:
        model: path to a .tflite file, or its bytes.
        binary: the `benchmark_model` executable for the target (None: found on PATH locally,
            already at /data/local/tmp on Android, on PATH over ssh).
        target: None/"local", "adb:SERIAL", "ssh:USER@HOST[:PORT][,python=...,identity=...]"
            or a target object from `tfimp.profile.targets`. Over ssh, a board without the
            binary runs the LiteRT Python benchmark with its `python` (tool "litert").
        threads, runs, warmup: `--num_threads`, `--num_runs`, `--warmup_runs`.
        xnnpack: `--use_xnnpack`.
        op_profiling: `--enable_op_profiling`; fills `op_profile` and `op_summary`.
        extra_flags: more flags, passed as they are (e.g. "--min_secs=0").
        timeout: seconds for each command before it is killed.

    Raises:
        FileNotFoundError: no binary, or no adb/ssh client.
        ProfilingError: a command failed or timed out (message: the command and its output).

    Example:
        >>> r = tfimp.profile.benchmark_model("m.tflite", target="ssh:pi@raspberrypi.local")
        >>> r.avg_us, r.op_summary[0].node_type
    """
    for name, value in (("threads", threads), ("runs", runs), ("warmup", warmup)):
        positive_int(name, value)
    positive_number("timeout", timeout)
    tgt = parse_target(target)

    def flags(graph: str) -> list[str]:
        return benchmark_flags(graph, threads, runs, warmup, xnnpack, op_profiling, extra_flags)

    with model_file(model) as path:
        inspect(path)  # a damaged file is named here, not by the benchmark's verifier
        if isinstance(tgt, SshTarget):
            litert_args = {"threads": threads, "runs": runs, "warmup": warmup, "xnnpack": xnnpack}
            text, tool = _run_ssh(tgt, path, binary, flags, timeout, litert_args)
        elif isinstance(tgt, AdbTarget):
            text, tool = _run_adb(tgt, path, binary, flags, timeout)
        else:
            text, tool = _run_local(tgt, path, binary, flags, timeout)
    name = "<bytes>" if isinstance(model, (bytes, bytearray, memoryview)) else str(path)
    if tool == "litert":
        return result_from_child_output(text, model=name, target=str(tgt), threads=threads,
                                        xnnpack=xnnpack, raw_output=text)
    fields = parse_benchmark_output(text)
    return BenchResult(model=name, tool=tool, target=str(tgt), threads=threads, xnnpack=xnnpack,
                       runs=fields.pop("runs", runs), warmup_runs=fields.pop("warmup_runs", warmup),
                       raw_output=text, **fields)
