// SGD, evaluation and q-error-hook kernels of the CUDA backend (see kernels.h for the work
// mapping and ownership; helpers in device_common.cuh; MPT/MuPPET/AFP in competing_kernels.cu).  The formulas are the host+device ones the CPU backend uses:
//   update (FP32 arithmetic): p' = cp p + ce q, q' = cq q + ce p with cp = 1 - lr lambda_p,
//     cq = 1 - lr lambda_q, ce = lr e (detail/sgd.h); FP16 arithmetic (method fp16): Eq. 2-3
//     literally with every operation rounded to half (here: native half instructions, which
//     round exactly like round_half() of each FP32 operation);
//   stochastic FP16 stores: detail::float_to_half_sr with the CPU's random words
//     (detail::sr_keys / sr_word), so the same rating draws the same bits;
//   q-error sampling: the CPU's hash (detail::sampled), gradients from the old values
//     (grad p = e q - lambda_p p, no learning rate), group lookup with mascot::lookup_group;
// The dot product is reduced in a different order than on the CPU (lanes of a warp instead
// of 16 vector lanes), so results agree to rounding, not bit for bit.
#include "device_common.cuh"

namespace mascot::cuda {
namespace {

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
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
  const int slot = static_cast<int>(blockIdx.x % static_cast<unsigned>(a.slots));
  const bool all32 = a.store == Store::kF32;
  const float cp = detail::keep_factor(a.lr, a.lambda_p), cq = detail::keep_factor(a.lr, a.lambda_q);

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
        if (a.measure && detail::sampled(a.sample_seed, a.sample_below, rc.u, rc.i)) flags |= 4;
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
      for (int c = 0; c < E; ++c) part = detail::dot_step(part, p[c], q[c]);
      const float e = r - warp_sum(part);
      if (f & 4) {  // q-error sample: gradients from the old values (Eq. 4, no learning rate)
        const int gu_j = __shfl_sync(kFull, gu, j), gi_j = __shfl_sync(kFull, gi, j);
        float g[E];
#pragma unroll
        for (int c = 0; c < E; ++c) g[c] = detail::sgd_grad(e, q[c], a.lambda_p, p[c]);
        add_sample<E>(a.U, slot, gu_j, k, lane, g);
#pragma unroll
        for (int c = 0; c < E; ++c) g[c] = detail::sgd_grad(e, p[c], a.lambda_q, q[c]);
        add_sample<E>(a.I, slot, gi_j, k, lane, g);
      }
      const float ce = detail::error_factor(a.lr, e);
      uint32_t hp = 0, hq = 0;
      if (a.stochastic) detail::sr_keys(a.round_seed, u, i, &hp, &hq);
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const float pc = p[c], qc = q[c];
        const uint32_t jj = static_cast<uint32_t>(lane * E + c);
        p[c] = row_change(detail::sgd_step(pc, qc, cp, ce), pc, fu, a.merge, a.stochastic, hp, jj);
        q[c] = row_change(detail::sgd_step(qc, pc, cq, ce), qc, fi, a.merge, a.stochastic, hq, jj);
      }
      write_row<E>(a.U, u, fu, k, lane, p, a.stochastic, hp, a.merge);
      write_row<E>(a.I, i, fi, k, lane, q, a.stochastic, hq, a.merge);
    }
  }
}

// ------------------------------------------------------------------ SGD (FP16 arithmetic, method fp16)

template <int E>
__global__ void __launch_bounds__(kThreads) sgd_half_kernel(const SgdArgs a) {
  constexpr int k = 32 * E;
  const int lane = lane_id();
  const __half lr = __float2half_rn(a.lr), lp = __float2half_rn(a.lambda_p), lq = __float2half_rn(a.lambda_q);
  for_each_warp_rating(a, [&](int32_t u, int32_t i, float r) {
    uint16_t pb[E], qb[E];
    uint16_t* prow = a.U.f16 + static_cast<size_t>(u) * k;
    uint16_t* qrow = a.I.f16 + static_cast<size_t>(i) * k;
    load_bits<E>(prow, lane, pb);
    load_bits<E>(qrow, lane, qb);
    __half acc = __ushort_as_half(0);
#pragma unroll
    for (int c = 0; c < E; ++c) acc = detail::half_dot_step(acc, __ushort_as_half(pb[c]), __ushort_as_half(qb[c]), NativeHalf{});
    const __half e = __hsub(__float2half_rn(r), warp_sum_half(acc));
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const __half pj = __ushort_as_half(pb[c]), qj = __ushort_as_half(qb[c]);
      const __half gp = detail::half_grad(e, qj, lp, pj, NativeHalf{});
      const __half gq = detail::half_grad(e, pj, lq, qj, NativeHalf{});
      // merge mode adds the step itself: the hardware's round-to-nearest half add of it is
      // pj + step exactly when no other warp changed the row meanwhile
      const __half sp = detail::half_change(lr, gp, NativeHalf{}), sq = detail::half_change(lr, gq, NativeHalf{});
      pb[c] = __half_as_ushort(a.merge ? sp : __hadd(pj, sp));
      qb[c] = __half_as_ushort(a.merge ? sq : __hadd(qj, sq));
    }
    if (a.merge) {
      red_add_bits<E>(prow, lane, pb);
      red_add_bits<E>(qrow, lane, qb);
    } else {
      store_bits<E>(prow, lane, pb);
      store_bits<E>(qrow, lane, qb);
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
    for (int j = 0; j < nv; ++j) {
      const int32_t u = __shfl_sync(kFull, rc.u, j), i = __shfl_sync(kFull, rc.i, j);
      const float r = __shfl_sync(kFull, rc.r, j);
      const int f = __shfl_sync(kFull, flags, j);
      float p[E], q[E];
      load_row<E>(U, u, f & 1, k, lane, p);
      load_row<E>(I, i, f & 2, k, lane, q);
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part = detail::dot_step(part, p[c], q[c]);
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
  const int lane = lane_id();
  const int64_t warp = warp_id(), nwarps = warp_count();
  const int slot = static_cast<int>(blockIdx.x % static_cast<unsigned>(slots));
  for (int64_t t = warp; t < n; t += nwarps) {  // warp-uniform loop
    float g[E];
    load_f32<E>(grads + t * k, lane, g);
    add_sample<E>(s, slot, group[t], k, lane, g);
  }
}

template <int E>
struct SgdLaunch {
  static void run(const SgdArgs& a, bool half_math, int blocks) {
    if (half_math) MASCOT_LAUNCH(blocks, kThreads, sgd_half_kernel<E>)(a);
    else MASCOT_LAUNCH(blocks, kThreads, sgd_kernel<E>)(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct SseLaunch {
  static void run(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive,
                  double* partial, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, sse_kernel<E>)(recs, n, U, I, store, naive, partial);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct AccLaunch {
  static void run(const float* grads, const int32_t* group, int64_t n, const DSide& s, int slots, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, accumulate_kernel<E>)(grads, group, n, s, slots);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <int E>
struct Occupancy {
  static void run(int* out, bool half) {
    MASCOT_CUDA_CHECK(half ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, sgd_half_kernel<E>, kThreads, 0)
                           : cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, sgd_kernel<E>, kThreads, 0));
  }
};

}  // namespace

int blocks_per_sm(int k, bool mpt, bool flag) {
  if (mpt) return competing_blocks_per_sm(k, flag ? 3 : 2);
  int n = 1;
  dispatch_e<Occupancy>(k, &n, flag);
  return n < 1 ? 1 : n;
}

void launch_sgd(const SgdArgs& a, bool half_math, int blocks) { dispatch_e<SgdLaunch>(a.k, a, half_math, blocks); }

void preload_helper_kernels() {
  cudaFuncAttributes attr{};
  MASCOT_CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&max_abs_kernel)));
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

void launch_sse(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive, int k,
                double* partial, int blocks) {
  dispatch_e<SseLaunch>(k, recs, n, U, I, store, naive, partial, blocks);
}

void launch_accumulate(const float* grads, const int32_t* group, int64_t n, const DSide& s, int k, int slots,
                       int blocks) {
  dispatch_e<AccLaunch>(k, grads, group, n, s, slots, blocks);
}

}  // namespace mascot::cuda
