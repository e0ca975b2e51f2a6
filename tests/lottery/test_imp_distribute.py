import json
import pathlib
import subprocess
import sys

import pytest

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
with strategy.scope():
    r = tfimp.imp(builder(), (x[:90], y[:90]), (x[90:], y[90:]), rounds=2, rate=0.5,
                  batch_size=30, verbose=0, workdir={workdir!r}{extra})
print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                  "history": [[h["round"], h["remaining"], h["prunable"]] for h in r.history]}}))
"""


@pytest.mark.parametrize("extra", ["", ", distill='dense'"], ids=["plain", "distill"])
def test_imp_runs_inside_mirrored_strategy_on_two_logical_cpus(tmp_path, extra):
    script = _SCRIPT.format(helpers=str(pathlib.Path(__file__).parent), workdir=str(tmp_path),
                            extra=extra)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for r, remaining, prunable in result["history"]:
        assert remaining == prunable - round((1 - 0.5**r) * prunable)
