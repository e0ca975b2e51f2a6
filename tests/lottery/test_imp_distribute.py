"""IMP inside `tf.distribute.MirroredStrategy` on two logical CPUs: plain rounds, rounds that
distil from the dense round 0, and channel granularity, in one fresh process."""

import json
import pathlib
import subprocess
import sys

_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tfimp
sys.path.insert(0, {helpers!r})
from helpers_imp import builder, toy_data
x, y = toy_data()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {{"replicas": strategy.num_replicas_in_sync}}
for name, extra in (("plain", {{}}), ("distill", {{"distill": "dense"}}),
                    ("channel", {{"granularity": "channel", "scope": "layer"}})):
    with strategy.scope():
        r = tfimp.imp(builder(), (x[:90], y[:90]), (x[90:], y[90:]), rounds=2, rate=0.5,
                      batch_size=30, verbose=0, workdir={workdir!r} + "/" + name, **extra)
    out[name] = [[h["round"], h["remaining"], h["prunable"], h.get("channel_sparsity")]
                 for h in r.history]
    if name == "channel":
        small = tfimp.shrink(r.best(budget=1.0))
        out["channel_units"] = [w.shape[-1] for w in small.get_weights() if w.ndim == 2]
print(json.dumps(out))
"""


def test_imp_runs_inside_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = _SCRIPT.format(helpers=str(pathlib.Path(__file__).parent), workdir=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for name in ("plain", "distill"):
        assert [h[0] for h in result[name]] == [0, 1, 2]
        for r, remaining, prunable, _ in result[name]:
            assert remaining == prunable - round((1 - 0.5**r) * prunable)
    # Channels: half of the remaining hidden units go per round (16 -> 8 -> 4), and the
    # shrunk model really has 4 of them.
    assert [h[3] for h in result["channel"]] == [0.0, 0.5, 0.75]
    assert result["channel_units"] == [4, 3]
