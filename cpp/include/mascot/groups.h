// GroupTable: O(g) metadata of one side (users or items) after group-based reconstruction.
// Group j owns the contiguous relabelled ids [start[j], start[j+1]); group 0 holds the
// most-rated entities.  Precision is per group and only ever goes FP16 -> FP32.
#pragma once
#include <cstdint>
#include <vector>

namespace mascot {

enum class Precision : uint8_t { kFp16 = 0, kFp32 = 1 };

struct GroupTable {
  std::vector<int32_t> start;         ///< size g+1; start[0] = 0, start[g] = number of entities
  std::vector<int64_t> rating_count;  ///< training ratings per group
  std::vector<Precision> precision;   ///< current storage of each group's rows

  int size() const { return static_cast<int>(precision.size()); }
  int64_t entities() const { return start.empty() ? 0 : start.back(); }
  /// Group of relabelled id `id`: linear search from group 0 (the most-rated group is the
  /// likeliest hit, paper §III-D).  Precondition 0 <= id < entities().
  int group_of(int32_t id) const;
  int count_fp32() const;
};

}  // namespace mascot
