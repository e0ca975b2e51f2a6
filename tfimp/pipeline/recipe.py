"""Recipes: one complete, typed config per architecture that `tfimp run` executes end to end.

A recipe names a model builder and a dataset, says how to train and prune them (IMP), what to
export and how to profile the result. Every field can be overridden from the command line with
`key=value` (`rounds=3`, `imp.rate=0.5`, `model.kwargs.width=32`); values are parsed by the
field's type.

Example:
>>> r = load_recipe("lenet_300_100")  # doctest: +SKIP
>>> r = r.override("rounds=3", "imp.rate=0.5", seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import importlib.util
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from tfimp._util import validate as v
from tfimp._util.errors import InvalidArgumentError
from tfimp._util.resources import data_folder
from tfimp.lottery.config import IMPConfig

_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
_LR_SCHEDULES = ("constant", "cosine")
# Keys that moved: the IMP section is the `IMPConfig` that `tfimp.imp` takes.
_MOVED = {"train.batch_size": "imp.batch_size", "train.epochs_per_round": "imp.epochs_per_round",
          "train.metric": "imp.metric", "imp.seed": "seed"}
_REPLACED = {"imp.block": "imp.granularity=block:4x1",
             "imp.prune_partial_blocks": "imp.granularity=block:16x1:whole",
             "imp.rewind_point": "imp.rewind_at"}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _has_config(kind) -> bool:
    return isinstance(kind, type) and hasattr(kind, "from_config") and hasattr(kind, "get_config")


class _Config:
    """Shared `get_config`/`from_config` for the frozen dataclasses below."""

    def get_config(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.get_config() if _has_config(type(value)) else _plain(value)
        return out

    @classmethod
    def from_config(cls, config: dict):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} fields {unknown}; valid: {sorted(names)}")
        kwargs = {}
        for key, value in config.items():
            kind = hints[key]
            if _has_config(kind) and isinstance(value, dict):
                value = _section(key, kind, value)
            elif value is not None and _tuple_type(kind):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[key] = value
        return cls(**kwargs)


def _section(key: str, kind, config: dict):
    """`kind.from_config(config)`, its errors naming the field as `key.field`."""
    try:
        return kind.from_config(config)
    except InvalidArgumentError as e:
        text = str(e)
        if text.startswith(f"Argument `{key}."):
            raise
        text = text.replace("Argument `", f"Argument `{key}.", 1)
        raise InvalidArgumentError(text.replace("Received: ", f"Received: {key}.", 1)) from None


def _tuples(mapping: dict) -> dict:
    """`mapping` with lists turned into tuples, so configs compare equal after JSON."""
    fix = lambda v: tuple(fix(x) for x in v) if isinstance(v, (list, tuple)) else v
    return {k: fix(v) for k, v in mapping.items()}


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class ModelSpec(_Config):
    """A builder from `tfimp.models` and its keyword arguments."""

    name: str
    kwargs: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            v.fail("model.name", self.name, "the name of a model builder in tfimp.models")
        if not isinstance(self.kwargs, dict):
            v.fail("model.kwargs", self.kwargs, "a dict of builder keyword arguments")
        object.__setattr__(self, "kwargs", _tuples(self.kwargs))


@dataclasses.dataclass(frozen=True)
class DataSpec(_Config):
    """A dataset from `tfimp.data`.

    `offline=None` uses the real dataset when it is available or downloadable and the offline
    default otherwise; True always uses the offline default. `train_samples`/`test_samples`
    cap the number of samples used (None: all).
    """

    name: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    offline: bool | None = None
    train_samples: int | None = None
    test_samples: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            v.fail("data.name", self.name, "the name of a dataset in tfimp.data")
        if not isinstance(self.kwargs, dict):
            v.fail("data.kwargs", self.kwargs, "a dict of loader keyword arguments")
        object.__setattr__(self, "kwargs", _tuples(self.kwargs))
        if self.offline not in (None, True, False):
            v.fail("data.offline", self.offline, "True, False or None")
        for name in ("train_samples", "test_samples"):
            if getattr(self, name) is not None:
                v.integer(f"data.{name}", getattr(self, name), 1)


@dataclasses.dataclass(frozen=True)
class TrainSpec(_Config):
    """How each IMP round trains: the optimizer, its learning rate and the loss.

    `lr_schedule="cosine"` decays the rate from `lr` to `lr * lr_min_fraction` over each
    round (what learning-rate rewinding, `imp.rewind=lr`, replays). `run_eagerly` skips graph
    tracing: slower per step, faster for a handful of steps. Batch size, epochs per round and
    the metric are IMP settings (`imp.batch_size`, `imp.epochs_per_round`, `imp.metric`).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    lr_schedule: str = "constant"
    lr_min_fraction: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    loss: str = "sparse_categorical_crossentropy"
    run_eagerly: bool = False

    def __post_init__(self):
        v.choice("train.optimizer", self.optimizer, _OPTIMIZERS)
        v.positive_number("train.lr", self.lr)
        v.choice("train.lr_schedule", self.lr_schedule, _LR_SCHEDULES)
        v.fraction("train.lr_min_fraction", self.lr_min_fraction, allow_zero=True)
        v.fraction("train.momentum", self.momentum, allow_zero=True)
        v.non_negative("train.weight_decay", self.weight_decay)
        if not isinstance(self.loss, str) or not self.loss:
            v.fail("train.loss", self.loss, "the name of a Keras loss")
        v.flag("train.run_eagerly", self.run_eagerly)


@dataclasses.dataclass(frozen=True)
class ExportSpec(_Config):
    """Which .tflite files to write: float32, float16 and/or int8, with TFLite's sparse encoding
    (`sparse`: True, False or "auto" = the smaller file that runs and verifies); the report
    names the smallest verified file for LiteRT among them. `baseline`
    also exports the dense round-0 model as float32, to compare size and latency with.
    `per_channel_dense=False` gives the int8 file one weight scale per Dense tensor instead
    of one per output unit (see `tfimp.export.Int8`): much smaller when highly pruned.
    `micro` writes the int8 model as TFLite Micro C source, its weights stored as
    `micro_compression` says: None, "pruning", "lut" (TFLM's DECODE encodings), "sparse"
    (tfimp's sparse FULLY_CONNECTED kernel) or "auto" (the smallest; all verified bit for bit,
    see `tfimp.export.to_micro`)."""

    float32: bool = True
    float16: bool = True
    int8: bool = True
    sparse: bool | str = "auto"
    per_channel_dense: bool = True
    baseline: bool = True
    calibration_samples: int = 256
    verify_samples: int = 1000
    micro: bool = True
    micro_compression: str | None = "auto"

    def __post_init__(self):
        if self.micro_compression == "none":
            object.__setattr__(self, "micro_compression", None)
        if self.micro_compression not in (None, "pruning", "lut", "sparse", "auto"):
            v.fail("export.micro_compression", self.micro_compression,
                   "None, 'pruning', 'lut', 'sparse' or 'auto'")
        if not (isinstance(self.sparse, bool) or self.sparse == "auto"):
            v.fail("export.sparse", self.sparse, "True, False or 'auto'")
        if not isinstance(self.per_channel_dense, bool):
            v.fail("export.per_channel_dense", self.per_channel_dense, "True or False")
        for name in ("float32", "float16", "int8", "baseline", "micro"):
            v.flag(f"export.{name}", getattr(self, name))
        if not (self.float32 or self.float16 or self.int8):
            v.fail("export.float32", self.float32, "True when export.float16 and export.int8 "
                   "are False (nothing to export)")
        v.integer("export.calibration_samples", self.calibration_samples, 1)
        v.integer("export.verify_samples", self.verify_samples, 1)


@dataclasses.dataclass(frozen=True)
class ProfileSpec(_Config):
    """How to profile the exported models: LiteRT latency at each thread count, and the
    TFLite Micro arena of the int8 model (`micro`) against `board` (None: no verdict)."""

    threads: tuple[int, ...] = (1, 2)
    runs: int = 100
    micro: bool = True
    board: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "threads", tuple(self.threads))
        for t in self.threads:
            v.integer("profile.threads", t, 1)
        v.integer("profile.runs", self.runs, 1)


@dataclasses.dataclass(frozen=True)
class Recipe(_Config):
    """A complete run: model, data, training, IMP, export and profile settings.

    `smoke` holds the overrides (`{"field.path": value}`) that shrink the run to a few steps
    on tiny data; `Recipe.smoke_recipe()` applies them on top of the generic ones.

    `options` names sets of overrides that a user switches on by name
    (`tfimp run lenet5 --option qat,distill`, `Recipe.with_options("qat")`): every recipe
    has `distill` (retraining distils from the dense round 0) and `qat` (a quantization-aware
    finishing stage whose model gives the int8 file), and a recipe may tune them or add its
    own (`channel`). They are not part of the run's identity: what they set is.

    `search` tunes the space `tfimp search` explores: `{"field.path": [choices]}` or
    `{"field.path": {"low": a, "high": b}}` (optionally "log": True, "step": s) replaces or
    adds a dimension, `{"field.path": None}` drops one; not part of the run's identity.
    """

    name: str
    model: ModelSpec
    data: DataSpec
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)
    imp: IMPConfig = dataclasses.field(default_factory=lambda: IMPConfig(
        budget=0.01, stop_at_budget=False))
    export: ExportSpec = dataclasses.field(default_factory=ExportSpec)
    profile: ProfileSpec = dataclasses.field(default_factory=ProfileSpec)
    seed: int = 0
    description: str = ""
    smoke: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    search: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            v.fail("name", self.name, "a non-empty string")
        for key, kind in (("model", ModelSpec), ("data", DataSpec), ("train", TrainSpec),
                          ("imp", IMPConfig), ("export", ExportSpec), ("profile", ProfileSpec)):
            if not isinstance(getattr(self, key), kind):
                v.fail(key, getattr(self, key), f"a {kind.__name__}")
        v.integer("seed", self.seed, 0)
        if not isinstance(self.smoke, dict):
            v.fail("smoke", self.smoke, "a dict of overrides {'field.path': value}")
        object.__setattr__(self, "smoke", _tuples(self.smoke))
        if not isinstance(self.options, dict) or not all(
                isinstance(k, str) and k and isinstance(o, dict)
                for k, o in self.options.items()):
            v.fail("options", self.options, "a dict of named override sets "
                   "{'name': {'field.path': value}}")
        for name, overrides in self.options.items():
            for key in overrides:
                try:
                    resolve_key(key)
                except ValueError as e:
                    raise ValueError(f"Recipe option `{name}`: {e}") from None
        object.__setattr__(self, "options", {k: _tuples(o) for k, o in self.options.items()})
        self._check_search()

    def _check_search(self) -> None:
        if not isinstance(self.search, dict):
            v.fail("search", self.search, "a dict {'field.path': [choices] or {'low': a, "
                   "'high': b} or None}")
        for key, spec in self.search.items():
            try:
                resolve_key(key)
            except ValueError as e:
                raise ValueError(f"Recipe search space: {e}") from None
            if spec is not None and not isinstance(spec, (list, tuple, dict)):
                v.fail(f"search[{key!r}]", spec, "a list of choices, a dict {'low': a, "
                       "'high': b} or None")
        object.__setattr__(self, "search", _tuples(self.search))

    @property
    def all_options(self) -> dict:
        """Every option this recipe has: the generic ones, tuned or added to by the recipe."""
        return {**GENERIC_OPTIONS, **self.options}

    def with_options(self, *names: str) -> Recipe:
        """A copy with the named options' overrides applied, in order (later ones win)."""
        known = self.all_options
        for name in names:
            if name not in known:
                v.fail("option", name, f"one of the options of recipe {self.name!r}: "
                       f"{sorted(known)}")
        merged = {k: val for name in names for k, val in known[name].items()}
        return self.override(**{k.replace(".", "__"): val for k, val in merged.items()})

    def override(self, *assignments: str, **fields) -> Recipe:
        """A copy with fields replaced: `"key=value"` strings and/or keyword arguments.

        Keys are dotted paths (`imp.rate`, `model.kwargs.width`) or a field name that is
        unique across the nested configs (`rounds`). String values are parsed by the field's
        type; keyword values are used as given (their keys may use `__` for dots).

        Raises:
            ValueError: an unknown or ambiguous key, a value of the wrong type, or a value
                that fails the config's own checks.
        """
        pairs = [parse_assignment(a) for a in assignments]
        pairs += [(k.replace("__", "."), v, False) for k, v in fields.items()]
        config = self.get_config()
        for key, value, from_text in pairs:
            path = resolve_key(key)
            kind = field_type(path)
            if from_text:
                value = parse_value(value, kind, ".".join(path))
            _set(config, path, _plain(value))
        return type(self).from_config(config)

    def smoke_recipe(self) -> Recipe:
        """This recipe shrunk to a few steps on tiny data, all stages kept."""
        rate = 0.5 if self.imp.adaptive else max(self.imp.rate, 0.5)
        generic = {"imp.rounds": 1, "imp.target_sparsity": None, "imp.rate": rate,
                   "imp.epochs_per_round": 1, "imp.dense_epochs": None,
                   "imp.total_epochs": None, "imp.patience": None,
                   "train.run_eagerly": True, "data.offline": True,
                   "data.train_samples": 64, "data.test_samples": 32,
                   "export.calibration_samples": 16, "export.verify_samples": 64,
                   "export.baseline": False,
                   "profile.runs": 3}
        return self.override(**{k.replace(".", "__"): v for k, v in
                                {**generic, **self.smoke}.items()})

    def diff(self, base: Recipe) -> list[str]:
        """The `key=value` overrides that turn `base` into this recipe."""
        mine, theirs = _leaves(self.get_config()), _leaves(base.get_config())
        return [f"{key}={format_value(value)}" for key, value in mine.items()
                if key not in ("smoke", "description", "options", "search")
                and theirs.get(key, object()) != value]

    def digest(self) -> str:
        """A short hash of the config: names the run's work directory."""
        config = {k: val for k, val in self.get_config().items()
                  if k not in ("options", "search")}
        text = json.dumps(config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


# Options every recipe has (`Recipe.options` tunes or adds to them).
GENERIC_OPTIONS = {
    "distill": {"imp.distill": "dense"},
    "qat": {"imp.final_qat_epochs": 3},
}

_SPECS = {"model": ModelSpec, "data": DataSpec, "train": TrainSpec, "imp": IMPConfig,
          "export": ExportSpec, "profile": ProfileSpec}


def _leaves(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in ("smoke", "options", "search",
                                                    "imp.layer_rates"):
            out.update(_leaves(value, path + ".") if value else {path: {}})
        else:
            out[path] = value
    return out


def format_value(value) -> str:
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return repr(value).replace(" ", "")
    return str(value)


def parse_assignment(text: str) -> tuple[str, str, bool]:
    """Splits `"key=value"` into `(key, value, True)`; raises ValueError on other text."""
    if not isinstance(text, str) or "=" not in text or text.startswith("="):
        raise ValueError(f"An override must look like key=value, e.g. rounds=3 or "
                         f"imp.rate=0.5. Received: {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip(), True


def _all_paths() -> list[tuple[str, ...]]:
    paths = []
    for f in dataclasses.fields(Recipe):
        spec = _SPECS.get(f.name)
        paths += [(f.name, g.name) for g in dataclasses.fields(spec)] if spec else [(f.name,)]
    return paths


def resolve_key(key: str) -> tuple[str, ...]:
    """The full field path of an override key (`rounds` -> `("imp", "rounds")`)."""
    if key in _REPLACED:
        raise ValueError(f"Recipe field `{key}` is gone; write {_REPLACED[key]} instead.")
    key = _MOVED.get(key, key)
    parts = tuple(key.split("."))
    paths = _all_paths()
    if parts in paths or (len(parts) > 2 and parts[:2] in paths and
                          field_type(parts[:2]) is dict):
        return parts
    if len(parts) > 1 and parts[0] == "smoke":
        return ("smoke", ".".join(parts[1:]))
    matches = [p for p in paths if p[-1] == parts[0] and len(p) == 2]
    if len(parts) == 1 and len(matches) == 1:
        return matches[0]
    names = [".".join(p) for p in paths]
    if len(parts) == 1 and matches:
        raise ValueError(f"Override key `{key}` is ambiguous; write one of "
                         f"{['.'.join(m) for m in matches]}.")
    close = difflib.get_close_matches(key, names, n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"Unknown recipe field `{key}`.{hint} Valid fields: {', '.join(names)}")


def field_type(path: tuple[str, ...]):
    """The declared type of the field at `path` (values inside a dict field: `Any`)."""
    kind = Recipe
    for name in path:
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            return Any
        kind = typing.get_type_hints(kind)[name]
    return kind


def _set(config: dict, path: tuple[str, ...], value) -> None:
    node = config
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value


def _tuple_type(kind) -> bool:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return typing.get_origin(kind) is tuple or any(typing.get_origin(a) is tuple for a in args)


def parse_value(text: str, kind, name: str):
    """Parses command-line text as a value of type `kind`; ValueError names field and type."""
    try:
        return _parse(text.strip(), kind)
    except (ValueError, SyntaxError, TypeError):
        raise ValueError(f"Override `{name}={text}`: field `{name}` expects "
                         f"{_type_name(kind)}. Received: {text!r}") from None


def _parse(text: str, kind):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(text, arg)
            except (ValueError, SyntaxError, TypeError) as e:
                errors.append(e)
        raise ValueError(errors)
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(text)
    if kind in (int, float):
        return kind(text)
    if kind is str:
        return text
    if origin is tuple:
        items = [t for t in text.strip("()[] ").split(",") if t.strip()]
        return tuple(_parse(t.strip(), args[0]) for t in items)
    if kind is dict or origin is dict:
        value = ast.literal_eval(text)
        if not isinstance(value, dict):
            raise TypeError(text)
        return value
    return _literal(text)


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _type_name(kind) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(kind))
    if kind is type(None):
        return "None"
    if typing.get_origin(kind) is tuple:
        return f"a comma-separated list of {_type_name(typing.get_args(kind)[0])}"
    if kind is dict:
        return "a dict literal such as {'dense_2': 0.1}"
    return {bool: "a bool (true/false)", int: "an integer", float: "a number",
            str: "a string"}.get(kind, str(kind))


def recipes_dir() -> Path:
    """The folder of the bundled recipes (`recipes/`, installed as `tfimp.recipes`)."""
    return data_folder("tfimp.recipes", "recipes")


def available() -> list[str]:
    """Names of the recipes in the `recipes/` folder."""
    return sorted(p.stem for p in recipes_dir().glob("*.py") if not p.stem.startswith("_"))


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """Loads a recipe by name (`"lenet5"`) or from a file that defines `recipe() -> Recipe`.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a file whose
            `recipe()` is missing or does not return a `Recipe`.
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if not (text.endswith(".py") or os.sep in text or "/" in text):
        path = recipes_dir() / f"{text}.py"
        if not path.is_file():
            raise ValueError(f"Argument `recipe` must be a recipe name or a .py file. "
                             f"Received: recipe={text!r}; recipes: {', '.join(available())}")
    if not path.is_file():
        raise ValueError(f"Argument `recipe` must name an existing recipe file. "
                         f"Received: recipe={text!r} {v.not_a_file(path)}")
    spec = importlib.util.spec_from_file_location(f"tfimp_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factory = getattr(module, "recipe", None)
    result = factory() if callable(factory) else None
    if not isinstance(result, Recipe):
        raise ValueError(f"Recipe file {str(path)!r} must define `def recipe() -> Recipe`; "
                         f"got {type(result).__name__ if callable(factory) else 'no recipe()'}.")
    return result
