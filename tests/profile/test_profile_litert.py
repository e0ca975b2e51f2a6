import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfimp.export import tflite_edit
from tfimp.profile import BenchResult, ProfilingError, litert
from tfimp.profile import _litert_child, timing


def test_figures_of_a_real_run_are_consistent(tiny_tflite):
    r = litert(tiny_tflite, threads=1, runs=40, warmup=3)
    assert (r.tool, r.target, r.runs, r.warmup_runs, r.threads) == ("litert", "local", 40, 3, 1)
    assert r.min_us <= r.median_us <= r.p90_us <= r.max_us
    assert r.min_us <= r.avg_us <= r.max_us and r.std_us >= 0
    assert r.init_us > 0 and r.first_us > 0 and r.warmup_avg_us > 0
    assert r.mem_increase_bytes >= r.mem_init_bytes >= 0
    assert "Inference timings in us: Init:" in r.raw_output
    assert BenchResult.from_json(r.to_json()) == r


def test_xnnpack_off_and_threads(lenet_tflite):
    on = litert(lenet_tflite, runs=20, warmup=2, xnnpack=True)
    off = litert(lenet_tflite, threads=2, runs=20, warmup=2, xnnpack=False)
    assert "XNNPACK delegate" in on.raw_output
    assert "XNNPACK delegate" not in off.raw_output
    assert (off.xnnpack, off.threads) == (False, 2)


def test_model_bytes_are_accepted(tiny_tflite):
    with open(tiny_tflite, "rb") as f:
        r = litert(f.read(), runs=5, warmup=1)
    assert r.model == "<bytes>" and r.runs == 5


@pytest.mark.slow  # `-m` imports the tfimp package, and with it TensorFlow
def test_child_is_runnable_as_a_module_and_prints_the_benchmark_model_line(tiny_tflite):
    done = subprocess.run([sys.executable, "-m", "tfimp.profile._litert_child", "--model",
                           tiny_tflite, "--runs", "3", "--warmup", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Inference timings in us: Init: " in done.stdout
    assert _litert_child.RESULT_MARKER in done.stdout


def test_percentiles_match_numpy():
    import numpy as np

    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    stats = timing.summarize(values)
    assert stats["median_us"] == pytest.approx(np.percentile(values, 50))
    assert stats["p90_us"] == pytest.approx(np.percentile(values, 90))
    assert stats["std_us"] == pytest.approx(np.std(values))
    assert (stats["min_us"], stats["max_us"]) == (1.0, 9.0)


def test_measure_sets_the_warmup_apart():
    calls = []
    raw = timing.measure(lambda: calls.append(1), runs=4, warmup=2)
    assert (len(raw["warmup_us"]), len(raw["times_us"]), len(calls)) == (2, 4, 6)
    assert all(t >= 0 for t in raw["warmup_us"] + raw["times_us"])
    with pytest.raises(ValueError, match="Received: runs=0, warmup=1"):
        timing.measure(lambda: None, runs=0, warmup=1)
    with pytest.raises(ValueError, match="at least one time"):
        timing.summarize([])


def test_the_child_and_the_parent_share_the_timing_routine():
    assert Path(_litert_child.timing.__file__) == Path(timing.__file__)


@pytest.mark.parametrize("kw, match", [
    ({"runs": 0}, "Argument `runs` must be a positive integer. Received: runs=0"),
    ({"warmup": -1}, "Received: warmup=-1"),
    ({"threads": 1.5}, "Received: threads=1.5"),
    ({"timeout": 0}, "Argument `timeout` must be a positive number"),
])
def test_bad_arguments(tiny_tflite, kw, match):
    with pytest.raises(ValueError, match=match.replace("`", ".")):
        litert(tiny_tflite, **kw)


def test_missing_and_non_tflite_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        litert(tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(ValueError, match="must be a TFLite flatbuffer"):
        litert(junk)


def test_a_model_litert_refuses_fails_in_the_child_with_its_message(tiny_tflite, tmp_path):
    tree = tflite_edit.read(tiny_tflite)
    code = tree.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
    code.customCode = "NoSuchOp"
    bad = tmp_path / "custom_op.tflite"
    bad.write_bytes(tflite_edit.write(tree))  # a sound flatbuffer: inspect reads it
    with pytest.raises(ProfilingError, match="(?s)LiteRT benchmark child.*failed.*Command:.*"
                                             "unresolved custom op: NoSuchOp"):
        litert(bad, runs=2, warmup=1)


def test_a_damaged_model_is_named_before_the_child_runs(tiny_tflite, tmp_path):
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(open(tiny_tflite, "rb").read()[:200])  # keeps the TFL3 identifier
    with pytest.raises(ValueError, match="Argument `model` is a truncated or corrupted"):
        litert(bad, runs=2, warmup=1)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


def test_crashing_runtime_is_reported_and_does_not_take_the_caller_down(tiny_tflite, tmp_path):
    crasher = tmp_path / "crashing-python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    with pytest.raises(ProfilingError, match="killed by signal SIGSEGV"):
        litert(tiny_tflite, runs=2, warmup=1, python=str(crasher))


def test_timeout_kills_the_child_and_its_children(tiny_tflite, tmp_path):
    marker = f"tfimp-hang-{os.getpid()}"
    survived = tmp_path / "survived"
    # The grandchild holds the output pipe; had it outlived the kill, `litert` would have
    # waited for it and it would have written `survived` before exiting.
    sleeper = f"import time; time.sleep(60); open({str(survived)!r}, 'w').close()"
    hanger = tmp_path / "hanging-python"
    hanger.write_text(
        f"#!{sys.executable}\nimport subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {sleeper!r}, '{marker}'])\n"
        f"time.sleep(300)\n")
    hanger.chmod(0o755)
    with pytest.raises(ProfilingError, match="did not finish within 1 s and was killed"):
        litert(tiny_tflite, runs=2, warmup=1, timeout=1, python=str(hanger))
    time.sleep(0.2)
    assert _processes_mentioning(marker) == []
    assert not survived.exists()
