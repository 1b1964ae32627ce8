#!/usr/bin/env bash
# First light on a GPU: one command that fits a 15-minute device budget (machine start
# included), each stage time-boxed and stamped with $SECONDS, each writing its result under
# $OUT as soon as it ends (a device machine returns at most 8 files: these are the 8).
#
#   scripts/gpu_first_light.sh [--dry-run]
#
# Stages (limit in seconds; the whole run stays under ~540 s, so one `run` call of 600 s holds it
# with room for the machine's own start):
#   facts      (20)  nvidia-smi: name, driver, clocks, memory; nvcc and Python versions -> summary.txt
#   build     (240)  pip install --no-build-isolation --no-deps ., sm_90 only -> build.log (stops here if it fails)
#   memcheck   (90)  one small mascot training under compute-sanitizer memcheck -> memcheck.log
#   pytest    (150)  pytest -m gpu -x, 60 s per test -> pytest-gpu.log
#   ncu       (120)  one SGD launch of fp32 and of mascot-n1 (k = 128): instructions executed per
#                    update, issue-active %, warps active %, DRAM bytes and L2 reduction sectors -> ncu.txt
#   writes    (150)  add vs store writes at equal (device-filling) warps on a DRAM-bound shape,
#                    synthetic-netflix:0.25 -> writes.md
#   measured   (90)  mascot's measured vs unmeasured epoch times (q-error sampling cost) -> measured.txt
#   speed    (rest)  benchmarks/gpu_bench.py: fp32, mascot-n1, mascot at k = 128, mascot vs
#                    mascot-naive at g = 100 -> speed.md
# summary.txt has one line per stage: its end time ($SECONDS), exit status and limit.
#
# --dry-run: the same stages on the CUDA emulator (the build of scripts/cuda_emu_check.sh in
# results/cuda-emu/site, built first if missing) on tiny data, without nvidia-smi,
# compute-sanitizer or ncu (their commands run bare; ncu's parser reads a canned line): it checks
# every stage's plumbing before device time is spent, not the GPU.  No GPU figure comes from it.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: scripts/gpu_first_light.sh [--dry-run]" >&2; exit 2 ;;
esac
out="${OUT:-results/first-light}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
py="${PYTHON:-python3}"
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
sum="$out/summary.txt"
: >"$sum"
note() { echo "[t=$SECONDS] $*" | tee -a "$sum"; }
# stage NAME LIMIT LOG CMD...: runs CMD under `timeout LIMIT`, output to LOG, stamps the summary
stage() {
  local name=$1 limit=$2 log=$3 rc=0
  shift 3
  timeout --kill-after=5 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  note "$name rc=$rc (limit $limit s$([ $rc = 124 ] && echo ', TIMED OUT'))"
  return $rc
}

# ------------------------------------------------------------------ sizes (tiny in a dry run)
if [ $dry = 1 ]; then
  small=(--dataset synthetic-ml10m:0.001 --k 32)
  big=synthetic-ml10m:0.002 k=32 ncu_data=synthetic-ml10m:0.001 epochs=3 warmup=1 period=2 ng=4
else
  small=(--dataset synthetic-ml10m:0.002 --k 128)
  big=synthetic-netflix:0.25 k=128 ncu_data=synthetic-netflix:0.05 epochs=6 warmup=5 period=2 ng=100
fi

# ------------------------------------------------------------------ facts
note "start (dry run: $dry)"
{
  echo "== device"
  if [ $dry = 0 ] && command -v nvidia-smi >/dev/null; then
    q=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,memory.total,memory.used,pcie.link.gen.current
    nvidia-smi --format=csv --query-gpu=$q || true
    nvidia-smi | sed -n 3p || true
  else
    echo "no nvidia-smi (dry run: the CUDA emulator)"
  fi
  echo "== tools"
  nvcc --version 2>/dev/null | tail -n 1 || echo "no nvcc"
  "$py" --version
  for t in compute-sanitizer ncu; do
    command -v $t >/dev/null && echo "$t: $(command -v $t)" || echo "$t: not found"
  done
} >>"$sum" 2>&1

# ------------------------------------------------------------------ build
log="$out/build.log"
: >"$log"
if [ $dry = 1 ]; then
  site="$PWD/results/cuda-emu/site"
  if [ -x "$site/bin/mascot_train" ]; then
    echo "dry run: the emulator build in $site (scripts/cuda_emu_check.sh) is reused" >>"$log"
    note "build rc=0 (reused the emulator build)"
  else
    stage build 900 "$log" env MASCOT_CUDA=EMU "$py" -m pip install -q --no-deps --no-build-isolation \
      -C build-dir=build/cuda-emu-sm90 --target "$site" . || { tail -n 30 "$log"; exit 1; }
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
else
  stage build 240 "$log" "$py" -m pip install -q --no-build-isolation --no-deps \
    -C cmake.define.CMAKE_CUDA_ARCHITECTURES=90 -C build-dir=build/first-light . || { tail -n 30 "$log"; exit 1; }
fi
if ! "$py" -c "import mascot, sys; why = mascot.cuda_unavailable_reason(); print('cuda:', why or 'ok'); \
sys.exit(1 if why else 0)" >>"$log" 2>&1; then
  note "no usable CUDA device (build.log says why)"
  tail -n 5 "$log"
  exit 1
fi
train="$(command -v mascot_train)"
note "mascot_train: $train"

# ------------------------------------------------------------------ memcheck
log="$out/memcheck.log"
cmd=("$train" "${small[@]}" --epochs 4 --groups 8 --warmup 1 --period 1 --threshold 1.05 --device cuda
     --method mascot --quiet)
if [ $dry = 0 ] && command -v compute-sanitizer >/dev/null; then
  stage memcheck 90 "$log" compute-sanitizer --tool memcheck --error-exitcode 99 "${cmd[@]}"
else
  echo "dry run or no compute-sanitizer: the training alone" >"$log"
  stage memcheck 90 "$log" "${cmd[@]}"
fi

# ------------------------------------------------------------------ GPU tests
log="$out/pytest-gpu.log"
topt=()
"$py" -c "import pytest_timeout" 2>/dev/null && topt=(--timeout 60)
sel=(tests/python/test_gpu.py)
[ $dry = 1 ] && sel=(tests/python/test_gpu.py -k "qerror_of_controlled or unsupported_requests")
stage pytest 150 "$log" "$py" -m pytest -q -m gpu -x -rs -p no:cacheprovider "${topt[@]}" "${sel[@]}"
tail -n 3 "$log" | sed 's/^/    /' | tee -a "$sum"

# ------------------------------------------------------------------ ncu: one SGD launch each
log="$out/ncu.txt"
: >"$log"
metrics=smsp__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active
metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active,dram__bytes_read.sum,dram__bytes_write.sum
metrics+=,lts__t_sectors_op_red.sum,gpu__time_duration.sum
for m in fp32 mascot-n1; do
  run=("$train" --dataset "$ncu_data" --k "$k" --method "$m" --epochs 1 --device cuda --quiet
       --report "$tmp/ncu-$m.json")
  echo "== $m: ${run[*]}" >>"$log"
  if [ $dry = 0 ] && command -v ncu >/dev/null; then
    stage "ncu $m" 60 "$log" ncu --clock-control none -k regex:sgd_ -c 1 --metrics "$metrics" "${run[@]}"
  else
    stage "ncu $m (dry run: bare)" 60 "$log" "${run[@]}"
    # the parser below on a canned line of ncu's format (no ncu here)
    echo "    smsp__inst_executed.sum                                     inst    1,234,567" >>"$log"
  fi
  # instructions per update: the launch is one epoch over the training ratings
  "$py" - "$log" "$tmp/ncu-$m.json" "$m" >>"$log" 2>&1 <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read().split("== " + sys.argv[3] + ":")[-1]
try:
    n = json.load(open(sys.argv[2]))["dataset"]["n_train"]
except Exception as e:  # the run failed: say so, do not guess
    sys.exit(f"   {sys.argv[3]}: no report ({e})")
m = re.search(r"smsp__inst_executed\.sum\s+\S+\s+([\d,.]+)", text)
print(f"   {sys.argv[3]}: {n} updates; " +
      (f"{float(m.group(1).replace(',', '')) / n:.1f} warp instructions per update" if m else "no inst_executed line"))
EOF
done
grep "warp instructions per update\|no inst_executed" "$log" | tee -a "$sum"

# ------------------------------------------------------------------ add vs store at equal warps
log="$out/writes.md"
: >"$log"
stage writes 150 "$tmp/writes.log" "$py" benchmarks/gpu_hogwild_sweep.py --dataset "$big" --k "$k" --epochs "$epochs" \
  --methods fp32,mascot-n1 --settings add:inf,store:inf --out "$tmp/hw"
if [ -f "$tmp/hw/hogwild_sweep.md" ]; then cp "$tmp/hw/hogwild_sweep.md" "$log"
else tail -n 20 "$tmp/writes.log" >"$log"; fi

# ------------------------------------------------------------------ measured vs unmeasured epochs
log="$out/measured.txt"
: >"$log"
stage measured 90 "$log" "$train" --dataset "$big" --k "$k" --method mascot --epochs $((warmup + 4 * period + 1)) \
  --warmup "$warmup" --period "$period" --device cuda --quiet --report "$tmp/measured.json"
"$py" - "$tmp/measured.json" "$warmup" >>"$log" 2>&1 <<'EOF'
import json, statistics, sys
try:
    ep = json.load(open(sys.argv[1]))["epochs"]
except Exception as e:
    sys.exit(f"no report ({e})")
# after the warm-up only (before it every row is FP16 and nothing is sampled: another kernel);
# never epoch 0, which runs at ramping clocks
ep = [e for e in ep if e["epoch"] >= max(1, int(sys.argv[2]))]
measured = lambda e: "user_qerror" in e  # the report holds q-errors for measured epochs only
meas = [e["train_seconds"] for e in ep if measured(e)]
plain = [e["train_seconds"] for e in ep if not measured(e)]
print("epoch seconds (epoch, measured, ms):",
      [(e["epoch"], measured(e), round(e["train_seconds"] * 1e3, 2)) for e in ep])
if meas and plain:
    a, b = statistics.median(meas), statistics.median(plain)
    print(f"median measured {a * 1e3:.2f} ms, unmeasured {b * 1e3:.2f} ms, ratio {a / b:.2f}")
else:
    print("not enough epochs of both kinds")
EOF
tail -n 1 "$log" | sed 's/^/    /' | tee -a "$sum"

# ------------------------------------------------------------------ speed table
log="$out/speed.md"
: >"$log"
left=$((540 - SECONDS))
[ $left -lt 30 ] && left=30
stage speed "$left" "$tmp/speed.log" "$py" benchmarks/gpu_bench.py --datasets "$big" --ks "$k" --epochs "$epochs" \
  --methods fp32,mascot-n1,mascot --naive-groups "$ng" --naive-dataset "$big" --budget-seconds $((left - 20)) \
  --out "$tmp/bench" --fresh
if [ -f "$tmp/bench/gpu_bench.md" ]; then cp "$tmp/bench/gpu_bench.md" "$log"
else tail -n 20 "$tmp/speed.log" >"$log"; fi
note "done"
