// GroupTable: O(g) metadata of one side (users or items) after group-based reconstruction.
// Group j owns the contiguous relabelled ids [start[j], start[j+1]); group 0 holds the
// most-rated entities.  Precision is per group and only ever goes FP16 -> FP32.
#pragma once
#include <cstdint>
#include <vector>

#include "mascot/detail/hostdev.h"

namespace mascot {

enum class Precision : uint8_t { kFp16 = 0, kFp32 = 1 };

struct GroupTable {
  std::vector<int32_t> start;         ///< size g+1; start[0] = 0, start[g] = number of entities
  std::vector<int64_t> rating_count;  ///< training ratings per group
  std::vector<Precision> precision;   ///< current storage of each group's rows

  int size() const { return static_cast<int>(precision.size()); }
  int64_t entities() const { return start.empty() ? 0 : start.back(); }
  int count_fp32() const;
};

/// Group of relabelled id `id` given boundaries start[0..groups] (host and device): the g
/// with start[g] <= id < start[g+1].  Same result either way:
///  - naive: the textbook binary search, one data-dependent branch per step (mascot-naive);
///  - optimised (the CPU's): the same search without branches (a conditional move per step,
///    ceil(log2 g) dependent L1 loads).
/// The paper's hot-first scan (§III-D) is used by neither backend.  On a CPU a sampled
/// rating's user lies ~20-40 groups deep and the scan's exit branch mispredicts (measured with
/// mascot_kernel_epochs at gamma = 0.2: the lookups cost +0.18-0.20 of an n1 epoch with the
/// scan, +0.06 with this search); the CUDA backend searches the boundaries of the hot groups
/// in shared memory (device_common.cuh).
MASCOT_HD int lookup_group(const int32_t* start, int groups, int32_t id, bool naive) {
  if (naive) {
    int lo = 0, hi = groups - 1;  // first g with id < start[g + 1]
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (id < start[mid + 1])
        hi = mid;
      else
        lo = mid + 1;
    }
    return lo;
  }
  // last g in [0, groups) with start[g] <= id: base moves up by half of the remaining range
  // when start[base + half] <= id (start[0] = 0 <= id always)
  int base = 0, n = groups;
  while (n > 1) {
    const int half = n / 2;
    base = start[base + half] <= id ? base + half : base;
    n -= half;
  }
  return base;
}

}  // namespace mascot
