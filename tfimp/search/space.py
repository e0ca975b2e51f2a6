"""The space `tfimp search` explores: recipe fields and the values a trial may give them.

Every recipe gets `default_space(recipe)` (strategy, rate or adaptive, rounds, ramp, rewind,
allocation, granularity, distillation, QAT, total epochs); its `search` field replaces, adds or
drops dimensions, and the command line does the same with `KEY=A,B,C` (choices),
`KEY=LOW..HIGH` (a range) or `KEY=VALUE` (the field fixed, so no longer searched).

Some values exclude others (a gradual run neither distills nor takes the adaptive rate): a
trial applies its values in the space's order and keeps the recipe's value for a field whose
sampled value the earlier ones exclude, so every trial is a valid recipe and the same sampled
values always give the same run.
"""

from __future__ import annotations

import dataclasses

from tfimp._util import validate as v
from tfimp.pipeline.recipe import (
    Recipe,
    field_type,
    format_value,
    parse_assignment,
    parse_value,
    resolve_key,
)

__all__ = ["Dim", "Space", "default_space", "parse_space", "resolve"]

_CHOICE_TYPES = (type(None), bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Dim:
    """One searched field: `choices`, or a numeric range [`low`, `high`]."""

    key: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def integer(self) -> bool:
        return all(isinstance(x, int) and not isinstance(x, bool)
                   for x in (self.low, self.high, self.step) if x is not None)

    def suggest(self, trial):
        """The value an Optuna trial samples for this field."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> tuple:
        """The values a validity check tries: every choice, or the range's ends."""
        return self.choices if self.choices is not None else (self.low, self.high)

    def describe(self) -> str:
        if self.choices is not None:
            return ",".join(format_value(c) for c in self.choices)
        return f"{self.low}..{self.high}" + (" (log)" if self.log else "")

    def to_dict(self) -> dict:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclasses.dataclass(frozen=True)
class Space:
    """The searched dimensions, in the order trials apply them, over a base recipe."""

    recipe: Recipe
    dims: tuple[Dim, ...]

    def sample(self, trial) -> dict:
        return {d.key: d.suggest(trial) for d in self.dims}

    def to_dict(self) -> dict:
        return {d.key: d.to_dict() for d in self.dims}

    def describe(self) -> str:
        return "  ".join(f"{d.key}={d.describe()}" for d in self.dims)


def default_space(recipe: Recipe) -> dict:
    """The dimensions every recipe searches unless it or the user says otherwise."""
    imp = recipe.imp
    rewinds = ("allr", "none") if recipe.train.lr_schedule == "constant" else ("allr", "lr",
                                                                                 "none")
    space = {
        "imp.strategy": ("imp", "gradual"),
        "imp.rate": (0.3, 0.45, 0.6, "adaptive"),
        "imp.rounds": (4, 6, 8),
        "imp.ramp": (0.0, 0.5),
        "imp.rewind": rewinds,
        "imp.scope": ("lamp", "global", "erk", "layer"),
        "imp.granularity": ("weight", "block:4x1"),
        "imp.distill": (None, "dense"),
        "imp.final_qat_epochs": (0, 3),
    }
    if imp.total_epochs:
        space["imp.total_epochs"] = tuple(sorted({max(imp.total_epochs // 2, 2),
                                                  imp.total_epochs}))
    return space


def parse_space(recipe: Recipe, words=()) -> Space:
    """The space of `recipe` (its defaults, its `search` field), changed by command-line
    `words`: `KEY=A,B` choices, `KEY=LOW..HIGH` a range, `KEY=VALUE` a fixed field.

    Raises:
        ValueError: an unknown key, a value of the wrong type, an empty dimension or space,
            a range whose ends are out of order, or a dimension none of whose values makes a
            valid recipe (a contradictory space).
    """
    specs = {**default_space(recipe), **recipe.search}
    fixed = []
    for word in words:
        key, text, _ = parse_assignment(word)
        path = ".".join(_resolve(key))
        if "," in text or ".." in text or not text:
            specs[path] = _parse_dim_text(path, text)
        else:
            fixed.append(word)
            specs.pop(path, None)
    base = recipe.override(*fixed)
    dims = tuple(_dim(".".join(_resolve(k)), s) for k, s in specs.items() if s is not None)
    if not dims:
        raise ValueError("Argument `space` must have at least one searched field; every field "
                         "is fixed. Received: space={}")
    for dim in dims:
        _check_reachable(base, dim)
    return Space(base, dims)


def _resolve(key: str) -> tuple[str, ...]:
    try:
        return resolve_key(key)
    except ValueError as e:
        raise v.InvalidArgumentError(f"Search key `{key}`: {e}") from None


def _parse_dim_text(path: str, text: str):
    kind = field_type(tuple(path.split(".")))
    if not text.strip().strip(","):
        v.fail(f"space[{path!r}]", text, "at least one value (KEY=A,B,C or KEY=LOW..HIGH)")
    if ".." in text and "," not in text:
        low, _, high = text.partition("..")
        return {"low": parse_value(low, kind, path), "high": parse_value(high, kind, path)}
    return [parse_value(t, kind, path) for t in text.split(",") if t.strip()]


def _dim(key: str, spec) -> Dim:
    name = f"space[{key!r}]"
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"low", "high", "log", "step"})
        if unknown or "low" not in spec or "high" not in spec:
            v.fail(name, spec, "a range {'low': a, 'high': b} (optionally 'log', 'step')")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)):
            v.fail(name, spec, "a range of numbers")
        if not low < high:
            v.fail(name, f"{low}..{high}", "a range whose low end is below its high end")
        if spec.get("log") and low <= 0:
            v.fail(name, spec, "a range above 0 when 'log' is set")
        return Dim(key, low=low, high=high, log=bool(spec.get("log")), step=spec.get("step"))
    choices = tuple(dict.fromkeys(spec))
    if not choices:
        v.fail(name, list(spec), "at least one value")
    if not all(isinstance(c, _CHOICE_TYPES) for c in choices):
        v.fail(name, list(spec), "values that are None, booleans, numbers or strings")
    return Dim(key, choices=choices)


def _check_reachable(base: Recipe, dim: Dim) -> None:
    """Raises unless some value of `dim` makes a valid recipe from `base`."""
    errors = []
    for value in dim.corners():
        try:
            _apply(base, dim.key, value)
            return
        except ValueError as e:
            errors.append(str(e))
    v.fail(f"space[{dim.key!r}]", dim.describe(), "values of which at least one is valid with "
           f"the rest of the recipe (a contradictory space: {errors[0]})")


def _apply(recipe: Recipe, key: str, value) -> Recipe:
    out = recipe.override(**{key.replace(".", "__"): value})
    _check_runnable(out)
    return out


def _check_runnable(recipe: Recipe) -> None:
    """Checks the cross-section rules a run checks only once it started."""
    from tfimp.pipeline.runner import check

    if recipe.imp.rewind == "lr" and recipe.train.lr_schedule == "constant":
        v.fail("imp.rewind", "lr", "another rewind with train.lr_schedule='constant' (there is "
               "no schedule to replay)")
    check(recipe)


def resolve(space: Space, values: dict) -> tuple[Recipe, dict]:
    """The recipe a trial's sampled `values` make, and the values it kept (in the space's
    order; a value that the earlier ones exclude keeps the recipe's own)."""
    recipe, kept = space.recipe, {}
    for key, value in values.items():
        try:
            recipe = _apply(recipe, key, value)
        except ValueError:
            continue
        kept[key] = value
    return recipe, kept
