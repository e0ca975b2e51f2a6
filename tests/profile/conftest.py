import stat
import sys

import numpy as np
import pytest
from sshd_fixture import sshd  # noqa: F401  (the fixture, for the ssh tests here)


def _convert(model, path, sparse: bool = False) -> str:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    path.write_bytes(converter.convert())
    return str(path)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """A 8-16-4 dense float model."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)])
    return _convert(model, tmp_path_factory.mktemp("models") / "tiny.tflite")


@pytest.fixture(scope="session")
def lenet_tflite(tmp_path_factory):
    """LeNet-5 on 28x28x1 (61.7k parameters), float."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)), L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(),
        L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(), L.Flatten(),
        L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10)])
    return _convert(model, tmp_path_factory.mktemp("models") / "lenet.tflite")


@pytest.fixture(scope="session")
def sparse_tflite(tmp_path_factory):
    """A 90%-sparse dense model in the TFLite sparse encoding (DENSIFY): TFLM cannot run it."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(4)])
    w, b = model.layers[0].get_weights()
    w[np.abs(w) < np.quantile(np.abs(w), 0.9)] = 0.0
    model.layers[0].set_weights([w, b])
    return _convert(model, tmp_path_factory.mktemp("models") / "sparse.tflite", sparse=True)


# An executable that implements the command line and the output format of TFLite's
# benchmark_model (tensorflow/lite/tools/benchmark), timing the model with the LiteRT
# interpreter: it stands where the C++ binary would, on this machine or over ssh.
BENCHMARK_MODEL_SCRIPT = '''\
#!{python}
import sys, time
flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
graph = flags["graph"]
with open(graph, "rb") as f:
    if f.read(8)[4:8] != b"TFL3":
        print("ERROR: Could not build model from " + graph, file=sys.stderr)
        sys.exit(1)
from ai_edge_litert.interpreter import Interpreter, OpResolverType
runs, warm = int(flags.get("num_runs", 50)), int(flags.get("warmup_runs", 1))
resolver = (OpResolverType.AUTO if flags.get("use_xnnpack", "true") == "true"
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
print("INFO: STARTING!")
print("INFO: Graph: [%s]" % graph)
print("INFO: Num threads: [%s]" % flags.get("num_threads", -1))
t0 = time.perf_counter()
it = Interpreter(model_path=graph, num_threads=int(flags.get("num_threads", 1)),
                 experimental_op_resolver_type=resolver)
it.allocate_tensors()
init = int((time.perf_counter() - t0) * 1e6)
print("INFO: Initialized session in %.3fms." % (init / 1e3))
def timed(n):
    out = []
    for _ in range(n):
        s = time.perf_counter(); it.invoke(); out.append(int((time.perf_counter() - s) * 1e6))
    return out
def stat(ts):
    avg = sum(ts) / len(ts)
    std = int((sum((t - avg) ** 2 for t in ts) / len(ts)) ** 0.5)
    if min(ts) == max(ts):
        return "count=%d curr=%d(all same)" % (len(ts), ts[-1])
    return ("count=%d first=%d curr=%d min=%d max=%d avg=%g std=%d"
            % (len(ts), ts[0], ts[-1], min(ts), max(ts), avg, std))
for label, n in (("warm", warm), ("reg", runs)):
    print("INFO: Running benchmark for at least %d iterations and at least 0.5 seconds but "
          "terminate if exceeding 150 seconds." % n)
    ts = timed(n)
    print("INFO: " + stat(ts) + "\\n")
    if label == "warm":
        w = ts
r = ts
print("INFO: Inference timings in us: Init: %d, First inference: %d, Warmup (avg): %g, "
      "Inference (avg): %g" % (init, w[0], sum(w) / len(w), sum(r) / len(r)))
print("INFO: Note: as the benchmark tool itself affects memory footprint, the following is "
      "only APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
      "information at your discretion.")
print("INFO: Memory footprint delta from the start of the tool (MB): init=2.5 overall=3.25")
if flags.get("report_peak_memory_footprint") == "true":
    print("INFO: Overall peak memory footprint (MB) via periodic monitoring: 12.5")
if flags.get("enable_op_profiling") == "true":
    print("INFO: Operator-wise Profiling Info for Regular Benchmark Runs:")
    print("============================== Run Order ==============================")
    print("\\t             [node type]\\t          [start]\\t  [first]\\t [avg ms]\\t     [%]\\t"
          "  [cdf%]\\t  [mem KB]\\t[times called]\\t[Name]")
    print("\\t         FULLY_CONNECTED\\t            0.000\\t    0.004\\t    0.003\\t 60.000%\\t"
          " 60.000%\\t     0.000\\t        1\\t[dense_1]:0")
    print("\\t         FULLY_CONNECTED\\t            0.004\\t    0.002\\t    0.002\\t 40.000%\\t"
          "100.000%\\t     0.000\\t        1\\t[Identity]:1")
    print("")
    print("Number of nodes executed: 2")
    print("============================== Summary by node type ==============================")
    print("\\t             [Node type]\\t  [count]\\t  [avg ms]\\t    [avg %]\\t    [cdf %]\\t"
          "  [mem KB]\\t[times called]")
    print("\\t         FULLY_CONNECTED\\t        2\\t     0.005\\t   100.000%\\t   100.000%\\t"
          "     0.000\\t        2")
'''


@pytest.fixture()
def benchmark_model_binary(tmp_path):
    """Path of an executable that behaves like TFLite's benchmark_model (see above)."""
    path = tmp_path / "bin" / "benchmark_model"
    path.parent.mkdir()
    path.write_text(BENCHMARK_MODEL_SCRIPT.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


@pytest.fixture()
def no_tool_path(tmp_path, monkeypatch):
    """A PATH with no programs at all: no benchmark_model, adb or ssh."""
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return str(empty)


