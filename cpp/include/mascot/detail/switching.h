// g-switching decisions (paper §III-C, Eq. 4; docs/design.md §3), device-neutral host code.
// A backend accumulates, per group, the sum of the sampled gradients (k values), the sum of
// their squared norms and their count, race-free (per-thread or per-block partials, reduced
// in a fixed order); this code turns those O(g k) sums into q-errors and decisions.  The
// model itself never comes back to the host for this.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mascot/groups.h"

namespace mascot::detail {

/// q-error(G_j) = || sum of gradients ||^2 / sum of || gradient ||^2 for each group j;
/// -1 where the group has no sample (or only zero gradients): no decision is made then.
std::vector<double> qerror_from_sums(const double* sum, const double* sq, const int64_t* n, int groups, int k);

/// Tracks each group's baseline (its first measured q-error) and switches FP16 -> FP32 the
/// groups whose q-error / baseline exceeds `threshold`.  One-way.
class Switcher {
 public:
  Switcher(int groups, double threshold) : baseline_(static_cast<size_t>(groups), -1.0), threshold_(threshold) {}
  /// Returns the groups that switch now and marks them FP32 in `table`.
  std::vector<int> update(const std::vector<double>& qerror, GroupTable* table);
  const std::vector<double>& baseline() const { return baseline_; }
  /// Checkpoint restore: baselines as returned by baseline() (same group count).
  void set_baseline(const std::vector<double>& b) { baseline_ = b; }

 private:
  std::vector<double> baseline_;
  double threshold_;
};

/// Whether epoch e (0-based) measures the q-error: e >= warmup and (e - warmup) % period == 0.
inline bool measured_epoch(int e, int warmup, int period) { return e >= warmup && (e - warmup) % period == 0; }

}  // namespace mascot::detail
