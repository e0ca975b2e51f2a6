"""`litert()`: the LiteRT interpreter benchmark, run in a child process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tfimp._util.validate import model_file, positive_int, positive_number
from tfimp.export.inspect import inspect
from tfimp.profile import _litert_child, timing
from tfimp.profile.result import BenchResult, ProfilingError, run_checked

CHILD_SCRIPT = Path(_litert_child.__file__)
# The child loads the timing routine from beside it; a board gets both files.
TIMING_SCRIPT = Path(timing.__file__)


def child_command(python: str, script: str, model: str, threads: int, runs: int, warmup: int,
                  xnnpack: bool) -> list[str]:
    """The command line that runs the LiteRT child benchmark with `python`."""
    cmd = [python, script, "--model", model, "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warmup)]
    return cmd if xnnpack else cmd + ["--no-xnnpack"]


def result_from_child_output(stdout: str, *, model: str, target: str, threads: int,
                             xnnpack: bool, raw_output: str, tool: str = "litert") -> BenchResult:
    """Builds a `BenchResult` from the `TFIMP_RESULT` line that the child prints."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(_litert_child.RESULT_MARKER)]
    if not lines:
        raise ProfilingError(f"The LiteRT benchmark printed no result line.\nOutput:\n{raw_output}")
    raw = json.loads(lines[-1][len(_litert_child.RESULT_MARKER):])
    warm, times = raw["warmup_us"], raw["times_us"]
    return BenchResult(
        model=model, tool=tool, target=target, threads=threads, xnnpack=xnnpack,
        runs=len(times), warmup_runs=len(warm), init_us=raw["init_us"], first_us=warm[0],
        warmup_avg_us=sum(warm) / len(warm), **timing.summarize(times),
        mem_init_bytes=raw["mem_init_bytes"], mem_increase_bytes=raw["mem_increase_bytes"],
        raw_output=raw_output,
    )


def litert(model, threads: int = 1, runs: int = 100, warmup: int = 10, xnnpack: bool = True,
           timeout: float = 300.0, python: str | None = None) -> BenchResult:
    """Benchmarks a .tflite model with the LiteRT interpreter in a child process.

    Reports `benchmark_model`'s figures (init, first inference, warm-up average, inference
    average) plus median, p90, standard deviation, min/max and the peak-RSS increase. A
    model that crashes the native runtime, or a run that exceeds `timeout`, raises
    `ProfilingError` and leaves no process behind.

    Args:
        model: path to a .tflite file, or its bytes.
        threads: interpreter threads.
        runs: timed inferences.
        warmup: untimed inferences before them (the first one is "First inference").
        xnnpack: apply LiteRT's default XNNPACK delegate; False runs the builtin kernels.
        timeout: seconds before the child is killed.
        python: interpreter that runs the child (default: this one); it needs numpy and
            ai-edge-litert.

    Returns:
        A `BenchResult` with `tool="litert"`.

    Example:
        >>> r = tfimp.profile.litert("model.tflite", threads=2, runs=200)
        >>> r.median_us, r.p90_us
    """
    positive_int("threads", threads)
    positive_int("runs", runs)
    positive_int("warmup", warmup)
    positive_number("timeout", timeout)
    with model_file(model) as path:
        inspect(path)  # a damaged file is named here, not by the child's flatbuffer verifier
        cmd = child_command(python or sys.executable, str(CHILD_SCRIPT), str(path), threads,
                            runs, warmup, xnnpack)
        done = run_checked(cmd, timeout, "The LiteRT benchmark child process")
    name = str(path) if not isinstance(model, (bytes, bytearray, memoryview)) else "<bytes>"
    return result_from_child_output(done.stdout, model=name, target="local", threads=threads,
                                    xnnpack=xnnpack, raw_output=done.stdout + done.stderr)
