// SGD, evaluation and q-error-hook kernels of the CUDA backend (see kernels.h for the work
// mapping and ownership; helpers in device_common.cuh; MPT/MuPPET/AFP in competing_kernels.cu).
// The formulas are the host+device ones the CPU backend uses:
//   update (FP32 arithmetic): p' = cp p + ce q, q' = cq q + ce p with cp = 1 - lr lambda_p,
//     cq = 1 - lr lambda_q, ce = lr e (detail/sgd.h); FP16 arithmetic (method fp16): Eq. 2-3
//     literally with every operation rounded to half (here: native half instructions, which
//     round exactly like round_half() of each FP32 operation);
//   stochastic FP16 stores: detail::float_to_half_sr (dithered truncation) with the CPU's
//     13-bit dithers (detail::sr_keys / sr_word), so the same rating draws the same bits;
//   q-error sampling: the CPU's hash (detail::sampled), gradients from the old values
//     (grad p = e q - lambda_p p, no learning rate), group lookup with mascot::lookup_group;
// The dot product is reduced in a different order than on the CPU (lanes of a warp instead
// of 16 vector lanes), so results agree to rounding, not bit for bit.
//
// Specialisation: sgd_kernel is instantiated per launch shape (row layout, storage, write
// mode, rounding, sampled or not), so the per-element code is straight-line: the multiplies and
// adds of detail/sgd.h (separate, -fmad=false: the CPU's roundings), one conversion per FP16
// element loaded and one per pair stored (F2FP packs two), the FP16 change of a merging write
// as one half2 subtraction of the stored bits.  The per-group (mixed) kernels branch once per
// rating and side on the row's precision (warp-uniform), never per element.
#include <algorithm>
#include <type_traits>

#include "device_common.cuh"

namespace mascot::cuda {
namespace {

// Resident 256-thread blocks per SM each SGD kernel asks ptxas for (__launch_bounds__): 8 is
// the full 64 warps of sm_80/sm_90 and caps the registers at 32, which rows of up to 128
// elements fit; longer rows need more registers per lane, and spilling them costs more than
// the warps gained (benchmarks/sass_count.py prints registers and spills; docs/benchmarks.md).
template <class L>
constexpr int sgd_min_blocks() {
  return L::kE <= 4 ? 8 : L::kE <= 8 ? 4 : 2;
}

/// Shared memory of the optimised group lookup, only in the per-group kernels.
struct NoHot {};
template <bool kMixed>
using HotOf = std::conditional_t<kMixed, HotGroups, NoHot>;

// ------------------------------------------------------------------ SGD (FP32 arithmetic)

/// One launch shape: row layout L; S the storage of both sides (kMixed: per group, looked up
/// per rating); kMerge: rows written as L2 reductions of the change (else stores); kSR: FP16
/// stores round stochastically; kMeasure: sampled ratings add their gradients to the q-error
/// accumulators (kMixed only).
template <class L, Store S, bool kMerge, bool kSR, bool kMeasure>
__global__ void __launch_bounds__(kThreads, sgd_min_blocks<L>()) sgd_kernel(const SgdArgs a) {
  constexpr bool kMixed = S == Store::kMixed;
  static_assert(kMixed || !kMeasure, "only the per-group kernels sample");
  static_assert(S != Store::kF32 || !kSR, "stochastic rounding needs FP16 rows");
  __shared__ HotOf<kMixed> hu, hi;
  if constexpr (kMixed) {
    if (!a.naive) {  // grid-uniform condition: every thread reaches the barrier
      load_hot(hu, a.U);
      load_hot(hi, a.I);
      __syncthreads();
    }
  }
  const int k = a.k;
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
  const int slot = kMeasure ? static_cast<int>(blockIdx.x % static_cast<unsigned>(a.slots)) : 0;
  const float cp = detail::keep_factor(a.lr, a.lambda_p), cq = detail::keep_factor(a.lr, a.lambda_q);

  for (int64_t base = warp * 32; base < a.tasks; base += nwarps * 32) {
    // phase 1: lane l fetches rating base + l (record; per group: groups, precision, sampling)
    const int64_t t = base + lane;
    DRec rc{0, 0, 0.f};
    int gu = 0, gi = 0, flags = 0;  // bit 0: p FP32, bit 1: q FP32, bit 2: sampled
    if (t < a.tasks) {
      rc = a.recs[task_rating(a, t)];
      if constexpr (kMixed) {
        bool fu = false, fi = false;
        gu = find_group(a.U, hu, rc.u, a.naive, &fu);
        gi = find_group(a.I, hi, rc.i, a.naive, &fi);
        flags = (fu ? 1 : 0) | (fi ? 2 : 0);
        if (kMeasure && detail::sampled(a.sample_seed, a.sample_below, rc.u, rc.i)) flags |= 4;
      }
    }
    const int nv = a.tasks - base < 32 ? static_cast<int>(a.tasks - base) : 32;
    // phase 2: the warp updates the ratings one after another (warp-uniform control flow)
    // one rating per pass: nothing to gain from unrolling (each rating's loads wait on the
    // previous one's writes, asm volatile with a memory clobber), and the body is long
#pragma unroll 1
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      const int f = kMixed ? __shfl_sync(kFull, flags, j) : (S == Store::kF32 ? 3 : 0);
      const bool fu = f & 1, fi = f & 2;
      LaneRow<L> p, q;
      load_row<L>(a.U, u, fu, k, lane, p);
      load_row<L>(a.I, i, fi, k, lane, q);
      float part = 0.f;
#pragma unroll
      for (int x = 0; x < L::kE; ++x) part = detail::dot_step(part, p.x[x], q.x[x]);
      const float e = r - warp_sum(part);
      if constexpr (kMeasure) {
        if (f & 4) {  // q-error sample: gradients from the old values (Eq. 4, no learning rate)
          const int gu_j = __shfl_sync(kFull, gu, j), gi_j = __shfl_sync(kFull, gi, j);
          float g[L::kE];
#pragma unroll
          for (int x = 0; x < L::kE; ++x) g[x] = detail::sgd_grad(e, q.x[x], a.lambda_p, p.x[x]);
          add_sample<L>(a.U, slot, gu_j, k, lane, g);
#pragma unroll
          for (int x = 0; x < L::kE; ++x) g[x] = detail::sgd_grad(e, p.x[x], a.lambda_q, q.x[x]);
          add_sample<L>(a.I, slot, gi_j, k, lane, g);
        }
      }
      const float ce = detail::error_factor(a.lr, e);
      uint32_t hp = 0, hq = 0;
      if constexpr (kSR) detail::sr_keys(a.round_seed, u, i, &hp, &hq);
      float np[L::kE], nq[L::kE];
#pragma unroll
      for (int x = 0; x < L::kE; ++x) {
        np[x] = detail::sgd_step(p.x[x], q.x[x], cp, ce);
        nq[x] = detail::sgd_step(q.x[x], p.x[x], cq, ce);
      }
      write_row<L, kMerge, kSR>(a.U, u, fu, k, lane, p, np, hp);
      write_row<L, kMerge, kSR>(a.I, i, fi, k, lane, q, nq, hq);
    }
  }
}

// ------------------------------------------------------------------ SGD (FP16 arithmetic, method fp16)

/// The rnd policy of detail/sgd.h's FP16 steps on __half2: none (each half2 lane rounds as a
/// __half operation does).
struct NativeHalf2 {
  __device__ __forceinline__ __half2 operator()(__half2 x) const { return x; }
};

/// Method fp16: every operation in half precision, on pairs of elements (half2) where the rows
/// come in pairs (W >= 2).  The lane's dot product sums its pairs in two half accumulators
/// (the low and high halves of a half2), then adds them: a different order than the scalar
/// kernel's, with half rounding at every step, as before.
template <class L, bool kMerge>
__global__ void __launch_bounds__(kThreads, sgd_min_blocks<L>()) sgd_half_kernel(const SgdArgs a) {
  const int k = a.k;
  const int lane = lane_id();
  const __half lr = __float2half_rn(a.lr), lp = __float2half_rn(a.lambda_p), lq = __float2half_rn(a.lambda_q);
  for_each_warp_rating(a, [&](int32_t u, int32_t i, float r) {
    uint16_t* prow = a.U.f16 + static_cast<size_t>(u) * k;
    uint16_t* qrow = a.I.f16 + static_cast<size_t>(i) * k;
    LaneRow<L> p, q;  // only the bits are used (the float values are dead code)
    load_f16<L>(prow, lane, k, p);
    load_f16<L>(qrow, lane, k, q);
    constexpr int kWords = LaneRow<L>::kWords;
    uint32_t hp[kWords], hq[kWords];
    __half dot;
    if constexpr (L::kW >= 2) {
      __half2 acc = __float2half2_rn(0.f);
#pragma unroll
      for (int w = 0; w < kWords; ++w) acc = detail::half_dot_step(acc, u32_h2(p.h[w]), u32_h2(q.h[w]), NativeHalf2{});
      dot = warp_sum_half(__hadd(__low2half(acc), __high2half(acc)));
      const __half2 e2 = __half2half2(__hsub(__float2half_rn(r), dot));
      const __half2 lr2 = __half2half2(lr), lp2 = __half2half2(lp), lq2 = __half2half2(lq);
#pragma unroll
      for (int w = 0; w < kWords; ++w) {
        const __half2 p2 = u32_h2(p.h[w]), q2 = u32_h2(q.h[w]);
        const __half2 gp = detail::half_grad(e2, q2, lp2, p2, NativeHalf2{});
        const __half2 gq = detail::half_grad(e2, p2, lq2, q2, NativeHalf2{});
        // merge mode adds the step itself: the hardware's round-to-nearest half add of it is
        // p + step exactly when no other warp changed the row meanwhile
        hp[w] = h2_u32(kMerge ? detail::half_change(lr2, gp, NativeHalf2{})
                              : detail::half_descend(p2, lr2, gp, NativeHalf2{}));
        hq[w] = h2_u32(kMerge ? detail::half_change(lr2, gq, NativeHalf2{})
                              : detail::half_descend(q2, lr2, gq, NativeHalf2{}));
      }
    } else {
      __half acc = __ushort_as_half(0);
#pragma unroll
      for (int c = 0; c < L::kE; ++c)
        acc = detail::half_dot_step(acc, __ushort_as_half(static_cast<uint16_t>(p.h[c])),
                                    __ushort_as_half(static_cast<uint16_t>(q.h[c])), NativeHalf{});
      dot = warp_sum_half(acc);
      const __half e = __hsub(__float2half_rn(r), dot);
#pragma unroll
      for (int c = 0; c < L::kE; ++c) {
        const __half pj = __ushort_as_half(static_cast<uint16_t>(p.h[c]));
        const __half qj = __ushort_as_half(static_cast<uint16_t>(q.h[c]));
        const __half gp = detail::half_grad(e, qj, lp, pj, NativeHalf{});
        const __half gq = detail::half_grad(e, pj, lq, qj, NativeHalf{});
        hp[c] = __half_as_ushort(kMerge ? detail::half_change(lr, gp, NativeHalf{})
                                        : detail::half_descend(pj, lr, gp, NativeHalf{}));
        hq[c] = __half_as_ushort(kMerge ? detail::half_change(lr, gq, NativeHalf{})
                                        : detail::half_descend(qj, lr, gq, NativeHalf{}));
      }
    }
    if constexpr (kMerge) {
      red_add_f16<L>(prow, lane, k, hp);
      red_add_f16<L>(qrow, lane, k, hq);
    } else {
      store_f16<L>(prow, lane, k, hp);
      store_f16<L>(qrow, lane, k, hq);
    }
  });
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

template <class L>
__global__ void __launch_bounds__(kThreads) sse_kernel(const DRec* __restrict__ recs, int64_t n, const DSide U,
                                                       const DSide I, int k, Store store, bool naive, double* partial) {
  __shared__ HotGroups hu, hi;
  __shared__ double warp_se[kThreads / 32];
  const bool mixed = store == Store::kMixed;
  if (mixed && !naive) {
    load_hot(hu, U);
    load_hot(hi, I);
    __syncthreads();
  }
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
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
    // one rating per pass: nothing to gain from unrolling (each rating's loads wait on the
    // previous one's writes, asm volatile with a memory clobber), and the body is long
#pragma unroll 1
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      const int f = __shfl_sync(kFull, flags, j);
      LaneRow<L> p, q;
      load_row<L>(U, u, f & 1, k, lane, p);
      load_row<L>(I, i, f & 2, k, lane, q);
      float part = 0.f;
#pragma unroll
      for (int x = 0; x < L::kE; ++x) part = detail::dot_step(part, p.x[x], q.x[x]);
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

// ------------------------------------------------------------------ q-error accumulators

/// Feeds given gradients (n x k) through add_sample, as the SGD kernel does for sampled
/// ratings: one warp per gradient, block b adds into slot b % slots.
template <class L>
__global__ void __launch_bounds__(kThreads)
    accumulate_kernel(const float* grads, const int32_t* group, int64_t n, const DSide s, int k, int slots) {
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
  const int slot = static_cast<int>(blockIdx.x % static_cast<unsigned>(slots));
  for (int64_t t = warp; t < n; t += nwarps) {  // warp-uniform loop
    float g[L::kE];
    load_f32<L>(grads + t * k, lane, k, g);  // rows of k floats: any alignment RowLayout allows
    add_sample<L>(s, slot, group[t], k, lane, g);
  }
}

/// out[g k + j] = sum over slots (in slot order) of in[(s groups + g) k + acc position of j].
__global__ void reduce_grad_sums_kernel(const double* in, double* out, int64_t groups, int k, int slots) {
  const int64_t per = groups * k;
  for (int64_t x = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; x < per;
       x += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t g = x / k;
    const int pos = static_cast<int>(x - g * k);
    double s = 0;
    for (int t = 0; t < slots; ++t) s += in[static_cast<int64_t>(t) * per + x];
    out[g * k + acc_element(pos, k)] = s;
  }
}

// ------------------------------------------------------------------ launches

/// The sgd_kernel of a launch's shape (SgdArgs: store, merge, stochastic, measure).
template <class L>
struct SgdLaunch {
  template <Store S, bool kMerge, bool kSR, bool kMeasure>
  static void go(const SgdArgs& a, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, sgd_kernel<L, S, kMerge, kSR, kMeasure>)(a);
  }
  template <bool kMerge>
  static void by_store(const SgdArgs& a, int blocks) {
    const bool sr = a.stochastic;
    switch (a.store) {
      case Store::kF32:
        go<Store::kF32, kMerge, false, false>(a, blocks);
        break;
      case Store::kF16:
        sr ? go<Store::kF16, kMerge, true, false>(a, blocks) : go<Store::kF16, kMerge, false, false>(a, blocks);
        break;
      default:
        if (a.measure)
          sr ? go<Store::kMixed, kMerge, true, true>(a, blocks) : go<Store::kMixed, kMerge, false, true>(a, blocks);
        else
          sr ? go<Store::kMixed, kMerge, true, false>(a, blocks) : go<Store::kMixed, kMerge, false, false>(a, blocks);
    }
  }
  static void run(const SgdArgs& a, bool half_math, int blocks) {
    if (half_math) {
      if (a.merge)
        MASCOT_LAUNCH(blocks, kThreads, sgd_half_kernel<L, true>)(a);
      else
        MASCOT_LAUNCH(blocks, kThreads, sgd_half_kernel<L, false>)(a);
    } else if (a.merge) {
      by_store<true>(a, blocks);
    } else {
      by_store<false>(a, blocks);
    }
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <class L>
struct SseLaunch {
  static void run(const DRec* recs, int64_t n, const DSide& U, const DSide& I, int k, Store store, bool naive,
                  double* partial, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, sse_kernel<L>)(recs, n, U, I, k, store, naive, partial);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <class L>
struct AccLaunch {
  static void run(const float* grads, const int32_t* group, int64_t n, const DSide& s, int k, int slots, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, accumulate_kernel<L>)(grads, group, n, s, k, slots);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};

/// Resident blocks per SM of a kernel (cudaOccupancyMaxActiveBlocksPerMultiprocessor).
template <class K>
int occupancy(K kernel) {
  int n = 0;
  MASCOT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
  return n;
}
/// The fewest resident blocks of the kernels a launch of this k may use (they all ask for
/// sgd_min_blocks, so normally that): half_math, the fp16 kernels; else every storage and mode.
template <class L>
struct Occupancy {
  static void run(int* out, bool half) {
    int n;
    if (half) {
      n = std::min(occupancy(sgd_half_kernel<L, true>), occupancy(sgd_half_kernel<L, false>));
    } else {
      n = std::min({occupancy(sgd_kernel<L, Store::kF32, true, false, false>),
                    occupancy(sgd_kernel<L, Store::kF32, false, false, false>),
                    occupancy(sgd_kernel<L, Store::kF16, true, false, false>),
                    occupancy(sgd_kernel<L, Store::kF16, true, true, false>),
                    occupancy(sgd_kernel<L, Store::kF16, false, false, false>),
                    occupancy(sgd_kernel<L, Store::kF16, false, true, false>),
                    occupancy(sgd_kernel<L, Store::kMixed, true, false, false>),
                    occupancy(sgd_kernel<L, Store::kMixed, true, true, false>),
                    occupancy(sgd_kernel<L, Store::kMixed, true, false, true>),
                    occupancy(sgd_kernel<L, Store::kMixed, true, true, true>),
                    occupancy(sgd_kernel<L, Store::kMixed, false, false, false>),
                    occupancy(sgd_kernel<L, Store::kMixed, false, true, false>),
                    occupancy(sgd_kernel<L, Store::kMixed, false, false, true>),
                    occupancy(sgd_kernel<L, Store::kMixed, false, true, true>)});
    }
    *out = n;
  }
};

}  // namespace

int blocks_per_sm(int k, bool mpt, bool flag) {
  if (mpt) return competing_blocks_per_sm(k, flag ? 3 : 2);
  int n = 1;
  dispatch_layout<Occupancy>(k, &n, flag);
  return n < 1 ? 1 : n;
}

void launch_sgd(const SgdArgs& a, bool half_math, int blocks) { dispatch_layout<SgdLaunch>(a.k, a, half_math, blocks); }

void preload_helper_kernels() {
  cudaFuncAttributes attr{};
  MASCOT_CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&max_abs_kernel)));
  MASCOT_CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&reduce_grad_sums_kernel)));
}

void launch_max_abs(const float* x, int64_t n, unsigned int* out) {
  if (n <= 0) return;
  int sms = 1, dev = 0;
  MASCOT_CUDA_CHECK(cudaGetDevice(&dev));
  MASCOT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t want = (n + 255) / 256;
  const int blocks = static_cast<int>(want < 4LL * sms ? want : 4LL * sms);
  MASCOT_LAUNCH(blocks, 256, max_abs_kernel)(x, n, out);
  MASCOT_CUDA_CHECK_LAUNCH();
}

void launch_reduce_grad_sums(const double* in, double* out, int groups, int k, int slots) {
  const int64_t per = static_cast<int64_t>(groups) * k;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(65535, (per + 255) / 256)));
  MASCOT_LAUNCH(blocks, 256, reduce_grad_sums_kernel)(in, out, static_cast<int64_t>(groups), k, slots);
  MASCOT_CUDA_CHECK_LAUNCH();
}

void launch_sse(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive, int k,
                double* partial, int blocks) {
  dispatch_layout<SseLaunch>(k, recs, n, U, I, k, store, naive, partial, blocks);
}

void launch_accumulate(const float* grads, const int32_t* group, int64_t n, const DSide& s, int k, int slots,
                       int blocks) {
  dispatch_layout<AccLaunch>(k, grads, group, n, s, k, slots, blocks);
}

}  // namespace mascot::cuda
