"""Mean ± std over seeds of `tfimp run` reports: the tables of docs/results.md ("Recipes").

Usage:
    for s in 0 1 2; do tfimp run lenet_300_100 data.offline=true seed=$s \
        --workdir runs/results/lenet_300_100-s$s; done
    python bench/recipe_seeds.py runs/results/lenet_300_100-s*/report/report.json
"""

from __future__ import annotations

import json
import statistics
import sys


def _ms(values, scale: float = 1.0, digits: int = 2) -> str:
    if any(isinstance(v, str) for v in values):
        return ", ".join(dict.fromkeys(str(v) for v in values))
    values = [scale * v for v in values if v is not None]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):,.{digits}f} ± {sd:,.{digits}f}"


def _candidate(export: dict, sparse: bool):
    return next((c["bytes"] for c in export["candidates"] if c["sparse"] == sparse), None)


def table(reports: list[dict]) -> str:
    """Markdown tables (accuracy per round; best model; sizes; latency; arena) over seeds."""
    r0 = reports[0]
    lines = [f"**{r0['recipe']['name']}** on {r0['data']['name']}, seeds "
             f"{sorted(r['recipe']['seed'] for r in reports)} (n={len(reports)})", "",
             "| round | sparsity (%) | val accuracy (%) |", "|---|---|---|"]
    rounds = min(len(r["history"]) for r in reports)
    for i in range(rounds):
        rows = [r["history"][i] for r in reports]
        lines.append(f"| {i} | {_ms([x['sparsity'] for x in rows], 100, 1)} | "
                     f"{_ms([x['val_accuracy'] for x in rows], 100)} |")
    best = [r["best_round"] for r in reports]
    lines += ["", f"| metric (budget {r0['budget']:g}) | mean ± std |", "|---|---|",
              f"| dense accuracy (%) | {_ms([r['dense_metric'] for r in reports], 100)} |",
              f"| best sparsity within budget (%) | "
              f"{_ms([b['sparsity'] for b in best], 100, 1)} |",
              f"| accuracy at that sparsity (%) | "
              f"{_ms([r['best_metric'] for r in reports], 100)} |"]
    ex = [{e["target"]: e for e in r["exports"]} for r in reports]
    size_rows = [
        ("float32 .tflite, dense encoding (bytes)", [_candidate(e["float32"], False) for e in ex]),
        ("float32 .tflite, sparse encoding (bytes)", [_candidate(e["float32"], True) for e in ex]),
        ("int8 .tflite, chosen encoding (bytes)", [e["int8"]["bytes"] for e in ex]),
        ("int8 .tflite, gzip -9 (bytes)", [e["int8"]["gzip_bytes"] for e in ex]),
        ("TFLite Micro arena, int8 (bytes)", [(r.get("micro") or {}).get("arena_bytes")
                                             for r in reports]),
    ]
    if "float16" in ex[0]:
        size_rows.insert(-2, ("float16 .tflite, chosen encoding (bytes)",
                              [e["float16"]["bytes"] for e in ex]))
    if r0.get("smallest_litert"):
        size_rows.append(("smallest verified LiteRT file (bytes)",
                          [r["smallest_litert"]["bytes"] for r in reports]))
    size_rows += _micro_rows(reports)
    if "dense_float32" in ex[0]:
        size_rows.insert(0, ("float32 .tflite, dense round-0 model (bytes)",
                             [e["dense_float32"]["bytes"] for e in ex]))
    if "dense_int8" in ex[0]:
        size_rows.insert(1, ("int8 .tflite, dense round-0 model (bytes)",
                             [e["dense_int8"]["bytes"] for e in ex]))
        size_rows.append(("TFLite Micro arena, dense int8 (bytes)",
                          [(r.get("micro") or {}).get("dense_arena_bytes") for r in reports]))
    lines += [f"| {name} | {_ms(values, digits=0)} |" for name, values in size_rows]
    for target in sorted({x["target"] for x in r0["latency"]}):
        for threads in sorted({x["threads"] for x in r0["latency"]}):
            values = [x["median_us"] for r in reports for x in r["latency"]
                      if x["target"] == target and x["threads"] == threads]
            lines.append(f"| LiteRT median latency, {target}, {threads} thread(s) (us) | "
                         f"{_ms(values, digits=1)} |")
    return "\n".join(lines)


def _micro_rows(reports: list[dict]) -> list[tuple[str, list]]:
    """Flash and arena of each TFLite Micro encoding tried (dense int8, pruning, LUT, ...)."""
    compressions = [(r.get("micro") or {}).get("compression") for r in reports]
    if not all(compressions):
        return []
    rows = []
    for enc in compressions[0]["encodings"]:
        same = [next((e for e in c["encodings"] if e["name"] == enc["name"]), {})
                for c in compressions]
        for field in ("flash_bytes", "arena_bytes"):
            rows.append((f"TFLite Micro {enc['name']}: {field.replace('_', ' ')}",
                         [e.get(field) for e in same]))
    rows.append(("TFLite Micro encoding written", [c["written"] for c in compressions]))
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    reports = []
    for path in argv:
        with open(path) as f:
            reports.append(json.load(f))
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
