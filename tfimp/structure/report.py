"""Channels, parameters and multiply-accumulates (MACs) per layer, before and after `shrink`.

Example:

    small = tfimp.shrink(pruned)
    print(tfimp.structure.structure_report(small, reference=model))
"""

from __future__ import annotations

import dataclasses
import math

import keras

from tfimp.sparsity.engine import check_model as _check_model
from tfimp.sparsity.engine import is_pruned
from tfimp.structure.graph import _Call, walk

__all__ = ["LayerCost", "StructureReport", "StructureRow", "layer_costs", "structure_report"]

L = keras.layers


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """One layer's output channels (None for layers that make none), parameters and MACs for
    one sample (summed over the calls of a shared layer)."""

    layer: str
    type: str
    channels: int | None
    params: int
    macs: int


def _spatial(shape: tuple) -> int:
    return math.prod(int(d) for d in shape[1:-1]) if len(shape) > 2 else 1


def _macs(layer, in_shape: tuple, out_shape: tuple) -> int:
    """MACs of one call for one sample: kernel size times the positions it is applied at."""
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return math.prod(layer.kernel.shape) * _spatial(in_shape)
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return (math.prod(layer.depthwise_kernel.shape)
                + math.prod(layer.pointwise_kernel.shape)) * _spatial(out_shape)
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D, L.DepthwiseConv2D,
                          L.Dense)):
        return math.prod(layer.kernel.shape) * _spatial(out_shape)
    return 0


def _out_channels(layer) -> int | None:
    for attr in ("units", "filters"):
        value = getattr(layer, attr, None)
        if isinstance(value, int):
            return value
    return None


def layer_costs(model: keras.Model) -> list[LayerCost]:
    """Per layer with parameters or MACs, in graph order (a pruned model counts its inner
    layers, masks aside)."""
    costs: dict[int, list] = {}

    def call(node, ins):
        c = _Call.of(node, ins)
        layer = c.layer
        if isinstance(layer, keras.layers.Layer):
            row = costs.setdefault(id(layer), [layer, 0])
            if c.in_shapes and c.out_shapes:
                row[1] += _macs(layer, c.in_shapes[0], c.out_shapes[0])
        return [None] * len(c.out_shapes)

    walk(model, [None] * len(model.inputs), call)
    rows = []
    for layer, macs in costs.values():
        params = layer.count_params() if layer.weights else 0
        if params or macs:
            rows.append(LayerCost(layer.name, type(layer).__name__, _out_channels(layer),
                                  int(params), int(macs)))
    return rows


@dataclasses.dataclass(frozen=True)
class StructureRow:
    layer: str
    type: str
    channels_before: int | None
    channels_after: int | None
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int


@dataclasses.dataclass(frozen=True)
class StructureReport:
    """Per layer (by name) channels, parameters and MACs of a reference model and a model."""

    rows: tuple[StructureRow, ...]

    def _total(self, field: str) -> int:
        return sum(getattr(r, field) for r in self.rows)

    @property
    def params_before(self) -> int:
        return self._total("params_before")

    @property
    def params_after(self) -> int:
        return self._total("params_after")

    @property
    def macs_before(self) -> int:
        return self._total("macs_before")

    @property
    def macs_after(self) -> int:
        return self._total("macs_after")

    def to_dict(self) -> dict:
        return {"rows": [dataclasses.asdict(r) for r in self.rows],
                "params_before": self.params_before, "params_after": self.params_after,
                "macs_before": self.macs_before, "macs_after": self.macs_after}

    def __str__(self) -> str:
        def pair(a, b):
            return "" if a is None else (f"{a}" if a == b else f"{a} -> {b}")

        def ratio(a, b):
            return f"{b / a:.1%}" if a else ""

        header = ("layer", "type", "channels", "params", "MACs", "MACs kept")
        body = [(r.layer, r.type, pair(r.channels_before, r.channels_after),
                 pair(r.params_before, r.params_after), pair(r.macs_before, r.macs_after),
                 ratio(r.macs_before, r.macs_after)) for r in self.rows]
        body.append(("total", "", "", pair(self.params_before, self.params_after),
                     pair(self.macs_before, self.macs_after),
                     ratio(self.macs_before, self.macs_after)))
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths))
        return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in body])


def structure_report(model: keras.Model, reference: keras.Model | None = None
                     ) -> StructureReport:
    """Channels, parameters and MACs per layer of `model` next to `reference`'s.

    With a channel-pruned (wrapped) `model` and no `reference`, it compares the model with
    what `tfimp.shrink` would make of it. With a plain model and no reference, both columns
    show the model.
    """
    _check_model(model)
    if reference is None:
        reference = model
        if is_pruned(model):
            from tfimp.structure.shrink import shrink

            model = shrink(model)
    _check_model(reference, "reference")
    after = {c.layer: c for c in layer_costs(model)}
    rows = []
    for before in layer_costs(reference):
        now = after.pop(before.layer, None)
        rows.append(StructureRow(before.layer, before.type, before.channels,
                                 None if now is None else now.channels, before.params,
                                 0 if now is None else now.params, before.macs,
                                 0 if now is None else now.macs))
    rows += [StructureRow(c.layer, c.type, None, c.channels, 0, c.params, 0, c.macs)
             for c in after.values()]
    return StructureReport(tuple(rows))
