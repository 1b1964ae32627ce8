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

/// Group of relabelled id `id` given boundaries start[0..groups] (host and device).  The
/// optimised lookup scans from group 0 (most-rated first, paper §III-D: most ratings hit the
/// first groups, so the scan ends after a step or two and the boundaries it reads stay hot);
/// the naive one binary-searches the whole table for every rating.  Same result.
MASCOT_HD int lookup_group(const int32_t* start, int groups, int32_t id, bool naive) {
  if (naive) {
    int lo = 0, hi = groups - 1;  // first g with id < start[g + 1]
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (id < start[mid + 1]) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
  int g = 0;
  while (g < groups - 1 && id >= start[g + 1]) ++g;
  return g;
}

}  // namespace mascot
