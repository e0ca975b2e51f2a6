"""The cost model measures the exported artefact: int8 bytes, the TFLite Micro arena of each
encoding, LiteRT latency; it picks the smallest fitting encoding or the nearest miss."""

import numpy as np
import pytest
from helpers_device import builder, toy_data

from tfimp.device import DeviceBudget, cost
from tfimp.export import micro_fit
from tfimp.export.micro_run import run_micro
from tfimp.structure.shrink import shrink

HUGE = 1 << 30


@pytest.fixture(scope="module")
def sparse_model():
    """h0 at 90% zeros, and its last 8 units read by nothing (shrink removes them)."""
    model = builder(features=64, hidden=(64, 16))()
    k0, b0 = model.get_layer("h0").get_weights()
    rng = np.random.default_rng(0)
    k0[rng.random(k0.shape) < 0.9] = 0.0
    model.get_layer("h0").set_weights([k0, b0])
    k1, b1 = model.get_layer("h1").get_weights()
    k1[56:, :] = 0.0
    model.get_layer("h1").set_weights([k1, b1])
    return model


def test_measures_the_shrunk_int8_file_in_tflite_micro(sparse_model):
    x, _ = toy_data(64, features=64)
    m = cost.measure(sparse_model, DeviceBudget(flash=HUGE, ram=HUGE, encodings=("none",)), x)
    data = cost.export_int8(shrink(sparse_model), x)
    arena = run_micro(data, [x[:8]]).arena_bytes
    assert m.fits and m.encoding == "none"
    assert (m.flash, m.ram) == (len(data), micro_fit.arena_with_margin(arena, 0.25))
    assert m.excess["flash"] == pytest.approx(len(data) / HUGE, abs=1e-6)


def test_the_smallest_fitting_encoding_wins_and_a_miss_names_what_binds(sparse_model):
    x, _ = toy_data(64, features=64)
    decode = ("none", "pruning")
    free = cost.measure(sparse_model, DeviceBudget(flash=HUGE, ram=HUGE, encodings=decode), x)
    rows = {c["encoding"]: c for c in free.candidates}
    assert set(rows) == {"none", "pruning"}
    assert rows["pruning"]["flash"] < rows["none"]["flash"]
    assert rows["pruning"]["ram"] > rows["none"]["ram"]  # DECODE fills the arena
    assert free.encoding == "pruning"
    tight_ram = DeviceBudget(flash=HUGE, ram=rows["none"]["ram"], encodings=decode)
    assert cost.measure(sparse_model, tight_ram, x).encoding == "none"
    miss = cost.measure(sparse_model, DeviceBudget(flash=1000, ram=HUGE, encodings=decode), x)
    assert not miss.fits and miss.binding()[0] == "flash" and miss.binding()[1] > 1
    assert miss.encoding == "pruning"  # the closest to fitting
    data = cost.export_int8(shrink(sparse_model), x)
    assert cost.sparse_arena(data, tight_ram, x, rows["none"]["ram"]) >= rows["pruning"]["ram"]
    plain_only = DeviceBudget(flash=HUGE, encodings=("none",))
    assert cost.sparse_arena(data, plain_only, x, rows["none"]["ram"]) is None


def test_the_sparse_kernel_cuts_flash_at_the_plain_arena(sparse_model):
    x, _ = toy_data(64, features=64)
    free = cost.measure(sparse_model, DeviceBudget(flash=HUGE, ram=HUGE), x)
    rows = {c["encoding"]: c for c in free.candidates}
    assert {"none", "sparse", "pruning"} <= set(rows)
    assert rows["sparse"]["flash"] < rows["none"]["flash"]
    assert rows["sparse"]["ram"] == rows["none"]["ram"]  # nothing decoded into the arena
    tight_ram = DeviceBudget(flash=HUGE, ram=rows["none"]["ram"])
    assert cost.measure(sparse_model, tight_ram, x).encoding == "sparse"
    data = cost.export_int8(shrink(sparse_model), x)
    assert cost.sparse_arena(data, tight_ram, x, rows["none"]["ram"]) == rows["none"]["ram"]


def test_litert_latency_is_timed(sparse_model):
    x, _ = toy_data(64, features=64)
    m = cost.measure(sparse_model, DeviceBudget(latency_ms=1000.0, runtime="litert"), x)
    assert m.fits and 0 < m.latency_ms < 1000 and m.ram is None
    assert m.to_dict()["excess"]["latency_ms"] == pytest.approx(m.latency_ms / 1000, abs=1e-6)


def test_a_registered_encoding_with_a_flat_arena_allows_weight_rounds(monkeypatch):
    flat = cost.Encoder(cost.ENCODERS["none"].rows, sparse=True)
    monkeypatch.setitem(cost.ENCODERS, "flat", flat)
    budget = DeviceBudget(flash=HUGE, ram=HUGE, encodings=("none", "flat"))
    assert cost.sparse_arena(b"", budget, None, 1234) == 1234
