"""Bad inputs to the later entry points: channel pruning and shrink, the structure report,
clustering, quantization-aware training, TFLite Micro compression and the IMP settings that
drive them. Each raises a clear error naming the argument."""

import math

import numpy as np
import pytest
from bad_input_helpers import FEATURES, tiny_model

import tfimp
from tfimp._util.errors import InvalidArgumentError
from tfimp.export import to_micro

NAN = math.nan


def _with_nan_kernel():
    model = tiny_model()
    w, b = model.get_layer("hidden").get_weights()
    w[1, 1] = NAN
    model.get_layer("hidden").set_weights([w, b])
    return model


def _x(features=FEATURES, value=None):
    x = np.random.default_rng(0).random((8, features)).astype("float32")
    if value is not None:
        x[2, 3] = value
    return x


CASES = [
    (lambda f: tfimp.cluster(tiny_model(), 1), "clusters"),
    (lambda f: tfimp.cluster(tiny_model(), "16"), "clusters"),
    (lambda f: tfimp.cluster(tiny_model(), 2.5), "clusters"),
    (lambda f: tfimp.cluster(tiny_model(), 4, init="kmeans++", seed="abc"), "seed"),
    (lambda f: tfimp.cluster(tiny_model(), 4, init="random"), "init"),
    (lambda f: tfimp.cluster(tiny_model(), 4, per_channel="yes"), "per_channel"),
    (lambda f: tfimp.cluster(tiny_model(), 4, exclude=["nosuch"]), "exclude"),
    (lambda f: tfimp.cluster(_with_nan_kernel(), 4), "model"),
    (lambda f: tfimp.cluster("model", 4), "model"),
    (lambda f: tfimp.shrink("model"), "model"),
    (lambda f: tfimp.structure_report("model"), "model"),
    (lambda f: tfimp.structure_report(tiny_model(), reference="model"), "reference"),
    (lambda f: tfimp.prune(tiny_model(), 1.5, granularity="channel"), "schedule"),
    (lambda f: tfimp.prune(tiny_model(), 0.5, granularity="channels"), "granularity"),
    (lambda f: tfimp.quantize_aware(tiny_model(), decay=1.0), "decay"),
    (lambda f: tfimp.quantize_aware(tiny_model(), per_channel_dense="yes"),
     "per_channel_dense"),
    (lambda f: tfimp.quantize_aware(tiny_model(), representative_data=_x(value=NAN)),
     "representative_data"),
    (lambda f: tfimp.quantize_aware(tiny_model(), representative_data=_x(5)),
     "representative_data"),
    (lambda f: tfimp.quantize_aware(tiny_model(), representative_data=_x(), batch_size=0),
     "batch_size"),
    (lambda f: tfimp.quantize_aware("model"), "model"),
    (lambda f: to_micro(f.int8, f.folder / "micro", compression="zip"), "compression"),
    (lambda f: tfimp.IMPConfig(distill="nobody"), "distill"),
    (lambda f: tfimp.IMPConfig(final_qat_epochs=-1), "final_qat_epochs"),
]


@pytest.mark.parametrize("call, argument", CASES)
def test_later_entry_points_name_the_argument(call, argument, files):
    with pytest.raises((ValueError, TypeError), match=f"Argument `{argument}`"):
        call(files)
    assert not (files.folder / "micro").exists()


def test_imp_with_a_teacher_of_other_outputs_is_refused_before_training(tmp_path):
    import keras
    from bad_input_helpers import builder, toy_data

    teacher = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(5)])
    with pytest.raises(InvalidArgumentError, match="Argument `teacher`"):
        tfimp.imp(builder(), toy_data(), toy_data(16, 1), rounds=1, teacher=teacher,
                  workdir=tmp_path / "runs", verbose=0)
    assert not (tmp_path / "runs").exists()
