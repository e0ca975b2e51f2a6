"""Runs one .tflite model in LiteRT or TFLite Micro, in a process of its own.

A damaged model can crash a native interpreter; running it here keeps the caller alive. Run
as a plain script: `python _child.py litert|tflm DIR [ARENA_BYTES]`; it needs only the standard
library, numpy and the runtime. DIR holds `model.tflite` and `inputs.npz` (arrays `x0`,
`x1`, ... batch first, as floats or already in the model's input type); the script writes
`outputs.npz` (`raw0`, ..., `deq0`, ...) and `result.json`, or `error.json` when the runtime
refuses the model.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

_CHUNK = 256


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float inputs to the model's integer input type with its scale and zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or np.asarray(x).dtype.kind in "iu":
        return np.asarray(x).astype(dtype)
    scales, zps = _qparams(detail)
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float64) / scales[0] + zps[0])
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """Integer outputs back to real values; float outputs unchanged."""
    if np.dtype(detail["dtype"]).kind not in "iu":
        return np.asarray(q, np.float32)
    scales, zps = _qparams(detail)
    if scales.size == 0:
        return np.asarray(q, np.float32)
    return ((np.asarray(q, np.float64) - zps[0]) * scales[0]).astype(np.float32)


def _qparams(detail: dict) -> tuple[np.ndarray, np.ndarray]:
    qp = detail.get("quantization_parameters") or {}
    return np.asarray(qp.get("scales", [])), np.asarray(qp.get("zero_points", []))


def _describe(details: list[dict]) -> list[dict]:
    out = []
    for d in details:
        scales, zps = _qparams(d)
        out.append({"shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                    "scale": float(scales[0]) if scales.size else None,
                    "zero_point": int(zps[0]) if zps.size else None})
    return out


def run_litert(model: bytes, xs: list[np.ndarray], builtin: bool = False
               ) -> tuple[list, list, dict]:
    """Outputs of the default LiteRT interpreter (XNNPACK included) for batch-first inputs;
    `builtin` runs LiteRT's own kernels instead, whose integer arithmetic TFLite Micro's
    reference kernels share (XNNPACK rounds int8 differently)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin
                else OpResolverType.AUTO)
    interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    ins = interp.get_input_details()
    n = len(xs[0])
    resizable = all(len(d["shape_signature"]) and d["shape_signature"][0] == -1 for d in ins)
    step = min(n, _CHUNK) if resizable else int(ins[0]["shape"][0])
    if resizable:
        for d, x in zip(ins, xs):
            interp.resize_tensor_input(d["index"], [step, *x.shape[1:]])
        interp.allocate_tensors()
        ins = interp.get_input_details()
    outs = interp.get_output_details()
    raw: list[list] = [[] for _ in outs]
    for start in range(0, n, step):
        stop = min(start + step, n)
        for d, x in zip(ins, xs):
            batch = x[start:stop]
            if len(batch) < step:
                pad = np.zeros((step - len(batch), *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            interp.set_tensor(d["index"], quantize(batch, d).reshape(d["shape"]))
        interp.invoke()
        for r, d in zip(raw, outs):
            r.append(np.array(interp.get_tensor(d["index"]))[: stop - start])
    raw_out = [np.concatenate(r) for r in raw]
    info = {"inputs": _describe(ins), "outputs": _describe(outs)}
    return raw_out, [dequantize(r, d) for r, d in zip(raw_out, outs)], info


def run_tflm(model: bytes, xs: list[np.ndarray], arena: int) -> tuple[list, list, dict]:
    """Outputs of the TFLite Micro interpreter, one sample at a time; arena use to stderr."""
    from tflite_micro.python.tflite_micro import runtime

    # Too small an arena crashes the interpreter instead of raising: the caller passes a
    # generous one and retries larger when this process dies.
    interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    ins = [interp.get_input_details(i) for i in range(len(xs))]
    outs, raw = [], []
    for i in range(len(xs[0])):
        for k, (d, x) in enumerate(zip(ins, xs)):
            interp.set_input(quantize(x[i : i + 1], d).reshape(d["shape"]), k)
        interp.invoke()
        if not outs:
            outs = _tflm_outputs(interp)
            raw = [[] for _ in outs]
        for k, r in enumerate(raw):
            r.append(np.array(interp.get_output(k)))
    sys.stderr.flush()
    interp.print_allocations()
    raw_out = [np.concatenate(r) for r in raw]
    info = {"inputs": _describe(ins), "outputs": _describe(outs)}
    return raw_out, [dequantize(r, d) for r, d in zip(raw_out, outs)], info


def _tflm_outputs(interp) -> list[dict]:
    outs = []
    while True:
        try:
            outs.append(interp.get_output_details(len(outs)))
        except IndexError:
            return outs


def main(argv: list[str]) -> int:
    runtime_name, folder, arena = argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 0
    with open(os.path.join(folder, "model.tflite"), "rb") as f:
        model = f.read()
    with np.load(os.path.join(folder, "inputs.npz")) as data:
        xs = [data[f"x{i}"] for i in range(len(data.files))]
    try:
        if runtime_name in ("litert", "litert_builtin"):
            raw, deq, info = run_litert(model, xs, builtin=runtime_name == "litert_builtin")
        else:
            raw, deq, info = run_tflm(model, xs, arena)
    except Exception as e:  # the runtime's own refusal, reported to the caller
        with open(os.path.join(folder, "error.json"), "w") as f:
            json.dump({"type": type(e).__name__, "message": str(e),
                       "traceback": traceback.format_exc(limit=3)}, f)
        return 3
    arrays = {f"raw{i}": r for i, r in enumerate(raw)}
    arrays.update({f"deq{i}": d for i, d in enumerate(deq)})
    np.savez(os.path.join(folder, "outputs.npz"), **arrays)
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump(info, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
