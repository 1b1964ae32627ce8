#include "cpu/schedule.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "mascot/detail/rng.h"

namespace mascot::cpu {
namespace {

constexpr int64_t kChunkRatings = 4096;    // ratings per chunk (48 KiB of records: L1/L2)
constexpr int64_t kBlockBytes = 2 << 20;   // rows per block side, in bytes (last-level cache)
constexpr int64_t kMaxBlocksPerSide = 1024;
constexpr int kRefChunk = 128;             // reference code's consecutive run

void run_threads(int threads, const std::function<void(int)>& body) {
  if (threads <= 1) { body(0); return; }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
}

// Reads one byte of every cache line of records r[0..m), in order.  A chunk (48 KiB) comes
// from DRAM at the start of its turn; the shuffle's random swaps would each wait for a line,
// while this sequential pass runs at stream-prefetch speed and leaves the chunk in L2 for the
// shuffle and the kernel.  Measured (EPYC, 4096-rating chunks): shuffle 7.7 -> 3.4 ns per
// rating, the same permutation.
void touch(const Rec* r, uint32_t m) {
  const volatile unsigned char* p = reinterpret_cast<const volatile unsigned char*>(r);  // char: may alias a Rec
  const size_t bytes = static_cast<size_t>(m) * sizeof(Rec);
  for (size_t o = 0; o < bytes; o += 64) (void)p[o];
}

void permute(std::vector<int32_t>& v, detail::FastRng& rng) {
  for (size_t x = v.size(); x > 1; --x) std::swap(v[x - 1], v[rng.below(static_cast<uint32_t>(x))]);
}

}  // namespace

std::vector<Rec> to_records(const RatingSet& rs) {
  std::vector<Rec> v(static_cast<size_t>(rs.nnz()));
  for (size_t t = 0; t < v.size(); ++t) v[t] = Rec{rs.users[t], rs.items[t], rs.ratings[t]};
  return v;
}

Schedule::Schedule(const RatingSet& train, Order order, int threads, size_t row_bytes, uint64_t seed)
    : order_(order), threads_(std::max(1, threads)), seed_(seed) {
  const int64_t n = train.nnz();
  if (order == Order::kChunk) {
    recs_ = to_records(train);
    chunk_off_ = {0, n};
    block_chunk_ = {0, 1};
    return;
  }
  // block of every rating
  int64_t bu = 1, bi = 1;
  if (order == Order::kBlocked) {
    auto side = [&](int64_t rows) {
      const int64_t bytes = rows * static_cast<int64_t>(row_bytes);
      return std::clamp<int64_t>((bytes + kBlockBytes - 1) / kBlockBytes, 1, kMaxBlocksPerSide);
    };
    bu = side(train.n_users);
    bi = side(train.n_items);
  }
  const int64_t nb = bu * bi;
  std::vector<uint32_t> block(static_cast<size_t>(n), 0);
  if (nb > 1)
    for (int64_t t = 0; t < n; ++t) {
      const uint64_t hu = detail::hash3(seed, detail::kStreamOrder, 2 * static_cast<uint64_t>(train.users[t])) % bu;
      const uint64_t hi = detail::hash3(seed, detail::kStreamOrder, 2 * static_cast<uint64_t>(train.items[t]) + 1) % bi;
      block[t] = static_cast<uint32_t>(hu * bi + hi);
    }
  std::vector<int64_t> bsize(static_cast<size_t>(nb), 0);
  for (int64_t t = 0; t < n; ++t) ++bsize[block[t]];
  // chunks of each block; chunk of a rating = hash of its position
  block_chunk_.assign(static_cast<size_t>(nb) + 1, 0);
  for (int64_t b = 0; b < nb; ++b)
    block_chunk_[b + 1] = block_chunk_[b] + static_cast<int32_t>(std::max<int64_t>(1, bsize[b] / kChunkRatings));
  std::vector<uint32_t> key(static_cast<size_t>(n));
  const uint64_t cs = detail::hash3(seed, detail::kStreamOrder, ~0ull);
  for (int64_t t = 0; t < n; ++t) {
    const uint32_t b = block[t];
    const uint64_t nc = static_cast<uint64_t>(block_chunk_[b + 1] - block_chunk_[b]);
    key[t] = static_cast<uint32_t>(block_chunk_[b] + (nc > 1 ? detail::mix64(cs + static_cast<uint64_t>(t)) % nc : 0));
  }
  // counting sort into chunks (stable: a chunk starts in position order)
  const int nc = block_chunk_.back();
  chunk_off_.assign(static_cast<size_t>(nc) + 1, 0);
  for (int64_t t = 0; t < n; ++t) ++chunk_off_[key[t] + 1];
  for (int c = 0; c < nc; ++c) chunk_off_[c + 1] += chunk_off_[c];
  recs_.resize(static_cast<size_t>(n));
  std::vector<int64_t> fill(chunk_off_.begin(), chunk_off_.end() - 1);
  for (int64_t t = 0; t < n; ++t) recs_[fill[key[t]]++] = Rec{train.users[t], train.items[t], train.ratings[t]};
}

int64_t Schedule::run_epoch(int epoch, const std::function<void(int, const Rec*, size_t)>& fn) {
  const uint64_t eseed = detail::hash3(seed_, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(epoch));
  const int64_t n = static_cast<int64_t>(recs_.size());
  if (order_ == Order::kChunk) {
    const int64_t len = std::min<int64_t>(kRefChunk, n);
    const int64_t draws = std::max<int64_t>(1, n / kRefChunk);
    std::atomic<int64_t> next{0};
    run_threads(threads_, [&](int tid) {
      for (int64_t d; (d = next.fetch_add(1, std::memory_order_relaxed)) < draws;) {
        const int64_t start = static_cast<int64_t>(detail::hash3(eseed, 1, d) % static_cast<uint64_t>(n - len + 1));
        fn(tid, recs_.data() + start, static_cast<size_t>(len));
      }
    });
    return draws * len;
  }
  // this epoch's sequence of chunks: blocks permuted, each block's chunks permuted
  detail::FastRng rng(eseed);
  std::vector<int32_t> border(static_cast<size_t>(blocks()));
  for (int b = 0; b < blocks(); ++b) border[b] = b;
  permute(border, rng);
  std::vector<int32_t> seq;
  seq.reserve(static_cast<size_t>(chunks()));
  std::vector<int32_t> tmp;
  for (int b : border) {
    tmp.clear();
    for (int c = block_chunk_[b]; c < block_chunk_[b + 1]; ++c) tmp.push_back(c);
    permute(tmp, rng);
    seq.insert(seq.end(), tmp.begin(), tmp.end());
  }
  std::atomic<size_t> next{0};
  run_threads(threads_, [&](int tid) {
    for (size_t j; (j = next.fetch_add(1, std::memory_order_relaxed)) < seq.size();) {
      const int c = seq[j];
      Rec* r = recs_.data() + chunk_off_[c];
      const uint32_t m = static_cast<uint32_t>(chunk_off_[c + 1] - chunk_off_[c]);
      touch(r, m);
      detail::FastRng cr(detail::hash3(eseed, 2, static_cast<uint64_t>(c)));
      for (uint32_t x = m; x > 1; --x) std::swap(r[x - 1], r[cr.below(x)]);
      fn(tid, r, m);
    }
  });
  return n;
}

void Schedule::replay(int epochs) {
  if (order_ == Order::kChunk || epochs <= 0) return;  // chunk order keeps no arrangement
  std::atomic<int> next{0};
  run_threads(threads_, [&](int) {
    for (int c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks();) {
      Rec* r = recs_.data() + chunk_off_[c];
      const uint32_t m = static_cast<uint32_t>(chunk_off_[c + 1] - chunk_off_[c]);
      for (int e = 0; e < epochs; ++e) {  // exactly run_epoch's shuffle of chunk c in epoch e
        const uint64_t eseed = detail::hash3(seed_, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(e));
        detail::FastRng cr(detail::hash3(eseed, 2, static_cast<uint64_t>(c)));
        for (uint32_t x = m; x > 1; --x) std::swap(r[x - 1], r[cr.below(x)]);
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

}  // namespace mascot::cpu
