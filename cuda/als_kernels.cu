// ALS on the CUDA device (issue 21; the cuMF_ALS paper, Sections III-IV): the same solve of one
// side as the CPU's (cpp/src/als/, semantics in mascot/detail/als.h and
// tests/python/reference_als.py), in the paper's form:
//   1. get_hermitian (hermitian_kernel): one thread block per row u; the fixed side's rows y_v of
//      Omega_u are staged into shared memory a batch at a time (Solution 1) with the paper's
//      non-coalesced, cache-assisted read (Solution 2: neighbouring threads read neighbouring
//      rows y_v at the same offset); each thread owns up to NT 8 x 8 tiles of A_u's lower
//      triangle in registers and adds the outer products of the staged rows to them; b_u comes
//      in the same pass.  The tiles are flushed once, as the full symmetric A_u (FP32) or as FP16
//      halves of s A_u (Solution 4: the CG solver's products read half the bytes), for a batch
//      of rows at a time.
//   2. solve: the approximate CG (cg_kernel, Solution 3; one block of kp threads per row, thread
//      i computes (A p)_i from column i of the symmetric A: coalesced reads), warm-started from
//      the row's stored value; or the exact Cholesky (cholesky_kernel, own kernel: the CUDA
//      emulator, which runs these sources in the tests, has no cuSOLVER).
// Y^T Y (implicit feedback) comes from the same tile accumulation over blocks of rows of Y
// (gram_kernel), reduced in double in block order (gram_reduce_kernel).
// The CPU's matrix-free CG form (CgForm::kMatrixFree) is a CPU optimisation: the device always
// builds A_u, as the paper does.  k <= 256 (a row's tiles must fit the registers of one block).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "als_device.h"
#include "cuda_check.h"
#include "mascot/context.h"
#include "mascot/detail/als.h"
#include "mascot/detail/half.h"
#include "mascot/error.h"

namespace mascot::als {
namespace {

constexpr int kTile = 8;    // A_u is built in kTile x kTile register tiles
constexpr int kMaxK = 256;  // 528 tiles: at most 3 per thread of a 256-thread block
constexpr int kMaxThreads = 256;
constexpr int kStageFloats = 8192;   // 32 KB of staged rows per block
constexpr int64_t kGramRows = 4096;  // rows of Y per Y^T Y partial

/// Where the hermitian kernel puts A_u.
enum class AOut : int {
  kF32,         ///< float, exact (no FP16 round trip)
  kF32Rounded,  ///< float, through the FP16 store: half(s A) / s (Cholesky and the test hook under hermitian_half)
  kF16,         ///< halves of s A and 1 / s per row (the CG solver under hermitian_half)
};

struct DevArgs {
  Options o;
  int kp = 0;
  const int64_t* indptr = nullptr;  ///< the side's CSR (device)
  const int32_t* indices = nullptr;
  const float* values = nullptr;
  int64_t row0 = 0;            ///< first row of this batch
  const void* Y = nullptr;     ///< fixed side (float or half bits by o.factors_half)
  void* X = nullptr;           ///< solved side
  const float* yty = nullptr;  ///< kp x kp (implicit) or null
  AOut aout = AOut::kF32;
  float* A = nullptr;          ///< batch x kp x kp (kF32, kF32Rounded)
  uint16_t* A16 = nullptr;     ///< batch x kp x kp (kF16)
  float* inv_scale = nullptr;  ///< batch (kF16)
  float* b = nullptr;          ///< batch x kp
  int* failed = nullptr;       ///< batch: 1 where the row's Cholesky failed
};

__device__ __forceinline__ int64_t imin(int64_t x, int64_t y) { return x < y ? x : y; }

__device__ __forceinline__ float load_f(const void* M, bool half, int64_t idx) {
  if (half) return __half2float(__ushort_as_half(static_cast<const uint16_t*>(M)[idx]));
  return static_cast<const float*>(M)[idx];
}
__device__ __forceinline__ void store_f(void* M, bool half, int64_t idx, float v) {
  if (half)
    static_cast<uint16_t*>(M)[idx] = __half_as_ushort(__float2half_rn(v));
  else
    static_cast<float*>(M)[idx] = v;
}

/// Tile t of the lower triangle of an nt x nt grid of tiles, enumerated row by row.
__device__ __forceinline__ void tile_of(int t, int* ti, int* tj) {
  int i = 0;
  while ((i + 1) * (i + 2) / 2 <= t) ++i;
  *ti = i;
  *tj = t - i * (i + 1) / 2;
}

/// The tiles thread threadIdx.x owns (tile threadIdx.x + q * blockDim.x; ti[q] = tj[q] = -1 past
/// the last of `tiles`), their accumulators zeroed: the set-up of hermitian_kernel and gram_kernel.
template <int NT>
__device__ __forceinline__ void init_tiles(float (&acc)[NT][kTile * kTile], int (&ti)[NT], int (&tj)[NT], int tiles) {
#pragma unroll
  for (int q = 0; q < NT; ++q) {
    const int t = threadIdx.x + q * blockDim.x;
    if (t < tiles) {
      tile_of(t, &ti[q], &tj[q]);
    } else {
      ti[q] = tj[q] = -1;
    }
#pragma unroll
    for (int x = 0; x < kTile * kTile; ++x) acc[q][x] = 0.0f;
  }
}

/// acc[q] += sum over the m staged rows of (w_f y_f)[tile rows] (y_f)[tile columns]^T for the
/// thread's tiles q (ti[q] < 0: none).
template <int NT>
__device__ __forceinline__ void accumulate_tiles(float (&acc)[NT][kTile * kTile], const int (&ti)[NT],
                                                 const int (&tj)[NT], const float* ys, const float* ws, int m, int kp) {
  for (int f = 0; f < m; ++f) {
    const float* y = ys + f * kp;
    const float w = ws[f];
#pragma unroll
    for (int q = 0; q < NT; ++q) {
      if (ti[q] < 0) continue;
      float av[kTile], bv[kTile];
#pragma unroll
      for (int x = 0; x < kTile; ++x) {
        av[x] = w * y[ti[q] * kTile + x];
        bv[x] = y[tj[q] * kTile + x];
      }
#pragma unroll
      for (int x = 0; x < kTile; ++x)
#pragma unroll
        for (int z = 0; z < kTile; ++z) acc[q][x * kTile + z] += av[x] * bv[z];
    }
  }
}

/// get_hermitian and get_bias of rows row0 + blockIdx.x (see the file comment).
template <int NT>
__global__ void __launch_bounds__(kMaxThreads) hermitian_kernel(DevArgs a) {
  __shared__ float ys[kStageFloats];
  __shared__ float ws[kStageFloats / 32];
  __shared__ float cs[kStageFloats / 32];
  __shared__ float diag[kMaxK];
  const Options& o = a.o;
  const int k = o.k, kp = a.kp, nt = kp / kTile, tiles = nt * (nt + 1) / 2;
  const int tid = threadIdx.x, nth = blockDim.x;
  const int64_t row = blockIdx.x, u = a.row0 + row;
  const int64_t lo = a.indptr[u], hi = a.indptr[u + 1];
  if (hi == lo) return;             // no interactions: the solve writes zero
  const int S = kStageFloats / kp;  // rows staged at a time (>= 32)
  int ti[NT], tj[NT];
  float acc[NT][kTile * kTile];
  init_tiles<NT>(acc, ti, tj, tiles);
  float bacc[kMaxK / 32];  // b's columns tid, tid + nth, ... (nth >= 32)
#pragma unroll
  for (int c = 0; c < kMaxK / 32; ++c) bacc[c] = 0.0f;
  const bool half = o.factors_half;
  for (int64_t c0 = lo; c0 < hi; c0 += S) {
    const int m = static_cast<int>(imin(S, hi - c0));
    __syncthreads();  // the previous batch is consumed
    // Solution 2: element e is row f = e % m, column e / m: neighbouring threads read
    // neighbouring rows at the same offset (non-coalesced, served by L1/L2)
    for (int e = tid; e < m * kp; e += nth) {
      const int f = e % m, col = e / m;
      ys[f * kp + col] = col < k ? load_f(a.Y, half, static_cast<int64_t>(a.indices[c0 + f]) * k + col) : 0.0f;
    }
    for (int f = tid; f < m; f += nth) {
      const float r = a.values[c0 + f];
      ws[f] = o.implicit ? o.alpha * r : 1.0f;  // c - 1 = alpha r on A
      cs[f] = o.implicit ? confidence(o.alpha, r) : r;
    }
    __syncthreads();
    accumulate_tiles<NT>(acc, ti, tj, ys, ws, m, kp);
#pragma unroll
    for (int c = 0; c < kMaxK / 32; ++c) {  // unrolled: bacc stays in registers
      const int col = c * nth + tid;
      if (col >= kp) continue;
      float s = bacc[c];
      for (int f = 0; f < m; ++f) s += cs[f] * ys[f * kp + col];
      bacc[c] = s;
    }
  }
  const float reg = row_regularisation(o, hi - lo);
  const auto value = [&](int q, int x, int z) {  // A_u[ti*8+x][tj*8+z]
    const int i = ti[q] * kTile + x, j = tj[q] * kTile + z;
    if (i >= k || j >= k) return 0.0f;
    float v = acc[q][x * kTile + z];
    if (o.implicit) v += a.yty[i * kp + j];
    if (i == j) v += reg;
    return v;
  };
  float s = 1.0f;
  if (a.aout != AOut::kF32) {  // the scale of the FP16 store: max diagonal entry (detail/als.h)
#pragma unroll
    for (int q = 0; q < NT; ++q)
      if (ti[q] >= 0 && ti[q] == tj[q])
#pragma unroll
        for (int x = 0; x < kTile; ++x) diag[ti[q] * kTile + x] = value(q, x, x);
    __syncthreads();
    float mx = 0.0f;
    for (int i = 0; i < k; ++i) mx = fmaxf(mx, diag[i]);
    s = hermitian_scale(mx);
  }
  const float inv = 1.0f / s;
  float* A = a.A + row * kp * kp;
  uint16_t* A16 = a.A16 + row * kp * kp;
#pragma unroll
  for (int q = 0; q < NT; ++q) {  // every loop over acc unrolled: its indices are constants
    if (ti[q] < 0) continue;
#pragma unroll
    for (int x = 0; x < kTile; ++x)
#pragma unroll
      for (int z = 0; z < kTile; ++z) {
        const int i = ti[q] * kTile + x, j = tj[q] * kTile + z;
        const float v = value(q, x, z);
        if (a.aout == AOut::kF16) {
          const uint16_t h = __half_as_ushort(__float2half_rn(v * s));
          A16[i * kp + j] = h;
          A16[j * kp + i] = h;
        } else {
          const float w = a.aout == AOut::kF32 ? v : __half2float(__float2half_rn(v * s)) * inv;
          A[i * kp + j] = w;
          A[j * kp + i] = w;
        }
      }
  }
  if (a.aout == AOut::kF16 && tid == 0) a.inv_scale[row] = inv;
#pragma unroll
  for (int c = 0; c < kMaxK / 32; ++c)
    if (c * nth + tid < kp) a.b[row * kp + c * nth + tid] = bacc[c];
}

/// Y^T Y of rows [blockIdx.x * kGramRows, ...) into partial[blockIdx.x] (lower tiles).
template <int NT>
__global__ void __launch_bounds__(kMaxThreads)
    gram_kernel(const void* Y, bool half, int64_t rows, int k, int kp, float* partial) {
  __shared__ float ys[kStageFloats];
  __shared__ float ws[kStageFloats / 32];
  const int nt = kp / kTile, tiles = nt * (nt + 1) / 2;
  const int tid = threadIdx.x, nth = blockDim.x;
  const int64_t lo = blockIdx.x * kGramRows, hi = imin(rows, lo + kGramRows);
  const int S = kStageFloats / kp;
  int ti[NT], tj[NT];
  float acc[NT][kTile * kTile];
  init_tiles<NT>(acc, ti, tj, tiles);
  for (int f = tid; f < S; f += nth) ws[f] = 1.0f;
  for (int64_t c0 = lo; c0 < hi; c0 += S) {
    const int m = static_cast<int>(imin(S, hi - c0));
    __syncthreads();
    for (int e = tid; e < m * kp; e += nth) {
      const int f = e / kp, col = e % kp;  // rows of Y are contiguous here: a coalesced read
      ys[f * kp + col] = col < k ? load_f(Y, half, (c0 + f) * k + col) : 0.0f;
    }
    __syncthreads();
    accumulate_tiles<NT>(acc, ti, tj, ys, ws, m, kp);
  }
  float* out = partial + static_cast<int64_t>(blockIdx.x) * kp * kp;
#pragma unroll
  for (int q = 0; q < NT; ++q)
    if (ti[q] >= 0)
#pragma unroll
      for (int x = 0; x < kTile; ++x)
#pragma unroll
        for (int z = 0; z < kTile; ++z) out[(ti[q] * kTile + x) * kp + tj[q] * kTile + z] = acc[q][x * kTile + z];
}

/// yty[i][j] = sum over the partials, in partial order, of the lower entry (max(i,j), min(i,j)).
__global__ void gram_reduce_kernel(const float* partial, int blocks, int kp, float* yty) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= static_cast<int64_t>(kp) * kp) return;
  const int i = static_cast<int>(e / kp), j = static_cast<int>(e % kp);
  const int lo = i >= j ? i * kp + j : j * kp + i;
  double s = 0.0;
  for (int p = 0; p < blocks; ++p) s += partial[static_cast<int64_t>(p) * kp * kp + lo];
  yty[e] = static_cast<float>(s);
}

/// Sum of v over the block (blockDim.x = kp, a multiple of 32); every thread gets it.
__device__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  const int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();  // red is free (a previous sum's readers are done)
  if ((threadIdx.x & 31) == 0) red[w] = v;
  __syncthreads();
  float s = 0.0f;
  for (int x = 0; x < nw; ++x) s += red[x];
  return s;
}

/// The approximate CG (reference_als.cg) of row row0 + blockIdx.x, thread i owning element i.
__global__ void __launch_bounds__(kMaxThreads) cg_kernel(DevArgs a) {
  __shared__ float sv[kMaxK];
  __shared__ float red[kMaxThreads / 32];
  const Options& o = a.o;
  const int k = o.k, kp = a.kp, i = threadIdx.x;
  const int64_t row = blockIdx.x, u = a.row0 + row;
  const bool half = o.factors_half;
  const bool live = a.indptr[u + 1] > a.indptr[u];  // block-uniform
  if (!live) {
    if (i < k) store_f(a.X, half, u * k + i, 0.0f);
    return;
  }
  const float* A = a.A + row * kp * kp;
  const uint16_t* A16 = a.A16 + row * kp * kp;
  const bool a16 = a.aout == AOut::kF16;
  const float inv = a16 ? a.inv_scale[row] : 1.0f;
  const auto matvec = [&]() {  // (A sv)_i, A symmetric: column i, read along rows (coalesced)
    float s = 0.0f;
    if (a16) {
      for (int j = 0; j < k; ++j) s += __half2float(__ushort_as_half(A16[j * kp + i])) * sv[j];
      s *= inv;
    } else {
      for (int j = 0; j < k; ++j) s += A[j * kp + i] * sv[j];
    }
    return s;
  };
  float x = i < k ? load_f(a.X, half, u * k + i) : 0.0f;
  const float b = a.b[row * kp + i];
  sv[i] = x;
  __syncthreads();
  float r = b - matvec();
  float p = r;
  float rs = block_sum(r * r, red);
  if (!(rs < kCgTol)) {
    for (int it = 0; it < o.cg_steps; ++it) {
      __syncthreads();  // every thread has read sv
      sv[i] = p;
      __syncthreads();
      const float Ap = matvec();
      const float pAp = block_sum(p * Ap, red);
      if (!(pAp > 0.0f)) break;
      const float alpha = rs / pAp;
      x += alpha * p;
      r -= alpha * Ap;
      const float rs_new = block_sum(r * r, red);
      if (rs_new < kCgTol) break;
      p = r + (rs_new / rs) * p;
      rs = rs_new;
    }
  }
  if (i < k) store_f(a.X, half, u * k + i, x);
}

/// The exact solve of row row0 + blockIdx.x: A = U^T U in place (upper triangle, right-looking;
/// thread m updates column m), then U^T y = b, U x = y.  A failed pivot records the row.
__global__ void __launch_bounds__(kMaxThreads) cholesky_kernel(DevArgs a) {
  __shared__ float y[kMaxK];
  __shared__ int bad;
  const int k = a.o.k, kp = a.kp, i = threadIdx.x;
  const int64_t row = blockIdx.x, u = a.row0 + row;
  const bool half = a.o.factors_half;
  if (a.indptr[u + 1] == a.indptr[u]) {
    if (i < k) store_f(a.X, half, u * k + i, 0.0f);
    return;
  }
  float* A = a.A + row * kp * kp;
  y[i] = a.b[row * kp + i];
  if (i == 0) bad = 0;
  for (int j = 0; j < k; ++j) {
    __syncthreads();
    const float d = A[j * kp + j];
    if (!(d > 0.0f && d <= 3.4e38f)) {  // not positive, or not finite
      if (i == 0) bad = 1;
      break;  // block-uniform: every thread read the same d
    }
    const float s = sqrtf(d);
    __syncthreads();  // every thread has read d
    if (i == j) A[j * kp + j] = s;
    if (i > j && i < k) A[j * kp + i] /= s;
    __syncthreads();
    if (i > j && i < k) {
      const float ujm = A[j * kp + i];
      for (int r = j + 1; r <= i; ++r) A[r * kp + i] -= A[j * kp + r] * ujm;
    }
  }
  __syncthreads();
  if (bad) {
    if (i == 0) a.failed[row] = 1;
    if (i < k) store_f(a.X, half, u * k + i, 0.0f);
    return;
  }
  for (int j = 0; j < k; ++j) {  // U^T y = b
    __syncthreads();
    if (i == 0) y[j] /= A[j * kp + j];
    __syncthreads();
    if (i > j && i < k) y[i] -= A[j * kp + i] * y[j];
  }
  for (int j = k - 1; j >= 0; --j) {  // U x = y
    __syncthreads();
    if (i == 0) y[j] /= A[j * kp + j];
    __syncthreads();
    if (i < j) y[i] -= A[i * kp + j] * y[j];
  }
  __syncthreads();
  if (i < k) store_f(a.X, half, u * k + i, y[i]);
}

// ------------------------------------------------------------------ host side

int padded(int k) { return (k + 31) / 32 * 32; }

/// Threads of a hermitian block, and the tiles each owns.
void tile_shape(int kp, int* threads, int* nt_per_thread) {
  const int nt = kp / kTile, tiles = nt * (nt + 1) / 2;
  *threads = std::min(kMaxThreads, (tiles + 31) / 32 * 32);
  *nt_per_thread = (tiles + *threads - 1) / *threads;
}

template <class Launch>
void by_nt(int nt, Launch&& launch) {
  switch (nt) {
    case 1:
      return launch(std::integral_constant<int, 1>());
    case 2:
      return launch(std::integral_constant<int, 2>());
    default:
      return launch(std::integral_constant<int, 3>());
  }
}

}  // namespace

void validate_options_on_device(const Options& o) {
  MASCOT_CHECK_ARG(o.k >= 1 && o.k <= kMaxK, "k must be between 1 and 256 for ALS on the cuda device (got " +
                                                 std::to_string(o.k) + "); use --device cpu for larger k");
  if (const std::string why = cuda_unavailable_reason(); !why.empty()) throw CudaError(why + "; use --device cpu");
}

DeviceFactors::DeviceFactors(int64_t rows, int k, bool half) : rows_(rows), k_(k), half_(half) {
  if (half)
    h_.reset(static_cast<size_t>(rows) * k);
  else
    f_.reset(static_cast<size_t>(rows) * k);
}
void DeviceFactors::upload(const std::vector<float>& v) {
  if (half_) {
    std::vector<uint16_t> h(v.size());
    for (size_t x = 0; x < v.size(); ++x) h[x] = detail::float_to_half_rn(v[x]);
    h_.upload(h.data(), h.size());
  } else {
    f_.upload(v.data(), v.size());
  }
}
std::vector<float> DeviceFactors::download() const {
  const size_t n = static_cast<size_t>(rows_) * k_;
  std::vector<float> v(n);
  if (half_) {
    std::vector<uint16_t> h(n);
    h_.download(h.data(), n);
    for (size_t x = 0; x < n; ++x) v[x] = detail::half_to_float(h[x]);
  } else {
    f_.download(v.data(), n);
  }
  return v;
}

DeviceCsr::DeviceCsr(const SideCsr& R) : rows(R.rows), cols(R.cols) {
  indptr.reset(R.indptr.size());
  indptr.upload(R.indptr.data(), R.indptr.size());
  indices.reset(R.indices.size());
  indices.upload(R.indices.data(), R.indices.size());
  values.reset(R.values.size());
  values.upload(R.values.data(), R.values.size());
}

/// Y^T Y on the device (kp x kp, zero-padded), into yty.
void device_gram(const DeviceFactors& Y, cuda::DeviceBuffer<float>* yty) {
  const int k = Y.k(), kp = padded(k);
  const int blocks = static_cast<int>(std::max<int64_t>(1, (Y.rows() + kGramRows - 1) / kGramRows));
  cuda::DeviceBuffer<float> partial(static_cast<size_t>(blocks) * kp * kp);
  partial.zero();
  int threads = 0, nt = 0;
  tile_shape(kp, &threads, &nt);
  if (Y.rows() > 0)
    by_nt(nt, [&](auto c) {
      MASCOT_LAUNCH(blocks, threads, gram_kernel<decltype(c)::value>)(Y.data(), Y.half(), Y.rows(), k, kp,
                                                                      partial.get());
      MASCOT_CUDA_CHECK_LAUNCH();
    });
  yty->reset(static_cast<size_t>(kp) * kp);
  const int64_t n = static_cast<int64_t>(kp) * kp;
  MASCOT_LAUNCH(static_cast<int>((n + 255) / 256), 256, gram_reduce_kernel)(partial.get(), Y.rows() > 0 ? blocks : 0,
                                                                            kp, yty->get());
  MASCOT_CUDA_CHECK_LAUNCH();
}

namespace {
/// Rows per batch: the Hermitians of a batch take at most kBatchBytes.
constexpr size_t kBatchBytes = size_t(256) << 20;

/// Runs the hermitian kernel (and, unless hermitian_only, the solve) over every row in batches.
/// hermitian_only: A (rows x kp x kp float, as the solver reads it) and b (rows x kp) are kept
/// for the caller (the test hook), in one batch.
void run_side(const Options& o, const DeviceCsr& R, const DeviceFactors& Y, DeviceFactors* X, bool hermitian_only,
              cuda::DeviceBuffer<float>* A_keep, cuda::DeviceBuffer<float>* b_keep) {
  const int k = o.k, kp = padded(k);
  cuda::DeviceBuffer<float> yty;
  if (o.implicit) device_gram(Y, &yty);
  const bool cg16 = o.hermitian_half && o.solver == Solver::kCg && !hermitian_only;
  const size_t per_row = static_cast<size_t>(kp) * kp * (cg16 ? 2 : 4);
  const int64_t batch =
      hermitian_only ? std::max<int64_t>(R.rows, 1)
                     : std::max<int64_t>(1, std::min<int64_t>(R.rows, static_cast<int64_t>(kBatchBytes / per_row)));
  cuda::DeviceBuffer<float> A, b, inv;
  cuda::DeviceBuffer<uint16_t> A16;
  if (cg16) {
    A16.reset(static_cast<size_t>(batch) * kp * kp);
    inv.reset(static_cast<size_t>(batch));
  } else {
    A.reset(static_cast<size_t>(batch) * kp * kp);
  }
  b.reset(static_cast<size_t>(batch) * kp);
  if (hermitian_only) {
    A.zero();
    b.zero();
  }
  cuda::DeviceBuffer<int> failed(static_cast<size_t>(batch));
  int64_t first_failed = -1;
  int threads = 0, nt = 0;
  tile_shape(kp, &threads, &nt);
  for (int64_t r0 = 0; r0 < R.rows; r0 += batch) {
    const int64_t n = std::min(batch, R.rows - r0);
    DevArgs a;
    a.o = o;
    a.kp = kp;
    a.indptr = R.indptr.get();
    a.indices = R.indices.get();
    a.values = R.values.get();
    a.row0 = r0;
    a.Y = Y.data();
    a.X = X ? X->data() : nullptr;
    a.yty = o.implicit ? yty.get() : nullptr;
    a.aout = cg16 ? AOut::kF16 : o.hermitian_half ? AOut::kF32Rounded : AOut::kF32;
    a.A = A.get();
    a.A16 = A16.get();
    a.inv_scale = inv.get();
    a.b = b.get();
    a.failed = failed.get();
    by_nt(nt, [&](auto c) {
      MASCOT_LAUNCH(static_cast<int>(n), threads, hermitian_kernel<decltype(c)::value>)(a);
      MASCOT_CUDA_CHECK_LAUNCH();
    });
    if (hermitian_only) break;
    if (o.solver == Solver::kCg) {
      MASCOT_LAUNCH(static_cast<int>(n), kp, cg_kernel)(a);
      MASCOT_CUDA_CHECK_LAUNCH();
    } else {
      failed.zero();
      MASCOT_LAUNCH(static_cast<int>(n), kp, cholesky_kernel)(a);
      MASCOT_CUDA_CHECK_LAUNCH();
      std::vector<int> f(static_cast<size_t>(n));
      failed.download(f.data(), f.size());
      for (int64_t x = 0; x < n && first_failed < 0; ++x)
        if (f[x]) first_failed = r0 + x;
      if (first_failed >= 0) break;
    }
  }
  MASCOT_CUDA_CHECK(cudaDeviceSynchronize());
  if (hermitian_only) {
    *A_keep = std::move(A);
    *b_keep = std::move(b);
    return;
  }
  if (first_failed >= 0)
    throw InvalidArgument("ALS: the Cholesky factorisation failed on row " + std::to_string(first_failed) +
                          " (its system is not positive definite in float32): increase the regularization");
}
}  // namespace

void device_solve_side(const Options& o, const DeviceCsr& R, const DeviceFactors& Y, DeviceFactors* X) {
  validate_options_on_device(o);
  run_side(o, R, Y, X, false, nullptr, nullptr);
}

std::vector<float> cuda_solve_side(const Options& o, const SideCsr& R, const std::vector<float>& Y,
                                   const std::vector<float>& X) {
  validate_options_on_device(o);
  const DeviceCsr dr(R);
  DeviceFactors dy(R.cols, o.k, o.factors_half), dx(R.rows, o.k, o.factors_half);
  dy.upload(Y);
  dx.upload(X);
  run_side(o, dr, dy, &dx, false, nullptr, nullptr);
  return dx.download();
}

void cuda_hermitian(const Options& o, const SideCsr& R, const std::vector<float>& Y, std::vector<float>* A,
                    std::vector<float>* b) {
  validate_options_on_device(o);
  const int k = o.k, kp = padded(k);
  const DeviceCsr dr(R);
  DeviceFactors dy(R.cols, o.k, o.factors_half);
  dy.upload(Y);
  cuda::DeviceBuffer<float> dA, db;
  run_side(o, dr, dy, nullptr, true, &dA, &db);
  std::vector<float> Ap(static_cast<size_t>(R.rows) * kp * kp), bp(static_cast<size_t>(R.rows) * kp);
  if (R.rows > 0) {
    dA.download(Ap.data(), Ap.size());
    db.download(bp.data(), bp.size());
  }
  A->assign(static_cast<size_t>(R.rows) * k * k, 0.0f);
  b->assign(static_cast<size_t>(R.rows) * k, 0.0f);
  for (int64_t r = 0; r < R.rows; ++r) {
    if (R.indptr[r + 1] == R.indptr[r]) continue;  // the kernel left the row alone: zeros
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k; ++j) (*A)[(r * k + i) * k + j] = Ap[(r * kp + i) * kp + j];
      (*b)[r * k + i] = bp[r * kp + i];
    }
  }
}

}  // namespace mascot::als

// ------------------------------------------------------------------ the device store of a run

#include "mascot/detail/als_engine.h"

namespace mascot::als {
namespace {

/// P, Q and both CSR views on the device; an iteration never leaves it.
class CudaStore final : public Store {
 public:
  const char* name() const override { return "cuda"; }
  void load(const RunConfig& cfg, SideCsr users, SideCsr items, const std::vector<float>& P,
            const std::vector<float>& Q) override {
    cfg_ = cfg;
    validate_options_on_device(cfg.side(true));
    U_ = std::make_unique<DeviceCsr>(users);
    I_ = std::make_unique<DeviceCsr>(items);
    P_ = std::make_unique<DeviceFactors>(users.rows, cfg.k, cfg.factors_half);
    Q_ = std::make_unique<DeviceFactors>(items.rows, cfg.k, cfg.factors_half);
    set(P, Q);
  }
  void iterate() override {
    device_solve_side(cfg_.side(true), *U_, *Q_, P_.get());
    device_solve_side(cfg_.side(false), *I_, *P_, Q_.get());
  }
  void get(std::vector<float>* P, std::vector<float>* Q) const override {
    *P = P_->download();
    *Q = Q_->download();
  }
  void set(const std::vector<float>& P, const std::vector<float>& Q) override {
    P_->upload(P);
    Q_->upload(Q);
  }

 private:
  RunConfig cfg_;
  std::unique_ptr<DeviceCsr> U_, I_;
  std::unique_ptr<DeviceFactors> P_, Q_;
};

}  // namespace

std::unique_ptr<Store> make_cuda_store() { return std::make_unique<CudaStore>(); }

}  // namespace mascot::als
