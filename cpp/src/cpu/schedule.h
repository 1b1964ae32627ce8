// Visiting order of the training ratings (DESIGN.md §3, §7), shared by all CPU methods.
//
// Why: one update reads and writes two k-rows chosen by the rating.  In a random order on a
// model larger than the caches, each row is a DRAM miss (~60 ns per 512 B row per core on the
// development machines with a one-stage L1 prefetch; the kernels' two-stage prefetch, kernels.h,
// hides more of it), capping FP32 at ~4-5 M updates/s per core.
// LIBMF-style blocking into L2-sized blocks is 3x faster but costs accuracy (+0.2..0.35 %
// test RMSE after 50 epochs): each row's uses are squeezed into a tiny time window.  Measured
// here (docs/benchmarks.md): what matters is the width of that window.  Blocks sized for the
// last-level cache (2 MiB of rows per side) keep each row's uses spread over ~1/(#item blocks)
// of the epoch, converge like a fresh random order (within 0.01 % RMSE) and still run ~2.5x
// faster than random order, because the rows of the current block stay in L3.
//
// Structure: the records (12-byte u, i, r, relabelled ids) are grouped once into
//   blocks   - a grid of user blocks x item blocks (hash of the id -> block, so blocks are
//              balanced); `shuffle` order is the 1 x 1 grid;
//   chunks   - each block split into ~4K-rating chunks by a hash of the rating's position.
// Every epoch: blocks in a fresh seeded permutation, a block's chunks in a fresh permutation,
// and each chunk Fisher-Yates shuffled in place (it is in L1/L2) right before it is processed.
// So every rating is visited exactly once per epoch, in a fresh order; with one thread the
// order is a pure function of (seed, epoch).  Threads pull chunks from one shared counter, so
// they work on the same block together (sharing its cache footprint) and balance perfectly.
// `chunk` order reproduces the paper's reference code: nnz/128 random starts, 128 consecutive
// ratings each, with replacement, from the training set as the trainer hands it over: shuffled
// once, as the reference code does (shuffle_for_chunk_order, reorder.h).  Unlike the reference
// code's `(start + i) % nnz`, a run never wraps around the end (starts are uniform over
// [0, nnz - 128]).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/kernels.h"
#include "mascot/config.h"
#include "mascot/ratings.h"

namespace mascot::cpu {

class Schedule {
 public:
  /// `row_bytes` (k x element size) sizes the blocked grid.
  Schedule(const RatingSet& train, Order order, int threads, size_t row_bytes, uint64_t seed);

  /// fn(thread, recs, n) is called for consecutive runs of records in visiting order, from
  /// `threads` threads.  Returns the number of updates made (nnz, or chunk draws x 128).
  int64_t run_epoch(int epoch, const std::function<void(int, const Rec*, size_t)>& fn);

  /// Applies fn to every record of `recs` once, from all threads (evaluation).  No order implied.
  static void parallel_for(const std::vector<Rec>& recs, int threads,
                           const std::function<void(int, const Rec*, size_t)>& fn);

  /// Resume: brings the records into the arrangement they have after `epochs` epochs.  The
  /// in-place chunk shuffles compose from epoch to epoch (a chunk's order in epoch e is its
  /// order of epoch e-1 permuted by (seed, e, chunk)); this replays them without training, so
  /// a resumed run visits the ratings exactly as the uninterrupted one.
  void replay(int epochs);

  int blocks() const { return static_cast<int>(block_chunk_.size()) - 1; }
  int chunks() const { return static_cast<int>(chunk_off_.size()) - 1; }

 private:
  Order order_;
  int threads_;
  uint64_t seed_;
  std::vector<Rec> recs_;
  std::vector<int64_t> chunk_off_;    // chunk c = recs_[chunk_off_[c], chunk_off_[c+1])
  std::vector<int32_t> block_chunk_;  // block b = chunks [block_chunk_[b], block_chunk_[b+1])
};

/// Converts a rating set into packed records (in the set's order).
std::vector<Rec> to_records(const RatingSet& rs);

}  // namespace mascot::cpu
