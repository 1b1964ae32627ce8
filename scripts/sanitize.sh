#!/usr/bin/env bash
# Sanitizer builds of the CPU core and mascot_train, and the C++-facing tests run under them.
#
#   scripts/sanitize.sh [asan|tsan|all]      (default all)
#
# asan: AddressSanitizer + UndefinedBehaviorSanitizer (-fno-omit-frame-pointer, every report
#       fatal: halt_on_error / -fno-sanitize-recover=all, leaks checked), build dir build-asan/.
#       Runs tests/cpp/test_core.cc (readers, writers, bad input, reorder, synthetic data,
#       every method trained on tiny data with 3 threads, model save/load), then mascot_train
#       end to end: every method on small synthetic data, text/.mrat input, --save/--report,
#       and bad inputs (which must fail with one clear line, not a sanitizer report).
# tsan: ThreadSanitizer, build dir build-tsan/, the training tests and mascot_train with 4
#       threads.  The SGD kernels are Hogwild (paper §II, docs/design.md): threads read and write
#       factor rows without locks on purpose, so those races -- and only those -- are
#       suppressed by scripts/tsan.supp, which names the kernel functions.  Any other race
#       (schedule, switching, reductions, report) fails the run.
# cuda-emu: AddressSanitizer + UndefinedBehaviorSanitizer over the CUDA backend on the CPU
#       emulator (MASCOT_CUDA=EMU, docs/cuda.md), build dir build-asan-emu/: the emulator's
#       self-test, then the runs of scripts/cuda_sanitize.sh (every method, k = 32/64/96, both
#       roundings, chunk order) with --device cuda, the CUDA error paths, and an out-of-memory
#       run.  Device memory is host heap there, so an out-of-bounds access of a kernel to a
#       device buffer (or to a __shared__ table, a static there) is an ASan report: the
#       emulator's stand-in for compute-sanitizer memcheck, for the backend's logic.  Device
#       memory left allocated at exit fails the run (MASCOT_CUDA_EMU_LEAK_CHECK=1: memcheck's
#       --leak-check full).  It does not replace memcheck on a GPU (docs/cuda.md says what the
#       emulator does not model).
# cuda-emu-race: ThreadSanitizer over the CUDA backend on the emulator, build dir
#       build-tsan-emu/: every emulated thread is a TSan fiber, ordered only by what orders
#       GPU threads (launch, __syncthreads, warp collectives; blocks one after another), so a
#       missing barrier is a race report -- the emulator's stand-in for compute-sanitizer
#       racecheck, extended to global memory within a block.  Hogwild's intended row races are
#       suppressed by scripts/tsan_cuda_emu.supp (the row accessors only).  Runs the self-test
#       (and requires a report for its kernel with a missing barrier), then every method with
#       switching, and the store write mode.
# asan and tsan build without the CUDA backend (MASCOT_CUDA=OFF).  CXX picks the compiler
# (default c++).  Exit status 0 only when every run is clean.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in asan|tsan|cuda-emu|cuda-emu-race|all) ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|cuda-emu|cuda-emu-race|all]" >&2; exit 2 ;; esac
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

build() {  # build DIR FLAGS [CMAKE ARGS...]   (TARGETS: what to build; later -D args win)
  local dir=$1 flags=$2; shift 2
  mkdir -p "$dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMASCOT_CUDA=OFF -DMASCOT_BUILD_CPP_TESTS=ON "$@" \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" > "$dir/sanitize-configure.log" 2>&1 \
    || { cat "$dir/sanitize-configure.log"; exit 2; }
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$JOBS" --target ${TARGETS:-mascot_cpp_tests mascot_train} > "$dir/sanitize-build.log" 2>&1 \
    || { tail -40 "$dir/sanitize-build.log"; exit 2; }
}

fail() { echo "sanitize.sh: FAILED: $*" >&2; exit 1; }

METHODS=(fp32 fp16 mascot-n1 mascot mascot-n2 mascot-naive mpt muppet afp)  # every method, in the e2e runs

# Runs mascot_train and requires success with no sanitizer output.
train_ok() {
  local exe=$1; shift
  local err; err=$(mktemp)
  "$exe" --quiet "$@" > /dev/null 2> "$err" || { cat "$err"; fail "mascot_train $*"; }
  if grep -qE 'Sanitizer|runtime error' "$err"; then cat "$err"; fail "sanitizer report: mascot_train $*"; fi
  rm -f "$err"
}

# Runs mascot_train on bad input: must exit 1 or 2 (never a signal) with exactly one line "mascot_train: error: ...".
train_bad() {
  local exe=$1 needle=$2; shift 2
  local err rc=0; err=$(mktemp)
  "$exe" --quiet "$@" > /dev/null 2> "$err" || rc=$?
  [[ ( $rc -eq 1 || $rc -eq 2 ) && $(wc -l < "$err") -eq 1 ]] && grep -q "mascot_train: error: .*$needle" "$err" \
    || { cat "$err"; fail "bad input not rejected cleanly (rc $rc): mascot_train $*"; }
  rm -f "$err"
}

e2e() {  # e2e EXE THREADS
  local exe=$1 threads=$2 t; t=$(mktemp -d)
  for m in "${METHODS[@]}"; do
    train_ok "$exe" --dataset synthetic-ml10m:0.002 --k 16 --epochs 4 --method "$m" --groups 4 --warmup 1 \
      --period 1 --threshold 1.01 --threads "$threads"
  done
  printf '0 0 4\n1 1 3\n2 0 5\n0 2 1\n1 2 2\n2 1 4\n' > "$t/train.txt"
  train_ok "$exe" --train "$t/train.txt" --k 4 --epochs 2 --groups 1 --threads "$threads" --save "$t/model" \
    --report "$t/r.json"
  [[ -f $t/model/P.npy && -f $t/r.json ]] || fail "no model/report written"
  printf '0 0 4\n1 1\n' > "$t/bad.txt"
  train_bad "$exe" "bad.txt:2: expected 3 fields" --train "$t/bad.txt" --k 4 --epochs 1 --save "$t/m2"
  printf 'MASCOTR\0\1\0\0\0' > "$t/bad.mrat"
  train_bad "$exe" "truncated header" --train "$t/bad.mrat" --k 4 --epochs 1
  train_bad "$exe" "k must be" --dataset synthetic-ml10m:0.002 --k 0
  [[ ! -e $t/m2 ]] || fail "partial model left behind"
  rm -rf "$t"
}

ASAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g -O1"
ASAN_RUN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1

if [[ $what == asan || $what == all ]]; then
  start=$SECONDS
  echo "== ASan + UBSan build (build-asan/)"
  # kernels at -O1 too: GCC's UBSan instrumentation of the -O3-unrolled kernels takes far too long
  build build-asan "$ASAN_FLAGS" -DMASCOT_KERNEL_OPT=-O1
  export ASAN_OPTIONS=$ASAN_RUN_OPTIONS
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  echo "   built in $((SECONDS - start)) s; running tests/cpp/test_core.cc"
  t0=$SECONDS
  build-asan/mascot_cpp_tests || fail "mascot_cpp_tests under ASan/UBSan"
  echo "   mascot_train end to end (every method, text input, --save, bad inputs)"
  e2e build-asan/mascot_train 2
  echo "== ASan + UBSan: clean (tests $((SECONDS - t0)) s, total $((SECONDS - start)) s)"
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [[ $what == cuda-emu || $what == all ]]; then
  start=$SECONDS
  echo "== ASan + UBSan over the CUDA backend on the emulator (build-asan-emu/)"
  TARGETS="mascot_train mascot_cuda_emu_tests" build build-asan-emu "$ASAN_FLAGS" -DMASCOT_KERNEL_OPT=-O1 \
    -DMASCOT_CUDA=EMU
  # detect_stack_use_after_return=0: with it, every emulated thread (a fiber) gets its own
  # fake stack and a run takes ~20x longer (measured: 18 s against 0.9 s, mostly system time)
  export ASAN_OPTIONS=${ASAN_RUN_OPTIONS/detect_stack_use_after_return=1/detect_stack_use_after_return=0}
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 MASCOT_CUDA_EMU_LEAK_CHECK=1
  echo "   built in $((SECONDS - start)) s; the emulator's self-test"
  t0=$SECONDS
  build-asan-emu/mascot_cuda_emu_tests > /dev/null || fail "mascot_cuda_emu_tests under ASan/UBSan"
  # ... and this check can fail: a kernel's write one past a device buffer (ASan:
  # heap-buffer-overflow) or a __shared__ array (UBSan's bounds check reports it first)
  for c in device-out-of-bounds:"AddressSanitizer: heap-buffer-overflow" \
           shared-out-of-bounds:"runtime error: index 64 out of bounds"; do
    k=${c%%:*} want=${c#*:}
    if out=$(build-asan-emu/mascot_cuda_emu_tests "$k" 2>&1); then fail "no report for case $k"; fi
    grep -q "$want" <<<"$out" && grep -q "in ${k//-/_}" <<<"$out" ||
      { echo "$out" | tail -20; fail "case $k: no '$want' report naming the kernel"; }
  done
  exe=build-asan-emu/mascot_train
  echo "   every method on the emulated device (the runs of scripts/cuda_sanitize.sh)"
  # as in scripts/cuda_sanitize.sh: warm-up 1 and period 1, so that q-error sampling,
  # switching and the FP32 conversion all run
  common=(--dataset synthetic-ml10m:0.002 --epochs 4 --groups 8 --warmup 1 --period 1 --threshold 1.05 --device cuda)
  for m in "${METHODS[@]}"; do
    train_ok "$exe" "${common[@]}" --method "$m" --k 64
  done
  train_ok "$exe" "${common[@]}" --method mascot --k 96 --rounding stochastic
  train_ok "$exe" "${common[@]}" --method mascot --k 64 --order chunk
  for m in mpt muppet afp; do train_ok "$exe" "${common[@]}" --method "$m" --k 32 --rounding stochastic; done
  t=$(mktemp -d)
  train_ok "$exe" "${common[@]}" --method mascot --k 32 --save "$t/model" --report "$t/r.json"
  [[ -f $t/model/P.npy && -f $t/r.json ]] || fail "no model/report written (--device cuda)"
  echo "   CUDA error paths (one clear line, no sanitizer report, no device memory left)"
  train_bad "$exe" "k must be a multiple of 32" "${common[@]}" --method fp32 --k 48
  # a job larger than the device: refused by the memory plan before any allocation
  MASCOT_CUDA_EMU_MEMORY_MIB=16 train_bad "$exe" "does not fit in CUDA device memory" --dataset synthetic-ml10m:0.05 \
    --k 512 --epochs 1 --device cuda --save "$t/m2"
  [[ ! -e $t/m2 ]] || fail "partial model left behind (job larger than the device)"
  rm -rf "$t"
  # out of device memory at each allocation in turn: one clear line, everything freed
  scripts/cuda_emu_faults.sh "$exe" || fail "scripts/cuda_emu_faults.sh under ASan/UBSan"
  echo "== ASan + UBSan on the emulated CUDA backend: clean (runs $((SECONDS - t0)) s, total $((SECONDS - start)) s)"
  unset ASAN_OPTIONS UBSAN_OPTIONS MASCOT_CUDA_EMU_LEAK_CHECK
fi

if [[ $what == cuda-emu-race || $what == all ]]; then
  start=$SECONDS
  echo "== ThreadSanitizer over the CUDA backend on the emulator (build-tsan-emu/)"
  # MASCOT_EMU_TSAN: the emulator announces its fibers and the GPU's orderings to TSan
  TARGETS="mascot_train mascot_cuda_emu_tests" build build-tsan-emu "-fsanitize=thread -DMASCOT_EMU_TSAN=1 -g -O1" \
    -DMASCOT_KERNEL_OPT=-O1 -DMASCOT_CUDA=EMU
  supp="suppressions=$PWD/scripts/tsan_cuda_emu.supp"
  export TSAN_OPTIONS="$supp halt_on_error=1 report_signal_unsafe=0"
  echo "   built in $((SECONDS - start)) s; the emulator's self-test"
  t0=$SECONDS
  build-tsan-emu/mascot_cuda_emu_tests > /dev/null || fail "mascot_cuda_emu_tests under TSan"
  # ... and this check can fail: the self-test's kernel without its barrier
  if out=$(build-tsan-emu/mascot_cuda_emu_tests shared-race 2>&1); then fail "TSan missed case shared-race"; fi
  grep -q "WARNING: ThreadSanitizer: data race" <<<"$out" && grep -q "in shared_race\| shared_race " <<<"$out" ||
    { echo "$out" | tail -20; fail "case shared-race: no data race report naming the kernel"; }
  echo "   every method on the emulated device, switching on (k = 32, 3 epochs)"
  exe=build-tsan-emu/mascot_train
  common=(--dataset synthetic-ml10m:0.002 --epochs 3 --groups 8 --warmup 1 --period 1 --threshold 1.05 --device cuda
          --k 32)
  for m in "${METHODS[@]}"; do
    train_ok "$exe" "${common[@]}" --method "$m"
  done
  MASCOT_CUDA_WRITES=store train_ok "$exe" "${common[@]}" --method mascot
  train_ok "$exe" "${common[@]}" --method mascot --k 96 --rounding stochastic
  echo "== TSan on the emulated CUDA backend: clean (runs $((SECONDS - t0)) s, total $((SECONDS - start)) s)"
  unset TSAN_OPTIONS
fi

if [[ $what == tsan || $what == all ]]; then
  start=$SECONDS
  echo "== ThreadSanitizer build (build-tsan/)"
  build build-tsan "-fsanitize=thread -g -O1"
  export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=1 second_deadlock_stack=1 report_signal_unsafe=0"
  echo "   built in $((SECONDS - start)) s; running the training tests (Hogwild races suppressed: scripts/tsan.supp)"
  t0=$SECONDS
  # every suppressed Hogwild race still costs TSan a symbolization: smaller data keeps this to
  # minutes while still giving each epoch several 4096-rating chunks for the threads to share
  MASCOT_TEST_SCALE=0.004 build-tsan/mascot_cpp_tests every_method || fail "mascot_cpp_tests under TSan"
  build-tsan/mascot_cpp_tests synthetic || fail "mascot_cpp_tests under TSan"
  e2e build-tsan/mascot_train 4
  echo "== TSan: clean (tests $((SECONDS - t0)) s, total $((SECONDS - start)) s)"
fi
