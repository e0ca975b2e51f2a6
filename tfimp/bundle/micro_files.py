"""The files of a micro bundle: C arrays from `tfimp.export.to_micro`, runner, build snippets."""

from __future__ import annotations

import re
from pathlib import Path

from tfimp.bundle._templates import render_file
from tfimp.bundle.base import BundleError, readme_values
from tfimp.export.tflm_compression import DECODE_OP
from tfimp.export.tflm_sparse import OP as SPARSE_OP

ARENA_MARGIN = 0.25
MODEL_ARRAY = "g_model"
# TFLite Micro's compressed-tensor build option (`make USE_TFLM_COMPRESSION=yes`, linux and
# xtensa targets only). The DECODE op needs no option: every TFLM build has it. The bundle
# leaves the option off; a runner and a library built with it must agree on it.
TFLM_COMPRESSION_MAKE = "USE_TFLM_COMPRESSION=yes"
TFLM_COMPRESSION_DEFINE = "USE_TFLM_COMPRESSION"
_C_TYPES = {"float32": "kTfLiteFloat32", "int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8",
            "int16": "kTfLiteInt16"}


def check(info, board, compression) -> None:
    """Raises `BundleError` (or ValueError for bad arguments) before anything is written."""
    from tfimp.export import micro_fit
    from tfimp.export.micro import MicroError, check_micro_compatible

    try:
        check_micro_compatible(info)
    except MicroError as e:
        raise BundleError(f"The model cannot run on the micro target: {e}") from None
    held = [op for op in (DECODE_OP, SPARSE_OP) if op in info.ops]
    if micro_fit.get(compression) is not None and held:
        raise BundleError(f"The model is compressed already (it holds {held[0]} ops). "
                          f"Received: compression={compression!r}. Drop --compression to "
                          f"bundle it as it is.")
    check_board(board)


def check_board(board) -> None:
    """Raises ValueError, listing the known boards, unless `board` is None or known."""
    if board is not None:
        from tfimp.export.boards import get_board

        get_board(board)


def fnv1a64(data: bytes) -> int:
    """The 64-bit FNV-1a hash that `model_check.h` recomputes on the device."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def array_bytes(model_data_cc: str) -> bytes:
    """The bytes of the model array written in `model_data.cc`."""
    body = model_data_cc[model_data_cc.index("{") + 1 : model_data_cc.rindex("}")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))


def _spec_rows(specs: list[dict], role: str) -> str:
    rows = []
    for s in specs:
        if s["dtype"] not in _C_TYPES:
            raise ValueError(f"The micro runner supports {role} types {sorted(_C_TYPES)}; "
                             f"{role} {s['name']!r} is {s['dtype']}.")
        q = s["quantization"] or {"scale": 1.0, "zero_point": 0}
        elements = s["bytes"] // {"float32": 4, "int16": 2}.get(s["dtype"], 1)
        name = s["name"].replace("\\", "\\\\").replace('"', '\\"')
        rows.append(f'    {{{_C_TYPES[s["dtype"]]}, {elements}, {c_float(q["scale"])}, '
                    f'{int(q["zero_point"])}, "{name}"}},')
    return "\n".join(rows)


def _labels_code(labels: list[str] | None) -> str:
    if not labels:
        return "const char* LabelOf(int) { return \"\"; }"
    quoted = ", ".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in labels)
    return (f"const char* const kLabels[] = {{{quoted}}};\n"
            f"const char* LabelOf(int i) {{ return i >= 0 && i < {len(labels)} ? kLabels[i] : "
            f"\"\"; }}")


def c_float(x: float) -> str:
    """A C++ float literal for `x` (always with a decimal point or an exponent)."""
    text = f"{float(x):.9g}"
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _fit_text(flash: int, arena_size: int, ops, board: str | None) -> tuple[str, dict | None]:
    from tfimp.export.boards import BOARDS, verdict

    rows = ["| board | RAM | flash | verdict (arena incl. margin; model only) |",
            "|---|---|---|---|"]
    for b in BOARDS.values():
        v = verdict(b, flash, arena_size)
        mark = "**chosen** " if b.name == board else ""
        rows.append(f"| {mark}`{b.name}` | {b.ram_bytes // 1024} KiB | "
                    f"{b.flash_bytes // 1024} KiB | {v} |")
    chosen = None
    if board is not None:
        v = verdict(board, flash, arena_size)
        chosen = {"board": v.board, "fits": v.fits, "ram_margin_bytes": v.ram_margin_bytes,
                  "flash_margin_bytes": v.flash_margin_bytes}
    return "\n".join(rows), chosen


def write(stage: Path, ctx) -> None:
    """Writes the micro bundle into `stage`; raises `BundleError` if the board is too small."""
    art = _to_micro(stage, ctx)
    manifest = ctx.manifest
    model = _model_file(stage, ctx, art, manifest)
    data = model.read_bytes()
    if array_bytes((stage / "model_data.cc").read_text()) != data:
        raise BundleError("model_data.cc does not hold the model's bytes; not bundling it.")
    table, verdict = _fit_text(len(data), art.arena_size, art.ops, ctx.board)
    decode = DECODE_OP in art.ops
    manifest["micro"] = {"arena_bytes_measured": art.arena_bytes, "arena_size": art.arena_size,
                         "arena_margin": art.margin, "flash_bytes": len(data),
                         "ops": list(art.ops), "resolver_ops": len(art.ops),
                         "board": ctx.board, "fit": verdict, "model_fnv1a64": fnv1a64(data),
                         "tflm_vs_litert_max_diff_steps": art.max_diff_steps,
                         "compression": _compression_record(art),
                         "build": {"tflm_compression": False, "decode_op": decode,
                                   "make": TFLM_COMPRESSION_MAKE,
                                   "define": TFLM_COMPRESSION_DEFINE}}
    manifest["profile"] = {"tool": "tflite-micro (python interpreter, reference kernels)",
                           "arena_bytes": art.arena_bytes, "flash_bytes": len(data)}
    _write_sources(stage, manifest, readme_values(manifest), table)


def _to_micro(stage: Path, ctx):
    from tfimp.export import to_micro
    from tfimp.export.micro import MicroError

    try:
        return to_micro(ctx.model, stage, margin=ARENA_MARGIN, name=MODEL_ARRAY,
                        compression=ctx.compression, board=ctx.board)
    except MicroError as e:
        if ctx.board is not None and "fits the board" in str(e):
            raise BundleError(f"The model does not fit the board {ctx.board!r} (the tensor arena "
                              f"needs RAM, the model flash). {e}") from None
        raise BundleError(f"The model cannot run on the micro target: {e}") from None


def _model_file(stage: Path, ctx, art, manifest: dict) -> Path:
    """The model in the C array; a compressed one replaces the staged model in the bundle."""
    from tfimp.bundle.manifest import sha256_file, size_figures
    from tfimp.export import inspect
    from tfimp.export.micro import MODEL_FILE

    written = stage / MODEL_FILE
    if str(written) not in art.files:
        return ctx.model
    source = {"file": ctx.model.name, "sha256": manifest["model"]["sha256"],
              "bytes": manifest["size"]["file_bytes"]}
    if ctx.model.resolve() != written.resolve():
        ctx.model.unlink()
    info = inspect(written)
    manifest["model"] = {"file": MODEL_FILE, "sha256": sha256_file(written), "source": source}
    manifest["size"] = size_figures(written, info)
    manifest["ops"], manifest["op_counts"] = sorted(set(info.ops)), info.op_counts
    return written


def _compression_record(art) -> dict:
    return {"encoding": art.compression,
            "tensors": [t.to_dict() for t in art.tensors],
            "tried": [{"name": r.name, "flash_bytes": r.flash_bytes,
                       "arena_bytes": r.arena_bytes, "arena_size": r.arena_size,
                       "bit_exact": r.bit_exact, "fits": r.fits, "tensors": r.counts(),
                       "note": r.note} for r in art.encodings]}


def _compression_text(micro: dict) -> str:
    comp = micro["compression"]
    encoded = [t for t in comp["tensors"] if t["encoding"] != "none"]
    if not encoded:
        return ("The weights are stored as they are (no TFLite Micro compression; "
                "`tfimp bundle --compression auto` tries the pruning bitmap and LUT encodings).")
    rows = ["| tensor | shape | encoding | bits | dense B | stored B | arena B |",
            "|---|---|---|---|---|---|---|"]
    for t in comp["tensors"]:
        bits = "" if t["bits"] is None else t["bits"]
        rows.append(f"| `{t['name']}` | {t['shape']} | {t['encoding']} | {bits} | "
                    f"{t['dense_bytes']:,} | {t['stored_bytes']:,} | {t['decoded_bytes']:,} |")
    tried = ["| encoding tried | flash B | arena B | bit-exact |", "|---|---|---|---|"]
    for r in comp["tried"]:
        if r["flash_bytes"] is None:
            tried.append(f"| {r['name']} | - | - | not built: {r['note']} |")
        else:
            tried.append(f"| {r['name']} | {r['flash_bytes']:,} | {r['arena_bytes']:,} | "
                         f"{'yes' if r['bit_exact'] else 'no'} |")
    sparse = sum(t["encoding"] == "sparse" for t in encoded)
    decoded = len(encoded) - sparse
    text = [f"Written: **{comp['encoding']}**."]
    if decoded:
        text.append(f"{decoded} constant tensor(s) are stored in TFLite Micro's DECODE "
                    f"encodings; a `{DECODE_OP}` op before each reader writes the plain tensor "
                    "into the tensor arena (the arena column), so flash is traded for RAM.")
    if sparse:
        text.append(f"{sparse} FULLY_CONNECTED op(s) run tfimp's sparse int8 kernel "
                    f"(`{SPARSE_OP}`, `sparse_fully_connected.cc`, registered in model_ops.h): "
                    "their weights stay in flash as non-zeros and column indices, nothing is "
                    "decoded into the arena, and the arithmetic is TFLite Micro's reference "
                    "int8 FULLY_CONNECTED.")
    text.append("Each encoding ran in the TFLite Micro interpreter and matched the uncompressed "
                "model bit for bit" + (" (a sparse model as its dense stand-in, each sparse op "
                                       "checked with the kernel's numpy mirror)." if sparse
                                       else "."))
    return "\n".join([" ".join(text), "", *rows, "", *tried])


def _build_values(decode: bool) -> dict:
    return {"tflm_compression": "no", "tflm_compression_cmake": "OFF",
            "compression_make": TFLM_COMPRESSION_MAKE,
            "compression_define": TFLM_COMPRESSION_DEFINE,
            "decode_note": (f"The model decodes compressed weights with the {DECODE_OP} op "
                            "(registered in model_ops.h), which every TFLite Micro build has."
                            if decode else "The model holds no compressed weights.")}


def _write_sources(stage: Path, manifest: dict, values: dict, table: str) -> None:
    pre = manifest.get("preprocessing") or {"mean": 0.0, "std": 1.0}
    micro = manifest["micro"]
    values.update(
        model_array=MODEL_ARRAY, model_len=micro["flash_bytes"],
        model_fnv1a=micro["model_fnv1a64"],
        input_specs=_spec_rows(manifest["inputs"], "input"),
        output_specs=_spec_rows(manifest["outputs"], "output"),
        num_inputs=len(manifest["inputs"]), num_outputs=len(manifest["outputs"]),
        mean=", ".join(c_float(v) for v in _as_list(pre["mean"])),
        std=", ".join(c_float(v) for v in _as_list(pre["std"])),
        labels=_labels_code(manifest.get("labels")),
        num_ops=len(micro["ops"]), ops=", ".join(micro["ops"]),
        arena_measured=micro["arena_bytes_measured"], arena_size=micro["arena_size"],
        margin_percent=f"{100 * micro['arena_margin']:g}", fit=table,
        compression=_compression_text(micro), **_build_values(micro["build"]["decode_op"]),
    )
    for name in ("main.cc", "model_check.h", "README.md", "Makefile", "tflm.cmake"):
        (stage / name).write_text(render_file("micro", name, values))
