#!/usr/bin/env bash
# Out-of-device-memory at every allocation of the CUDA backend, in turn, on the emulator
# (MASCOT_CUDA=EMU builds only; cuda/emu/cuda_emu.cc):
#
#   scripts/cuda_emu_faults.sh MASCOT_TRAIN [METHOD...]     (default methods: mascot mpt muppet afp)
#
# For N = 1, 2, ... the N-th cudaMalloc of a small training run fails
# (MASCOT_CUDA_EMU_FAIL_ALLOC=N), until a run makes fewer than N allocations and succeeds.
# Every failing run must exit with status 1 and exactly one line "mascot_train: error: ...
# out of device memory ...", leave no partial model behind (--save), and free every device
# allocation (MASCOT_CUDA_EMU_LEAK_CHECK=1 turns memory left allocated at exit into status 99).
# The run switches groups (warm-up 1, period 1, low threshold), so the allocations made in
# the middle of training -- the FP32 rows at the first switch, each switch's id list -- fail
# too.  Used by scripts/cuda_emu_check.sh and scripts/sanitize.sh cuda-emu (under ASan).
set -uo pipefail
exe="${1:?usage: scripts/cuda_emu_faults.sh MASCOT_TRAIN [METHOD...]}"
shift
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(mascot mpt muppet afp)
"$exe" --device cuda --dry-run --dataset synthetic-ml10m:0.001 >/dev/null 2>&1 ||
  { echo "cuda_emu_faults: $exe has no (emulated) CUDA device" >&2; exit 2; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
for m in "${methods[@]}"; do
  n=1
  while :; do
    rm -rf "$t/model"
    rc=0
    MASCOT_CUDA_EMU_FAIL_ALLOC=$n MASCOT_CUDA_EMU_LEAK_CHECK=1 "$exe" --quiet --dataset synthetic-ml10m:0.001 \
      --k 32 --epochs 3 --groups 4 --warmup 1 --period 1 --threshold 1.01 --device cuda --method "$m" \
      --save "$t/model" >/dev/null 2>"$t/err" || rc=$?
    [ $rc -eq 0 ] && break  # fewer than n allocations: every one has failed once
    if [ $rc -ne 1 ] || [ "$(wc -l <"$t/err")" -ne 1 ] ||
       ! grep -q "^mascot_train: error: .*out of device memory" "$t/err"; then
      echo "cuda_emu_faults: $m, allocation $n failing: exit status $rc, stderr:" >&2
      cat "$t/err" >&2
      exit 1
    fi
    [ -e "$t/model" ] && { echo "cuda_emu_faults: $m, allocation $n failing: a partial model was left" >&2; exit 1; }
    n=$((n + 1))
    [ $n -gt 500 ] && { echo "cuda_emu_faults: $m: more than 500 allocations?" >&2; exit 1; }
  done
  [ $n -gt 1 ] || { echo "cuda_emu_faults: $m made no device allocation (is this the emulated build?)" >&2; exit 1; }
  echo "   $m: each of its $((n - 1)) device allocations failed in turn: one clear error each, nothing leaked"
done
