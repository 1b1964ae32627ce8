// Group-based matrix reconstruction (paper §III-D, docs/design.md §3).
// Users (items) are sorted by training-rating count, descending (ties by original id), split
// into about-equal-size groups without splitting ties, and relabelled so each group is a
// contiguous id range.  The training result is unaffected: only the ids change.
#pragma once
#include <cstdint>
#include <vector>

#include "mascot/groups.h"
#include "mascot/ratings.h"

namespace mascot {

struct Reorder {
  std::vector<int32_t> user_new;  ///< user_new[old id] = relabelled id
  std::vector<int32_t> user_old;  ///< user_old[new id] = original id
  std::vector<int32_t> item_new;
  std::vector<int32_t> item_old;
  std::vector<int64_t> user_count;  ///< training ratings per relabelled user
  std::vector<int64_t> item_count;
  GroupTable user_groups;  ///< all groups start as FP16
  GroupTable item_groups;

  /// Builds the relabelling from the training set.  `user_groups`/`item_groups` >= 1.
  static Reorder build(const RatingSet& train, int user_groups, int item_groups);

  /// Potential study (TrainConfig::random_fp16): instead of by rating count, each side is
  /// split into two groups by a seeded coin per entity: group 0 holds the entities chosen for
  /// FP16 storage (probability `fp16_fraction`), group 1 the rest, preset to FP32.  Within a
  /// group ids stay sorted by rating count.  An empty group is omitted.
  static Reorder build_random_precision(const RatingSet& train, double fp16_fraction, uint64_t seed);

  /// Maps a rating set into relabelled ids.  Ratings whose user or item has no training
  /// rating (or lies outside the training id range) are dropped and counted in *dropped.
  RatingSet apply(const RatingSet& rs, int64_t* dropped) const;
  /// The same in place: relabels *rs and drops those ratings without a copy of the set (the
  /// trainer's path when it owns the sets; issue 23, one copy of the ratings).
  void apply_in_place(RatingSet* rs, int64_t* dropped) const;
};

/// `chunk` order (docs/design.md §3, the reference code's sampling): the reference code shuffles the
/// whole rating array once (`random_shuffle`) before it draws its runs of 128 consecutive
/// ratings; without that, a run would be one user's or one item's ratings whenever the input
/// is sorted (MovieLens files by user, Netflix by movie).  This is that one seeded shuffle
/// (Fisher-Yates, stream kStreamOrder), applied by the trainer to the relabelled training set
/// before either backend draws from it, and by the visit-order test hook.
void shuffle_for_chunk_order(RatingSet* rs, uint64_t seed);

/// Splits entities with the given counts (sorted descending) into about `g` groups of
/// about-equal entity count without splitting runs of equal counts.  Returns start offsets
/// (size realised_g + 1).  Exposed for tests.
std::vector<int32_t> split_groups(const std::vector<int64_t>& sorted_counts, int g);

}  // namespace mascot
