#!/usr/bin/env bash
# compute-sanitizer on a small run of every method the cuda device implements:
#   memcheck on every method (out-of-bounds and misaligned accesses, leaks of device memory),
#   racecheck on the kernels that use shared memory (the MASCOT family's hot-group tables and
#   the evaluation kernel's per-warp sums: mascot, mascot-naive; mascot-n2 too).
# Exits non-zero on any sanitizer error or failed run.  Needs a CUDA device and mascot_train
# (pip install --no-build-isolation . puts it in $PYTHON's scripts folder; PATH is the fallback).
#   scripts/cuda_sanitize.sh [LOGDIR]        (default: results/sanitize)
set -uo pipefail
cd "$(dirname "$0")/.."
logdir="${1:-results/sanitize}"
mkdir -p "$logdir"
san="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [ ! -x "$san" ]; then echo "cuda_sanitize: compute-sanitizer not found" >&2; exit 2; fi
py="${PYTHON:-python3}"
# mascot_train of the Python that has mascot installed (its scripts folder), else PATH's
exe="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/mascot_train"
[ -x "$exe" ] || exe="$(command -v mascot_train)" || { echo "cuda_sanitize: mascot_train not found" >&2; exit 2; }

# small data, k = 64 (E = 2) and one odd k (96: E = 3, the scalar/float2 load paths); warm-up
# 1 and period 1 so that q-error sampling, switching and the FP32 conversion all run
common=(--dataset synthetic-ml10m:0.002 --epochs 4 --groups 8 --warmup 1 --period 1 --threshold 1.05
        --device cuda --quiet)
fail=0
run() {  # tool name mascot_train-args...
  local tool="$1" name="$2"; shift 2
  local log="$logdir/$tool-$name.log" extra=()
  [ "$tool" = memcheck ] && extra=(--leak-check full)
  if "$san" --tool "$tool" --error-exitcode 99 "${extra[@]}" "$@" >"$log" 2>&1; then
    echo "ok    $tool $name"
  else
    echo "FAIL  $tool $name (see $log)"; tail -n 20 "$log"; fail=1
  fi
}
for m in fp32 fp16 mascot-n1 mascot-n2 mascot mascot-naive mpt muppet afp; do
  run memcheck "$m-k64" "$exe" "${common[@]}" --method "$m" --k 64
done
run memcheck "mascot-k96-stochastic" "$exe" "${common[@]}" --method mascot --k 96 --rounding stochastic
run memcheck "mascot-chunk" "$exe" "${common[@]}" --method mascot --k 64 --order chunk
for m in mpt muppet afp; do
  run memcheck "$m-k32-stochastic" "$exe" "${common[@]}" --method "$m" --k 32 --rounding stochastic
done
for m in mascot mascot-naive mascot-n2; do
  run racecheck "$m-k64" "$exe" "${common[@]}" --method "$m" --k 64
done
# the q-error hook's accumulation kernel (the SGD kernel's sampling code on given gradients)
code='import numpy as np; from mascot import _core
G = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
print(_core._testing.cuda_qerror(G, (np.arange(2000) % 5).astype(np.int32), 5, 3))'
run memcheck qerror-hook "$(command -v "$py")" -c "$code"
exit $fail
