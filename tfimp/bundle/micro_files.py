"""The files of a micro bundle: C arrays from `tfimp.export.to_micro`, runner, build snippets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tfimp.bundle._templates import render_file, template_root

ARENA_MARGIN = 0.25
MODEL_ARRAY = "g_model"
_C_TYPES = {"float32": "kTfLiteFloat32", "int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8",
            "int16": "kTfLiteInt16"}


def check_board(board) -> None:
    """Raises ValueError, listing the known boards, unless `board` is None or known."""
    if board is not None:
        from tfimp.profile.micro import get_board

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
    from tfimp.profile.micro import BOARDS, MicroProfile

    need = MicroProfile("model", flash, arena_size, None, tuple(ops))
    rows = ["| board | RAM | flash | verdict (arena incl. margin; model only) |",
            "|---|---|---|---|"]
    for b in BOARDS.values():
        v = need.check(b)
        mark = "**chosen** " if b.name == board else ""
        rows.append(f"| {mark}`{b.name}` | {b.ram_bytes // 1024} KiB | "
                    f"{b.flash_bytes // 1024} KiB | {v} |")
    chosen = None
    if board is not None:
        v = need.check(board)
        chosen = {"board": v.board, "fits": v.fits, "ram_margin_bytes": v.ram_margin_bytes,
                  "flash_margin_bytes": v.flash_margin_bytes}
    return "\n".join(rows), chosen


def write(stage: Path, ctx) -> None:
    """Writes the micro bundle into `stage`; raises `BundleError` if the board is too small."""
    from tfimp.bundle.targets import BundleError, readme_values
    from tfimp.export import to_micro

    art = to_micro(ctx.model, stage, margin=ARENA_MARGIN, name=MODEL_ARRAY)
    manifest = ctx.manifest
    data = ctx.model.read_bytes()
    if array_bytes((stage / "model_data.cc").read_text()) != data:
        raise BundleError("model_data.cc does not hold the model's bytes; not bundling it.")
    table, verdict = _fit_text(len(data), art.arena_size, art.ops, ctx.board)
    manifest["micro"] = {"arena_bytes_measured": art.arena_bytes, "arena_size": art.arena_size,
                         "arena_margin": art.margin, "flash_bytes": len(data),
                         "ops": list(art.ops), "resolver_ops": len(art.ops),
                         "board": ctx.board, "fit": verdict, "model_fnv1a64": fnv1a64(data),
                         "tflm_vs_litert_max_diff_steps": art.max_diff_steps}
    manifest["profile"] = {"tool": "tflite-micro (python interpreter, reference kernels)",
                           "arena_bytes": art.arena_bytes, "flash_bytes": len(data)}
    if verdict is not None and not verdict["fits"]:
        raise BundleError(
            f"The model does not fit the board {ctx.board!r}: it needs {art.arena_size:,} bytes "
            f"of RAM for the tensor arena and {len(data):,} bytes of flash; RAM margin "
            f"{verdict['ram_margin_bytes']:,} bytes, flash margin "
            f"{verdict['flash_margin_bytes']:,} bytes. Prune structurally (fewer channels), "
            f"use a smaller model, or choose a larger board.")
    _write_sources(stage, manifest, readme_values(manifest), table)


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
    )
    for name in ("main.cc", "model_check.h", "README.md"):
        (stage / name).write_text(render_file("micro", name, values))
    for name in ("Makefile", "tflm.cmake"):
        shutil.copyfile(template_root() / "micro" / name, stage / name)
