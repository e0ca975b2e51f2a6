"""Timing repeated runs and summarizing them: the one routine behind every latency figure.

`tfimp bench` / `tfimp.profile.litert` (in their child process, also on a board over ssh) and
the Raspberry Pi bundle's `run.py --bench` time inferences and compute percentiles with these
functions, so their figures agree. Standard library only: the bundle builder and the ssh
profiler copy this file next to the script that loads it.

Example:
>>> raw = measure(interpreter.invoke, runs=100, warmup=5)  # doctest: +SKIP
>>> summarize(raw["times_us"])["p90_us"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def time_runs(fn: Callable[[], object], runs: int) -> list[float]:
    """Calls `fn()` `runs` times; the duration of each call in microseconds."""
    clock, times = time.perf_counter_ns, []
    for _ in range(runs):
        start = clock()
        fn()
        times.append((clock() - start) / 1000.0)
    return times


def measure(fn: Callable[[], object], runs: int, warmup: int) -> dict:
    """`warmup` timed calls that are set apart, then `runs` timed calls.

    Returns:
        `{"warmup_us": [...], "times_us": [...]}`, microseconds per call.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"Arguments `runs` and `warmup` must be >= 1 and >= 0. "
                         f"Received: runs={runs}, warmup={warmup}")
    return {"warmup_us": time_runs(fn, warmup), "times_us": time_runs(fn, runs)}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linearly interpolated like numpy's default."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (k - lo) * (ordered[hi] - ordered[lo])


def summarize(times_us: list[float]) -> dict:
    """avg, median, p90, std (population, as `benchmark_model`), min and max of run times."""
    if not times_us:
        raise ValueError("Argument `times_us` must hold at least one time. Received: []")
    n = len(times_us)
    avg = sum(times_us) / n
    return {
        "avg_us": avg,
        "median_us": percentile(times_us, 50),
        "p90_us": percentile(times_us, 90),
        "std_us": math.sqrt(sum((t - avg) ** 2 for t in times_us) / n),
        "min_us": min(times_us),
        "max_us": max(times_us),
    }
