"""Distillation in IMP retraining: the loss on toy numbers, the Distiller in fit, imp(distill=)."""

import pathlib
import sys

import keras
import numpy as np
import pytest

import tfimp
from tfimp.lottery.distill import Distiller, distillation_loss, soft_kl
from tfimp.lottery.rundir import unpack

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers_imp import builder, toy_data  # noqa: E402

X, Y = toy_data()
TRAIN, VAL = (X[:90], Y[:90]), (X[90:], Y[90:])


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_kl_matches_the_formula():
    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], "float32")
    t = np.array([[1.0, 1.0, 0.0], [3.0, -1.0, 0.0]], "float32")
    temp = 3.0
    pt, ps = _softmax(t / temp), _softmax(s / temp)
    expected = np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), -1)) * temp ** 2
    got = float(soft_kl(s, t, temp, from_logits=True))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(soft_kl(t, t, temp, from_logits=True)) == pytest.approx(0.0, abs=1e-6)
    # Probabilities are read back as log-probabilities: the same value.
    assert float(soft_kl(_softmax(s), _softmax(t), temp)) == pytest.approx(expected, rel=1e-4)


def test_distillation_loss_weights_the_two_terms():
    y = np.array([0, 2])
    s = _softmax(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], "float32"))
    t = _softmax(np.array([[1.0, 1.0, 0.0], [3.0, -1.0, 0.0]], "float32"))
    task = keras.losses.sparse_categorical_crossentropy
    ce = float(np.mean(task(y, s)))
    assert float(distillation_loss(y, s, t, task, weight=0.0)) == pytest.approx(ce, rel=1e-5)
    kd = float(soft_kl(s, t, 4.0))
    assert float(distillation_loss(y, s, t, task, weight=1.0)) == pytest.approx(kd, rel=1e-5)
    assert float(distillation_loss(y, s, t, task, 0.25)) == pytest.approx(
        0.75 * ce + 0.25 * kd, rel=1e-5)


def test_distiller_trains_the_student_toward_the_teacher_and_keeps_masks():
    teacher = builder()()
    teacher.fit(*TRAIN, epochs=5, batch_size=30, verbose=0)
    student = tfimp.prune(builder()(), 0.7)
    student.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    distiller = Distiller(student, teacher, weight=1.0, temperature=2.0).compile_like(student)
    frozen = [w.copy() for w in teacher.get_weights()]
    before = float(soft_kl(student.predict(X, verbose=0), teacher.predict(X, verbose=0), 2.0))
    distiller.fit(*TRAIN, epochs=5, batch_size=30, verbose=0)
    after = float(soft_kl(student.predict(X, verbose=0), teacher.predict(X, verbose=0), 2.0))
    assert after < before
    for wrapper in tfimp.sparsity.engine.pruned_layers(student):
        for var, mask in zip(wrapper.pruned_weights, wrapper.get_masks()):
            assert np.all(keras.ops.convert_to_numpy(var)[mask == 0] == 0.0)
    for a, b in zip(frozen, teacher.get_weights()):  # the teacher only teaches
        np.testing.assert_array_equal(a, b)


def test_imp_distills_from_the_dense_round(tmp_path):
    kw = dict(rounds=2, rate=0.5, batch_size=30, workdir=tmp_path, verbose=0)
    plain = tfimp.imp(builder(), TRAIN, VAL, **kw)
    distilled = tfimp.imp(builder(), TRAIN, VAL, distill="dense", distill_weight=0.7,
                          distill_temperature=2.0, **kw)
    assert distilled.workdir != plain.workdir
    assert [r["sparsity"] for r in distilled.history] == [r["sparsity"] for r in plain.history]
    w_plain = unpack("w", plain._run.load_arrays("round_02.npz"))
    w_dist = unpack("w", distilled._run.load_arrays("round_02.npz"))
    assert any(not np.array_equal(a, b) for a, b in zip(w_plain, w_dist))
    masks = unpack("m", distilled._run.load_arrays("round_02.npz"))
    assert np.all(w_dist[0][masks[0] == 0] == 0.0)


def test_imp_distills_from_a_given_teacher_and_checks_it(tmp_path):
    teacher = builder(units=32)()
    teacher.fit(*TRAIN, epochs=2, batch_size=30, verbose=0)
    result = tfimp.imp(builder(), TRAIN, VAL, rounds=1, rate=0.5, batch_size=30,
                       teacher=teacher, workdir=tmp_path, verbose=0)
    assert [r["round"] for r in result.history] == [0, 1]
    kept = keras.models.load_model(pathlib.Path(result.workdir) / "teacher.keras")
    for a, b in zip(kept.get_weights(), teacher.get_weights()):  # the folder holds it
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="`teacher`"):
        tfimp.imp(builder(), TRAIN, VAL, rounds=1, distill="teacher", workdir=tmp_path,
                  verbose=0)
    with pytest.raises(ValueError, match="`distill`"):
        tfimp.imp(builder(), TRAIN, VAL, rounds=1, distill="dense", teacher=teacher,
                  workdir=tmp_path, verbose=0)
    for bad, name in ((dict(distill="teachers"), "distill"), (dict(distill_weight=1.5),
                      "distill_weight"), (dict(distill_temperature=0), "distill_temperature")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            tfimp.IMPConfig(**bad)


def test_final_qat_stage_keeps_masks_and_reloads(tmp_path):
    result = tfimp.imp(builder(), TRAIN, VAL, rounds=1, rate=0.5, batch_size=30,
                       final_qat_epochs=1, workdir=tmp_path, verbose=0)
    assert result.qat["round"] == result.best_round()["round"] and "val_accuracy" in result.qat
    qat = result.qat_model()
    masks = unpack("m", result._run.load_arrays(f"round_{result.qat['round']:02d}.npz"))
    from tfimp.quantization import is_quantize_aware

    assert is_quantize_aware(qat)
    if masks:  # the pruned round: its zeros survived the QAT epochs
        kernels = [w for w in qat.get_weights() if w.shape == masks[0].shape]
        assert any(np.all(k[masks[0] == 0] == 0.0) for k in kernels)
    qat.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    again = qat.evaluate(*VAL, verbose=0, return_dict=True)["accuracy"]
    assert again == pytest.approx(result.qat["val_accuracy"], abs=1e-6)
    plain = tfimp.imp(builder(), TRAIN, VAL, rounds=1, rate=0.5, batch_size=30,
                      workdir=tmp_path, verbose=0)
    with pytest.raises(ValueError, match="final_qat_epochs"):
        plain.qat_model()


def test_channel_qat_stage_trains_the_shrunk_model_with_distillation(tmp_path):
    """With channel granularity the QAT stage trains what the run exports: the shrunk model,
    its pruned units gone; it distils as the rounds do and reports its cost per epoch."""
    from tfimp.quantization import is_quantize_aware

    result = tfimp.imp(builder(), TRAIN, VAL, rounds=1, rate=0.5, batch_size=30,
                       granularity="channel", scope="layer", distill="dense",
                       final_qat_epochs=2, budget=1.0, workdir=tmp_path, verbose=0)
    assert result.qat["round"] == 1 and result.qat["shrunk"] is True
    assert result.qat["distill"] == "dense" and result.qat["epochs"] == 2
    assert result.qat["epoch_cost_ratio"] > 0
    qat = result.qat_model()
    assert is_quantize_aware(qat)
    kernels = [w for w in qat.get_weights() if w.ndim == 2]
    assert kernels[0].shape == (8, 8)  # 16 hidden units, half of them gone
    qat.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    again = qat.evaluate(*VAL, verbose=0, return_dict=True)["accuracy"]
    assert again == pytest.approx(result.qat["val_accuracy"], abs=1e-6)
    # Its int8 file holds the shrunk layers and reproduces the QAT model.
    art = tfimp.export.to_tflite(qat, quantization="int8", verify=VAL)
    assert art.report.verification.agreement >= 0.95
