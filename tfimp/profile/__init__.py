"""Profiling: LiteRT benchmark, the TFLite `benchmark_model` tool, TFLite Micro memory.

Example:
    >>> r = tfimp.profile.litert("model.tflite", threads=1, runs=100)
    >>> r.median_us, r.p90_us
"""

from tfimp.profile.result import BenchResult, OpRow, ProfilingError
from tfimp.profile.litert import litert

__all__ = ["BenchResult", "OpRow", "ProfilingError", "litert"]
