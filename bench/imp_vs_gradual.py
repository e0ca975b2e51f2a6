"""IMP against gradual magnitude pruning at equal training epochs, several seeds.

For each recipe and seed: a dense reference trained for the gradual run's epochs (every drop
below is measured against it), then each row of `ROWS`:

- gradual rows run once per target sparsity (tfmot's PolynomialDecay values: cubic from 0 to
  the target over the first half of the epochs, from scratch), each costing `--gradual-epochs`;
- IMP rows run once and pass through every sparsity, costing their whole budget
  (`--imp-epochs`, default 2x the gradual run's).

Columns: epochs, accuracy at the first round at or above 90/95/97/98% sparsity, the sparsest
model within 0.5 and 1 point of the dense reference, wall time, and the int8 / TFLite Micro
bytes of the model chosen within 1 point. Mean ± std over seeds; JSON with every run.

    python bench/imp_vs_gradual.py --recipes lenet_300_100 mnist1d_cnn lenet5 --seeds 0 1 2
    python bench/imp_vs_gradual.py --recipes lenet_300_100 --rows gradual budgeted --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.pipeline import runner  # noqa: E402
from tfimp.pipeline.recipe import load_recipe  # noqa: E402

TARGETS = (0.90, 0.95, 0.97, 0.98)

# Named rows: IMPConfig overrides on top of the recipe's own `imp` section. "{E}" is the
# IMP budget in epochs.
ROWS = {
    "gradual": {"strategy": "gradual", "rewind": "init", "scope": "global"},
    # tfmot itself in its own virtualenv (TFIMP_TFMOT_PYTHON); LeNet-300-100 only.
    "tfmot-gradual": {"tfmot": True},
    "gradual-2x": {"strategy": "gradual", "rewind": "init", "scope": "global",
                   "total_epochs": "{E}"},
    "imp-classic": {"total_epochs": None, "epochs_per_round": 20, "rounds": 16, "rate": 0.2,
                    "rewind": "lr", "scope": "global"},
    "budgeted": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "allr"},
    "budgeted-lr": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "lr"},
    "budgeted-init": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "init"},
    "budgeted-finetune": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "none"},
    "budgeted-small-steps": {"total_epochs": "{E}", "rate": 0.2, "rounds": 18,
                             "rewind": "allr"},
    "budgeted-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "allr",
                      "scope": "lamp"},
    "budgeted-erk": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "allr",
                     "scope": "erk"},
    "budgeted-layer": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "allr",
                       "scope": "layer"},
    "budgeted-lr-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "lr",
                         "scope": "lamp"},
    "budgeted-lr-lamp-10": {"total_epochs": "{E}", "rate": 0.3, "rounds": 10, "rewind": "lr",
                            "scope": "lamp"},
    "budgeted-lr-lamp-long-dense": {"total_epochs": "{E}", "dense_epochs": "{E/2}",
                                    "rate": 0.45, "rounds": 6, "rewind": "lr",
                                    "scope": "lamp"},
    "budgeted-allr-lamp-long-dense": {"total_epochs": "{E}", "dense_epochs": "{E/2}",
                                      "rate": 0.45, "rounds": 6, "rewind": "allr",
                                      "scope": "lamp"},
    "cyclic-lr": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "lr",
                  "ramp": 0.5},
    "cyclic-lr-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "lr",
                       "ramp": 0.5, "scope": "lamp"},
    "cyclic-allr-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "allr",
                         "ramp": 0.5, "scope": "lamp"},
    "cyclic-ft-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "none",
                       "ramp": 0.5, "scope": "lamp"},
    # weight rewinding (Frankle et al. 2020): each round restarts from the weights after the
    # first dense epoch, with the round's schedule
    "cyclic-wr-lamp": {"total_epochs": "{E}", "rate": 0.45, "rounds": 6, "rewind": "epoch",
                       "rewind_at": 1, "ramp": 0.5, "scope": "lamp"},
    "cyclic-lr-lamp-8": {"total_epochs": "{E}", "rate": 0.36, "rounds": 8, "rewind": "lr",
                         "ramp": 0.75, "scope": "lamp"},
    "adaptive-cyclic": {"total_epochs": "{E}", "rate": "adaptive", "rounds": None,
                        "rewind": "allr", "scope": "lamp", "ramp": 0.5,
                        "target_sparsity": None},
    "adaptive": {"total_epochs": "{E}", "rate": "adaptive", "rounds": None, "rewind": "allr",
                 "target_sparsity": None},
    "adaptive-lamp": {"total_epochs": "{E}", "rate": "adaptive", "rounds": None,
                      "rewind": "allr", "scope": "lamp", "target_sparsity": None},
    "adaptive-lr-lamp": {"total_epochs": "{E}", "rate": "adaptive", "rounds": None,
                         "rewind": "lr", "scope": "lamp", "target_sparsity": None},
}


def _overrides(row: str, imp_epochs: int, extra: dict) -> dict:
    out = {}
    for key, value in {**ROWS[row], **extra}.items():
        out[key] = {"{E}": imp_epochs, "{E/2}": imp_epochs // 2}.get(value, value) \
            if isinstance(value, str) else value
    return out


def _imp_kwargs(recipe, overrides: dict) -> dict:
    import dataclasses

    base = dataclasses.replace(recipe.imp, seed=recipe.seed, stop_at_budget=False,
                               final_qat_epochs=0)
    return {"config": tfimp.IMPConfig.from_kwargs(base, **overrides)}


def _fit_dense(recipe, data, epochs: int, workdir: str):
    """The dense reference: the recipe's model trained `epochs` epochs (a 0-round IMP run)."""
    cfg = {"rounds": 0, "dense_epochs": epochs, "target_sparsity": None, "total_epochs": None,
           "strategy": "imp", "rate": 0.2, "budget": None}
    # A run without rounds does not fit the learning-rate schedule to its length: the
    # recipe's cosine decay spans `epochs_per_round`, so it is set to the dense epochs.
    recipe = recipe.override(f"imp.epochs_per_round={epochs}")
    result = tfimp.imp(runner.make_builder(recipe, data), (data.x_train, data.y_train),
                       (data.x_test, data.y_test), workdir=workdir, verbose=0,
                       **_imp_kwargs(recipe, cfg))
    return result.model(0), result.history[0]


def _device(model, data, folder: Path) -> dict:
    """int8 file bytes (the smaller of dense and sparse encodings) and TFLite Micro flash
    and arena (the smallest encoding that verifies)."""
    folder.mkdir(parents=True, exist_ok=True)
    rep = data.x_train[:256]
    art = tfimp.export.to_tflite(model, str(folder / "sparse.tflite"), quantization="int8",
                                 representative_data=rep, sparse="auto")
    plain = folder / "micro.tflite"
    tfimp.export.to_tflite(model, str(plain), representative_data=rep,
                           quantization=tfimp.export.Int8(integer_io=True))
    out = {"int8_bytes": len(art.model_bytes)}
    try:
        micro = tfimp.export.to_micro(str(plain), str(folder / "micro"), compression="auto")
    except tfimp.TfimpError as e:  # recorded: a result to look into, not a reason to stop
        return {**out, "micro_error": str(e).splitlines()[0]}
    return {**out, "micro_flash": micro.model_bytes, "micro_arena": micro.arena_bytes,
            "micro_encoding": micro.compression}


def _tfmot(data, epochs: int, seed: int, workdir: str) -> list[tuple[float, float]]:
    """tfmot's gradual pruning, run by `bench/tfmot_gradual.py` in tfmot's virtualenv."""
    import subprocess
    import sys

    python = os.environ.get("TFIMP_TFMOT_PYTHON")
    if not python:
        sys.exit("the tfmot-gradual row needs TFIMP_TFMOT_PYTHON: a python with tf-keras and "
                 "tensorflow-model-optimization==0.8.1")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    npz, out = Path(workdir) / "data.npz", Path(workdir) / "tfmot.json"
    np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    script = Path(__file__).with_name("tfmot_gradual.py")
    subprocess.run([python, str(script), str(npz), str(out), "--epochs", str(epochs),
                    "--seed", str(seed), "--targets", *map(str, TARGETS)], check=True)
    return [(r["sparsity"], r["accuracy"]) for r in json.loads(out.read_text())["runs"]]


def _summary(points: list[tuple[float, float]], dense: float) -> dict:
    """points: (sparsity, accuracy). Accuracy at the first point at or above each target,
    and the sparsest point within 0.5 / 1 point of `dense`."""
    points = sorted(points)
    out = {}
    for t in TARGETS:
        above = [acc for s, acc in points if s >= t - 1e-3]
        out[f"acc@{t:.2f}"] = above[0] if above else None
    for budget in (0.005, 0.01):
        ok = [s for s, acc in points if dense - acc <= budget + 1e-9]
        out[f"sparsest@{budget}"] = max(ok) if ok else 0.0
    return out


def run_row(row, recipe, data, dense_model, dense_acc, imp_epochs, gradual_epochs, extra,
            workdir, device: bool = True) -> dict:
    start = time.time()
    build = runner.make_builder(recipe, data)
    train, val = (data.x_train, data.y_train), (data.x_test, data.y_test)
    if ROWS[row].get("tfmot"):
        points, epochs = _tfmot(data, gradual_epochs, recipe.seed, workdir), None
        out = {"row": row, "epochs": len(TARGETS) * gradual_epochs,
               "epochs_per_model": gradual_epochs, "seconds": round(time.time() - start, 1),
               "points": points, **_summary(points, dense_acc)}
        return out
    if ROWS[row].get("strategy") == "gradual":
        points, epochs, models = [], 0, {}
        run_epochs = imp_epochs if ROWS[row].get("total_epochs") else gradual_epochs
        for t in TARGETS:
            ov = _overrides(row, imp_epochs, {"total_epochs": run_epochs,
                                              "target_sparsity": t, "rounds": None, **extra})
            result = tfimp.imp(build, train, val, initial_model=dense_model, workdir=workdir,
                               verbose=0, **_imp_kwargs(recipe, ov))
            last = result.history[-1]
            points.append((last["sparsity"], last["val_accuracy"]))
            models[last["sparsity"]] = (result, last["round"])
            epochs += last["epochs"]
        per_run = run_epochs
    else:
        ov = _overrides(row, imp_epochs, extra)
        result = tfimp.imp(build, train, val, workdir=workdir, verbose=0,
                           **_imp_kwargs(recipe, ov))
        rows = [h for h in result.history if h["round"] > 0]
        points = [(h["sparsity"], h["val_accuracy"]) for h in rows]
        models = {h["sparsity"]: (result, h["round"]) for h in rows}
        epochs = per_run = sum(h["epochs"] for h in result.history)
    out = {"row": row, "epochs": epochs, "epochs_per_model": per_run,
           "seconds": round(time.time() - start, 1), "points": points,
           **_summary(points, dense_acc)}
    chosen = out["sparsest@0.01"]
    if chosen > 0 and device:
        result, r = models[chosen]
        out["device"] = _device(result.model(r), data, Path(workdir) / f"device-{row}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["lenet_300_100"])
    parser.add_argument("--rows", nargs="+", default=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--gradual-epochs", type=int, default=None,
                        help="the gradual run's epochs (default: the recipe's "
                             "imp.total_epochs / 2, else 40)")
    parser.add_argument("--imp-epochs", type=int, default=None,
                        help="the IMP budget (default: 2x the gradual run's)")
    parser.add_argument("--set", nargs="*", default=[], help="imp overrides for every row "
                        "(key=value, parsed as JSON when possible)")
    parser.add_argument("--out", default="bench/results/imp_vs_gradual.json")
    parser.add_argument("--no-device", action="store_true",
                        help="skip the int8 / TFLite Micro measurement of the chosen models")
    args = parser.parse_args()
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    results = []
    for name in args.recipes:
        recipe = load_recipe(name).override("data.offline=true")
        data = runner.load_data(recipe)
        total = recipe.imp.total_epochs
        gradual_epochs = args.gradual_epochs or (total // 2 if total else 40)
        imp_epochs = args.imp_epochs or 2 * gradual_epochs
        for seed in args.seeds:
            recipe_s = recipe.override(seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                dense, row0 = _fit_dense(recipe_s, data, gradual_epochs, f"{tmp}/dense")
                dense_acc = row0["val_accuracy"]
                print(f"{name} seed {seed}: dense {dense_acc:.4f} ({gradual_epochs} epochs)",
                      flush=True)
                for row in args.rows:
                    out = run_row(row, recipe_s, data, dense, dense_acc, imp_epochs,
                                  gradual_epochs, extra, f"{tmp}/{row}", not args.no_device)
                    out.update(recipe=name, seed=seed, dense=dense_acc)
                    results.append(out)
                    print(json.dumps({k: v for k, v in out.items() if k != "points"}),
                          flush=True)
                    _save(args.out, results)
    print(table(results))


def _save(path: str, results: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.platform()}, {platform.processor() or 'cpu'}, "
                       f"{os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"), "argv": " ".join(os.sys.argv)}
    Path(path).write_text(json.dumps({"meta": meta, "runs": results}, indent=1))


def table(results: list[dict]) -> str:
    lines = ["| recipe | row | epochs | " + " | ".join(f"acc @{int(t * 100)}%" for t in TARGETS)
             + " | sparsest within 0.5 pt | within 1 pt | wall s | int8 B | TFLM flash B |"
             " TFLM arena B |", "|---" * (9 + len(TARGETS)) + "|"]
    keys = sorted({(r["recipe"], r["row"]) for r in results}, key=lambda k: (k[0], k[1]))

    def ms(values, pct=True, fmt="{:.2f}"):
        values = [v for v in values if v is not None]
        if not values:
            return "—"
        a = np.array(values, dtype=float) * (100 if pct else 1)
        return (fmt + " ± " + fmt).format(a.mean(), a.std())

    for recipe, row in keys:
        rs = [r for r in results if r["recipe"] == recipe and r["row"] == row]
        dev = [r.get("device", {}) for r in rs]
        lines.append(
            f"| {recipe} | {row} | {rs[0]['epochs_per_model']} | "
            + " | ".join(ms([r[f"acc@{t:.2f}"] for r in rs]) for t in TARGETS)
            + f" | {ms([r['sparsest@0.005'] for r in rs])} | {ms([r['sparsest@0.01'] for r in rs])}"
            f" | {ms([r['seconds'] for r in rs], False, '{:.0f}')}"
            f" | {ms([d.get('int8_bytes') for d in dev], False, '{:.0f}')}"
            f" | {ms([d.get('micro_flash') for d in dev], False, '{:.0f}')}"
            f" | {ms([d.get('micro_arena') for d in dev], False, '{:.0f}')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
