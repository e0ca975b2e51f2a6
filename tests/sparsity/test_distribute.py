"""Pruning inside tf.distribute.MirroredStrategy: 2 logical CPUs give the 1-device masks."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, tfimp
    from tfimp.sparsity.engine import get_masks, pruned_layers

    def run(devices):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 8)).astype("float32")
        y = rng.normal(size=(64, 2)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(16, activation="relu", name="d1"),
                                      keras.layers.Dense(2, name="d2")])
            schedule = tfimp.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=6, frequency=2)
            pruned = tfimp.prune(model, schedule, scope="global")
            pruned.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
        pruned.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                   callbacks=[tfimp.callbacks.UpdateMasks()])
        zeros_kept = all(
            bool(np.all(keras.ops.convert_to_numpy(v)[m == 0] == 0))
            for w in pruned_layers(pruned) for v, m in zip(w.pruned_weights, w.get_masks()))
        return {"replicas": strategy.num_replicas_in_sync, "zeros_kept": zeros_kept,
                "masks": {k: v.astype(int).tolist() for k, v in get_masks(pruned).items()},
                "weights": [w.tolist() for w in pruned.get_weights()]}

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    print(json.dumps([run(devices[:1]), run(devices[:2])]))
""")


def test_two_replicas_give_the_same_masks_as_one():
    import numpy as np

    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(done.stdout.strip().splitlines()[-1])
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["zeros_kept"] and two["zeros_kept"]
    assert list(one["masks"]) == list(two["masks"])
    total = sum(np.size(m) for m in one["masks"].values())
    zeros = sum(np.size(m) - np.sum(m) for m in two["masks"].values())
    assert zeros == round(0.8 * total)
    for name in one["masks"]:
        np.testing.assert_array_equal(one["masks"][name], two["masks"][name])
    for a, b in zip(one["weights"], two["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
