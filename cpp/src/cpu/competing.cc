// The competing methods of DESIGN.md §4 on the CPU backend: MPT, MuPPET and AFP, each as its
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
#include "cpu/competing.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "mascot/detail/binio.h"
#include "mascot/detail/afp_report.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/json.h"
#include "mascot/detail/muppet_report.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace mascot::cpu {
namespace {

using detail::FixedFormat;

// Checks on structs read raw from a checkpoint's state (import_state): a bool member holding
// any byte but 0/1 is undefined behaviour once loaded (found by fuzz/targets/checkpoint.cc),
// and a fixed-point format must be the one make_fixed_format builds from its two integers.
bool bool_byte_ok(const bool& b) {
  unsigned char c;
  std::memcpy(&c, &b, 1);
  return c <= 1;
}
bool format_ok(const FixedFormat& f) {
  if (f.word_length < 0 || f.word_length > 24 || f.frac_bits <= -300 || f.frac_bits >= 300) return false;
  if (f.word_length == 0)  // never built (FP32 level): only needs to be harmless
    return std::isfinite(f.scale) && std::isfinite(f.inv_scale) && std::isfinite(f.lo) && std::isfinite(f.hi);
  const FixedFormat g = detail::make_fixed_format(f.frac_bits, f.word_length);
  return std::memcmp(&f.scale, &g.scale, sizeof(float)) == 0 && std::memcmp(&f.inv_scale, &g.inv_scale, sizeof(float)) == 0 &&
         f.lo == g.lo && f.hi == g.hi;
}

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

bool use_avx2() {
  static const bool yes = MASCOT_COMPETING_AVX2 && std::strcmp(kernel_isa(), "generic") != 0;
  return yes;
}

constexpr int kL = 16;                 // lanes of the explicit partial sums (as detail/sgd.h)
constexpr float kHalfMax = 65504.0f;   // largest finite FP16

// ------------------------------------------------------------------ vector helpers
// Written with 16 explicit lanes so that GCC vectorises them without reassociation flags.

/// Dot product with detail/sgd.h's lane structure (element j -> lane j % 16, then a tree).
MASCOT_FORCE_INLINE float dot16(const float* __restrict a, const float* __restrict b, int k) {
  float acc[kL] = {};
  int j = 0;
  for (; j + kL <= k; j += kL)
    for (int l = 0; l < kL; ++l) acc[l] += a[j + l] * b[j + l];
  for (int l = 0; j + l < k; ++l) acc[l] += a[j + l] * b[j + l];
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

/// Number of elements that are not finite FP16 values (|x| > 65504, inf or nan).
MASCOT_FORCE_INLINE int count_half_overflow(const float* __restrict a, int k) {
  int n = 0;
  for (int j = 0; j < k; ++j) n += !(std::fabs(a[j]) <= kHalfMax);
  return n;
}

// ------------------------------------------------------------------ random words (stochastic rounding)
// Per rating a key from (epoch key, u, i); per element a word from (key, operand tag, j).
// Pure functions: no RNG state, independent of thread scheduling.  (The `chunk` order, which
// samples with replacement, can visit a rating twice in an epoch; both visits then draw the
// same words, which is harmless.)

inline uint64_t epoch_round_key(uint64_t seed, uint64_t method_tag, int epoch) {
  return detail::hash3(seed, detail::kStreamRound, (method_tag << 40) + static_cast<uint64_t>(epoch));
}
inline uint64_t rating_round_key(uint64_t epoch_key, const Rec& r) {
  return detail::mix64(epoch_key ^ ((static_cast<uint64_t>(static_cast<uint32_t>(r.u)) << 32) |
                                    static_cast<uint32_t>(r.i)));
}
MASCOT_FORCE_INLINE void fill_words(uint32_t* __restrict w, int n, uint64_t rating_key, uint32_t tag) {
  const uint64_t base = rating_key + (static_cast<uint64_t>(tag) << 24);
  for (int j = 0; j < n; ++j) w[j] = static_cast<uint32_t>(detail::mix64(base + static_cast<uint64_t>(j)) >> 32);
}
inline uint32_t one_word(uint64_t rating_key, uint32_t tag) {
  return static_cast<uint32_t>(detail::mix64(rating_key + (static_cast<uint64_t>(tag) << 24) + 0xFFFFFFull) >> 32);
}

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
MASCOT_FORCE_INLINE void fixed_inplace_sr(float* __restrict a, int k, const FixedFormat& f, const uint32_t* __restrict w) {
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
MASCOT_TARGET_AVX2 inline void half_rn_row<true>(float* __restrict out, const float* __restrict in,
                                                               float scale, int k) {
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

// ====================================================================================== MPT
// Micikevicius et al., "Mixed Precision Training" (ICLR 2018), on MF:
//  * FP32 master weights: P and Q stay FP32; every update is applied to them in FP32.
//  * FP16 copies for the arithmetic: per rating, p_u and q_i are rounded to FP16 (the
//    per-iteration weight cast of MPT; a rating's iteration only uses these two rows).
//  * Forward: the dot product multiplies FP16 values and accumulates in FP32 ("FP16 products
//    accumulated into FP32, then written to FP16"): the prediction is stored as FP16.  The
//    loss (the error e = r - r_hat) is computed in FP32, as MPT keeps loss computations in FP32.
//  * Loss scaling: the backward pass starts from the scaled loss gradient S * e, cast to FP16,
//    and all gradients are FP16: grad p_j = fp16(fp16(S e) * q16_j), grad q_j likewise (one
//    product per element at batch size 1, so "FP32 accumulate" is one exact product rounded to
//    FP16).  The FP16 gradients are unscaled in FP32 (x 1/S) and applied to the FP32 masters
//    with the L2 term (Eq. 2-3), i.e. the regulariser acts as optimizer-side weight decay on
//    the FP32 master, where MPT does its weight update.
//  * Static S (default 1000) or dynamic S (NVIDIA's recipe, starting from loss_scale): an
//    update whose FP16 scaled gradient holds an inf/nan is skipped and S halves; after
//    loss_scale_window clean updates S doubles.  With a static S an overflowing update is
//    skipped too (applying inf/nan would destroy the master) and counted; S = 1000 never
//    overflows on 1..5-star ratings.  One S per worker thread (see MptLossScale): in Hogwild
//    the workers share no mutable state, and "did my update overflow" is local to each
//    worker's stream of updates; a global S would need an atomic per rating for no benefit.
//    An "iteration" of MPT's window is one rating update of that worker.
class Mpt final : public CompetingMethod {
 public:
  Mpt(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        workers_(static_cast<size_t>(std::max(1, threads))) {
    for (auto& w : workers_) {
      w.s.init(k_);
      w.ls.init(c_.loss_scale, c_.dynamic_loss_scale, c_.loss_scale_window);
    }
  }

  void begin_epoch(int epoch, const float*, int64_t, const float*, int64_t) override {
    epoch_ = epoch;
    epoch_key_ = epoch_round_key(seed_, 1, epoch);
    for (auto& w : workers_) w.updates = w.skipped = 0;
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    if (use_avx2()) stochastic_ ? run_avx2<true>(w, recs, count, P, Q, prm) : run_avx2<false>(w, recs, count, P, Q, prm);
    else stochastic_ ? run_generic<true>(w, recs, count, P, Q, prm) : run_generic<false>(w, recs, count, P, Q, prm);
  }

  void end_epoch(int, const float*, int64_t, const float*, int64_t, std::string* json) override {
    int64_t skipped = 0, updates = 0;
    float smin = workers_[0].ls.scale, smax = smin;
    for (const auto& w : workers_) {
      skipped += w.skipped;
      updates += w.updates;
      smin = std::min(smin, w.ls.scale);
      smax = std::max(smax, w.ls.scale);
    }
    skipped_total_ += skipped;
    detail::JsonWriter j;
    j.begin_object();
    j.kv("name", "mpt").kv("dynamic_loss_scale", c_.dynamic_loss_scale);
    j.kv("loss_scale_min", static_cast<double>(smin)).kv("loss_scale_max", static_cast<double>(smax));
    j.key("loss_scales").begin_array();  // per worker thread, after this epoch
    for (const auto& w : workers_) j.value(static_cast<double>(w.ls.scale));
    j.end_array();
    j.kv("updates", updates).kv("skipped_updates", skipped).kv("skipped_total", skipped_total_);
    j.end_object();
    *json = j.str();
  }

  // checkpoint: per-worker loss scales and clean-update counters, the run's skip count
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("mpt");
    w.pod(static_cast<uint64_t>(workers_.size()));
    for (const auto& x : workers_) w.pod(x.ls);
    w.pod(skipped_total_);
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "mpt state");
    if (r.str() != "mpt") r.fail("not an mpt state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    for (auto& x : workers_) {
      x.ls = r.pod<detail::MptLossScale>();
      if (!bool_byte_ok(x.ls.dynamic)) r.fail("loss scale state out of range or from other settings");
      if (!(x.ls.scale >= detail::MptLossScale::kMin && x.ls.scale <= detail::MptLossScale::kMax) || x.ls.clean < 0 ||
          x.ls.dynamic != c_.dynamic_loss_scale || x.ls.window != c_.loss_scale_window)
        r.fail("loss scale state out of range or from other settings");
    }
    skipped_total_ = r.pod<int64_t>();
    r.expect_done();
  }

 private:
  struct alignas(64) Worker {
    detail::MptLossScale ls;
    int64_t updates = 0, skipped = 0;
    Scratch s;
  };

  template <bool SR>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR, true>(w, recs, count, P, Q, prm);
  }
  template <bool SR>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR, false>(w, recs, count, P, Q, prm);
  }

  template <bool SR, bool F16C>
  MASCOT_FORCE_INLINE void run(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict gp = w.s.c.data();
    float* __restrict gq = w.s.d.data();
    uint32_t* __restrict rw = w.s.w.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<SR>(recs, count, P, Q, k, epoch_key_,
                        [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q, uint64_t key)
                            MASCOT_FORCE_INLINE_LAMBDA {
      // FP16 copies of the FP32 masters
      if (SR) {
        fill_words(rw, k, key, 1);
        for (int j = 0; j < k; ++j) ph[j] = detail::half_sr_value(p[j], rw[j]);
        fill_words(rw, k, key, 2);
        for (int j = 0; j < k; ++j) qh[j] = detail::half_sr_value(q[j], rw[j]);
      } else {
        half_rn_row<F16C>(ph, p, 1.0f, k);
        half_rn_row<F16C>(qh, q, 1.0f, k);
      }
      // forward: FP16 products, FP32 accumulation, FP16 output; FP32 loss
      const float dot = dot16(ph, qh, k);
      const float rhat = SR ? detail::half_sr_value(dot, one_word(key, 3)) : detail::half_rn_value(dot);
      const float e = rec.r - rhat;
      // backward in FP16 on the scaled loss gradient
      const float S = w.ls.scale;
      const float se = SR ? detail::half_sr_value(S * e, one_word(key, 4)) : detail::half_rn_value(S * e);
      if (SR) {
        fill_words(rw, k, key, 5);
        for (int j = 0; j < k; ++j) gp[j] = detail::half_sr_value(se * qh[j], rw[j]);
        fill_words(rw, k, key, 6);
        for (int j = 0; j < k; ++j) gq[j] = detail::half_sr_value(se * ph[j], rw[j]);
      } else {
        half_rn_row<F16C>(gp, qh, se, k);
        half_rn_row<F16C>(gq, ph, se, k);
      }
      // overflow: inf/nan in the FP16 scaled gradient.  With nearest rounding that is exactly
      // an FP16 value that is not finite; stochastic rounding saturates at 65504 instead, so
      // there it is a value that nearest rounding would have sent to inf (|x| >= 65520).
      bool overflow = !(std::fabs(se) <= kHalfMax) || count_half_overflow(gp, k) + count_half_overflow(gq, k) > 0;
      if (SR)
        overflow = overflow || !(std::fabs(S * e) < 65520.0f) || !(std::fabs(se) * max_abs16(qh, k) < 65520.0f) ||
                   !(std::fabs(se) * max_abs16(ph, k) < 65520.0f);
      ++w.updates;
      if (!w.ls.step(overflow)) {
        ++w.skipped;
        return;  // next rating
      }
      // unscale in FP32, update the FP32 masters (Eq. 2-3; L2 term on the master)
      const float inv = 1.0f / S;
      for (int j = 0; j < k; ++j) {
        const float pj = p[j], qj = q[j];
        p[j] = pj + lr * (gp[j] * inv - lp * pj);
        q[j] = qj + lr * (gq[j] * inv - lq * qj);
      }
        });
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  int epoch_ = 0;
  uint64_t epoch_key_ = 0;
  int64_t skipped_total_ = 0;
  std::vector<Worker> workers_;
};

// ====================================================================================== MuPPET
// Rajagopal et al., "Multi-Precision Policy Enforced Training (MuPPET)", ICML 2020, and its
// code (github.com/ICIdsl/muppet), on MF:
//  * Precision levels: dynamic fixed point at word lengths 8 -> 12 -> 14 -> 16, then FP32
//    (Prec_Schedule 8 12 14 16 -1); updates always go to the FP32 masters (quant_sgd.py keeps
//    fpWeights and re-quantizes the weights from them).
//  * Weights: per-layer ("block floating point") scale 2^f chosen from the layer's max |w|
//    (quantize.py findSfAndScale).  MF's two layers are P and Q.  MuPPET re-derives the scale
//    from the whole FP32 tensor after every step (quant_sgd.py).  Scanning P (m x k) per
//    rating is impossible, so: at the start of each epoch the scale of P and of Q comes from
//    a scan of the whole tensor (begin_epoch), and during the epoch a worker lowers its
//    fractional bits as soon as a row it reads has outgrown them - the tensor's max can only
//    have grown to at least that row's max, which is what MuPPET's per-step rescaling would
//    follow.  (Values that shrink keep the epoch's scale until the next scan.)  Holding the
//    begin-of-epoch scale for the whole epoch instead saturates the fast-growing early MF
//    weights: measured on synthetic-ml10m:0.01 (k = 16, 20 epochs) the test RMSE jumps from
//    3.73 to 4.9 in epoch 1 and ends 1.1 % above FP32; following the tensor it tracks FP32
//    (within 0.01 %).
//  * Forward: p_hat, q_hat quantized, dot product of the quantized values accumulated in FP32
//    (MuPPET: integer products, 32-bit accumulation).
//  * Backward: MuPPET quantizes every back-propagated gradient tensor with its own dynamic
//    scale at the call (scaler.py backward hook).  MF's only back-propagated gradient is the
//    loss gradient e = r - r_hat, a one-element tensor at batch size 1: it is quantized to WL
//    bits with a scale from |e|.  The weight gradients are computed from the quantized
//    operands and, as quant_sgd.py does with p.grad, quantized to WL bits with a per-tensor
//    scale taken from the gradient itself: P's gradient tensor at one rating is the row
//    e_hat * q_hat (all other rows are zero), so its scale comes from max_j |e_hat q_hat_j|.
//    Weight decay is added after that quantization, in FP32, on the quantized weights
//    (quant_sgd.py: d_p = Q(grad) + wd * p.data):  p += lr (Q(e_hat q_hat) - lambda_P p_hat).
//  * Switching (policy.py): at the end of each epoch the gradient of the epoch's last
//    mini-batch is recorded per layer; every r epochs the inter-epoch gradient diversity of
//    each layer over the last r epochs, sum_j ||g_j||^2 / ||sum_j g_j||^2, is averaged over
//    the layers and fed to MuppetPolicy (competing_params.h).
//    Mapping of "the gradient of the last mini-batch of epoch j" to MF: the mini-batch is the
//    last muppet_batch (128, MuPPET's batch size) ratings of the epoch, split over the worker
//    threads (each thread records its last ceil(128 / threads) ratings; the union is the
//    epoch's last mini-batch); the layer gradient of a mini-batch is the sum of its ratings'
//    gradients.  Literally that is a sparse m x k matrix whose few non-zero rows differ from
//    epoch to epoch (batch size 1, rows of different users are orthogonal), which would make
//    every inter-epoch diversity ~1 and the policy blind.  As the MASCOT paper does when it
//    applies gradient diversity to MF (Eq. 4: ||sum_u grad p_u||^2 / sum_u ||grad p_u||^2 over
//    k-vectors of different users) and as the MASCOT authors' MuPPET code does, the rows are
//    summed as k-vectors: g_P^j = sum over the mini-batch of the recorded gradient of p_u
//    (Q likewise), which keeps the latent dimensions - the parameters every rating shares,
//    like a convolution's filter - as the tensor.  P and Q stay separate layers (the
//    reference code mixed them into one vector).  The recorded gradient is what policy.py
//    reads from p.grad after the step: the quantized gradient plus weight decay.
//    Decisions only at fixed-point levels; the FP32 level records nothing (policy.py).
//    MuPPET's extra FP32 learning-rate schedule (Fp32_Epochs_Per_Lr) has no counterpart:
//    the epochs and the learning-rate schedule are the trainer's, shared by all methods.
class Muppet final : public CompetingMethod {
 public:
  Muppet(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        threads_(std::max(1, threads)), workers_(static_cast<size_t>(threads_)) {
    policy_.levels = static_cast<int>(c_.muppet_word_lengths.size());
    batch_per_thread_ = (c_.muppet_batch + threads_ - 1) / threads_;
    for (auto& w : workers_) {
      w.s.init(k_);
      w.bp.assign(static_cast<size_t>(k_), 0.f);
      w.bq.assign(static_cast<size_t>(k_), 0.f);
    }
    win_.reset(k_);
  }

  void begin_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n) override {
    epoch_key_ = epoch_round_key(seed_, 2, epoch);
    wl_ = policy_.fp32() ? 0 : c_.muppet_word_lengths[static_cast<size_t>(policy_.level)];
    if (wl_ > 0) {
      max_p_ = tensor_max_abs(P, m * k_);
      max_q_ = tensor_max_abs(Q, n * k_);
      fp_ = detail::make_fixed_format(detail::fixed_frac_bits(max_p_, wl_), wl_);
      fq_ = detail::make_fixed_format(detail::fixed_frac_bits(max_q_, wl_), wl_);
    }
    for (auto& w : workers_) {
      std::fill(w.bp.begin(), w.bp.end(), 0.f);
      std::fill(w.bq.begin(), w.bq.end(), 0.f);
      w.bn = 0;
      w.fp = fp_;
      w.fq = fq_;
      w.rescales = 0;
    }
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    const int v = wl_ == 0 ? 0 : stochastic_ ? 2 : 1;
    if (use_avx2()) {
      if (v == 0) run_avx2<0>(w, recs, count, P, Q, prm);
      else if (v == 1) run_avx2<1>(w, recs, count, P, Q, prm);
      else run_avx2<2>(w, recs, count, P, Q, prm);
    } else {
      if (v == 0) run_generic<0>(w, recs, count, P, Q, prm);
      else if (v == 1) run_generic<1>(w, recs, count, P, Q, prm);
      else run_generic<2>(w, recs, count, P, Q, prm);
    }
  }

  void end_epoch(int epoch, const float*, int64_t, const float*, int64_t, std::string* json) override {
    detail::MuppetEpochFacts f;
    f.word_length = wl_;
    std::vector<double> gp, gq;
    if (wl_ > 0) {
      // this epoch's last mini-batch gradient per layer: the union of the workers' last ratings
      gp.assign(static_cast<size_t>(k_), 0.0);
      gq.assign(static_cast<size_t>(k_), 0.0);
      f.frac_p = f.frac_p_end = fp_.frac_bits;
      f.frac_q = f.frac_q_end = fq_.frac_bits;
      for (const auto& w : workers_) {
        f.batch += w.bn;
        for (int j = 0; j < k_; ++j) {
          gp[j] += w.bp[j];
          gq[j] += w.bq[j];
        }
        f.frac_p_end = std::min(f.frac_p_end, w.fp.frac_bits);
        f.frac_q_end = std::min(f.frac_q_end, w.fq.frac_bits);
        f.rescales += w.rescales;
      }
      f.max_p = max_p_;
      f.max_q = max_q_;
    }
    *json = detail::muppet_end_epoch(c_, epoch, f, gp, gq, &win_, &policy_, &switches_);
  }

  // checkpoint: the policy (level, max diversity, violations), the open diversity window and
  // the switch history; everything else is re-derived in begin_epoch
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("muppet");
    w.pod(static_cast<uint64_t>(workers_.size()));
    w.pod(policy_);
    w.vec(win_.p);
    w.vec(win_.q);
    w.pod(win_.norm_p);
    w.pod(win_.norm_q);
    w.vec(switches_);
    w.pod(fp_);
    w.pod(fq_);
    w.pod(max_p_);
    w.pod(max_q_);
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "muppet state");
    if (r.str() != "muppet") r.fail("not a muppet state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    policy_ = r.pod<detail::MuppetPolicy>();
    if (!bool_byte_ok(policy_.evaluated) || !std::isfinite(policy_.max_gd) || !std::isfinite(policy_.ratio) ||
        !std::isfinite(policy_.threshold) || policy_.violations < 0 || !std::isfinite(policy_.compared_max) ||
        policy_.violations_seen < 0)
      r.fail("policy state out of range");
    win_.p = r.vec<double>();
    win_.q = r.vec<double>();
    if (win_.p.size() != static_cast<size_t>(k_) || win_.q.size() != static_cast<size_t>(k_)) r.fail("wrong k");
    r.pod(&win_.norm_p);
    r.pod(&win_.norm_q);
    switches_ = r.vec<int>();
    r.pod(&fp_);
    r.pod(&fq_);
    r.pod(&max_p_);
    r.pod(&max_q_);
    r.expect_done();
    if (policy_.levels != static_cast<int>(c_.muppet_word_lengths.size()) || policy_.level < 0 ||
        policy_.level > policy_.levels)
      r.fail("policy level out of range");
    if (!format_ok(fp_) || !format_ok(fq_)) r.fail("fixed-point format out of range");
  }

 private:
  struct alignas(64) Worker {
    Scratch s;
    std::vector<float> bp, bq;  // gradient sums of this worker's last ratings of the epoch
    int64_t bn = 0;
    FixedFormat fp{}, fq{};     // this worker's scales of P and Q (the epoch's, lowered on growth)
    int64_t rescales = 0;
  };

  static float tensor_max_abs(const float* a, int64_t n) {
    float m = 0;
    const int64_t step = int64_t(1) << 20;
    for (int64_t s = 0; s < n; s += step) m = std::max(m, max_abs16(a + s, static_cast<int>(std::min(step, n - s))));
    return m;
  }

  /// V: 0 FP32 level, 1 fixed point with nearest rounding, 2 fixed point with stochastic rounding.
  template <int V>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    if (V == 0) run_fp32(recs, count, P, Q, prm);
    else run_fixed<V == 2>(w, recs, count, P, Q, prm);
  }
  template <int V>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    if (V == 0) run_fp32(recs, count, P, Q, prm);
    else run_fixed<V == 2>(w, recs, count, P, Q, prm);
  }

  MASCOT_FORCE_INLINE void run_fp32(const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<false>(recs, count, P, Q, k, 0,
                        [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q, [[maybe_unused]] uint64_t key)
                            MASCOT_FORCE_INLINE_LAMBDA {
      const float e = rec.r - dot16(p, q, k);
      for (int j = 0; j < k; ++j) {
        const float pj = p[j], qj = q[j];
        p[j] = pj + lr * (e * qj - lp * pj);
        q[j] = qj + lr * (e * pj - lq * qj);
      }
        });
  }

  template <bool SR>
  MASCOT_FORCE_INLINE void run_fixed(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_, wl = wl_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict gp = w.s.c.data();
    float* __restrict gq = w.s.d.data();
    uint32_t* __restrict rw = w.s.w.data();
    float* __restrict bp = w.bp.data();
    float* __restrict bq = w.bq.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    FixedFormat fp = w.fp, fq = w.fq;
    float fmax_p = detail::muppet_range(fp), fmax_q = detail::muppet_range(fq);
    // the worker's last ratings of the epoch: the tail of this call (a later call replaces it)
    const size_t B = static_cast<size_t>(batch_per_thread_);
    if (count >= B || static_cast<size_t>(w.bn) + count > B) {
      std::fill(w.bp.begin(), w.bp.end(), 0.f);
      std::fill(w.bq.begin(), w.bq.end(), 0.f);
      w.bn = 0;
    }
    const size_t tail = count > B ? count - B : 0;
    for_each_rating<SR>(recs, count, P, Q, k, epoch_key_,
                        [&](size_t x, const Rec& rec, float* __restrict p, float* __restrict q, uint64_t key)
                            MASCOT_FORCE_INLINE_LAMBDA {
      // the layer scale follows the tensor's growth (see above)
      const float mp = max_abs16(p, k), mq = max_abs16(q, k);
      if (mp > fmax_p) {
        fp = detail::make_fixed_format(detail::fixed_frac_bits(mp, wl), wl);
        fmax_p = detail::muppet_range(fp);
        ++w.rescales;
      }
      if (mq > fmax_q) {
        fq = detail::make_fixed_format(detail::fixed_frac_bits(mq, wl), wl);
        fmax_q = detail::muppet_range(fq);
        ++w.rescales;
      }
      // forward on the per-layer quantized weights
      if (SR) {
        fill_words(rw, k, key, 1);
        fixed_row_sr(ph, p, k, fp, rw);
        fill_words(rw, k, key, 2);
        fixed_row_sr(qh, q, k, fq, rw);
      } else {
        fixed_row_rn(ph, p, k, fp);
        fixed_row_rn(qh, q, k, fq);
      }
      const float e = rec.r - dot16(ph, qh, k);
      // back-propagated gradient (one element): own dynamic scale
      const FixedFormat fe = detail::make_fixed_format(detail::fixed_frac_bits(std::fabs(e), wl), wl);
      const float eh = SR ? detail::fixed_round_sr(e, fe, one_word(key, 3)) : detail::fixed_round_rn(e, fe);
      // weight gradients (data term) from the quantized operands, quantized with their own scale
      const float ae = std::fabs(eh);
      const FixedFormat fgp = detail::make_fixed_format(detail::fixed_frac_bits(ae * max_abs16(qh, k), wl), wl);
      const FixedFormat fgq = detail::make_fixed_format(detail::fixed_frac_bits(ae * max_abs16(ph, k), wl), wl);
      // (quantize e_hat * q_hat, then + weight decay on the quantized weights; the same
      // operations as separate passes, fused)
      if (SR) {
        fill_words(rw, k, key, 4);
        for (int j = 0; j < k; ++j) gp[j] = detail::fixed_round_sr(eh * qh[j], fgp, rw[j]) - lp * ph[j];
        fill_words(rw, k, key, 5);
        for (int j = 0; j < k; ++j) gq[j] = detail::fixed_round_sr(eh * ph[j], fgq, rw[j]) - lq * qh[j];
      } else {
        for (int j = 0; j < k; ++j) {
          gp[j] = detail::fixed_round_rn(eh * qh[j], fgp) - lp * ph[j];
          gq[j] = detail::fixed_round_rn(eh * ph[j], fgq) - lq * qh[j];
        }
      }
      // FP32 update of the masters
      for (int j = 0; j < k; ++j) {
        p[j] += lr * gp[j];
        q[j] += lr * gq[j];
      }
      if (x >= tail) {
        for (int j = 0; j < k; ++j) {
          bp[j] += gp[j];
          bq[j] += gq[j];
        }
        ++w.bn;
      }
        });
    w.fp = fp;
    w.fq = fq;
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  int threads_;
  int batch_per_thread_ = 1;
  uint64_t epoch_key_ = 0;
  detail::MuppetPolicy policy_;
  int wl_ = 0;  // this epoch's word length, 0 = FP32
  float max_p_ = 0, max_q_ = 0;
  FixedFormat fp_{}, fq_{};
  detail::MuppetWindow win_;  ///< gradient-diversity window (policy.py sumOfGrads / sumOfNorms)
  std::vector<int> switches_;
  std::vector<Worker> workers_;
};

// ====================================================================================== AFP
// Zhang et al., "Fixed-Point Back-Propagation Training" (CVPR 2020; arXiv 1911.00361 "Adaptive
// Precision Training"), on MF:
//  * Tensors: each layer's data is quantized to dynamic fixed point with a shared point
//    position s (step 2^s, s = ceil(log2(max|x| / (2^(n-1) - 1))), no clamping of the
//    maximum) and its own bit width n.  MF's tensors: P and Q (the layers' weights, operands
//    of the forward dot product and of the backward pass) and G, the back-propagated
//    gradients of the iteration (grad p_u = e q_hat - lambda_P p_hat and grad q_i, the data
//    the weight update is computed from); the updates go to the FP32 masters.  The loss
//    gradient e itself is FP32 (the loss layer), computed from the fixed-point dot product.
//  * Bit width (AFP's layer-wise precision rule): at every re-evaluation the quantization
//    error diff = log2(|sum|x| - sum|x_q|| / sum|x| + 1) is measured at 8 bits, and above the
//    threshold the tensor uses 16 bits until its next re-evaluation (AFP's "+8 bits", within
//    the 8/16 bits the MASCOT paper uses for AFP), else 8 bits.
//  * Update interval (AFP's rule): the quantization parameters (s, n) of a tensor are only
//    re-evaluated every I iterations, I = beta / max(delta diff^2, |m_t - m_(t-1)|) - gamma,
//    m the moving average of s (m starts at the first s); in between the stale parameters
//    are used.  An iteration is one rating (batch size 1).
//  * Saturation guard (the one addition to AFP's schedule): a re-evaluation is also due as
//    soon as the tensor's max |x| no longer fits the point position in use.  AFP picks s so
//    that the largest value never saturates and lengthens the interval while s is stable,
//    presuming the layer's range drifts slowly, as it does in CNNs.  MF latent vectors grow
//    ~20-50x from their initialisation (sigma = 0.01) in the first epochs, and the very first
//    interval is enormous (|m_1 - m_0| = 0 and delta diff^2 ~ 1e-11 at 16 bits give I ~ 1e8),
//    so without the guard the initial s is frozen for the whole run: the quantized weights
//    saturate at 2^15 2^s ~ 0.06, the error never shrinks and training diverges (measured:
//    test RMSE 32 after 20 epochs on synthetic-ml10m:0.01).  The report counts the guard's
//    re-evaluations ("saturation_evaluations").
//  * What is measured at a re-evaluation: AFP measures a layer's data (the whole tensor) at
//    the iteration of the re-evaluation.  For P and Q the range (max |x|) is the tensor's
//    own: its max |x| at the start of the epoch (a scan of the whole tensor, as AFP takes the
//    whole layer's max) raised by every row the worker has read since (a running max: the
//    tensor's max is at least that, so the shared scale follows the tensor without
//    rescanning it).  The quantization error, which decides the width, is measured on the
//    rows the worker read in its last kAfpRecentRows (32) iterations of the epoch, the
//    current one included (competing_params.h: one row's k values scatter too much, every
//    tensor went to 16 bits at its first re-evaluation; the whole tensor per re-evaluation
//    would cost O(rows x k)).  For G the data of the iteration is its whole gradient tensor
//    (grad p_u, grad q_i: batch size 1).
//  * One state (s, n, m, next iteration) per tensor per worker thread: AFP's state is a
//    per-layer sequence of decisions along the iterations; Hogwild workers run their own
//    iteration streams, so each worker applies the rule to its stream (as the MASCOT
//    authors' AFP code does per GPU warp), without shared mutable state.
class Afp final : public CompetingMethod {
 public:
  enum { kP = 0, kQ = 1, kG = 2, kTensors = 3 };

  Afp(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        workers_(static_cast<size_t>(std::max(1, threads))) {
    for (auto& w : workers_) {
      w.s.init(k_);
      w.g2.assign(static_cast<size_t>(2 * k_), 0.f);
      w.gq2.assign(static_cast<size_t>(2 * k_), 0.f);
      for (auto& st : w.st) {
        st.bits = c_.afp_low_bits;
        st.next = 0;
      }
    }
  }

  void begin_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n) override {
    epoch_key_ = epoch_round_key(seed_, 3, epoch);
    max_p_ = tensor_max_abs(P, m * k_);
    max_q_ = tensor_max_abs(Q, n * k_);
    for (auto& w : workers_) {
      w.run_max[kP] = w.run_max[kQ] = 0.f;
      w.epoch_iter = 0;
      for (auto& s : w.stats) s = Stats{};
    }
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    if (use_avx2()) stochastic_ ? run_avx2<true>(w, recs, count, P, Q, prm) : run_avx2<false>(w, recs, count, P, Q, prm);
    else stochastic_ ? run_generic<true>(w, recs, count, P, Q, prm) : run_generic<false>(w, recs, count, P, Q, prm);
  }

  void end_epoch(int, const float*, int64_t, const float*, int64_t, std::string* json) override {
    static_assert(kTensors == 3, "afp_epoch_json reports P, Q and G");
    *json = detail::afp_epoch_json(workers_, c_, max_p_, max_q_);
  }

  // checkpoint: each worker's tensor states (bits, point position, moving average, next
  // re-evaluation), its formats in use and its iteration count; stats are per epoch
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("afp");
    w.pod(static_cast<uint64_t>(workers_.size()));
    for (const auto& x : workers_) {
      for (int t = 0; t < kTensors; ++t) {
        w.pod(x.st[t]);
        w.pod(x.fmt[t]);
        w.pod(x.fmax[t]);
      }
      w.pod(x.iter);
    }
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "afp state");
    if (r.str() != "afp") r.fail("not an afp state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    for (auto& x : workers_) {
      for (int t = 0; t < kTensors; ++t) {
        r.pod(&x.st[t]);
        r.pod(&x.fmt[t]);
        r.pod(&x.fmax[t]);
        const auto& st = x.st[t];
        const auto& f = x.fmt[t];
        if ((st.bits != c_.afp_low_bits && st.bits != c_.afp_high_bits) || st.pos < -300 || st.pos > 300 ||
            st.next < 0 || st.interval < 0 || !bool_byte_ok(st.has_avg) || !(std::fabs(st.mov_avg) <= 300) ||
            !format_ok(f) || !std::isfinite(x.fmax[t]))
          r.fail("tensor state out of range or from other settings");
      }
      r.pod(&x.iter);
      if (x.iter < 0) r.fail("negative iteration count");
    }
    r.expect_done();
  }

 private:
  struct Stats {
    int64_t evals = 0, saturated = 0, to_high = 0, itv_max = 0;
    double err_sum = 0, err_max = 0, itv_sum = 0;
  };
  struct alignas(64) Worker {
    detail::AfpTensorState st[kTensors];
    FixedFormat fmt[kTensors]{};
    float fmax[kTensors] = {0.f, 0.f, 0.f};  // largest value fmt can hold
    Stats stats[kTensors];
    float run_max[2] = {0.f, 0.f};
    int64_t iter = 0;  // this worker's iterations (ratings), across epochs
    int64_t epoch_iter = 0;  // ... in this epoch
    int32_t recent[2][detail::kAfpRecentRows];  // P, Q rows of the last iterations (slot = epoch_iter % 32)
    Scratch s;
    std::vector<float> g2;  // gradient of the iteration (p part, q part) for measuring G
    std::vector<float> gq2;  // ... quantized by this iteration's re-evaluation of G
  };

  static float tensor_max_abs(const float* a, int64_t n) {
    float m = 0;
    const int64_t step = int64_t(1) << 20;
    for (int64_t s = 0; s < n; s += step) m = std::max(m, max_abs16(a + s, static_cast<int>(std::min(step, n - s))));
    return m;
  }

  /// A re-evaluation of tensor t at this iteration (AFP's rule, competing_params.h): its data
  /// are `rows` rows of k values (P, Q: the recent rows; G: the iteration's two gradient rows),
  /// row(x) the x-th; its max |x| is range.  out: where the rows quantized to the format
  /// chosen go (rows x k), or null.
  template <class Row>
  void reevaluate(Worker& w, int t, int rows, Row&& row, float range, bool saturated, int64_t due_by,
                  float* out = nullptr) {
    detail::AfpTensorState& st = w.st[t];
    Stats& s = w.stats[t];
    float* tmp = w.s.c.data();
    const int k = k_;
    // Nearest rounding: the format's error, not one draw's.  sum |x| (each row's float sum,
    // added in double) does not depend on the format, so it is taken once; sum |x_q| is one
    // fused pass per row and format.  The last call is at the format chosen, so `out` ends up
    // holding the data in that format.
    double sum_abs = -1;
    auto error_at = [&](const FixedFormat& f) {
      if (sum_abs < 0) {
        sum_abs = 0;
        for (int x = 0; x < rows; ++x) sum_abs += sum_abs16(row(x), k);
      }
      double sq = 0;
      for (int x = 0; x < rows; ++x)
        sq += fixed_row_rn_sum_abs(out ? out + static_cast<size_t>(x) * k : tmp, row(x), k, f);
      return detail::afp_quant_error(sum_abs, sq);
    };
    const FixedFormat f = detail::afp_reevaluate_tensor(st, s, range, saturated, c_.afp_error_threshold,
                                                        c_.afp_low_bits, c_.afp_high_bits, c_.afp_alpha, c_.afp_beta,
                                                        c_.afp_gamma, c_.afp_delta, w.iter, due_by, error_at);
    w.fmt[t] = f;
    w.fmax[t] = f.hi * f.inv_scale;
  }

  template <bool SR>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR>(w, recs, count, P, Q, prm);
  }
  template <bool SR>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR>(w, recs, count, P, Q, prm);
  }

  template <bool SR>
  MASCOT_FORCE_INLINE void run(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict g = w.g2.data();  // g[0..k): grad p, g[k..2k): grad q
    float* __restrict gq = w.gq2.data();  // G quantized by a re-evaluation (nearest rounding)
    uint32_t* __restrict rw = w.s.w.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<SR>(recs, count, P, Q, k, epoch_key_,
                        [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q, uint64_t key)
                            MASCOT_FORCE_INLINE_LAMBDA {
      // P and Q: re-evaluate when the interval is over, or when the tensor outgrew its range
      w.run_max[kP] = std::max(w.run_max[kP], max_abs16(p, k));
      w.run_max[kQ] = std::max(w.run_max[kQ], max_abs16(q, k));
      const float range_p = std::max(max_p_, w.run_max[kP]), range_q = std::max(max_q_, w.run_max[kQ]);
      const int slot = static_cast<int>(w.epoch_iter % detail::kAfpRecentRows);
      w.recent[kP][slot] = rec.u;
      w.recent[kQ][slot] = rec.i;
      const int nrecent = detail::afp_recent_count(w.epoch_iter);
      const int64_t due_by = detail::afp_due_by(w.epoch_iter, w.iter);
      if (w.iter >= w.st[kP].next || range_p > w.fmax[kP])
        reevaluate(w, kP, nrecent, [&](int x) { return P + static_cast<size_t>(w.recent[kP][x]) * k; }, range_p,
                   w.iter < w.st[kP].next, due_by);
      if (w.iter >= w.st[kQ].next || range_q > w.fmax[kQ])
        reevaluate(w, kQ, nrecent, [&](int x) { return Q + static_cast<size_t>(w.recent[kQ][x]) * k; }, range_q,
                   w.iter < w.st[kQ].next, due_by);
      if (SR) {
        fill_words(rw, k, key, 1);
        fixed_row_sr(ph, p, k, w.fmt[kP], rw);
        fill_words(rw, k, key, 2);
        fixed_row_sr(qh, q, k, w.fmt[kQ], rw);
      } else {
        fixed_row_rn(ph, p, k, w.fmt[kP]);
        fixed_row_rn(qh, q, k, w.fmt[kQ]);
      }
      const float e = rec.r - dot16(ph, qh, k);
      for (int j = 0; j < k; ++j) {
        g[j] = e * qh[j] - lp * ph[j];
        g[k + j] = e * ph[j] - lq * qh[j];
      }
      // G: the iteration's data is its whole gradient tensor (grad p_u, grad q_i).  With
      // nearest rounding a re-evaluation leaves G quantized to its new format in gq.
      const float range_g = std::max(max_abs16(g, k), max_abs16(g + k, k));
      bool have_gq = false;
      if (w.iter >= w.st[kG].next || range_g > w.fmax[kG]) {
        reevaluate(w, kG, 2, [&](int x) { return g + x * k; }, range_g, w.iter < w.st[kG].next, INT64_MAX,
                   SR ? nullptr : gq);
        have_gq = !SR;
      }
      const FixedFormat fg = w.fmt[kG];
      if (SR) {
        fill_words(rw, k, key, 3);
        fixed_inplace_sr(g, k, fg, rw);
        fill_words(rw, k, key, 4);
        fixed_inplace_sr(g + k, k, fg, rw);
      } else if (!have_gq) {
        fixed_inplace_rn(g, 2 * k, fg);
      }
      const float* gu = have_gq ? gq : g;
      for (int j = 0; j < k; ++j) {
        p[j] += lr * gu[j];
        q[j] += lr * gu[k + j];
      }
      ++w.iter;
      ++w.epoch_iter;
        });
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  uint64_t epoch_key_ = 0;
  float max_p_ = 0, max_q_ = 0;
  std::vector<Worker> workers_;
};

}  // namespace

std::unique_ptr<CompetingMethod> make_competing_method(const TrainConfig& cfg, int threads, uint64_t seed) {
  cfg.competing.validate();
  MASCOT_CHECK_ARG(cfg.k >= 1, "k must be >= 1");
  switch (cfg.method) {
    case Method::kMpt: return std::make_unique<Mpt>(cfg, threads, seed);
    case Method::kMuppet: return std::make_unique<Muppet>(cfg, threads, seed);
    case Method::kAfp: return std::make_unique<Afp>(cfg, threads, seed);
    default: break;
  }
  throw_invalid("method '" + to_string(cfg.method) + "' is not a competing method (mpt, muppet, afp)");
}

}  // namespace mascot::cpu
