#include "cpu/schedule.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "mascot/detail/rng.h"
#include "mascot/error.h"
#include "mascot/reorder.h"

namespace mascot::cpu {
namespace {

constexpr int64_t kChunkRatings = 4096;   // ratings per chunk (48 KiB of records: L1/L2)
constexpr int64_t kBlockBytes = 2 << 20;  // grid: rows per strip at most, in bytes (last-level cache)
constexpr int kRefChunk = 128;            // reference code's consecutive run
constexpr int64_t kMaxStrips = 512;       // grid: strips per side (512 x 512 blocks)
constexpr int kStripRuns = 16;            // grid: runs of consecutive ids per strip (stratified_strips)

void run_threads(int threads, const std::function<void(int)>& body) {
  if (threads <= 1) {
    body(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
}

// Reads one byte of every cache line of p[0..bytes), in order.  A chunk (48 KiB) comes from
// DRAM at the start of its turn; the shuffle's random accesses would each wait for a line,
// while this sequential pass runs at stream-prefetch speed and leaves the chunk in L2 for the
// shuffle and the kernel.  Measured (EPYC, 4096-rating chunks): shuffle 7.7 -> 3.4 ns per
// rating, the same permutation.
void touch(const void* ptr, size_t bytes) {
  const volatile unsigned char* p = static_cast<const volatile unsigned char*>(ptr);  // char: may alias anything
  for (size_t o = 0; o < bytes; o += 64) (void)p[o];
}

// a[dest(t)] = a[t] for every t, through one temporary array (the caller's `dest` is a pure
// function of t, called once per element here).
template <class T, class Dest>
void scatter(std::vector<T>* a, const Dest& dest) {
  std::vector<T> out(a->size());
  for (size_t t = 0; t < a->size(); ++t) out[dest(static_cast<int64_t>(t))] = (*a)[t];
  a->swap(out);
}

void permute(std::vector<int32_t>& v, detail::FastRng& rng) {
  for (size_t x = v.size(); x > 1; --x) std::swap(v[x - 1], v[rng.below(static_cast<uint32_t>(x))]);
}

}  // namespace

Order resolve_order(Order order, int threads, int64_t nnz) {
  if (order != Order::kAuto) return order;
  return threads > 1 && nnz >= kGridMinRatings ? Order::kGrid : Order::kShuffle;
}

std::vector<int32_t> balanced_cuts(const std::vector<int64_t>& count, int parts) {
  const int64_t n = static_cast<int64_t>(count.size());
  int64_t total = 0;
  for (int64_t c : count) total += c;
  std::vector<int32_t> cut(static_cast<size_t>(parts) + 1, static_cast<int32_t>(n));
  cut[0] = 0;
  int64_t run = 0, id = 0;
  for (int s = 1; s < parts; ++s) {
    // range s-1 ends once the running total reaches s/parts of the total (rounded up)
    const int64_t goal = (total * s + parts - 1) / parts;
    while (id < n && run < goal) run += count[id++];
    cut[s] = static_cast<int32_t>(id);
  }
  return cut;
}

std::vector<uint16_t> stratified_strips(const std::vector<int64_t>& count, int parts, uint64_t seed) {
  // parts x kStripRuns runs of consecutive ids with about equal rating counts, dealt in id order
  // to the strip with the smallest total so far (a random one of those tied).  With ids sorted
  // by count (the trainer's relabelling), consecutive runs come from the same part of the
  // popularity range, so every strip gets runs from all of it: no strip is made of the hottest
  // rows only.  Measured (docs/benchmarks.md): strips that are plain contiguous id ranges put the
  // hot items in one strip and cost +0.2-0.3 % test RMSE on heavy skew.  A run of the tail is
  // many consecutive rows, so a strip still reads memory in long stretches.
  const std::vector<int32_t> run = balanced_cuts(count, parts * kStripRuns);
  std::vector<int64_t> load(static_cast<size_t>(parts), 0);
  std::vector<uint16_t> strip(count.size(), 0);
  detail::FastRng rng(seed);
  std::vector<int> least;
  for (size_t c = 0; c + 1 < run.size(); ++c) {
    if (run[c] == run[c + 1]) continue;
    int64_t w = 0;
    for (int32_t x = run[c]; x < run[c + 1]; ++x) w += count[x];
    const int64_t lo = *std::min_element(load.begin(), load.end());
    least.clear();
    for (int g = 0; g < parts; ++g)
      if (load[g] == lo) least.push_back(g);
    const int g = least[rng.below(static_cast<uint32_t>(least.size()))];
    load[g] += w;
    std::fill(strip.begin() + run[c], strip.begin() + run[c + 1], static_cast<uint16_t>(g));
  }
  return strip;
}

std::vector<Rec> to_records(const RatingSet& rs) {
  std::vector<Rec> v(static_cast<size_t>(rs.nnz()));
  for (size_t t = 0; t < v.size(); ++t) v[t] = Rec{rs.users[t], rs.items[t], rs.ratings[t]};
  return v;
}

Schedule::Schedule(const RatingSet& train, Order order, int threads, size_t row_bytes, uint64_t seed)
    : Schedule(RatingSet(train), order, threads, row_bytes, seed) {}

Schedule::Schedule(RatingSet&& train, Order order, int threads, size_t row_bytes, uint64_t seed)
    : order_(resolve_order(order, std::max(1, threads), train.nnz())), threads_(std::max(1, threads)), seed_(seed) {
  order = order_;
  const int64_t n = train.nnz();
  if (order == Order::kChunk) {
    u_ = std::move(train.users);
    i_ = std::move(train.items);
    r_ = std::move(train.ratings);
    chunk_off_ = {0, n};
    block_chunk_ = {0, 1};
    max_chunk_ = static_cast<size_t>(std::min<int64_t>(kRefChunk, n));
    return;
  }
  MASCOT_CHECK_ARG(order == Order::kShuffle || order == Order::kGrid,
                   "order '" + to_string(order) + "' is not a CPU schedule");
  // Layout: the ratings stay three arrays (the set's own, moved in), permuted into chunk order
  // by scatters through one 4-byte temporary at a time, so the peak is the set plus 4 bytes per
  // rating.  (Packed 12-byte records built beside the set, with two 4-byte keys per rating,
  // made the ratings live twice plus 8 bytes during construction, and three times with the
  // caller's copy: issue 23, 447 MB against LIBMF's 161 MB on 9.8 M ratings.)  A chunk is
  // gathered into a per-thread record buffer when it runs (run_chunk).
  const uint64_t cs = detail::hash3(seed, detail::kStreamOrder, ~0ull);
  // chunk of the rating at position t of block b, among the block's chunks
  const auto chunk_in = [&](int64_t b, int64_t t) -> int64_t {
    const uint64_t nc = static_cast<uint64_t>(block_chunk_[b + 1] - block_chunk_[b]);
    return block_chunk_[b] + (nc > 1 ? static_cast<int64_t>(detail::mix64(cs + static_cast<uint64_t>(t)) % nc) : 0);
  };
  // scatter of all three arrays by key(t) in [0, keys), stable; key may read the arrays named in
  // `last` only through its argument's position, which stays valid because that array moves last
  const auto sort_by = [&](int64_t keys, const std::function<int64_t(int64_t)>& key, int last) {
    std::vector<int64_t> start(static_cast<size_t>(keys) + 1, 0);
    for (int64_t t = 0; t < n; ++t) ++start[key(t) + 1];
    for (int64_t k = 0; k < keys; ++k) start[k + 1] += start[k];
    std::vector<int64_t> fill;
    const auto dest = [&](int64_t t) { return fill[key(t)]++; };
    fill.assign(start.begin(), start.end() - 1);
    scatter(&train.ratings, dest);
    for (int side : {last == 0 ? 1 : 0, last}) {
      fill.assign(start.begin(), start.end() - 1);
      if (side == 0)
        scatter(&train.users, dest);
      else
        scatter(&train.items, dest);
    }
    return start;
  };
  if (order == Order::kShuffle) {
    // one block of max(1, n / 4096) chunks; chunk of a rating = hash of its position
    block_chunk_ = {0, static_cast<int32_t>(std::max<int64_t>(1, n / kChunkRatings))};
    chunk_off_ = sort_by(block_chunk_[1], [&](int64_t t) { return chunk_in(0, t); }, 0);
  } else {
    // strips of about equal rating count: at least 2 per thread, and at most 2 MiB of rows
    auto strips = [&](int64_t rows) {
      const int64_t bytes = rows * static_cast<int64_t>(row_bytes);
      const int64_t want = std::max<int64_t>(2 * threads_, (bytes + kBlockBytes - 1) / kBlockBytes);
      return static_cast<int>(std::clamp<int64_t>(want, 1, std::min(kMaxStrips, std::max<int64_t>(1, rows))));
    };
    std::vector<int64_t> uc(static_cast<size_t>(train.n_users), 0), ic(static_cast<size_t>(train.n_items), 0);
    for (int64_t t = 0; t < n; ++t) {
      ++uc[train.users[t]];
      ++ic[train.items[t]];
    }
    ustrip_ = stratified_strips(uc, strips(train.n_users), detail::hash3(seed, detail::kStreamOrder, 3ull << 32));
    istrip_ = stratified_strips(ic, strips(train.n_items), detail::hash3(seed, detail::kStreamOrder, (3ull << 32) + 1));
    const int64_t bu = ustrip_.empty() ? 1 : *std::max_element(ustrip_.begin(), ustrip_.end()) + 1;
    const int64_t bi = istrip_.empty() ? 1 : *std::max_element(istrip_.begin(), istrip_.end()) + 1;
    gi_ = static_cast<int>(bi);
    const int64_t nb = bu * bi;
    std::vector<int64_t> bsize(static_cast<size_t>(nb), 0);
    for (int64_t t = 0; t < n; ++t) ++bsize[ustrip_[train.users[t]] * bi + istrip_[train.items[t]]];
    block_chunk_.assign(static_cast<size_t>(nb) + 1, 0);
    for (int64_t b = 0; b < nb; ++b)
      block_chunk_[b + 1] = block_chunk_[b] + static_cast<int32_t>(std::max<int64_t>(1, bsize[b] / kChunkRatings));
    // two stable sorts: by user strip (the users move last), then by block and chunk, where a
    // position's user strip is its segment of the first sort and the items move last
    const std::vector<int64_t> seg = sort_by(bu, [&](int64_t t) { return ustrip_[train.users[t]]; }, 0);
    const auto ustrip_at = [&](int64_t t) {
      return static_cast<int64_t>(std::upper_bound(seg.begin(), seg.end(), t) - seg.begin()) - 1;
    };
    chunk_off_ = sort_by(
        block_chunk_.back(), [&](int64_t t) { return chunk_in(ustrip_at(t) * bi + istrip_[train.items[t]], t); }, 1);
  }
  for (size_t c = 0; c + 1 < chunk_off_.size(); ++c)
    max_chunk_ = std::max<size_t>(max_chunk_, static_cast<size_t>(chunk_off_[c + 1] - chunk_off_[c]));
  u_ = std::move(train.users);
  i_ = std::move(train.items);
  r_ = std::move(train.ratings);
}

int64_t Schedule::run_epoch(int epoch, const std::function<void(int, const Rec*, size_t)>& fn) {
  const uint64_t eseed = detail::hash3(seed_, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(epoch));
  const int64_t n = static_cast<int64_t>(r_.size());
  if (order_ == Order::kChunk) {
    const int64_t len = std::min<int64_t>(kRefChunk, n);
    const int64_t draws = std::max<int64_t>(1, n / kRefChunk);
    std::atomic<int64_t> next{0};
    run_threads(threads_, [&](int tid) {
      std::vector<Rec> buf(static_cast<size_t>(len));
      for (int64_t d; (d = next.fetch_add(1, std::memory_order_relaxed)) < draws;) {
        const int64_t start = static_cast<int64_t>(detail::hash3(eseed, 1, d) % static_cast<uint64_t>(n - len + 1));
        for (int64_t x = 0; x < len; ++x) buf[x] = Rec{u_[start + x], i_[start + x], r_[start + x]};
        fn(tid, buf.data(), static_cast<size_t>(len));
      }
    });
    return draws * len;
  }
  // Grid order starts with kGridWarmupEpochs epochs in random order (chunks of all blocks permuted,
  // threads as in `shuffle`).  Why: from the tiny initial factors, the rows of blocks trained
  // apart break their symmetry in different directions, and reconciling them costs the rest of
  // the run accuracy.  Measured (docs/benchmarks.md, synthetic-ml10m-heavy:0.25, fp32): without a
  // warm-up the first epoch ends at test RMSE 1.3-1.9 (shuffle: 1.09) and the 50th +0.3-0.7 %
  // above shuffle order; with one warm-up epoch within +-0.1 %.
  if (order_ == Order::kGrid && epoch >= kGridWarmupEpochs) return run_grid(eseed, fn);
  // shuffle order, and the grid's warm-up: all chunks in a fresh permutation
  detail::FastRng rng(eseed);
  std::vector<int32_t> seq(static_cast<size_t>(chunks()));
  for (int c = 0; c < chunks(); ++c) seq[c] = c;
  permute(seq, rng);
  std::atomic<size_t> next{0};
  run_threads(threads_, [&](int tid) {
    ChunkBuffers cb(max_chunk_);
    for (size_t j; (j = next.fetch_add(1, std::memory_order_relaxed)) < seq.size();)
      run_chunk(tid, seq[j], eseed, fn, &cb);
  });
  return n;
}

// The permutation of chunk c's positions in epoch e (Fisher-Yates of the identity with the
// chunk's generator): its records are visited in this order and left in it (replay()).
void Schedule::chunk_permutation(int c, uint64_t eseed, std::vector<uint32_t>* perm) const {
  const uint32_t m = static_cast<uint32_t>(chunk_off_[c + 1] - chunk_off_[c]);
  perm->resize(m);
  for (uint32_t x = 0; x < m; ++x) (*perm)[x] = x;
  detail::FastRng cr(detail::hash3(eseed, 2, static_cast<uint64_t>(c)));
  for (uint32_t x = m; x > 1; --x) std::swap((*perm)[x - 1], (*perm)[cr.below(x)]);
}

// Chunk c in this epoch: read into cache, gathered into the thread's record buffer in a fresh
// permutation (the same one an in-place Fisher-Yates of the records would give), handed to fn,
// and written back in that order, so the permutations compose from epoch to epoch.
void Schedule::run_chunk(int tid, int c, uint64_t eseed, const std::function<void(int, const Rec*, size_t)>& fn,
                         ChunkBuffers* cb) {
  const int64_t a = chunk_off_[c];
  const uint32_t m = static_cast<uint32_t>(chunk_off_[c + 1] - a);
  int32_t* u = u_.data() + a;
  int32_t* i = i_.data() + a;
  float* r = r_.data() + a;
  touch(u, m * sizeof(int32_t));
  touch(i, m * sizeof(int32_t));
  touch(r, m * sizeof(float));
  chunk_permutation(c, eseed, &cb->perm);
  Rec* buf = cb->recs.data();
  for (uint32_t x = 0; x < m; ++x) {
    const uint32_t y = cb->perm[x];
    buf[x] = Rec{u[y], i[y], r[y]};
  }
  fn(tid, buf, m);
  for (uint32_t x = 0; x < m; ++x) {
    u[x] = buf[x].u;
    i[x] = buf[x].i;
    r[x] = buf[x].r;
  }
}

// Grid order: one scheduler state under a mutex.  A thread that finishes a block releases its
// two strips and takes a random not-yet-done block whose strips are both free, or waits until
// a release makes one free.  Blocks are coarse (>= ~nnz / (2 threads)^2 ratings... in practice
// thousands of ratings), so the lock is taken a few hundred times per epoch.
int64_t Schedule::run_grid(uint64_t eseed, const std::function<void(int, const Rec*, size_t)>& fn) {
  const int gi = gi_;
  const int gu = gi_ > 0 ? blocks() / gi_ : 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint8_t> ubusy(static_cast<size_t>(gu), 0), ibusy(static_cast<size_t>(gi), 0);
  std::vector<int32_t> todo;
  todo.reserve(static_cast<size_t>(blocks()));
  for (int b = 0; b < blocks(); ++b)
    if (chunk_off_[block_chunk_[b + 1]] > chunk_off_[block_chunk_[b]]) todo.push_back(b);
  detail::FastRng pick_rng(detail::hash3(eseed, 3, 0));
  // a random free block of todo (removed from it), or -1: scan from a random start
  auto pick = [&]() -> int {
    const size_t m = todo.size();
    const size_t start = pick_rng.below(static_cast<uint32_t>(m));
    for (size_t x = 0; x < m; ++x) {
      const size_t j = start + x < m ? start + x : start + x - m;
      const int b = todo[j];
      if (!ubusy[b / gi] && !ibusy[b % gi]) {
        todo[j] = todo.back();
        todo.pop_back();
        return b;
      }
    }
    return -1;
  };
  run_threads(threads_, [&](int tid) {
    std::vector<int32_t> order;
    ChunkBuffers cb(max_chunk_);
    int held = -1;
    for (;;) {
      int b = -1;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (held >= 0) {
          ubusy[held / gi] = 0;
          ibusy[held % gi] = 0;
          if (trace_) trace_(tid, held, false);
          cv.notify_all();
        }
        while (!todo.empty() && (b = pick()) < 0) cv.wait(lock);
        if (b < 0) return;  // every block done (or taken by the others)
        ubusy[b / gi] = 1;
        ibusy[b % gi] = 1;
        if (trace_) trace_(tid, b, true);
        if (todo.empty()) cv.notify_all();  // waiting threads: nothing left, stop
      }
      order.clear();
      for (int c = block_chunk_[b]; c < block_chunk_[b + 1]; ++c) order.push_back(c);
      detail::FastRng br(detail::hash3(eseed, 4, static_cast<uint64_t>(b)));
      permute(order, br);
      for (int c : order) run_chunk(tid, c, eseed, fn, &cb);
      held = b;
    }
  });
  return static_cast<int64_t>(r_.size());
}

void Schedule::replay(int epochs) {
  if (order_ == Order::kChunk || epochs <= 0) return;  // chunk order keeps no arrangement
  std::atomic<int> next{0};
  run_threads(threads_, [&](int) {
    ChunkBuffers cb(max_chunk_);
    for (int c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks();) {
      const int64_t a = chunk_off_[c];
      const uint32_t m = static_cast<uint32_t>(chunk_off_[c + 1] - a);
      for (int e = 0; e < epochs; ++e) {  // exactly run_epoch's permutation of chunk c in epoch e
        const uint64_t eseed = detail::hash3(seed_, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(e));
        chunk_permutation(c, eseed, &cb.perm);
        for (uint32_t x = 0; x < m; ++x) {
          const uint32_t y = cb.perm[x];
          cb.recs[x] = Rec{u_[a + y], i_[a + y], r_[a + y]};
        }
        for (uint32_t x = 0; x < m; ++x) {
          u_[a + x] = cb.recs[x].u;
          i_[a + x] = cb.recs[x].i;
          r_[a + x] = cb.recs[x].r;
        }
      }
    }
  });
}

void Schedule::parallel_for(const std::vector<Rec>& recs, int threads,
                            const std::function<void(int, const Rec*, size_t)>& fn) {
  const size_t n = recs.size();
  const size_t step = 1 << 16;
  std::atomic<size_t> next{0};
  run_threads(std::max(1, threads), [&](int tid) {
    for (size_t s; (s = next.fetch_add(step, std::memory_order_relaxed)) < n;)
      fn(tid, recs.data() + s, std::min(step, n - s));
  });
}

ScheduleCheck check_schedule(const RatingSet& train, Order order, int threads, int epochs, size_t row_bytes,
                             uint64_t seed, int spin_us) {
  MASCOT_CHECK_ARG(train.nnz() < (1 << 24), "check_schedule needs fewer than 2^24 ratings");
  MASCOT_CHECK_ARG(threads >= 1 && epochs >= 1 && spin_us >= 0, "threads and epochs >= 1, spin_us >= 0");
  RatingSet tagged = Reorder::build(train, 1, 1).apply(train, nullptr);                  // as the trainer hands it over
  for (int64_t t = 0; t < tagged.nnz(); ++t) tagged.ratings[t] = static_cast<float>(t);  // position, exact
  Schedule sched(tagged, order, threads, row_bytes, seed);
  ScheduleCheck out;
  // strips held per thread, from the trace (called in order, under the scheduler's lock)
  const int gi = sched.item_strips();
  std::vector<int> held(static_cast<size_t>(threads), -1);
  sched.set_trace([&](int tid, int b, bool grant) {
    if (!grant) {
      held[tid] = -1;
      return;
    }
    ++out.grants;
    for (int t = 0; t < threads; ++t)
      if (t != tid && held[t] >= 0 && (held[t] / gi == b / gi || held[t] % gi == b % gi)) ++out.strip_conflicts;
    held[tid] = b;
    int n = 0;
    for (int h : held) n += h >= 0;
    out.max_held = std::max(out.max_held, n);
  });
  std::vector<std::atomic<int32_t>> uown(static_cast<size_t>(tagged.n_users));
  std::vector<std::atomic<int32_t>> iown(static_cast<size_t>(tagged.n_items));
  for (auto& x : uown) x.store(-1);
  for (auto& x : iown) x.store(-1);
  std::atomic<int> running{0};
  std::atomic<int64_t> overlaps{0};
  std::vector<uint8_t> seen(static_cast<size_t>(tagged.nnz()));
  std::mutex seen_mu;
  for (int e = 0; e < epochs; ++e) {
    std::fill(seen.begin(), seen.end(), 0);
    std::atomic<int64_t> conflicts{0};
    sched.run_epoch(e, [&](int tid, const Rec* r, size_t m) {
      if (running.fetch_add(1) > 0) overlaps.fetch_add(1);
      // claim: a row whose owner is another thread is a conflict; rows already ours stay ours
      std::vector<std::atomic<int32_t>*> mine;
      int64_t bad = 0;
      for (size_t x = 0; x < m; ++x) {
        for (std::atomic<int32_t>* o : {&uown[r[x].u], &iown[r[x].i]}) {
          int32_t expect = -1;
          if (o->compare_exchange_strong(expect, tid))
            mine.push_back(o);
          else if (expect != tid)
            ++bad;
        }
      }
      if (spin_us > 0) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
        while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
      }
      for (std::atomic<int32_t>* o : mine) o->store(-1);
      conflicts.fetch_add(bad);
      running.fetch_sub(1);
      std::lock_guard<std::mutex> lock(seen_mu);
      for (size_t x = 0; x < m; ++x) {
        const auto pos = static_cast<size_t>(r[x].r);
        if (seen[pos]) out.each_once = false;
        seen[pos] = 1;
      }
    });
    for (uint8_t v : seen)
      if (!v) out.each_once = false;
    out.row_conflicts.push_back(conflicts.load());
  }
  out.overlaps = overlaps.load();
  return out;
}

}  // namespace mascot::cpu
