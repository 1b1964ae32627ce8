// How the Hogwild workers of a device (CUDA backend) write the model, and how many may run at
// once; host code.
//
// Each worker (a warp) holds one rating's update in flight: it reads p_u and q_i, and writes
// them back a few hundred nanoseconds later.  The most-rated row, with a share f of the
// ratings, then sees about W x f concurrent updates from W workers.  On skewed rating data f
// is large (the most-rated item: 0.42 % of synthetic-ml10m, 2.9 % of the 160 K-rating test
// data), and a grid that fills an H100 holds thousands of warps.
//
// Writes ("MASCOT_CUDA_WRITES").  With plain stores ("store"), all but the last of the
// concurrent read-modify-writes of a row are lost.  With "add" (the default) a worker adds
// the change it made, new - old, to the row with a reduction in L2 (PTX red.add; no value is
// returned, nothing waits): every change lands, and a concurrent update only reads a row that
// is a few updates stale.  With no concurrent update "add" leaves the same bits as "store"
// whenever new - old is exact (cuda/device_common.cuh).  A NumPy model (waves of W updates
// that all read the same state; benchmarks/hogwild_overlap.py, fp32, k = 32, 12 epochs,
// docs/cuda.md), final test RMSE against serial:
//   store: synthetic-ml10m  W x f = 1.5: +0.32 %   8.7: +3.1 %   36: +23.5 %
//          the test data    W x f = 0.93: +0.26-0.32 %   1.9: +0.6 %   245: 3.7 against 0.98
//   add:   the test data    W x f = 32: +0.06 %   64: +0.13 %   245: +0.50 %
// (the CPU's two threads give W x f < 0.01).
//
// Workers ("MASCOT_CUDA_OVERLAP").  The launch fills the device, but with at most
// overlap x nnz / (ratings of the most-rated row) warps, so that W x f <= overlap: 1 with
// "store" (lost updates), 32 with "add" (staleness only; on full-size data that is about
// the whole device: synthetic-ml10m ~7,600 warps).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mascot::detail {

constexpr double kHogwildOverlapStore = 1.0;
constexpr double kHogwildOverlapAdd = 32.0;

/// Workers to launch: at most `fill` (what the device runs at once), and at most
/// overlap x nnz / max_row_ratings, so that the most-rated row (max_row_ratings of the nnz
/// training ratings) expects about `overlap` concurrent updates; at least 1.
inline int64_t hogwild_workers(int64_t fill, int64_t max_row_ratings, int64_t nnz, double overlap) {
  fill = std::max<int64_t>(1, fill);
  if (max_row_ratings <= 0 || nnz <= 0 || !(overlap > 0)) return fill;
  const double cap = overlap * static_cast<double>(nnz) / static_cast<double>(max_row_ratings);
  if (cap >= static_cast<double>(fill)) return fill;
  return std::max<int64_t>(1, static_cast<int64_t>(cap));
}

/// Whether workers write rows as reductions of their change ("add", the default) rather than
/// stores: MASCOT_CUDA_WRITES=add|store from the environment.  Anything else throws
/// `bad(message)` (the caller's one-line error type).
template <class Bad>
bool hogwild_merge(const Bad& bad) {
  const char* s = std::getenv("MASCOT_CUDA_WRITES");
  if (!s || !*s) return true;
  const std::string v(s);
  if (v == "add") return true;
  if (v == "store") return false;
  bad("MASCOT_CUDA_WRITES must be 'add' or 'store', got '" + v + "'");
  return true;
}

/// The overlap bound: MASCOT_CUDA_OVERLAP from the environment when set (a number > 0; "inf"
/// fills the device whatever the data), else the default of the write mode (merge: "add").
/// A malformed value throws `bad(message)`.
template <class Bad>
double hogwild_overlap(bool merge, const Bad& bad) {
  const char* s = std::getenv("MASCOT_CUDA_OVERLAP");
  if (!s || !*s) return merge ? kHogwildOverlapAdd : kHogwildOverlapStore;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (*end || !(v > 0)) bad(std::string("MASCOT_CUDA_OVERLAP must be a number > 0 (or inf), got '") + s + "'");
  return v;
}

}  // namespace mascot::detail
