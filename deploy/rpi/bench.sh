#!/bin/sh
# Latency of the bundled model on this board: the LiteRT Python interpreter (run.py --bench),
# then the C++ `benchmark_model` when it is on PATH or named by $BENCHMARK_MODEL.
# usage: ./bench.sh [THREADS] [RUNS]
set -eu
cd "$(dirname "$0")"
THREADS="${1:-{{threads}}}"
RUNS="${2:-{{runs}}}"
PYTHON="${PYTHON:-python3}"
MODEL="{{model_file}}"

echo "== LiteRT interpreter (threads=$THREADS, runs=$RUNS)"
"$PYTHON" run.py --bench "$RUNS" --threads "$THREADS"

BENCH="${BENCHMARK_MODEL:-$(command -v benchmark_model || true)}"
if [ -n "$BENCH" ]; then
    echo "== benchmark_model: $BENCH"
    "$PYTHON" run.py --check >/dev/null
    "$BENCH" --graph="$MODEL" --num_threads="$THREADS" --num_runs="$RUNS" \
        --warmup_runs=5 --use_xnnpack=true --enable_op_profiling=true
else
    echo "== benchmark_model not found (set BENCHMARK_MODEL=/path/to/benchmark_model to add it)"
fi
