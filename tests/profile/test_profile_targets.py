import pytest

from tfimp.profile import AdbTarget, LocalTarget, SshTarget, parse_target


def test_forms():
    assert parse_target(None) == LocalTarget() == parse_target("local")
    assert parse_target("adb:R58M1234") == AdbTarget("R58M1234")
    assert parse_target("adb:") == AdbTarget("")
    t = parse_target("ssh:pi@raspberrypi.local")
    assert (t.user, t.host, t.port, t.python) == ("pi", "raspberrypi.local", 22, "python3")
    t = parse_target("ssh:root@127.0.0.1:2222,python=/opt/venv/bin/python,identity=/k")
    assert (t.port, t.python, t.identity) == (2222, "/opt/venv/bin/python", "/k")
    assert parse_target("ssh:[::1]:2200").host == "::1"
    assert str(parse_target("ssh:pi@board:2200")) == "ssh:pi@board:2200"


def test_ssh_and_scp_command_lines():
    t = SshTarget(host="board", user="pi", port=2200, identity="/k", known_hosts="/kh")
    assert t.ssh_args()[-3:] == ["-p", "2200", "pi@board"]
    assert "UserKnownHostsFile=/kh" in t.ssh_args() and "BatchMode=yes" in t.ssh_args()
    assert t.scp_args("a.tflite", "/tmp/x")[-3:] == ["2200", "a.tflite", "pi@board:/tmp/x"]


@pytest.mark.parametrize("spec, match", [
    ("serial:1", "Argument `target` must be"),
    ("ssh:pi@board,colour=red", "Unknown ssh target option 'colour=red'"),
    ("adb:bad serial", "Argument `serial` must be an adb serial"),
    ("ssh:pi@board:99999", "Argument `port` must be an integer in 1..65535"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_target(spec)


def test_configs_name_their_kind():
    assert SshTarget("h").get_config()["kind"] == "ssh"
    assert AdbTarget("x").get_config() == {"kind": "adb", "serial": "x",
                                           "workdir": "/data/local/tmp"}
