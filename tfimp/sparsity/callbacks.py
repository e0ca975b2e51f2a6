"""Keras callbacks that decide *when* masks change, and log sparsity.

Example:

    model.fit(x, y, callbacks=[tfimp.callbacks.UpdateMasks(),
                               tfimp.callbacks.SparsityLogger(log_dir="logs")])
"""

from __future__ import annotations

import keras

from tfimp._util.validate import fail, output_folder
from tfimp.sparsity.engine import pruned_layers, update_wrappers
from tfimp.sparsity.report import sparsity_report

__all__ = ["SparsityLogger", "UpdateMasks"]


class UpdateMasks(keras.callbacks.Callback):
    """Recomputes masks before each training batch at or after a pruning step.

    The step is the optimizer's iteration count, so a resumed run (a model saved as
    `.keras` and loaded back) continues the schedule where it stopped. It is read once per
    epoch and advanced by the batch index in between, which keeps the per-batch cost to a
    few Python comparisons.
    """

    def on_train_begin(self, logs=None):
        self._wrappers = pruned_layers(self.model)
        if not self._wrappers:
            raise ValueError(
                f"UpdateMasks was given model '{self.model.name}', which has no pruned layers. "
                "Prune it first: model = tfimp.prune(model, schedule)."
            )
        for w in self._wrappers:
            w.driven = True
            w.last_pruned_step(refresh=True)
        # Reuse the train function traced under this callback (retracing costs a second and
        # slows the first steps after it). Any other one may have been traced without the
        # callback (and failed half-way), so it is replaced by a fresh one.
        kept, compiled = getattr(self.model, "_tfimp_train_function", (None, None))
        if kept is not None and _same(compiled, _compile_state(self.model)):
            self.model.train_function = kept
        else:
            self.model.make_train_function(force=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_begin(self, batch, logs=None):
        update_wrappers(self._wrappers, self._epoch_start + batch, model=self.model)

    def on_train_end(self, logs=None):
        for w in self._wrappers:
            w.driven = False
        # While the schedule has steps ahead, a fit() without this callback must trace anew
        # (and so fail with the message naming the fix): the traced function is kept here,
        # for the next fit with the callback, instead of on the model.
        # object.__setattr__: a plain attribute, not tracked (or saved) by Keras.
        state = (self.model.train_function, _compile_state(self.model))
        object.__setattr__(self.model, "_tfimp_train_function", state)
        if any(w.schedule_pending() for w in self._wrappers):
            self.model.train_function = None


def _compile_state(model) -> tuple:
    """What a traced train function depends on; compile() replaces these."""
    return tuple(getattr(model, name, None) for name in (
        "optimizer", "_compile_loss", "_compile_metrics", "_loss_tracker", "steps_per_execution",
        "jit_compile", "run_eagerly"))


def _same(a: tuple | None, b: tuple) -> bool:
    return a is not None and len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b))


class SparsityLogger(keras.callbacks.Callback):
    """Logs per-layer and total sparsity at the end of each epoch.

    Args:
        log_dir: if set, writes TensorBoard scalars `sparsity/<weight>` and `sparsity/total`.
        verbose: print the per-layer table each epoch (1) or only at the end of training (0).
    """

    def __init__(self, log_dir: str | None = None, verbose: int = 0):
        super().__init__()
        if log_dir is not None:
            output_folder("log_dir", log_dir)
        self.log_dir = log_dir
        if verbose not in (0, 1):
            fail("verbose", verbose, "0 or 1")
        self.verbose = verbose
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        report = sparsity_report(self.model)
        entry = {"epoch": epoch, "total": report.sparsity}
        entry.update({r.weight: r.sparsity for r in report.rows})
        self.history.append(entry)
        if logs is not None:
            logs["sparsity"] = report.sparsity
        if self.log_dir:
            self._write_scalars(entry, epoch)
        if self.verbose:
            print(report)

    def on_train_end(self, logs=None):
        if not self.verbose and self.history:
            print(sparsity_report(self.model))

    def _write_scalars(self, entry: dict, epoch: int) -> None:
        # tf.summary.scalar needs the tensorboard package; writing the same scalar record
        # (float32 tensor, "scalars" plugin) directly keeps TensorBoard an optional viewer.
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        if not hasattr(self, "_writer"):
            self._writer = tf.summary.create_file_writer(self.log_dir)
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        with self._writer.as_default(step=epoch):
            for name, value in entry.items():
                if name != "epoch":
                    tf.summary.write(f"sparsity/{name}", tf.constant(value, tf.float32),
                                     metadata=metadata)
        self._writer.flush()
