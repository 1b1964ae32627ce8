// MPT, MuPPET and AFP kernels of the CUDA backend (the per-rating loops of cpu/mpt.cc,
// muppet.cc and afp.cc with a warp as the Hogwild worker; the per-epoch rules run on the host in
// cuda_trainer.cu; the per-element arithmetic is detail/sgd.h's, the random words rng.h's).  Kept
// apart from sgd_kernels.cu so that the two compile in parallel.  Helpers: device_common.cuh.
#include "device_common.cuh"

namespace mascot::cuda {
namespace {

// ------------------------------------------------------------------ MPT (cpu/mpt.cc Mpt::run)

template <class L, bool SR>
__global__ void __launch_bounds__(kThreads) mpt_kernel(const SgdArgs a) {
  constexpr float kHalfMax = 65504.0f;
  const int lane = lane_id();
  const int64_t warp = warp_id();
  detail::MptLossScale ls;  // this warp's worker state; every lane keeps an identical copy
  ls.init(a.mpt_scale[warp], a.mpt_dynamic, a.mpt_window);
  ls.clean = a.mpt_clean[warp];
  unsigned long long updates = 0, skipped = 0;
  const float lr = a.lr, lpr = a.lambda_p, lqr = a.lambda_q;
  constexpr int E = L::kE;
  const int k = a.k;
  for_each_warp_rating_f32<L>(a, [&](int32_t u, int32_t i, float r, float* prow, float* qrow, float (&p)[E],
                                     float (&q)[E]) {
    float ph[E], qh[E];
    const uint64_t key = SR ? detail::rating_round_key(a.mpt_epoch_key, u, i) : 0;
    // FP16 copies of the FP32 masters
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
      ph[c] = SR ? detail::half_sr_value(p[c], detail::round_word(key, 1, jj)) : detail::half_rn_value(p[c]);
      qh[c] = SR ? detail::half_sr_value(q[c], detail::round_word(key, 2, jj)) : detail::half_rn_value(q[c]);
    }
    float part = 0.f;
#pragma unroll
    for (int c = 0; c < E; ++c) part = detail::dot_step(part, ph[c], qh[c]);
    const float dot = warp_sum(part);
    const float rhat = SR ? detail::half_sr_value(dot, detail::round_one_word(key, 3)) : detail::half_rn_value(dot);
    const float e = r - rhat;
    const float S = ls.scale;
    const float se = SR ? detail::half_sr_value(S * e, detail::round_one_word(key, 4)) : detail::half_rn_value(S * e);
    float gp[E], gq[E];
    bool bad = false;
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
      gp[c] =
          SR ? detail::half_sr_value(se * qh[c], detail::round_word(key, 5, jj)) : detail::half_rn_value(se * qh[c]);
      gq[c] =
          SR ? detail::half_sr_value(se * ph[c], detail::round_word(key, 6, jj)) : detail::half_rn_value(se * ph[c]);
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
      overflow = overflow || !(fabsf(S * e) < 65520.0f) || !(fabsf(se) * mq < 65520.0f) || !(fabsf(se) * mp < 65520.0f);
    }
    ++updates;
    if (!ls.step(overflow)) {  // identical inputs in every lane: identical decisions
      ++skipped;
      return;  // the next rating
    }
    const float inv = 1.0f / S;
#pragma unroll
    for (int c = 0; c < E; ++c) {
      const float pj = p[c], qj = q[c];
      const float dp = detail::descent_change(lr, detail::decay_grad(gp[c] * inv, lpr, pj));
      const float dq = detail::descent_change(lr, detail::decay_grad(gq[c] * inv, lqr, qj));
      p[c] = a.merge ? dp : pj + dp;  // merge mode: the change (write_f32 adds it)
      q[c] = a.merge ? dq : qj + dq;
    }
    write_f32<L>(prow, lane, k, p, a.merge);
    write_f32<L>(qrow, lane, k, q, a.merge);
  });
  if (lane == 0) {
    a.mpt_scale[warp] = ls.scale;
    a.mpt_clean[warp] = ls.clean;
    atomicAdd(a.mpt_counts, updates);
    atomicAdd(a.mpt_counts + 1, skipped);
  }
}

// ------------------------------------------------------------------ MuPPET (cpu/muppet.cc Muppet)

/// Muppet::run_fixed (word length a.mu_word_length > 0) or run_fp32 (== 0) per warp: a warp is
/// a worker with its own P and Q scales, lowered as soon as a row outgrows them.  Warps
/// 0..mu_batch_warps-1 record the gradient of their last rating: together the epoch's last
/// mini-batch (the CPU records each thread's last ceil(batch / threads) ratings).
template <class L>
__global__ void __launch_bounds__(kThreads) muppet_kernel(const SgdArgs a) {
  constexpr int E = L::kE;
  const int k = a.k;
  const int lane = lane_id();
  const int64_t warp = warp_id();
  const int wl = a.mu_word_length;
  const float lr = a.lr, lp = a.lambda_p, lq = a.lambda_q;
  const bool SR = a.stochastic;
  detail::FixedFormat fp{}, fq{};
  float fmax_p = 0.f, fmax_q = 0.f;
  if (wl > 0) {
    fp = detail::make_fixed_format(a.mu_frac[2 * warp], wl);
    fq = detail::make_fixed_format(a.mu_frac[2 * warp + 1], wl);
    fmax_p = detail::muppet_range(fp);
    fmax_q = detail::muppet_range(fq);
  }
  unsigned long long rescales = 0;
  float lgp[E], lgq[E];
  bool have = false;
  for_each_warp_rating_f32<L>(a, [&](int32_t u, int32_t i, float r, float* prow, float* qrow, float (&p)[E],
                                     float (&q)[E]) {
    if (wl == 0) {  // FP32 level: Eq. 2-3
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part = detail::dot_step(part, p[c], q[c]);
      const float e = r - warp_sum(part);
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const float pj = p[c], qj = q[c];
        const float dp = detail::descent_change(lr, detail::sgd_grad(e, qj, lp, pj));
        const float dq = detail::descent_change(lr, detail::sgd_grad(e, pj, lq, qj));
        p[c] = a.merge ? dp : pj + dp;  // merge mode: the change (write_f32 adds it)
        q[c] = a.merge ? dq : qj + dq;
      }
    } else {
      const uint64_t key = SR ? detail::rating_round_key(a.mpt_epoch_key, u, i) : 0;
      const float mp = warp_max(lane_max_abs<L>(p)), mq = warp_max(lane_max_abs<L>(q));
      if (mp > fmax_p) {
        fp = detail::make_fixed_format(detail::fixed_frac_bits(mp, wl), wl);
        fmax_p = detail::muppet_range(fp);
        ++rescales;
      }
      if (mq > fmax_q) {
        fq = detail::make_fixed_format(detail::fixed_frac_bits(mq, wl), wl);
        fmax_q = detail::muppet_range(fq);
        ++rescales;
      }
      float ph[E], qh[E];
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
        ph[c] =
            SR ? detail::fixed_round_sr(p[c], fp, detail::round_word(key, 1, jj)) : detail::fixed_round_rn(p[c], fp);
        qh[c] =
            SR ? detail::fixed_round_sr(q[c], fq, detail::round_word(key, 2, jj)) : detail::fixed_round_rn(q[c], fq);
      }
      float part = 0.f;
#pragma unroll
      for (int c = 0; c < E; ++c) part = detail::dot_step(part, ph[c], qh[c]);
      const float e = r - warp_sum(part);
      const detail::FixedFormat fe = detail::make_fixed_format(detail::fixed_frac_bits(fabsf(e), wl), wl);
      const float eh =
          SR ? detail::fixed_round_sr(e, fe, detail::round_one_word(key, 3)) : detail::fixed_round_rn(e, fe);
      const float ae = fabsf(eh);
      const float mqh = warp_max(lane_max_abs<L>(qh)), mph = warp_max(lane_max_abs<L>(ph));
      const detail::FixedFormat fgp = detail::make_fixed_format(detail::fixed_frac_bits(ae * mqh, wl), wl);
      const detail::FixedFormat fgq = detail::make_fixed_format(detail::fixed_frac_bits(ae * mph, wl), wl);
#pragma unroll
      for (int c = 0; c < E; ++c) {
        const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
        const float gp = detail::decay_grad(SR ? detail::fixed_round_sr(eh * qh[c], fgp, detail::round_word(key, 4, jj))
                                               : detail::fixed_round_rn(eh * qh[c], fgp),
                                            lp, ph[c]);
        const float gq = detail::decay_grad(SR ? detail::fixed_round_sr(eh * ph[c], fgq, detail::round_word(key, 5, jj))
                                               : detail::fixed_round_rn(eh * ph[c], fgq),
                                            lq, qh[c]);
        p[c] = a.merge ? detail::descent_change(lr, gp) : detail::descend(p[c], lr, gp);
        q[c] = a.merge ? detail::descent_change(lr, gq) : detail::descend(q[c], lr, gq);
        lgp[c] = gp;
        lgq[c] = gq;
      }
      have = true;
    }
    write_f32<L>(prow, lane, k, p, a.merge);
    write_f32<L>(qrow, lane, k, q, a.merge);
  });
  if (wl > 0) {
    if (have && warp < a.mu_batch_warps) {
      store_f32<L>(a.mu_batch + static_cast<size_t>(warp) * 2 * k, lane, k, lgp);
      store_f32<L>(a.mu_batch + static_cast<size_t>(warp) * 2 * k + k, lane, k, lgq);
      if (lane == 0) a.mu_batch_n[warp] = 1;
    }
    if (lane == 0) {
      a.mu_frac[2 * warp] = fp.frac_bits;
      a.mu_frac[2 * warp + 1] = fq.frac_bits;
      if (rescales) atomicAdd(a.mu_rescales, rescales);
    }
  }
}

// ------------------------------------------------------------------ AFP (cpu/afp.cc Afp)

/// Afp::reevaluate for tensor t of warp state w (every lane holds an identical copy of w);
/// error_at(format) is the warp's quantization error of the tensor's data.
template <class ErrorAt>
__device__ __forceinline__ void afp_reevaluate(AfpWarp& w, int t, float range, bool saturated, long long due_by,
                                               const SgdArgs& a, ErrorAt&& error_at) {
  const detail::FixedFormat f = detail::afp_reevaluate_tensor(
      w.st[t], w.stats[t], range, saturated, a.afp_error_threshold, a.afp_low_bits, a.afp_high_bits, a.afp_alpha,
      a.afp_beta, a.afp_gamma, a.afp_delta, w.iter, due_by, error_at);
  w.fmt[t] = f;
  w.fmax[t] = f.hi * f.inv_scale;
}

/// AFP's error of P's (Q's) data at format f: the rows of the warp's last n iterations, whose
/// indices the lanes hold (lane j: row of slot j), read from `base` (FP32 masters, k-rows).
template <class L>
__device__ __forceinline__ double afp_recent_error(const float* base, int k, int lane_row, int n,
                                                   const detail::FixedFormat& f) {
  constexpr int E = L::kE;
  static_assert(detail::kAfpRecentRows == 32, "one recent row per lane");
  const int lane = lane_id();
  float sa = 0.f, sq = 0.f;
  for (int x = 0; x < n; ++x) {
    const int row = __shfl_sync(0xffffffffu, lane_row, x);
    float v[E];
    load_f32<L>(base + static_cast<size_t>(row) * k, lane, k, v);
#pragma unroll
    for (int c = 0; c < E; ++c) {
      sa += fabsf(v[c]);
      sq += fabsf(detail::fixed_round_rn(v[c], f));
    }
  }
  return detail::afp_quant_error(static_cast<double>(warp_sum(sa)), static_cast<double>(warp_sum(sq)));
}

template <class L>
__global__ void __launch_bounds__(kThreads) afp_kernel(const SgdArgs a) {
  constexpr int E = L::kE;
  const int k = a.k;
  const int lane = lane_id();
  const int64_t warp = warp_id();
  const float lr = a.lr, lp = a.lambda_p, lq = a.lambda_q;
  const bool SR = a.stochastic;
  AfpWarp w = a.afp[warp];                       // this worker's state; identical copies in every lane
  int2 recent = a.afp_recent[warp * 32 + lane];  // this lane's slot of the warp's recent (P, Q) rows
  for_each_warp_rating_f32<L>(
      a, [&](int32_t u, int32_t i, float r, float* prow, float* qrow, float (&p)[E], float (&q)[E]) {
        const uint64_t key = SR ? detail::rating_round_key(a.mpt_epoch_key, u, i) : 0;
        w.run_max[0] = fmaxf(w.run_max[0], warp_max(lane_max_abs<L>(p)));
        w.run_max[1] = fmaxf(w.run_max[1], warp_max(lane_max_abs<L>(q)));
        const float range_p = fmaxf(a.afp_max_p, w.run_max[0]), range_q = fmaxf(a.afp_max_q, w.run_max[1]);
        if (lane == static_cast<int>(w.epoch_iter % 32)) recent = make_int2(u, i);
        const int nrecent = detail::afp_recent_count(w.epoch_iter);
        const long long due_by = detail::afp_due_by(w.epoch_iter, w.iter);
        if (w.iter >= w.st[0].next || range_p > w.fmax[0])
          afp_reevaluate(w, 0, range_p, w.iter < w.st[0].next, due_by, a, [&](const detail::FixedFormat& f) {
            return afp_recent_error<L>(a.U.f32, k, recent.x, nrecent, f);
          });
        if (w.iter >= w.st[1].next || range_q > w.fmax[1])
          afp_reevaluate(w, 1, range_q, w.iter < w.st[1].next, due_by, a, [&](const detail::FixedFormat& f) {
            return afp_recent_error<L>(a.I.f32, k, recent.y, nrecent, f);
          });
        float ph[E], qh[E];
#pragma unroll
        for (int c = 0; c < E; ++c) {
          const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
          ph[c] = SR ? detail::fixed_round_sr(p[c], w.fmt[0], detail::round_word(key, 1, jj))
                     : detail::fixed_round_rn(p[c], w.fmt[0]);
          qh[c] = SR ? detail::fixed_round_sr(q[c], w.fmt[1], detail::round_word(key, 2, jj))
                     : detail::fixed_round_rn(q[c], w.fmt[1]);
        }
        float part = 0.f;
#pragma unroll
        for (int c = 0; c < E; ++c) part = detail::dot_step(part, ph[c], qh[c]);
        const float e = r - warp_sum(part);
        float gp[E], gq[E];
        float mg = 0.f;
#pragma unroll
        for (int c = 0; c < E; ++c) {
          gp[c] = detail::sgd_grad(e, qh[c], lp, ph[c]);
          gq[c] = detail::sgd_grad(e, ph[c], lq, qh[c]);
          mg = fmaxf(mg, fmaxf(fabsf(gp[c]), fabsf(gq[c])));
        }
        const float range_g = warp_max(mg);
        if (w.iter >= w.st[2].next || range_g > w.fmax[2])
          afp_reevaluate(w, 2, range_g, w.iter < w.st[2].next, INT64_MAX, a, [&](const detail::FixedFormat& f) {
            float sa = 0.f, sq = 0.f;  // the iteration's gradient tensor (grad p_u, grad q_i)
#pragma unroll
            for (int c = 0; c < E; ++c) {
              sa += fabsf(gp[c]) + fabsf(gq[c]);
              sq += fabsf(detail::fixed_round_rn(gp[c], f)) + fabsf(detail::fixed_round_rn(gq[c], f));
            }
            return detail::afp_quant_error(static_cast<double>(warp_sum(sa)), static_cast<double>(warp_sum(sq)));
          });
        const detail::FixedFormat fg = w.fmt[2];
#pragma unroll
        for (int c = 0; c < E; ++c) {
          const uint32_t jj = static_cast<uint32_t>(L::elem(lane, c));
          const float g0 = SR ? detail::fixed_round_sr(gp[c], fg, detail::round_word(key, 3, jj))
                              : detail::fixed_round_rn(gp[c], fg);
          const float g1 = SR ? detail::fixed_round_sr(gq[c], fg, detail::round_word(key, 4, jj))
                              : detail::fixed_round_rn(gq[c], fg);
          // merge mode: the change (write_f32 adds it)
          p[c] = a.merge ? detail::descent_change(lr, g0) : detail::descend(p[c], lr, g0);
          q[c] = a.merge ? detail::descent_change(lr, g1) : detail::descend(q[c], lr, g1);
        }
        write_f32<L>(prow, lane, k, p, a.merge);
        write_f32<L>(qrow, lane, k, q, a.merge);
        ++w.iter;
        ++w.epoch_iter;
      });
  if (lane == 0) a.afp[warp] = w;
  a.afp_recent[warp * 32 + lane] = recent;
}

template <class L>
struct MptLaunch {
  static void run(const SgdArgs& a, int blocks) {
    if (a.stochastic)
      MASCOT_LAUNCH(blocks, kThreads, mpt_kernel<L, true>)(a);
    else
      MASCOT_LAUNCH(blocks, kThreads, mpt_kernel<L, false>)(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <class L>
struct MuppetLaunch {
  static void run(const SgdArgs& a, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, muppet_kernel<L>)(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <class L>
struct AfpLaunch {
  static void run(const SgdArgs& a, int blocks) {
    MASCOT_LAUNCH(blocks, kThreads, afp_kernel<L>)(a);
    MASCOT_CUDA_CHECK_LAUNCH();
  }
};
template <class L>
struct CompetingOccupancy {
  static void run(int* out, int which) {
    cudaError_t err;
    switch (which) {
      case 0:
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, muppet_kernel<L>, kThreads, 0);
        break;
      case 1:
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, afp_kernel<L>, kThreads, 0);
        break;
      case 2:
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, mpt_kernel<L, false>, kThreads, 0);
        break;
      default:
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(out, mpt_kernel<L, true>, kThreads, 0);
        break;
    }
    MASCOT_CUDA_CHECK(err);
  }
};

}  // namespace

void launch_mpt(const SgdArgs& a, int blocks) { dispatch_layout<MptLaunch>(a.k, a, blocks); }
void launch_muppet(const SgdArgs& a, int blocks) { dispatch_layout<MuppetLaunch>(a.k, a, blocks); }
void launch_afp(const SgdArgs& a, int blocks) { dispatch_layout<AfpLaunch>(a.k, a, blocks); }
int competing_blocks_per_sm(int k, int which) {
  int n = 1;
  dispatch_layout<CompetingOccupancy>(k, &n, which);
  return n < 1 ? 1 : n;
}

}  // namespace mascot::cuda
