"""Flash, arena and instructions per inference on an emulated Cortex-M4 for the default
LeNet-300-100 run: dense int8, TFLite Micro's DECODE pruning, and tfimp's sparse
FULLY_CONNECTED kernel, with TFLite Micro's reference kernels and with CMSIS-NN.

Each encoding becomes a micro bundle (`tfimp.bundle.build(..., "micro", compression=...)`),
compiled with `arm-none-eabi-g++` against a prebuilt TFLite Micro library and run under
`qemu-system-arm -M mps2-an386 -icount shift=0` on random inputs; the runner's outputs must
equal the Python TFLite Micro interpreter's bit for bit (`tfimp.bundle.tflm_build`).
Instruction counts come from QEMU's instruction counter read through SysTick (to within 40);
they are not cycles: a Cortex-M4 takes 1 to 12+ cycles per instruction, plus wait states.

    python bench/micro_sparse.py --tflm-dir TFLM [--cmsis-library GEN_DIR] [--model M.tflite]

Without --model, `tfimp run lenet_300_100` (the default recipe) runs first and its dense int8
micro model (97% of the weights zero) is used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfimp.bundle import build, read_manifest
from tfimp.bundle import tflm_build as tb

ENCODINGS = {"dense int8": None, "DECODE pruning": "pruning", "sparse kernel": "sparse"}
RESULTS = Path(__file__).parent / "results" / "micro_sparse.json"
TARGETS = {"flash_bytes": 60_000, "arena_vs_dense": 1.2, "instructions_vs_dense": 0.5}


def run_model(workdir: Path) -> Path:
    """The dense int8 micro model of the default LeNet-300-100 run."""
    subprocess.run([sys.executable, "-m", "tfimp.cli", "run", "lenet_300_100", "--workdir",
                    str(workdir)], check=True)
    return workdir / "report" / "models" / "lenet_300_100_int8_micro.tflite"


def measure(model: Path, folder: Path, encoding, libraries: dict, tflm_dir, samples: int):
    bundle = build(model, "micro", folder, compression=encoding, profile=False)
    micro = read_manifest(bundle)["micro"]
    xs = tb.random_inputs(bundle, samples, seed=0)
    rows = {}
    for kernels, library in libraries.items():
        run = tb.run_bundle(bundle, xs, "cortex-m4", tflm_dir, library)
        tb.check_bit_exact(bundle, xs, run)
        rows[kernels] = {"instructions": int(np.median(run.instructions)),
                         "instructions_all": list(run.instructions),
                         "arena_used_bytes": run.arena_used,
                         "program_flash_bytes": run.flash_bytes, "bit_exact": True,
                         "run_seconds": round(run.seconds_run, 1)}
    return {"model_flash_bytes": micro["flash_bytes"],
            "arena_bytes_python": micro["arena_bytes_measured"],
            "ops": micro["ops"], "kernels": rows}


def table(results: dict) -> str:
    dense = results["encodings"]["dense int8"]["kernels"]["reference"]
    lines = ["| encoding | kernels | model flash B | arena B (Cortex-M4) | arena B (Python "
             "TFLM, x86-64) | instructions / inference | vs dense int8 reference | program "
             "flash B |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["encodings"].items():
        for kernels, k in r["kernels"].items():
            ratio = k["instructions"] / dense["instructions"]
            lines.append(f"| {name} | {kernels} | {r['model_flash_bytes']:,} | "
                         f"{k['arena_used_bytes']:,} | {r['arena_bytes_python']:,} | "
                         f"{k['instructions']:,} | {ratio:.3f}x | "
                         f"{k['program_flash_bytes']:,} |")
    return "\n".join(lines)


def verdict(results: dict) -> dict:
    dense = results["encodings"]["dense int8"]
    sparse = results["encodings"]["sparse kernel"]
    d, s = dense["kernels"]["reference"], sparse["kernels"]["reference"]
    return {"flash_bytes": sparse["model_flash_bytes"],
            "flash_ok": sparse["model_flash_bytes"] <= TARGETS["flash_bytes"],
            "arena_vs_dense": s["arena_used_bytes"] / d["arena_used_bytes"],
            "arena_ok": s["arena_used_bytes"] <= TARGETS["arena_vs_dense"] * d["arena_used_bytes"],
            "instructions_vs_dense": s["instructions"] / d["instructions"],
            "instructions_ok": s["instructions"] <= TARGETS["instructions_vs_dense"]
            * d["instructions"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tflm-dir", default=os.environ.get("TFIMP_TFLM_DIR"),
                   help="TFLite Micro tree with the Cortex-M4F reference library built")
    p.add_argument("--cmsis-library", help="gen/ folder of a CMSIS-NN Cortex-M4F build")
    p.add_argument("--model", help="dense int8 .tflite (default: run the default recipe)")
    p.add_argument("--samples", type=int, default=5, help="random inputs per run")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if not args.tflm_dir:
        p.error("set --tflm-dir or TFIMP_TFLM_DIR")
    start = time.time()
    work = Path(tempfile.mkdtemp(prefix="micro-sparse-"))
    model = Path(args.model) if args.model else run_model(work / "run")
    libraries = {"reference": None}
    if args.cmsis_library:
        libraries["CMSIS-NN"] = args.cmsis_library
    results = {"command": "python bench/micro_sparse.py " + " ".join(argv or sys.argv[1:]),
               "date": datetime.date.today().isoformat(),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                          f"{platform.platform()}",
               "model": str(model), "model_bytes": model.stat().st_size,
               "qemu": "qemu-system-arm -M mps2-an386 -icount shift=0 (SysTick, +-40 insns)",
               "note": "instruction counts are not cycles", "encodings": {}}
    for name, encoding in ENCODINGS.items():
        folder = work / (encoding or "none")
        results["encodings"][name] = measure(model, folder, encoding, libraries,
                                             args.tflm_dir, args.samples)
        print(f"{name}: done ({time.time() - start:.0f} s)", flush=True)
    results["targets"] = TARGETS
    results["verdict"] = verdict(results)
    results["seconds"] = round(time.time() - start)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(json.dumps(results["verdict"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
