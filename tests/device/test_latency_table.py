"""LatencyTable: per-layer latencies timed in LiteRT on one-layer int8 models, cached once per
target; unit cuts predicted from the parent's measured latency; the end-of-run re-timing."""

import json
import types

import keras
import numpy as np
import pytest
from helpers_device import builder, toy_data

import tfimp
from tfimp.device import DeviceBudget, LatencyTable
from tfimp.device.latency import grid_points, target_key
from tfimp.device.policy import DevicePolicy
from tfimp.device.report import device_markdown
from tfimp.device.units import Units


def _mlp(features=64, hidden=32, out=8):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(hidden, activation="relu", name="h")(inputs)
    return keras.Model(inputs, keras.layers.Dense(out, name="out")(x))


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A table measured once for a small MLP, and its cache folder."""
    folder = tmp_path_factory.mktemp("latency")
    units = Units(_mlp())
    table = LatencyTable(cache=folder)
    return folder, units, table, table.model_us(units, units.alive)


def test_grid_holds_one_the_count_and_multiples_of_a_sixteenth():
    assert grid_points(300) == [1, *range(19, 300, 19), 300]
    assert grid_points(8) == list(range(1, 9))
    assert len(grid_points(1000)) <= 17
    assert grid_points(300, 4) == [1, 75, 150, 225, 300]


def test_the_cache_is_written_and_read_back_without_measuring(cached):
    folder, units, table, us = cached
    assert table.measured > 0 and table.seconds > 0
    stored = json.loads(table.path.read_text())
    assert stored["key"] == table.key and len(stored["entries"]) == len(table.entries)
    again = LatencyTable(cache=folder)
    assert again.model_us(Units(_mlp()), units.alive) == us
    assert again.measured == 0 and again.stats()["entries"] == len(table.entries)


def test_a_corrupt_cache_file_is_measured_again(cached, tmp_path):
    folder, units, table, _ = cached
    broken = LatencyTable(cache=tmp_path)
    broken.path.parent.mkdir(parents=True, exist_ok=True)
    broken.path.write_text('{"key": {"target": "local"}, "entr')
    table2 = LatencyTable(cache=tmp_path)
    assert table2.entries == {}
    assert table2.model_us(units, units.alive) > 0 and table2.measured > 0
    assert json.loads(table2.path.read_text())["entries"] == table2.entries


def test_target_key_names_the_machine_runtime_and_threads():
    local = target_key("local", 1)
    assert {"cpu", "cpus", "litert", "threads", "xnnpack"} <= set(local)
    assert target_key("local", 2) != local
    assert target_key("ssh:pi@board", 4) == {"target": "ssh:pi@board", "threads": 4,
                                             "format": local["format"]}
    assert LatencyTable("local", 2).path != LatencyTable("local", 1).path


def test_dense_entries_are_positive_and_grow_with_the_channels(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((1024,))
    model = keras.Model(inputs, keras.layers.Dense(1024, activation="relu")(inputs))
    table = LatencyTable(cache=tmp_path)
    spec, = table.specs(Units(model))
    assert spec.kind == "Dense" and spec.cout_grid[-1] == 1024
    small, big = table.entry_us(spec, 1024, 64), table.entry_us(spec, 1024, 1024)
    # 16 times the multiply-adds (a million against 65 thousand)
    assert big > 0 and big > 4 * small >= 0
    assert table.measured == 3  # two layers at two widths, one overhead for the input


def test_counts_between_grid_points_are_interpolated(cached):
    _, units, table, _ = cached
    spec = table.specs(units)[0]
    assert spec.cin_grid == grid_points(64) and spec.cout_grid == grid_points(32)
    lo, hi = spec.cout_grid[1], spec.cout_grid[2]
    mid = (lo + hi) // 2 if hi - lo > 1 else lo
    t = (mid - lo) / (hi - lo)
    want = (1 - t) * table.entry_us(spec, 64, lo) + t * table.entry_us(spec, 64, hi)
    assert table.layer_us(spec, 64, mid) == pytest.approx(want)


def test_a_cut_is_predicted_from_the_parents_measured_latency(cached):
    _, units, table, _ = cached
    assert table.predict_ms(units, units.alive, units.alive, 1.234) == 1.234
    cut = units.alive.copy()
    hidden = np.flatnonzero(units.prunable)[:24]
    cut[hidden] = False
    delta = (table.model_us(units, cut) - table.model_us(units, units.alive)) / 1000
    assert table.predict_ms(units, cut, units.alive, 1.234) == pytest.approx(1.234 + delta)
    estimate = Units(units.model, latency=table).estimate(cut)
    assert estimate["latency_us"] == pytest.approx(table.model_us(units, cut))


def test_bad_table_arguments_name_the_argument():
    with pytest.raises(ValueError, match="`target`.*'local'.*Received: target='board'"):
        LatencyTable("board")
    with pytest.raises(ValueError, match="`threads`.*Received: threads=0"):
        LatencyTable("local", 0)


def _driver(cfg, history):
    return types.SimpleNamespace(cfg=cfg, manifest={"history": history},
                                 _round_model=lambda r: builder(features=16)())


def test_a_round_that_misses_when_timed_again_is_not_written_as_fitting():
    policy = DevicePolicy(DeviceBudget(latency_ms=1e-6, runtime="litert"))
    x, _ = toy_data(64, features=16)
    policy.calibration = x
    device = {"fits": True, "excess": {"latency_ms": 0.5}, "flash": 2000, "ram": None,
              "latency_ms": 5e-7, "encoding": "none", "budget": {"latency_ms": 1e-6}}
    history = [{"round": 0, "val_accuracy": 0.9, "device": device}]
    policy.driver = _driver(tfimp.IMPConfig(budget=0.1), history)
    choice = policy.choose(history, 0.9)
    assert not choice["fits"] and choice["label"].startswith("nearest miss")
    assert choice["retimed"]["fits"] is False and choice["retimed"]["latency_ms"] > 1e-6
    assert choice["rejected_on_retiming"][0]["round"] == 0
    assert choice["over_by"] > 1.0  # the re-timed latency, not the run's
    lines = device_markdown({"choice": choice, "limits": {"latency_ms": 1e-6},
                             "checked": {"fits": False}, "rounds": [],
                             "describe": "latency_ms=1e-06 ms on litert"})
    text = "\n".join(lines)
    assert "NEAREST MISS (latency_ms over by" in text and "timed again at the end" in text
    assert "round 0 fitted in the run but took" in text


@pytest.mark.slow
def test_a_latency_run_times_the_noise_uses_the_table_and_labels_the_miss(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("TFIMP_CACHE_DIR", str(tmp_path / "cache"))
    x, y = toy_data(240, features=64)
    budget = DeviceBudget(latency_ms=1e-4, runtime="litert")
    result = tfimp.imp(builder(features=64, hidden=(64, 16)), (x[:160], y[:160]),
                       (x[160:], y[160:]), workdir=tmp_path / "run", verbose=0, device=budget,
                       rounds=2, rate=0.3, epochs_per_round=1, budget=0.5, batch_size=32)
    first = result.history[0]["device"]
    assert len(first["latency_repeats"]) == 5 and first["latency_spread"] >= 0
    spread = float(np.ptp(first["latency_repeats"]) / np.median(first["latency_repeats"]))
    assert first["latency_limit_ms"] == pytest.approx(1e-4 / (1 + spread), rel=1e-9)
    cuts = [h for h in result.history if h.get("device_action") == "units"]
    assert cuts and cuts[0]["latency_table"]["measured"] > 0
    assert "latency_ms" in cuts[0]["device_predicted"]
    choice = result.device
    assert not choice["fits"] and choice["label"] == "nearest miss"
    assert choice["retimed"]["fits"] is False
    manifest = json.loads((result.workdir / "manifest.json").read_text())
    assert manifest["device_choice"]["retimed"] == choice["retimed"]


@pytest.mark.parametrize("name, kinds, widths", [
    ("lenet5", ["Conv2D", "Conv2D", "Dense", "Dense"], [(1, 20), (20, 50), (800, 500),
                                                         (500, 10)]),
    ("mnist1d_cnn", ["Conv1D"] * 3 + ["Dense"], [(1, 32), (32, 32), (32, 32), (1280, 10)]),
    ("ds_cnn", ["Conv2D"] + ["DepthwiseConv2D", "Conv2D"] * 4 + ["Dense"], None),
])
def test_the_table_holds_the_layers_that_carry_the_cost(name, kinds, widths, tmp_path):
    units = Units(tfimp.models.get(name))
    specs = LatencyTable(cache=tmp_path).specs(units)
    assert [s.kind for s in specs] == kinds
    coarse = LatencyTable(cache=tmp_path, grid=4).specs(units)
    assert all(len(s.cin_grid) <= 5 and len(s.cout_grid) <= 5 for s in coarse)
    if widths:
        assert [(s.cin_grid[-1], s.cout_grid[-1]) for s in specs] == widths
    for s in specs:  # the one-layer model at a grid point has the layer's shapes
        cin = s.cin_grid[len(s.cin_grid) // 2]
        cout = s.cout_grid[-1] or cin
        one = s.build(cin, cout)
        assert one.inputs[0].shape[1:] == s.spatial + (cin,)
        assert one.outputs[0].shape[-1] == cout
        assert one.outputs[0].shape[1:-1] == s.layer.output.shape[1:-1]


class _Constant:
    """A table whose every cut costs the same time (a cut inside the timing noise)."""

    def model_us(self, units, keep):
        return 5.0


def test_a_cut_the_table_sees_as_flat_still_counts_by_its_multiply_adds(cached):
    from tfimp.device.units import FLAT_CUT, _gain

    _, units, table, _ = cached
    cut = units.alive.copy()
    cut[np.flatnonzero(units.prunable)[:8]] = False
    timed = Units(units.model, latency=table)
    before, after = timed.estimate(units.alive), timed.estimate(cut)
    want = (before["latency_us"] - after["latency_us"]) / before["latency_us"]
    macs = 1 - after["macs"] / before["macs"]
    gain = _gain(timed, units.alive, cut, {"latency_ms": 1})
    assert gain == pytest.approx(want if want > 0 else FLAT_CUT * macs)
    flat = Units(units.model, latency=_Constant())
    assert _gain(flat, units.alive, cut, {"latency_ms": 1}) == pytest.approx(FLAT_CUT * macs)
    assert _gain(Units(units.model), units.alive, cut, {"latency_ms": 1}) == \
        pytest.approx(macs)
