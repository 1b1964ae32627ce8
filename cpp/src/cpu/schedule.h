// Visiting order of the training ratings, shared by all CPU methods.
//
// Why: one update reads and writes two k-rows chosen by the rating.  In a random order on a
// model larger than the caches, each row is a DRAM miss (~60 ns per 512 B row per core on the
// development machines with a one-stage L1 prefetch; the kernels' two-stage prefetch, kernels.h,
// hides more of it), capping FP32 at ~4-5 M updates/s per core.  Blocking the rating matrix so
// that the rows of a block stay in cache is faster, but squeezes each row's updates into short
// windows; measured (docs/benchmarks.md): L2-sized blocks cost +0.2..0.35 % test RMSE after 50
// epochs, blocks of up to 2 MiB of rows per side (last-level cache) converge like a fresh random
// order.
//
// Structure: the ratings (three arrays: relabelled user and item ids, values; the trainer's
// relabelled set, moved in) are permuted once into
//   blocks   - `shuffle`: one; `grid`: user strips x item strips (below);
//   chunks   - each block split into ~4K-rating chunks by a hash of the rating's position.
// Right before a chunk is processed it is gathered, in a fresh Fisher-Yates permutation, into
// the thread's buffer of 12-byte records (the kernels' Rec; it is in L1/L2), and written back
// in that order after the kernel, so every rating is visited exactly once per epoch in a fresh
// order, the permutations compose from epoch to epoch, and with one thread the order is a pure
// function of (seed, epoch).  Only 4 bytes per rating more than the set live at once, while
// it is permuted.
//
// `shuffle` order: all chunks in a fresh permutation every epoch, pulled by the threads from one
// shared counter (Hogwild: threads may update the same rows at the same time).
//
// `grid` order (the default with more than one thread; the idea of FPSGD / LIBMF, built here
// without its code): the ratings are cut into a grid of user strips x item strips of about equal
// rating counts (balanced by rating count, not id count: the strip holding a hot item has few
// other rows, rather than being a straggler).  A thread takes a whole block at a time, and no
// two threads ever hold blocks that share a user strip or an item strip: each row is written by
// one core at a time.  Why: with Hogwild threads on skewed data both cores write the most-rated
// rows all the time, so their cache lines move between the cores at every update
// (benchmarks/hot_rows.py measures it).  Each epoch every non-empty block is done exactly once,
// in a seeded random order constrained by the strips that are free (with one thread, a pure
// function of (seed, epoch)); inside a block, its chunks in a fresh permutation and each chunk
// shuffled in place, as in `shuffle` order.  Strips per side: at least 2 x threads (so that a
// finishing thread nearly always finds a free block) and at least rows x row_bytes / 2 MiB (the
// cache-sized blocks above).  A strip is not one id range but 16 runs of consecutive
// ids from all over the popularity range (stratified_strips), and the first epoch runs in
// shuffle order (kGridWarmupEpochs, run_epoch): both keep the accuracy of a fresh random order.
//
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
  /// `row_bytes` (k x element size) sizes the grid's strips.  `order`: shuffle, grid, chunk, or
  /// auto (resolve_order); blocked is refused (TrainConfig::validate says why).  The schedule
  /// keeps the ratings: the rvalue form takes the set's arrays (no copy; the trainer's relabelled
  /// set), the other copies them.
  Schedule(RatingSet&& train, Order order, int threads, size_t row_bytes, uint64_t seed);
  Schedule(const RatingSet& train, Order order, int threads, size_t row_bytes, uint64_t seed);

  /// fn(thread, recs, n) is called for consecutive runs of records in visiting order, from
  /// `threads` threads; recs points into a per-thread buffer valid during the call.  Returns the
  /// number of updates made (nnz, or chunk draws x 128).
  int64_t run_epoch(int epoch, const std::function<void(int, const Rec*, size_t)>& fn);

  /// Applies fn to every record of `recs` once, from all threads (evaluation).  No order implied.
  static void parallel_for(const std::vector<Rec>& recs, int threads,
                           const std::function<void(int, const Rec*, size_t)>& fn);

  /// Resume: brings the records into the arrangement they have after `epochs` epochs.  The
  /// chunk permutations compose from epoch to epoch (a chunk's order in epoch e is its order of
  /// epoch e-1 permuted by (seed, e, chunk)); this replays them without training, so a resumed
  /// run visits the ratings exactly as the uninterrupted one.
  void replay(int epochs);

  int blocks() const { return static_cast<int>(block_chunk_.size()) - 1; }
  int chunks() const { return static_cast<int>(chunk_off_.size()) - 1; }
  /// The order this schedule runs (auto resolved: grid with more than one thread, else shuffle).
  Order order() const { return order_; }

  /// Test instrumentation of the grid order: called with the scheduler's lock held at every
  /// grant (grant = true) and release of a block to a thread, so the calls are totally ordered.
  /// Block b covers user strip b / item_strips and item strip b % item_strips.
  using GridTrace = std::function<void(int thread, int block, bool grant)>;
  void set_trace(GridTrace trace) { trace_ = std::move(trace); }
  int item_strips() const { return gi_; }
  /// Grid order: the first epochs run in shuffle order (Hogwild), for accuracy (schedule.cc).
  static constexpr int kGridWarmupEpochs = 1;

 private:
  struct ChunkBuffers {  // one thread's: the records of the chunk it runs, and their permutation
    explicit ChunkBuffers(size_t n) : recs(n), perm(n) {}
    std::vector<Rec> recs;
    std::vector<uint32_t> perm;
  };
  int64_t run_grid(uint64_t eseed, const std::function<void(int, const Rec*, size_t)>& fn);
  void run_chunk(int tid, int c, uint64_t eseed, const std::function<void(int, const Rec*, size_t)>& fn,
                 ChunkBuffers* cb);
  void chunk_permutation(int c, uint64_t eseed, std::vector<uint32_t>* perm) const;

  Order order_;
  int threads_;
  uint64_t seed_;
  std::vector<int32_t> u_, i_;  // the ratings in chunk order (relabelled ids), one array each
  std::vector<float> r_;
  size_t max_chunk_ = 0;
  std::vector<int64_t> chunk_off_;         // chunk c = positions [chunk_off_[c], chunk_off_[c+1])
  std::vector<int32_t> block_chunk_;       // block b = chunks [block_chunk_[b], block_chunk_[b+1])
  std::vector<uint16_t> ustrip_, istrip_;  // grid: strip of every user / item
  int gi_ = 0;                             // grid: item strips (block b = user strip b / gi_, item strip b % gi_)
  GridTrace trace_;
};

/// Ratings from which `auto` picks the grid.  Below, a grid of at least (2 threads)^2 blocks has
/// blocks of few ratings, and its block structure costs accuracy for no speed that matters (the
/// epochs take milliseconds): MovieLens-100K (80 K ratings, 2 threads, 16 blocks) ended +0.2 %
/// above shuffle order (docs/benchmarks.md).
constexpr int64_t kGridMinRatings = int64_t{1} << 20;

/// Resolves Order::kAuto: grid with more than one thread on at least kGridMinRatings ratings,
/// else shuffle.
Order resolve_order(Order order, int threads, int64_t nnz);

/// The grid's strips of one side: `parts` strips of about equal total count, each a union of
/// runs of consecutive ids drawn from the whole popularity range (schedule.cc says why); the
/// strip of every id.
std::vector<uint16_t> stratified_strips(const std::vector<int64_t>& count, int parts, uint64_t seed);

/// Cuts ids [0, count.size()) into `parts` contiguous ranges of about equal total count (a range
/// ends at the first id where the running total reaches its share).  Returns parts + 1
/// boundaries, non-decreasing (a row holding more than a share can leave a range empty).
std::vector<int32_t> balanced_cuts(const std::vector<int64_t>& count, int parts);

/// What check_schedule observed (a test hook: the grid's promise, instrumented, not timed).
struct ScheduleCheck {
  int64_t grants = 0;                  ///< blocks handed out (grid order; 0 for the others)
  int64_t strip_conflicts = 0;         ///< grants of a block sharing a strip with a block another thread held
  int max_held = 0;                    ///< most blocks held at once
  int64_t overlaps = 0;                ///< callbacks that started while another thread's callback was running
  std::vector<int64_t> row_conflicts;  ///< per epoch: records whose row another thread's running callback had
  bool each_once = true;               ///< every epoch visited every rating exactly once
};

/// Test hook (bound as _core.schedule_check): builds the schedule of `train` (relabelled as the
/// trainer does) and runs `epochs` epochs on `threads` threads.  Each callback claims the rows of
/// its records (per-row atomic owner), spins `spin_us` microseconds so that the threads' callbacks
/// overlap, and releases them; a row another thread holds at that moment is a row conflict.  With
/// order grid, the block grants and releases are also traced (under the scheduler's lock, in
/// order) and checked for two held blocks that share a strip.  Shuffle order on skewed data is
/// expected to show row conflicts: the check can fail.
ScheduleCheck check_schedule(const RatingSet& train, Order order, int threads, int epochs, size_t row_bytes,
                             uint64_t seed, int spin_us);

/// Converts a rating set into packed records (in the set's order).
std::vector<Rec> to_records(const RatingSet& rs);

}  // namespace mascot::cpu
