"""Export size of LeNet-300-100 and LeNet-5: dense vs pruned, float/int8, sparse encoding on/off.

Trains each network on the offline digits resized to 28x28 (scikit-learn's 1,797 images; no
network needed), prunes it with tfimp to per-layer target sparsities (unstructured, and in
the blocks that TFLite's sparse FULLY_CONNECTED kernels use: 1x4 for float, 1x16 for int8),
fine-tunes, and exports every variant with `tfimp.export.to_tflite`, which verifies each file
in LiteRT.

    python bench/export_size.py [--epochs 30] [--models lenet300,lenet5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfimp  # noqa: E402
from tfimp.data import digits  # noqa: E402
from tfimp.export import Int8, to_tflite  # noqa: E402


def lenet_300_100() -> keras.Model:
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(300, activation="relu", name="fc1"),
        keras.layers.Dense(100, activation="relu", name="fc2"),
        keras.layers.Dense(10, name="fc3"),
    ], name="lenet_300_100")


def lenet_5() -> keras.Model:
    """The Caffe LeNet-5 that Deep Compression pruned: 20 and 50 5x5 filters, 500 hidden."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(20, 5, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(50, 5, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(500, activation="relu", name="fc1"),
        keras.layers.Dense(10, name="fc2"),
    ], name="lenet_5")


# Per-layer final sparsity after Deep Compression's per-layer pattern (Han et al. 2016, table
# 2/3): the large first Dense layer carries the cut, small layers keep more. The schedule's
# final sparsity is fc1's.
NETWORKS = {
    "lenet300": (lenet_300_100, True, {"fc1": 0.965, "fc2": 0.92, "fc3": 0.70}),
    "lenet5": (lenet_5, False, {"conv1": 0.34, "conv2": 0.88, "fc1": 0.965, "fc2": 0.81}),
}


def _compile(model: keras.Model, lr: float) -> None:
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def train_dense(build, data, epochs: int, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build()
    _compile(model, 1e-3)
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs, verbose=0)
    return model


def prune_and_finetune(dense: keras.Model, data, targets: dict, block,
                       epochs: int) -> keras.Model:
    """Gradual magnitude pruning to per-layer `targets` over half the epochs, then tuning.

    With `block`, only Dense layers are pruned (blocks of inputs of one output unit).
    """
    steps = int(np.ceil(len(data.x_train) / 32)) * epochs
    schedule = tfimp.PolynomialDecay(0.0, targets["fc1"], begin_step=0,
                                     end_step=steps // 2, frequency=max(1, steps // 60))
    copy = keras.models.clone_model(dense)
    copy.set_weights(dense.get_weights())
    convs = [layer.name for layer in copy.layers if isinstance(layer, keras.layers.Conv2D)]
    exclude = convs if block is not None else []
    targets = {k: v for k, v in targets.items() if k not in exclude}
    # LiteRT's int8 1x16 sparse kernel is wrong when a kept block sticks out past the
    # matrix edge (docs/export.md): keep only whole blocks there.
    granularity = None if block is None else tfimp.Granularity("block", block, block[0] == 16)
    pruned = tfimp.prune(copy, schedule, granularity=granularity, exclude=exclude,
                         targets=targets)
    _compile(pruned, 5e-4)
    pruned.fit(data.x_train, data.y_train, batch_size=32, epochs=epochs, verbose=0,
               callbacks=[tfimp.callbacks.UpdateMasks()])
    return tfimp.strip(pruned)


def export_rows(name: str, model, data, variants) -> list[dict]:
    rows = []
    rep = data.x_train[:256]
    for label, quant, sparse in variants:
        art = to_tflite(model, quantization=quant, sparse=sparse, representative_data=rep,
                        verify=(data.x_test, data.y_test))
        r = art.report
        rows.append({
            "model": name, "variant": label,
            "quantization": r.quantization["name"] + (
                "" if r.quantization.get("per_channel_dense", True) else " (per-tensor)"),
            "sparse": ("on" if r.sparse else "off") + (" (auto)" if sparse == "auto" else ""),
            "sparsity": r.keras_sparsity, "raw": r.tflite_bytes, "gzip": r.gzip_bytes,
            "dense_f32": r.dense_float32_bytes, "ratio": r.compression_ratio,
            "gzip_ratio": r.gzip_ratio, "acc": r.verification.accuracy_tflite,
            "index_bytes": sum(t.index_bytes for t in r.tensors),
        })
    return rows


def run_network(key: str, epochs: int, prune_epochs: int) -> list[dict]:
    build, flatten, targets = NETWORKS[key]
    data = digits(size=28, flatten=flatten)
    t0 = time.time()
    dense = train_dense(build, data, epochs)
    per_tensor = Int8(per_channel_dense=False)
    rows = export_rows(key, dense, data, [("dense", None, False), ("dense", Int8(), False)])
    unstructured = prune_and_finetune(dense, data, targets, None, prune_epochs)
    rows += export_rows(key, unstructured, data, [
        ("pruned", None, False), ("pruned", None, True),
        ("pruned", Int8(), False), ("pruned", Int8(), "auto")])
    blocked = prune_and_finetune(dense, data, targets, (4, 1), prune_epochs)
    rows += export_rows(key, blocked, data, [("pruned, fc 1x4 blocks", None, False),
                                             ("pruned, fc 1x4 blocks", None, True)])
    blocked = prune_and_finetune(dense, data, targets, (16, 1), prune_epochs)
    label = "pruned, fc 1x16 blocks"
    rows += export_rows(key, blocked, data, [
        (label, Int8(), False), (label, Int8(), True),
        (label + ", per-tensor", per_tensor, False), (label + ", per-tensor", per_tensor, True)])
    dense_acc = rows[0]["acc"]
    for r in rows:
        r["delta_pp"] = 100 * (r["acc"] - dense_acc)
    print(f"# {key}: {time.time() - t0:.0f} s", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | variant | quant | sparse enc. | zeros | raw bytes | gzip bytes | "
            "x vs dense f32 (raw) | x (gzip) | index bytes | accuracy | vs dense pp |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['quantization']} | "
            f"{r['sparse']} | {100 * r['sparsity']:.1f}% | {r['raw']:,} | "
            f"{r['gzip']:,} | {r['ratio']:.1f} | {r['gzip_ratio']:.1f} | {r['index_bytes']:,} | "
            f"{100 * r['acc']:.2f}% | {r['delta_pp']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30, help="dense training epochs")
    p.add_argument("--prune-epochs", type=int, default=60, help="pruning + fine-tuning epochs")
    p.add_argument("--models", default="lenet300,lenet5")
    args = p.parse_args()
    rows = []
    for key in args.models.split(","):
        rows += run_network(key, args.epochs, args.prune_epochs)
    print(markdown(rows))


if __name__ == "__main__":
    main()
