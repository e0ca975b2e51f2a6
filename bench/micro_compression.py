"""Microcontroller flash and arena of pruned (and clustered) LeNets in TFLite Micro's encodings.

For LeNet-300-100 and LeNet-5 on the offline digits resized to 28x28 (scikit-learn's 1,797
images): train briefly, prune once with `tfimp.prune(model, sparsity)` and fine-tune with the
masks fixed, export int8 with `tfimp.export.to_tflite` (verified in LiteRT), then
`tfimp.export.to_micro(..., compression="auto")`, which runs every encoding (none, pruning,
LUT, per tensor the smaller) in the TFLite Micro interpreter on the test images and checks it
bit for bit against the uncompressed model. A second variant clusters the pruned weights
(`tfimp.clustering.cluster`, 16 values per channel, zero included) and fine-tunes them shared.
The peer is TFLite Micro's own compressor (LUT only, `tflite_micro...compression.compress`) on
the same int8 files, at the fewest index bits each tensor allows.

    python bench/micro_compression.py [--epochs 10] [--finetune 5] [--models lenet300,lenet5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.clustering import cluster  # noqa: E402
from tfimp.data import digits  # noqa: E402
from tfimp.export import Int8, run_micro, to_micro, to_tflite  # noqa: E402
from tfimp.export import tflite_edit as edit  # noqa: E402
from tfimp.export import tflm_encoding as enc  # noqa: E402

NETWORKS = {
    "lenet300": (lambda: tfimp.models.lenet_300_100(classifier_activation=None), True, 0.955),
    "lenet5": (lambda: tfimp.models.lenet5(classifier_activation=None), False, 0.9),
}
# Deep Compression (Han et al., ICLR 2016, Table 1): pruning + 5-6 bit clustering + Huffman.
DEEP_COMPRESSION_BYTES = {"lenet300": 27_000, "lenet5": 44_000}
BOARDS = ("cortex-m4-256k", "esp32-s3")


def _fit(model, data, epochs: int, lr: float) -> None:
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs, verbose=0)


def _int8(model, data, per_channel_dense: bool = True) -> tuple[bytes, float]:
    quant = Int8(integer_io=True, per_channel_dense=per_channel_dense)
    art = to_tflite(model, quantization=quant,
                    representative_data=data.x_train[:256], verify=(data.x_test, data.y_test))
    return art.model_bytes, art.report.verification.accuracy_tflite


def tflm_peer(data: bytes) -> bytes | None:
    """TFLite Micro's LUT compressor on every int8 weight tensor that 7-bit indices cover."""
    from tflite_micro.tensorflow.lite.micro.compression import compress, spec

    tree = edit.read(data)
    specs = []
    for t, tensor in enumerate(tree.subgraphs[0].tensors):
        values = edit.constant_array(tree, tensor)
        if values is None or values.dtype != np.int8 or values.ndim < 2:
            continue
        q = tensor.quantization
        per_channel = q is not None and q.scale is not None and len(q.scale) > 1
        axis = int(q.quantizedDimension) if per_channel else None
        channels = enc.channels_of(values.shape, np.int8, list(q.scale) if per_channel else [],
                                   list(q.zeroPoint) if per_channel else [], axis or 0)
        bits = enc.lut_bits(values, channels)
        if bits > enc.MAX_LUT_BITS:
            continue
        mode = spec.PerChannel(axis=axis) if per_channel else spec.PerTensor()
        specs.append(spec.Tensor(subgraph=0, tensor=t,
                                 compression=[spec.LookUpTableCompression(bits, mode)]))
    return bytes(compress(data, specs)) if specs else None


def _row(name, variant, encoding, flash, arena, exact, tensors, acc, note="", written=False):
    return {"model": name, "variant": variant, "encoding": encoding, "flash": flash,
            "arena": arena, "bit_exact": exact, "tensors": tensors, "tflite_acc": acc,
            "note": note, "written": written}


def micro_rows(name: str, variant: str, data: bytes, acc: float, x_test, y_test,
               out_dir: str, boards=()) -> list[dict]:
    art = to_micro(data, out_dir, inputs=x_test, compression="auto")
    written = run_micro(os.path.join(out_dir, "model.tflite"), x_test).outputs[0]
    acc_tflm = float(np.mean(np.argmax(written, -1) == y_test))
    rows = []
    for r in art.encodings:
        counts = r.counts()
        bits = sorted({t.bits for t in r.tensors if t.encoding == "lut"})
        tensors = f"{counts['pruning']} pruning, {counts['lut']} lut" + (
            f" ({'/'.join(map(str, bits))}-bit)" if bits else "")
        rows.append(_row(name, variant, r.name, r.flash_bytes, r.arena_bytes, r.bit_exact,
                         tensors, acc, r.note, r.name == art.compression))
        rows[-1]["tflm_acc"] = acc_tflm if r.flash_bytes else None
    rows.append(_stacked(name, variant, art, acc))
    for board in boards:
        fit = to_micro(data, out_dir, inputs=x_test[:32], compression="auto", board=board)
        counts = {e: sum(t.encoding == e for t in fit.tensors) for e in ("pruning", "lut")}
        rows.append(_row(name, variant, f"auto, board {board}", fit.model_bytes,
                         fit.arena_bytes, True, f"{counts['pruning']} pruning, "
                         f"{counts['lut']} lut", acc, fit.compression))
    peer = tflm_peer(data)
    if peer is None:
        rows.append(_row(name, variant, "TFLM compressor (LUT)", None, None, None, "", acc,
                         "no tensor fits 7-bit indices"))
        return rows
    base, run = run_micro(data, x_test), run_micro(peer, x_test)
    exact = all(np.array_equal(a, b) for a, b in zip(base.outputs, run.outputs))
    rows.append(_row(name, variant, "TFLM compressor (LUT)", len(peer), run.arena_bytes, exact,
                     "LUT at the fewest bits", acc))
    rows[-1]["tflm_acc"] = float(np.mean(np.argmax(run.outputs[0], -1) == y_test))
    return rows


def _stacked(name, variant, art, acc) -> dict:
    """What a pruning bitmap with LUT-coded kept values would store; TFLM cannot decode it."""
    rows = {r.name: r for r in art.encodings}
    pruned = rows["pruning"]
    saved = 0
    for t in pruned.tensors:
        if t.encoding != "pruning":
            continue
        lut = next((o for o in rows["lut"].tensors if o.name == t.name), None) \
            if rows["lut"].tensors else None
        kept = t.stored_bytes - 16 - -(-t.dense_bytes // 8)  # values after header and bitmap
        bits = lut.bits if lut is not None and lut.bits else None
        if bits:
            table = lut.stored_bytes - 16 - -(-t.dense_bytes * bits // 8)
            saved += max(0, kept - -(-kept * bits // 8) - table)
    return _row(name, variant, "pruning bitmap + LUT values (not in TFLM)",
                pruned.flash_bytes - saved, None, None, "estimate from the two encodings", acc,
                "TFLM's DECODE reads constants only and its pruning values are raw")


def run_network(key: str, epochs: int, finetune: int, out: str) -> list[dict]:
    build, flatten, sparsity = NETWORKS[key]
    data = digits(size=28, flatten=flatten)
    keras.utils.set_random_seed(0)
    t0 = time.time()
    dense = build()
    _fit(dense, data, epochs, 1e-3)
    dense_int8, dense_acc = _int8(dense, data)
    pruned = tfimp.prune(dense, sparsity)
    _fit(pruned, data, finetune, 5e-4)
    plain = tfimp.strip(pruned)
    pruned_int8, pruned_acc = _int8(plain, data)
    variant = f"pruned {100 * sparsity:.1f}%"
    rows = micro_rows(key, variant, pruned_int8, pruned_acc, data.x_test, data.y_test,
                      os.path.join(out, key, "pruned"), BOARDS)
    per_tensor, per_tensor_acc = _int8(plain, data, per_channel_dense=False)
    rows += micro_rows(key, variant + ", per-tensor Dense scales", per_tensor, per_tensor_acc,
                       data.x_test, data.y_test, os.path.join(out, key, "per_tensor"))
    shared = cluster(plain, clusters=16, per_channel=True)
    _fit(shared, data, max(1, finetune // 2), 2e-4)
    shared_int8, shared_acc = _int8(tfimp.clustering.stop_sharing(shared), data)
    rows += micro_rows(key, variant + " + 16 clusters/channel", shared_int8, shared_acc,
                       data.x_test, data.y_test, os.path.join(out, key, "clustered"))
    for r in rows:
        r.update(dense_int8=len(dense_int8), dense_acc=dense_acc,
                 x_smaller=(len(dense_int8) / r["flash"]) if r.get("flash") else None)
    print(f"# {key}: {time.time() - t0:.0f} s; dense int8 {len(dense_int8):,} B, "
          f"accuracy {100 * dense_acc:.2f}%", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | variant | encoding | flash B | x vs dense int8 | arena B | bit-exact | "
            "tensors | LiteRT acc. | TFLM acc. |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if r.get("flash") is None:
            lines.append(f"| {r['model']} | {r['variant']} | {r['encoding']} | - | - | - | - | "
                         f"{r['note']} | - | - |")
            continue
        mark = " (written)" if r.get("written") else ""
        arena = "-" if r["arena"] is None else f"{r['arena']:,}"
        exact = {True: "yes", False: "NO", None: "-"}[r["bit_exact"]]
        note = f"; {r['note']}" if r.get("note") and not r.get("written") else ""
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['encoding']}{mark} | {r['flash']:,} | "
            f"{r['x_smaller']:.2f} | {arena} | {exact} | {r['tensors']}{note} | "
            f"{100 * r['tflite_acc']:.2f}% | {_pct(r.get('tflm_acc'))} |")
    for key, size in DEEP_COMPRESSION_BYTES.items():
        lines.append(f"| {key} | Deep Compression (published) | prune+cluster+Huffman | "
                     f"~{size:,} | | | | | | |")
    return "\n".join(lines)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="dense training epochs")
    p.add_argument("--finetune", type=int, default=5, help="fine-tuning epochs after pruning")
    p.add_argument("--models", default="lenet300,lenet5")
    p.add_argument("--json", default="bench/results/micro_compression.json")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfimp-micro-") as out:
        for key in args.models.split(","):
            rows += run_network(key, args.epochs, args.finetune, out)
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1, default=float)
    print(markdown(rows))


if __name__ == "__main__":
    main()
