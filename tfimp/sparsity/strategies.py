"""Strategies that other packages register with the sparsity engine, looked up by name.

The engine prunes single weights and blocks itself, tensor by tensor. A granularity whose unit
spans layers (a channel is a filter, a normalization scale and the rows that read it) brings a
`GranularityStrategy`, registered under its `Granularity.kind`; `prune`, `update_masks` and the
wrapper find it here and know it by no other name. Likewise `strip` asks the `STRIP_HOOKS` about
a model it holds no masks of (a quantization-aware model is stripped by its own package).

The registering modules run their `register_*` call on import; a lookup that misses imports
them first (`tfimp._util.extensions`), so a fresh `import tfimp` finds them.

Example:

    class Rows(tfimp.sparsity.strategies.GranularityStrategy): ...
    tfimp.sparsity.strategies.register_granularity("rows", Rows())
"""

from __future__ import annotations

from collections.abc import Callable

from tfimp._util import extensions
from tfimp.sparsity.masks import Granularity

__all__ = ["GRANULARITY_STRATEGIES", "STRIP_HOOKS", "GranularityStrategy", "get",
           "register_granularity", "register_strip_hook", "strip_hooks"]


class GranularityStrategy:
    """How the engine prunes a model whose masks of one granularity span layers."""

    def variables(self, layer) -> list:
        """The variables of `layer` (a wrapped layer, or a copy of it) that the masks cover."""
        raise NotImplementedError(f"{type(self).__name__} must override `variables`.")

    def prune(self, model, plan):
        """The wrapped copy of `model` for `plan` (a `tfimp.sparsity.engine.Plan`)."""
        raise NotImplementedError(f"{type(self).__name__} must override `prune`.")

    def update(self, model, wrappers: list, step: int, force: bool) -> bool:
        """Recomputes the masks of `wrappers` (all of this granularity) if their schedule
        prunes at `step`; whether masks changed."""
        raise NotImplementedError(f"{type(self).__name__} must override `update`.")


GRANULARITY_STRATEGIES: dict[str, GranularityStrategy] = {}
StripHook = Callable[[object], object]
STRIP_HOOKS: list[StripHook] = []


def register_granularity(kind: str, strategy: GranularityStrategy) -> None:
    """Makes `strategy` prune every granularity of `kind`."""
    if not isinstance(strategy, GranularityStrategy):
        raise TypeError("Argument `strategy` must be a GranularityStrategy. Received: "
                        f"strategy={strategy!r}")
    GRANULARITY_STRATEGIES[kind] = strategy


def get(granularity) -> GranularityStrategy | None:
    """The strategy registered for `granularity.kind`, or None: the engine's own tensor by
    tensor pruning (always for the kinds of the base `Granularity`, "weight" and "block")."""
    if type(granularity) is Granularity:
        return None
    if granularity.kind not in GRANULARITY_STRATEGIES:
        extensions.load()
    return GRANULARITY_STRATEGIES.get(granularity.kind)


def register_strip_hook(hook: StripHook) -> None:
    """Adds `hook(model)`, asked by `strip` about a model without masks: it returns the
    stripped model, or None if the model is none of its business."""
    if hook not in STRIP_HOOKS:
        STRIP_HOOKS.append(hook)


def strip_hooks() -> list[StripHook]:
    extensions.load()
    return list(STRIP_HOOKS)
