"""Benchmarks one .tflite model with the LiteRT interpreter, in a process of its own.

Run as `python -m tfimp.profile._litert_child --model M.tflite` or as a plain script
(`python _litert_child.py ...`, as on a remote board): it needs only the standard library,
numpy, ai-edge-litert and `timing.py` beside it (the timing routine that `run.py --bench` of
the Raspberry Pi bundle shares). It prints the `benchmark_model` timing line and then one line
`TFIMP_RESULT {json}` with the raw per-run timings and the memory figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time

RESULT_MARKER = "TFIMP_RESULT "

# Run as a script, this file's folder heads sys.path; its sibling modules must not shadow
# top-level packages that numpy or ai-edge-litert import.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)


def _load_timing():
    """`timing.py` from this file's folder (tfimp/profile, or the board's copy beside it)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timing.py")
    spec = importlib.util.spec_from_file_location("tfimp_profile_timing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = _load_timing()


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _current_rss_bytes() -> int:
    rss = _status_kb("VmRSS")
    return rss * 1024 if rss is not None else _peak_rss_bytes()


def _make_interpreter(model: str, threads: int, xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=model, num_threads=threads,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    return interpreter


def _fill_inputs(interpreter, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        dtype, shape = np.dtype(detail["dtype"]), detail["shape"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape, dtype=dtype)
        elif dtype == np.bool_:
            data = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            data = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        interpreter.set_tensor(detail["index"], data)


def benchmark(model: str, threads: int, runs: int, warmup: int, xnnpack: bool) -> dict:
    """Loads `model`, runs `warmup` then `runs` timed inferences; returns the raw figures."""
    import ai_edge_litert.interpreter  # noqa: F401  (import cost stays out of the figures)
    import numpy  # noqa: F401

    peak_reset = _reset_peak_rss()
    rss_start = _current_rss_bytes() if peak_reset else _peak_rss_bytes()
    start = time.perf_counter_ns()
    interpreter = _make_interpreter(model, threads, xnnpack)
    init_us = (time.perf_counter_ns() - start) / 1000.0
    mem_init = max(0, _current_rss_bytes() - rss_start)
    _fill_inputs(interpreter)
    return {
        "init_us": init_us,
        **timing.measure(interpreter.invoke, runs, warmup),
        "mem_init_bytes": mem_init,
        "mem_increase_bytes": max(0, _peak_rss_bytes() - rss_start),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-xnnpack", dest="xnnpack", action="store_false")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parse_args(argv)
    if args.runs < 1 or args.warmup < 1 or args.threads < 1:
        print("ERROR: --runs, --warmup and --threads must be >= 1", file=sys.stderr)
        return 2
    if not os.path.isfile(args.model):
        print(f"ERROR: model file not found: {args.model}", file=sys.stderr)
        return 2
    try:
        raw = benchmark(args.model, args.threads, args.runs, args.warmup, args.xnnpack)
    except Exception as exc:  # the parent shows this text to the user
        print(f"ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    warm = raw["warmup_us"]
    stats = timing.summarize(raw["times_us"])
    print(f"Inference timings in us: Init: {raw['init_us']:.0f}, "
          f"First inference: {warm[0]:.0f}, Warmup (avg): {sum(warm) / len(warm):.0f}, "
          f"Inference (avg): {stats['avg_us']:.1f}")
    print(RESULT_MARKER + json.dumps(raw), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
