import glob
import shutil
import sys

import pytest

from tfimp.profile import BenchResult, ProfilingError, SshTarget, benchmark_model


def test_local_binary_gets_the_flags_and_its_output_is_parsed(tiny_tflite,
                                                              benchmark_model_binary):
    r = benchmark_model(tiny_tflite, binary=benchmark_model_binary, threads=2, runs=30,
                        warmup=4, xnnpack=False, op_profiling=True)
    assert (r.tool, r.target, r.threads, r.xnnpack) == ("benchmark_model", "local", 2, False)
    assert r.runs == 30 and r.warmup_runs == 4  # parsed from the tool's count= lines
    assert r.min_us <= r.avg_us <= r.max_us and r.init_us > 0 and r.first_us > 0
    assert r.median_us is None and r.p90_us is None  # benchmark_model does not report them
    assert r.mem_increase_bytes == int(3.25 * 2**20) and r.peak_memory_bytes == int(12.5 * 2**20)
    assert [row.name for row in r.op_profile] == ["[dense_1]:0", "[Identity]:1"]
    assert r.op_summary[0].node_type == "FULLY_CONNECTED" and r.op_summary[0].count == 2
    assert "Num threads: [2]" in r.raw_output
    assert "XNNPACK delegate" not in r.raw_output  # --use_xnnpack=false reached the binary
    assert BenchResult.from_json(r.to_json()) == r


def test_binary_found_on_path(tiny_tflite, benchmark_model_binary, monkeypatch):
    monkeypatch.setenv("PATH", benchmark_model_binary.rsplit("/", 1)[0])
    r = benchmark_model(tiny_tflite, runs=5)
    assert r.tool == "benchmark_model" and r.op_profile == ()


def test_no_binary_on_path_names_the_fix(tiny_tflite, no_tool_path):
    with pytest.raises(FileNotFoundError, match="No `benchmark_model` binary on PATH.*binary="):
        benchmark_model(tiny_tflite)
    with pytest.raises(FileNotFoundError, match="Received: binary='/no/such/benchmark_model'"):
        benchmark_model(tiny_tflite, binary="/no/such/benchmark_model")


def test_failing_run_reports_the_command_and_its_output(tiny_tflite, benchmark_model_binary,
                                                        tmp_path):
    with pytest.raises(ProfilingError, match="(?s)benchmark_model failed.*--graph=.*--num_runs"):
        benchmark_model(tiny_tflite, binary=benchmark_model_binary,
                        extra_flags=["--graph=/dev/null"])


@pytest.mark.parametrize("target", ["usb:1234", "ssh:", "ssh:pi@host:notaport", "local:x"])
def test_unknown_targets(tiny_tflite, target):
    with pytest.raises(ValueError, match="Argument `target` must be"):
        benchmark_model(tiny_tflite, target=target)


def test_adb_without_adb_installed(tiny_tflite, no_tool_path):
    with pytest.raises(FileNotFoundError, match="`adb` command is not installed"):
        benchmark_model(tiny_tflite, target="adb:emulator-5554")


def test_bad_runs(tiny_tflite):
    with pytest.raises(ValueError, match="Received: runs=0"):
        benchmark_model(tiny_tflite, runs=0)


def _target(server, **kw) -> SshTarget:
    return SshTarget(host=server.host, port=server.port, user=server.user,
                     identity=server.identity, known_hosts=server.known_hosts, **kw)


def _leftovers() -> list[str]:
    return glob.glob("/tmp/tfimp-bench.*")


def test_ssh_board_without_binary_runs_the_litert_benchmark_remotely(sshd, lenet_tflite):
    before = _leftovers()
    spec = (f"ssh:{sshd.user}@{sshd.host}:{sshd.port},python={sys.executable},"
            f"identity={sshd.identity},known_hosts={sshd.known_hosts}")
    r = benchmark_model(lenet_tflite, target=spec, threads=1, runs=20, warmup=2)
    assert r.tool == "litert" and r.target == f"ssh:{sshd.user}@127.0.0.1:{sshd.port}"
    assert r.runs == 20 and r.warmup_runs == 2
    assert r.min_us <= r.median_us <= r.p90_us <= r.max_us
    assert r.mem_increase_bytes > 0
    assert _leftovers() == before  # the remote temp folder was removed


def test_ssh_board_with_binary(sshd, tiny_tflite, benchmark_model_binary):
    before = _leftovers()
    r = benchmark_model(tiny_tflite, binary=benchmark_model_binary, target=_target(sshd),
                        runs=10, op_profiling=True)
    assert r.tool == "benchmark_model" and r.runs == 10
    assert "Graph: [/tmp/tfimp-bench." in r.raw_output  # ran on the copy sent over scp
    assert len(r.op_profile) == 2
    assert _leftovers() == before


def test_ssh_remote_failure_is_reported_and_cleaned_up(sshd, tiny_tflite):
    before = _leftovers()
    with pytest.raises(ProfilingError,
                       match="(?s)ssh to ssh:.*failed: exit status 127.*No such file"):
        benchmark_model(tiny_tflite, target=_target(sshd, python="/no/such/python"), runs=2)
    assert _leftovers() == before


def test_ssh_unreachable_host(sshd, tiny_tflite):
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = SshTarget(host="127.0.0.1", port=port, identity=sshd.identity,
                       known_hosts=sshd.known_hosts)
    with pytest.raises(ProfilingError, match="(?s)ssh to .*failed: exit status 255.*Connection"):
        benchmark_model(tiny_tflite, target=target)
