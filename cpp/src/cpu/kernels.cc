// SGD kernels, compiled once per instruction set into namespace MASCOT_KERNEL_NS
// (generic | avx2 | avx512).  A 16-lane vector type V hides the ISA; the kernel bodies
// are written once against it and follow detail/sgd.h operation for operation.
//
// Memory is the bottleneck (docs/design.md §6): each rating reads and writes two k-rows at
// random.  So the loops prefetch the rows of the ratings ahead in two stages (prefetch_ahead,
// kernels.h), and each row is touched in two passes (dot product, then update): the second
// pass hits L1.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/kernels.h"
#include "mascot/detail/sgd.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef MASCOT_KERNEL_NS
#error "MASCOT_KERNEL_NS must name the instruction-set variant"
#endif

namespace mascot::cpu::MASCOT_KERNEL_NS {
namespace {

using detail::kLanes;

inline float to_f(float x) { return x; }
inline float to_f(uint16_t h) { return detail::half_to_float(h); }

#if defined(__AVX512F__)
constexpr int kRN = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
struct V {
  __m512 v;
};
inline V vzero() { return {_mm512_setzero_ps()}; }
inline V vset(float x) { return {_mm512_set1_ps(x)}; }
inline V vload(const float* p) { return {_mm512_loadu_ps(p)}; }
inline V vload(const uint16_t* p) { return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))}; }
inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x.v); }
inline void vstore(uint16_t* p, V x) {
  __m256i h = _mm512_cvtps_ph(x.v, kRN);
  asm("" : "+x"(h));  // keep the register form: vcvtps2ph to memory is microcoded on Zen 4
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
}
inline V operator+(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
inline V add_on_fma(V a, V b) { return {_mm512_fmadd_ps(a.v, _mm512_set1_ps(1.0f), b.v)}; }
inline V operator-(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V operator*(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V hround(V x) { return {_mm512_cvtph_ps(_mm512_cvtps_ph(x.v, kRN))}; }
inline void vspill(float* a, V x) { _mm512_storeu_ps(a, x.v); }
// lanes l + l+8, then the 8-lane tree
struct VI {
  __m512i v;
};
// detail::sr_word of lanes j0 .. j0+15: ((h ^ (j0 + l) kSrStep) kSrMul) >> 19.  With j0 known at
// compile time (the unrolled k loops) the element constants fold: xor, multiply, shift.
inline VI vwords(uint32_t h, uint32_t j0) {
  constexpr uint32_t s = detail::kSrStep;
  const __m512i c =
      _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(j0 * s)),
                       _mm512_set_epi32(static_cast<int>(15 * s), static_cast<int>(14 * s), static_cast<int>(13 * s),
                                        static_cast<int>(12 * s), static_cast<int>(11 * s), static_cast<int>(10 * s),
                                        static_cast<int>(9 * s), static_cast<int>(8 * s), static_cast<int>(7 * s),
                                        static_cast<int>(6 * s), static_cast<int>(5 * s), static_cast<int>(4 * s),
                                        static_cast<int>(3 * s), static_cast<int>(2 * s), static_cast<int>(s), 0));
  const __m512i x = _mm512_mullo_epi32(_mm512_xor_si512(_mm512_set1_epi32(static_cast<int>(h)), c),
                                       _mm512_set1_epi32(static_cast<int>(detail::kSrMul)));
  return {_mm512_srli_epi32(x, 19)};
}
// Stochastic FP16 store, detail::float_to_half_sr lane by lane: lanes below 2^-14 lifted by
// copysign(2^-14, x); every lane dithered (d < 2^13, added to the bits) and truncated by the
// hardware's RZ conversion; the lifted lanes take 2^-14 back in half bits.
// Why the branch: model values below 2^-14 are rare (a chunk holds one in a few hundred
// stores), and the lift costs four more operations per chunk than the dither and truncation.
inline void vstore_sr(uint16_t* p, V x, VI d) {
  const __m512i xi = _mm512_castps_si512(x.v);
  const __m512i ax = _mm512_and_si512(xi, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 sub = _mm512_cmplt_epu32_mask(ax, _mm512_set1_epi32(0x38800000));
  __m256i h;
  if (__builtin_expect(sub == 0, 1)) {
    h = _mm512_cvtps_ph(_mm512_castsi512_ps(_mm512_add_epi32(xi, d.v)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  } else {
    // (x & sign) | 2^-14
    const __m512i lift = _mm512_ternarylogic_epi32(xi, _mm512_set1_epi32(static_cast<int>(0x80000000u)),
                                                   _mm512_set1_epi32(0x38800000), 0xEA);
    const __m512 y = _mm512_mask_add_ps(x.v, sub, x.v, _mm512_castsi512_ps(lift));
    h = _mm512_cvtps_ph(_mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), d.v)),
                        _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    h = _mm256_mask_sub_epi16(h, sub, h, _mm256_set1_epi16(0x0400));
  }
  asm("" : "+x"(h));  // register form, as vstore
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
}
inline float vreduce(V x) {
  const __m256 lo = _mm512_castps512_ps256(x.v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.v), 1));
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}
// the last n < 16 elements of a row (tails, below): masked, the other lanes read as zero
inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline V vload_tail(const float* p, int n) { return {_mm512_maskz_loadu_ps(tail_mask(n), p)}; }
inline V vload_tail(const uint16_t* p, int n) { return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask(n), p))}; }
inline void vstore_tail(float* p, V x, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), x.v); }
inline void vstore_tail(uint16_t* p, V x, int n) {
  __m256i h = _mm512_cvtps_ph(x.v, kRN);
  asm("" : "+x"(h));
  _mm256_mask_storeu_epi16(p, tail_mask(n), h);
}
inline void vstore_sr_tail(uint16_t* p, V x, VI r, int n) {
  alignas(32) uint16_t b[kLanes];
  vstore_sr(b, x, r);
  _mm256_mask_storeu_epi16(p, tail_mask(n), _mm256_load_si256(reinterpret_cast<const __m256i*>(b)));
}
#elif defined(__AVX2__)
constexpr int kRN = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
struct V {
  __m256 lo, hi;  // lanes 0-7, 8-15
};
inline V vzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline V vset(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline V vload(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline V vload(const uint16_t* p) {
  return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)))};
}
inline void vstore(float* p, V x) {
  _mm256_storeu_ps(p, x.lo);
  _mm256_storeu_ps(p + 8, x.hi);
}
inline void vstore(uint16_t* p, V x) {
  __m128i lo = _mm256_cvtps_ph(x.lo, kRN), hi = _mm256_cvtps_ph(x.hi, kRN);
  asm("" : "+x"(lo), "+x"(hi));  // register form, as above
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), hi);
}
inline V operator+(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V add_on_fma(V a, V b) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return {_mm256_fmadd_ps(a.lo, one, b.lo), _mm256_fmadd_ps(a.hi, one, b.hi)};
}
inline V operator-(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V operator*(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline V hround(V x) {
  return {_mm256_cvtph_ps(_mm256_cvtps_ph(x.lo, kRN)), _mm256_cvtph_ps(_mm256_cvtps_ph(x.hi, kRN))};
}
inline void vspill(float* a, V x) {
  _mm256_storeu_ps(a, x.lo);
  _mm256_storeu_ps(a + 8, x.hi);
}
struct VI {
  __m256i lo, hi;
};
// detail::sr_word of lanes j0 .. j0+7 (see the AVX-512 vwords)
inline __m256i words8(uint32_t h, uint32_t j0) {
  constexpr uint32_t s = detail::kSrStep;
  const __m256i c =
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(j0 * s)),
                       _mm256_set_epi32(static_cast<int>(7 * s), static_cast<int>(6 * s), static_cast<int>(5 * s),
                                        static_cast<int>(4 * s), static_cast<int>(3 * s), static_cast<int>(2 * s),
                                        static_cast<int>(s), 0));
  const __m256i x = _mm256_mullo_epi32(_mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(h)), c),
                                       _mm256_set1_epi32(static_cast<int>(detail::kSrMul)));
  return _mm256_srli_epi32(x, 19);
}
inline VI vwords(uint32_t h, uint32_t j0) { return {words8(h, j0), words8(h, j0 + 8)}; }
// detail::float_to_half_sr of 8 lanes (see the AVX-512 vstore_sr).  The lift is +0 in the other
// lanes, which leaves them as they are (x + 0 = x for every x but -0, which is a lifted lane).
inline __m128i sr8(__m256 x, __m256i d) {
  const __m256i xi = _mm256_castps_si256(x);
  const __m256i sgn = _mm256_and_si256(xi, _mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x38800000), _mm256_xor_si256(xi, sgn));
  if (__builtin_expect(_mm256_testz_si256(sub, sub), 1))  // no lane below 2^-14 (the usual case)
    return _mm256_cvtps_ph(_mm256_castsi256_ps(_mm256_add_epi32(xi, d)), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256i lift = _mm256_and_si256(sub, _mm256_or_si256(sgn, _mm256_set1_epi32(0x38800000)));
  const __m256 y = _mm256_add_ps(x, _mm256_castsi256_ps(lift));
  const __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), d)),
                                    _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(sub), _mm256_extracti128_si256(sub, 1));
  return _mm_sub_epi16(h, _mm_and_si128(m16, _mm_set1_epi16(0x0400)));
}
inline void vstore_sr(uint16_t* p, V x, VI r) {
  __m128i lo = sr8(x.lo, r.lo), hi = sr8(x.hi, r.hi);
  asm("" : "+x"(lo), "+x"(hi));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), hi);
}
inline float vreduce(V x) {
  const __m256 s8 = _mm256_add_ps(x.lo, x.hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}
// the last n < 16 elements of a row (tails, below): FP32 masked, FP16 through a zeroed buffer
// (AVX2 has no 16-bit masked loads)
inline __m256i tail_mask8(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}
inline V vload_tail(const float* p, int n) {
  return {_mm256_maskload_ps(p, tail_mask8(n)), _mm256_maskload_ps(p + 8, tail_mask8(n - 8))};
}
inline void vstore_tail(float* p, V x, int n) {
  _mm256_maskstore_ps(p, tail_mask8(n), x.lo);
  _mm256_maskstore_ps(p + 8, tail_mask8(n - 8), x.hi);
}
inline V vload_tail(const uint16_t* p, int n) {
  alignas(32) uint16_t b[kLanes] = {};
  std::memcpy(b, p, static_cast<size_t>(n) * 2);
  return vload(b);
}
inline void vstore_tail(uint16_t* p, V x, int n) {
  alignas(32) uint16_t b[kLanes];
  vstore(b, x);
  std::memcpy(p, b, static_cast<size_t>(n) * 2);
}
inline void vstore_sr_tail(uint16_t* p, V x, VI r, int n) {
  alignas(32) uint16_t b[kLanes];
  vstore_sr(b, x, r);
  std::memcpy(p, b, static_cast<size_t>(n) * 2);
}
#else
struct V {
  float a[kLanes];
};
inline V vzero() {
  V r;
  for (int l = 0; l < kLanes; ++l) r.a[l] = 0.0f;
  return r;
}
inline V vset(float x) {
  V r;
  for (int l = 0; l < kLanes; ++l) r.a[l] = x;
  return r;
}
inline V vload(const float* p) {
  V r;
  std::memcpy(r.a, p, sizeof r.a);
  return r;
}
inline V vload(const uint16_t* p) {
  V r;
  for (int l = 0; l < kLanes; ++l) r.a[l] = detail::half_to_float(p[l]);
  return r;
}
inline void vstore(float* p, V x) { std::memcpy(p, x.a, sizeof x.a); }
inline void vstore(uint16_t* p, V x) {
  for (int l = 0; l < kLanes; ++l) p[l] = detail::float_to_half_rn(x.a[l]);
}
inline V operator+(V a, V b) {
  for (int l = 0; l < kLanes; ++l) a.a[l] += b.a[l];
  return a;
}
inline V add_on_fma(V a, V b) { return a + b; }
inline V operator-(V a, V b) {
  for (int l = 0; l < kLanes; ++l) a.a[l] -= b.a[l];
  return a;
}
inline V operator*(V a, V b) {
  for (int l = 0; l < kLanes; ++l) a.a[l] *= b.a[l];
  return a;
}
inline V hround(V x) {
  for (int l = 0; l < kLanes; ++l) x.a[l] = detail::round_half(x.a[l]);
  return x;
}
inline void vspill(float* a, V x) { std::memcpy(a, x.a, sizeof x.a); }
inline float vreduce(V x) { return detail::reduce_lanes(x.a, detail::NoRound{}); }
struct VI {
  uint32_t a[kLanes];
};
inline VI vwords(uint32_t h, uint32_t j0) {
  VI r;
  for (int l = 0; l < kLanes; ++l) r.a[l] = detail::sr_word(h, j0 + l);
  return r;
}
inline void vstore_sr(uint16_t* p, V x, VI r) {
  for (int l = 0; l < kLanes; ++l) p[l] = detail::float_to_half_sr(x.a[l], r.a[l]);
}
template <class S>
inline V vload_tail(const S* p, int n) {
  V r = vzero();
  for (int l = 0; l < n; ++l) r.a[l] = to_f(p[l]);
  return r;
}
inline void vstore_tail(float* p, V x, int n) {
  for (int l = 0; l < n; ++l) p[l] = x.a[l];
}
inline void vstore_tail(uint16_t* p, V x, int n) {
  for (int l = 0; l < n; ++l) p[l] = detail::float_to_half_rn(x.a[l]);
}
inline void vstore_sr_tail(uint16_t* p, V x, VI r, int n) {
  for (int l = 0; l < n; ++l) p[l] = detail::float_to_half_sr(x.a[l], r.a[l]);
}
#endif

// The row updates must inline into their loops: the rows live in registers between the dot
// product and the update (measured: without inlining GCC spills them, -30 % on fp32).
#define MASCOT_INLINE inline __attribute__((always_inline))

// ---- row access: a row of either storage as 16-lane float vectors -------------------------
// Stores round to nearest, or stochastically with the words of sr_word(h, element index).
MASCOT_INLINE void store_chunk(float* p, V x, bool, uint32_t, int) { vstore(p, x); }
MASCOT_INLINE void store_chunk(uint16_t* p, V x, bool sr, uint32_t h, int j) {
  if (sr)
    vstore_sr(p, x, vwords(h, static_cast<uint32_t>(j)));
  else
    vstore(p, x);
}
// Every k runs these vector kernels.  A row of k elements is k / 16 whole chunks and, when k
// is not a multiple of 16, a tail of n = k % 16 elements, loaded as one more chunk whose lanes
// n..15 read as zero and stored back only in its first n lanes (vload_tail / vstore_tail).
// The zero lanes are padding that exists in registers only: the rows in memory, the model
// files, the checkpoints and the q-error accumulators keep exactly k columns, and FP16 rows
// are stored k halves long.  The zero lanes change no result: their products are +0, so each
// lane's partial sum of the dot product is what detail/sgd.h's element-wise order gives (lane
// j % 16 adds the products of elements j in order; a zero lane adds +0, which can only turn a
// -0 lane sum into +0, and the error r - dot is the same for either); the update keeps them
// 0 (cp 0 + ce 0), rounding 0 to half gives 0 (nearest and stochastic: 0 has no fraction to
// round), and they are never written.  So results are those of the element-wise path, bit for
// bit (scripts/bit_identity.py, k = 20), unless the model overflows to inf/nan: then 0 * inf
// makes the zero lanes NaN, which is no different in a model that is already lost.
MASCOT_INLINE void store_tail(float* p, V x, bool, uint32_t, int, int n) { vstore_tail(p, x, n); }
MASCOT_INLINE void store_tail(uint16_t* p, V x, bool sr, uint32_t h, int j, int n) {
  if (sr)
    vstore_sr_tail(p, x, vwords(h, static_cast<uint32_t>(j)), n);
  else
    vstore_tail(p, x, n);
}
/// k rounded up to whole chunks: the stride of the gradient scratch rows (update_vec's g).
inline int chunked(int k) { return (k + kLanes - 1) / kLanes * kLanes; }

// a + b, on the multiply-add pipes when kFma (as fma(a, 1, b): the same bits, a * 1 is exact).
// Why: on Zen 4 the FP16 <-> FP32 conversions share the two FP add pipes (measured with
// benchmarks/f16c_throughput.c: 4 adds + 4 conversions take the sum of their times, 4
// multiplies + 4 conversions about the larger), so an update with both rows in FP16 (32 zmm
// conversions at ~1.4 cycles, 24 adds, 40 multiplies per update at k = 128) is bound by the add
// pipes; its dot-product and p-update adds (16 of the 24) go to the multiply pipes instead.
// The fp32 update (no conversions) is bound by its multiplies and keeps its adds.
// Predicted: up to ~20 % off an FP16 update's core time.  Measured (mascot_kernel_epochs A/B in
// one process, MASCOT_ADD_BALANCE=0 as B, bit-identical results): n1 epochs 4 % faster with the
// rows in L3 (synthetic-ml10m:0.02, 1 thread), 0-2 % on the full set (2 threads, 3 x 10
// rounds).  So the add pipes are not the whole bound: the full set also waits on memory.
// (MASCOT_ADD_BALANCE=0 turns this off, for A/B measurements: CMakeLists.txt, MASCOT_BENCH_B_FLAGS.)
#ifndef MASCOT_ADD_BALANCE
#define MASCOT_ADD_BALANCE 1
#endif
template <bool kFma>
MASCOT_INLINE V add2(V a, V b) {
  if constexpr (kFma)
    return add_on_fma(a, b);
  else
    return a + b;
}
// add2 as the `add` policy of detail/sgd.h's steps
template <bool kFma>
struct Add2 {
  MASCOT_INLINE V operator()(V a, V b) const { return add2<kFma>(a, b); }
};
// hround as the `rnd` policy of detail/sgd.h's FP16-arithmetic steps
struct HRound {
  MASCOT_INLINE V operator()(V x) const { return hround(x); }
};

// The row shape a kernel is compiled for, NC: > 0, k == 16 NC exactly; < 0, any k of -NC
// chunks (ceil(k / 16) == -NC, the last chunk possibly a tail, see store_tail); 0, any k.  With
// NC != 0 the chunk count is a compile-time constant: the loops unroll and both rows stay in
// registers between the dot product and the update (measured: a run-time k doubles the cost
// per update on memory-bound data); with NC == 0 the rows are re-read in the update pass (L1
// hits).  Every k up to 128 gets a register-resident instantiation.
constexpr int chunks_of(int NC) { return NC > 0 ? NC : -NC; }

// FP32 arithmetic.  Returns e; when g is set, also writes the
// gradients (old values, no learning rate): gp = e q - lp p, gq = e p - lq q, into g[0..k) and
// g[kc..kc + k), kc = chunked(k) (the tail's zero lanes write zeros up to kc).
// kAda (schedule = adagrad): the rows' steps eta0 / sqrt(G) from their states Gp, Gq, which take
// the mean squared gradient of this update (detail/sgd.h adagrad_update, lane for lane: the tail's
// zero lanes have zero gradients, adding +0 to the sums of squares).
template <int NC, bool kSR, bool kGrad, bool kAda = false, class SP, class SQ>
MASCOT_INLINE float update_vec(SP* p, SQ* q, int k_runtime, float r, const SgdParams& prm, uint32_t hp, uint32_t hq,
                               float* g = nullptr, float* Gp = nullptr, float* Gq = nullptr) {
  constexpr int kChunks = chunks_of(NC);
  const int k = NC > 0 ? NC * kLanes : k_runtime;
  const int whole = k / kLanes, tail = NC > 0 ? 0 : k % kLanes;
  constexpr int kRegs = kChunks > 0 ? kChunks : 1;
  constexpr bool kBal = MASCOT_ADD_BALANCE && sizeof(SP) == 2 && sizeof(SQ) == 2;  // see add2
  V pr[kRegs], qr[kRegs];
  V acc = vzero();
  if (kChunks > 0) {
    for (int c = 0; c < kRegs; ++c) {
      if (NC < 0 && c == kRegs - 1 && tail) {
        pr[c] = vload_tail(p + c * kLanes, tail);
        qr[c] = vload_tail(q + c * kLanes, tail);
      } else {
        pr[c] = vload(p + c * kLanes);
        qr[c] = vload(q + c * kLanes);
      }
    }
    for (int c = 0; c < kRegs; ++c) acc = detail::dot_step(acc, pr[c], qr[c], Add2<kBal>{});
  } else {
    for (int j = 0; j < whole * kLanes; j += kLanes)
      acc = detail::dot_step(acc, vload(p + j), vload(q + j), Add2<kBal>{});
    if (tail) {
      const int j = whole * kLanes;
      acc = detail::dot_step(acc, vload_tail(p + j, tail), vload_tail(q + j, tail), Add2<kBal>{});
    }
  }
  const float e = r - vreduce(acc);
  const V cp = vset(detail::keep_factor(prm.lr, prm.lambda_p)), cq = vset(detail::keep_factor(prm.lr, prm.lambda_q));
  const V ce = vset(detail::error_factor(prm.lr, e));
  const int kc = chunked(k);
  // adagrad: the rows' steps and the lanes of their sums of squared gradients
  V eta_p = vzero(), eta_q = vzero(), sum_p = vzero(), sum_q = vzero();
  if constexpr (kAda) {
    eta_p = vset(detail::adagrad_rate(prm.lr, *Gp));
    eta_q = vset(detail::adagrad_rate(prm.lr, *Gq));
  }
  // one chunk c of both rows (n > 0: the tail's first n lanes): gradients, update, store
  const auto chunk = [&](int c, V pv, V qv, int n) __attribute__((always_inline)) {
    V np, nq;
    if constexpr (kAda) {
      const V ev = vset(e);
      const V gp = detail::sgd_grad(ev, qv, vset(prm.lambda_p), pv);
      const V gq = detail::sgd_grad(ev, pv, vset(prm.lambda_q), qv);
      if constexpr (kGrad) {
        vspill(g + c * kLanes, gp);
        vspill(g + kc + c * kLanes, gq);
      }
      np = detail::descend(pv, eta_p, gp);
      nq = detail::descend(qv, eta_q, gq);
      sum_p = detail::dot_step(sum_p, gp, gp);
      sum_q = detail::dot_step(sum_q, gq, gq);
    } else {
      if constexpr (kGrad) {
        const V ev = vset(e);
        vspill(g + c * kLanes, detail::sgd_grad(ev, qv, vset(prm.lambda_p), pv));
        vspill(g + kc + c * kLanes, detail::sgd_grad(ev, pv, vset(prm.lambda_q), qv));
      }
      np = detail::sgd_step(pv, qv, cp, ce, Add2<kBal>{});
      nq = detail::sgd_step(qv, pv, cq, ce);
    }
    if (n > 0) {
      store_tail(p + c * kLanes, np, kSR, hp, c * kLanes, n);
      store_tail(q + c * kLanes, nq, kSR, hq, c * kLanes, n);
    } else {
      store_chunk(p + c * kLanes, np, kSR, hp, c * kLanes);
      store_chunk(q + c * kLanes, nq, kSR, hq, c * kLanes);
    }
  };
  if constexpr (kChunks > 0) {
    for (int c = 0; c < (NC < 0 ? kRegs - 1 : kRegs); ++c) chunk(c, pr[c], qr[c], 0);
    if constexpr (NC < 0) chunk(kRegs - 1, pr[kRegs - 1], qr[kRegs - 1], tail);  // tail 0: a whole chunk
  } else {
    for (int c = 0; c < whole; ++c) chunk(c, vload(p + c * kLanes), vload(q + c * kLanes), 0);
    if (tail) chunk(whole, vload_tail(p + whole * kLanes, tail), vload_tail(q + whole * kLanes, tail), tail);
  }
  if constexpr (kAda) {
    *Gp = detail::adagrad_accumulate(*Gp, vreduce(sum_p), k);
    *Gq = detail::adagrad_accumulate(*Gq, vreduce(sum_q), k);
  }
  return e;
}

// FP16 arithmetic (method fp16): Eq. 2-3 literally, every operation rounded to nearest half;
// tails as update_vec's.
// kAda: as update_vec's, the steps eta0 / sqrt(G) rounded to half; the state's sums stay FP32.
template <int NC, bool kAda = false>
MASCOT_INLINE void update_half_math(uint16_t* p, uint16_t* q, int k_runtime, float r, const SgdParams& prm,
                                    float* Gp = nullptr, float* Gq = nullptr) {
  constexpr int kChunks = chunks_of(NC);
  const int k = NC > 0 ? NC * kLanes : k_runtime;
  const int whole = k / kLanes, tail = NC > 0 ? 0 : k % kLanes;
  constexpr int kRegs = kChunks > 0 ? kChunks : 1;
  V pr[kRegs], qr[kRegs];
  V acc = vzero();
  if constexpr (kChunks > 0) {
    for (int c = 0; c < kRegs; ++c) {
      const bool part = NC < 0 && c == kRegs - 1 && tail;
      pr[c] = part ? vload_tail(p + c * kLanes, tail) : vload(p + c * kLanes);
      qr[c] = part ? vload_tail(q + c * kLanes, tail) : vload(q + c * kLanes);
      acc = detail::half_dot_step(acc, pr[c], qr[c], HRound{});
    }
  } else {
    for (int c = 0; c < whole; ++c)
      acc = detail::half_dot_step(acc, vload(p + c * kLanes), vload(q + c * kLanes), HRound{});
    if (tail)
      acc = detail::half_dot_step(acc, vload_tail(p + whole * kLanes, tail), vload_tail(q + whole * kLanes, tail),
                                  HRound{});
  }
  float a[kLanes];
  vspill(a, acc);
  const float dot = detail::reduce_lanes(a, detail::HalfRound{});
  const V e = vset(detail::round_half(detail::round_half(r) - dot));
  const V lr = vset(detail::round_half(prm.lr)), lp = vset(detail::round_half(prm.lambda_p)),
          lq = vset(detail::round_half(prm.lambda_q));
  V eta_p = lr, eta_q = lr, sum_p = vzero(), sum_q = vzero();
  if constexpr (kAda) {
    eta_p = vset(detail::round_half(detail::adagrad_rate(prm.lr, *Gp)));
    eta_q = vset(detail::round_half(detail::adagrad_rate(prm.lr, *Gq)));
  }
  const auto chunk = [&](int c, V pv, V qv, int n) __attribute__((always_inline)) {
    const V gp = detail::half_grad(e, qv, lp, pv, HRound{});
    const V gq = detail::half_grad(e, pv, lq, qv, HRound{});
    const V np = detail::half_descend(pv, eta_p, gp, HRound{}), nq = detail::half_descend(qv, eta_q, gq, HRound{});
    if constexpr (kAda) {
      sum_p = detail::dot_step(sum_p, gp, gp);
      sum_q = detail::dot_step(sum_q, gq, gq);
    }
    if (n > 0) {  // the stores round to nearest half
      vstore_tail(p + c * kLanes, np, n);
      vstore_tail(q + c * kLanes, nq, n);
    } else {
      vstore(p + c * kLanes, np);
      vstore(q + c * kLanes, nq);
    }
  };
  if constexpr (kChunks > 0) {
    for (int c = 0; c < (NC < 0 ? kRegs - 1 : kRegs); ++c) chunk(c, pr[c], qr[c], 0);
    if constexpr (NC < 0) chunk(kRegs - 1, pr[kRegs - 1], qr[kRegs - 1], tail);
  } else {
    for (int c = 0; c < whole; ++c) chunk(c, vload(p + c * kLanes), vload(q + c * kLanes), 0);
    if (tail) chunk(whole, vload_tail(p + whole * kLanes, tail), vload_tail(q + whole * kLanes, tail), tail);
  }
  if constexpr (kAda) {
    *Gp = detail::adagrad_accumulate(*Gp, vreduce(sum_p), k);
    *Gq = detail::adagrad_accumulate(*Gq, vreduce(sum_q), k);
  }
}

// ---- single-storage kernels ----------------------------------------------------------------
template <class S, bool kHalf, int NC, bool kSR, bool kAda>
void sgd_loop(const Rec* recs, size_t n, S* P, S* Q, const SgdParams& prm) {
  const int k = NC > 0 ? NC * kLanes : prm.k;  // compile-time when NC > 0 (see update_vec)
  for (size_t t = 0; t < n; ++t) {
    prefetch_ahead(t, n, recs, P, Q, k);
    const Rec& rc = recs[t];
    S* p = P + static_cast<size_t>(rc.u) * k;
    S* q = Q + static_cast<size_t>(rc.i) * k;
    uint32_t hp = 0, hq = 0;
    if constexpr (kSR) detail::sr_keys(prm.round_seed, rc.u, rc.i, &hp, &hq);
    if constexpr (kAda) {
      float* Gp = prm.ada_u + rc.u;
      float* Gq = prm.ada_i + rc.i;
      if constexpr (kHalf)
        update_half_math<NC, true>(p, q, k, rc.r, prm, Gp, Gq);
      else
        update_vec<NC, kSR, false, true>(p, q, k, rc.r, prm, hp, hq, nullptr, Gp, Gq);
    } else if constexpr (kHalf) {
      update_half_math<NC>(p, q, k, rc.r, prm);
    } else {
      update_vec<NC, kSR, false>(p, q, k, rc.r, prm, hp, hq);
    }
  }
}

// The NC instantiation for k (see chunks_of): the exact shapes of the common k = 32, 64, 128,
// then -ceil(k / 16) for every other k up to 128, 0 beyond.  MASCOT_KERNEL_FEW_SHAPES (the
// sanitized fuzz build, scripts/fuzz.sh) keeps only the first three: the same results (every
// shape computes the same bits), a fraction of the compile time.
// MASCOT_NC_DISPATCH_FEW: only the exact shapes of k = 32, 64, 128, every other k on the
// run-time path (NC = 0).
#define MASCOT_NC_DISPATCH_FEW(k, CALL) \
  switch (k) {                          \
    case 32:                            \
      CALL(2);                          \
      break;                            \
    case 64:                            \
      CALL(4);                          \
      break;                            \
    case 128:                           \
      CALL(8);                          \
      break;                            \
    default:                            \
      CALL(0);                          \
      break;                            \
  }
#if MASCOT_KERNEL_FEW_SHAPES
#define MASCOT_NC_DISPATCH(k, CALL) MASCOT_NC_DISPATCH_FEW(k, CALL)
#else
#define MASCOT_NC_DISPATCH(k, CALL)        \
  switch (k) {                             \
    case 32:                               \
      CALL(2);                             \
      break;                               \
    case 64:                               \
      CALL(4);                             \
      break;                               \
    case 128:                              \
      CALL(8);                             \
      break;                               \
    default:                               \
      switch ((k + kLanes - 1) / kLanes) { \
        case 1:                            \
          CALL(-1);                        \
          break;                           \
        case 2:                            \
          CALL(-2);                        \
          break;                           \
        case 3:                            \
          CALL(-3);                        \
          break;                           \
        case 4:                            \
          CALL(-4);                        \
          break;                           \
        case 5:                            \
          CALL(-5);                        \
          break;                           \
        case 6:                            \
          CALL(-6);                        \
          break;                           \
        case 7:                            \
          CALL(-7);                        \
          break;                           \
        case 8:                            \
          CALL(-8);                        \
          break;                           \
        default:                           \
          CALL(0);                         \
          break;                           \
      }                                    \
  }
#endif

// The shapes of the adagrad kernels: the exact k = 32, 64, 128, every other k on the run-time
// path (the same bits in every shape; fewer instantiations of kernels that are not the paper's).
#define MASCOT_NC_DISPATCH_ADA(k, CALL) MASCOT_NC_DISPATCH_FEW(k, CALL)

template <class S, bool kHalf, bool kSR>
void sgd_k(const Rec* recs, size_t n, S* Ps, S* Qs, const SgdParams& prm) {
  if (prm.ada_u) {
#define MASCOT_SGD_CALL(NC) sgd_loop<S, kHalf, NC, kSR, true>(recs, n, Ps, Qs, prm)
    MASCOT_NC_DISPATCH_ADA(prm.k, MASCOT_SGD_CALL)
#undef MASCOT_SGD_CALL
    return;
  }
#define MASCOT_SGD_CALL(NC) sgd_loop<S, kHalf, NC, kSR, false>(recs, n, Ps, Qs, prm)
  MASCOT_NC_DISPATCH(prm.k, MASCOT_SGD_CALL)
#undef MASCOT_SGD_CALL
}

template <class S, bool kHalf>
void sgd_entry(const Rec* recs, size_t n, void* P, void* Q, const SgdParams& prm) {
  S* Ps = static_cast<S*>(P);
  S* Qs = static_cast<S*>(Q);
  // stochastic stores only where an FP32 result is stored as FP16 (TrainConfig::validate)
  if (!kHalf && sizeof(S) == 2 && prm.stochastic)
    sgd_k<S, kHalf, true>(recs, n, Ps, Qs, prm);
  else
    sgd_k<S, kHalf, false>(recs, n, Ps, Qs, prm);
}

template <class SP, class SQ>
inline float dot_rows(const SP* p, const SQ* q, int k) {
  V acc = vzero();
  const int whole = k / kLanes * kLanes;
  for (int j = 0; j < whole; j += kLanes) acc = detail::dot_step(acc, vload(p + j), vload(q + j));
  if (k > whole) acc = detail::dot_step(acc, vload_tail(p + whole, k - whole), vload_tail(q + whole, k - whole));
  return vreduce(acc);
}

template <class S>
double sse_entry(const Rec* recs, size_t n, const void* Pv, const void* Qv, int k) {
  const S* P = static_cast<const S*>(Pv);
  const S* Q = static_cast<const S*>(Qv);
  double se = 0;
  for (size_t t = 0; t < n; ++t) {
    prefetch_ahead(t, n, recs, P, Q, k);
    const double e = static_cast<double>(recs[t].r) -
                     dot_rows(P + static_cast<size_t>(recs[t].u) * k, Q + static_cast<size_t>(recs[t].i) * k, k);
    se += e * e;
  }
  return se;
}

// ---- per-group precision (MASCOT family) ------------------------------------------------------

// Adds one sampled gradient (k floats) to its group's accumulators (MixedSide::grad_sum):
// the vector sum in float, the squared norm of this one gradient with the 16-lane float
// reduction, accumulated across samples in double.
inline void add_sample(const MixedSide& s, int group, const float* g, int k) {
  float* sum = s.grad_sum + static_cast<size_t>(group) * k;
  V a = vzero();
  const int whole = k / kLanes * kLanes;
  for (int j = 0; j < whole; j += kLanes) {
    const V x = vload(g + j);
    vstore(sum + j, vload(sum + j) + x);
    a = a + x * x;
  }
  if (k > whole) {  // the tail: zero lanes add +0 to a sum of squares (>= +0): no change
    const V x = vload_tail(g + whole, k - whole);
    vstore_tail(sum + whole, vload_tail(sum + whole, k - whole) + x, k - whole);
    a = a + x * x;
  }
  const float sq = vreduce(a);
  s.grad_sq[group] += sq;
  s.grad_n[group] += 1;
  if (s.grad_nsum) s.grad_nsum[group] += std::sqrt(static_cast<double>(sq));
}

template <int NC, bool kSR, bool kAda, class SP, class SQ>
MASCOT_INLINE float mixed_update(SP* p, SQ* q, int k, float r, const SgdParams& prm, uint32_t hp, uint32_t hq, float* g,
                                 float* Gp, float* Gq) {
  if (g) return update_vec<NC, kSR, true, kAda>(p, q, k, r, prm, hp, hq, g, Gp, Gq);
  return update_vec<NC, kSR, false, kAda>(p, q, k, r, prm, hp, hq, nullptr, Gp, Gq);
}

// One precision combination (SP, SQ) over the records rec(0) .. rec(m-1): branch-free, with
// the same prefetching as the single-storage loops, except for the sampled ratings (5 % by
// default in a measured epoch), whose gradients are added to their user's and item's group.
// (Sampled ratings were also tried as parts of their own, like the precision combinations:
// no gain measurable above the host's noise, and it reordered the updates of a measured epoch,
// so that grad_stats would no longer leave the model unchanged.)
template <int NC, bool kSR, bool kAda, class SP, class SQ, class RecAt>
void mixed_run(const RecAt& rec, size_t m, SP* P, SQ* Q, const MixedSide& U, const MixedSide& I, const MixedParams& mp,
               bool measure, float* grad) {
  const SgdParams& prm = mp.sgd;
  const int k = NC > 0 ? NC * kLanes : prm.k;
  const bool naive = mp.naive_lookup;
  for (size_t t = 0; t < m; ++t) {
    prefetch_ahead(t, m, rec, P, Q, k);
    const Rec& rc = rec(t);
    uint32_t hp = 0, hq = 0;
    if constexpr (kSR) detail::sr_keys(prm.round_seed, rc.u, rc.i, &hp, &hq);
    float* g = (measure && detail::sampled(mp.sample_seed, mp.sample_below, rc.u, rc.i)) ? grad : nullptr;
    float* Gp = kAda ? prm.ada_u + rc.u : nullptr;
    float* Gq = kAda ? prm.ada_i + rc.i : nullptr;
    mixed_update<NC, kSR, kAda>(P + static_cast<size_t>(rc.u) * k, Q + static_cast<size_t>(rc.i) * k, k, rc.r, prm, hp,
                                hq, g, Gp, Gq);
    if (g) {  // the group is needed only for the sampled ratings
      add_sample(U, lookup_group(U.start, U.groups, rc.u, naive), g, k);
      add_sample(I, lookup_group(I.start, I.groups, rc.i, naive), g + chunked(k), k);
    }
  }
}

inline bool any_fp32(const MixedSide& s) {
  for (int j = 0; j < s.groups; ++j)
    if (s.fp32[j]) return true;
  return false;
}

// The records of a chunk are partitioned by the storage of their two rows (4 combinations)
// and each part runs branch-free.  Measured: a per-rating branch on the precision
// mispredicts once precisions mix and costs ~2x on memory-bound data (the flushes discard the
// speculative loads that overlap DRAM latency).  The chunk was just shuffled, so each part is
// still in random order; only ratings within one ~4K chunk are regrouped.
template <int NC, bool kSR, bool kAda>
void mixed_loop(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, const MixedParams& mp) {
  const bool naive = mp.naive_lookup;
  const bool measure = U.grad_sum != nullptr;
  thread_local std::vector<uint32_t> idx, cls;
  thread_local std::vector<float> grad;
  grad.resize(2 * static_cast<size_t>(chunked(mp.sgd.k)));  // update_vec's gradient rows
  float* g = grad.data();
  // Every row FP16 (all epochs before the first switch): the partition would be the identity,
  // so the records run in place, in the same order.  Measured (mascot_kernel_epochs, two runs
  // of 8 rounds): mixed all-FP16 epochs 1.05-1.07 of n1 against 1.11 with the partition.
  if (!any_fp32(U) && !any_fp32(I)) {
    mixed_run<NC, kSR, kAda>([recs](size_t x) -> const Rec& { return recs[x]; }, n, U.f16, I.f16, U, I, mp, measure, g);
    return;
  }
  idx.resize(n);
  cls.resize(n);
  size_t count[4] = {0, 0, 0, 0};
  for (size_t t = 0; t < n; ++t) {
    const uint32_t c = (row_is_fp32(U, recs[t].u, naive) ? 2u : 0u) | (row_is_fp32(I, recs[t].i, naive) ? 1u : 0u);
    cls[t] = c;
    ++count[c];
  }
  size_t off[4] = {0, count[0], count[0] + count[1], count[0] + count[1] + count[2]};
  const size_t begin[4] = {off[0], off[1], off[2], off[3]};
  for (size_t t = 0; t < n; ++t) idx[off[cls[t]]++] = static_cast<uint32_t>(t);
  const uint32_t* const ix = idx.data();
  const auto part = [recs, ix, &begin](int c) {
    const uint32_t* x = ix + begin[c];
    return [recs, x](size_t t) -> const Rec& { return recs[x[t]]; };
  };
  mixed_run<NC, kSR, kAda>(part(0), count[0], U.f16, I.f16, U, I, mp, measure, g);
  mixed_run<NC, kSR, kAda>(part(1), count[1], U.f16, I.f32, U, I, mp, measure, g);
  mixed_run<NC, kSR, kAda>(part(2), count[2], U.f32, I.f16, U, I, mp, measure, g);
  mixed_run<NC, kSR, kAda>(part(3), count[3], U.f32, I.f32, U, I, mp, measure, g);
}

template <bool kSR>
void mixed_k(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, const MixedParams& mp) {
  if (mp.sgd.ada_u) {
#define MASCOT_MIXED_CALL(NC) mixed_loop<NC, kSR, true>(recs, n, U, I, mp)
    MASCOT_NC_DISPATCH_ADA(mp.sgd.k, MASCOT_MIXED_CALL)
#undef MASCOT_MIXED_CALL
    return;
  }
#define MASCOT_MIXED_CALL(NC) mixed_loop<NC, kSR, false>(recs, n, U, I, mp)
  MASCOT_NC_DISPATCH(mp.sgd.k, MASCOT_MIXED_CALL)
#undef MASCOT_MIXED_CALL
}

void mixed_entry(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, const MixedParams& mp) {
  if (mp.sgd.stochastic)
    mixed_k<true>(recs, n, U, I, mp);
  else
    mixed_k<false>(recs, n, U, I, mp);
}

double mixed_sse_entry(const Rec* recs, size_t n, const MixedSide& U, const MixedSide& I, int k, bool naive) {
  double se = 0;
  for (size_t t = 0; t < n; ++t) {
    const Rec& rc = recs[t];
    const bool fu = row_is_fp32(U, rc.u, naive), fi = row_is_fp32(I, rc.i, naive);
    const size_t pu = static_cast<size_t>(rc.u) * k, qi = static_cast<size_t>(rc.i) * k;
    float dot;
    if (fu)
      dot = fi ? dot_rows(U.f32 + pu, I.f32 + qi, k) : dot_rows(U.f32 + pu, I.f16 + qi, k);
    else
      dot = fi ? dot_rows(U.f16 + pu, I.f32 + qi, k) : dot_rows(U.f16 + pu, I.f16 + qi, k);
    const double e = static_cast<double>(rc.r) - dot;
    se += e * e;
  }
  return se;
}

}  // namespace

#define MASCOT_STR2(x) #x
#define MASCOT_STR(x) MASCOT_STR2(x)
extern const KernelTable kTable;
const KernelTable kTable = {
    MASCOT_STR(MASCOT_KERNEL_NS),
    &sgd_entry<float, false>,
    &sgd_entry<uint16_t, false>,
    &sgd_entry<uint16_t, true>,
    &sse_entry<float>,
    &sse_entry<uint16_t>,
    &mixed_entry,
    &mixed_sse_entry,
};

}  // namespace mascot::cpu::MASCOT_KERNEL_NS
