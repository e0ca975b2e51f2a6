"""`deploy_rpi`: copies an rpi bundle to a board over ssh and checks it there."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from tfimp._util.errors import TfimpError
from tfimp._util.proc import describe_exit, run
from tfimp._util.validate import fail, input_file, positive_number
from tfimp.bundle.manifest import verify_bundle


class DeployError(TfimpError, RuntimeError):
    """Copying the bundle or checking it on the board failed; the message holds the output."""


@dataclasses.dataclass(frozen=True)
class DeployResult:
    """Where the bundle went and what its check on the board reported."""

    host: str
    remote_dir: str
    python: str
    check: dict


def _ssh_args(port: int, identity, options: Sequence[str]) -> list[str]:
    args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
    if identity is not None:
        args += ["-i", os.fspath(identity), "-o", "IdentitiesOnly=yes"]
    for opt in options:
        args += ["-o", opt]
    return args


def _run(cmd: list[str], timeout: float, what: str):
    try:
        proc = run(cmd, timeout, what, check=False)
    except Exception as e:  # timeouts and a missing ssh/scp program
        raise DeployError(f"{what} failed: {e}") from None
    if proc.returncode != 0:
        raise DeployError(f"{what} failed ({describe_exit(proc.returncode)}).\n"
                          f"Command: {shlex.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def _check_args(host, port, python) -> None:
    if not isinstance(host, str) or not host or host.startswith("-") or ":" in host:
        raise ValueError(f"Argument `host` must be USER@HOST or HOST. Received: host={host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"Argument `port` must be a TCP port (1-65535). Received: port={port!r}")
    if not isinstance(python, str) or not python:
        raise ValueError(f"Argument `python` must name the board's Python. "
                         f"Received: python={python!r}")


def deploy_rpi(
    host: str,
    bundle_dir: str | os.PathLike,
    port: int = 22,
    identity: str | os.PathLike | None = None,
    python: str = "python3",
    remote_dir: str | None = None,
    setup: bool = False,
    ssh_options: Sequence[str] = (),
    timeout: float = 600.0,
) -> DeployResult:
    """Copies an rpi bundle to `host` with scp, then checks it there with its `run.py --check`.

    The check verifies the model's sha256 against the manifest and runs the model on zeros and
    on random input with the board's LiteRT runtime. The copy lands in `<remote_dir>.partial`
    and replaces `remote_dir` only once complete.

    Args:
        host: `USER@HOST` or `HOST`, as ssh takes it.
        bundle_dir: a folder built by `tfimp.bundle.build(..., target="rpi")`.
        port: the ssh port.
        identity: a private key file for ssh (`-i`).
        python: the board's Python that has (or, with `setup`, gets) numpy and ai-edge-litert.
        remote_dir: where the bundle goes on the board (default `tfimp/<bundle folder name>`
            under the login's home).
        setup: create a virtualenv `.venv` in the remote bundle and install its
            requirements.txt (needs network on the board), then check with it.
        ssh_options: extra `-o` options for ssh and scp, e.g. `"StrictHostKeyChecking=no"`.
        timeout: seconds allowed for each ssh or scp command.

    Returns:
        A `DeployResult` with the remote folder and the check's report.

    Raises:
        ValueError: bad arguments, or a bundle that is not an rpi bundle or fails its sha256.
        DeployError: ssh, scp or the check on the board failed; the message holds the output.
    """
    _check_args(host, port, python)
    if identity is not None:
        input_file("identity", identity, "an existing ssh private key file")
    if isinstance(ssh_options, str) or not all(isinstance(o, str) for o in ssh_options):
        fail("ssh_options", ssh_options, "a list of ssh -o options, e.g. "
             "['StrictHostKeyChecking=accept-new']")
    positive_number("timeout", timeout)
    manifest = verify_bundle(bundle_dir)
    if manifest["target"] != "rpi":
        raise ValueError(f"Argument `bundle_dir` must be an rpi bundle. Received: a "
                         f"{manifest['target']!r} bundle in {str(bundle_dir)!r}.")
    folder = Path(bundle_dir).resolve()
    remote = remote_dir or f"tfimp/{folder.name}"
    ssh = ["ssh", "-p", str(port), *_ssh_args(port, identity, ssh_options), host]
    scp = ["scp", "-q", "-r", "-P", str(port), *_ssh_args(port, identity, ssh_options)]
    partial, q = remote.rstrip("/") + ".partial", shlex.quote
    parent = os.path.dirname(remote.rstrip("/")) or "."
    _run(ssh + [f"mkdir -p {q(parent)} && rm -rf {q(partial)}"], timeout, "ssh (prepare)")
    _run(scp + [str(folder), f"{host}:{partial}"], timeout, "scp (copy the bundle)")
    _run(ssh + [f"rm -rf {q(remote)} && mv {q(partial)} {q(remote)}"], timeout, "ssh (install)")
    py = python
    if setup:
        _run(ssh + [f"cd {q(remote)} && {q(python)} -m venv .venv && .venv/bin/python -m pip "
                    f"install -q -r requirements.txt"], timeout, "ssh (virtualenv setup)")
        py = ".venv/bin/python"
    proc = _run(ssh + [f"cd {q(remote)} && {q(py)} run.py --check --json"], timeout,
                "the check on the board (run.py --check)")
    report = _last_json(proc.stdout)
    if not report.get("ok") or report.get("sha256") != manifest["model"]["sha256"]:
        raise DeployError(f"The check on the board failed: {proc.stdout[-2000:]}")
    return DeployResult(host, remote, py, report)


def _last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise DeployError(f"The check on the board printed no report:\n{stdout[-2000:]}")
