"""Device-budget runs (`imp(..., device=budget)`) against uniform per-layer allocation.

For each recipe, board and seed: the recipe's own budgeted IMP config, run with a device
budget twice, once choosing each round's unit cuts by accuracy sensitivity per byte
("sensitivity") and once cutting the same share of every layer ("uniform"). Both stop at the
first round that fits the board as measured (TFLite Micro flash and arena, or LiteRT latency),
so they are compared at (nearly) equal bytes. Every fitting model is exported again and
checked with `tfimp.export.to_micro(..., board=...)` (TFLite Micro) or timed with LiteRT.

    python bench/device_budget.py --recipes lenet_300_100 --boards cortex-m0plus-32k \
        --seeds 0 1 2 --out bench/results/device_budget.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tfimp.device import budget_for, parse_budget  # noqa: E402
from tfimp.device import cost  # noqa: E402
from tfimp.device.policy import DevicePolicy  # noqa: E402
from tfimp.lottery.driver import imp  # noqa: E402
from tfimp.pipeline import runner  # noqa: E402
from tfimp.pipeline.recipe import load_recipe  # noqa: E402


def _budget(board: str, recipe, data, seed: int):
    """A board's budget; "half-latency" is half the dense int8 LiteRT latency here;
    "budget:SPEC" a `--budget` string; "flash-share:F" a flash budget of F times the dense
    int8 model's bytes with the plain encoding only, so every round removes units (the
    allocation comparison: both allocations aim at the same bytes)."""
    if board.startswith("budget:"):
        return parse_budget(board.split(":", 1)[1])
    if board.startswith("flash-share:"):
        share = float(board.split(":", 1)[1])
        dense = runner.make_builder(recipe, data)()
        size = len(cost.export_int8(dense, data.x_train))
        return parse_budget(f"flash={int(share * size)},encodings=none")
    if board != "half-latency":
        return budget_for(board)
    dense = runner.make_builder(recipe, data)()
    one = parse_budget("latency=1000ms,runtime=litert")
    ms = cost.measure(dense, one, data.x_train).latency_ms
    return budget_for("local-litert", latency_ms=round(ms / 2, 4))


def _check(result, budget, data, workdir: Path) -> dict:
    """The chosen round exported again and measured on its artefact."""
    from tfimp.export import to_micro
    from tfimp.structure.shrink import shrink

    choice = result.device
    model = shrink(result.model(choice["round"]))
    blob = cost.export_int8(model, data.x_train)
    out = {"params": int(model.count_params())}
    if budget.runtime == "tflm" and choice["fits"]:
        comp = "none" if choice["encoding"] == "none" else choice["encoding"]
        art = to_micro(blob, workdir / "micro", inputs=data.x_test[:64],
                       compression=None if comp == "none" else comp, board=budget.name)
        out.update(checked_flash=art.model_bytes, checked_arena=art.arena_size,
                   checked_fits=True)
    elif budget.runtime == "litert":
        ms = cost.latency_ms(blob, budget)
        out.update(checked_latency_ms=ms, checked_fits=ms <= budget.latency_ms)
    return out


def run_one(recipe_name: str, board: str, seed: int, allocation: str, root: Path,
            sets: tuple[str, ...] = ()) -> dict:
    recipe = load_recipe(recipe_name).override(*sets)
    recipe = dataclasses.replace(recipe, seed=seed,
                                 data=dataclasses.replace(recipe.data, offline=True))
    data = runner.load_data(recipe)
    budget = _budget(board, recipe, data, seed)
    cfg = dataclasses.replace(recipe.imp, seed=seed)
    workdir = root / f"{recipe_name}-{board.replace(':', '-')}-{seed}-{allocation}"
    t0 = time.time()
    result = imp(runner.make_builder(recipe, data), (data.x_train, data.y_train),
                 (data.x_test, data.y_test), cfg, workdir=str(workdir), verbose=0,
                 device=DevicePolicy(budget, allocation))
    spent = sum(h["epochs"] for h in result.history)
    row = {"recipe": recipe_name, "board": board, "seed": seed, "allocation": allocation,
           "set": list(sets),
           "budget": budget.limits(), "dense": result.dense_metric, "epochs": spent,
           "plain_budgeted_epochs": cfg.total_epochs, "seconds": round(time.time() - t0, 1),
           "choice": result.device,
           "rounds": [{k: h.get(k) for k in ("round", "val_accuracy", "epochs",
                                             "device_action", "units_removed", "units_left")}
                      | {"measured": {k: h["device"][k] for k in
                                      ("flash", "ram", "latency_ms", "encoding", "fits")}}
                      for h in result.history]}
    row.update(_check(result, budget, data, workdir))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["lenet_300_100"])
    p.add_argument("--boards", nargs="+", default=["cortex-m0plus-32k"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--allocations", nargs="+", default=["sensitivity", "uniform"])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="recipe overrides, as for `tfimp run` (e.g. data.kwargs.num_train=2048)")
    p.add_argument("--out", default="bench/results/device_budget.json")
    p.add_argument("--table", nargs="+", metavar="JSON",
                   help="print the markdown table of these result files and exit")
    args = p.parse_args()
    if args.table:
        print(table([r for f in args.table for r in json.loads(Path(f).read_text())["runs"]]))
        return
    root = Path(tempfile.mkdtemp(prefix="tfimp-device-"))
    out = Path(args.out)
    rows = json.loads(out.read_text())["runs"] if out.exists() else []
    done = {(r["recipe"], r["board"], r["seed"], r["allocation"]) for r in rows}
    for name in args.recipes:
        for board in args.boards:
            for seed in args.seeds:
                for allocation in args.allocations:
                    if (name, board, seed, allocation) in done:
                        continue
                    row = run_one(name, board, seed, allocation, root, tuple(args.set))
                    rows.append(row)
                    c = row["choice"]
                    print(f"{name} {board} seed {seed} {allocation}: {c['label']} "
                          f"acc {c['metric']:.4f} (dense {row['dense']:.4f}) flash {c['flash']} "
                          f"ram {c['ram']} latency {c['latency_ms']} epochs {row['epochs']}",
                          flush=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps({
                        "machine": f"{platform.machine()} {os.cpu_count()} cpus, "
                                   f"{platform.platform()}",
                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "runs": rows}, indent=1, default=float))
    summarize(rows)


def _ms(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def table(rows: list[dict]) -> str:
    """Mean ± std over seeds per recipe, budget and allocation (accuracy in fractions)."""
    lines = ["| model | budget | allocation | fits (checked) | accuracy | dense | drop (pt) | "
             "flash B | arena B | latency ms | epochs (plain budgeted) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["recipe"], r["board"], r["allocation"]) for r in rows})
    for recipe, board, allocation in keys:
        sel = [r for r in rows if (r["recipe"], r["board"], r["allocation"]) ==
               (recipe, board, allocation)]
        c = [r["choice"] for r in sel]
        fits = sum(x["fits"] for x in c)
        checked = sum(bool(r.get("checked_fits")) for r in sel)
        drop = [100 * (r["dense"] - x["metric"]) for r, x in zip(sel, c)]
        limits = ", ".join(f"{k} {v:g}" for k, v in sel[0]["budget"].items())
        lat = [x["latency_ms"] for x in c if x["latency_ms"] is not None]
        ram = [x["ram"] for x in c if x["ram"] is not None]
        ram_cell = f"{np.mean(ram):,.0f}" if ram else "-"
        lat_cell = f"{np.mean(lat):.4f}" if lat else "-"
        lines.append(
            f"| {recipe} | {board} ({limits}) | {allocation} | {fits}/{len(sel)} ({checked}) | "
            f"{_ms([x['metric'] for x in c])} | {np.mean([r['dense'] for r in sel]):.4f} | "
            f"{np.mean(drop):+.2f} | {np.mean([x['flash'] for x in c]):,.0f} | {ram_cell} | "
            f"{lat_cell} | {np.mean([r['epochs'] for r in sel]):.1f} "
            f"({sel[0]['plain_budgeted_epochs']}) |")
    return "\n".join(lines)


def summarize(rows: list[dict]) -> None:
    keys = sorted({(r["recipe"], r["board"], r["allocation"]) for r in rows})
    for key in keys:
        sel = [r for r in rows if (r["recipe"], r["board"], r["allocation"]) == key]
        acc = [r["choice"]["metric"] for r in sel]
        drop = [r["dense"] - r["choice"]["metric"] for r in sel]
        print(f"{key}: fits {sum(r['choice']['fits'] for r in sel)}/{len(sel)} "
              f"acc {np.mean(acc):.4f}±{np.std(acc):.4f} drop {np.mean(drop):+.4f} "
              f"flash {np.mean([r['choice']['flash'] for r in sel]):.0f} "
              f"epochs {np.mean([r['epochs'] for r in sel]):.1f}")


if __name__ == "__main__":
    main()
