"""The sparsity report: per prunable weight, its shape, parameters, non-zeros and sparsity."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfimp._util.tables import text_table
from tfimp.sparsity.engine import check_model, only_vectors, walk_layers
from tfimp.sparsity.registry import NOT_PRUNABLE, is_prunable, prunable_weights
from tfimp.sparsity.wrapper import PruneLowMagnitude

__all__ = ["SparsityReport", "SparsityRow", "sparsity_report"]


@dataclasses.dataclass(frozen=True)
class SparsityRow:
    layer: str
    type: str
    weight: str
    shape: tuple
    params: int
    nonzeros: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.params if self.params else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight sparsity of a model's prunable weights, with totals.

    `not_pruned` names the layers with weights that pruning leaves alone although tfimp
    doesn't know them: they hold only scalars or vectors (a custom bias or scale).
    """

    rows: tuple[SparsityRow, ...]
    not_pruned: tuple[str, ...] = ()

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def nonzeros(self) -> int:
        return sum(r.nonzeros for r in self.rows)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    def to_dict(self) -> dict:
        rows = [dict(dataclasses.asdict(r), sparsity=r.sparsity) for r in self.rows]
        return {"rows": rows, "params": self.params, "nonzeros": self.nonzeros,
                "sparsity": self.sparsity, "not_pruned": list(self.not_pruned)}

    def __str__(self) -> str:
        header = ("layer", "type", "weight", "shape", "params", "nonzeros", "sparsity")
        body = [(r.layer, r.type, r.weight, "x".join(map(str, r.shape)), str(r.params),
                 str(r.nonzeros), f"{r.sparsity:.2%}") for r in self.rows]
        body.append(("total", "", "", "", str(self.params), str(self.nonzeros),
                     f"{self.sparsity:.2%}"))
        table = text_table(header, body)
        if self.not_pruned:
            table += ("\nnot pruned (only 1-D weights, unknown layer type): "
                      + ", ".join(self.not_pruned))
        return table


def sparsity_report(model: keras.Model) -> SparsityReport:
    """Per layer and weight: name, type, shape, parameters, non-zeros, sparsity; and totals.

    Works on pruned and stripped models; on a plain model it reports the weights that
    `tfimp.prune` would mask.
    """
    check_model(model)
    rows, skipped = [], []
    for layer in walk_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            inner, variables = layer.layer, layer.pruned_weights
        elif isinstance(layer, keras.Model) or not is_prunable(layer):
            if (isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.Model)
                    and layer.weights and not isinstance(layer, NOT_PRUNABLE)
                    and only_vectors(layer)):
                skipped.append(f"{layer.name} ({type(layer).__name__})")
            continue
        else:
            inner, variables = layer, prunable_weights(layer)
        for v in variables:
            value = keras.ops.convert_to_numpy(v)
            rows.append(SparsityRow(inner.name, type(inner).__name__, v.path, tuple(value.shape),
                                    int(value.size), int(np.count_nonzero(value))))
    return SparsityReport(tuple(rows), tuple(skipped))
