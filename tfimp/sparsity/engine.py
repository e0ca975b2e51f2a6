"""`prune()`, `strip()`, `update_masks()`: masks put on a model, driven and taken off.

Example:

    pruned = tfimp.prune(model, tfimp.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=2000))
    pruned.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned.fit(x, y, epochs=5, callbacks=[tfimp.callbacks.UpdateMasks()])
    plain = tfimp.strip(pruned)
    print(tfimp.sparsity_report(plain))
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Iterator, Mapping

import keras
import numpy as np

from tfimp._util.validate import Described, fail
from tfimp.sparsity import masks as masks_lib
from tfimp.sparsity import schedules as schedules_lib
from tfimp.sparsity import strategies
from tfimp.sparsity.registry import NOT_PRUNABLE, is_prunable, prunable_weights
from tfimp.sparsity.wrapper import PruneLowMagnitude

__all__ = [
    "apply_masks",
    "clone_wrapped",
    "get_masks",
    "is_pruned",
    "layer_sparsity",
    "prune",
    "pruned_layers",
    "set_masks",
    "strip",
    "update_masks",
]

Selector = str | type


def check_model(model, argument: str = "model") -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Argument `{argument}` must be a Keras 3 `keras.Model`. Received: "
            f"{argument}={type(model).__module__}.{type(model).__name__}. "
            "(tf_keras / tf.keras 2 models are not supported: build the model with `import keras`.)"
        )
    if not model.built:
        raise ValueError(
            f"Argument `{argument}` must be a built model; '{model.name}' is not built. Call it "
            "on data or give it an `keras.Input(shape=...)` first, e.g. model.build((None, 784))."
        )


def matches(layer, selector: Selector) -> bool:
    """A class matches its instances; a string matches layer names (glob patterns) and, as
    configs store classes, the exact name of a class in the layer's MRO."""
    if isinstance(selector, type):
        return isinstance(layer, selector)
    if fnmatch.fnmatchcase(layer.name, selector):
        return True
    return any(cls.__name__ == selector for cls in type(layer).__mro__)


def select(layer, values: Mapping):
    """The value of the last selector in `values` that matches `layer`, or None."""
    hits = [v for sel, v in values.items() if matches(layer, sel)]
    return hits[-1] if hits else None


def walk_layers(model) -> Iterator[keras.layers.Layer]:
    """All layers of a model, depth first, nested models expanded, each layer once."""
    seen: set[int] = set()

    def visit(container):
        for layer in getattr(container, "layers", []):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield layer
            if isinstance(layer, keras.Model):
                yield from visit(layer)

    yield from visit(model)


def check_selectors(model, selectors: Iterable[Selector], argument: str) -> None:
    layers = list(walk_layers(model))
    for sel in selectors:
        if not isinstance(sel, (str, type)):
            raise TypeError(
                f"Argument `{argument}` takes layer names, glob patterns or layer classes. "
                f"Received: {sel!r}"
            )
        if not any(matches(layer, sel) for layer in layers):
            names = [layer.name for layer in layers]
            raise ValueError(
                f"Argument `{argument}` names {sel!r}, which matches no layer of model "
                f"'{model.name}'. Its layers: {names}"
            )


@dataclasses.dataclass(frozen=True)
class Plan:
    schedule: schedules_lib.PruningSchedule | None
    scope: str
    exclude: tuple
    targets: Mapping
    granularity: masks_lib.Granularity = masks_lib.WEIGHT

    def target_for(self, layer) -> float | None:
        return select(layer, self.targets)

    def wants(self, layer) -> bool:
        if not isinstance(layer, keras.layers.Layer) or isinstance(
            layer, (keras.Model, keras.layers.InputLayer)
        ):
            return False
        if any(matches(layer, sel) for sel in self.exclude):
            return False
        if is_prunable(layer):
            return True
        if layer.weights and not isinstance(layer, NOT_PRUNABLE) and not only_vectors(layer):
            prunable_weights(layer)  # raises a clear error naming the layer and the fixes
        return False

    def wrap(self, layer) -> PruneLowMagnitude:
        wrapper = PruneLowMagnitude(
            layer,
            schedule=self.schedule,
            target=self.target_for(layer),
            scope=self.scope,
            granularity=self.granularity,
            name=f"prune_{layer.name}",
        )
        wrapper.build()
        return wrapper


def only_vectors(layer) -> bool:
    """True for a layer whose weights are all scalars or vectors (a bias, a scale): nothing in
    it to prune, whether or not tfimp knows the layer."""
    return all(len(v.shape) <= 1 for v in layer.weights)


def _copy_layer(layer):
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a stateless op from a functional graph (e.g. `x + y`): share it
    clone = layer.__class__.from_config(layer.get_config())
    clone.build_from_config(layer.get_build_config())
    clone.set_weights(layer.get_weights())
    return clone


def prune(
    model: keras.Model,
    schedule: schedules_lib.PruningSchedule | float | None = None,
    *,
    scope: str = "layer",
    exclude: Iterable[Selector] | None = (),
    targets: Mapping[Selector, float] | None = None,
    granularity: masks_lib.Granularity | str | tuple | None = "weight",
    inplace: bool = False,
) -> keras.Model:
    """Returns a copy of `model` whose prunable layers carry mask variables.

    Args:
        model: a built Keras 3 model: Sequential, Functional (nested models and shared layers
            included) or subclassed (copied through its `get_config`/`from_config`; a class
            that can't round-trip needs `inplace=True`).
        schedule: a `tfimp.schedules` schedule; a float prunes once to that sparsity now;
            None wraps with all-ones masks (set them later with `update_masks`/`set_masks`).
        scope: "layer" ranks each tensor alone, "global" ranks all tensors together, "lamp"
            by LAMP scores, "erk" to Erdos-Renyi-kernel densities (`tfimp.sparsity.masks`).
        exclude: layer names, glob patterns ("dense_*") or layer classes to leave dense
            (None: none).
        targets: per-layer final sparsity overrides, keyed like `exclude`.
        granularity: what is pruned as one unit: "weight" (default), or blocks over the
            trailing weight dims, e.g. "block:4x1" (TFLite's 1x4 sparse FULLY_CONNECTED) or
            "block:16x1:whole" (only whole blocks kept: TFLite's int8 1x16 sparse kernels on
            a 300-input Dense layer); see `tfimp.sparsity.masks.Granularity`. "channel" (or
            a `tfimp.structure.Channels`) masks whole output channels of Conv, Dense,
            SeparableConv and Conv*Transpose layers with everything that depends on them,
            in the dependency groups of the model's graph; the sparsity is then the fraction
            of channels removed, and `tfimp.shrink` removes them for real.
        inplace: wrap the layers of `model` itself instead of a copy (subclassed models whose
            class can't be rebuilt from its config).

    Returns:
        The pruned model (not compiled). Train it with `tfimp.callbacks.UpdateMasks()` when
        `schedule` is a schedule.
    """
    check_model(model)
    masks_lib.get(scope)
    one_shot = isinstance(schedule, (int, float)) and not isinstance(schedule, bool)
    sched = None if schedule is None else schedules_lib.get(schedule)
    exclude = () if exclude is None else exclude
    if not isinstance(exclude, (str, type, Iterable)):
        raise TypeError("Argument `exclude` must be layer names, glob patterns or layer classes "
                        f"(or None). Received: exclude={exclude!r}")
    exclude = tuple(exclude) if not isinstance(exclude, (str, type)) else (exclude,)
    targets = dict(targets or {})
    for sel, value in targets.items():
        schedules_lib._check_sparsity(f"targets[{sel!r}]", value)
    check_selectors(model, exclude, "exclude")
    check_selectors(model, targets, "targets")
    if is_pruned(model):
        raise ValueError(
            f"Argument `model` is already pruned ('{model.name}' holds PruneLowMagnitude "
            "layers). Strip it first with tfimp.strip(model), or keep training it."
        )
    granularity = masks_lib.Granularity.parse(granularity)
    plan = Plan(sched, scope, exclude, targets, granularity)
    strategy = strategies.get(granularity)
    if strategy is not None:
        if inplace:
            raise ValueError(f"Argument `inplace`=True does not go with granularity="
                             f"'{granularity}': its masks span layers, which needs the graph of "
                             "a Functional or Sequential model, and copies it. Received: "
                             "inplace=True")
        pruned = strategy.prune(model, plan)
    else:
        pruned = _wrap_tensors(model, plan, inplace)
    if one_shot:
        update_masks(pruned, step=0)
    return pruned


def _wrap_tensors(model, plan: Plan, inplace: bool) -> keras.Model:
    exclude = plan.exclude
    wanted = [layer for layer in walk_layers(model) if plan.wants(layer)]
    masks_lib.check_blocks({f"{layer.name}/{w.name}": tuple(w.shape) for layer in wanted
                            for w in prunable_weights(layer)}, plan.granularity)
    if not wanted:
        raise ValueError(
            f"Argument `model` ('{model.name}') has no prunable weights (after exclusions "
            f"{list(exclude)}). Prunable layer types: see tfimp.wrappers.PRUNABLE_WEIGHTS."
        )
    return _wrap_inplace(model, plan) if inplace else clone_wrapped(model, plan)


def _is_graph_model(model) -> bool:
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"


def clone_wrapped(model, plan) -> keras.Model:
    """A copy of `model` whose layers `plan.wants(layer)` are replaced by `plan.wrap(copy)`
    (for a subclassed model: wrapped in place in a copy rebuilt from its config)."""
    if not _is_graph_model(model):
        return _wrap_inplace(_copy_subclassed(model), plan)

    def clone_fn(layer):
        copy = _copy_layer(layer)
        return plan.wrap(copy) if plan.wants(layer) else copy

    clone = keras.models.clone_model(model, clone_function=clone_fn, recursive=True)
    return clone


def _copy_subclassed(model) -> keras.Model:
    """A copy of a subclassed model rebuilt from its config, with the same weights."""
    name = f"'{model.name}' ({type(model).__name__})"
    try:
        copy = type(model).from_config(model.get_config())
        copy(_zeros_like_inputs(model.get_build_config()["input_shape"]))
    except Exception as e:  # get_config/from_config not implemented, or not round-tripping
        raise ValueError(
            f"Argument `model` {name} is a subclassed model that can't be copied through its "
            f"config ({type(e).__name__}: {_gist(e)}). Implement get_config() and "
            "from_config() on "
            "the class, or pass inplace=True to wrap its layers in place."
        ) from None
    src = [tuple(v.shape) for v in model.weights]
    dst = [tuple(v.shape) for v in copy.weights]
    if src != dst:
        raise ValueError(
            f"Argument `model` {name} rebuilt from its config has other weight shapes "
            f"({dst[:3]}... instead of {src[:3]}...): its get_config() does not return every "
            "constructor argument. Fix get_config(), or pass inplace=True to wrap its layers "
            "in place."
        )
    copy.set_weights(model.get_weights())
    return copy


def _gist(error: Exception, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _zeros_like_inputs(shape):
    """Zeros of one sample for each input shape in a (nested) build-config structure."""
    if isinstance(shape, dict):
        return {k: _zeros_like_inputs(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [_zeros_like_inputs(s) for s in shape]
    return np.zeros((1, *[d or 1 for d in tuple(shape)[1:]]), dtype="float32")


def _wrap_inplace(model, plan: Plan) -> keras.Model:
    """Replaces prunable layer attributes of (possibly subclassed) models by wrappers."""
    for owner in [model] + [m for m in walk_layers(model) if isinstance(m, keras.Model)]:
        if _is_graph_model(owner):
            raise ValueError(
                f"inplace=True is for subclassed models; '{owner.name}' is a "
                f"{type(owner).__name__}: call tfimp.prune without inplace."
            )
        attributes = {id(v): k for k, v in vars(owner).items() if isinstance(v, keras.layers.Layer)}
        for layer in list(owner.layers):
            if isinstance(layer, keras.Model) or not plan.wants(layer):
                continue
            if id(layer) not in attributes:
                raise ValueError(
                    f"Layer '{layer.name}' of '{owner.name}' is not a direct attribute (it sits "
                    "in a list or dict), so it cannot be wrapped in place. Make it an attribute "
                    f"or exclude it: exclude=['{layer.name}']."
                )
            _replace_attribute(owner, attributes[id(layer)], layer, plan.wrap(layer))
    return model


def _replace_attribute(owner, name: str, old, new) -> None:
    """Sets `owner.<name> = new` in place of sub-layer `old`, keeping the layer order.

    A built Keras layer locks its list of sub-layers; it is unlocked for the swap only.
    """
    tracker = owner._tracker
    was_locked = tracker.locked
    position = next(i for i, lay in enumerate(owner._layers) if lay is old)
    tracker.unlock()
    try:
        tracker.untrack(old)
        setattr(owner, name, new)
    finally:
        if was_locked:
            tracker.lock()
    owner._layers.remove(new)
    owner._layers.insert(position, new)


def pruned_layers(model) -> list[PruneLowMagnitude]:
    """The `PruneLowMagnitude` wrappers of `model`, nested models included."""
    return [layer for layer in walk_layers(model) if isinstance(layer, PruneLowMagnitude)]


def is_pruned(model) -> bool:
    """Whether `model` holds tfimp mask wrappers."""
    return isinstance(model, keras.Model) and bool(pruned_layers(model))


def layer_sparsity(wrapper: PruneLowMagnitude, step: int) -> float:
    """The sparsity of `wrapper` at `step`: its schedule's, scaled to its own target if any."""
    sched = wrapper.schedule
    value = sched.sparsity(step)
    if wrapper.target is None:
        return value
    final = sched.end_sparsity()
    return wrapper.target if final == 0 else value * wrapper.target / final


def update_masks(model, step=None, force: bool = False) -> bool:
    """Recomputes the masks of `model` if its schedule prunes at `step`.

    In a custom training loop, call it before each step:

        tfimp.update_masks(model, step=optimizer.iterations)

    Args:
        model: a model returned by `tfimp.prune`.
        step: the training step (an int, or a variable such as `optimizer.iterations`); by
            default the iteration count of the model's compiled optimizer.
        force: recompute even if the schedule does not prune at `step`.

    Returns:
        Whether masks were recomputed.
    """
    wrappers = _wrappers_of_pruned(model)
    for w in wrappers:
        w.last_pruned_step(refresh=True)
    return update_wrappers(wrappers, _resolve_step(model, step), force, model)


def _wrappers_of_pruned(model) -> list[PruneLowMagnitude]:
    """The wrappers of `model`, after checking it is a pruned Keras model."""
    check_model(model)
    wrappers = pruned_layers(model)
    if not wrappers:
        raise ValueError(
            f"Argument `model` ('{model.name}') is not pruned: it has no pruned layers "
            "(PruneLowMagnitude), so no masks. Prune it first with tfimp.prune(model, schedule)."
        )
    return wrappers


def _resolve_step(model, step) -> int:
    if step is None:
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                f"Argument `step` is required: model '{model.name}' is not compiled, so it has "
                "no optimizer step to follow. Pass step=optimizer.iterations (the optimizer "
                "your training loop applies gradients with). Received: step=None"
            )
        step = optimizer.iterations
    if not isinstance(step, (int, np.integer)):
        step = keras.ops.convert_to_numpy(step)
        if np.ndim(step) != 0 or not np.issubdtype(np.asarray(step).dtype, np.integer):
            raise TypeError(f"Argument `step` must be an integer. Received: step={step!r}")
    if step < 0:
        raise ValueError(f"Argument `step` must be >= 0. Received: step={int(step)}")
    return int(step)


def update_wrappers(wrappers: list[PruneLowMagnitude], step: int, force: bool = False,
                    model=None) -> bool:
    """Prunes each wrapper whose schedule had a pruning step since its last update.

    Catching up (rather than pruning only when `should_prune(step)`) keeps the schedule when
    updates run every few steps, as with `steps_per_execution > 1`. Channel masks span
    layers, so they need the `model` (its graph).
    """
    spanning: dict[str, list[PruneLowMagnitude]] = {}
    rest = []
    for w in wrappers:
        if strategies.get(w.granularity) is None:
            rest.append(w)
        else:
            spanning.setdefault(w.granularity.kind, []).append(w)
    changed = False
    for members in spanning.values():
        strategy = strategies.get(members[0].granularity)
        changed = strategy.update(model, members, step, force) or changed
    return _update_tensors(rest, step, force) or changed


def _update_tensors(wrappers: list[PruneLowMagnitude], step: int, force: bool) -> bool:
    groups: dict[tuple, list[PruneLowMagnitude]] = {}
    for w in wrappers:
        w.driven = True
        if w.schedule is None:
            continue
        due = step if force else w.schedule.latest_pruning_step(step)
        if due is None or (not force and due <= w.last_pruned_step()):
            continue
        key = (w.scope, repr(schedules_lib.serialize(w.schedule)), w.granularity, due)
        groups.setdefault(key, []).append(w)
    for (scope, _, granularity, due), members in groups.items():
        _prune_group(members, scope, granularity, due)
    return bool(groups)


def _prune_group(wrappers, scope: str, granularity, step: int) -> None:
    sparsity = wrappers[0].schedule.sparsity(step)
    names, weights, old, targets = [], {}, {}, {}
    for w in wrappers:
        values = [keras.ops.convert_to_numpy(v) for v in w.pruned_weights]
        for var, value in zip(w.pruned_weights, values):
            if not np.all(np.isfinite(value)):
                fail("model", Described(f"<model with non-finite weights in '{w.layer.name}'>"),
                     f"a model with finite weights to rank by magnitude; weight "
                     f"'{w.layer.name}/{var.name}' holds "
                     f"{int(np.count_nonzero(~np.isfinite(value)))} NaN or infinite values (a "
                     "diverged training, or damaged weights)")
        for name, value, mask in zip(w.weight_names(), values, w.get_masks()):
            names.append(name)
            weights[name], old[name] = value, mask
            if w.target is not None:
                targets[name] = layer_sparsity(w, step)
    new = masks_lib.get(scope)(weights, sparsity, old, targets, granularity)
    for w in wrappers:
        w.assign_masks([new[n] for n in w.weight_names()], step)


def set_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Sets masks by weight name (as `get_masks` names them) and zeroes pruned weights."""
    wrappers = _wrappers_of_pruned(model)
    if not isinstance(masks, Mapping):
        fail("masks", masks, "a dict of masks keyed by weight name (as get_masks names them)")
    known = {n for w in wrappers for n in w.weight_names()}
    unknown = sorted(set(masks) - known)
    if unknown:
        fail("masks", Described(f"<masks for {unknown}>"), f"keyed by the model's weight "
             f"names (as get_masks names them): {sorted(known)}")
    for w in wrappers:
        current = dict(zip(w.weight_names(), w.get_masks()))
        current.update({k: masks_lib.check_mask(v, current[k].shape) for k, v in masks.items()
                        if k in current})
        w.assign_masks([current[n] for n in w.weight_names()])


def get_masks(model) -> dict[str, np.ndarray]:
    """All masks of a pruned model by weight name."""
    return {n: m for w in _wrappers_of_pruned(model)
            for n, m in zip(w.weight_names(), w.get_masks())}


def apply_masks(model) -> None:
    """Re-zeroes pruned weights, e.g. after assigning weights by hand."""
    for w in _wrappers_of_pruned(model):
        w.assign_masks(w.get_masks())


def strip(model: keras.Model) -> keras.Model:
    """A plain Keras model of the original architecture, with the pruned weights at zero.

    The result holds no tfimp objects: it saves and loads without tfimp installed. Models
    pruned in place (subclassed) are unwrapped in place and returned. A quantization-aware
    model (`tfimp.quantize_aware`) loses its masks and keeps its fake quantization
    (`tfimp.quantization.strip`): that is what its int8 file is converted from.
    """
    check_model(model)
    if not is_pruned(model):
        for hook in strategies.strip_hooks():
            stripped = hook(model)
            if stripped is not None:
                return stripped
        return model
    if not _is_graph_model(model):
        return _strip_inplace(model)

    def clone_fn(layer):
        if isinstance(layer, PruneLowMagnitude):
            inner = _copy_layer(layer.layer)
            _zero_pruned(inner, layer)
            return inner
        return _copy_layer(layer)

    return keras.models.clone_model(model, clone_function=clone_fn, recursive=True)


def _zero_pruned(inner, wrapper: PruneLowMagnitude) -> None:
    for var, mask in zip(wrapper.weights_of(inner), wrapper.get_masks()):
        var.assign(keras.ops.convert_to_numpy(var) * mask)


def _strip_inplace(model):
    for owner in [model] + [m for m in walk_layers(model) if isinstance(m, keras.Model)]:
        for name, value in list(vars(owner).items()):
            if isinstance(value, PruneLowMagnitude):
                inner = value.unwrap()
                _zero_pruned(inner, value)
                _replace_attribute(owner, name, value, inner)
    return model
