"""Parser tests on output in the format of tensorflow/lite/tools/benchmark (benchmark_model.cc,
profiling_listener.cc) and tensorflow/core/util/stats_calculator.cc."""

import pytest

from tfimp.profile import ProfilingError, parse_benchmark_output

OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/mobilenet_quant_v1_224.tflite]
INFO: Enable op profiling: [1]
INFO: #threads used for CPU inference: [1]
INFO: Loaded model /data/local/tmp/mobilenet_quant_v1_224.tflite
INFO: The input model file size (MB): 4.27635
INFO: Initialized session in 38.467ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if \
exceeding 150 seconds.
INFO: count=7 first=83235 curr=80112 min=78020 max=83235 avg=80390.6 std=1593

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if \
exceeding 150 seconds.
INFO: count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929

INFO: Inference timings in us: Init: 38467, First inference: 83235, Warmup (avg): 80390.6, \
Inference (avg): 79732
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only \
APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at \
your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=6.75 overall=8.5
INFO: Overall peak memory footprint (MB) via periodic monitoring: 14.25
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 14 MB
INFO: Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t\
  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    1.171\t    1.171\t100.000%\t100.000%\t\
     0.000\t        1\tAllocateTensors/0

INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t\
  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    4.269\t    4.269\t  5.358%\t  5.358%\t\
     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0
\t       DEPTHWISE_CONV_2D\t            4.270\t    2.150\t    2.150\t  2.698%\t  8.056%\t\
     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]:1
\t                 SOFTMAX\t           79.443\t    0.029\t    0.029\t  0.036%\t  8.092%\t\
     0.000\t        1\t[MobilenetV1/Predictions/Softmax]:30

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t\
  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.000\t    4.269\t    4.269\t  5.358%\t  5.358%\t\
     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0

Number of nodes executed: 31
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t\
[times called]
\t                 CONV_2D\t       15\t    71.130\t    89.270%\t    89.270%\t     0.000\t       15
\t       DEPTHWISE_CONV_2D\t       13\t     8.549\t    10.730%\t   100.000%\t     0.000\t       13
\t                 SOFTMAX\t        1\t     0.000\t     0.000%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929
Memory (bytes): count=0
31 nodes observed
"""


def test_timings_line():
    f = parse_benchmark_output(OUTPUT)
    assert (f["init_us"], f["first_us"], f["warmup_avg_us"], f["avg_us"]) == (
        38467, 83235, 80390.6, 79732)


def test_run_statistics_of_warmup_and_regular_runs():
    f = parse_benchmark_output(OUTPUT)
    assert f["warmup_runs"] == 7 and f["runs"] == 50
    assert (f["min_us"], f["max_us"], f["std_us"]) == (77385, 88213, 1929)


def test_memory_lines_in_bytes():
    f = parse_benchmark_output(OUTPUT)
    assert f["mem_init_bytes"] == int(6.75 * 1024 * 1024)
    assert f["mem_increase_bytes"] == int(8.5 * 1024 * 1024)
    assert f["peak_memory_bytes"] == int(14.25 * 1024 * 1024)


def test_operator_tables_of_the_regular_runs_only():
    f = parse_benchmark_output(OUTPUT)
    nodes, types = f["op_profile"], f["op_summary"]
    assert [r.node_type for r in nodes] == ["CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"]
    assert "AllocateTensors" not in {r.node_type for r in nodes}  # initialization table
    assert nodes[1].name == "[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]:1"
    assert nodes[1].start_ms == 4.270 and nodes[1].avg_ms == 2.150 and nodes[1].percent == 2.698
    assert [(r.node_type, r.count, r.avg_ms) for r in types] == [
        ("CONV_2D", 15, 71.130), ("DEPTHWISE_CONV_2D", 13, 8.549), ("SOFTMAX", 1, 0.0)]
    assert types[0].cdf_percent == 89.270 and types[0].times_called == 15


def test_without_profiling_or_memory_the_fields_are_absent():
    text = ("INFO: count=1 curr=1402\n\nINFO: count=2730 curr=361(all same)\n\n"
            "INFO: Inference timings in us: Init: 3470, First inference: 1402, "
            "Warmup (avg): 1402, Inference (avg): 361\n")
    f = parse_benchmark_output(text)
    assert f["op_profile"] == () and f["op_summary"] == ()
    assert "mem_increase_bytes" not in f and "peak_memory_bytes" not in f
    assert f["runs"] == 2730 and f["min_us"] == f["max_us"] == 361 and f["std_us"] == 0


def test_large_values_in_exponent_notation_and_nan():
    text = ("INFO: Inference timings in us: Init: 1.23457e+06, First inference: 2.5e+06, "
            "Warmup (avg): nan, Inference (avg): 2.1e+06\n")
    f = parse_benchmark_output(text)
    assert f["init_us"] == 1234570 and f["avg_us"] == 2100000 and f["warmup_avg_us"] is None


def test_older_summary_line():
    f = parse_benchmark_output(
        "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9")
    assert (f["init_us"], f["warmup_avg_us"], f["avg_us"]) == (38467, 83235, 79760.9)


def test_output_without_timings_is_an_error_that_shows_the_output():
    with pytest.raises(ProfilingError, match="Inference timings in us(.|\n)*Failed to mmap"):
        parse_benchmark_output("ERROR: Failed to mmap model /x.tflite\n")
