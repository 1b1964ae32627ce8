#!/usr/bin/env bash
# The GPU check, one command on a machine with a CUDA device (issue 4):
#   build (pip install --no-build-isolation .) -> GPU tests (pytest -m gpu) -> compute-sanitizer
#   (scripts/cuda_sanitize.sh) -> the rest of the suite -> benchmarks/gpu_bench.py.
#
#   scripts/gpu_check.sh [all|build|test|sanitize|bench|hogwild] [gpu_bench.py args...]
#
# Output goes to $OUT when set (a device machine's return folder), else results/gpu-check.
# `all` = build + GPU tests + sanitize + the rest of the suite (no benchmark: each device command has a 10-minute limit).
# `bench` builds if needed, then runs benchmarks/gpu_bench.py resumably: its state lives in
# results/gpu-bench/ ($GPU_BENCH_STATE overrides; git-ignored; it survives between commands while the device machine stays
# warm, and a session can carry it: copy $OUT/bench/runs.json back to results/gpu-bench/ and
# pass that path as `carry`), is copied to $OUT/bench/ after every part, and a part stops within
# BENCH_BUDGET seconds (default 500) with status 3 while runs remain: repeat until it exits 0.
# The benchmark runs the issue's targets first (k = 128: fp32, mascot-n1, mascot on every
# dataset, optimised vs naive lookup), then k = 64, then the other methods.
# `hogwild` builds if needed, then runs benchmarks/gpu_hogwild_sweep.py (add vs store writes,
# default vs device-filling warps, on synthetic-ml10m: a few minutes) into $OUT/hogwild.
# Device budget: 15 minutes for a whole task, machine starts included, and at most 10 minutes
# a command.  That holds scripts/gpu_first_light.sh (one command, ~9 minutes: build for sm_90,
# memcheck, GPU tests, ncu, add vs store, measured epochs, a speed table), not `all` (two
# architectures, 18 sanitizer runs and the whole suite) nor the ~76-run `bench`: use this
# script's stages one at a time on a later device lease.  A failing kernel is easiest to
# locate with CUDA_LAUNCH_BLOCKING=1 on that one test.
set -uo pipefail
cd "$(dirname "$0")/.."
stage="${1:-all}"
[ $# -gt 0 ] && shift
out="${OUT:-results/gpu-check}"
mkdir -p "$out"
py="${PYTHON:-python3}"
# CUDA on PATH for nvcc / compute-sanitizer when installed in the usual place
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"

build() {
  echo "== build"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  nvidia-smi 2>/dev/null | sed -n 3p || true   # the driver's highest CUDA version (the static cudart 13 needs r580+)
  nvcc --version 2>/dev/null | tail -n 1 || true
  local t0=$SECONDS
  "$py" -m pip install --no-build-isolation -q . >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; return 1; }
  echo "built in $((SECONDS - t0)) s"
  "$py" -c "import mascot, sys; why = mascot.cuda_unavailable_reason(); \
print('HAS_CUDA', mascot.HAS_CUDA, 'devices', mascot.cuda_device_count(), why); sys.exit(1 if why else 0)" ||
    { echo "gpu_check: this build cannot use the GPU (the reason is on the line above)"; return 1; }
}
tests_gpu() {
  echo "== GPU tests (pytest -m gpu)"
  # --continue-on-collection-errors: a test module whose optional extras (pandas) are missing
  # must not stop the GPU tests from running
  "$py" -m pytest -q -m gpu -rs -p no:cacheprovider --continue-on-collection-errors 2>&1 | tee "$out/pytest-gpu.log" | tail -n 30
  local a=${PIPESTATUS[0]}
  # a skipped GPU test on a GPU machine is a failure of this check (a module skipped for a
  # missing optional extra, "could not import 'pandas'", holds no GPU test)
  if grep "SKIPPED" "$out/pytest-gpu.log" | grep -qv "could not import"; then echo "gpu_check: GPU tests were skipped"; a=1; fi
  if ! grep -qE "[0-9]+ passed" "$out/pytest-gpu.log"; then echo "gpu_check: no GPU test ran"; a=1; fi
  return "$a"
}
tests_rest() {
  # the rest of the suite on a machine where device "auto" now means CUDA
  echo "== the rest of the suite (pytest -m 'not gpu')"
  "$py" -m pytest -q -m "not gpu" -p no:cacheprovider 2>&1 | tee "$out/pytest-all.log" | tail -n 5
  return "${PIPESTATUS[0]}"
}
sanitize() {
  echo "== compute-sanitizer"
  # a device machine returns at most 8 files from $OUT: the ~17 per-run logs stay in
  # results/sanitize and come back as one file, $OUT/sanitize.log (each log's first 300 lines)
  local logs=results/sanitize rc=0
  rm -rf "$logs"
  scripts/cuda_sanitize.sh "$logs" || rc=$?
  for f in "$logs"/*.log; do [ -f "$f" ] && { echo "===== $f"; head -n 300 "$f"; }; done >"$out/sanitize.log"
  return $rc
}
bench() {
  echo "== benchmarks/gpu_bench.py"
  "$py" -c "import mascot, sys; sys.exit(0 if mascot.HAS_CUDA else 1)" 2>/dev/null || build || return 1
  local state="${GPU_BENCH_STATE:-results/gpu-bench}"
  mkdir -p "$state" "$out/bench"
  # a fresh machine with the state in $OUT only (e.g. OUT pointing at a kept folder)
  if [ ! -f "$state/runs.json" ] && [ -f "$out/bench/runs.json" ]; then
    cp "$out/bench/runs.json" "$state/"
    [ -f "$out/bench/failed.json" ] && cp "$out/bench/failed.json" "$state/"
  fi
  local rc=0
  "$py" benchmarks/gpu_bench.py --out "$state" --budget-seconds "${BENCH_BUDGET:-500}" "$@" || rc=$?
  cp -r "$state/." "$out/bench/" 2>/dev/null || true
  return $rc
}
hogwild() {
  echo "== benchmarks/gpu_hogwild_sweep.py"
  "$py" -c "import mascot, sys; sys.exit(0 if mascot.HAS_CUDA else 1)" 2>/dev/null || build || return 1
  mkdir -p "$out/hogwild"
  "$py" benchmarks/gpu_hogwild_sweep.py --out "$out/hogwild" "$@"
}
case "$stage" in
  build) build ;;
  test) tests_gpu; a=$?; tests_rest && exit $a; exit 1 ;;
  sanitize) sanitize ;;
  bench) bench "$@" ;;
  hogwild) hogwild "$@" ;;
  all)
    rc=0
    build || exit 1
    # most important first: a command past its 10-minute limit is killed, and what is in $OUT
    # by then still comes back
    tests_gpu || rc=1
    sanitize || rc=1
    tests_rest || rc=1
    exit $rc ;;
  *) echo "usage: scripts/gpu_check.sh [all|build|test|sanitize|bench|hogwild] [gpu_bench.py args...]" >&2; exit 2 ;;
esac
