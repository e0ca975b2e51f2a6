"""Sensitivity analysis: prune each layer alone at several sparsities, measure the metric.

As in Han et al. (2015) and Distiller: the table shows which layers tolerate pruning, and
`targets(budget)` turns it into per-layer sparsity targets.

Example:

    report = tfimp.sensitivity(model, (x_val, y_val), sparsities=(0.5, 0.8, 0.9, 0.95))
    print(report)
    report.targets(budget=0.01)   # {"dense": 0.95, "dense_1": 0.9, "dense_2": 0.5}
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras
import numpy as np
from absl import logging

from tfimp._util import validate as v
from tfimp.lottery.config import higher_is_better as known_direction
from tfimp.lottery.config import metric_drop
from tfimp.sparsity import masks as masks_lib
from tfimp.sparsity.engine import prune, pruned_layers

__all__ = ["sensitivity", "SensitivityReport"]


@dataclasses.dataclass(frozen=True)
class SensitivityReport:
    """`metric[layer][sparsity]`: the validation metric with only that layer pruned."""

    metric: str
    dense: float
    sparsities: tuple[float, ...]
    table: dict
    higher_better: bool = True

    def _drop(self, value: float) -> float:
        return metric_drop(self.dense, value, self.higher_better)

    def targets(self, budget: float) -> dict[str, float]:
        """Per layer, the highest tested sparsity whose metric drop is within `budget`."""
        out = {}
        for layer, values in self.table.items():
            ok = [s for s in self.sparsities if self._drop(values[s]) <= budget]
            out[layer] = max(ok) if ok else 0.0
        return out

    def __str__(self) -> str:
        head = f"{'layer':<24}" + "".join(f"{s:>9.0%}" for s in self.sparsities)
        lines = [f"Sensitivity (val_{self.metric}; dense {self.dense:.4f})", head]
        for layer, values in self.table.items():
            lines.append(f"{layer:<24}" + "".join(f"{values[s]:>9.4f}" for s in self.sparsities))
        return "\n".join(lines)


def sensitivity(
    model: keras.Model,
    val_data,
    sparsities: Sequence[float] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    metric: str = "accuracy",
    exclude: Sequence = (),
    batch_size: int = 256,
    verbose: int = 0,
    higher_is_better: bool | None = None,
) -> SensitivityReport:
    """Prunes each prunable layer alone (one-shot magnitude, no retraining) and evaluates.

    Args:
        model: a trained, compiled Keras model (left unchanged).
        val_data: `(x, y)` or a batched `tf.data.Dataset`.
        sparsities: the sparsities to test, each in [0, 1).
        metric: the evaluated metric to report.
        exclude: layers to leave out, as in `tfimp.prune`.
        batch_size: evaluation batch size for array data.
        verbose: print a line per layer.
        higher_is_better: the metric's direction; None infers it from its name.
    """
    if higher_is_better is None:
        higher_is_better = known_direction(metric)
        if higher_is_better is None:
            v.fail("metric", metric, "a metric whose direction tfimp knows (accuracy, auc, "
                   "loss, mse, mae, ...), or pass higher_is_better=True/False")
    v.flag("higher_is_better", higher_is_better)
    if not isinstance(model, keras.Model) or not getattr(model, "compiled", False):
        v.fail("model", v.summary(model) if not isinstance(model, keras.Model) else model.name,
               "a trained, compiled Keras model")
    if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Sequence) \
            or not sparsities:
        v.fail("sparsities", sparsities, "a non-empty list of sparsities in [0, 1)")
    for s in sparsities:
        v.fraction("sparsities", s, allow_zero=True)
    v.positive_int("batch_size", batch_size)
    if isinstance(val_data, (tuple, list)):
        if len(val_data) != 2:
            v.fail("val_data", v.summary(val_data), "a pair (x, y) or a tf.data.Dataset")
        v.fits_model("val_data", val_data[0], val_data[1], model)
    pruned = prune(model, None, scope="layer", exclude=exclude)
    pruned.compile_from_config(model.get_compile_config())
    evaluate = _evaluator(pruned, val_data, batch_size, metric)
    dense = evaluate()
    table = {}
    for wrapper in pruned_layers(pruned):
        originals = [keras.ops.convert_to_numpy(v) for v in wrapper.pruned_weights]
        table[wrapper.layer.name] = {}
        for s in sorted(sparsities):
            wrapper.assign_masks([masks_lib.magnitude_mask(w, s) for w in originals])
            table[wrapper.layer.name][s] = evaluate()
        wrapper.assign_masks([np.ones_like(w) for w in originals])
        for var, value in zip(wrapper.pruned_weights, originals):
            var.assign(value)
        if verbose:
            logging.info("sensitivity: %s done", wrapper.layer.name)
    return SensitivityReport(metric, dense, tuple(sorted(sparsities)), table, higher_is_better)


def _evaluator(model, val_data, batch_size: int, metric: str):
    def evaluate() -> float:
        if isinstance(val_data, (tuple, list)):
            out = model.evaluate(val_data[0], val_data[1], batch_size=batch_size, verbose=0,
                                 return_dict=True)
        else:
            out = model.evaluate(val_data, verbose=0, return_dict=True)
        if metric not in out:
            raise ValueError(f"Argument `metric` must be one of {sorted(out)}. "
                             f"Received: metric={metric!r}")
        return float(out[metric])

    return evaluate
