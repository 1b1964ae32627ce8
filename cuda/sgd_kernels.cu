// SGD, MPT and evaluation kernels of the CUDA backend (see kernels.h for the work mapping and
// ownership).  The formulas are the host+device ones the CPU backend uses:
//   update (FP32 arithmetic): p' = cp p + ce q, q' = cq q + ce p with cp = 1 - lr lambda_p,
//     cq = 1 - lr lambda_q, ce = lr e (detail/sgd.h); FP16 arithmetic (method fp16): Eq. 2-3
//     literally with every operation rounded to half (here: native half instructions, which
//     round exactly like round_half() of each FP32 operation);
//   stochastic FP16 stores: detail::float_to_half_sr with the CPU's random words
//     (sr_keys/sr_word of cpu/kernels.h, repeated below), so the same rating draws the same bits;
//   q-error sampling: the CPU's hash (cpu::sampled), gradients from the old values
//     (grad p = e q - lambda_p p, no learning rate), group lookup with mascot::lookup_group;
//   MPT: cpu/competing.cc's Mpt::run, per warp instead of per thread (a warp is a Hogwild
//     worker here, with its own loss scale, detail::MptLossScale).
// The dot product is reduced in a different order than on the CPU (lanes of a warp instead
// of 16 vector lanes), so results agree to rounding, not bit for bit.
#include <cuda_fp16.h>

#include <string>

#include "cuda_check.h"
#include "kernels.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/half.h"
#include "mascot/detail/rng.h"
#include "mascot/groups.h"

namespace mascot::cuda {
namespace {

constexpr unsigned kFull = 0xFFFFFFFFu;

// ------------------------------------------------------------------ visiting order

__device__ __forceinline__ uint32_t round_fn(uint32_t x, uint32_t key) {
  x = x * 0x9E3779B1u ^ key;  // lowbias32 of the keyed half
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}

/// A seeded bijection of [0, 2^(2h)): a 4-round balanced Feistel network (h <= 16).
__device__ __forceinline__ uint64_t feistel(uint64_t x, const uint32_t (&key)[4], int h) {
  const uint32_t mask = (h >= 32) ? 0xFFFFFFFFu : ((1u << h) - 1u);
  uint32_t L = static_cast<uint32_t>(x >> h) & mask, R = static_cast<uint32_t>(x) & mask;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const uint32_t nl = R;
    R = L ^ (round_fn(R, key[r]) & mask);
    L = nl;
  }
  return (static_cast<uint64_t>(L) << h) | R;
}

/// Position in recs of the t-th rating visited this epoch.  Shuffle: the Feistel permutation
/// restricted to [0, nnz) by cycle walking (a bijection of [0, nnz): every rating exactly once;
/// the domain is < 4 nnz, so a few steps on average).  Chunk: the CPU Schedule's draws.
__device__ __forceinline__ int64_t task_rating(const SgdArgs& a, int64_t t) {
  if (a.order == DOrder::kChunk) {
    const int64_t d = t / a.chunk_len, off = t - d * a.chunk_len;
    const uint64_t start = detail::hash3(a.chunk_seed, 1, static_cast<uint64_t>(d)) %
                           static_cast<uint64_t>(a.nnz - a.chunk_len + 1);
    return static_cast<int64_t>(start) + off;
  }
  uint64_t x = static_cast<uint64_t>(t);
  do {
    x = feistel(x, a.perm_key, a.perm_half_bits);
  } while (x >= static_cast<uint64_t>(a.nnz));
  return static_cast<int64_t>(x);
}

// ------------------------------------------------------------------ CPU-identical hashes

__device__ __forceinline__ uint64_t rating_key(int32_t u, int32_t i) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(u)) << 32) | static_cast<uint32_t>(i);
}
// cpu/kernels.h sr_keys / sr_word
__device__ __forceinline__ void sr_keys(uint64_t round_seed, int32_t u, int32_t i, uint32_t* hp, uint32_t* hq) {
  const uint64_t h = detail::mix64(round_seed ^ rating_key(u, i));
  *hp = static_cast<uint32_t>(h);
  *hq = static_cast<uint32_t>(h >> 32);
}
__device__ __forceinline__ uint32_t sr_word(uint32_t h, uint32_t j) {
  uint32_t x = h + j * 0x9E3779B9u;
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
// cpu/kernels.h sampled
__device__ __forceinline__ bool sampled(uint64_t seed, uint64_t below, int32_t u, int32_t i) {
  return detail::mix64(seed ^ rating_key(u, i)) < below;
}
// cpu/competing.cc rating_round_key / fill_words / one_word (MPT's stochastic rounding)
__device__ __forceinline__ uint64_t mpt_rating_key(uint64_t epoch_key, int32_t u, int32_t i) {
  return detail::mix64(epoch_key ^ rating_key(u, i));
}
__device__ __forceinline__ uint32_t mpt_word(uint64_t key, uint32_t tag, uint32_t j) {
  return static_cast<uint32_t>(detail::mix64(key + (static_cast<uint64_t>(tag) << 24) + j) >> 32);
}
__device__ __forceinline__ uint32_t mpt_one_word(uint64_t key, uint32_t tag) {
  return static_cast<uint32_t>(detail::mix64(key + (static_cast<uint64_t>(tag) << 24) + 0xFFFFFFull) >> 32);
}

// ------------------------------------------------------------------ warp reductions

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;  // butterfly: every lane holds the same sum (addition is commutative)
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}
__device__ __forceinline__ __half warp_sum_half(__half x) {
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) x = __hadd(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

// ------------------------------------------------------------------ row loads and stores
// Lane `lane` owns elements [lane*E, lane*E + E) of a k = 32E row: contiguous across the warp
// (coalesced), each lane with the widest aligned vector E allows (rows start at multiples of
// 64 bytes because k is a multiple of 32).

template <int E>
__device__ __forceinline__ void load_f32(const float* __restrict__ row, int lane, float (&x)[E]) {
  const float* p = row + lane * E;
  if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) {
      const float4 v = reinterpret_cast<const float4*>(p)[c];
      x[4 * c] = v.x; x[4 * c + 1] = v.y; x[4 * c + 2] = v.z; x[4 * c + 3] = v.w;
    }
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) {
      const float2 v = reinterpret_cast<const float2*>(p)[c];
      x[2 * c] = v.x; x[2 * c + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) x[c] = p[c];
  }
}

template <int E>
__device__ __forceinline__ void store_f32(float* __restrict__ row, int lane, const float (&x)[E]) {
  float* p = row + lane * E;
  if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c)
      reinterpret_cast<float4*>(p)[c] = make_float4(x[4 * c], x[4 * c + 1], x[4 * c + 2], x[4 * c + 3]);
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) reinterpret_cast<float2*>(p)[c] = make_float2(x[2 * c], x[2 * c + 1]);
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) p[c] = x[c];
  }
}

/// Raw FP16 bits of a lane's elements.
template <int E>
__device__ __forceinline__ void load_bits(const uint16_t* __restrict__ row, int lane, uint16_t (&h)[E]) {
  const uint16_t* p = row + lane * E;
  if constexpr (E % 8 == 0) {
#pragma unroll
    for (int c = 0; c < E / 8; ++c) {
      const uint4 v = reinterpret_cast<const uint4*>(p)[c];
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        h[8 * c + 2 * t] = static_cast<uint16_t>(w[t] & 0xFFFFu);
        h[8 * c + 2 * t + 1] = static_cast<uint16_t>(w[t] >> 16);
      }
    }
  } else if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) {
      const uint2 v = reinterpret_cast<const uint2*>(p)[c];
      h[4 * c] = static_cast<uint16_t>(v.x & 0xFFFFu); h[4 * c + 1] = static_cast<uint16_t>(v.x >> 16);
      h[4 * c + 2] = static_cast<uint16_t>(v.y & 0xFFFFu); h[4 * c + 3] = static_cast<uint16_t>(v.y >> 16);
    }
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) {
      const uint32_t v = reinterpret_cast<const uint32_t*>(p)[c];
      h[2 * c] = static_cast<uint16_t>(v & 0xFFFFu); h[2 * c + 1] = static_cast<uint16_t>(v >> 16);
    }
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = p[c];
  }
}

template <int E>
__device__ __forceinline__ void store_bits(uint16_t* __restrict__ row, int lane, const uint16_t (&h)[E]) {
  uint16_t* p = row + lane * E;
  auto pack = [&](int a) { return static_cast<uint32_t>(h[a]) | (static_cast<uint32_t>(h[a + 1]) << 16); };
  if constexpr (E % 8 == 0) {
#pragma unroll
    for (int c = 0; c < E / 8; ++c)
      reinterpret_cast<uint4*>(p)[c] = make_uint4(pack(8 * c), pack(8 * c + 2), pack(8 * c + 4), pack(8 * c + 6));
  } else if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) reinterpret_cast<uint2*>(p)[c] = make_uint2(pack(4 * c), pack(4 * c + 2));
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) reinterpret_cast<uint32_t*>(p)[c] = pack(2 * c);
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) p[c] = h[c];
  }
}

__device__ __forceinline__ float h2f(uint16_t b) { return __half2float(__ushort_as_half(b)); }
__device__ __forceinline__ uint16_t f2h_rn(float x) { return __half_as_ushort(__float2half_rn(x)); }

template <int E>
__device__ __forceinline__ void load_row(const DSide& s, int32_t id, bool f32, int k, int lane, float (&x)[E]) {
  if (f32) {
    load_f32<E>(s.f32 + static_cast<size_t>(id) * k, lane, x);
  } else {
    uint16_t h[E];
    load_bits<E>(s.f16 + static_cast<size_t>(id) * k, lane, h);
#pragma unroll
    for (int c = 0; c < E; ++c) x[c] = h2f(h[c]);
  }
}

/// Stores a row: FP32 as is, FP16 rounded to nearest or stochastically with sr_word(hkey, j)
/// for global element j (the CPU's words).
template <int E>
__device__ __forceinline__ void store_row(const DSide& s, int32_t id, bool f32, int k, int lane, const float (&x)[E],
                                          bool stochastic, uint32_t hkey) {
  if (f32) {
    store_f32<E>(s.f32 + static_cast<size_t>(id) * k, lane, x);
    return;
  }
  uint16_t h[E];
  if (stochastic) {
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = detail::float_to_half_sr(x[c], sr_word(hkey, static_cast<uint32_t>(lane * E + c)));
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = f2h_rn(x[c]);
  }
  store_bits<E>(s.f16 + static_cast<size_t>(id) * k, lane, h);
}

// ------------------------------------------------------------------ group lookup

/// Shared-memory copy of the most-rated groups' boundaries and precision (optimised lookup).
struct HotGroups {
  int32_t start[kHotGroups + 1];
  uint8_t fp32[kHotGroups];
};

/// Every thread of the block must call this (it synchronises).
__device__ __forceinline__ void load_hot(HotGroups& h, const DSide& s) {
  const int n = s.groups < kHotGroups ? s.groups : kHotGroups;
  for (int x = threadIdx.x; x <= n; x += blockDim.x) {
    h.start[x] = s.start[x];
    if (x < n) h.fp32[x] = s.fp32[x];
  }
}

/// Group of relabelled id `id` and whether its rows are FP32.  Optimised (paper §III-D): scan
/// the shared-memory boundaries from group 0, the most-rated, down (most ratings stop after a
/// step or two); ids past the hot groups binary-search the rest in global memory.  Naive:
/// binary search of the whole table and the precision flag in global memory.  Same result
/// (both are mascot::lookup_group).
__device__ __forceinline__ int find_group(const DSide& s, const HotGroups& h, int32_t id, bool naive, bool* f32) {
  int g;
  if (naive) {
    g = lookup_group(s.start, s.groups, id, true);
    *f32 = s.fp32[g] != 0;
    return g;
  }
  const int n = s.groups < kHotGroups ? s.groups : kHotGroups;
  if (n == s.groups || id < h.start[n]) {
    g = lookup_group(h.start, n, id, false);
    *f32 = h.fp32[g] != 0;
  } else {
    g = n + lookup_group(s.start + n, s.groups - n, id, true);
    *f32 = s.fp32[g] != 0;
  }
  return g;
}

/// Adds one sampled gradient (lane's E elements) to group g's accumulators of `slot`.
template <int E>
__device__ __forceinline__ void add_sample(const DSide& s, int slot, int g, int k, int lane, const float (&grad)[E]) {
  double* sum = s.grad_sum + (static_cast<size_t>(slot) * s.groups + g) * k + lane * E;
  float sq = 0.f;
#pragma unroll
  for (int c = 0; c < E; ++c) {
    atomicAdd(sum + c, static_cast<double>(grad[c]));
    sq += grad[c] * grad[c];
  }
  sq = warp_sum(sq);
  if (lane == 0) {
    atomicAdd(s.grad_sq + static_cast<size_t>(slot) * s.groups + g, static_cast<double>(sq));
    atomicAdd(s.grad_n + static_cast<size_t>(slot) * s.groups + g, 1ull);
  }
}

// ------------------------------------------------------------------ SGD (FP32 arithmetic)

template <int E>
__global__ void __launch_bounds__(kThreads) sgd_kernel(const SgdArgs a) {
  __shared__ HotGroups hu, hi;
  const bool mixed = a.store == Store::kMixed;
  if (mixed && !a.naive) {  // block-uniform condition: every thread reaches the barrier
    load_hot(hu, a.U);
    load_hot(hi, a.I);
    __syncthreads();
  }
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int slot = static_cast<int>(blockIdx.x % static_cast<unsigned>(a.slots));
  const bool all32 = a.store == Store::kF32;
  const float cp = 1.0f - a.lr * a.lambda_p, cq = 1.0f - a.lr * a.lambda_q;

  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    // phase 1: lane l fetches rating base + l (record, groups, precision, sampling)
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    int gu = 0, gi = 0, flags = 0;  // bit 0: p FP32, bit 1: q FP32, bit 2: sampled
    if (t < a.tasks) {
      rc = a.recs[task_rating(a, t)];
      if (mixed) {
        bool fu = false, fi = false;
        gu = find_group(a.U, hu, rc.u, a.naive, &fu);
        gi = find_group(a.I, hi, rc.i, a.naive, &fi);
        flags = (fu ? 1 : 0) | (fi ? 2 : 0);
        if (a.measure && sampled(a.sample_seed, a.sample_below, rc.u, rc.i)) flags |= 4;
      } else if (all32) {
        flags = 3;
      }
    }
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    // phase 2: the warp updates the ratings one after another (warp-uniform control flow)
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      const int f = __shfl_sync(kFull, flags, j);
      const bool fu = f & 1, fi = f & 2;
      float p[E], q[E];
      load_row<E>(a.U, u, fu, k, lane, p);
      load_row<E>(a.I, i, fi, k, lane, q);
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part += p[c] * q[c];
      const float e = r - warp_sum(part);
      if (f & 4) {  // q-error sample: gradients from the old values (Eq. 4, no learning rate)
        const int gu_j = __shfl_sync(kFull, gu, j), gi_j = __shfl_sync(kFull, gi, j);
        float g[E];
#pragma unroll
        for (int c = 0; c < E; ++c) g[c] = e * q[c] - a.lambda_p * p[c];
        add_sample<E>(a.U, slot, gu_j, k, lane, g);
#pragma unroll
        for (int c = 0; c < E; ++c) g[c] = e * p[c] - a.lambda_q * q[c];
        add_sample<E>(a.I, slot, gi_j, k, lane, g);
      }
      const float ce = a.lr * e;
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const float pc = p[c], qc = q[c];
        p[c] = cp * pc + ce * qc;
        q[c] = cq * qc + ce * pc;
      }
      uint32_t hp = 0, hq = 0;
      if (a.stochastic) sr_keys(a.round_seed, u, i, &hp, &hq);
      store_row<E>(a.U, u, fu, k, lane, p, a.stochastic, hp);
      store_row<E>(a.I, i, fi, k, lane, q, a.stochastic, hq);
    }
  }
}

// ------------------------------------------------------------------ SGD (FP16 arithmetic, method fp16)

template <int E>
__global__ void __launch_bounds__(kThreads) sgd_half_kernel(const SgdArgs a) {
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const __half lr = __float2half_rn(a.lr), lp = __float2half_rn(a.lambda_p), lq = __float2half_rn(a.lambda_q);
  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    if (t < a.tasks) rc = a.recs[task_rating(a, t)];
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      uint16_t pb[E], qb[E];
      uint16_t* prow = a.U.f16 + static_cast<size_t>(u) * k;
      uint16_t* qrow = a.I.f16 + static_cast<size_t>(i) * k;
      load_bits<E>(prow, lane, pb);
      load_bits<E>(qrow, lane, qb);
      __half acc = __ushort_as_half(0);
#pragma unroll
      for (int c = 0; c < E; ++c) acc = __hadd(acc, __hmul(__ushort_as_half(pb[c]), __ushort_as_half(qb[c])));
      const __half e = __hsub(__float2half_rn(r), warp_sum_half(acc));
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const __half pj = __ushort_as_half(pb[c]), qj = __ushort_as_half(qb[c]);
        const __half gp = __hsub(__hmul(e, qj), __hmul(lp, pj));
        const __half gq = __hsub(__hmul(e, pj), __hmul(lq, qj));
        pb[c] = __half_as_ushort(__hadd(pj, __hmul(lr, gp)));
        qb[c] = __half_as_ushort(__hadd(qj, __hmul(lr, gq)));
      }
      store_bits<E>(prow, lane, pb);
      store_bits<E>(qrow, lane, qb);
    }
  }
}

// ------------------------------------------------------------------ MPT (cpu/competing.cc Mpt::run)

template <int E, bool SR>
__global__ void __launch_bounds__(kThreads) mpt_kernel(const SgdArgs a) {
  constexpr int k = 32 * E;
  constexpr float kHalfMax = 65504.0f;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  detail::MptLossScale ls;  // this warp's worker state; every lane keeps an identical copy
  ls.init(a.mpt_scale[warp], a.mpt_dynamic, a.mpt_window);
  ls.clean = a.mpt_clean[warp];
  unsigned long long updates = 0, skipped = 0;
  const float lr = a.lr, lpr = a.lambda_p, lqr = a.lambda_q;
  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    if (t < a.tasks) rc = a.recs[task_rating(a, t)];
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      float* prow = a.U.f32 + static_cast<size_t>(u) * k;
      float* qrow = a.I.f32 + static_cast<size_t>(i) * k;
      float p[E], q[E], ph[E], qh[E];
      load_f32<E>(prow, lane, p);
      load_f32<E>(qrow, lane, q);
      const uint64_t key = SR ? mpt_rating_key(a.mpt_epoch_key, u, i) : 0;
      // FP16 copies of the FP32 masters
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(lane * E + c);
        ph[c] = SR ? detail::half_sr_value(p[c], mpt_word(key, 1, jj)) : detail::half_rn_value(p[c]);
        qh[c] = SR ? detail::half_sr_value(q[c], mpt_word(key, 2, jj)) : detail::half_rn_value(q[c]);
      }
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part += ph[c] * qh[c];
      const float dot = warp_sum(part);
      const float rhat = SR ? detail::half_sr_value(dot, mpt_one_word(key, 3)) : detail::half_rn_value(dot);
      const float e = r - rhat;
      const float S = ls.scale;
      const float se = SR ? detail::half_sr_value(S * e, mpt_one_word(key, 4)) : detail::half_rn_value(S * e);
      float gp[E], gq[E];
      bool bad = false;
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(lane * E + c);
        gp[c] = SR ? detail::half_sr_value(se * qh[c], mpt_word(key, 5, jj)) : detail::half_rn_value(se * qh[c]);
        gq[c] = SR ? detail::half_sr_value(se * ph[c], mpt_word(key, 6, jj)) : detail::half_rn_value(se * ph[c]);
        bad = bad || !(fabsf(gp[c]) <= kHalfMax) || !(fabsf(gq[c]) <= kHalfMax);
      }
      bool overflow = !(fabsf(se) <= kHalfMax) || __any_sync(kFull, bad);
      if (SR) {
        float mq = 0.f, mp = 0.f;
#pragma unroll
        for (int c = 0; c < E; ++c) {
          mq = fmaxf(mq, fabsf(qh[c]));
          mp = fmaxf(mp, fabsf(ph[c]));
        }
        mq = warp_max(mq);
        mp = warp_max(mp);
        overflow = overflow || !(fabsf(S * e) < 65520.0f) || !(fabsf(se) * mq < 65520.0f) ||
                   !(fabsf(se) * mp < 65520.0f);
      }
      ++updates;
      if (!ls.step(overflow)) {  // identical inputs in every lane: identical decisions
        ++skipped;
        continue;
      }
      const float inv = 1.0f / S;
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const float pj = p[c], qj = q[c];
        p[c] = pj + lr * (gp[c] * inv - lpr * pj);
        q[c] = qj + lr * (gq[c] * inv - lqr * qj);
      }
      store_f32<E>(prow, lane, p);
      store_f32<E>(qrow, lane, q);
    }
  }
  if (lane == 0) {
    a.mpt_scale[warp] = ls.scale;
    a.mpt_clean[warp] = ls.clean;
    atomicAdd(a.mpt_counts, updates);
    atomicAdd(a.mpt_counts + 1, skipped);
  }
}

// ------------------------------------------------------------------ MuPPET (cpu/competing.cc Muppet)

template <int E>
__device__ __forceinline__ float lane_max_abs(const float (&x)[E]) {
  float m = 0.f;
#pragma unroll
  for (int c = 0; c < E; ++c) m = fmaxf(m, fabsf(x[c]));
  return m;
}

/// Muppet::run_fixed (word length a.mu_word_length > 0) or run_fp32 (== 0) per warp: a warp is
/// a worker with its own P and Q scales, lowered as soon as a row outgrows them.  Warps
/// 0..mu_batch_warps-1 record the gradient of their last rating: together the epoch's last
/// mini-batch (the CPU records each thread's last ceil(batch / threads) ratings).
template <int E>
__global__ void __launch_bounds__(kThreads) muppet_kernel(const SgdArgs a) {
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int wl = a.mu_word_length;
  const float lr = a.lr, lp = a.lambda_p, lq = a.lambda_q;
  const bool SR = a.stochastic;
  detail::FixedFormat fp{}, fq{};
  float fmax_p = 0.f, fmax_q = 0.f;
  if (wl > 0) {
    fp = detail::make_fixed_format(a.mu_frac[2 * warp], wl);
    fq = detail::make_fixed_format(a.mu_frac[2 * warp + 1], wl);
    fmax_p = fp.hi * fp.inv_scale;
    fmax_q = fq.hi * fq.inv_scale;
  }
  unsigned long long rescales = 0;
  float lgp[E], lgq[E];
  bool have = false;
  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    if (t < a.tasks) rc = a.recs[task_rating(a, t)];
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      float* prow = a.U.f32 + static_cast<size_t>(u) * k;
      float* qrow = a.I.f32 + static_cast<size_t>(i) * k;
      float p[E], q[E];
      load_f32<E>(prow, lane, p);
      load_f32<E>(qrow, lane, q);
      if (wl == 0) {  // FP32 level: Eq. 2-3
        float part = 0.f;
#pragma unroll
        for (int c = 0; c < E; ++c) part += p[c] * q[c];
        const float e = r - warp_sum(part);
#pragma unroll
        for (int c = 0; c < E; ++c) {
          const float pj = p[c], qj = q[c];
          p[c] = pj + lr * (e * qj - lp * pj);
          q[c] = qj + lr * (e * pj - lq * qj);
        }
      } else {
        const uint64_t key = SR ? mpt_rating_key(a.mpt_epoch_key, u, i) : 0;
        const float mp = warp_max(lane_max_abs<E>(p)), mq = warp_max(lane_max_abs<E>(q));
        if (mp > fmax_p) {
          fp = detail::make_fixed_format(detail::fixed_frac_bits(mp, wl), wl);
          fmax_p = fp.hi * fp.inv_scale;
          ++rescales;
        }
        if (mq > fmax_q) {
          fq = detail::make_fixed_format(detail::fixed_frac_bits(mq, wl), wl);
          fmax_q = fq.hi * fq.inv_scale;
          ++rescales;
        }
        float ph[E], qh[E];
#pragma unroll
        for (int c = 0; c < E; ++c) {
          const uint32_t jj = static_cast<uint32_t>(lane * E + c);
          ph[c] = SR ? detail::fixed_round_sr(p[c], fp, mpt_word(key, 1, jj)) : detail::fixed_round_rn(p[c], fp);
          qh[c] = SR ? detail::fixed_round_sr(q[c], fq, mpt_word(key, 2, jj)) : detail::fixed_round_rn(q[c], fq);
        }
        float part = 0.f;
#pragma unroll
        for (int c = 0; c < E; ++c) part += ph[c] * qh[c];
        const float e = r - warp_sum(part);
        const detail::FixedFormat fe = detail::make_fixed_format(detail::fixed_frac_bits(fabsf(e), wl), wl);
        const float eh = SR ? detail::fixed_round_sr(e, fe, mpt_one_word(key, 3)) : detail::fixed_round_rn(e, fe);
        const float ae = fabsf(eh);
        const float mqh = warp_max(lane_max_abs<E>(qh)), mph = warp_max(lane_max_abs<E>(ph));
        const detail::FixedFormat fgp = detail::make_fixed_format(detail::fixed_frac_bits(ae * mqh, wl), wl);
        const detail::FixedFormat fgq = detail::make_fixed_format(detail::fixed_frac_bits(ae * mph, wl), wl);
#pragma unroll
        for (int c = 0; c < E; ++c) {
          const uint32_t jj = static_cast<uint32_t>(lane * E + c);
          const float gp = (SR ? detail::fixed_round_sr(eh * qh[c], fgp, mpt_word(key, 4, jj))
                               : detail::fixed_round_rn(eh * qh[c], fgp)) - lp * ph[c];
          const float gq = (SR ? detail::fixed_round_sr(eh * ph[c], fgq, mpt_word(key, 5, jj))
                               : detail::fixed_round_rn(eh * ph[c], fgq)) - lq * qh[c];
          p[c] += lr * gp;
          q[c] += lr * gq;
          lgp[c] = gp;
          lgq[c] = gq;
        }
        have = true;
      }
      store_f32<E>(prow, lane, p);
      store_f32<E>(qrow, lane, q);
    }
  }
  if (wl > 0) {
    if (have && warp < a.mu_batch_warps) {
      store_f32<E>(a.mu_batch + static_cast<size_t>(warp) * 2 * k, lane, lgp);
      store_f32<E>(a.mu_batch + static_cast<size_t>(warp) * 2 * k + k, lane, lgq);
      if (lane == 0) a.mu_batch_n[warp] = 1;
    }
    if (lane == 0) {
      a.mu_frac[2 * warp] = fp.frac_bits;
      a.mu_frac[2 * warp + 1] = fq.frac_bits;
      if (rescales) atomicAdd(a.mu_rescales, rescales);
    }
  }
}

// ------------------------------------------------------------------ AFP (cpu/competing.cc Afp)

/// Afp::reevaluate for tensor t of warp state w (every lane holds an identical copy of w; the
/// data are the lanes' E (+E) elements of the iteration).
template <int E>
__device__ __forceinline__ void afp_reevaluate(AfpWarp& w, int t, const float (&d0)[E], const float* d1, float range,
                                               bool saturated, const SgdArgs& a) {
  detail::AfpTensorState& st = w.st[t];
  AfpStats& s = w.stats[t];
  auto error_at = [&](const detail::FixedFormat& f) {  // nearest rounding: the format's error
    float sa = 0.f, sq = 0.f;
#pragma unroll
    for (int c = 0; c < E; ++c) {
      sa += fabsf(d0[c]);
      sq += fabsf(detail::fixed_round_rn(d0[c], f));
      if (d1) {
        sa += fabsf(d1[c]);
        sq += fabsf(detail::fixed_round_rn(d1[c], f));
      }
    }
    return detail::afp_quant_error(static_cast<double>(warp_sum(sa)), static_cast<double>(warp_sum(sq)));
  };
  st.pos = detail::afp_point_position(range, st.bits);
  detail::FixedFormat f = detail::make_fixed_format(-st.pos, st.bits);
  double err = error_at(f);
  if (detail::afp_needs_more_bits(err, a.afp_error_threshold, st.bits, a.afp_high_bits)) {
    st.bits = a.afp_high_bits;
    ++s.to_high;
    st.pos = detail::afp_point_position(range, st.bits);
    f = detail::make_fixed_format(-st.pos, st.bits);
    err = error_at(f);
  }
  detail::afp_set_interval(st, err, a.afp_alpha, a.afp_beta, a.afp_gamma, a.afp_delta, w.iter);
  w.fmt[t] = f;
  w.fmax[t] = f.hi * f.inv_scale;
  ++s.evals;
  s.saturated += saturated ? 1 : 0;
  s.err_sum += err;
  s.err_max = err > s.err_max ? err : s.err_max;
  s.itv_sum += static_cast<double>(st.interval);
  s.itv_max = st.interval > s.itv_max ? st.interval : s.itv_max;
}

template <int E>
__global__ void __launch_bounds__(kThreads) afp_kernel(const SgdArgs a) {
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const float lr = a.lr, lp = a.lambda_p, lq = a.lambda_q;
  const bool SR = a.stochastic;
  AfpWarp w = a.afp[warp];  // this worker's state; identical copies in every lane
  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    if (t < a.tasks) rc = a.recs[task_rating(a, t)];
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      float* prow = a.U.f32 + static_cast<size_t>(u) * k;
      float* qrow = a.I.f32 + static_cast<size_t>(i) * k;
      float p[E], q[E];
      load_f32<E>(prow, lane, p);
      load_f32<E>(qrow, lane, q);
      const uint64_t key = SR ? mpt_rating_key(a.mpt_epoch_key, u, i) : 0;
      w.run_max[0] = fmaxf(w.run_max[0], warp_max(lane_max_abs<E>(p)));
      w.run_max[1] = fmaxf(w.run_max[1], warp_max(lane_max_abs<E>(q)));
      const float range_p = fmaxf(a.afp_max_p, w.run_max[0]), range_q = fmaxf(a.afp_max_q, w.run_max[1]);
      if (w.iter >= w.st[0].next || range_p > w.fmax[0])
        afp_reevaluate<E>(w, 0, p, nullptr, range_p, w.iter < w.st[0].next, a);
      if (w.iter >= w.st[1].next || range_q > w.fmax[1])
        afp_reevaluate<E>(w, 1, q, nullptr, range_q, w.iter < w.st[1].next, a);
      float ph[E], qh[E];
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(lane * E + c);
        ph[c] = SR ? detail::fixed_round_sr(p[c], w.fmt[0], mpt_word(key, 1, jj)) : detail::fixed_round_rn(p[c], w.fmt[0]);
        qh[c] = SR ? detail::fixed_round_sr(q[c], w.fmt[1], mpt_word(key, 2, jj)) : detail::fixed_round_rn(q[c], w.fmt[1]);
      }
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part += ph[c] * qh[c];
      const float e = r - warp_sum(part);
      float gp[E], gq[E];
      float mg = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) {
        gp[c] = e * qh[c] - lp * ph[c];
        gq[c] = e * ph[c] - lq * qh[c];
        mg = fmaxf(mg, fmaxf(fabsf(gp[c]), fabsf(gq[c])));
      }
      const float range_g = warp_max(mg);
      if (w.iter >= w.st[2].next || range_g > w.fmax[2])
        afp_reevaluate<E>(w, 2, gp, gq, range_g, w.iter < w.st[2].next, a);
      const detail::FixedFormat fg = w.fmt[2];
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(lane * E + c);
        const float g0 = SR ? detail::fixed_round_sr(gp[c], fg, mpt_word(key, 3, jj)) : detail::fixed_round_rn(gp[c], fg);
        const float g1 = SR ? detail::fixed_round_sr(gq[c], fg, mpt_word(key, 4, jj)) : detail::fixed_round_rn(gq[c], fg);
        p[c] += lr * g0;
        q[c] += lr * g1;
      }
      store_f32<E>(prow, lane, p);
      store_f32<E>(qrow, lane, q);
      ++w.iter;
    }
  }
  if (lane == 0) a.afp[warp] = w;
}

/// Block max of |x| into *out (float bits; non-negative floats order like their bits).
__global__ void max_abs_kernel(const float* __restrict__ x, int64_t n, unsigned int* out) {
  float m = 0.f;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(x[t]));  // fmaxf drops a NaN operand, as max_abs16's compare does
  m = warp_max(m);
  if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
}

// ------------------------------------------------------------------ evaluation

template <int E>
__global__ void __launch_bounds__(kThreads) sse_kernel(const DRec* __restrict__ recs, int64_t n, const DSide U,
                                                       const DSide I, Store store, bool naive, double* partial) {
  __shared__ HotGroups hu, hi;
  __shared__ double warp_se[kThreads / 32];
  const bool mixed = store == Store::kMixed;
  if (mixed && !naive) {
    load_hot(hu, U);
    load_hot(hi, I);
    __syncthreads();
  }
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  double se = 0;  // lane 0's sum for this warp
  for (int64_t base = warp * 32; base < n; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    int flags = store == Store::kF32 ? 3 : 0;
    if (t < n) {
      rc = recs[t];
      if (mixed) {
        bool fu = false, fi = false;
        find_group(U, hu, rc.u, naive, &fu);
        find_group(I, hi, rc.i, naive, &fi);
        flags = (fu ? 1 : 0) | (fi ? 2 : 0);
      }
    }
    const int nv = n - base < 32 ? static_cast<int>(n - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      const int f = __shfl_sync(kFull, flags, j);
      float p[E], q[E];
      load_row<E>(U, u, f & 1, k, lane, p);
      load_row<E>(I, i, f & 2, k, lane, q);
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part += p[c] * q[c];
      const double e = static_cast<double>(r) - static_cast<double>(warp_sum(part));
      se += e * e;
    }
  }
  if (lane == 0) warp_se[threadIdx.x >> 5] = se;
  __syncthreads();
  if (threadIdx.x == 0) {  // fixed order: deterministic
    double s = 0;
    for (int w = 0; w < kThreads / 32; ++w) s += warp_se[w];
    partial[blockIdx.x] = s;
  }
}

// ------------------------------------------------------------------ q-error test hook

/// Feeds given gradients (n x k) through add_sample, as the SGD kernel does for sampled
/// ratings: one warp per gradient, block b adds into slot b % slots.
template <int E>
__global__ void __launch_bounds__(kThreads) accumulate_kernel(const float* grads, const int32_t* group, int64_t n,
                                                              const DSide s, int slots) {
  constexpr int k = 32 * E;
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int slot = static_cast<int>(blockIdx.x % static_cast<unsigned>(slots));
  for (int64_t t = warp; t < n; t += nwarps) {  // warp-uniform loop
    float g[E];
    load_f32<E>(grads + t * k, lane, g);
    add_sample<E>(s, slot, group[t], k, lane, g);
  }
}

// ------------------------------------------------------------------ dispatch on k / 32

template <template <int> class F, class... Args>
void dispatch_e(int k, Args&&... args) {
  if (!supported_k(k))
    throw_invalid("k must be a multiple of 32 between 32 and 512 on the cuda device (got " + std::to_string(k) +
                  "); use --device cpu for other k");
  switch (k / 32) {
    case 1: F<1>::run(args...); break;
    case 2: F<2>::run(args...); break;
    case 3: F<3>::run(args...); break;
    case 4: F<4>::run(args...); break;
    case 5: F<5>::run(args...); break;
    case 6: F<6>::run(args...); break;
    case 7: F<7>::run(args...); break;
    case 8: F<8>::run(args...); break;
    case 9: F<9>::run(args...); break;
    case 10: F<10>::run(args...); break;
    case 11: F<11>::run(args...); break;
    case 12: F<12>::run(args...); break;
    case 13: F<13>::run(args...); break;
    case 14: F<14>::run(args...); break;
    case 15: F<15>::run(args...); break;
    default: F<16>::run(args...); break;
  }
}

template <int E>
struct SgdLaunch {
  static void run(const SgdArgs& a, bool half_math, int blocks) {
    if (half_math) sgd_half_kernel<E><<<blocks, kThreads>>>(a);
    else sgd_kernel<E><<<blocks, kThreads>>>(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct MptLaunch {
  static void run(const SgdArgs& a, int blocks) {
    if (a.stochastic) mpt_kernel<E, true><<<blocks, kThreads>>>(a);
    else mpt_kernel<E, false><<<blocks, kThreads>>>(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct SseLaunch {
  static void run(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive,
                  double* partial, int blocks) {
    sse_kernel<E><<<blocks, kThreads>>>(recs, n, U, I, store, naive, partial);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};

template <int E>
struct MuppetLaunch {
  static void run(const SgdArgs& a, int blocks) {
    muppet_kernel<E><<<blocks, kThreads>>>(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct AfpLaunch {
  static void run(const SgdArgs& a, int blocks) {
    afp_kernel<E><<<blocks, kThreads>>>(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct CompetingOccupancy {
  static void run(int* out, int which) {
    MASCOT_CUDA_CHECK(which == 0 ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, muppet_kernel<E>, kThreads, 0)
                                 : cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, afp_kernel<E>, kThreads, 0));
  }
};
template <int E>
struct AccLaunch {
  static void run(const float* grads, const int32_t* group, int64_t n, const DSide& s, int slots, int blocks) {
    accumulate_kernel<E><<<blocks, kThreads>>>(grads, group, n, s, slots);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};

/// Resident blocks per SM of one instantiation (the grid is sized to fill the device once).
template <int E>
struct Occupancy {
  static void run(int* out, int which, bool flag) {
    cudaError_t err;
    if (which == 0) err = flag ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, sgd_half_kernel<E>, kThreads, 0)
                               : cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, sgd_kernel<E>, kThreads, 0);
    else err = flag ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, mpt_kernel<E, true>, kThreads, 0)
                    : cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, mpt_kernel<E, false>, kThreads, 0);
    MASCOT_CUDA_CHECK(err);
  }
};

}  // namespace

int blocks_per_sm(int k, bool mpt, bool flag) {
  int n = 1;
  dispatch_e<Occupancy>(k, &n, mpt ? 1 : 0, flag);
  return n < 1 ? 1 : n;
}

void launch_sgd(const SgdArgs& a, bool half_math, int blocks) { dispatch_e<SgdLaunch>(a.k, a, half_math, blocks); }
void launch_mpt(const SgdArgs& a, int blocks) { dispatch_e<MptLaunch>(a.k, a, blocks); }
void launch_muppet(const SgdArgs& a, int blocks) { dispatch_e<MuppetLaunch>(a.k, a, blocks); }
void launch_afp(const SgdArgs& a, int blocks) { dispatch_e<AfpLaunch>(a.k, a, blocks); }
int competing_blocks_per_sm(int k, int which) {
  int n = 1;
  dispatch_e<CompetingOccupancy>(k, &n, which);
  return n < 1 ? 1 : n;
}
void launch_max_abs(const float* x, int64_t n, unsigned int* out) {
  if (n <= 0) return;
  int sms = 1, dev = 0;
  MASCOT_CUDA_CHECK(cudaGetDevice(&dev));
  MASCOT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t want = (n + 255) / 256;
  const int blocks = static_cast<int>(want < 4LL * sms ? want : 4LL * sms);
  max_abs_kernel<<<blocks, 256>>>(x, n, out);
  MASCOT_CUDA_CHECK_LAUNCH();
}
void launch_sse(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive, int k,
                double* partial, int blocks) {
  dispatch_e<SseLaunch>(k, recs, n, U, I, store, naive, partial, blocks);
}

void launch_accumulate(const float* grads, const int32_t* group, int64_t n, const DSide& s, int k, int slots,
                       int blocks) {
  dispatch_e<AccLaunch>(k, grads, group, n, s, slots, blocks);
}

}  // namespace mascot::cuda
