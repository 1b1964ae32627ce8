// SGD kernels of the CPU backend.  kernels.cc is compiled once per instruction set
// (generic, avx2, avx512; see CMakeLists.txt) into namespaces of those names, and
// kernels_dispatch.cc picks the best the host supports at run time.  Every variant performs
// the operations of detail/sgd.h in the same order, so all of them give identical bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

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
  uint64_t round_seed = 0;  ///< per-epoch seed of the stochastic-rounding dithers (detail/rng.h sr_keys, sr_word)
  // schedule = adagrad: the rows' states G (detail/sgd.h), indexed like P's and Q's rows, and
  // lr is eta0; null (the decay schedule): lr is the epoch's rate.
  float* ada_u = nullptr;
  float* ada_i = nullptr;
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
  // of the sampled gradients (groups x k), of their squared norms, and their count.  The
  // vector sums are float: a sample adds 2 x k values to rows that the streaming user rows
  // evict from L2 between two samples of a group, so their footprint is the cost (measured at
  // gamma = 0.2 with mascot_kernel_epochs, two runs each: a measured epoch cost +0.49-0.55 of an
  // n1 epoch with double sums, +0.29-0.39 with float).  Float rounding of a sum of n samples is
  // ~1e-7 sqrt(n) relative, irrelevant to a ratio compared against theta = 20; the threads'
  // partials are reduced in double.
  float* grad_sum = nullptr;
  double* grad_sq = nullptr;
  int64_t* grad_n = nullptr;
  double* grad_nsum = nullptr;  ///< per group sum of the sampled gradients' norms (grad_stats; may be null)
};

struct MixedParams {
  SgdParams sgd;
  bool naive_lookup = false;  ///< branching binary search of the group table (mascot-naive), not the branchless one
  uint64_t sample_seed = 0;   ///< per-epoch seed of the gamma sampling
  uint64_t sample_below = 0;  ///< a rating is sampled when its hash < sample_below (gamma x 2^64)
};

using MixedFn = void (*)(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, const MixedParams& prm);
using MixedSseFn = double (*)(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, int k, bool naive);

struct KernelTable {
  const char* isa;
  SgdFn sgd_fp32;        ///< float storage, float arithmetic
  SgdFn sgd_n1;          ///< half storage, float arithmetic, store rounded per SgdParams::stochastic
  SgdFn sgd_fp16;        ///< half storage, half arithmetic (every operation rounded to half)
  SseFn sse_f32;         ///< evaluation on float storage
  SseFn sse_f16;         ///< evaluation on half storage
  MixedFn sgd_mixed;     ///< per-group precision, optional gradient sampling (MASCOT family)
  MixedSseFn sse_mixed;  ///< evaluation on per-group precision
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

/// The per-row precision bits that row_is_fp32 reads (MixedSide::fp32_bits): bit `id` set when
/// the group owning row `id` is FP32 (fp32[g] != 0, start[0..groups] the boundaries).
inline void encode_fp32_bits(const int32_t* start, const uint8_t* fp32, int groups, std::vector<uint64_t>* bits) {
  const int64_t rows = groups > 0 ? start[groups] : 0;
  bits->assign(static_cast<size_t>(rows + 63) / 64 + 1, 0);
  for (int g = 0; g < groups; ++g)
    if (fp32[g])
      for (int64_t id = start[g]; id < start[g + 1]; ++id) (*bits)[id >> 6] |= uint64_t{1} << (id & 63);
}

// The per-rating random words (stochastic FP16 stores, q-error sampling) are detail/rng.h's,
// shared with the CUDA kernels; these names stay for the bindings' test hooks.
using detail::sr_keys;
using detail::sr_word;
// The prefetch helpers are always_inline: GCC 12 treats a function whose only effect is
// __builtin_prefetch as pure and deletes calls to it that it did not inline first (seen:
// prefetch_ahead compiled to nothing, epochs 2x slower).
#define MASCOT_PREFETCH_FN inline __attribute__((always_inline))
/// Prefetches every 64-byte line of one k-row, and its last byte when the row is not a whole
/// number of lines (the factor buffers are 64-byte aligned, so a row of whole lines needs no
/// more; the extra prefetch cost 0-5 % of an fp32 epoch, within the host's noise, in an A/B of
/// mascot_kernel_epochs).  __builtin_prefetch's rw and locality arguments must be constants.
template <int kWrite, int kLocality, class S>
MASCOT_PREFETCH_FN void prefetch_lines(const S* row, int k) {
  const size_t bytes = static_cast<size_t>(k) * sizeof(S);
  const char* p = reinterpret_cast<const char*>(row);
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, kWrite, kLocality);
  if (bytes % 64) __builtin_prefetch(p + bytes - 1, kWrite, kLocality);
}
/// One k-row into L1, for writing.
template <class S>
MASCOT_PREFETCH_FN void prefetch_row(const S* row, int k) {
  prefetch_lines<1, 3>(row, k);
}
/// One k-row into L2 only (prefetcht1).
template <class S>
MASCOT_PREFETCH_FN void prefetch_row_l2(const S* row, int k) {
  prefetch_lines<0, 2>(row, k);
}

/// Prefetch distances of the loops over ratings, in ratings ahead.  Two stages: the rows of
/// the rating kPrefetchL2 ahead are requested into L2, those of the rating kPrefetchL1 ahead
/// into L1 (by then an L2 hit).  Why: a single L1 prefetch holds one of the core's few L1
/// miss buffers (24 on Zen 4) for a whole DRAM latency, so with ~12 lines per rating only ~2
/// ratings' rows could be in flight, whatever the distance; an L2 prefetch (prefetcht1 goes to
/// L2 on Zen 4 and recent Intel) does not hold them.  Measured with mascot_kernel_epochs
/// (synthetic-ml10m, k = 128, 2 threads): fp32 epochs 25-35 % faster than one-stage at
/// distance 10, mascot-n1 5-10 %, the mixed kernel 10-15 %; 4/16, 4/20, 6/24 and 8/32 alike.
constexpr size_t kPrefetchL1 = 6;
constexpr size_t kPrefetchL2 = 24;

/// The two-stage prefetch at position t of a loop over n ratings, rec(x) giving rating x.
template <class SP, class SQ, class RecAt>
MASCOT_PREFETCH_FN void prefetch_ahead(size_t t, size_t n, const RecAt& rec, const SP* P, const SQ* Q, int k) {
  if (t + kPrefetchL2 < n) {
    const Rec& a = rec(t + kPrefetchL2);
    prefetch_row_l2(P + static_cast<size_t>(a.u) * k, k);
    prefetch_row_l2(Q + static_cast<size_t>(a.i) * k, k);
  }
  if (t + kPrefetchL1 < n) {
    const Rec& a = rec(t + kPrefetchL1);
    prefetch_row(P + static_cast<size_t>(a.u) * k, k);
    prefetch_row(Q + static_cast<size_t>(a.i) * k, k);
  }
}
/// prefetch_ahead over consecutive records.
template <class SP, class SQ>
MASCOT_PREFETCH_FN void prefetch_ahead(size_t t, size_t n, const Rec* recs, const SP* P, const SQ* Q, int k) {
  prefetch_ahead(t, n, [recs](size_t x) -> const Rec& { return recs[x]; }, P, Q, k);
}

}  // namespace mascot::cpu
