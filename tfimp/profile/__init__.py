"""Profiling: LiteRT benchmark, the TFLite `benchmark_model` tool, TFLite Micro memory, and
side-by-side comparisons.

Example:
    >>> r = tfimp.profile.litert("model.tflite", threads=1, runs=100)
    >>> r.median_us, r.p90_us
    >>> tfimp.profile.benchmark_model("model.tflite", target="ssh:pi@raspberrypi.local")
    >>> tfimp.profile.micro("model_int8.tflite", board="arduino-nano-33-ble").verdict
"""

from tfimp.profile.benchmark_model import benchmark_model
from tfimp.profile.benchmark_output import parse_benchmark_output
from tfimp.profile.compare import Comparison, compare
from tfimp.profile.litert import litert
from tfimp.profile.micro import BOARDS, MicroBoard, MicroProfile, Verdict, get_board, micro
from tfimp.profile.result import BenchResult, OpRow, ProfilingError
from tfimp.profile.targets import AdbTarget, LocalTarget, SshTarget, parse_target

__all__ = [
    "BOARDS", "AdbTarget", "BenchResult", "Comparison", "LocalTarget", "MicroBoard",
    "MicroProfile", "OpRow", "ProfilingError", "SshTarget", "Verdict", "benchmark_model",
    "compare", "get_board", "litert", "micro", "parse_benchmark_output", "parse_target",
]
