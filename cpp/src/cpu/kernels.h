// SGD kernels of the CPU backend.  kernels.cc is compiled once per instruction set
// (generic, avx2, avx512; see CMakeLists.txt) into namespaces of those names, and
// kernels_dispatch.cc picks the best the host supports at run time.  Every variant performs
// the operations of detail/sgd.h in the same order, so all of them give identical bits.
#pragma once
#include <cstddef>
#include <cstdint>

#include "mascot/detail/rng.h"
#include "mascot/groups.h"

namespace mascot::cpu {

/// One training rating in relabelled ids, as the epoch streams it (12 bytes).
struct Rec {
  int32_t u;
  int32_t i;
  float r;
};

struct SgdParams {
  int k;
  float lr, lambda_p, lambda_q;
  bool stochastic = false;  ///< FP16 stores round stochastically (detail/half.h float_to_half_sr)
  uint64_t round_seed = 0;  ///< per-epoch seed of the stochastic-rounding bits (see sr_words)
};

/// Processes recs[0..n) in order, updating P and Q in place (Hogwild: other threads may be
/// updating other rows, or the same ones, concurrently).
using SgdFn = void (*)(const Rec* recs, size_t n, void* P, void* Q, const SgdParams& prm);
/// Sum of squared errors of p_u . q_i (FP32 dot, documented lane order) over recs.
using SseFn = double (*)(const Rec* recs, size_t n, const void* P, const void* Q, int k);

/// One side (users or items) of a model whose precision is chosen per group (MASCOT).
/// Rows of group j live in f32 when fp32[j] != 0, else in f16; ids are relabelled so group j
/// owns [start[j], start[j+1]).
struct MixedSide {
  float* f32 = nullptr;
  uint16_t* f16 = nullptr;
  const int32_t* start = nullptr;  ///< groups + 1 boundaries
  const uint8_t* fp32 = nullptr;   ///< per group
  int groups = 0;
  // The same precision information per row, one bit each (bit id of fp32_bits: row id is
  // FP32), derived from the group table once per epoch.  Measured on synthetic-ml10m: the
  // groups that switch are not a prefix of the table (11-16 precision runs per side by the end),
  // so scanning or searching boundaries per rating cost more than this one L1-resident load
  // (n/8 bytes: 8.7 KB for 70K users).
  const uint64_t* fp32_bits = nullptr;
  // gradient samples of this thread (null when the epoch is not measured): per group the sum
  // of the sampled gradients (groups x k), of their squared norms, and their count
  double* grad_sum = nullptr;
  double* grad_sq = nullptr;
  int64_t* grad_n = nullptr;
  double* grad_nsum = nullptr;  ///< per group sum of the sampled gradients' norms (grad_stats; may be null)
};

struct MixedParams {
  SgdParams sgd;
  bool naive_lookup = false;     ///< binary search of the group table (mascot-naive) instead of hot-first scan
  uint64_t sample_seed = 0;      ///< per-epoch seed of the gamma sampling
  uint64_t sample_below = 0;     ///< a rating is sampled when its hash < sample_below (gamma x 2^64)
};

using MixedFn = void (*)(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, const MixedParams& prm);
using MixedSseFn = double (*)(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, int k, bool naive);

struct KernelTable {
  const char* isa;
  SgdFn sgd_fp32;   ///< float storage, float arithmetic
  SgdFn sgd_n1;     ///< half storage, float arithmetic, store rounded per SgdParams::stochastic
  SgdFn sgd_fp16;   ///< half storage, half arithmetic (every operation rounded to half)
  SseFn sse_f32;    ///< evaluation on float storage
  SseFn sse_f16;    ///< evaluation on half storage
  MixedFn sgd_mixed;      ///< per-group precision, optional gradient sampling (MASCOT family)
  MixedSseFn sse_mixed;   ///< evaluation on per-group precision
};

/// The best table for this host (MASCOT_ISA=generic|avx2|avx512 in the environment forces one,
/// for testing; an unsupported request falls back to the best supported).
const KernelTable& kernels();
const char* kernel_isa();

/// Storage precision of row `id` (true: FP32).  The optimised path reads the row's bit; the
/// naive one binary-searches the group table and reads the group's flag.
inline bool row_is_fp32(const MixedSide& s, int32_t id, bool naive) {
  if (naive) return s.fp32[lookup_group(s.start, s.groups, id, true)] != 0;
  return (s.fp32_bits[static_cast<uint32_t>(id) >> 6] >> (static_cast<uint32_t>(id) & 63)) & 1;
}

inline uint64_t rating_key(int32_t u, int32_t i) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(u)) << 32) | static_cast<uint32_t>(i);
}

/// The 32-bit random words used for the stochastic FP16 stores of rating (u, i): element j of
/// p_u uses sr_word(hp, j), of q_i sr_word(hq, j), with (hp, hq) = sr_keys(round_seed, u, i).
inline void sr_keys(uint64_t round_seed, int32_t u, int32_t i, uint32_t* hp, uint32_t* hq) {
  const uint64_t h = detail::mix64(round_seed ^ rating_key(u, i));  // round_seed is already a hash
  *hp = static_cast<uint32_t>(h);
  *hq = static_cast<uint32_t>(h >> 32);
}
inline uint32_t sr_word(uint32_t h, uint32_t j) {
  uint32_t x = h + j * 0x9E3779B9u;  // lowbias32 (Wellons) of a per-element counter
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
/// Prefetches one k-row (for writing) into L1: every 64-byte line and the last byte.
template <class S>
inline void prefetch_row(const S* row, int k) {
  const size_t bytes = static_cast<size_t>(k) * sizeof(S);
  const char* p = reinterpret_cast<const char*>(row);
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 1, 3);
  __builtin_prefetch(p + bytes - 1, 1, 3);
}
/// Prefetches the two rows of rating r, interleaved (memory is the bottleneck: DESIGN.md §6).
template <class S>
inline void prefetch_rows(const Rec& r, const S* P, const S* Q, int k) {
  const size_t bytes = static_cast<size_t>(k) * sizeof(S);
  const char* p = reinterpret_cast<const char*>(P + static_cast<size_t>(r.u) * k);
  const char* q = reinterpret_cast<const char*>(Q + static_cast<size_t>(r.i) * k);
  for (size_t o = 0; o < bytes; o += 64) {
    __builtin_prefetch(p + o, 1, 3);
    __builtin_prefetch(q + o, 1, 3);
  }
  __builtin_prefetch(p + bytes - 1, 1, 3);
  __builtin_prefetch(q + bytes - 1, 1, 3);
}

/// Whether rating (u, i) is sampled for the q-error this epoch (probability below / 2^64).
inline bool sampled(uint64_t sample_seed, uint64_t below, int32_t u, int32_t i) {
  return detail::mix64(sample_seed ^ rating_key(u, i)) < below;  // sample_seed is already a hash
}

}  // namespace mascot::cpu
