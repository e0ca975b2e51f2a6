"""Where a benchmark runs: this machine, an Android device over adb, a Linux board over ssh.

A target is a small frozen config; `parse_target` reads the command-line forms
`local`, `adb:SERIAL` and `ssh:USER@HOST[:PORT][,python=PATH][,identity=KEY][,known_hosts=F]`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalTarget:
    """This machine."""

    def __str__(self) -> str:
        return "local"

    def get_config(self) -> dict:
        return {"kind": "local"}


@dataclass(frozen=True)
class AdbTarget:
    """An Android device reached with `adb -s SERIAL` (empty serial: the only device)."""

    serial: str = ""
    workdir: str = "/data/local/tmp"

    def __post_init__(self):
        if not re.fullmatch(r"[\w.:\-]*", self.serial):
            raise ValueError(f"Argument `serial` must be an adb serial (letters, digits, '.:-_'). "
                             f"Received: serial={self.serial!r}")

    def __str__(self) -> str:
        return f"adb:{self.serial}"

    def adb_args(self) -> list[str]:
        """`adb` with the device selected."""
        return ["adb", "-s", self.serial] if self.serial else ["adb"]

    def get_config(self) -> dict:
        return {"kind": "adb", **dataclasses.asdict(self)}


@dataclass(frozen=True)
class SshTarget:
    """A Linux board reached with OpenSSH (`ssh`, `scp`), without password prompts.

    Attributes:
        host: host name or address.
        user: login name; None uses ssh's default.
        port: ssh port.
        python: the board's Python, used when the board has no `benchmark_model`; it needs
            numpy and ai-edge-litert.
        identity: private key file (`ssh -i`); None uses ssh's default keys.
        known_hosts: a known_hosts file to check the host key against strictly.
        connect_timeout: seconds to wait for the connection.
    """

    host: str
    user: str | None = None
    port: int = 22
    python: str = "python3"
    identity: str | None = None
    known_hosts: str | None = None
    connect_timeout: int = 10

    def __post_init__(self):
        if not self.host or not re.fullmatch(r"[\w.\-:\[\]%]+", self.host):
            raise ValueError(f"Argument `host` must be a host name or address. "
                             f"Received: host={self.host!r}")
        port_ok = isinstance(self.port, int) and not isinstance(self.port, bool)
        if not port_ok or not 0 < self.port < 65536:
            raise ValueError(f"Argument `port` must be an integer in 1..65535. "
                             f"Received: port={self.port!r}")
        timeout = self.connect_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"Argument `connect_timeout` must be whole seconds >= 1. "
                             f"Received: connect_timeout={timeout!r}")

    def __str__(self) -> str:
        login = f"{self.user}@{self.host}" if self.user else self.host
        return f"ssh:{login}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.identity:
            opts += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}",
                     "-o", "StrictHostKeyChecking=yes"]
        return opts

    def ssh_args(self) -> list[str]:
        """`ssh` up to and including the destination; append the remote command."""
        return ["ssh", *self._options(), "-p", str(self.port), self.destination]

    def scp_args(self, local: str, remote: str) -> list[str]:
        """`scp` that copies `local` to `remote` on the board."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        dest = f"{self.user}@{host}" if self.user else host
        return ["scp", "-q", *self._options(), "-P", str(self.port), local, f"{dest}:{remote}"]

    def get_config(self) -> dict:
        return {"kind": "ssh", **dataclasses.asdict(self)}


Target = LocalTarget | AdbTarget | SshTarget

TARGETS = {"local": LocalTarget, "adb": AdbTarget, "ssh": SshTarget}
_FORMS = "None, 'local', 'adb:SERIAL' or 'ssh:USER@HOST[:PORT][,python=PATH][,identity=KEY]'"


def _seconds(value: str, rest: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", value) or int(value) < 1:
        raise ValueError(f"Argument `target` must give connect_timeout= as whole seconds >= 1, "
                         f"e.g. connect_timeout=10. Received: target='ssh:{rest}'")
    return int(value)


def _parse_ssh(rest: str) -> SshTarget:
    login, *options = rest.split(",")
    kwargs = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("python", "identity", "known_hosts", "connect_timeout"):
            raise ValueError(f"Unknown ssh target option {option!r}; valid options: python=, "
                             f"identity=, known_hosts=, connect_timeout=")
        if not value.strip():
            raise ValueError(f"Argument `target` must give a value to its ssh option {key}=. "
                             f"Received: target='ssh:{rest}'")
        if key == "connect_timeout":
            value = _seconds(value, rest)
        kwargs[key] = value
    user, _, hostport = login.rpartition("@")
    match = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+))?", hostport)
    if not match:
        raise ValueError(f"Argument `target` must be {_FORMS}. Received: target='ssh:{rest}'")
    host = match.group(1).strip("[]")
    port = int(match.group(2)) if match.group(2) else 22
    return SshTarget(host=host, user=user or None, port=port, **kwargs)


def parse_target(target) -> Target:
    """Returns the target config that `target` names.

    Args:
        target: None or "local"; "adb:SERIAL"; "ssh:USER@HOST[:PORT][,key=value...]"
            (options: python, identity, known_hosts, connect_timeout); or a target object.

    Raises:
        ValueError: an unknown kind of target, with the valid forms.
    """
    if target is None:
        return LocalTarget()
    if isinstance(target, (LocalTarget, AdbTarget, SshTarget)):
        return target
    if not isinstance(target, str):
        raise TypeError(f"Argument `target` must be {_FORMS}. Received: target={target!r}")
    kind, _, rest = target.partition(":")
    if kind == "local" and not rest:
        return LocalTarget()
    if kind == "adb":
        return AdbTarget(serial=rest)
    if kind == "ssh" and rest:
        return _parse_ssh(rest)
    raise ValueError(f"Argument `target` must be {_FORMS} (kinds: {', '.join(TARGETS)}). "
                     f"Received: target={target!r}")
