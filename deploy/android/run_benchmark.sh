#!/bin/sh
# Benchmarks the bundled model on an Android device with the official `benchmark_model`.
# usage: ./run_benchmark.sh /path/to/benchmark_model [THREADS] [RUNS]
#   ANDROID_SERIAL=SERIAL picks the device when several are connected (adb reads it).
# Get benchmark_model for android_arm64 from the LiteRT / TensorFlow Lite releases
# ("TFLite Model Benchmark Tool") or build it with
#   bazel build -c opt --config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model
set -eu
cd "$(dirname "$0")"
MODEL="{{model_file}}"
SHA256="{{sha256}}"
DEST=/data/local/tmp/tfimp
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 /path/to/benchmark_model [THREADS] [RUNS]" >&2
    exit 2
fi
BINARY="$1"
THREADS="${2:-{{threads}}}"
RUNS="${3:-{{runs}}}"

local_sha="$(sha256sum "$MODEL" | cut -d' ' -f1)"
if [ "$local_sha" != "$SHA256" ]; then
    echo "error: $MODEL has sha256 $local_sha, expected $SHA256 (see manifest.json);" \
         "refusing to benchmark a changed model. Rebuild the bundle with tfimp bundle." >&2
    exit 3
fi
command -v adb >/dev/null || { echo "error: adb not found on PATH (Android platform-tools)" >&2; exit 2; }

adb shell mkdir -p "$DEST"
adb push "$MODEL" "$DEST/$MODEL"
adb push "$BINARY" "$DEST/benchmark_model"
adb shell chmod +x "$DEST/benchmark_model"
remote_sha="$(adb shell sha256sum "$DEST/$MODEL" | cut -d' ' -f1)"
if [ "$remote_sha" != "$SHA256" ]; then
    echo "error: the model on the device has sha256 $remote_sha, expected $SHA256" >&2
    exit 3
fi

run() {
    echo "== benchmark_model $*"
    adb shell "$DEST/benchmark_model" --graph="$DEST/$MODEL" --num_runs="$RUNS" \
        --warmup_runs=10 "$@"
}
run --num_threads="$THREADS" --use_xnnpack=true --enable_op_profiling=true \
    --report_peak_memory_footprint=true
run --num_threads=1 --use_xnnpack=true
run --num_threads="$THREADS" --use_xnnpack=false
