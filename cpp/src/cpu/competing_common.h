// The competing methods on the CPU backend: MPT, MuPPET and AFP, each as its
// paper describes it, mapped onto matrix factorization (MF) trained by Hogwild SGD with batch
// size 1 (the MASCOT paper, Section IV-A: b = 1 for every method; "For MuPPET, MPT, and AFP,
// we set their hyperparameters as recommended in their work").
//
// Common to all three (and to the papers): the FP32 master copies P and Q are what SGD
// updates; the methods only change the precision of the operands of the forward pass (the dot
// product p_u . q_i) and of the backward pass (the gradients of Eq. 2-3).  An MF "network" has
// two weight tensors ("layers"), P (users) and Q (items); one "iteration" is one rating's
// update; an "epoch" is the backend's pass over the training set.
//
// Threads: sgd() runs concurrently from the backend's worker threads, Hogwild style.  Every
// piece of mutable state a method keeps during the pass (loss scales, AFP's quantization
// parameters, statistics, scratch rows) lives in a per-thread Worker (64-byte aligned, so no
// false sharing); end_epoch() runs after the threads joined and reduces them.  No locks, no
// atomics, no shared mutable state, nothing allocated per rating.  (The MASCOT reference code
// lost updates in such reductions; here each accumulator has exactly one writer.)
//
// Rounding: where a method rounds to low precision it honours cfg.rounding: nearest (ties to
// even) or stochastic, with random words that are a pure function of (seed, epoch, u, i,
// operand, element): hash3(seed, kStreamRound, ...) mixed with the rating and element.
//
// This header holds what the three share (mpt.cc, muppet.cc, afp.cc): the 16-lane row helpers,
// the random words, the per-rating loop, fixed-point and FP16 rows, the checks of checkpointed
// state.  Internal to cpu/.  Everything is inline: the per-rating loops force-inline it, so each
// method's loop compiles as if written out.  Per-element arithmetic: detail/sgd.h.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/competing.h"
#include "cpu/kernels.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/sgd.h"

namespace mascot::cpu::competing {

using detail::FixedFormat;

// Checks on structs read raw from a checkpoint's state (import_state): a bool member holding
// any byte but 0/1 is undefined behaviour once loaded (found by fuzz/targets/checkpoint.cc),
// and a fixed-point format must be the one make_fixed_format builds from its two integers.
bool bool_byte_ok(const bool& b);
bool format_ok(const FixedFormat& f);

// ISA dispatch: the per-rating loops are written once (force-inlined) and instantiated twice,
// generic (SSE2 on x86-64) and with AVX2 enabled (8-wide), picked at run time like the SGD
// kernels: AVX2 whenever kernel_isa() is avx2 or avx512 (so MASCOT_ISA=generic forces the
// generic path here too).  Both perform the same float operations in the same order (MPT's
// round-to-nearest FP16 casts use F16C on the AVX2 path, bit-identical to the software
// rounding), so the results do not depend on the path (tests: single-thread runs match).
#if defined(__GNUC__)
#define MASCOT_FORCE_INLINE inline __attribute__((always_inline))
#else
#define MASCOT_FORCE_INLINE inline
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MASCOT_COMPETING_AVX2 1
#define MASCOT_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#else
#define MASCOT_COMPETING_AVX2 0
#define MASCOT_TARGET_AVX2
#endif

inline bool use_avx2() {
  static const bool yes = MASCOT_COMPETING_AVX2 && std::strcmp(kernel_isa(), "generic") != 0;
  return yes;
}

constexpr int kL = 16;                // lanes of the explicit partial sums (as detail/sgd.h)
constexpr float kHalfMax = 65504.0f;  // largest finite FP16

// ------------------------------------------------------------------ vector helpers
// Written with 16 explicit lanes so that GCC vectorises them without reassociation flags.

/// Dot product with detail/sgd.h's lane structure (element j -> lane j % 16, then a tree).
MASCOT_FORCE_INLINE float dot16(const float* __restrict a, const float* __restrict b, int k) {
  float acc[kL] = {};
  int j = 0;
  for (; j + kL <= k; j += kL)
    for (int l = 0; l < kL; ++l) acc[l] = detail::dot_step(acc[l], a[j + l], b[j + l]);
  for (int l = 0; j + l < k; ++l) acc[l] = detail::dot_step(acc[l], a[j + l], b[j + l]);
  for (int w = kL / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

MASCOT_FORCE_INLINE float max_abs16(const float* __restrict a, int k) {
  float m[kL] = {};
  int j = 0;
  for (; j + kL <= k; j += kL)
    for (int l = 0; l < kL; ++l) {
      const float v = std::fabs(a[j + l]);
      m[l] = v > m[l] ? v : m[l];
    }
  for (int l = 0; j + l < k; ++l) {
    const float v = std::fabs(a[j + l]);
    m[l] = v > m[l] ? v : m[l];
  }
  for (int w = kL / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  return m[0];
}

MASCOT_FORCE_INLINE float sum_abs16(const float* __restrict a, int k) {
  float s[kL] = {};
  int j = 0;
  for (; j + kL <= k; j += kL)
    for (int l = 0; l < kL; ++l) s[l] += std::fabs(a[j + l]);
  for (int l = 0; j + l < k; ++l) s[l] += std::fabs(a[j + l]);
  for (int w = kL / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) s[l] += s[l + w];
  return s[0];
}

/// Max |x| over a whole tensor (n elements), in slices of max_abs16 (the per-epoch scans).
inline float tensor_max_abs(const float* a, int64_t n) {
  float m = 0;
  const int64_t step = int64_t(1) << 20;
  for (int64_t s = 0; s < n; s += step) m = std::max(m, max_abs16(a + s, static_cast<int>(std::min(step, n - s))));
  return m;
}

/// Number of elements that are not finite FP16 values (|x| > 65504, inf or nan).
MASCOT_FORCE_INLINE int count_half_overflow(const float* __restrict a, int k) {
  int n = 0;
  for (int j = 0; j < k; ++j) n += !(std::fabs(a[j]) <= kHalfMax);
  return n;
}

// ------------------------------------------------------------------ random words (stochastic rounding)
// detail/rng.h's words, shared with the CUDA kernels: per rating a key from (epoch key, u, i);
// per element a word from (key, operand tag, j).

using detail::epoch_round_key;
MASCOT_FORCE_INLINE uint64_t rating_round_key(uint64_t epoch_key, const Rec& r) {
  return detail::rating_round_key(epoch_key, r.u, r.i);
}
/// w[j] = detail::round_word(rating_key, tag, j) for j < n.
MASCOT_FORCE_INLINE void fill_words(uint32_t* __restrict w, int n, uint64_t rating_key, uint32_t tag) {
  const uint64_t base = detail::round_word_base(rating_key, tag);
  for (int j = 0; j < n; ++j) w[j] = detail::round_word_at(base, static_cast<uint32_t>(j));
}
inline uint32_t one_word(uint64_t rating_key, uint32_t tag) { return detail::round_one_word(rating_key, tag); }

// ------------------------------------------------------------------ the loop over a call's ratings
// Every method's per-rating loop: the two-stage prefetch (cpu/kernels.h: rows are DRAM
// misses), then body(x, rating, its FP32 user row, its FP32 item row, its stochastic-rounding
// key; 0 unless SR).  The body is a force-inlined lambda, so each loop compiles as if written
// out; `return` in it goes on to the next rating.
#if defined(__GNUC__)
#define MASCOT_FORCE_INLINE_LAMBDA __attribute__((always_inline))
#else
#define MASCOT_FORCE_INLINE_LAMBDA
#endif
template <bool SR, class Body>
MASCOT_FORCE_INLINE void for_each_rating(const Rec* recs, size_t count, float* P, float* Q, int k, uint64_t epoch_key,
                                         const Body& body) {
  for (size_t x = 0; x < count; ++x) {
    prefetch_ahead(x, count, recs, P, Q, k);
    const Rec rec = recs[x];
    body(x, rec, P + static_cast<size_t>(rec.u) * k, Q + static_cast<size_t>(rec.i) * k,
         SR ? rating_round_key(epoch_key, rec) : uint64_t{0});
  }
}

// ------------------------------------------------------------------ schedule adagrad
/// The FP32 masters' update with schedule adagrad (detail/sgd.h; prm.ada_u != null): each row
/// steps by eta0 / sqrt(G) along its gradient, gp(j, p_j, q_j) and gq(j, p_j, q_j) of the old
/// values (what each method's decay update passes to descend), and its state G takes the mean
/// of the squared gradient elements (the 16 lanes of dot16 and their tree).
template <class GP, class GQ>
MASCOT_FORCE_INLINE void adagrad_masters(float* __restrict p, float* __restrict q, int k, const Rec& rec,
                                         const SgdParams& prm, const GP& gp, const GQ& gq) {
  float* Gp = prm.ada_u + rec.u;
  float* Gq = prm.ada_i + rec.i;
  const float ep = detail::adagrad_rate(prm.lr, *Gp), eq = detail::adagrad_rate(prm.lr, *Gq);
  float sp[kL] = {}, sq[kL] = {};
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    const float a = gp(j, pj, qj), b = gq(j, pj, qj);
    p[j] = detail::descend(pj, ep, a);
    q[j] = detail::descend(qj, eq, b);
    sp[j % kL] = detail::dot_step(sp[j % kL], a, a);
    sq[j % kL] = detail::dot_step(sq[j % kL], b, b);
  }
  *Gp = detail::adagrad_accumulate(*Gp, detail::reduce_lanes(sp, detail::NoRound{}), k);
  *Gq = detail::adagrad_accumulate(*Gq, detail::reduce_lanes(sq, detail::NoRound{}), k);
}

// ------------------------------------------------------------------ fixed-point rows

MASCOT_FORCE_INLINE void fixed_row_rn(float* __restrict out, const float* __restrict in, int k, const FixedFormat& f) {
  const FixedFormat g = f;
  for (int j = 0; j < k; ++j) out[j] = detail::fixed_round_rn(in[j], g);
}
MASCOT_FORCE_INLINE void fixed_row_sr(float* __restrict out, const float* __restrict in, int k, const FixedFormat& f,
                                      const uint32_t* __restrict w) {
  const FixedFormat g = f;
  for (int j = 0; j < k; ++j) out[j] = detail::fixed_round_sr(in[j], g, w[j]);
}

MASCOT_FORCE_INLINE void fixed_inplace_rn(float* __restrict a, int k, const FixedFormat& f) {
  const FixedFormat g = f;
  for (int j = 0; j < k; ++j) a[j] = detail::fixed_round_rn(a[j], g);
}
MASCOT_FORCE_INLINE void fixed_inplace_sr(float* __restrict a, int k, const FixedFormat& f,
                                          const uint32_t* __restrict w) {
  const FixedFormat g = f;
  for (int j = 0; j < k; ++j) a[j] = detail::fixed_round_sr(a[j], g, w[j]);
}

/// fixed_row_rn and sum_abs16 of its output in one pass: out = the row quantized to nearest,
/// returns sum |out| (sum_abs16's lanes and tree, so the same float).
MASCOT_FORCE_INLINE float fixed_row_rn_sum_abs(float* __restrict out, const float* __restrict in, int k,
                                               const FixedFormat& f) {
  const FixedFormat g = f;
  float s[kL] = {};
  int j = 0;
  for (; j + kL <= k; j += kL)
    for (int l = 0; l < kL; ++l) {
      const float v = detail::fixed_round_rn(in[j + l], g);
      out[j + l] = v;
      s[l] += std::fabs(v);
    }
  for (int l = 0; j + l < k; ++l) {
    const float v = detail::fixed_round_rn(in[j + l], g);
    out[j + l] = v;
    s[l] += std::fabs(v);
  }
  for (int w = kL / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) s[l] += s[l + w];
  return s[0];
}

// FP16 rows with round-to-nearest: F16C on the AVX2 path (kernel_isa avx2 implies F16C), the
// branchless software rounding elsewhere; both give half.h's float_to_half_rn bits.
template <bool F16C>
inline void half_rn_row(float* __restrict out, const float* __restrict in, float scale, int k);

template <>
MASCOT_FORCE_INLINE void half_rn_row<false>(float* __restrict out, const float* __restrict in, float scale, int k) {
  for (int j = 0; j < k; ++j) out[j] = detail::half_rn_value(scale * in[j]);
}
#if MASCOT_COMPETING_AVX2
template <>
MASCOT_TARGET_AVX2 inline void half_rn_row<true>(float* __restrict out, const float* __restrict in, float scale,
                                                 int k) {
  const __m256 s = _mm256_set1_ps(scale);
  int j = 0;
  for (; j + 8 <= k; j += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(s, _mm256_loadu_ps(in + j)), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(out + j, _mm256_cvtph_ps(h));
  }
  for (; j < k; ++j) out[j] = detail::half_rn_value(scale * in[j]);
}
#else
template <>
MASCOT_FORCE_INLINE void half_rn_row<true>(float* __restrict out, const float* __restrict in, float scale, int k) {
  half_rn_row<false>(out, in, scale, k);
}
#endif

/// Scratch rows of one worker, allocated once.
struct Scratch {
  std::vector<float> a, b, c, d;
  std::vector<uint32_t> w;
  void init(int k) {
    a.assign(k, 0.f);
    b.assign(k, 0.f);
    c.assign(k, 0.f);
    d.assign(k, 0.f);
    w.assign(static_cast<size_t>(k), 0u);
  }
};

// One factory per method, each in its own file; make_competing_method (competing.cc) picks.
std::unique_ptr<CompetingMethod> make_mpt(const TrainConfig& cfg, int threads, uint64_t seed);
std::unique_ptr<CompetingMethod> make_muppet(const TrainConfig& cfg, int threads, uint64_t seed);
std::unique_ptr<CompetingMethod> make_afp(const TrainConfig& cfg, int threads, uint64_t seed);

}  // namespace mascot::cpu::competing
