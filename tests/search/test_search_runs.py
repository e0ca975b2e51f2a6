"""`tfimp search` end to end with real workers: a SIGKILLed worker loses nothing and its
study ends as the serial one does; a trial reruns with `--from-search` to the same masks; two
workers share a real PostgreSQL server; a local Ray cluster runs the trials."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
# Cheap trials whose results do not depend on timing: no QAT stage, no distillation.
FIXED = ["imp.final_qat_epochs=0", "imp.distill=none", "imp.strategy=imp"]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")


def _search(workdir, *extra, trials: int = 2) -> list[str]:
    return [sys.executable, "-m", "tfimp.cli", "search", "lenet_300_100", "--smoke",
            "--trials", str(trials), "--workdir", str(workdir), "--heartbeat", "1",
            "--seed", "3", *FIXED, *extra]


def _run(cmd, timeout=1500) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _report(workdir) -> dict:
    return json.loads((Path(workdir) / "report" / "search.json").read_text())


def _trials(storage: str):
    store = optuna.storages.RDBStorage(storage)
    return optuna.load_study(study_name="tfimp-search", storage=store).get_trials()


def _completes_per_slot(trials) -> dict:
    out: dict = {}
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            out[t.user_attrs["slot"]] = out.get(t.user_attrs["slot"], 0) + 1
    return out


def _outcome(report) -> list:
    return [(t["slot"], t["state"], t["overrides"], t["metrics"].get("drop"),
             t["metrics"].get("bytes"), t["metrics"].get("sparsity")) for t in report["trials"]]


def _wait_for(predicate, seconds: float, proc=None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the search ended early: {proc.returncode}")
        time.sleep(0.2)
    pytest.fail("timed out waiting")


def _masks(run_dir: Path) -> dict:
    (imp_dir,) = run_dir.glob("imp-*")
    out = {}
    for path in sorted(imp_dir.glob("round_*.npz")):
        with np.load(path) as f:
            out[path.name] = {k: f[k] for k in f.files}
    return out


@pytest.mark.slow
def test_sigkilled_worker_loses_nothing_and_a_trial_reruns_to_the_same_masks(tmp_path):
    serial, killed = tmp_path / "serial", tmp_path / "killed"
    _run(_search(serial))
    expected = _report(serial)
    assert [t["state"] for t in expected["trials"]] == ["complete"] * 2

    proc = subprocess.Popen(_search(killed), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Mid-trial: slot 1's dense round is saved in its run folder, the run goes on.
        _wait_for(lambda: any((killed / "trials" / "001").glob("imp-*/round_00.npz")), 900,
                  proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (killed / "report").exists()
    _run(_search(killed))
    got = _report(killed)
    assert _outcome(got) == _outcome(expected)
    trials = _trials(f"sqlite:///{killed / 'study.db'}")
    assert _completes_per_slot(trials) == {0: 1, 1: 1}
    assert [t["attempts"] for t in got["trials"]] == [1, 2]
    assert len(list((killed / "trials" / "001").glob("imp-*"))) == 1  # resumed, not redone

    rerun = tmp_path / "rerun"
    _run([sys.executable, "-m", "tfimp.cli", "run", "--from-search", str(serial), "--trial",
          "1", "--workdir", str(rerun)])
    mine, theirs = _masks(rerun), _masks(serial / "trials" / "001")
    assert mine.keys() == theirs.keys() and len(mine) >= 2
    for name in mine:
        for key in mine[name]:
            np.testing.assert_array_equal(mine[name][key], theirs[name][key])


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path, postgres):
    pytest.importorskip("psycopg")
    cmds = [_search(tmp_path / f"machine{i}", "--storage", postgres, trials=4) for i in (0, 1)]
    procs = [subprocess.Popen(c, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    outs = [p.communicate(timeout=1500) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-3000:] + err[-3000:]
    trials = _trials(postgres)
    assert _completes_per_slot(trials) == {0: 1, 1: 1, 2: 1, 3: 1}
    ran = [len(list((tmp_path / f"machine{i}" / "trials").glob("*"))) for i in (0, 1)]
    assert sum(ran) == 4 and min(ran) >= 1, ran
    last = max((_report(tmp_path / f"machine{i}") for i in (0, 1)),
               key=lambda r: sum(t["state"] == "complete" for t in r["trials"]))
    assert [t["state"] for t in last["trials"]] == ["complete"] * 4
    assert "postgresql://postgres@127.0.0.1" in last["storage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if ray is None:
        if os.environ.get("TFIMP_REQUIRE_RAY") == "1":
            pytest.fail("Ray is not installed: pip install 'tfimp[ray]'")
        pytest.skip("Ray is not installed: pip install 'tfimp[ray]'")
    port = _free_port()
    start = subprocess.run([ray, "start", "--head", "--port", str(port), "--node-ip-address",
                            "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
                            "--disable-usage-stats"], env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop"], env=_env(), capture_output=True, timeout=300)


@pytest.mark.slow
def test_trials_on_a_local_ray_cluster(tmp_path, ray_head):
    _run(_search(tmp_path / "ray", "--ray", ray_head, trials=2))
    report = _report(tmp_path / "ray")
    assert [t["state"] for t in report["trials"]] == ["complete"] * 2
    for t in report["trials"]:
        assert (Path(t["run_dir"]) / "report" / "report.json").is_file()
        assert t["metrics"]["bytes"] > 0
    assert (tmp_path / "ray" / "report" / "pareto.png").stat().st_size > 0


@pytest.mark.slow
def test_one_objective_within_the_accuracy_and_device_budgets(tmp_path):
    workdir = tmp_path / "single"
    out = _run(_search(workdir, "--objective", "flash", "--board", "cortex-m4-256k",
                       trials=2))
    assert out.stdout.count("trial ") == 2  # one line per finished trial
    report = _report(workdir)
    assert [t["state"] for t in report["trials"]] == ["complete"] * 2
    trials = _trials(f"sqlite:///{workdir / 'study.db'}")
    for t in trials:
        assert set(t.user_attrs["constraints"]) == {"accuracy_budget", "device_budget"}
        assert t.values == [t.user_attrs["metrics"]["flash"]]
    text = (workdir / "report" / "search.md").read_text()
    assert "one objective within the accuracy budget" in text
