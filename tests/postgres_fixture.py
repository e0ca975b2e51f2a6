"""A real, throw-away PostgreSQL server on loopback for tests (Debian's postgresql package).

Use the `postgres` fixture (register it in a conftest with `from postgres_fixture import
postgres`): it yields a database URL. As root, the cluster is made and run as `nobody`
(initdb refuses root). Without the package the tests skip, unless TFIMP_REQUIRE_POSTGRES=1
(CI), which makes them fail instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(_as_user(cmd), capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def postgres():
    """The URL of a running PostgreSQL server on 127.0.0.1 (trust auth, user postgres)."""
    if not _BIN or not os.access(f"{_BIN[-1]}/initdb", os.X_OK):
        reason = "PostgreSQL is not installed: apt-get install -y postgresql"
        if os.environ.get("TFIMP_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    bin_dir = _BIN[-1]
    folder = tempfile.mkdtemp(prefix="tfimp-pg-")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    os.mkdir(data, 0o700)
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody", "nogroup")
        shutil.chown(data, "nobody", "nogroup")
    init = _run([f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                 "--no-sync", "-E", "UTF8"])
    if init.returncode:
        pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = _free_port()
    start = _run([f"{bin_dir}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-w",
                  "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start"])
    if start.returncode:
        log = open(os.path.join(folder, "log")).read() if os.path.exists(
            os.path.join(folder, "log")) else ""
        pytest.fail(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)
