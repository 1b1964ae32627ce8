// How many Hogwild workers may update the model at once on a device (CUDA backend), host code.
//
// Each worker (a warp) holds one rating's update in flight: it reads p_u and q_i, and writes
// them back a few hundred nanoseconds later.  The most-rated row, with a share f of the
// ratings, then sees about W x f concurrent read-modify-writes from W workers, and all but the
// last of them are lost.  On skewed rating data f is large (the most-rated item: 0.42 % of
// synthetic-ml10m, 2.9 % of the 160 K-rating test data), so a grid that fills the device
// (thousands of warps) loses most updates of the hot rows.  A NumPy model of it (waves of W
// updates that all read the same state, last writer wins; fp32, k = 32, 12 epochs;
// docs/cuda.md), final test RMSE against W x f = 0.27:
//   synthetic-ml10m       W x f = 1.5: +0.32 %   8.7: +3.1 %   36: +23.5 %
//   the test data         W x f = 1.9: +0.6 %    245 (a device-filling grid): 3.7 against 0.98
// The CPU's two threads give W x f < 0.01.  So the default keeps W x f <= kHogwildOverlap:
// fewer workers where the data is skewed or small, at a cost in speed that only a GPU can
// measure (MASCOT_CUDA_OVERLAP overrides it, docs/cuda.md).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mascot::detail {

constexpr double kHogwildOverlap = 1.0;

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

/// The overlap bound: MASCOT_CUDA_OVERLAP from the environment when set (a number > 0; "inf"
/// fills the device whatever the data), else kHogwildOverlap.  A malformed value throws
/// `bad(message)` (the caller's one-line error type).
template <class Bad>
double hogwild_overlap(const Bad& bad) {
  const char* s = std::getenv("MASCOT_CUDA_OVERLAP");
  if (!s || !*s) return kHogwildOverlap;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (*end || !(v > 0)) bad(std::string("MASCOT_CUDA_OVERLAP must be a number > 0 (or inf), got '") + s + "'");
  return v;
}

}  // namespace mascot::detail
