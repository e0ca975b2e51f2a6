"""The tfmot half of bench/qat.py: prune, fine-tune, PTQ and PQAT of LeNet-5 with tf_keras.

tfmot 0.8.1 works only with the legacy tf_keras, so this runs in its own interpreter
(TF_USE_LEGACY_KERAS=1) and imports nothing from tfimp. It reads the digits from an .npz
written by bench/qat.py and prints one JSON line: a list with one result per seed.

    TF_USE_LEGACY_KERAS=1 python bench/qat_tfmot_peer.py digits.npz --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

BATCH = 64
CALIBRATION = 256


def lenet5() -> keras.Model:
    """The same network as tfimp.models.lenet5()."""
    L = keras.layers
    return keras.Sequential([
        L.InputLayer((28, 28, 1)),
        L.Conv2D(20, 5, name="conv1"),
        L.MaxPooling2D(2),
        L.Conv2D(50, 5, name="conv2"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(500, activation="relu", name="fc1"),
        L.Dense(10, activation="softmax", name="classifier"),
    ])


def _compile(model, lr):
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _convert(model, calibration=None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is not None:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    return converter.convert()


def _run(blob: bytes, x: np.ndarray) -> np.ndarray:
    interp = Interpreter(model_content=blob)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x.astype(np.float32))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def _kernel_zeros(blob: bytes) -> float:
    """The smallest fraction of zeros among the int8 weight tensors stored in the file."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(blob, 0)
    fractions = []
    for t in model.subgraphs[0].tensors:
        data = model.buffers[t.buffer].data
        if t.type == fb.TensorType.INT8 and data is not None and len(t.shape) >= 2:
            fractions.append(float(np.mean(np.asarray(data, np.uint8) == 0)))
    return min(fractions)


def run_seed(seed: int, d, args) -> dict:
    keras.utils.set_random_seed(seed)
    x, y, xt, yt = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    dense = _compile(lenet5(), 1e-3)
    dense.fit(x, y, batch_size=BATCH, epochs=args.epochs, verbose=0)
    # One shot, then fixed masks, as tfimp.prune(model, 0.6): tfmot prunes at steps 0..1 only.
    schedule = tfmot.sparsity.keras.ConstantSparsity(args.sparsity, begin_step=0, end_step=1,
                                                     frequency=1)
    pruned = _compile(tfmot.sparsity.keras.prune_low_magnitude(dense, pruning_schedule=schedule),
                      1e-3)
    pruned.fit(x, y, batch_size=BATCH, epochs=args.finetune, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    float_out = stripped.predict(xt, verbose=0)
    ptq = _run(_convert(stripped, x[:CALIBRATION]), xt)

    annotated = tfmot.quantization.keras.quantize_annotate_model(stripped)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    pqat = _compile(tfmot.quantization.keras.quantize_apply(annotated, scheme), args.qat_lr)
    pqat.fit(x, y, batch_size=BATCH, epochs=args.qat_epochs, verbose=0)
    blob = _convert(pqat)
    q = _run(blob, xt)
    return {
        "seed": seed,
        "pruned_float": float(np.mean(float_out.argmax(1) == yt)),
        "ptq_int8": float(np.mean(ptq.argmax(1) == yt)),
        "ptq_agree_float": float(np.mean(ptq.argmax(1) == float_out.argmax(1))),
        "pqat_keras": float(np.mean(pqat.predict(xt, verbose=0).argmax(1) == yt)),
        "pqat_int8": float(np.mean(q.argmax(1) == yt)),
        "pqat_agree_float": float(np.mean(q.argmax(1) == float_out.argmax(1))),
        "pqat_min_kernel_zeros": _kernel_zeros(blob),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sparsity", type=float, default=0.6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune", type=int, default=5)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    args = parser.parse_args(argv)
    with np.load(args.data) as f:
        d = {k: f[k] for k in f.files}
    print(json.dumps([run_seed(seed, d, args) for seed in args.seeds]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
