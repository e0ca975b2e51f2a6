"""Hybrid device rounds for `tfimp.imp(..., device=budget)`.

Every round's model is measured (`cost.measure`: shrunk, int8, TFLite Micro or LiteRT). The
next round then cuts what binds:

- units (neurons, channels) while the RAM or the latency is over budget, or while the flash is
  and no sparsity-aware encoding fits the RAM (DECODE holds decoded tensors in the arena): the
  cut is planned by `units.plan_cut` and applied as weight masks that zero the units' filters
  and every row that reads them, so `tfimp.shrink` removes them exactly;
- weights (the run's own magnitude ranking) while only the flash is over and an encoding
  whose flash falls with the zeros fits the RAM.

A round aims at the budget minus `SLACK`, but removes at most the run's step (the adaptive
rate's, or `rate`) of the binding resource and of the live units, so a round that breaks the
accuracy budget is retried from the last good round with a smaller step. The run stops at
the first round that fits every budget as measured and stays within the accuracy budget.

Latency: a unit cut is predicted from the parent's measured latency and a per-layer table
measured on the target (`latency.LatencyTable`). Round 0 times the dense model
`NOISE_REPEATS` times; a round fits a latency budget only with that spread as a margin
(measured <= budget / (1 + spread)), and at the end the chosen round's exported file is timed
again: a round that misses the budget then is not written as fitting.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfimp.device import cost, units as units_lib
from tfimp.device.cost import Measurement

__all__ = ["DevicePolicy", "choose_round"]

SLACK = 0.02
"""A round aims this share below the budget: the measured model differs from the estimate by
quantization parameters and file metadata."""
EVAL_SAMPLES = 1000
NOISE_REPEATS = 5
"""Round 0 times the dense model this many times (each the median of `cost.LATENCY_RUNS`)."""


class DevicePolicy:
    """The device side of one IMP run; the driver calls it at fixed points of a round."""

    def __init__(self, budget, allocation: str = "sensitivity"):
        from tfimp._util import validate as v
        from tfimp.device.budget import DeviceBudget

        if not isinstance(budget, DeviceBudget):
            v.fail("device", budget, "a tfimp.DeviceBudget (e.g. tfimp.device.budget_for("
                   "'cortex-m0plus-32k') or DeviceBudget(flash=262144, ram=32768))")
        v.choice("allocation", allocation, units_lib.ALLOCATIONS)
        self.budget, self.allocation = budget, allocation
        self._decode: dict[str, dict[str, int]] = {}
        self._table = None
        self._spread = None

    def get_config(self) -> dict:
        return {"budget": self.budget.get_config(), "allocation": self.allocation}

    def slug(self) -> str:
        """A short folder-name part naming the budget, e.g. "cortex-m0plus-32k"."""
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(self.get_config(), sort_keys=True).encode())
        name = self.budget.name or "budget"
        return f"{name}-{digest.hexdigest()[:6]}"

    def choose(self, history: list[dict], dense_metric: float) -> dict | None:
        """The round to write (`choose_round`); with a latency budget, a fitting round is
        written as fitting only if its exported file, timed again, meets the budget."""
        if self.budget.latency_ms is None:
            return choose_round(history, dense_metric, self.driver.cfg)
        rows, rejected = [dict(r) for r in history], []
        while True:
            choice = choose_round(rows, dense_metric, self.driver.cfg)
            if choice is None:
                return None
            ms = self._retime(choice["round"])
            ok = ms <= self.budget.latency_ms
            choice["retimed"] = {"latency_ms": ms, "fits": ok}
            if ok or not choice["fits"]:
                break
            rejected.append({"round": choice["round"], "latency_ms": ms})
            row = next(r for r in rows if r["round"] == choice["round"])
            excess = {**row["device"]["excess"], "latency_ms": ms / self.budget.latency_ms}
            row["device"] = {**row["device"], "fits": False, "excess": excess}
        if rejected:
            choice["rejected_on_retiming"] = rejected
            if not choice["fits"]:
                choice["label"] = "nearest miss (the fitting rounds missed when timed again)"
        return choice

    def _retime(self, r: int) -> float:
        """The latency of round `r`'s exported int8 file, timed afresh (not the cache)."""
        from tfimp.structure.shrink import shrink

        data = cost.export_int8(shrink(self.driver._round_model(r)), self.calibration)
        return cost.latency_ms(data, self.budget)

    def bind(self, driver) -> None:
        self.driver = driver
        x = driver.train.x if driver.train.size is not None else next(iter(driver.train.x))[0]
        self.calibration = np.asarray(x[:cost.CALIBRATION_SAMPLES])

    # -- after a round trains
    def measure_round(self, pruned) -> dict:
        """The round's model as measured, for its history row."""
        from tfimp.sparsity.engine import is_pruned, strip
        from tfimp.structure.shrink import shrink

        plain = strip(pruned) if is_pruned(pruned) else pruned
        data = cost.export_int8(shrink(plain), self.calibration)
        noise = self._noise(data) if self._measured_rounds() == 0 else {}
        effective = self.effective()
        m = cost.measure_bytes(data, effective, self.calibration)
        units = units_lib.Units(plain)
        if effective.latency_ms is not None:  # what `fits` and `excess` compare against
            noise["latency_limit_ms"] = effective.latency_ms
        return {**m.to_dict(), "budget": self.budget.limits(), **noise,
                "macs": units.estimate(units.alive)["macs"]}

    def _measured_rounds(self) -> int:
        return sum("device" in r for r in self.driver.manifest["history"])

    def _noise(self, data: bytes) -> dict:
        """The dense model's latency timed `NOISE_REPEATS` times, and their spread."""
        if self.budget.latency_ms is None:
            return {}
        times = [cost.latency_ms(data, self.budget) for _ in range(NOISE_REPEATS)]
        self._spread = (max(times) - min(times)) / float(np.median(times))
        return {"latency_repeats": times, "latency_spread": self._spread}

    def spread(self) -> float:
        """The relative spread of the dense model's repeated timings (0 without a latency
        budget, or before round 0 is measured)."""
        if self._spread is None:
            rows = [r["device"] for r in self.driver.manifest["history"] if "device" in r]
            self._spread = rows[0].get("latency_spread", 0.0) if rows else None
        return self._spread or 0.0

    def effective(self):
        """The budget a round must meet: the latency budget less the timing noise."""
        if self.budget.latency_ms is None:
            return self.budget
        return dataclasses.replace(self.budget,
                                   latency_ms=self.budget.latency_ms / (1.0 + self.spread()))

    def table(self):
        """The target's `latency.LatencyTable` (made on first use)."""
        from tfimp.device.latency import LatencyTable

        if self._table is None:
            self._table = LatencyTable.for_budget(self.budget)
        return self._table

    def stop(self, manifest) -> bool | None:
        """True when the last round fits within the accuracy budget (or no cut is left);
        None leaves the decision to the run's own rules."""
        row = manifest["history"][-1]
        if row.get("device_stuck"):
            return True
        if row["device"]["fits"] and self._within(manifest, row):
            return True
        return None

    # -- before a round trains
    def parent_and_step(self, manifest, rate: float) -> tuple[int, float]:
        """With a fixed rate: the last round within the accuracy budget, and the rate halved
        once for every round after it (each broke the budget), as the adaptive rate does."""
        history = manifest["history"]
        good = [r for r in history if self._within(manifest, r)]
        parent = good[-1]["round"] if good else 0
        broken = sum(r["round"] > parent for r in history)
        return parent, rate / 2 ** broken

    def _within(self, manifest, row) -> bool:
        cfg = self.driver.cfg
        if cfg.budget is None or row["round"] == 0:
            return True
        return cfg.drop(manifest["dense_metric"], row[f"val_{cfg.metric}"]) <= cfg.budget + 1e-12

    def next_masks(self, model, plain, parent: int, step: float, arrays, old: list):
        """The masks of the next round and what it did, for its history row. `plain` is the
        parent round's model (pruned weights at zero, compiled), `model` the one to wrap."""
        meas = Measurement.from_dict(self.driver._row(parent)["device"])
        kind, over = self._action(meas, plain, parent, step)
        if kind == "weights":
            density = self.driver._density(parent) * (1.0 - step)
            masks = self.driver._next_masks(arrays, old, density)
            return masks, {"device_action": "weights", "device_over": over}
        return self._unit_masks(model, plain, meas, over, step, old)

    def _action(self, meas: Measurement, plain, parent: int, step: float) -> tuple[str, list]:
        none = next(c for c in meas.candidates if c["encoding"] == "none")
        limits = self.effective().limits()
        over = [r for r, limit in limits.items() if none.get(r) is not None and none[r] > limit]
        if over != ["flash"] or self.budget.runtime != "tflm":
            return "units", over
        usable = [name for name, arena in self._sparse_arenas(plain, none["ram"]).items()
                  if self.budget.ram is None or arena <= self.budget.ram]
        if usable and self._weights_reach_flash(meas, none, parent, step, usable):
            return "weights", over
        return "units", over

    def _weights_reach_flash(self, meas: Measurement, none: dict, parent: int, step: float,
                             encodings: list[str]) -> bool:
        """Whether the rounds left, each pruning `step` of the weights, bring one of
        `encodings` under the flash budget. Its flash is taken as the parent's bytes less, per
        weight pruned, what a non-zero costs it now as measured (or, with no measurement yet,
        `Encoder.per_nonzero`): the sparse kernel stores an index with every non-zero, so near
        half density its flash is above the plain model's and a run with one round left
        removes units instead."""
        from tfimp.device.cost import ENCODERS

        row = self.driver._row(parent)
        prunable, density = row["prunable"], self.driver._density(parent)
        nonzeros = max(prunable * density, 1.0)
        fixed = none["flash"] - nonzeros  # the plain model without its int8 non-zeros
        end = density * (1.0 - step) ** self._rounds_left()
        measured = {c["encoding"]: c["flash"] for c in meas.candidates}
        for name in encodings:
            enc = ENCODERS[name]
            per_nonzero = ((measured[name] - fixed - enc.per_weight * prunable) / nonzeros
                           if name in measured else enc.per_nonzero)
            flash = fixed + enc.per_weight * prunable + max(per_nonzero, 0.0) * prunable * end
            if flash <= self.budget.flash:
                return True
        return False

    def _rounds_left(self) -> int:
        """Rounds the run may still train, this one included (retries count as rounds)."""
        history = self.driver.manifest["history"]
        return max(1, self.driver.planned_rounds - (len(history) - 1))

    def _sparse_arenas(self, plain, plain_arena: int) -> dict[str, int]:
        """Per encoding whose flash falls with the zeros, the arena weight rounds would cost
        (cached per architecture)."""
        from tfimp.structure.shrink import shrink

        small = shrink(plain)
        shape = repr([tuple(w.shape) for w in small.weights])
        if shape not in self._decode:
            data = cost.export_int8(small, self.calibration)
            self._decode[shape] = cost.sparse_arenas(data, self.budget, self.calibration,
                                                     plain_arena)
        return self._decode[shape]

    def _unit_masks(self, model, plain, meas: Measurement, over: list, step: float, old: list):
        none = next(c for c in meas.candidates if c["encoding"] == "none")
        table = self.table() if "latency_ms" in over else None
        units = units_lib.Units(plain, latency=table)
        est0 = units.estimate(units.alive)
        limits = self.effective().limits()
        targets = {r: max(limits[r] * (1.0 - SLACK), none[r] * (1.0 - step)) for r in over}

        def predicted(r: str, est: dict) -> float:
            if r == "latency_ms":  # the parent as measured, plus the table's change
                return none[r] + (est["latency_us"] - est0["latency_us"]) / 1000.0
            scale = 1.0 + self.budget.margin if r == "ram" else 1.0
            return none[r] - (est0[r] - est[r]) * scale

        def excess(est: dict) -> dict:
            return {r: predicted(r, est) / t - 1.0 for r, t in targets.items()
                    if predicted(r, est) > t}

        plan = units_lib.plan_cut(units, excess, self._evaluator(plain), self.allocation,
                                  most=max(step, units_lib.STEP_FRACTION))
        removed = int(units.alive.sum() - plan["keep"].sum())
        masks = self._as_weight_masks(model, units, plan["keep"], old)
        info = {"device_action": "units", "device_over": over, "units_removed": removed,
                "units_left": int(plan["keep"][units.prunable].sum()),
                "device_targets": {r: round(t, 6) for r, t in targets.items()},
                "device_predicted": {r: round(predicted(r, units.estimate(plan["keep"])), 6)
                                     for r in targets},
                "device_cut_loss": plan["drop"], "allocation": self.allocation}
        if table is not None:
            info["latency_table"] = table.stats()
        if removed == 0:
            info["device_stuck"] = True
        return masks, info

    def _evaluator(self, plain):
        """How much worse `plain` is as its variables stand now than as they stood here.

        allocation="sensitivity": how far its outputs moved, on up to `EVAL_SAMPLES`
        training inputs: the mean KL divergence of the class probabilities from the parent's
        (the mean squared difference for outputs that are not classes). Sony MCT likewise
        scores sensitivity by a distance on the outputs; the training inputs keep the
        validation data, which judges the accuracy budget, out of the choice of the cut, and
        the distance is informative where the training loss is near zero.
        allocation="loss" (and for data given as a dataset): the validation loss increase.
        """
        if self.allocation != "loss" and self.driver.train.size is not None:
            return _distortion(plain, self._samples(self.driver.train))
        return self._val_loss(plain)

    def _samples(self, split):
        n = min(split.size, EVAL_SAMPLES)
        order = np.random.default_rng(self.driver.cfg.seed).permutation(split.size)[:n]
        return _take(split.x, order)

    def _val_loss(self, plain):
        val = self.driver.val
        n = min(val.size or 0, EVAL_SAMPLES)
        if n:
            order = np.random.default_rng(self.driver.cfg.seed).permutation(val.size)[:n]
            x, y = _take(val.x, order), np.asarray(val.y)[order]

        def loss() -> float:
            if n:
                out = plain.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
            else:
                out = plain.evaluate(val.x, verbose=0, return_dict=True)
            return float(out["loss"])

        # The loss, not the metric: on a few hundred samples a small cut moves the accuracy
        # by 0 or 1 sample, so cuts would tie; the loss ranks them.
        base = loss()
        return lambda: loss() - base

    def _as_weight_masks(self, model, units, keep, old: list) -> list[np.ndarray]:
        from tfimp.sparsity.engine import pruned_layers

        cuts = units.slice_masks(keep)
        wrapped = self.driver._wrap(model, model)
        masks, flat = [], iter(old)
        for w in pruned_layers(wrapped):
            for var, mask in zip(w.pruned_weights, w.get_masks()):
                base = next(flat) if old else np.ones_like(mask)
                cut = cuts.get((w.layer.name, var.path.rsplit("/", 1)[-1]))
                masks.append(base if cut is None else base * cut.reshape(np.shape(base)))
        return masks


def _outputs(model, x) -> list[np.ndarray]:
    import keras

    out = model.predict(x, batch_size=256, verbose=0)
    out = list(out.values()) if isinstance(out, dict) else out
    return [keras.ops.convert_to_numpy(o).astype(np.float64)
            for o in (out if isinstance(out, (list, tuple)) else [out])]


def _as_probabilities(y: np.ndarray) -> np.ndarray | None:
    """Rows of class probabilities (softmax applied to logits); None for other outputs."""
    if y.ndim < 2 or y.shape[-1] < 2:
        return None
    if np.all(y >= 0) and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3):
        return y
    z = np.exp(y - y.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _distortion(model, x):
    """A function that returns how far `model`'s outputs on `x` are from what they are now."""
    base = _outputs(model, x)
    eps = 1e-7

    def distance() -> float:
        total = 0.0
        for b, y in zip(base, _outputs(model, x)):
            p, q = _as_probabilities(b), _as_probabilities(y)
            if p is None:
                total += float(np.mean((y - b) ** 2))
            else:
                kl = np.sum(p * (np.log(p + eps) - np.log(q + eps)), axis=-1)
                total += float(np.mean(kl))
        return total
    return distance


def _take(x, order):
    if isinstance(x, dict):
        return {k: np.asarray(a)[order] for k, a in x.items()}
    return np.asarray(x)[order]


def check_device(device, cfg) -> DevicePolicy:
    """`device` as a `DevicePolicy` for a run with `cfg` (an `IMPConfig`)."""
    from tfimp._util import validate as v

    policy = device if isinstance(device, DevicePolicy) else DevicePolicy(device)
    if cfg.granularity.kind != "weight":
        v.fail("granularity", str(cfg.granularity), "'weight' with `device` (device rounds "
               "remove whole units themselves, then prune single weights)")
    if cfg.strategy != "imp":
        v.fail("strategy", cfg.strategy, "'imp' with `device` (device rounds are IMP rounds)")
    return policy


def choose_round(history: list[dict], dense_metric: float, cfg) -> dict | None:
    """The most accurate round that fits within the accuracy budget; else the nearest miss:
    the round within the accuracy budget closest to fitting, with the resource that binds."""
    rows = [r for r in history if "device" in r]
    if not rows:
        return None
    metric = f"val_{cfg.metric}"

    def within(r) -> bool:
        return cfg.budget is None or cfg.drop(dense_metric, r[metric]) <= cfg.budget + 1e-12

    fitting = [r for r in rows if r["device"]["fits"] and within(r)]
    sign = 1.0 if cfg.higher_better else -1.0
    if fitting:
        best = max(fitting, key=lambda r: (sign * r[metric], -r["device"]["flash"]))
        return {"round": best["round"], "fits": True, "label": "fits",
                **_summary(best, metric)}
    pool = [r for r in rows if within(r)] or rows
    best = min(pool, key=lambda r: max(r["device"]["excess"].values(), default=0.0))
    resource = max(best["device"]["excess"], key=best["device"]["excess"].get)
    ratio = best["device"]["excess"][resource]
    return {"round": best["round"], "fits": False, "label": "nearest miss",
            "binding": resource, "over_by": round(ratio - 1.0, 6), **_summary(best, metric)}


def _summary(row: dict, metric: str) -> dict:
    d = row["device"]
    return {"metric": row[metric], "encoding": d["encoding"], "flash": d["flash"],
            "ram": d["ram"], "latency_ms": d["latency_ms"], "budget": d["budget"]}
