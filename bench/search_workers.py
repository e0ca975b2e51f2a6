"""Wall time of one `tfimp search` with 1 worker and with W worker processes, in one run.

The same study twice (same recipe, space, seed, so the same trials: values are sampled with
a seed per slot), each in a fresh folder with its own SQLite storage; prints both wall times
and their ratio, and writes them as JSON.

    python bench/search_workers.py --trials 12 --workers 2 --out bench/results/search_workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _search(workdir: Path, trials: int, workers: int, recipe: str, space: list[str]) -> float:
    cmd = [sys.executable, "-m", "tfimp.cli", "search", recipe, "--smoke", "--trials",
           str(trials), "--workers", str(workers), "--workdir", str(workdir), *space]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    report = json.loads((workdir / "report" / "search.json").read_text())
    states = [t["state"] for t in report["trials"]]
    if states != ["complete"] * trials:
        raise SystemExit(f"{workdir}: trials not all complete: {states}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="lenet_300_100")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--space", nargs="*", default=[],
                   help="space changes passed to tfimp search (KEY=A,B ...)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        serial = _search(Path(tmp) / "serial", args.trials, 1, args.recipe, args.space)
        print(f"1 worker: {serial:.1f} s", flush=True)
        parallel = _search(Path(tmp) / "parallel", args.trials, args.workers, args.recipe,
                           args.space)
        print(f"{args.workers} workers: {parallel:.1f} s", flush=True)
    result = {"recipe": args.recipe, "trials": args.trials, "workers": args.workers,
              "space": args.space, "serial_s": round(serial, 1),
              "parallel_s": round(parallel, 1), "ratio": round(parallel / serial, 3),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
              "load_before": [round(x, 1) for x in load_before],
              "load_after": [round(x, 1) for x in os.getloadavg()],
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"ratio {result['ratio']:.3f} ({args.workers} workers / 1 worker)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
