"""Knowledge distillation for retraining: the pruned student learns from the labels and from a
teacher's softened outputs (Hinton, Vinyals & Dean 2015).

loss = (1 - weight) * task_loss + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

`Distiller` wraps a compiled student for `fit` (any backend: it only overrides
`compute_loss`); `distillation_loss` is the same formula for a custom training loop. The teacher
runs once per batch, in inference mode, with its outputs cut from the gradient.

Example (a custom loop):

    teacher_out = teacher(x, training=False)
    with tf.GradientTape() as tape:
        student_out = student(x, training=True)
        loss = tfimp.lottery.distill.distillation_loss(
            y, student_out, teacher_out, task_loss=keras.losses.sparse_categorical_crossentropy)
"""

from __future__ import annotations

import keras
from keras import ops

from tfimp._util import validate as v

__all__ = ["Distiller", "distillation_loss", "soft_kl"]

_EPSILON = 1e-7


def _logits(outputs, from_logits: bool):
    """Class scores as logits; probabilities are turned back into log-probabilities."""
    if from_logits:
        return outputs
    return ops.log(ops.clip(outputs, _EPSILON, 1.0))


def soft_kl(student, teacher, temperature: float = 4.0, from_logits: bool = False):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    t = ops.softmax(_logits(teacher, from_logits) / temperature, axis=-1)
    log_s = ops.log_softmax(_logits(student, from_logits) / temperature, axis=-1)
    log_t = ops.log(ops.clip(t, _EPSILON, 1.0))
    kl = ops.sum(t * (log_t - log_s), axis=-1)
    return ops.mean(kl) * (temperature ** 2)


def distillation_loss(y_true, student, teacher, task_loss, weight: float = 0.5,
                      temperature: float = 4.0, from_logits: bool = False):
    """The distillation loss of one batch (see the module docstring).

    Args:
        y_true: the labels.
        student: the student's outputs (with gradients).
        teacher: the teacher's outputs (computed without gradients).
        task_loss: `loss(y_true, y_pred)`, e.g. `keras.losses.sparse_categorical_crossentropy`.
        weight: the share of the distillation term, in [0, 1].
        temperature: the softening temperature T > 0.
        from_logits: whether the outputs are logits (else probabilities).
    """
    teacher = ops.stop_gradient(teacher)
    task = ops.mean(task_loss(y_true, student))
    return (1.0 - weight) * task + weight * soft_kl(student, teacher, temperature, from_logits)


def check_settings(weight, temperature) -> None:
    """Validates the distillation weight and temperature."""
    if v.non_negative("distill_weight", weight) > 1:
        v.fail("distill_weight", weight, "a number in [0, 1] (the share of the distillation "
               "term in the loss)")
    v.positive_number("distill_temperature", temperature)


def outputs_are_logits(model: keras.Model) -> bool:
    """Whether `model`'s compiled loss reads logits (`from_logits=True`)."""
    loss = getattr(model, "loss", None)
    return bool(getattr(loss, "from_logits", False)) or bool(
        getattr(loss, "get_config", lambda: {})().get("from_logits", False))


class Distiller(keras.Model):
    """Trains `student` against its labels and `teacher`'s softened outputs.

    Compile it like the student (`Distiller.compile_like(student)`); `fit` it as any model;
    the student's layers (masks included) are the ones trained. The teacher is frozen.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, weight: float = 0.5,
                 temperature: float = 4.0, from_logits: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        check_settings(weight, temperature)
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.weight, self.temperature = float(weight), float(temperature)
        self.from_logits = (outputs_are_logits(student) if from_logits is None
                            else bool(from_logits))

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        task = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                    training=training)
        teacher = ops.stop_gradient(self.teacher(x, training=False))
        soft = soft_kl(y_pred, teacher, self.temperature, self.from_logits)
        return (1.0 - self.weight) * task + self.weight * soft

    def compile_like(self, model: keras.Model, config: dict | None = None) -> Distiller:
        """Compiles with `model`'s compile config (or `config`); returns self."""
        self.compile_from_config(config or model.get_compile_config())
        return self
