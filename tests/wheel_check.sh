#!/usr/bin/env bash
# What a new user does first, from a wheel installed (not editable) in a fresh virtualenv and
# run outside the source tree: list and run the bundled recipes, build device bundles from
# the templates, and load a pruned .keras file in a fresh process, then export it.
#
# usage: tests/wheel_check.sh [PYTHON]     (PYTHON makes the virtualenv; default python3)
# Needs network access to PyPI (or a warm pip cache) for tfimp's dependencies.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/tfimp-wheel-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
step() { printf '\n== wheel check: %s\n' "$*"; }

step "copy the source tree (a stale build/ folder would put old modules into the wheel)"
mkdir -p "$work/src" "$work/run"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$repo/$f" ] && printf '%s\0' "$f"; done \
    | tar -C "$repo" --null -T - -cf - | tar -C "$work/src" -xf -
else
  cp -a "$repo/." "$work/src"
  rm -rf "$work/src/build" "$work/src"/*.egg-info "$work/src"/.venv*
fi

step "build the wheel and install it with its extras in a fresh virtualenv"
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel="$(ls "$work"/dist/tfimp-*.whl)"
"$py" -m pip install -q "${wheel}[all]"
tfimp="$work/venv/bin/tfimp"
cd "$work/run"  # nothing of the source tree is importable from here
"$py" - <<'EOF'
import importlib.util
import tfimp
spec = importlib.util.find_spec("tfimp")
assert "site-packages" in spec.origin, f"tfimp imported from {spec.origin}, not the wheel"
EOF

step "tfimp run --list"
"$tfimp" run --list | tee list.txt
grep -qx lenet_300_100 list.txt

step "tfimp run lenet_300_100 --smoke"
"$tfimp" run lenet_300_100 --smoke --workdir smoke
models=smoke/report/models
test -s "$models/lenet_300_100_float32.tflite" && test -s "$models/lenet_300_100_int8.tflite"

step "device bundles from the installed templates"
"$tfimp" bundle --target rpi "$models/lenet_300_100_float32.tflite" --out rpi --no-profile
"$py" rpi/run.py --check
"$py" rpi/run.py --bench 5 --threads 1
"$tfimp" bundle --target micro "$models/lenet_300_100_int8.tflite" --out micro \
  --board esp32-s3 --no-profile
for f in Makefile main.cc model_check.h tflm.cmake; do test -s "micro/$f"; done
"$tfimp" bundle --target android "$models/lenet_300_100_int8.tflite" --out android --no-profile
test -s android/run_benchmark.sh

step "a pruned .keras file loads in a fresh process and exports"
"$py" - <<'EOF'
import keras
import tfimp

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, name="d"),
                          keras.layers.Dense(10, name="out")])
pruned = tfimp.prune(model, 0.5)
tfimp.update_masks(pruned, step=0, force=True)
pruned.save("pruned.keras")
EOF
"$py" - <<'EOF'
import sys
import tfimp  # noqa: F401  (registers tfimp's Keras classes when Keras loads)
assert "keras" not in sys.modules and "tensorflow" not in sys.modules
import keras
model = keras.models.load_model("pruned.keras")
assert type(model.layers[0]).__name__ == "PruneLowMagnitude", model.layers
EOF
"$tfimp" export pruned.keras -o pruned.tflite -q int8 --representative digits8 --verify digits8
test -s pruned.tflite

step "passed"
