// SGD kernels, compiled once per instruction set into namespace MASCOT_KERNEL_NS
// (generic | avx2 | avx512).  A 16-lane vector type V hides the ISA; the kernel bodies
// are written once against it and follow detail/sgd.h operation for operation.
//
// Memory is the bottleneck (DESIGN.md §6): each rating reads and writes two k-rows at
// random.  So the loop prefetches the rows of the rating kPrefetch positions ahead, and
// each row is touched in two passes (dot product, then update): the second pass hits L1.
#include <cstring>

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
inline V operator-(V a, V b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline V operator*(V a, V b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline V hround(V x) { return {_mm512_cvtph_ps(_mm512_cvtps_ph(x.v, kRN))}; }
inline void vspill(float* a, V x) { _mm512_storeu_ps(a, x.v); }
// lanes l + l+8, then the 8-lane tree
inline float vreduce(V x) {
  const __m256 lo = _mm512_castps512_ps256(x.v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.v), 1));
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
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
inline void vstore(float* p, V x) { _mm256_storeu_ps(p, x.lo); _mm256_storeu_ps(p + 8, x.hi); }
inline void vstore(uint16_t* p, V x) {
  __m128i lo = _mm256_cvtps_ph(x.lo, kRN), hi = _mm256_cvtps_ph(x.hi, kRN);
  asm("" : "+x"(lo), "+x"(hi));  // register form, as above
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 8), hi);
}
inline V operator+(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline V operator-(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline V operator*(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline V hround(V x) {
  return {_mm256_cvtph_ps(_mm256_cvtps_ph(x.lo, kRN)), _mm256_cvtph_ps(_mm256_cvtps_ph(x.hi, kRN))};
}
inline void vspill(float* a, V x) { _mm256_storeu_ps(a, x.lo); _mm256_storeu_ps(a + 8, x.hi); }
inline float vreduce(V x) {
  const __m256 s8 = _mm256_add_ps(x.lo, x.hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}
#else
struct V {
  float a[kLanes];
};
inline V vzero() { V r; for (int l = 0; l < kLanes; ++l) r.a[l] = 0.0f; return r; }
inline V vset(float x) { V r; for (int l = 0; l < kLanes; ++l) r.a[l] = x; return r; }
inline V vload(const float* p) { V r; std::memcpy(r.a, p, sizeof r.a); return r; }
inline V vload(const uint16_t* p) { V r; for (int l = 0; l < kLanes; ++l) r.a[l] = detail::half_to_float(p[l]); return r; }
inline void vstore(float* p, V x) { std::memcpy(p, x.a, sizeof x.a); }
inline void vstore(uint16_t* p, V x) { for (int l = 0; l < kLanes; ++l) p[l] = detail::float_to_half_rn(x.a[l]); }
inline V operator+(V a, V b) { for (int l = 0; l < kLanes; ++l) a.a[l] += b.a[l]; return a; }
inline V operator-(V a, V b) { for (int l = 0; l < kLanes; ++l) a.a[l] -= b.a[l]; return a; }
inline V operator*(V a, V b) { for (int l = 0; l < kLanes; ++l) a.a[l] *= b.a[l]; return a; }
inline V hround(V x) { for (int l = 0; l < kLanes; ++l) x.a[l] = detail::round_half(x.a[l]); return x; }
inline void vspill(float* a, V x) { std::memcpy(a, x.a, sizeof x.a); }
inline float vreduce(V x) { return detail::reduce_lanes(x.a, detail::NoRound{}); }
#endif

constexpr size_t kPrefetch = 10;  // ratings ahead; covers DRAM latency at ~100 ns per rating pair

inline float to_f(float x) { return x; }
inline float to_f(uint16_t h) { return detail::half_to_float(h); }
inline void from_f(float* d, float x) { *d = x; }
inline void from_f(uint16_t* d, float x) { *d = detail::float_to_half_rn(x); }

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

// Any k: element-wise through the scalar formulas of detail/sgd.h.
template <class S, class Rnd>
void sgd_scalar(const Rec* recs, size_t n, S* P, S* Q, const SgdParams& prm) {
  const int k = prm.k;
  float pbuf[4096], qbuf[4096];  // k <= 4096 (TrainConfig::validate)
  for (size_t t = 0; t < n; ++t) {
    if (t + kPrefetch < n) prefetch_rows(recs[t + kPrefetch], P, Q, k);
    S* p = P + static_cast<size_t>(recs[t].u) * k;
    S* q = Q + static_cast<size_t>(recs[t].i) * k;
    for (int j = 0; j < k; ++j) { pbuf[j] = to_f(p[j]); qbuf[j] = to_f(q[j]); }
    detail::sgd_update(pbuf, qbuf, k, recs[t].r, prm.lr, prm.lambda_p, prm.lambda_q, Rnd{});
    for (int j = 0; j < k; ++j) { from_f(&p[j], pbuf[j]); from_f(&q[j], qbuf[j]); }
  }
}

// k % 16 == 0: 16-lane vectors; kHalf = every operation rounded to half (method fp16).
// NC > 0: k == 16 * NC and both rows stay in registers between the dot product and the
// update (one load and one conversion per element); NC == 0: any multiple of 16, rows are
// re-read in the update pass (L1 hits).
template <class S, bool kHalf, int NC>
void sgd_vec(const Rec* recs, size_t n, S* P, S* Q, const SgdParams& prm) {
  const int k = NC > 0 ? NC * kLanes : prm.k;
  auto R = [](V x) { return kHalf ? hround(x) : x; };
  auto r1 = [](float x) { return kHalf ? detail::round_half(x) : x; };
  const V lr = vset(r1(prm.lr)), lp = vset(r1(prm.lambda_p)), lq = vset(r1(prm.lambda_q));
  const V cp = vset(1.0f - prm.lr * prm.lambda_p), cq = vset(1.0f - prm.lr * prm.lambda_q);
  constexpr int kRegs = NC > 0 ? NC : 1;
  for (size_t t = 0; t < n; ++t) {
    if (t + kPrefetch < n) prefetch_rows(recs[t + kPrefetch], P, Q, k);
    S* p = P + static_cast<size_t>(recs[t].u) * k;
    S* q = Q + static_cast<size_t>(recs[t].i) * k;
    V pr[kRegs], qr[kRegs];
    V acc = vzero();
    if (NC > 0) {
      for (int c = 0; c < kRegs; ++c) {
        pr[c] = vload(p + c * kLanes);
        qr[c] = vload(q + c * kLanes);
      }
      for (int c = 0; c < kRegs; ++c) acc = R(acc + R(pr[c] * qr[c]));
    } else {
      for (int j = 0; j < k; j += kLanes) acc = R(acc + R(vload(p + j) * vload(q + j)));
    }
    float dot;
    if (kHalf) {
      float a[kLanes];
      vspill(a, acc);
      dot = detail::reduce_lanes(a, detail::HalfRound{});
    } else {
      dot = vreduce(acc);
    }
    const float es = r1(r1(recs[t].r) - dot);
    if (kHalf) {  // Eq. 2-3 literally, every operation rounded to half
      const V e = vset(es);
      for (int c = 0; c < k / kLanes; ++c) {
        const V pv = NC > 0 ? pr[c] : vload(p + c * kLanes);
        const V qv = NC > 0 ? qr[c] : vload(q + c * kLanes);
        const V gp = R(R(e * qv) - R(lp * pv));
        const V gq = R(R(e * pv) - R(lq * qv));
        vstore(p + c * kLanes, R(pv + R(lr * gp)));
        vstore(q + c * kLanes, R(qv + R(lr * gq)));
      }
    } else {  // regrouped: p' = cp p + ce q, q' = cq q + ce p
      const V ce = vset(prm.lr * es);
      for (int c = 0; c < k / kLanes; ++c) {
        const V pv = NC > 0 ? pr[c] : vload(p + c * kLanes);
        const V qv = NC > 0 ? qr[c] : vload(q + c * kLanes);
        vstore(p + c * kLanes, cp * pv + ce * qv);
        vstore(q + c * kLanes, cq * qv + ce * pv);
      }
    }
  }
}

template <class S, bool kHalf>
void sgd_entry(const Rec* recs, size_t n, void* P, void* Q, const SgdParams& prm) {
  S* Ps = static_cast<S*>(P);
  S* Qs = static_cast<S*>(Q);
  if (prm.k == 32)
    sgd_vec<S, kHalf, 2>(recs, n, Ps, Qs, prm);
  else if (prm.k == 64)
    sgd_vec<S, kHalf, 4>(recs, n, Ps, Qs, prm);
  else if (prm.k == 128)
    sgd_vec<S, kHalf, 8>(recs, n, Ps, Qs, prm);
  else if (prm.k % kLanes == 0)
    sgd_vec<S, kHalf, 0>(recs, n, Ps, Qs, prm);
  else if (kHalf)
    sgd_scalar<S, detail::HalfRound>(recs, n, static_cast<S*>(P), static_cast<S*>(Q), prm);
  else
    sgd_scalar<S, detail::NoRound>(recs, n, static_cast<S*>(P), static_cast<S*>(Q), prm);
}

template <class S>
double sse_entry(const Rec* recs, size_t n, const void* Pv, const void* Qv, int k) {
  const S* P = static_cast<const S*>(Pv);
  const S* Q = static_cast<const S*>(Qv);
  double se = 0;
  float pbuf[4096], qbuf[4096];
  for (size_t t = 0; t < n; ++t) {
    if (t + kPrefetch < n) prefetch_rows(recs[t + kPrefetch], P, Q, k);
    const S* p = P + static_cast<size_t>(recs[t].u) * k;
    const S* q = Q + static_cast<size_t>(recs[t].i) * k;
    float dot;
    if (k % kLanes == 0) {
      V acc = vzero();
      for (int j = 0; j < k; j += kLanes) acc = acc + vload(p + j) * vload(q + j);
      dot = vreduce(acc);
    } else {
      for (int j = 0; j < k; ++j) { pbuf[j] = to_f(p[j]); qbuf[j] = to_f(q[j]); }
      dot = detail::dot_lanes(pbuf, qbuf, k, detail::NoRound{});
    }
    const double e = static_cast<double>(recs[t].r) - dot;
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
};

}  // namespace mascot::cpu::MASCOT_KERNEL_NS
