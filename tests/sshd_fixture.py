"""A real OpenSSH server on loopback for tests: throw-away host and user keys in a temp dir.

Use the `sshd` fixture (register it in a conftest with `from sshd_fixture import sshd`).
Without Debian's openssh-server the tests skip, unless TFIMP_REQUIRE_SSHD=1 (CI), which
makes them fail instead.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import shutil
import socket
import subprocess
import time

import pytest

SSHD = "/usr/sbin/sshd"


@dataclasses.dataclass(frozen=True)
class SshServer:
    """How to reach the test server: `ssh -i identity -p port user@host`."""

    host: str
    port: int
    user: str
    identity: str
    known_hosts: str

    def ssh_command(self, *remote: str) -> list[str]:
        """A complete `ssh` command line that runs `remote` on the server."""
        return ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-i", self.identity, "-o", "IdentitiesOnly=yes",
                "-p", str(self.port), f"{self.user}@{self.host}", *remote]


def _missing_tools() -> list[str]:
    missing = [] if os.access(SSHD, os.X_OK) else [SSHD]
    return missing + [t for t in ("ssh", "scp", "ssh-keygen") if shutil.which(t) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _config(folder, port: int) -> str:
    lines = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder}/host_key",
             f"AuthorizedKeysFile {folder}/authorized_keys", "PubkeyAuthentication yes",
             "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
             "PermitRootLogin prohibit-password", "StrictModes no", f"PidFile {folder}/sshd.pid",
             "Subsystem sftp internal-sftp", "LogLevel ERROR"]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _wait_listening(proc: subprocess.Popen, port: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def _start(folder) -> tuple[subprocess.Popen, int]:
    for _ in range(3):  # another process may take the free port before sshd binds it
        port = _free_port()
        log = open(folder / "sshd.log", "w")
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", _config(folder, port)],
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if _wait_listening(proc, port):
            return proc, port
        proc.kill()
        proc.wait()
    raise RuntimeError("sshd did not start:\n" + (folder / "sshd.log").read_text())


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A running OpenSSH server on 127.0.0.1 that accepts the session's throw-away key."""
    missing = _missing_tools()
    if missing:
        reason = (f"OpenSSH is not installed ({', '.join(missing)} missing): "
                  f"apt-get install -y openssh-server openssh-client")
        if os.environ.get("TFIMP_REQUIRE_SSHD") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("sshd")
    os.chmod(folder, 0o700)
    _keygen(folder / "host_key")
    _keygen(folder / "user_key")
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    proc, port = _start(folder)
    host_pub = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    try:
        yield SshServer("127.0.0.1", port, getpass.getuser(), str(folder / "user_key"),
                        str(folder / "known_hosts"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
