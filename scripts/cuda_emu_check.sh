#!/usr/bin/env bash
# The CUDA backend on the CPU emulator (cuda/emu/, docs/cuda.md "Running the CUDA code without
# a GPU"): builds the backend's unchanged .cu sources with the host compiler against the
# emulator (MASCOT_CUDA=EMU) into results/cuda-emu/site, beside the installed package and not
# over it; runs the emulator's self-test (its collectives, and that it catches kernels that
# would hang); then the GPU tests (pytest -m gpu) against that build, whose one "device" is
# the emulator.  This executes every CUDA kernel and the CUDA trainer on machines without a
# GPU.  It is NOT a GPU check: timing, the memory model and device limits are not modelled.
#
#   scripts/cuda_emu_check.sh [quick|full|rest] [extra pytest args...]
#
# Before the tests: the GPU benchmark scripts end to end on tiny data, out-of-device-memory
# at each of the backend's allocations in turn (scripts/cuda_emu_faults.sh), no visible device,
# and a missing or old driver and a device fault (tests/python/test_cuda_faults.py).
# quick (what .ci/run runs): the self-test and a subset of the GPU tests covering every
# kernel; full: every gpu-marked test (~25 minutes: an emulated rating costs ~7 us of CPU time
# at k = 32); rest: every test that is NOT gpu-marked, on a build where "auto" means the
# emulated device (what scripts/gpu_check.sh's "rest of the suite" does on a GPU; ~1.5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-quick}"
[ $# -gt 0 ] && shift
case "$mode" in quick|full|rest) ;; *) echo "usage: scripts/cuda_emu_check.sh [quick|full|rest] [pytest args...]" >&2; exit 2 ;; esac
py="${PYTHON:-python3}"
site="$PWD/results/cuda-emu/site"
# the emulated compute capability (MASCOT_CUDA_EMU_ARCH=80: the sm_80 fallbacks instead of the
# sm_90 vector reductions); one build folder per architecture
arch="${MASCOT_CUDA_EMU_ARCH:-90}"
case "$arch" in 80|90) ;; *) echo "cuda_emu_check: MASCOT_CUDA_EMU_ARCH must be 80 or 90" >&2; exit 2 ;; esac
build="build/cuda-emu-sm$arch"

echo "== build (MASCOT_CUDA=EMU, emulated sm_$arch) into $site"
iso=()
"$py" -c "import scikit_build_core, nanobind" 2>/dev/null && iso=(--no-build-isolation)
rm -rf "$site"
mkdir -p "$(dirname "$site")"
t0=$SECONDS
MASCOT_CUDA=EMU "$py" -m pip install -q --no-deps "${iso[@]}" -C build-dir="$build" \
  -C cmake.define.MASCOT_CUDA_EMU_ARCH="$arch" --target "$site" . \
  >"results/cuda-emu/build.log" 2>&1 || { tail -n 40 results/cuda-emu/build.log; exit 1; }
echo "built in $((SECONDS - t0)) s"
# the emulated build first on the path (module and mascot_train); the installed one stays
emu_env=(env PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH" PYTHON="$py"
         MASCOT_TRAIN="$site/bin/mascot_train")

echo "== emulator self-test"
selftest="$build/mascot_cuda_emu_tests"
"$selftest"
for case in "half-warp-shuffle:lanes 16-31 have exited; lanes 0-15 wait at __shfl_sync" \
            "divergent:(divergent warp collectives)" \
            "barrier-cycle:lanes 0-15 wait at __shfl_sync; lanes 16-31 wait at __syncthreads" \
            "misaligned-reduction:red.global.add.v4.f32 at"; do
  # the vector reductions (and so their alignment fault) exist on sm_90 only
  [ "$arch" = 80 ] && [ "${case%%:*}" = misaligned-reduction ] && continue
  name="${case%%:*}" want="${case#*:}"
  if out="$("$selftest" "$name" 2>&1)"; then
    echo "cuda_emu_check: the emulator did not stop kernel '$name'"; exit 1
  fi
  grep -qF -- "$want" <<<"$out" || { echo "cuda_emu_check: kernel '$name' stopped without '$want':"; echo "$out"; exit 1; }
  echo "   caught: $name"
done
# device memory never freed: the leak check (which scripts/cuda_emu_faults.sh relies on) fires
rc=0
out="$(MASCOT_CUDA_EMU_LEAK_CHECK=1 "$selftest" leak 2>&1)" || rc=$?
[ $rc = 99 ] && grep -qF "device memory leak: 1 allocation(s), 1000 bytes" <<<"$out" ||
  { echo "cuda_emu_check: the leak check did not fire (status $rc): $out"; exit 1; }
echo "   caught: leak"

echo "== the GPU benchmark scripts on the emulator (tiny data: their plumbing, not a benchmark)"
# scripts/gpu_check.sh bench and hogwild end to end (runs, resume state, JSON and tables), so
# that a GPU session never loses its device time to a script error
chk=results/cuda-emu/gpu-check
rm -rf "$chk"
tiny=(--datasets synthetic-ml10m:0.001 --ks 32 --epochs 2 --methods fp32,mascot,muppet --naive-groups 4
      --naive-dataset synthetic-ml10m:0.001)
: >"$chk.log"
for part in first resumed; do  # the second part resumes: every run is already done, nothing is rerun
  "${emu_env[@]}" OUT="$chk" GPU_BENCH_STATE="$chk/state" scripts/gpu_check.sh bench "${tiny[@]}" >>"$chk.log" 2>&1 ||
    { tail -n 20 "$chk.log"; echo "cuda_emu_check: scripts/gpu_check.sh bench ($part part) failed"; exit 1; }
done
grep -q "5 of 5 runs already done" "$chk.log" || { echo "cuda_emu_check: the benchmark did not resume"; exit 1; }
for want in "| synthetic-ml10m:0.001 | 32 | mascot |" "| synthetic-ml10m:0.001 | 32 | muppet |" \
            "| synthetic-ml10m:0.001 | 4 |"; do
  grep -qF -- "$want" "$chk/bench/gpu_bench.md" || { echo "cuda_emu_check: gpu_bench.md lacks '$want'"; exit 1; }
done
"${emu_env[@]}" OUT="$chk" scripts/gpu_check.sh hogwild --dataset synthetic-ml10m:0.001 --k 32 --epochs 2 \
  --methods fp32,mascot --settings add:default,store:inf >>"$chk.log" 2>&1 ||
  { tail -n 20 "$chk.log"; echo "cuda_emu_check: scripts/gpu_check.sh hogwild failed"; exit 1; }
[ "$(grep -c '^| mascot |' "$chk/hogwild/hogwild_sweep.md")" = 2 ] ||
  { echo "cuda_emu_check: hogwild_sweep.md lacks its mascot rows"; exit 1; }
echo "   gpu_check.sh bench (twice: resumed) and hogwild: ok"

echo "== out of device memory at every allocation in turn (scripts/cuda_emu_faults.sh)"
scripts/cuda_emu_faults.sh "$site/bin/mascot_train"

echo "== no visible device (CUDA_VISIBLE_DEVICES=''): the CUDA backend's own no-device errors"
# elsewhere these tests run against the CPU-only build's stubs, or are skipped beside a GPU
t=tests/python
nodev=("$t/test_api.py::test_cuda_device_without_gpu_is_a_clear_error"
       "$t/test_gpu.py::test_cuda_tools_fail_clearly_without_a_device" "$t/test_cli.py::test_bad_arguments")
if ! out="$(CUDA_VISIBLE_DEVICES='' "${emu_env[@]}" "$py" -m pytest -q -rs -p no:cacheprovider "${nodev[@]}" 2>&1)" || grep -q SKIPPED <<<"$out"; then
  echo "$out" | tail -n 20; echo "cuda_emu_check: the no-device tests failed or were skipped"; exit 1
fi
echo "   $(tail -n 1 <<<"$out")"

echo "== no driver, an old driver, a device fault (tests/python/test_cuda_faults.py: injected by the emulator)"
if ! out="$("${emu_env[@]}" "$py" -m pytest -q -rs -p no:cacheprovider "$t/test_cuda_faults.py" 2>&1)" || grep -q SKIPPED <<<"$out"; then
  echo "$out" | tail -n 20; echo "cuda_emu_check: the driver and fault tests failed or were skipped"; exit 1
fi
echo "   $(tail -n 1 <<<"$out")"

if [ "$mode" = rest ]; then
  # what scripts/gpu_check.sh's "rest" stage does on a GPU machine: every test that is not
  # gpu-marked, with "auto" now meaning the (emulated) CUDA device (~1.5 minutes)
  echo "== the rest of the suite on the emulator (pytest -m 'not gpu')"
  "${emu_env[@]}" "$py" -m pytest -q -m "not gpu" -p no:cacheprovider "$@" "$t" \
    2>&1 | tee results/cuda-emu/pytest-rest.log | tail -n 8
  exit "${PIPESTATUS[0]}"
fi

echo "== GPU tests on the emulator (pytest -m gpu, $mode)"
sel=("$t")
if [ "$mode" = quick ]; then
  # every kernel family end to end against the CPU (fp32/fp16/MASCOT/MPT/MuPPET/AFP, with the
  # SSE, init, widen and reduce kernels), the launch bound, q-error and switching on the
  # device, checkpoint and resume on the device (bit-exact on the emulator), the CLI, and the
  # error paths: a few minutes
  sel=("$t/test_api.py::test_training_learns_and_reports[cuda]" "$t/test_api.py::test_predict[cuda]"
       "$t/test_cli.py::test_every_method_from_the_cli[cuda-mascot]")
  for m in fp32 fp16 mascot mpt muppet afp; do sel+=("$t/test_gpu.py::test_final_rmse_matches_cpu[$m]"); done
  sel+=("$t/test_gpu.py::test_any_k_matches_cpu[mascot-100]" "$t/test_gpu.py::test_any_k_matches_cpu[fp16-8]")
  for c in fp32 fp16 mascot-n1 mascot mpt-dynamic muppet afp; do
    sel+=("$t/test_gpu.py::test_resume_on_device_continues_the_run[$c]")
  done
  sel+=("$t/test_als.py")  # the ALS kernels (issue 21): every solver and precision against the reference (~10 s)
  sel+=("$t/test_als_driver.py" "$t/test_als_api.py")  # method als through the driver on the device (~2 s)
  sel+=("$t/test_valid_split.py::test_valid_rmse_on_every_backend")  # the validation set on the device
  sel+=("$t/test_converge.py::test_early_stop_on_every_backend")  # the best epoch's factors read mid-run
  for f in test_launch_respects_the_hogwild_bound test_qerror_of_controlled_input_matches_cpu \
           test_switching_decisions_match_cpu_on_crafted_data test_device_switches_follow_its_own_qerrors_and_convert_rows \
           test_unsupported_requests_are_clear_errors test_auto_picks_cuda_and_tools_work \
           test_device_checkpoint_refusals; do
    sel+=("$t/test_gpu.py::$f")
  done
fi
set +e
"${emu_env[@]}" "$py" -m pytest -q -m gpu -rs -p no:cacheprovider "$@" "${sel[@]}" 2>&1 | tee results/cuda-emu/pytest.log | tail -n 25
rc=${PIPESTATUS[0]}
set -e
if grep -q "SKIPPED" results/cuda-emu/pytest.log; then echo "cuda_emu_check: GPU tests were skipped on the emulator"; rc=1; fi
grep -qE "[0-9]+ passed" results/cuda-emu/pytest.log || { echo "cuda_emu_check: no GPU test ran"; rc=1; }
exit "$rc"
