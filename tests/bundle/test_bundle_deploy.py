"""`tfimp deploy rpi` against a real OpenSSH server on loopback."""

import hashlib
import json
import sys

import pytest

from tfimp.bundle import DeployError, build, deploy_rpi
from tfimp.bundle.cli import deploy_main


def _options(sshd):
    return [f"UserKnownHostsFile={sshd.known_hosts}", "StrictHostKeyChecking=yes"]


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deploy_copies_and_checks_on_the_board(sshd, rpi_bundle, tmp_path, capsys):
    remote = tmp_path / "board" / "tfimp" / "cnn"
    argv = ["rpi", f"{sshd.user}@{sshd.host}", str(rpi_bundle), "--port", str(sshd.port),
            "--identity", sshd.identity, "--python", sys.executable,
            "--remote-dir", str(remote)]
    for opt in _options(sshd):
        argv += ["-o", opt]
    assert deploy_main(argv + ["--json"]) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["check"]["ok"] and result["remote_dir"] == str(remote)
    assert set(result["check"]["runs"]) == {"zeros", "random"}
    assert _digests(remote) == _digests(rpi_bundle)
    (remote / "stale.txt").write_text("from an older deploy")
    assert deploy_main(argv) == 0
    assert "sha256 verified there" in capsys.readouterr().out
    assert not (remote / "stale.txt").exists()
    assert [p.name for p in remote.parent.iterdir()] == ["cnn"]


def test_board_without_the_runtime_is_reported(sshd, rpi_bundle, tmp_path):
    # the system Python has no ai-edge-litert: the check on the board must fail loudly
    with pytest.raises(DeployError, match=r"/usr/bin/python3 has no `numpy`.*pip install -r"):
        deploy_rpi(f"{sshd.user}@{sshd.host}", rpi_bundle, port=sshd.port,
                   identity=sshd.identity, python="/usr/bin/python3",
                   remote_dir=str(tmp_path / "r"), ssh_options=_options(sshd), timeout=60)


def test_unreachable_board_is_a_clear_error(sshd, rpi_bundle, tmp_path):
    wrong_key = tmp_path / "wrong_key"  # a file, but no key the board accepts
    wrong_key.write_text("not a private key\n")
    wrong_key.chmod(0o600)
    with pytest.raises(DeployError, match=r"ssh \(prepare\) failed"):
        deploy_rpi(f"{sshd.user}@{sshd.host}", rpi_bundle, port=sshd.port,
                   identity=wrong_key, remote_dir=str(tmp_path / "r"),
                   ssh_options=_options(sshd), timeout=30)


def test_bad_bundles_and_arguments_are_refused_before_ssh(models, rpi_bundle, tmp_path):
    android = build(models["int8"], "android", tmp_path / "a", profile=False)
    with pytest.raises(ValueError, match="must be an rpi bundle"):
        deploy_rpi("pi@localhost", android)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        deploy_rpi("pi@localhost", tmp_path)
    with pytest.raises(ValueError, match="`port` must be a TCP port"):
        deploy_rpi("pi@localhost", rpi_bundle, port=0)
    with pytest.raises(ValueError, match="`host` must be USER@HOST"):
        deploy_rpi("-oProxyCommand=x", rpi_bundle)


@pytest.mark.slow
def test_deploy_with_setup_installs_the_requirements_on_the_board(sshd, rpi_bundle, tmp_path):
    result = deploy_rpi(f"{sshd.user}@{sshd.host}", rpi_bundle, port=sshd.port,
                        identity=sshd.identity, python=sys.executable, setup=True,
                        remote_dir=str(tmp_path / "board" / "cnn"), ssh_options=_options(sshd))
    venv_python = tmp_path / "board" / "cnn" / ".venv" / "bin" / "python"
    assert result.python == ".venv/bin/python" and venv_python.exists()
    assert result.check["ok"] and not list((tmp_path / "board").glob("*.partial"))
