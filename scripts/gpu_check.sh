#!/usr/bin/env bash
# The GPU check, one command on a machine with a CUDA device (issue 4):
#   build (pip install --no-build-isolation .) -> GPU tests (pytest -m gpu, and the whole
#   suite) -> compute-sanitizer (scripts/cuda_sanitize.sh) -> benchmarks/gpu_bench.py.
#
#   scripts/gpu_check.sh [all|build|test|sanitize|bench] [gpu_bench.py args...]
#
# Output goes to $OUT when set (a device machine's return folder), else results/gpu-check.
# `bench` is resumable (results in $OUT/bench/runs.json) and stops within BENCH_BUDGET seconds
# (default 500) with status 3 while runs remain: repeat the command until it exits 0, carrying
# the bench folder along (the device machine keeps nothing between sessions).  `all` runs
# build + test + sanitize + one bench part; expect ~10 minutes for build/test/sanitize on an
# H100 (not yet measured) and the full benchmark in 5-8 more parts of < 10 minutes each.
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
  local t0=$SECONDS
  "$py" -m pip install --no-build-isolation -q . >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; return 1; }
  echo "built in $((SECONDS - t0)) s"
  "$py" -c "import mascot, sys; print('HAS_CUDA', mascot.HAS_CUDA, 'devices', mascot.cuda_device_count()); \
sys.exit(0 if mascot.HAS_CUDA and mascot.cuda_device_count() > 0 else 1)" ||
    { echo "gpu_check: the build has no CUDA backend or sees no device"; return 1; }
}
tests() {
  echo "== GPU tests (pytest -m gpu), then the whole suite"
  "$py" -m pytest -q -m gpu -rs -p no:cacheprovider 2>&1 | tee "$out/pytest-gpu.log" | tail -n 30
  local a=${PIPESTATUS[0]}
  # a skipped GPU test on a GPU machine is a failure of this check
  if grep -q "SKIPPED" "$out/pytest-gpu.log"; then echo "gpu_check: GPU tests were skipped"; a=1; fi
  "$py" -m pytest -q -p no:cacheprovider 2>&1 | tee "$out/pytest-all.log" | tail -n 5
  local b=${PIPESTATUS[0]}
  [ "$a" -eq 0 ] && [ "$b" -eq 0 ]
}
sanitize() {
  echo "== compute-sanitizer"
  scripts/cuda_sanitize.sh "$out/sanitize"
}
bench() {
  echo "== benchmarks/gpu_bench.py"
  mkdir -p "$out/bench"
  # resume from a carried results/gpu-bench when $OUT starts empty
  if [ ! -f "$out/bench/runs.json" ] && [ -f results/gpu-bench/runs.json ]; then cp results/gpu-bench/runs.json "$out/bench/"; fi
  "$py" benchmarks/gpu_bench.py --out "$out/bench" --budget-seconds "${BENCH_BUDGET:-500}" "$@"
}
case "$stage" in
  build) build ;;
  test) tests ;;
  sanitize) sanitize ;;
  bench) bench "$@" ;;
  all)
    rc=0
    build || exit 1
    tests || rc=1
    sanitize || rc=1
    BENCH_BUDGET="${BENCH_BUDGET:-240}" bench "$@"; b=$?
    [ $rc -ne 0 ] && exit $rc
    exit $b ;;
  *) echo "usage: scripts/gpu_check.sh [all|build|test|sanitize|bench] [gpu_bench.py args...]" >&2; exit 2 ;;
esac
