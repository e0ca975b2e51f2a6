"""The Kotlin/LiteRT integration sample of an Android bundle, generated from its manifest."""

from __future__ import annotations

from tfimp.bundle._templates import render_file

# dtype -> ByteBuffer write of element i (`{real}` normalized, `{raw}` as given), and read of `it`
_INPUT_WRITERS = {
    "float32": "putFloat({real})",
    "int8": "put(quantize({real}, {p}_SCALE, {p}_ZERO_POINT, -128, 127).toByte())",
    "uint8": "put(quantize({real}, {p}_SCALE, {p}_ZERO_POINT, 0, 255).toByte())",
    "int16": "putShort(quantize({real}, {p}_SCALE, {p}_ZERO_POINT, -32768, 32767).toShort())",
    "int32": "putInt({raw}.toInt())",
    "int64": "putLong({raw}.toLong())",
}
_OUTPUT_READERS = {
    "float32": "{b}.getFloat(it * 4)",
    "int8": "({b}.get(it) - {p}_ZERO_POINT) * {p}_SCALE",
    "uint8": "((({b}.get(it).toInt()) and 0xFF) - {p}_ZERO_POINT) * {p}_SCALE",
    "int16": "({b}.getShort(it * 2) - {p}_ZERO_POINT) * {p}_SCALE",
    "int32": "{b}.getInt(it * 4).toFloat()",
    "int64": "{b}.getLong(it * 8).toFloat()",
}
_INDENT = " " * 8


def _float(x: float) -> str:
    return f"{float(x):.9g}f"


def _string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _constants(prefix: str, spec: dict, role: str) -> list[str]:
    size = 1
    for d in spec["shape"]:
        size *= d
    lines = [f"/** {role} {spec['name']!r}: shape {spec['shape']}, {spec['dtype']}. */",
             f"const val {prefix}_SIZE = {size}"]
    quant = spec["quantization"]
    if quant and spec["dtype"] in ("int8", "uint8", "int16"):
        lines += [f"const val {prefix}_SCALE = {_float(quant['scale'])}",
                  f"const val {prefix}_ZERO_POINT = {int(quant['zero_point'])}"]
    return [_INDENT + line for line in lines]


def _check_dtypes(specs: list[dict], table: dict, role: str) -> None:
    for spec in specs:
        if spec["dtype"] not in table:
            raise ValueError(f"The Android sample supports {role} types {sorted(table)}; "
                             f"{role} {spec['name']!r} is {spec['dtype']}.")
        if spec["dtype"] in ("int8", "uint8", "int16") and not spec["quantization"]:
            raise ValueError(f"{role.capitalize()} {spec['name']!r} is {spec['dtype']} "
                             f"without quantization parameters; the sample cannot scale it.")


def _fill(i: int, spec: dict) -> list[str]:
    p, var = f"INPUT{i}", f"x{i}"
    writer = _INPUT_WRITERS[spec["dtype"]].format(
        real=f"normalize({var}[i], i)", raw=f"{var}[i]", p=p)
    return [f'require({var}.size == {p}_SIZE) {{ "input {i} needs " + {p}_SIZE + '
            f'" values, got " + {var}.size }}',
            f"input{i}.rewind()",
            f"for (i in {var}.indices) input{i}.{writer}"]


def _buffer(name: str, spec: dict) -> str:
    return (f"    private val {name}: ByteBuffer =\n        ByteBuffer.allocateDirect("
            f"{spec['bytes']}).order(ByteOrder.nativeOrder())")


def kotlin_sample(manifest: dict, package: str = "com.example.tfimp") -> str:
    """The `ModelRunner.kt` source for the model that `manifest` describes.

    Raises:
        ValueError: an input or output type the sample cannot feed or read.
    """
    ins, outs = manifest["inputs"], manifest["outputs"]
    _check_dtypes(ins, _INPUT_WRITERS, "input")
    _check_dtypes(outs, _OUTPUT_READERS, "output")
    pre = manifest.get("preprocessing") or {"mean": 0.0, "std": 1.0}
    as_list = lambda v: v if isinstance(v, list) else [v]
    constants, fill, reads = [], [], []
    for i, spec in enumerate(ins):
        constants += _constants(f"INPUT{i}", spec, "input")
        fill += [_INDENT + line for line in _fill(i, spec)]
    for i, spec in enumerate(outs):
        constants += _constants(f"OUTPUT{i}", spec, "output")
        read = _OUTPUT_READERS[spec["dtype"]].format(b=f"output{i}", p=f"OUTPUT{i}")
        reads.append(f"FloatArray(OUTPUT{i}_SIZE) {{ {read} }}")
    summary = "; ".join(f"{s['name']} {s['shape']} {s['dtype']}" for s in ins)
    values = {
        "tfimp_version": manifest["tfimp_version"], "package": package,
        "model_file": manifest["model"]["file"], "sha256": manifest["model"]["sha256"],
        "io_summary": f"{summary} -> {len(outs)} output(s)",
        "mean": ", ".join(_float(v) for v in as_list(pre["mean"])),
        "std": ", ".join(_float(v) for v in as_list(pre["std"])),
        "labels": ", ".join(_string(s) for s in manifest.get("labels") or []),
        "constants": "\n".join(constants),
        "buffers": "\n".join([_buffer(f"input{i}", s) for i, s in enumerate(ins)]
                             + [_buffer(f"output{i}", s) for i, s in enumerate(outs)]),
        "run_params": ", ".join(f"x{i}: FloatArray" for i in range(len(ins))),
        "fill_inputs": "\n".join(fill),
        "rewind_outputs": "\n".join(f"{_INDENT}output{i}.rewind()" for i in range(len(outs))),
        "input_buffers": ", ".join(f"input{i}" for i in range(len(ins))),
        "output_map": ", ".join(f"{i} to output{i}" for i in range(len(outs))),
        "read_outputs": ", ".join(reads),
    }
    return render_file("android", "ModelRunner.kt", values)
