"""Bad inputs to the schedules, the mask functions, prune/strip/update_masks/set_masks, the
sparsity report and the callbacks: each raises a clear error naming the argument."""

import math

import numpy as np
import pytest
from bad_input_helpers import FEATURES, tiny_model

import tfimp
from tfimp import schedules
from tfimp._util.errors import InvalidArgumentError
from tfimp.sparsity import masks

NAN, INF = math.nan, math.inf


def _pruned():
    return tfimp.prune(tiny_model(), None)


def _with_kernel_value(value):
    model = tiny_model()
    w, b = model.get_layer("hidden").get_weights()
    w[0, 0] = value
    model.get_layer("hidden").set_weights([w, b])
    return model


SCHEDULE_CASES = [
    (lambda: schedules.ConstantSparsity(1.0), "target_sparsity"),
    (lambda: schedules.ConstantSparsity(-0.1), "target_sparsity"),
    (lambda: schedules.ConstantSparsity(NAN), "target_sparsity"),
    (lambda: schedules.ConstantSparsity("0.5"), "target_sparsity"),
    (lambda: schedules.ConstantSparsity(0.5, begin_step=-1), "begin_step"),
    (lambda: schedules.ConstantSparsity(0.5, frequency=0), "frequency"),
    (lambda: schedules.ConstantSparsity(0.5, begin_step=10, end_step=5), "end_step"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, 100, power=NAN), "power"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, 100, power=-1), "power"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, 100, power=INF), "power"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, 100, power=0), "power"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, 100, power="3"), "power"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 5, 5), "end_step"),
    (lambda: schedules.PolynomialDecay(0.0, 0.9, 0, -1), "end_step"),
    (lambda: schedules.PolynomialDecay(0.0, 1.5, 0, 10), "final_sparsity"),
    (lambda: schedules.PolynomialDecay(NAN, 0.5, 0, 10), "initial_sparsity"),
    (lambda: schedules.OneShot(0.5, step=-1), "step"),
    (lambda: schedules.OneShot(True), "target_sparsity"),
    (lambda: schedules.deserialize({"class_name": "Nope", "config": {}}), "config"),
    (lambda: schedules.deserialize("ConstantSparsity"), "config"),
    (lambda: schedules.ConstantSparsity.from_config({"target_sparsity": 0.5, "nope": 1}),
     "config"),
]


@pytest.mark.parametrize("make, argument", SCHEDULE_CASES)
def test_schedules_refuse_bad_values_in_the_constructor(make, argument):
    with pytest.raises(InvalidArgumentError, match=f"Argument `{argument}`"):
        make()


def test_schedule_get_refuses_other_types():
    with pytest.raises(TypeError, match="Argument `schedule`"):
        schedules.get("0.5")


MASK_CASES = [
    (lambda: masks.Granularity.parse("blocks:4x1"), "granularity"),
    (lambda: masks.Granularity.parse("block:0x1"), "granularity.block"),
    (lambda: masks.Granularity.parse(5), "granularity"),
    (lambda: masks.Granularity.parse("block:4x1:half"), "granularity"),
    (lambda: masks.Granularity.parse("block:4xa"), "granularity"),
    (lambda: masks.magnitude_mask(np.ones((4, 4)), 1.5), "sparsity"),
    (lambda: masks.magnitude_mask(np.ones((4, 4)), NAN), "sparsity"),
    (lambda: masks.magnitude_mask(np.ones((4, 4)), 0.5, old_mask=np.ones(3)), "mask"),
    (lambda: masks.magnitude_mask(np.ones((4, 4)), 0.5, old_mask=np.full((4, 4), 0.5)),
     "mask"),
    (lambda: masks.magnitude_mask(np.ones((4, 4)), 0.5, granularity=(2, 2, 2)), "block"),
    (lambda: masks.get("everything"), "scope"),
    (lambda: masks.check_blocks({"k": (8, 16)}, "block:64x64"), "granularity"),
]


@pytest.mark.parametrize("call, argument", MASK_CASES)
def test_mask_functions_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"Argument `{argument}`"):
        call()


PRUNE_CASES = [
    (lambda: tfimp.prune("model", 0.5), TypeError, "model"),
    (lambda: tfimp.prune(__import__("keras").Sequential([__import__("keras").layers.Dense(3)]),
                         0.5), ValueError, "model"),
    (lambda: tfimp.prune(tiny_model(), 1.0), ValueError, "schedule"),
    (lambda: tfimp.prune(tiny_model(), NAN), ValueError, "schedule"),
    (lambda: tfimp.prune(tiny_model(), "0.5"), TypeError, "schedule"),
    (lambda: tfimp.prune(tiny_model(), 0.5, scope="all"), ValueError, "scope"),
    (lambda: tfimp.prune(tiny_model(), 0.5, exclude=["nosuch"]), ValueError, "exclude"),
    (lambda: tfimp.prune(tiny_model(), 0.5, exclude=[3]), TypeError, "exclude"),
    (lambda: tfimp.prune(tiny_model(), 0.5, targets={"hidden": 1.2}), ValueError, "targets"),
    (lambda: tfimp.prune(tiny_model(), 0.5, targets={"nosuch": 0.2}), ValueError, "targets"),
    (lambda: tfimp.prune(tiny_model(), 0.5, exclude=["hidden", "out"]), ValueError, "model"),
    (lambda: tfimp.prune(tiny_model(), 0.5, granularity="block:64x64"), InvalidArgumentError,
     "granularity"),
    (lambda: tfimp.prune(tiny_model(), 0.5, granularity="block:16x1:whole"),
     InvalidArgumentError, "granularity"),
    (lambda: tfimp.prune(tiny_model(), 0.5, scope="global", granularity=(64, 64)),
     InvalidArgumentError, "granularity"),
    (lambda: tfimp.prune(tiny_model(), 0.5, granularity=5), InvalidArgumentError,
     "granularity"),
    (lambda: tfimp.prune(_with_kernel_value(NAN), 0.5), InvalidArgumentError, "model"),
    (lambda: tfimp.prune(_with_kernel_value(INF), 0.5, scope="global"), InvalidArgumentError,
     "model"),
    (lambda: tfimp.prune(_pruned(), 0.5), ValueError, "model"),
    (lambda: tfimp.strip("model"), TypeError, "model"),
    (lambda: tfimp.update_masks(tiny_model()), ValueError, "model"),
    (lambda: tfimp.update_masks(_pruned(), step=-1), ValueError, "step"),
    (lambda: tfimp.update_masks(_pruned(), step=1.5), TypeError, "step"),
    (lambda: tfimp.update_masks(_pruned()), ValueError, "step"),
    (lambda: tfimp.set_masks(_pruned(), {"nosuch": np.ones(3)}), InvalidArgumentError,
     "masks"),
    (lambda: tfimp.set_masks(_pruned(), {next(iter(tfimp.get_masks(_pruned()))): np.ones(3)}),
     InvalidArgumentError, "mask"),
    (lambda: tfimp.sparsity_report("model"), TypeError, "model"),
    (lambda: tfimp.callbacks.SparsityLogger(verbose=2), InvalidArgumentError, "verbose"),
]


@pytest.mark.parametrize("call, kind, argument", PRUNE_CASES)
def test_prune_and_friends_name_the_argument(call, kind, argument):
    with pytest.raises(kind, match=f"Argument `{argument}"):
        call()


def test_nan_kernel_is_named_not_ranked():
    with pytest.raises(InvalidArgumentError, match="'hidden/kernel'.* 1 NaN or infinite"):
        tfimp.prune(_with_kernel_value(NAN), 0.5)


def test_block_larger_than_every_kernel_is_refused_not_silently_dense():
    with pytest.raises(InvalidArgumentError, match=r"shape \(8, 16\) holds a single block"):
        tfimp.prune(tiny_model(), 0.5, granularity="block:64x64")
    # a block that fits still prunes to the requested sparsity
    report = tfimp.sparsity_report(tfimp.prune(tiny_model(), 0.5, granularity="block:2x1"))
    assert report.sparsity == pytest.approx(0.5, abs=0.02)


def test_sparsity_logger_refuses_a_file_as_log_dir(tmp_path):
    file = tmp_path / "log"
    file.write_text("x")
    with pytest.raises(InvalidArgumentError, match="Argument `log_dir`"):
        tfimp.callbacks.SparsityLogger(log_dir=file)
    assert FEATURES == 8
