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
    const uint64_t start =
        detail::hash3(a.chunk_seed, 1, static_cast<uint64_t>(d)) % static_cast<uint64_t>(a.nnz - a.chunk_len + 1);
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
    // one rating per pass: nothing to gain from unrolling (each rating's loads wait on the
    // previous one's writes, asm volatile with a memory clobber), and the body is long
#pragma unroll 1
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

// ------------------------------------------------------------------ row layout
// A k-row is spread over the warp's 32 lanes in chunks of W consecutive elements: lane l holds,
// for chunk c < E / W, the elements (c * 32 + l) * W .. + W - 1, E values in all
// (kernels.h, row_layout).  W = 4 for k = 128, 256, 512, 2 for k = 64 (FP32 rows: 16- and 8-byte
// vectors, FP16 rows 8 and 4 bytes), else 1: k = 32, or any other k, where the lanes past the
// row's end (kMask: c * 32 + l >= k) hold zeros and neither load nor write.
// Every load or write instruction of the warp covers 32 W consecutive elements (coalesced for
// every k), and a row needs no alignment beyond W elements (k = 20: rows start anywhere).
// A lane's x-th value (x = c W + w) is element elem(lane, x): the stochastic-rounding words
// and the competing methods' words are drawn by element index, as on the CPU.

template <int E_, int W_, bool kMask_>
struct RowLayout {
  static constexpr int kE = E_;  ///< values per lane
  static constexpr int kW = W_;  ///< consecutive elements per chunk
  static constexpr int kChunks = E_ / W_;
  static constexpr bool kMask = kMask_;
  static_assert(E_ % W_ == 0 && (W_ == 1 || !kMask_), "vector chunks only for whole rows");
  __device__ __forceinline__ static int elem(int lane, int x) { return ((x / kW) * 32 + lane) * kW + x % kW; }
  /// Whether chunk c of this lane lies inside a k-row.
  __device__ __forceinline__ static bool in_row(int lane, int c, int k) { return !kMask || c * 32 + lane < k; }
  /// Position of the lane's x-th value in a lane-contiguous accumulator of k values (q-error
  /// sums): one warp instruction covers 32 consecutive positions.  acc_element (kernels.h) maps back.
  __device__ __forceinline__ static int acc_pos(int lane, int x) { return x * 32 + lane; }
};

/// A lane's share of one row: its E values as floats and, for an FP16 row, the stored bits
/// (one 32-bit word per pair of halves when W >= 2, one half per word when W == 1).
template <class L>
struct LaneRow {
  static constexpr int kWords = L::kW >= 2 ? L::kE / 2 : L::kE;
  float x[L::kE];
  uint32_t h[kWords];
};

/// The `rnd` policy of detail/sgd.h's FP16-arithmetic steps on __half: none, every __half
/// operation already rounds to nearest half (as round_half() of the FP32 operation).
struct NativeHalf {
  __device__ __forceinline__ __half operator()(__half x) const { return x; }
};

__device__ __forceinline__ float h2f(uint16_t b) { return __half2float(__ushort_as_half(b)); }
__device__ __forceinline__ uint16_t f2h_rn(float x) { return __half_as_ushort(__float2half_rn(x)); }
__device__ __forceinline__ __half2 u32_h2(uint32_t w) {
  __half2 h;
  memcpy(&h, &w, 4);
  return h;
}
__device__ __forceinline__ uint32_t h2_u32(__half2 h) {
  uint32_t w;
  memcpy(&w, &h, 4);
  return w;
}

// Rows that a kernel updates are loaded with __ldcg (cached in L2 only): an SM's L1 is not
// coherent with other SMs' stores during a kernel (PTX ISA memory consistency), so a plain,
// L1-cached load of a hot row could keep returning that SM's stale copy for the whole epoch
// while other SMs update it.  Hogwild tolerates a race, not a private copy per SM.  Random
// rows gain nothing from L1 anyway; hot rows still hit in L2.

template <class L>
__device__ __forceinline__ void load_f32(const float* __restrict__ row, int lane, int k, float (&x)[L::kE]) {
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    const float* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(p));
      x[4 * c] = v.x;
      x[4 * c + 1] = v.y;
      x[4 * c + 2] = v.z;
      x[4 * c + 3] = v.w;
    } else if constexpr (L::kW == 2) {
      const float2 v = __ldcg(reinterpret_cast<const float2*>(p));
      x[2 * c] = v.x;
      x[2 * c + 1] = v.y;
    } else {
      x[c] = L::in_row(lane, c, k) ? __ldcg(p) : 0.f;
    }
  }
}

template <class L>
__device__ __forceinline__ void store_f32(float* __restrict__ row, int lane, int k, const float (&x)[L::kE]) {
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    float* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(x[4 * c], x[4 * c + 1], x[4 * c + 2], x[4 * c + 3]);
    } else if constexpr (L::kW == 2) {
      *reinterpret_cast<float2*>(p) = make_float2(x[2 * c], x[2 * c + 1]);
    } else if (L::in_row(lane, c, k)) {
      *p = x[c];
    }
  }
}

/// An FP16 row: the bits into r.h, their values into r.x.
template <class L>
__device__ __forceinline__ void load_f16(const uint16_t* __restrict__ row, int lane, int k, LaneRow<L>& r) {
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    const uint16_t* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4) {
      const uint2 v = __ldcg(reinterpret_cast<const uint2*>(p));
      r.h[2 * c] = v.x;
      r.h[2 * c + 1] = v.y;
    } else if constexpr (L::kW == 2) {
      r.h[c] = __ldcg(reinterpret_cast<const unsigned int*>(p));
    } else {
      r.h[c] = L::in_row(lane, c, k) ? __ldcg(reinterpret_cast<const unsigned short*>(p)) : 0u;
    }
  }
  if constexpr (L::kW >= 2) {
#pragma unroll
    for (int w = 0; w < LaneRow<L>::kWords; ++w) {
      const float2 f = __half22float2(u32_h2(r.h[w]));
      r.x[2 * w] = f.x;
      r.x[2 * w + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int c = 0; c < L::kE; ++c) r.x[c] = h2f(static_cast<uint16_t>(r.h[c]));
  }
}

/// Stores FP16 bits (LaneRow::h's layout) into a row.
template <class L>
__device__ __forceinline__ void store_f16(uint16_t* __restrict__ row, int lane, int k,
                                          const uint32_t (&h)[LaneRow<L>::kWords]) {
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    uint16_t* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4) {
      *reinterpret_cast<uint2*>(p) = make_uint2(h[2 * c], h[2 * c + 1]);
    } else if constexpr (L::kW == 2) {
      *reinterpret_cast<unsigned int*>(p) = h[c];
    } else if (L::in_row(lane, c, k)) {
      *reinterpret_cast<unsigned short*>(p) = static_cast<unsigned short>(h[c]);
    }
  }
}

/// A row of either storage into r (f32: the row is FP32; r.h is then unused).
template <class L>
__device__ __forceinline__ void load_row(const DSide& s, int32_t id, bool f32, int k, int lane, LaneRow<L>& r) {
  if (f32)
    load_f32<L>(s.f32 + static_cast<size_t>(id) * k, lane, k, r.x);
  else
    load_f16<L>(s.f16 + static_cast<size_t>(id) * k, lane, k, r);
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
/// Adds lane's values x to an FP32 row (merge mode of store_f32).
template <class L>
__device__ __forceinline__ void red_add_f32(float* __restrict__ row, int lane, int k, const float (&x)[L::kE]) {
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    float* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4)
      red_f32x4(p, x[4 * c], x[4 * c + 1], x[4 * c + 2], x[4 * c + 3]);
    else if constexpr (L::kW == 2)
      red_f32x2(p, x[2 * c], x[2 * c + 1]);
    else if (L::in_row(lane, c, k))
      red_f32(p, x[c]);
  }
}

/// Adds halves (LaneRow::h's layout) to an FP16 row (merge mode of store_f16).  W == 1: a
/// scalar f16 reduction compiles to a CAS loop per element (ATOMG.E.CAS), so every half goes out
/// in an f16x2 reduction of the aligned 32-bit word that holds it, paired with -0 (0x8000) for
/// the other half, which another lane or row owns: x + (-0) == x for every x, +0 included.
template <class L>
__device__ __forceinline__ void red_add_f16(uint16_t* __restrict__ row, int lane, int k,
                                            const uint32_t (&h)[LaneRow<L>::kWords]) {
  constexpr uint32_t kNegZero = 0x8000u;
#pragma unroll
  for (int c = 0; c < L::kChunks; ++c) {
    uint16_t* p = row + (c * 32 + lane) * L::kW;
    if constexpr (L::kW == 4) {
      red_h2x2(p, h[2 * c], h[2 * c + 1]);
    } else if constexpr (L::kW == 2) {
      red_h2(p, h[c]);
    } else if (L::in_row(lane, c, k)) {
      if ((reinterpret_cast<uintptr_t>(p) & 2) == 0)
        red_h2(p, (kNegZero << 16) | h[c]);
      else
        red_h2(p - 1, (h[c] << 16) | kNegZero);
    }
  }
}

/// Writes a lane's updated values nv of a row whose old values (and, FP16, bits) are `old`:
/// stores (kMerge false) or adds the change in L2 (kMerge true; FP32: nv - old; FP16: the
/// half-precision difference of the rounded new value and the stored one, exact where Sterbenz
/// applies, so the row ends where a store would have left it).  FP16 rows round nv to nearest,
/// or stochastically (kSR) with detail::sr_word(hkey, element index), the CPU's words.
template <class L, bool kMerge, bool kSR>
__device__ __forceinline__ void write_row(const DSide& s, int32_t id, bool f32, int k, int lane, const LaneRow<L>& old,
                                          const float (&nv)[L::kE], uint32_t hkey) {
  if (f32) {
    float* row = s.f32 + static_cast<size_t>(id) * k;
    if constexpr (kMerge) {
      float d[L::kE];
#pragma unroll
      for (int x = 0; x < L::kE; ++x) d[x] = nv[x] - old.x[x];
      red_add_f32<L>(row, lane, k, d);
    } else {
      store_f32<L>(row, lane, k, nv);
    }
    return;
  }
  uint32_t h[LaneRow<L>::kWords];
  if constexpr (L::kW >= 2) {
#pragma unroll
    for (int w = 0; w < LaneRow<L>::kWords; ++w) {
      __half2 n2;
      if constexpr (kSR) {
        const uint16_t lo = detail::float_to_half_sr(nv[2 * w], detail::sr_word(hkey, L::elem(lane, 2 * w)));
        const uint16_t hi = detail::float_to_half_sr(nv[2 * w + 1], detail::sr_word(hkey, L::elem(lane, 2 * w + 1)));
        n2 = u32_h2(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16));
      } else {
        n2 = __floats2half2_rn(nv[2 * w], nv[2 * w + 1]);
      }
      h[w] = h2_u32(kMerge ? __hsub2(n2, u32_h2(old.h[w])) : n2);
    }
  } else {
#pragma unroll
    for (int c = 0; c < L::kE; ++c) {
      const __half n = kSR ? __ushort_as_half(detail::float_to_half_sr(nv[c], detail::sr_word(hkey, L::elem(lane, c))))
                           : __float2half_rn(nv[c]);
      h[c] = __half_as_ushort(kMerge ? __hsub(n, __ushort_as_half(static_cast<uint16_t>(old.h[c]))) : n);
    }
  }
  uint16_t* row = s.f16 + static_cast<size_t>(id) * k;
  if constexpr (kMerge)
    red_add_f16<L>(row, lane, k, h);
  else
    store_f16<L>(row, lane, k, h);
}

/// Stores (merge == false) or adds (merge == true) lane's values of an FP32 row (the competing
/// methods' masters: with merge the values are the changes).
template <class L>
__device__ __forceinline__ void write_f32(float* __restrict__ row, int lane, int k, const float (&x)[L::kE],
                                          bool merge) {
  if (merge)
    red_add_f32<L>(row, lane, k, x);
  else
    store_f32<L>(row, lane, k, x);
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

/// Adds one sampled gradient (the lane's values) to group g's accumulators of `slot`, laid
/// out lane-contiguous (RowLayout::acc_pos): each double reduction of the warp covers 32
/// consecutive doubles (8 sectors) instead of lanes 8 W bytes apart; launch_reduce_grad_sums undoes it.
template <class L>
__device__ __forceinline__ void add_sample(const DSide& s, int slot, int g, int k, int lane,
                                           const float (&grad)[L::kE]) {
  double* sum = s.grad_sum + (static_cast<size_t>(slot) * s.groups + g) * k;
  float sq = 0.f;
#pragma unroll
  for (int x = 0; x < L::kE; ++x) {
    if (L::in_row(lane, x, k)) atomicAdd(sum + L::acc_pos(lane, x), static_cast<double>(grad[x]));
    sq += grad[x] * grad[x];
  }
  sq = warp_sum(sq);
  if (lane == 0) {
    atomicAdd(s.grad_sq + static_cast<size_t>(slot) * s.groups + g, static_cast<double>(sq));
    atomicAdd(s.grad_n + static_cast<size_t>(slot) * s.groups + g, 1ull);
  }
}

template <class L>
__device__ __forceinline__ float lane_max_abs(const float (&x)[L::kE]) {
  float m = 0.f;
#pragma unroll
  for (int c = 0; c < L::kE; ++c) m = fmaxf(m, fabsf(x[c]));
  return m;
}

/// for_each_warp_rating over FP32 rows (the competing methods' FP32 masters):
/// body(u, i, r, prow, qrow, p, q) with the lane's values of both rows loaded into p and q.
template <class L, class Body>
__device__ __forceinline__ void for_each_warp_rating_f32(const SgdArgs& a, Body&& body) {
  const int k = a.k;
  const int lane = lane_id();
  for_each_warp_rating(a, [&](int32_t u, int32_t i, float r) {
    float* prow = a.U.f32 + static_cast<size_t>(u) * k;
    float* qrow = a.I.f32 + static_cast<size_t>(i) * k;
    float p[L::kE], q[L::kE];
    load_f32<L>(prow, lane, k, p);
    load_f32<L>(qrow, lane, k, q);
    body(u, i, r, prow, qrow, p, q);
  });
}

// ------------------------------------------------------------------ dispatch on the row layout

/// F<RowLayout<E, W, mask>>::run(args...) for k (row_layout(k), kernels.h): E = k / 32 with
/// vector chunks for k = 32, 64, 128, 256, 512; else E the power of two >= ceil(k / 32) with
/// masked lanes (k = 96 runs as 128 with a quarter of the lanes idle).  Ten layouts in all: the
/// kernels are instantiated per layout and launch shape, and more layouts would multiply the
/// build time (nvcc and the emulator) for k that are rarely used.
template <template <class> class F, class... Args>
void dispatch_layout(int k, Args&&... args) {
  if (!supported_k(k)) throw_invalid(unsupported_k_message(k));
  const RowShape r = row_layout(k);
  if (!r.mask) {
    switch (r.e) {
      case 1:
        F<RowLayout<1, 1, false>>::run(args...);
        return;
      case 2:
        F<RowLayout<2, 2, false>>::run(args...);
        return;
      case 4:
        F<RowLayout<4, 4, false>>::run(args...);
        return;
      case 8:
        F<RowLayout<8, 4, false>>::run(args...);
        return;
      default:
        F<RowLayout<16, 4, false>>::run(args...);
        return;
    }
  }
  switch (r.e) {
    case 1:
      F<RowLayout<1, 1, true>>::run(args...);
      return;
    case 2:
      F<RowLayout<2, 1, true>>::run(args...);
      return;
    case 4:
      F<RowLayout<4, 1, true>>::run(args...);
      return;
    case 8:
      F<RowLayout<8, 1, true>>::run(args...);
      return;
    default:
      F<RowLayout<16, 1, true>>::run(args...);
      return;
  }
}

}  // namespace
}  // namespace mascot::cuda
