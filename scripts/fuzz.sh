#!/usr/bin/env bash
# Builds and runs the reader fuzz targets (fuzz/targets/<name>.cc, seed corpus fuzz/corpus/<name>/).
#
#   scripts/fuzz.sh TARGET[,TARGET...]|ALL SECONDS    e.g.  scripts/fuzz.sh ALL 60   scripts/fuzz.sh text 300
#   scripts/fuzz.sh --list
#
# C++ targets: fuzz/targets/<name>.cc (mrat, text, model_dir, checkpoint: the C++ readers).
# Python targets: fuzz/python/<name>.py (model_json: MF.load's model.json layer), run with
# atheris when `import atheris` works in ${PYTHON:-python3}, else with its seeded --replay loop;
# they need mascot installed in that Python.
#
# Modes (FUZZ_MODE, default auto):
#   libfuzzer  clang++ -fsanitize=fuzzer,address,undefined: coverage-guided libFuzzer.  New
#              inputs go to build-fuzz/work/<name>/ (the repo corpus is only read); a crash or
#              hang is saved as build-fuzz/artifacts/<name>-crash-* / -timeout-*.
#   replay     where clang's libFuzzer is missing (gcc has none): fuzz/replay_main.cc built with
#              ${CXX:-g++} -fsanitize=address,undefined replays the corpus and then runs seeded
#              random mutations for SECONDS (FUZZ_SEED, default 1); the input that failed is
#              left at build-fuzz/artifacts/<name>-replay-crash.
#   auto       libfuzzer when `clang++ -fsanitize=fuzzer` links, else replay.
# FUZZ_MUTATIONS=N (replay mode, C++): exactly N mutations instead of SECONDS of them (deterministic).
# Exit status: 0 when every target ran clean, 1 on a finding, 2 on usage/build errors.
# Adding a target = one file fuzz/targets/<name>.cc (LLVMFuzzerTestOneInput, see
# fuzz/fuzz_common.h) or fuzz/python/<name>.py (TestOneInput), plus its seed corpus
# fuzz/corpus/<name>/; add any new core source a C++ target needs to CORE_SOURCES below.
set -euo pipefail
cd "$(dirname "$0")/.."

# checkpoint needs the whole CPU trainer and ALS (it resumes a run); kernels.cc is built as the
# portable "generic" variant only (CMakeLists.txt builds AVX2/AVX-512 ones too).
CORE_SOURCES=(cpp/src/error.cc cpp/src/fileutil.cc cpp/src/ratings.cc cpp/src/model.cc
              cpp/src/config.cc cpp/src/params.cc cpp/src/methods.cc cpp/src/context.cc cpp/src/json.cc
              cpp/src/synthetic.cc cpp/src/reorder.cc
              cpp/src/report.cc cpp/src/trainer.cc cpp/src/checkpoint.cc cpp/src/memory_plan.cc
              cpp/src/switching.cc cpp/src/cuda_stubs.cc cpp/src/cpu/cpu_trainer.cc cpp/src/cpu/schedule.cc
              cpp/src/cpu/kernels_dispatch.cc cpp/src/cpu/competing.cc cpp/src/cpu/mpt.cc
              cpp/src/cpu/muppet.cc cpp/src/cpu/afp.cc cpp/src/cpu/kernels.cc
              cpp/src/als/als_backend.cc cpp/src/als/als_run.cc cpp/src/als/als_cpu.cc
              cpp/src/als/als_cuda_stubs.cc cpp/src/als/als_kernels.cc)
BUILD=${FUZZ_BUILD:-build-fuzz}
SEED=${FUZZ_SEED:-1}

PYTHON=${PYTHON:-python3}
targets() { for f in fuzz/targets/*.cc fuzz/python/*.py; do basename "${f%.*}"; done; }

if [[ ${1:-} == --list ]]; then targets; exit 0; fi
if [[ $# -ne 2 || ! $2 =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh TARGET[,TARGET...]|ALL SECONDS   (targets: $(targets | tr '\n' ' '))" >&2
  exit 2
fi
if [[ $1 == ALL ]]; then mapfile -t TARGETS < <(targets); else IFS=, read -ra TARGETS <<< "$1"; fi
CPP_TARGETS=() PY_TARGETS=()
for t in "${TARGETS[@]}"; do
  [[ -d fuzz/corpus/$t ]] || { echo "fuzz.sh: no target '$t' (no fuzz/corpus/$t/)" >&2; exit 2; }
  if [[ -f fuzz/targets/$t.cc ]]; then CPP_TARGETS+=("$t")
  elif [[ -f fuzz/python/$t.py ]]; then PY_TARGETS+=("$t")
  else echo "fuzz.sh: no target '$t' (fuzz/targets/$t.cc or fuzz/python/$t.py)" >&2; exit 2; fi
done
SECONDS_PER_TARGET=$2

have_libfuzzer() {
  command -v clang++ >/dev/null 2>&1 || return 1
  local d; d=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$d/t.cc"
  clang++ -fsanitize=fuzzer "$d/t.cc" -o "$d/t" >/dev/null 2>&1; local rc=$?
  rm -rf "$d"; return $rc
}
MODE=${FUZZ_MODE:-auto}
if [[ $MODE == auto ]]; then if have_libfuzzer; then MODE=libfuzzer; else MODE=replay; fi; fi
case $MODE in
  libfuzzer) CXX_=clang++
             LIB_FLAGS=(-fsanitize=fuzzer-no-link,address,undefined)
             LINK_FLAGS=(-fsanitize=fuzzer,address,undefined) ;;
  replay)    CXX_=${CXX:-g++}
             LIB_FLAGS=(-fsanitize=address,undefined)
             LINK_FLAGS=(-fsanitize=address,undefined) ;;
  *) echo "fuzz.sh: FUZZ_MODE must be auto, libfuzzer or replay (got '$MODE')" >&2; exit 2 ;;
esac
COMMON=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=all -Icpp/include -Icpp/src
        -DMASCOT_VERSION=\"fuzz\")
OBJ=$BUILD/$MODE
mkdir -p "$OBJ" "$BUILD/artifacts"
echo "== fuzz.sh: mode $MODE ($CXX_), ${SECONDS_PER_TARGET}s per target: ${TARGETS[*]}"
status=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

for t in "${PY_TARGETS[@]}"; do
  echo "-- $t (python; mascot from $("$PYTHON" -c 'import mascot, os; print(os.path.dirname(mascot.__file__))' 2>&1 | tail -1))"
  start=$(date +%s.%N)
  if "$PYTHON" -c "import atheris" 2>/dev/null; then
    mkdir -p "$BUILD/work/$t"
    if "$PYTHON" "fuzz/python/$t.py" "$BUILD/work/$t" "fuzz/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" \
         -timeout=10 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" > "$BUILD/$t.log" 2>&1; then
      echo "   clean (atheris): $(grep -m1 'stat::number_of_executed_units' "$BUILD/$t.log" | awk '{print $2}') executions, $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
    else
      echo "   FINDING in $t; log: $BUILD/$t.log, input: $(ls -t "$BUILD"/artifacts/"$t"-* 2>/dev/null | head -1)"
      grep -aE 'Error|Uncaught' "$BUILD/$t.log" | head -5 | sed 's/^/   /'
      status=1
    fi
  elif "$PYTHON" "fuzz/python/$t.py" --replay "$SECONDS_PER_TARGET" --seed "$SEED" "fuzz/corpus/$t" > "$BUILD/$t.log" 2>&1; then
    echo "   clean (replay, no atheris): $(tail -1 "$BUILD/$t.log")"
  else
    echo "   FINDING in $t; log: $BUILD/$t.log"
    tail -3 "$BUILD/$t.log" | sed 's/^/   /'
    status=1
  fi
done
[[ ${#CPP_TARGETS[@]} -gt 0 ]] || exit $status

# Objects are rebuilt only when their source or any header is newer (cheap make).
# Compiled in parallel (FUZZ_JOBS, default: all cores): a cold build is ~20 sanitized objects.
newest_header=$(find cpp/include cpp/src fuzz -name '*.h' -newer "$OBJ/.stamp" 2>/dev/null | head -1 || true)
[[ -f $OBJ/.stamp ]] || newest_header=force
objs=()
jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
for src in "${CORE_SOURCES[@]}"; do
  o=$OBJ/$(basename "$src" .cc).o
  # kernels.cc: the generic variant, and only the row shapes of k = 32, 64, 128 compiled for
  # registers (every other k the run-time loop, the same results): the sanitized compile of
  # every shape is what takes this build longest
  extra=(); [[ $src == */cpu/kernels.cc ]] && extra=(-DMASCOT_KERNEL_NS=generic -DMASCOT_KERNEL_FEW_SHAPES=1)
  # the ALS row kernels (method als resumes through the same driver): their generic variant
  [[ $src == */als_kernels.cc ]] && extra=(-DMASCOT_ALS_NS=generic '-DMASCOT_ALS_ISA="generic"')
  if [[ -n $newest_header || ! -f $o || $src -nt $o ]]; then
    rm -f "$o"  # a failed compile leaves no object: checked after the wait below
    while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do wait -n || true; done
    { "$CXX_" "${COMMON[@]}" "${LIB_FLAGS[@]}" "${extra[@]}" -c "$src" -o "$o.tmp" && mv "$o.tmp" "$o"; } &
  fi
  objs+=("$o")
done
wait
for o in "${objs[@]}"; do [[ -f $o ]] || { echo "fuzz.sh: building $o failed" >&2; exit 2; }; done
if [[ $MODE == replay ]]; then
  if [[ -n $newest_header || ! -f $OBJ/replay_main.o || fuzz/replay_main.cc -nt $OBJ/replay_main.o ]]; then
    "$CXX_" "${COMMON[@]}" "${LIB_FLAGS[@]}" -c fuzz/replay_main.cc -o "$OBJ/replay_main.o" || exit 2
  fi
  objs+=("$OBJ/replay_main.o")
fi
touch "$OBJ/.stamp"

for t in "${CPP_TARGETS[@]}"; do
  exe=$OBJ/fuzz_$t
  if [[ ! -f $exe || fuzz/targets/$t.cc -nt $exe || -n $newest_header || $(find "${objs[@]}" -newer "$exe" | head -1) ]]; then
    "$CXX_" "${COMMON[@]}" "${LINK_FLAGS[@]}" fuzz/targets/$t.cc "${objs[@]}" -o "$exe" -lpthread || exit 2
  fi
  echo "-- $t"
  start=$(date +%s.%N)
  if [[ $MODE == libfuzzer ]]; then
    mkdir -p "$BUILD/work/$t"
    if "$exe" "$BUILD/work/$t" "fuzz/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
         -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" \
         -dict=fuzz/fuzz.dict 2> "$BUILD/$t.log"; then
      execs=$(grep -m1 'stat::number_of_executed_units' "$BUILD/$t.log" | awk '{print $2}')
      cov=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$BUILD/$t.log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
      echo "   clean: ${execs:-?} executions, ${cov:-cov: ?}, $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
      grep -a "^$t target:" "$BUILD/$t.log" | tail -1 | sed 's/^/   /' || true  # a target's own summary
    else
      echo "   FINDING in $t; log: $BUILD/$t.log, input: $(ls -t "$BUILD"/artifacts/"$t"-* 2>/dev/null | head -1)"
      grep -E 'ERROR|SUMMARY|runtime error|mascot fuzz|terminate' "$BUILD/$t.log" | head -5 | sed 's/^/   /'
      status=1
    fi
  else
    if [[ -n ${FUZZ_MUTATIONS:-} ]]; then budget=(--mutations "$FUZZ_MUTATIONS"); else budget=(--mutations -1 --max-time "$SECONDS_PER_TARGET"); fi
    if "$exe" "${budget[@]}" --seed "$SEED" \
         --artifact "$BUILD/artifacts/$t-replay-crash" "fuzz/corpus/$t" > "$BUILD/$t.log" 2>&1; then
      echo "   clean: $(grep -a "^replay:" "$BUILD/$t.log" | tail -1)"
      grep -a "^$t target:" "$BUILD/$t.log" | tail -1 | sed 's/^/   /' || true
    else
      echo "   FINDING in $t; log: $BUILD/$t.log, input: $BUILD/artifacts/$t-replay-crash"
      grep -E 'ERROR|SUMMARY|runtime error|mascot fuzz|terminate|TIMEOUT' "$BUILD/$t.log" | head -5 | sed 's/^/   /'
      status=1
    fi
  fi
done
exit $status
