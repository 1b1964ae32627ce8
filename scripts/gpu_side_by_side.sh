#!/usr/bin/env bash
# MASCOT side by side with the paper's own CUDA code (ICDM 2021) and cuMF_SGD on one GPU: same
# data (written by this script), same k = 128, same epochs; seconds per epoch and final test
# RMSE of each.  One command, ~8 minutes on an H100 (data generation included).
#
#   MASCOT_ANCHORS=DIR scripts/gpu_side_by_side.sh [--dry-run] [--dataset synthetic-netflix:0.25] [--epochs 20]
#
# DIR holds the third-party sources mascot-icdm2021/ and cumf_sgd/ (default ../shared/anchors,
# then build/anchors).  They are for benchmarking only and never enter this repository: the
# script copies them into a temporary folder, patches that copy (every patch is written to
# $OUT/patches.txt) and builds it there.  To use them on a device machine, copy them into the
# git-ignored build/anchors/ of the checkout and name build/anchors in the run's `carry`.
# Patches (only where the build needs them; checked by building both with nvcc 13 on the
# dry run, which needs no GPU; cuRAND's headers must be on the include path):
#   both:       the Makefile's -gencode becomes sm_90 (theirs: compute_75 / compute_35-50)
#   paper code: #include <cstdio> in common.h (CUDA 13's headers no longer include it)
#   paper code: boost::filesystem (only for parent_path / filename of the input paths) is
#               replaced by a 10-line std::string helper when boost's headers are missing
#   cuMF_SGD:   __shfl(x, l) / __shfl_down(x, d) -> __shfl_sync / __shfl_down_sync with the full
#               mask (the unsynchronised forms are gone since CUDA 9 for sm_70+)
# Runs: mascot's fp32, mascot-n1 and mascot (Python API, cuda), the paper's code as version 5
# (FP32 SGD) and 1 (MASCOT) with its README's settings (2,048 warps, 128 threads, g = 100,
# theta = 20, 5 % sample, period 2), cuMF_SGD with its Netflix script's settings (750 workers,
# lambda 0.05, alpha 0.08, beta 0.3) and its own predictor for the test RMSE.  Learning rates
# and schedules are each tool's own defaults: the table compares tools as shipped, not one
# algorithm.  Output: $OUT/side_by_side.md, $OUT/side_by_side.log, $OUT/patches.txt.
#
# --dry-run: the data writer, the patches and the third-party builds (nvcc compiles without a
# GPU) on tiny data, their runs skipped, mascot on the CUDA emulator's build if
# results/cuda-emu/site exists: the plumbing, not a measurement.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0 dataset=synthetic-netflix:0.25 epochs=20
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --dataset) dataset="$2"; shift ;;
    --epochs) epochs="$2"; shift ;;
    *) echo "usage: scripts/gpu_side_by_side.sh [--dry-run] [--dataset NAME] [--epochs N]" >&2; exit 2 ;;
  esac
  shift
done
out="${OUT:-results/side-by-side}"
mkdir -p "$out"
py="${PYTHON:-python3}"
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
log="$out/side_by_side.log"
patches="$out/patches.txt"
: >"$log"
: >"$patches"
say() { echo "[t=$SECONDS] $*" | tee -a "$log"; }
anchors="${MASCOT_ANCHORS:-}"
if [ -z "$anchors" ]; then
  for d in ../shared/anchors build/anchors; do [ -d "$d/mascot-icdm2021" ] && { anchors=$d; break; }; done
fi
[ -n "$anchors" ] && [ -d "$anchors/mascot-icdm2021" ] && [ -d "$anchors/cumf_sgd" ] ||
  { echo "gpu_side_by_side: error: no mascot-icdm2021/ and cumf_sgd/ under '${anchors:-../shared/anchors}' (set MASCOT_ANCHORS)" >&2; exit 2; }
if [ $dry = 1 ]; then
  dataset=synthetic-ml10m:0.002 epochs=2
  site="$PWD/results/cuda-emu/site"
  [ -d "$site" ] && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "anchors $anchors, data $dataset, $epochs epochs, dry run $dry"

# ------------------------------------------------------------------ the data, in both formats
"$py" - "$dataset" "$tmp" >>"$log" 2>&1 <<'EOF' || { tail -n 5 "$log"; exit 1; }
import sys, numpy as np, mascot
name, scale = sys.argv[1].split(":") if ":" in sys.argv[1] else (sys.argv[1], "1")
d = mascot.data.synthetic(name, float(scale), seed=1)
for part, r in (("train", d.train), ("test", d.test)):
    u, i, x = np.asarray(r.users, np.int32), np.asarray(r.items, np.int32), np.asarray(r.ratings, np.float32)
    # the paper's reader: "user<TAB>item<TAB>rating" lines (a file name without "netflix",
    # "25M" or "Yahoo", which select its other layouts)
    np.savetxt(f"{sys.argv[2]}/sbs_{part}.tsv", np.c_[u, i, x], fmt=["%d", "%d", "%.6g"], delimiter="\t")
    # cuMF_SGD's reader: binary int32 user, int32 item, float32 rating, 0-based
    rec = np.empty(len(u), dtype=[("u", "<i4"), ("i", "<i4"), ("r", "<f4")])
    rec["u"], rec["i"], rec["r"] = u, i, x
    rec.tofile(f"{sys.argv[2]}/sbs_{part}.bin")
    print(f"{part}: {len(u)} ratings")
np.savez(f"{sys.argv[2]}/data.npz", tu=d.train.users, ti=d.train.items, tr=d.train.ratings, nu=d.train.n_users,
         ni=d.train.n_items, su=d.test.users, si=d.test.items, sr=d.test.ratings)
EOF
say "data written"

# ------------------------------------------------------------------ patched copies of the peers
cp -r "$anchors/mascot-icdm2021" "$tmp/paper"
cp -r "$anchors/cumf_sgd" "$tmp/cumf"
patch_sed() {  # patch_sed FILE SED-EXPR WHY
  sed -i "$2" "$1" && echo "${1#"$tmp"/}: sed '$2'  ($3)" >>"$patches"
}
patch_sed "$tmp/paper/Makefile" 's/-gencode arch=compute_75,code=compute_75/-gencode arch=compute_90,code=sm_90/' \
  "build for the H100/H200's sm_90"
patch_sed "$tmp/paper/common.h" '1i #include <cstdio>' "fprintf/stderr: CUDA 13's headers no longer bring in <cstdio>"
if [ ! -f /usr/include/boost/filesystem.hpp ]; then
  patch_sed "$tmp/paper/io_utils.h" 's|#include <boost/filesystem.hpp>|#include "sbs_path.h"|' "no boost on the machine"
  patch_sed "$tmp/paper/io_utils.h" 's/boost::filesystem::path/sbs::path/g' "no boost on the machine"
  patch_sed "$tmp/paper/Makefile" 's/LIBS = -lboost_system -lboost_filesystem/LIBS =/' "no boost on the machine"
  cat >"$tmp/paper/sbs_path.h" <<'EOF'
// Stand-in for the two boost::filesystem::path calls of io_utils.h (side-by-side script).
#include <string>
namespace sbs {
struct path {
  std::string s;
  explicit path(const std::string& x) : s(x) {}
  path parent_path() const { auto k = s.rfind('/'); return path(k == std::string::npos ? "." : s.substr(0, k)); }
  path filename() const { auto k = s.rfind('/'); return path(k == std::string::npos ? s : s.substr(k + 1)); }
  std::string string() const { return s; }
};
}  // namespace sbs
EOF
  echo "paper/sbs_path.h: new, parent_path() and filename() of a std::string path" >>"$patches"
fi
sed -i 's/-gencode arch=compute_35,code=compute_35 \\/-gencode arch=compute_90,code=sm_90/; /compute_37\|compute_50/d' \
  "$tmp/cumf/singleGPU/Makefile" && echo "cumf/singleGPU/Makefile: CU_FLAG = -gencode arch=compute_90,code=sm_90  (sm_90)" >>"$patches"
patch_sed "$tmp/cumf/singleGPU/sgd_k128_kernel_hogwild_warp32.h" 's/__shfl(\([^,]*\),/__shfl_sync(0xffffffff, \1,/g; s/__shfl_down(\([^,]*\),/__shfl_down_sync(0xffffffff, \1,/g' \
  "__shfl/__shfl_down without a mask do not exist for sm_70+"
grep -q "__shfl(\|__shfl_down(" "$tmp/cumf/singleGPU/sgd_k128_kernel_hogwild_warp32.h" &&
  say "warning: unpatched __shfl left in cuMF_SGD's kernel"
say "patches: $(wc -l <"$patches")"

# ------------------------------------------------------------------ builds (nvcc needs no GPU: the dry run builds too)
(cd "$tmp/paper" && timeout 300 make -j8 >>"$log" 2>&1) && say "paper code built" || say "paper code: build FAILED (log)"
(cd "$tmp/cumf/singleGPU" && timeout 300 make -j8 >>"$log" 2>&1) && say "cuMF_SGD built" || say "cuMF_SGD: build FAILED (log)"
(cd "$tmp/cumf/test" && timeout 300 make -j4 >>"$log" 2>&1) && say "cuMF predictor built" || say "cuMF predictor: build FAILED"

# ------------------------------------------------------------------ runs
res="$tmp/results.tsv"
: >"$res"
"$py" - "$tmp" "$epochs" "$res" "$dry" >>"$log" 2>&1 <<'EOF'
import statistics, sys, numpy as np, mascot
tmp, epochs, res, dry = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
z = np.load(f"{tmp}/data.npz")
tr = mascot.data.Ratings.from_arrays(z["tu"], z["ti"], z["tr"], int(z["nu"]), int(z["ni"]))
te = mascot.data.Ratings.from_arrays(z["su"], z["si"], z["sr"], int(z["nu"]), int(z["ni"]))
dev = "cuda" if mascot.cuda_device_count() > 0 else "cpu"
k = 32 if dry else 128
for m in ("fp32", "mascot-n1", "mascot"):
    rep = mascot.MF(method=m, k=k, epochs=epochs, device=dev, seed=1).fit(tr, te).report_
    sec = statistics.median(e["train_seconds"] for e in rep["epochs"][1:] or rep["epochs"])
    with open(res, "a") as f:
        f.write(f"mascot ({dev})\t{m}\t{sec:.5f}\t{rep['totals']['final_test_rmse']:.5f}\n")
    print(m, sec, rep["totals"]["final_test_rmse"])
EOF
say "mascot runs done"
if [ $dry = 0 ]; then
  for v in 5:fp32 1:mascot; do
    ver=${v%%:*} name=${v#*:}
    (cd "$tmp/paper" && timeout 300 ./quantized_mf -i "$tmp/sbs_train.tsv" -y "$tmp/sbs_test.tsv" -o "$tmp/paper_model_$ver" \
      -wg 2048 -bl 128 -k 128 -l "$epochs" -a 0.01 -d 0.1 -ug 100 -ig 100 -e 20 -s 0.05 -it 2 -v "$ver") \
      >"$tmp/paper_$ver.out" 2>&1
    say "paper code -v $ver rc=$?"
    cat "$tmp/paper_$ver.out" >>"$log"
    "$py" - "$tmp/paper_$ver.out" "$name" "$res" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
per = re.search(r"(?:Parameters update per epoch|Execution time\(avg per epoch\))\s*:\s*([\d.e+]+)", t)
rm = re.findall(r"^\s*\d+\s+[\d.e+-]+\s+([\d.]+)\s*$", t, re.M)
with open(sys.argv[3], "a") as f:
    f.write(f"paper code\t{sys.argv[2]}\t{float(per.group(1)) / 1e6 if per else float('nan'):.5f}\t"
            f"{float(rm[-1]) if rm else float('nan'):.5f}\n")
EOF
  done
  (cd "$tmp/cumf/singleGPU" && timeout 300 ./cumf_sgd -g 0 -l 0.05 -a 0.08 -b 0.3 -u 1 -v 1 -x 1 -y 1 -s 750 -k 128 \
    -t "$epochs" "$tmp/sbs_train.bin" "$tmp/cumf.model") >"$tmp/cumf.out" 2>&1
  say "cuMF_SGD rc=$?"
  (cd "$tmp/cumf/test" && timeout 120 ./mf-predict -e 0 "$tmp/sbs_test.bin" "$tmp/cumf.model" "$tmp/cumf.pred") \
    >>"$tmp/cumf.out" 2>&1
  cat "$tmp/cumf.out" >>"$log"
  "$py" - "$tmp/cumf.out" "$epochs" "$res" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
el = re.findall(r"time elapsed:\s*([\d.]+)s", t)  # the last is the training loop's
rm = re.findall(r"RMSE\s*=?\s*([\d.]+)", t)
with open(sys.argv[3], "a") as f:
    f.write(f"cuMF_SGD\tfp16 storage\t{float(el[-1]) / int(sys.argv[2]) if el else float('nan'):.5f}\t"
            f"{float(rm[-1]) if rm else float('nan'):.5f}\n")
EOF
fi
{
  echo "Side by side on $dataset, k = 128 (dry run: 32), $epochs epochs, $(date -u +%Y-%m-%d); dry run: $dry."
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
  echo
  echo "| tool | method | s / epoch | final test RMSE |"
  echo "|---|---|---:|---:|"
  awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$res"
} >"$out/side_by_side.md"
cat "$out/side_by_side.md"
say "done"
