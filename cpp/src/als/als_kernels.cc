// ALS row kernels, compiled once per instruction set into namespace MASCOT_ALS_NS (generic |
// avx2 | avx512, CMakeLists.txt) and picked at run time (als_cpu.cc).  One vector type `vf`
// (GCC vector extensions: 4, 8 or 16 floats) hides the ISA; the bodies are written once.
//
// Per row u (als.h): gather the fixed side's rows of Omega_u into a panel of kChunk rows at a
// time (FP16 converted here), accumulate A_u += sum_t w_t g_t g_t^T (the paper's get_hermitian)
// and b_u += sum_t c_t g_t, then solve with Cholesky or CG; or, for CG in its matrix-free form
// (detail/als.h CgForm), keep the gathered panel and run every product A p as passes over it.
//
// Why own micro-kernels and not a BLAS/LAPACK (measured with benchmarks/als_kernels_bench.cc
// against the OpenBLAS that NumPy's wheels ship, scipy-openblas, one thread; table in
// docs/benchmarks.md, "Own kernels against OpenBLAS"): the problems are many and small (k <= 512,
// n_u often below k), so a library call per row pays its dispatch per row, and a BLAS needs a
// float32 panel (the factors may be FP16, which no BLAS reads).  Per row, the own Cholesky path
// was 1.7-2.5x faster than gather + ssyrk + spotrf/spotrs, the own Hermitian-form CG 0.96-1.96x
// of ssymv CG, and the matrix-free CG form 3.7-8x.  The Hermitian build below runs
// register-tiled outer products of the gathered panel (the CPU form of the paper's
// register/shared-memory tiling).
//
// Floating point: -ffp-contract=fast here (FMA where the ISA has it): the ALS tests compare
// with the float64 reference to a relative tolerance, not bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "als/als.h"
#include "mascot/detail/half.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#ifndef MASCOT_ALS_NS
#error "MASCOT_ALS_NS must name the instruction-set variant"
#endif

namespace mascot::als::MASCOT_ALS_NS {
namespace {

#if defined(__AVX512F__)
constexpr int W = 16;
constexpr int kR = 8;  // rows of A per register tile: kR x kC vectors of accumulators
constexpr int kC = 2;
#elif defined(__AVX2__)
constexpr int W = 8;
constexpr int kR = 4;
constexpr int kC = 2;
#else
constexpr int W = 4;
constexpr int kR = 4;
constexpr int kC = 2;
#endif
// kp (padded_k) is a multiple of 32, so of kR and of kC * W in every variant
static_assert(32 % kR == 0 && 32 % (kC * W) == 0, "tile sizes must divide the padding");

typedef float vf __attribute__((vector_size(W * sizeof(float)), aligned(sizeof(float))));

inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf vset(float x) {  // a splat: GCC builds neither `vf{} + x` nor a lane loop as one broadcast
#if defined(__AVX512F__)
  return (vf)_mm512_set1_ps(x);
#elif defined(__AVX2__)
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE2__)
  return (vf)_mm_set1_ps(x);
#else
  return vf{} + x;
#endif
}
inline float hsum(vf v) {  // a tree of shuffles (a lane loop is W - 1 dependent adds: 34 % of a pass)
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps((__m512)v);
#elif defined(__AVX2__)
  const __m128 x = _mm_add_ps(_mm256_castps256_ps128((__m256)v), _mm256_extractf128_ps((__m256)v, 1));
  const __m128 y = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(y, _mm_shuffle_ps(y, y, 1)));
#else
  float s = 0.0f;
  for (int l = 0; l < W; ++l) s += v[l];
  return s;
#endif
}

/// Converts k halves to floats.
inline void halves_to_floats(const uint16_t* src, float* dst, int k) {
  int j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= k; j += 16)
    _mm512_storeu_ps(dst + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j))));
#elif defined(__F16C__)
  for (; j + 8 <= k; j += 8)
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
#endif
  for (; j < k; ++j) dst[j] = detail::half_to_float(src[j]);
}
/// Rounds k floats to the nearest half (ties to even; detail::float_to_half_rn's bits).
inline void floats_to_halves(const float* src, uint16_t* dst, int k) {
  int j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= k; j += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
  for (; j + 8 <= k; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; j < k; ++j) dst[j] = detail::float_to_half_rn(src[j]);
}

/// Row r of a factor matrix as kp floats (zero beyond k).
inline void load_row(const void* M, bool half, int64_t r, int k, int kp, float* out) {
  if (half) {
    halves_to_floats(static_cast<const uint16_t*>(M) + r * k, out, k);
  } else {  // a vector loop, not a memcpy call per row (measured: libc's call was 10 % of a side)
    const float* src = static_cast<const float*>(M) + r * k;
    int j = 0;
    for (; j + W <= k; j += W) vstore(out + j, vload(src + j));
    for (; j < k; ++j) out[j] = src[j];
  }
  std::fill(out + k, out + kp, 0.0f);
}
template <int kLocality>  // 3: into L1, 2: into L2 (prefetcht1)
inline __attribute__((always_inline)) void prefetch_row(const void* M, bool half, int64_t r, int k) {
  const size_t bytes = static_cast<size_t>(k) * (half ? 2 : 4);
  const char* p = static_cast<const char*>(M) + static_cast<size_t>(r) * bytes;
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, kLocality);
}

/// A (kp x kp) += sum_{t < n} WG[t] G[t]^T on the tiles of rows [i0, i0 + kR) and columns
/// [j0, j0 + kC W) with j0 < i0 + kR: the lower triangle and the diagonal tiles (upper entries
/// of those tiles come out right too; mirror() makes A exactly symmetric afterwards).
/// kR x kC accumulators stay in registers over the whole panel: per panel row, kC loads of G,
/// kR broadcasts of WG and kR kC FMAs.
void accumulate(float* A, int kp, const float* G, const float* WG, int n) {
  for (int i0 = 0; i0 < kp; i0 += kR) {
    for (int j0 = 0; j0 < i0 + kR; j0 += kC * W) {
      vf acc[kR][kC];
      for (int r = 0; r < kR; ++r)
        for (int c = 0; c < kC; ++c) acc[r][c] = vload(A + static_cast<size_t>(i0 + r) * kp + j0 + c * W);
      for (int t = 0; t < n; ++t) {
        const float* g = G + static_cast<size_t>(t) * kp + j0;
        const float* wg = WG + static_cast<size_t>(t) * kp + i0;
        vf gv[kC];
        for (int c = 0; c < kC; ++c) gv[c] = vload(g + c * W);
        for (int r = 0; r < kR; ++r) {
          const vf s = vset(wg[r]);
          for (int c = 0; c < kC; ++c) acc[r][c] += s * gv[c];
        }
      }
      for (int r = 0; r < kR; ++r)
        for (int c = 0; c < kC; ++c) vstore(A + static_cast<size_t>(i0 + r) * kp + j0 + c * W, acc[r][c]);
    }
  }
}

/// Upper triangle := lower triangle, in 16 x 16 blocks (a column walk of the whole matrix
/// would read one cache line per element).
void mirror(float* A, int kp, int k) {
  constexpr int B = 16;
  for (int ib = 0; ib < k; ib += B)
    for (int jb = ib; jb < k; jb += B)  // upper block (ib, jb) from lower block (jb, ib)
      for (int i = ib; i < std::min(ib + B, k); ++i)
        for (int j = std::max(jb, i + 1); j < std::min(jb + B, k); ++j)
          A[static_cast<size_t>(i) * kp + j] = A[static_cast<size_t>(j) * kp + i];
}

inline float dot(const float* a, const float* b, int kp) {
  vf s{};
  for (int j = 0; j < kp; j += W) s += vload(a + j) * vload(b + j);
  return hsum(s);
}

/// y = A p over the leading k rows of a symmetric A (p zero beyond k): the sum of p_j times
/// row j, with kMV vectors of y in registers at a time (no horizontal sums).
constexpr int kMV = 8;
void matvec(const float* A, int kp, int k, const float* p, float* y) {
  for (int c0 = 0; c0 < kp; c0 += kMV * W) {
    const int nc = std::min(kMV, (kp - c0) / W);
    vf acc[kMV];
    for (int c = 0; c < kMV; ++c) acc[c] = vf{};
    for (int j = 0; j < k; ++j) {
      const vf pj = vset(p[j]);
      const float* a = A + static_cast<size_t>(j) * kp + c0;
      for (int c = 0; c < nc; ++c) acc[c] += pj * vload(a + c * W);
    }
    for (int c = 0; c < nc; ++c) vstore(y + c0 + c * W, acc[c]);
  }
}
/// The same with A stored as FP16 halves of s A: y = (A16 p) / s.
void matvec_half(const uint16_t* A16, int kp, int k, float inv_scale, const float* p, float* y) {
  float row[kMV * 16];
  for (int c0 = 0; c0 < kp; c0 += kMV * W) {
    const int nc = std::min(kMV, (kp - c0) / W);
    vf acc[kMV];
    for (int c = 0; c < kMV; ++c) acc[c] = vf{};
    for (int j = 0; j < k; ++j) {
      const vf pj = vset(p[j]);
      halves_to_floats(A16 + static_cast<size_t>(j) * kp + c0, row, nc * W);
      for (int c = 0; c < nc; ++c) acc[c] += pj * vload(row + c * W);
    }
    const vf s = vset(inv_scale);
    for (int c = 0; c < nc; ++c) vstore(y + c0 + c * W, acc[c] * s);
  }
}

/// The paper's approximate CG (reference_als.cg): `steps` iterations from x (kp values, zero
/// beyond k), on A (float) or A16 (halves of s A).  r, p, Ap: kp scratch each.
void cg(const float* A, const uint16_t* A16, float inv_scale, int kp, int k, const float* b, float* x, int steps,
        float* r, float* p, float* Ap) {
  const auto mv = [&](const float* v, float* out) {
    if (A16)
      matvec_half(A16, kp, k, inv_scale, v, out);
    else
      matvec(A, kp, k, v, out);
  };
  mv(x, Ap);
  for (int j = 0; j < kp; j += W) {
    const vf rv = vload(b + j) - vload(Ap + j);
    vstore(r + j, rv);
    vstore(p + j, rv);
  }
  float rs = dot(r, r, kp);
  if (rs < kCgTol) return;
  for (int it = 0; it < steps; ++it) {
    mv(p, Ap);
    const float pAp = dot(p, Ap, kp);
    if (!(pAp > 0.0f)) break;  // breakdown (p = 0, or an A that FP16 made indefinite)
    const float a = rs / pAp;
    const vf av = vset(a);
    for (int j = 0; j < kp; j += W) {
      vstore(x + j, vload(x + j) + av * vload(p + j));
      vstore(r + j, vload(r + j) - av * vload(Ap + j));
    }
    const float rs_new = dot(r, r, kp);
    if (rs_new < kCgTol) break;
    const vf beta = vset(rs_new / rs);
    for (int j = 0; j < kp; j += W) vstore(p + j, vload(r + j) + beta * vload(p + j));
    rs = rs_new;
  }
}

/// Cholesky A = U^T U in place (U in the upper triangle, row-major, right-looking), then
/// U^T y = b and U x = y.  False when a pivot is not positive.  The trailing update is a rank-kCh
/// update per row (kCh FMAs per element loaded and stored, from kCh rows of U held in L1), and
/// every row is updated in whole vectors from the vector holding its diagonal: the entries left
/// of the diagonal are the lower triangle, which nothing reads again, so they may change.
constexpr int kCh = 8;
bool cholesky_solve(float* A, int kp, int k, const float* b, float* x) {
  const auto row = [&](int i) { return A + static_cast<size_t>(i) * kp; };
  for (int j0 = 0; j0 < k; j0 += kCh) {
    const int jb = std::min(kCh, k - j0);
    for (int j = j0; j < j0 + jb; ++j) {  // the panel's rows, unblocked
      float* uj = row(j);
      const float d = uj[j];
      if (!(d > 0.0f) || !std::isfinite(d)) return false;
      const float s = std::sqrt(d);
      const vf inv = vset(1.0f / s);
      const int v0 = j / W * W;
      for (int m = v0; m < kp; m += W) vstore(uj + m, vload(uj + m) * inv);
      uj[j] = s;
      for (int i = j + 1; i < j0 + jb; ++i) {
        const vf f = vset(uj[i]);
        float* ai = row(i);
        for (int m = i / W * W; m < kp; m += W) vstore(ai + m, vload(ai + m) - f * vload(uj + m));
      }
    }
    for (int i = j0 + jb; i < k; ++i) {  // rows below the panel: A_i -= sum_r U[j0+r][i] U[j0+r]
      vf f[kCh];
      const float* u[kCh];
      for (int r = 0; r < kCh; ++r) {  // a short last panel: rows of zero weight (no NaN: finite rows)
        u[r] = row(j0 + std::min(r, jb - 1));
        f[r] = vset(r < jb ? u[r][i] : 0.0f);
      }
      float* ai = row(i);
      for (int m = i / W * W; m < kp; m += W) {
        vf acc = vload(ai + m);
        for (int r = 0; r < kCh; ++r) acc -= f[r] * vload(u[r] + m);
        vstore(ai + m, acc);
      }
    }
  }
  for (int j = 0; j < k; ++j) x[j] = b[j];
  for (int j = 0; j < k; ++j) {  // U^T y = b, column by column
    const float* uj = row(j);
    x[j] /= uj[j];
    const float yj = x[j];
    for (int m = j + 1; m < k; ++m) x[m] -= yj * uj[m];
  }
  std::fill(x + k, x + kp, 0.0f);
  for (int j = k - 1; j >= 0; --j) {  // U x = y: x_j = (y_j - U[j][j+1..] . x[j+1..]) / U_jj
    const float* uj = row(j);
    const int v1 = std::min(kp, (j + 1 + W - 1) / W * W);  // scalar up to a whole vector, then vectors
    float s = 0.0f;
    for (int m = j + 1; m < v1; ++m) s += uj[m] * x[m];
    vf acc{};
    for (int m = v1; m < kp; m += W) acc += vload(uj + m) * vload(x + m);  // x is 0 beyond k
    x[j] = (x[j] - (s + hsum(acc))) / uj[j];
  }
  return true;
}

/// Gathers prefetch the rows kAhead entries ahead into L1 and kAheadL2 entries ahead into L2
/// (two stages, as the SGD kernels measured: an L1 prefetch holds one of the few L1 miss
/// buffers for a whole DRAM latency), across the ends of rows up to `limit`.
constexpr int kAhead = 6;
constexpr int kAheadL2 = 24;

/// Gathers rows [c0, c0 + m) of row u's columns into G (m x kp floats).
inline void gather(const RowArgs& a, int64_t c0, int m, int64_t limit, float* G) {
  const SideCsr& R = *a.R;
  const int k = a.opt->k, kp = a.kp;
  const bool half = a.opt->factors_half;
  for (int t = 0; t < m; ++t) {  // the rows are scattered over Y
    if (c0 + t + kAheadL2 < limit) prefetch_row<2>(a.Y, half, R.indices[c0 + t + kAheadL2], k);
    if (c0 + t + kAhead < limit) prefetch_row<3>(a.Y, half, R.indices[c0 + t + kAhead], k);
    load_row(a.Y, half, R.indices[c0 + t], k, kp, G + static_cast<size_t>(t) * kp);
  }
}

/// out += sum_t coef_t g_t over m gathered rows G (m x kp), coef_t = w_t (g_t . v), or
/// c_t - w_t (g_t . v) when `residual` (see cg_matrix_free).  NV = kp / W vectors: v and out stay
/// in registers when NV <= kMaxNV (k <= 128 on AVX-512, 64 on AVX2); NV = 0: any kp, in memory.
constexpr int kMaxNV = 8;
template <int NV>
void pass_rows_nv(const float* G, int m, int kp, const float* v, float* out, const float* vals, const Options& o,
                  bool residual) {
  if constexpr (NV == 0) {
    for (int t = 0; t < m; ++t) {
      const float* g = G + static_cast<size_t>(t) * kp;
      const float w = o.implicit ? o.alpha * vals[t] : 1.0f;
      float d = w * dot(g, v, kp);
      if (residual) d = (o.implicit ? confidence(o.alpha, vals[t]) : vals[t]) - d;
      const vf dv = vset(d);
      for (int j = 0; j < kp; j += W) vstore(out + j, vload(out + j) + dv * vload(g + j));
    }
  } else {
    vf vv[NV], acc[NV];
    for (int c = 0; c < NV; ++c) {
      vv[c] = vload(v + c * W);
      acc[c] = vload(out + c * W);
    }
    for (int t = 0; t < m; ++t) {
      const float* g = G + static_cast<size_t>(t) * kp;
      vf gv[NV];
      vf s{};
      for (int c = 0; c < NV; ++c) {
        gv[c] = vload(g + c * W);
        s += gv[c] * vv[c];
      }
      const float w = o.implicit ? o.alpha * vals[t] : 1.0f;
      float d = w * hsum(s);
      if (residual) d = (o.implicit ? confidence(o.alpha, vals[t]) : vals[t]) - d;
      const vf dv = vset(d);
      for (int c = 0; c < NV; ++c) acc[c] += dv * gv[c];
    }
    for (int c = 0; c < NV; ++c) vstore(out + c * W, acc[c]);
  }
}
void pass_rows(const float* G, int m, int kp, const float* v, float* out, const float* vals, const Options& o,
               bool residual) {
  switch (kp / W) {
    case 1:
      return pass_rows_nv<1>(G, m, kp, v, out, vals, o, residual);
    case 2:
      return pass_rows_nv<2>(G, m, kp, v, out, vals, o, residual);
    case 3:
      return pass_rows_nv<3>(G, m, kp, v, out, vals, o, residual);
    case 4:
      return pass_rows_nv<4>(G, m, kp, v, out, vals, o, residual);
    case 5:
      return pass_rows_nv<5>(G, m, kp, v, out, vals, o, residual);
    case 6:
      return pass_rows_nv<6>(G, m, kp, v, out, vals, o, residual);
    case 7:
      return pass_rows_nv<7>(G, m, kp, v, out, vals, o, residual);
    case 8:
      return pass_rows_nv<8>(G, m, kp, v, out, vals, o, residual);
    default:
      return pass_rows_nv<0>(G, m, kp, v, out, vals, o, residual);
  }
}

/// The paper's approximate CG (reference_als.cg) without forming A_u: every product
/// A v = [Y^T Y v] + sum_t w_t (g_t . v) g_t + reg v is one pass over the row's gathered rows
/// g_t (w = alpha r implicit, 1 explicit), and b enters the residual's pass as c_t g_t.
void cg_matrix_free(const RowArgs& a, int64_t u, Workspace& ws, float* x, int64_t limit) {
  const Options& o = *a.opt;
  const int kp = a.kp, k = o.k;
  const SideCsr& R = *a.R;
  const int64_t lo = R.indptr[u], hi = R.indptr[u + 1], n = hi - lo;
  float* r = ws.vec.data() + 2 * static_cast<size_t>(kp);
  float* p = r + kp;
  float* Ap = p + kp;
  float* tmp = Ap + kp;
  const size_t need = static_cast<size_t>(n) * kp;
  const bool resident = need * sizeof(float) <= a.resident_bytes;
  if (resident) {
    if (ws.resident.size() < need) ws.resident.resize(need);
    for (int64_t c0 = lo; c0 < hi; c0 += kChunk)
      gather(a, c0, static_cast<int>(std::min<int64_t>(kChunk, hi - c0)), limit,
             ws.resident.data() + static_cast<size_t>(c0 - lo) * kp);
  }
  const float reg = row_regularisation(o, n);
  // out = sum_t coef_t g_t, coef_t = w_t (g_t . v), or c_t - w_t (g_t . v) for the residual
  const auto pass = [&](const float* v, float* out, bool residual) {
    std::fill(out, out + kp, 0.0f);
    for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
      const int m = static_cast<int>(std::min<int64_t>(kChunk, hi - c0));
      const float* G = ws.resident.data() + static_cast<size_t>(c0 - lo) * kp;
      if (!resident) {
        gather(a, c0, m, hi, ws.panel.data());
        G = ws.panel.data();
      }
      pass_rows(G, m, kp, v, out, R.values.data() + c0, o, residual);
    }
  };
  // A v = pass(v) + Y^T Y v + reg v
  const auto finish = [&](const float* v, float* out, float sign) {
    if (o.implicit) matvec(a.yty, kp, k, v, tmp);
    const vf rv = vset(reg), sg = vset(sign);
    for (int j = 0; j < kp; j += W) {
      vf add = rv * vload(v + j);
      if (o.implicit) add += vload(tmp + j);
      vstore(out + j, vload(out + j) + sg * add);
    }
  };
  pass(x, r, true);  // r = b - A x
  finish(x, r, -1.0f);
  std::copy(r, r + kp, p);
  float rs = dot(r, r, kp);
  if (rs < kCgTol) return;
  for (int it = 0; it < o.cg_steps; ++it) {
    pass(p, Ap, false);
    finish(p, Ap, 1.0f);
    const float pAp = dot(p, Ap, kp);
    if (!(pAp > 0.0f)) break;
    const vf av = vset(rs / pAp);
    for (int j = 0; j < kp; j += W) {
      vstore(x + j, vload(x + j) + av * vload(p + j));
      vstore(r + j, vload(r + j) - av * vload(Ap + j));
    }
    const float rs_new = dot(r, r, kp);
    if (rs_new < kCgTol) break;
    const vf beta = vset(rs_new / rs);
    for (int j = 0; j < kp; j += W) vstore(p + j, vload(r + j) + beta * vload(p + j));
    rs = rs_new;
  }
}

/// Builds row u's system into ws.A (kp x kp, symmetric) and b: the paper's get_hermitian
/// and get_bias.  Returns n_u (0: the row has no interactions; A and b are then unset).
int64_t build_system(const RowArgs& a, int64_t u, Workspace& ws, float* b, int64_t limit) {
  const Options& o = *a.opt;
  const int k = o.k, kp = a.kp;
  const SideCsr& R = *a.R;
  const bool half = o.factors_half;
  const int64_t lo = R.indptr[u], hi = R.indptr[u + 1];
  if (hi == lo) return 0;
  float* A = ws.A.data();
  if (o.implicit)
    std::memcpy(A, a.yty, sizeof(float) * static_cast<size_t>(kp) * kp);
  else
    std::fill(A, A + static_cast<size_t>(kp) * kp, 0.0f);
  std::fill(b, b + kp, 0.0f);
  for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kChunk, hi - c0));
    float* G = ws.panel.data();
    gather(a, c0, m, limit, G);
    const float* WG = G;
    if (o.implicit) {  // w = c - 1 = alpha r on A, c = 1 + alpha r on b
      float* wp = ws.wpanel.data();
      for (int t = 0; t < m; ++t) {
        const float rv = R.values[c0 + t];
        const vf w = vset(o.alpha * rv);
        for (int j = 0; j < kp; j += W)
          vstore(wp + static_cast<size_t>(t) * kp + j, w * vload(G + static_cast<size_t>(t) * kp + j));
        ws.coef[t] = confidence(o.alpha, rv);
      }
      WG = wp;
    } else {
      for (int t = 0; t < m; ++t) ws.coef[t] = R.values[c0 + t];
    }
    accumulate(A, kp, G, WG, m);
    for (int t = 0; t < m; ++t) {
      const vf cv = vset(ws.coef[t]);
      const float* g = G + static_cast<size_t>(t) * kp;
      for (int j = 0; j < kp; j += W) vstore(b + j, vload(b + j) + cv * vload(g + j));
    }
  }
  mirror(A, kp, k);
  const float reg = row_regularisation(o, hi - lo);
  for (int j = 0; j < k; ++j) A[static_cast<size_t>(j) * kp + j] += reg;
  return hi - lo;
}

/// hermitian_half: stores ws.A as FP16 halves of s A in ws.A16 (the paper's FP16 A,
/// detail/als.h) and returns 1 / s.  ws.A is left scaled by s.
float store_half(int kp, int k, Workspace& ws) {
  float* A = ws.A.data();
  float mx = 0.0f;
  for (int j = 0; j < k; ++j) mx = std::max(mx, A[static_cast<size_t>(j) * kp + j]);
  const float s = hermitian_scale(mx);
  uint16_t* h = ws.A16.data();
  const vf sv = vset(s);
  for (int i = 0; i < k; ++i) {
    float* row = A + static_cast<size_t>(i) * kp;
    for (int j = 0; j < kp; j += W) vstore(row + j, vload(row + j) * sv);
    floats_to_halves(row, h + static_cast<size_t>(i) * kp, kp);
  }
  return 1.0f / s;
}

/// ws.A := the FP16 copy read back, unscaled (what a solver reading FP16 A sees).
void read_half(int kp, int k, float inv_scale, Workspace& ws) {
  const vf iv = vset(inv_scale);
  for (int i = 0; i < k; ++i) {
    float* row = ws.A.data() + static_cast<size_t>(i) * kp;
    halves_to_floats(ws.A16.data() + static_cast<size_t>(i) * kp, row, kp);
    for (int j = 0; j < kp; j += W) vstore(row + j, vload(row + j) * iv);
  }
}

void store_row(const RowArgs& a, int64_t u, const float* x) {
  const int k = a.opt->k;
  if (a.opt->factors_half)
    floats_to_halves(x, static_cast<uint16_t*>(a.X) + u * k, k);
  else
    std::memcpy(static_cast<float*>(a.X) + u * k, x, sizeof(float) * static_cast<size_t>(k));
}

int64_t solve_rows(const RowArgs& a, int64_t begin, int64_t end, Workspace& ws) {
  const Options& o = *a.opt;
  const int k = o.k, kp = a.kp;
  float* b = ws.vec.data();
  float* x = b + kp;
  float* r = x + kp;
  float* p = r + kp;
  float* Ap = p + kp;
  int64_t failed = -1;
  const bool matrix_free = cg_form_of(o) == Options::CgForm::kMatrixFree;
  const int64_t limit = a.R->indptr[end];  // the gathers prefetch across rows, to the block's end
  for (int64_t u = begin; u < end; ++u) {
    if (a.R->indptr[u] == a.R->indptr[u + 1]) {  // no interactions: zero, whatever the solver
      std::fill(x, x + kp, 0.0f);
      store_row(a, u, x);
      continue;
    }
    if (matrix_free) {
      load_row(a.X, o.factors_half, u, k, kp, x);
      cg_matrix_free(a, u, ws, x, limit);
      store_row(a, u, x);
      continue;
    }
    build_system(a, u, ws, b, limit);
    const uint16_t* A16 = nullptr;
    float inv_scale = 1.0f;
    if (o.hermitian_half) {
      inv_scale = store_half(kp, k, ws);
      if (o.solver == Solver::kCholesky)
        read_half(kp, k, inv_scale, ws);  // the factorisation reads A back from its FP16 copy
      else
        A16 = ws.A16.data();  // CG's products read the halves directly
    }
    if (o.solver == Solver::kCholesky) {
      if (!cholesky_solve(ws.A.data(), kp, k, b, x)) {
        if (failed < 0) failed = u;
        std::fill(x, x + kp, 0.0f);
      }
    } else {
      load_row(a.X, o.factors_half, u, k, kp, x);
      cg(ws.A.data(), A16, inv_scale, kp, k, b, x, o.cg_steps, r, p, Ap);
    }
    store_row(a, u, x);
  }
  return failed;
}

void hermitian_rows(const RowArgs& a, int64_t begin, int64_t end, Workspace& ws, float* A_out, float* b_out) {
  const int k = a.opt->k, kp = a.kp;
  float* b = ws.vec.data();
  for (int64_t u = begin; u < end; ++u) {
    float* Au = A_out + static_cast<size_t>(u - begin) * k * k;
    float* bu = b_out + static_cast<size_t>(u - begin) * k;
    if (build_system(a, u, ws, b, a.R->indptr[end]) == 0) {
      std::fill(Au, Au + static_cast<size_t>(k) * k, 0.0f);
      std::fill(bu, bu + k, 0.0f);
      continue;
    }
    if (a.opt->hermitian_half) read_half(kp, k, store_half(kp, k, ws), ws);
    for (int i = 0; i < k; ++i)
      std::memcpy(Au + static_cast<size_t>(i) * k, ws.A.data() + static_cast<size_t>(i) * kp,
                  sizeof(float) * static_cast<size_t>(k));
    std::memcpy(bu, b, sizeof(float) * static_cast<size_t>(k));
  }
}

void gram_rows(const void* Y, bool half, int k, int kp, int64_t begin, int64_t end, float* out, Workspace& ws) {
  for (int64_t c0 = begin; c0 < end; c0 += kChunk) {
    const int m = static_cast<int>(std::min<int64_t>(kChunk, end - c0));
    float* G = ws.panel.data();
    for (int t = 0; t < m; ++t) load_row(Y, half, c0 + t, k, kp, G + static_cast<size_t>(t) * kp);
    accumulate(out, kp, G, G, m);
  }
}

}  // namespace

extern const KernelTable kTable;
const KernelTable kTable = {MASCOT_ALS_ISA, solve_rows, gram_rows, hermitian_rows};

}  // namespace mascot::als::MASCOT_ALS_NS
