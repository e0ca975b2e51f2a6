"""A latency budget timed on a board reached over ssh (the Raspberry Pi target): the real
OpenSSH server on loopback stands in for the board, running the LiteRT benchmark remotely."""

import sys

import pytest
from helpers_device import builder, toy_data

from tfimp.device import DeviceBudget, budget_for, cost
from tfimp.structure.shrink import shrink

pytestmark = pytest.mark.usefixtures("sshd")


def _target(sshd) -> str:
    return (f"ssh:{sshd.user}@{sshd.host}:{sshd.port},python={sys.executable},"
            f"identity={sshd.identity},known_hosts={sshd.known_hosts}")


def test_the_raspberry_pi_target_times_the_int8_file_over_ssh(sshd):
    x, _ = toy_data(64)
    model = builder()()
    pi = budget_for("raspberry-pi-ssh", latency_ms=1000.0, target=_target(sshd), threads=1)
    assert (pi.runtime, pi.name) == ("litert", "raspberry-pi-ssh")
    m = cost.measure(model, pi, x)
    assert m.fits and 0 < m.latency_ms < 1000.0
    assert m.flash == len(cost.export_int8(shrink(model), x))

    tight = DeviceBudget(latency_ms=m.latency_ms / 1e4, runtime="litert",
                         target=_target(sshd))
    miss = cost.measure(model, tight, x)
    assert not miss.fits and miss.binding()[0] == "latency_ms"
    assert miss.binding()[1] > 100
