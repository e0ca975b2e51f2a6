"""DeviceBudget: boards, budget strings, config round trip, Keras-style errors."""

import pytest

import tfimp
from tfimp.device import DeviceBudget, budget_for, parse_budget


def test_board_budget_holds_its_flash_and_ram():
    b = budget_for("cortex-m0plus-32k")
    assert (b.flash, b.ram, b.runtime, b.name) == (256 * 1024, 32 * 1024, "tflm",
                                                   "cortex-m0plus-32k")
    assert b.limits() == {"flash": 262144, "ram": 32768}
    assert tfimp.DeviceBudget is DeviceBudget


@pytest.mark.parametrize("text, want", [
    ("flash=256k,ram=32k", {"flash": 262144, "ram": 32768}),
    ("flash=1m", {"flash": 1048576}),
    ("flash=300000, ram=20KB", {"flash": 300000, "ram": 20480}),
    ("latency=5ms", {"latency_ms": 5.0}),
    ("latency=500us,threads=2", {"latency_ms": 0.5}),
])
def test_budget_strings(text, want):
    assert parse_budget(text).limits() == want


def test_budget_string_overrides_a_board():
    b = parse_budget("ram=16k", "cortex-m4-256k")
    assert (b.flash, b.ram, b.name) == (1024 * 1024, 16384, "cortex-m4-256k")


def test_latency_target_takes_the_latency_from_the_budget():
    b = parse_budget("latency=0.2ms", "local-litert")
    assert (b.runtime, b.latency_ms, b.target) == ("litert", 0.2, "local")


def test_config_round_trip():
    b = DeviceBudget(flash=1000, ram=2000, encodings=("none",), margin=0.5, name="x")
    assert DeviceBudget.from_config(b.get_config()) == b


@pytest.mark.parametrize("call, words", [
    (lambda: budget_for("cortex-m9"), ["`board`", "cortex-m9", "cortex-m0plus-32k"]),
    (lambda: parse_budget("flash=256q"), ["`flash`", "256q", "256k"]),
    (lambda: parse_budget("flash=-5k"), ["`flash`", "-5k"]),
    (lambda: parse_budget("flash"), ["`budget`", "flash=SIZE"]),
    (lambda: parse_budget("speed=3"), ["`budget`", "speed=3"]),
    (lambda: parse_budget("latency=fast"), ["`latency`", "5ms"]),
    (lambda: DeviceBudget(flash=-1), ["`flash`", "-1", "positive"]),
    (lambda: DeviceBudget(ram=0), ["`ram`", "0"]),
    (lambda: DeviceBudget(), ["`flash`", "at least one resource"]),
    (lambda: DeviceBudget(latency_ms=-2.0, runtime="litert"), ["`latency_ms`", "-2.0"]),
    (lambda: DeviceBudget(flash=10, latency_ms=5.0), ["`latency_ms`", "runtime='litert'"]),
    (lambda: DeviceBudget(ram=10, runtime="litert"), ["`ram`", "runtime='tflm'"]),
    (lambda: DeviceBudget(flash=10, threads=2), ["`threads`", "runtime='tflm'"]),
    (lambda: DeviceBudget(flash=10, runtime="tpu"), ["`runtime`", "tpu", "tflm"]),
    (lambda: DeviceBudget(flash=10, encodings=("zip",)), ["`encodings`", "zip"]),
    (lambda: DeviceBudget(flash=10, encodings=("pruning",)), ["`encodings`", "'none'"]),
    (lambda: parse_budget("runtime=litert", "cortex-m0plus-32k"), ["`runtime`", "litert",
                                                                   "'tflm'"]),
    (lambda: budget_for("cortex-m4-256k", runtime="litert"), ["`runtime`", "'tflm'"]),
    (lambda: budget_for("local-litert"), ["`latency_ms`", "local-litert", "latency=5ms"]),
])
def test_bad_budgets_name_the_argument_value_and_fix(call, words):
    with pytest.raises(ValueError) as e:
        call()
    message = str(e.value)
    assert message.startswith("Argument `"), message
    for w in words:
        assert w in message, (w, message)
