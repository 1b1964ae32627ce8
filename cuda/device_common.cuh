// Device-side helpers shared by the CUDA kernel files (sgd_kernels.cu, competing_kernels.cu):
// the visiting order, the CPU-identical hashes, warp reductions, coalesced row loads/stores,
// the group lookup, q-error accumulation and the dispatch on k / 32.  Internal to cuda/; each
// including .cu file gets its own copies (anonymous namespace, whole-program compilation).
// See kernels.h for the work mapping and sgd_kernels.cu for the formulas.
#pragma once
#include <cuda_fp16.h>

#include <string>

#include "cuda_check.h"
#include "kernels.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/half.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/sgd.h"
#include "mascot/groups.h"

namespace mascot::cuda {
namespace {


constexpr unsigned kFull = 0xFFFFFFFFu;

// ------------------------------------------------------------------ visiting order

__device__ __forceinline__ uint32_t round_fn(uint32_t x, uint32_t key) {
  return detail::lowbias32(x * 0x9E3779B1u ^ key);  // lowbias32 of the keyed half
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

/// This thread's lane, its warp's index in the grid, and the grid's number of warps.
__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }
__device__ __forceinline__ int64_t warp_id() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
}
__device__ __forceinline__ int64_t warp_count() { return (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5; }

/// The task loop of the one-warp-per-rating kernels (single storage and competing methods):
/// the warp fetches 32 tasks at a time (lane l the record of task base + l, so the index work is
/// spread over the lanes), then calls body(u, i, r) for them one after another with all 32
/// lanes: warp-uniform control flow, and a `return` in the body moves on to the next rating.
/// (The per-group kernel, sgd_kernel, also looks up groups in the fetch phase: its own loop.)
template <class Body>
__device__ __forceinline__ void for_each_warp_rating(const SgdArgs& a, Body&& body) {
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    if (t < a.tasks) rc = a.recs[task_rating(a, t)];
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      body(u, i, r);
    }
  }
}

// The per-rating random words (stochastic rounding, q-error sampling) are detail/rng.h's, the
// CPU backend's own: detail::sr_keys / sr_word / sampled / rating_round_key / round_word.

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
// Rows that a kernel updates are loaded with __ldcg (cached in L2 only): an SM's L1 is not
// coherent with other SMs' stores during a kernel (PTX ISA memory consistency), so a plain,
// L1-cached load of a hot row could keep returning that SM's stale copy for the whole epoch
// while other SMs update it.  Hogwild tolerates a race, not a private copy per SM.  Random
// rows gain nothing from L1 anyway; hot rows still hit in L2.

template <int E>
__device__ __forceinline__ void load_f32(const float* __restrict__ row, int lane, float (&x)[E]) {
  const float* p = row + lane * E;
  if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(p) + c);
      x[4 * c] = v.x; x[4 * c + 1] = v.y; x[4 * c + 2] = v.z; x[4 * c + 3] = v.w;
    }
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) {
      const float2 v = __ldcg(reinterpret_cast<const float2*>(p) + c);
      x[2 * c] = v.x; x[2 * c + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) x[c] = __ldcg(p + c);
  }
}

/// for_each_warp_rating over FP32 rows (the competing methods' FP32 masters):
/// body(u, i, r, prow, qrow, p, q) with each lane's E elements of both rows loaded into p and q.
template <int E, class Body>
__device__ __forceinline__ void for_each_warp_rating_f32(const SgdArgs& a, Body&& body) {
  constexpr int k = 32 * E;
  const int lane = lane_id();
  for_each_warp_rating(a, [&](int32_t u, int32_t i, float r) {
    float* prow = a.U.f32 + static_cast<size_t>(u) * k;
    float* qrow = a.I.f32 + static_cast<size_t>(i) * k;
    float p[E], q[E];
    load_f32<E>(prow, lane, p);
    load_f32<E>(qrow, lane, q);
    body(u, i, r, prow, qrow, p, q);
  });
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
      const uint4 v = __ldcg(reinterpret_cast<const uint4*>(p) + c);
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
      const uint2 v = __ldcg(reinterpret_cast<const uint2*>(p) + c);
      h[4 * c] = static_cast<uint16_t>(v.x & 0xFFFFu); h[4 * c + 1] = static_cast<uint16_t>(v.x >> 16);
      h[4 * c + 2] = static_cast<uint16_t>(v.y & 0xFFFFu); h[4 * c + 3] = static_cast<uint16_t>(v.y >> 16);
    }
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) {
      const uint32_t v = __ldcg(reinterpret_cast<const unsigned int*>(p) + c);
      h[2 * c] = static_cast<uint16_t>(v & 0xFFFFu); h[2 * c + 1] = static_cast<uint16_t>(v >> 16);
    }
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = __ldcg(reinterpret_cast<const unsigned short*>(p) + c);
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

/// The `rnd` policy of detail/sgd.h's FP16-arithmetic steps on __half: none, every __half
/// operation already rounds to nearest half (as round_half() of the FP32 operation).
struct NativeHalf {
  __device__ __forceinline__ __half operator()(__half x) const { return x; }
};

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
    for (int c = 0; c < E; ++c)
      h[c] = detail::float_to_half_sr(x[c], detail::sr_word(hkey, static_cast<uint32_t>(lane * E + c)));
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = f2h_rn(x[c]);
  }
  store_bits<E>(s.f16 + static_cast<size_t>(id) * k, lane, h);
}

// ------------------------------------------------------------------ merging writes (Hogwild "add")
// SgdArgs::merge: a kernel writes a row it updated as a reduction in L2 (PTX red.add, no value
// returned, nothing waits) of the change new - old, instead of storing the new value.  Why:
// with thousands of warps in flight, the most-rated rows see many concurrent
// read-modify-writes, and with stores all but the last are lost (detail/hogwild.h).  With
// reductions every change lands; a concurrent update only reads a stale row.  With no
// concurrent update the result is the store's, bit for bit, whenever new - old is exact:
// always when new and old are within a factor of 2 of each other (Sterbenz), i.e. for all but
// large relative steps such as a sign change.  Hardware rounding: f32 adds round to nearest
// with subnormals flushed (.ftz is implied for f32 red; values below 1.2e-38 do not occur in
// a trained model), f16 adds round to nearest with subnormals kept (.noftz).
// Vector forms (16 or 8 bytes per lane) need sm_90; sm_80 issues one red per 32-bit word.
// One deviation from the store: where new - old is not exact (a value crossing zero, or
// shrinking by more than half), the change is rounded at its own scale, so the row ends within
// half an ulp of the change of the store's value (FP16: up to ~2e-6 at k = 64 in the first
// epoch), deterministically rather than as the stochastic rounding drew.

// MASCOT_SM90: the sm_90 code paths (vector reductions).  On the CPU emulator the emulated
// architecture decides (MASCOT_CUDA_EMU_ARCH, CMake; default 90, like the H100 and H200), so
// the emulator runs these paths too, with their alignment requirements checked.
#if defined(MASCOT_CUDA_EMU)
#define MASCOT_SM90 (MASCOT_CUDA_EMU_ARCH >= 900)
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MASCOT_SM90 1
#else
#define MASCOT_SM90 0
#endif

__device__ __forceinline__ void red_f32(float* p, float a) {
#ifdef MASCOT_CUDA_EMU
  ::mascot_emu::red_add_f32(p, a);
#else
  asm volatile("red.global.add.f32 [%0], %1;" ::"l"(p), "f"(a) : "memory");
#endif
}
__device__ __forceinline__ void red_f32x2(float* p, float a, float b) {
#if MASCOT_SM90 && defined(MASCOT_CUDA_EMU)
  const float v[2] = {a, b};
  ::mascot_emu::red_add_vector(p, v, 2, "red.global.add.v2.f32");
#elif MASCOT_SM90
  asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(p), "f"(a), "f"(b) : "memory");
#else
  red_f32(p, a);
  red_f32(p + 1, b);
#endif
}
__device__ __forceinline__ void red_f32x4(float* p, float a, float b, float c, float d) {
#if MASCOT_SM90 && defined(MASCOT_CUDA_EMU)
  const float v[4] = {a, b, c, d};
  ::mascot_emu::red_add_vector(p, v, 4, "red.global.add.v4.f32");
#elif MASCOT_SM90
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
#else
  red_f32x2(p, a, b);
  red_f32x2(p + 2, c, d);
#endif
}
/// Adds lane's E floats x to row[lane*E ..] (merge mode of store_f32).
template <int E>
__device__ __forceinline__ void red_add_f32(float* __restrict__ row, int lane, const float (&x)[E]) {
  float* p = row + lane * E;
  if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) red_f32x4(p + 4 * c, x[4 * c], x[4 * c + 1], x[4 * c + 2], x[4 * c + 3]);
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) red_f32x2(p + 2 * c, x[2 * c], x[2 * c + 1]);
  } else {
#pragma unroll
    for (int c = 0; c < E; ++c) red_f32(p + c, x[c]);
  }
}
__device__ __forceinline__ void red_h2(uint16_t* p, uint32_t a) {  // two halves, 4-byte aligned
#ifdef MASCOT_CUDA_EMU
  ::mascot_emu::red_add_f16x2(p, a);
#else
  asm volatile("red.global.add.noftz.f16x2 [%0], %1;" ::"l"(p), "r"(a) : "memory");
#endif
}
// two and four f16x2 words (8 and 16 bytes, aligned): one vector reduction on sm_90, else one per word
__device__ __forceinline__ void red_h2x2(uint16_t* p, uint32_t a, uint32_t b) {
#if MASCOT_SM90 && defined(MASCOT_CUDA_EMU)
  const uint32_t v[2] = {a, b};
  ::mascot_emu::red_add_f16x2_vector(p, v, 2, "red.global.add.noftz.v2.f16x2");
#elif MASCOT_SM90
  asm volatile("red.global.add.noftz.v2.f16x2 [%0], {%1, %2};" ::"l"(p), "r"(a), "r"(b) : "memory");
#else
  red_h2(p, a);
  red_h2(p + 2, b);
#endif
}
__device__ __forceinline__ void red_h2x4(uint16_t* p, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
#if MASCOT_SM90 && defined(MASCOT_CUDA_EMU)
  const uint32_t v[4] = {a, b, c, d};
  ::mascot_emu::red_add_f16x2_vector(p, v, 4, "red.global.add.noftz.v4.f16x2");
#elif MASCOT_SM90
  asm volatile("red.global.add.noftz.v4.f16x2 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(a), "r"(b), "r"(c), "r"(d)
               : "memory");
#else
  red_h2x2(p, a, b);
  red_h2x2(p + 4, c, d);
#endif
}
/// Adds lane's E halves (bits h) to row[lane*E ..] (merge mode of store_bits).
template <int E>
__device__ __forceinline__ void red_add_bits(uint16_t* __restrict__ row, int lane, const uint16_t (&h)[E]) {
  uint16_t* p = row + lane * E;
  auto pack = [&](int a) { return static_cast<uint32_t>(h[a]) | (static_cast<uint32_t>(h[a + 1]) << 16); };
  if constexpr (E % 8 == 0) {
#pragma unroll
    for (int c = 0; c < E / 8; ++c) red_h2x4(p + 8 * c, pack(8 * c), pack(8 * c + 2), pack(8 * c + 4), pack(8 * c + 6));
  } else if constexpr (E % 4 == 0) {
#pragma unroll
    for (int c = 0; c < E / 4; ++c) red_h2x2(p + 4 * c, pack(4 * c), pack(4 * c + 2));
  } else if constexpr (E % 2 == 0) {
#pragma unroll
    for (int c = 0; c < E / 2; ++c) red_h2(p + 2 * c, pack(2 * c));
  } else {
    // odd E: odd lanes start at the high half of a 32-bit word.  Scalar f16 reductions compile
    // to a CAS loop per element (ATOMG.E.CAS, and the two lanes sharing a word collide), so
    // every half goes out in an f16x2 reduction, paired with its neighbour of the same lane or
    // with -0 (0x8000) for the half another lane owns: x + (-0) == x for every x, +0 included.
    constexpr uint32_t kNegZero = 0x8000u;
    if (((lane * E) & 1) == 0) {
#pragma unroll
      for (int c = 0; c + 1 < E; c += 2) red_h2(p + c, pack(c));
      red_h2(p + E - 1, (kNegZero << 16) | h[E - 1]);
    } else {
      red_h2(p - 1, (static_cast<uint32_t>(h[0]) << 16) | kNegZero);
#pragma unroll
      for (int c = 1; c + 1 < E; c += 2) red_h2(p + c, pack(c));
    }
  }
}

/// Stores (merge == false) or adds (merge == true) lane's E floats of an FP32 row.
template <int E>
__device__ __forceinline__ void write_f32(float* __restrict__ row, int lane, const float (&x)[E], bool merge) {
  if (merge) red_add_f32<E>(row, lane, x);
  else store_f32<E>(row, lane, x);
}

/// An updated element, ready for write_row: in store mode the new value `nv` (write_row rounds
/// it for an FP16 row); in merge mode the change to add to the row, new - old, where for an
/// FP16 row "new" is nv already rounded to half (to nearest, or stochastically with the word of
/// element j) and the change is a half (exact when Sterbenz applies, see above).
__device__ __forceinline__ float row_change(float nv, float old, bool f32, bool merge, bool stochastic, uint32_t hkey,
                                            uint32_t j) {
  if (!merge) return nv;
  if (f32) return nv - old;
  const uint16_t h = stochastic ? detail::float_to_half_sr(nv, detail::sr_word(hkey, j)) : f2h_rn(nv);
  return h2f(f2h_rn(h2f(h) - old));
}

/// write_row: store_row in store mode; in merge mode adds the changes x (row_change) to the row.
template <int E>
__device__ __forceinline__ void write_row(const DSide& s, int32_t id, bool f32, int k, int lane, const float (&x)[E],
                                          bool stochastic, uint32_t hkey, bool merge) {
  if (!merge) {
    store_row<E>(s, id, f32, k, lane, x, stochastic, hkey);
  } else if (f32) {
    red_add_f32<E>(s.f32 + static_cast<size_t>(id) * k, lane, x);
  } else {
    uint16_t h[E];
#pragma unroll
    for (int c = 0; c < E; ++c) h[c] = f2h_rn(x[c]);  // exact: x[c] is a half (row_change)
    red_add_bits<E>(s.f16 + static_cast<size_t>(id) * k, lane, h);
  }
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

/// Group of relabelled id `id` and whether its rows are FP32.  Optimised (paper §III-D): the
/// boundaries and flags of the most-rated groups live in shared memory and are binary-searched
/// there; ids past the hot groups binary-search the rest in global memory.  Naive: binary
/// search of the whole table and the precision flag in global memory.  Same result (both are
/// mascot::lookup_group).  Not the paper's hot-first linear scan (§III-D): here the 32 lanes of a warp look
/// up 32 ratings at once and the warp waits for its slowest lane, and in a batch of 32 some
/// rating nearly always falls in a late group, so the scan would cost ~g dependent
/// shared-memory reads per batch (500 at g = 500) against ceil(log2 g) (9) for the search.
__device__ __forceinline__ int find_group(const DSide& s, const HotGroups& h, int32_t id, bool naive, bool* f32) {
  int g;
  if (naive) {
    g = lookup_group(s.start, s.groups, id, true);
    *f32 = s.fp32[g] != 0;
    return g;
  }
  const int n = s.groups < kHotGroups ? s.groups : kHotGroups;
  if (n == s.groups || id < h.start[n]) {
    g = lookup_group(h.start, n, id, true);
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

template <int E>
__device__ __forceinline__ float lane_max_abs(const float (&x)[E]) {
  float m = 0.f;
#pragma unroll
  for (int c = 0; c < E; ++c) m = fmaxf(m, fabsf(x[c]));
  return m;
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

}  // namespace
}  // namespace mascot::cuda
