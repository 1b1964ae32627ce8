// MPT (mixed precision training with loss scaling) on the CPU backend (competing_common.h:
// what the three competing methods share).
#include "cpu/competing_common.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/json.h"

namespace mascot::cpu::competing {
namespace {

// Micikevicius et al., "Mixed Precision Training" (ICLR 2018), on MF:
//  * FP32 master weights: P and Q stay FP32; every update is applied to them in FP32.
//  * FP16 copies for the arithmetic: per rating, p_u and q_i are rounded to FP16 (the
//    per-iteration weight cast of MPT; a rating's iteration only uses these two rows).
//  * Forward: the dot product multiplies FP16 values and accumulates in FP32 ("FP16 products
//    accumulated into FP32, then written to FP16"): the prediction is stored as FP16.  The
//    loss (the error e = r - r_hat) is computed in FP32, as MPT keeps loss computations in FP32.
//  * Loss scaling: the backward pass starts from the scaled loss gradient S * e, cast to FP16,
//    and all gradients are FP16: grad p_j = fp16(fp16(S e) * q16_j), grad q_j likewise (one
//    product per element at batch size 1, so "FP32 accumulate" is one exact product rounded to
//    FP16).  The FP16 gradients are unscaled in FP32 (x 1/S) and applied to the FP32 masters
//    with the L2 term (Eq. 2-3), i.e. the regulariser acts as optimizer-side weight decay on
//    the FP32 master, where MPT does its weight update.
//  * Static S (default 1000) or dynamic S (NVIDIA's recipe, starting from loss_scale): an
//    update whose FP16 scaled gradient holds an inf/nan is skipped and S halves; after
//    loss_scale_window clean updates S doubles.  With a static S an overflowing update is
//    skipped too (applying inf/nan would destroy the master) and counted; S = 1000 never
//    overflows on 1..5-star ratings.  One S per worker thread (see MptLossScale): in Hogwild
//    the workers share no mutable state, and "did my update overflow" is local to each
//    worker's stream of updates; a global S would need an atomic per rating for no benefit.
//    An "iteration" of MPT's window is one rating update of that worker.
class Mpt final : public CompetingMethod {
 public:
  Mpt(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        workers_(static_cast<size_t>(std::max(1, threads))) {
    for (auto& w : workers_) {
      w.s.init(k_);
      w.ls.init(c_.loss_scale, c_.dynamic_loss_scale, c_.loss_scale_window);
    }
  }

  void begin_epoch(int epoch, const float*, int64_t, const float*, int64_t) override {
    epoch_ = epoch;
    epoch_key_ = epoch_round_key(seed_, 1, epoch);
    for (auto& w : workers_) w.updates = w.skipped = 0;
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    if (use_avx2())
      stochastic_ ? run_avx2<true>(w, recs, count, P, Q, prm) : run_avx2<false>(w, recs, count, P, Q, prm);
    else
      stochastic_ ? run_generic<true>(w, recs, count, P, Q, prm) : run_generic<false>(w, recs, count, P, Q, prm);
  }

  void end_epoch(int, const float*, int64_t, const float*, int64_t, std::string* json) override {
    int64_t skipped = 0, updates = 0;
    float smin = workers_[0].ls.scale, smax = smin;
    for (const auto& w : workers_) {
      skipped += w.skipped;
      updates += w.updates;
      smin = std::min(smin, w.ls.scale);
      smax = std::max(smax, w.ls.scale);
    }
    skipped_total_ += skipped;
    detail::JsonWriter j;
    j.begin_object();
    j.kv("name", "mpt").kv("dynamic_loss_scale", c_.dynamic_loss_scale);
    j.kv("loss_scale_min", static_cast<double>(smin)).kv("loss_scale_max", static_cast<double>(smax));
    j.key("loss_scales").begin_array();  // per worker thread, after this epoch
    for (const auto& w : workers_) j.value(static_cast<double>(w.ls.scale));
    j.end_array();
    j.kv("updates", updates).kv("skipped_updates", skipped).kv("skipped_total", skipped_total_);
    j.end_object();
    *json = j.str();
  }

  // checkpoint: per-worker loss scales and clean-update counters, the run's skip count
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("mpt");
    w.pod(static_cast<uint64_t>(workers_.size()));
    for (const auto& x : workers_) w.pod(x.ls);
    w.pod(skipped_total_);
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "mpt state");
    if (r.str() != "mpt") r.fail("not an mpt state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    for (auto& x : workers_) {
      x.ls = r.pod<detail::MptLossScale>();
      if (!bool_byte_ok(x.ls.dynamic)) r.fail("loss scale state out of range or from other settings");
      if (!(x.ls.scale >= detail::MptLossScale::kMin && x.ls.scale <= detail::MptLossScale::kMax) || x.ls.clean < 0 ||
          x.ls.dynamic != c_.dynamic_loss_scale || x.ls.window != c_.loss_scale_window)
        r.fail("loss scale state out of range or from other settings");
    }
    skipped_total_ = r.pod<int64_t>();
    r.expect_done();
  }

 private:
  struct alignas(64) Worker {
    detail::MptLossScale ls;
    int64_t updates = 0, skipped = 0;
    Scratch s;
  };

  template <bool SR>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR, true>(w, recs, count, P, Q, prm);
  }
  template <bool SR>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR, false>(w, recs, count, P, Q, prm);
  }

  template <bool SR, bool F16C>
  MASCOT_FORCE_INLINE void run(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict gp = w.s.c.data();
    float* __restrict gq = w.s.d.data();
    uint32_t* __restrict rw = w.s.w.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<SR>(
        recs, count, P, Q, k, epoch_key_,
        [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q,
            uint64_t key) MASCOT_FORCE_INLINE_LAMBDA {
          // FP16 copies of the FP32 masters
          if (SR) {
            fill_words(rw, k, key, 1);
            for (int j = 0; j < k; ++j) ph[j] = detail::half_sr_value(p[j], rw[j]);
            fill_words(rw, k, key, 2);
            for (int j = 0; j < k; ++j) qh[j] = detail::half_sr_value(q[j], rw[j]);
          } else {
            half_rn_row<F16C>(ph, p, 1.0f, k);
            half_rn_row<F16C>(qh, q, 1.0f, k);
          }
          // forward: FP16 products, FP32 accumulation, FP16 output; FP32 loss
          const float dot = dot16(ph, qh, k);
          const float rhat = SR ? detail::half_sr_value(dot, one_word(key, 3)) : detail::half_rn_value(dot);
          const float e = rec.r - rhat;
          // backward in FP16 on the scaled loss gradient
          const float S = w.ls.scale;
          const float se = SR ? detail::half_sr_value(S * e, one_word(key, 4)) : detail::half_rn_value(S * e);
          if (SR) {
            fill_words(rw, k, key, 5);
            for (int j = 0; j < k; ++j) gp[j] = detail::half_sr_value(se * qh[j], rw[j]);
            fill_words(rw, k, key, 6);
            for (int j = 0; j < k; ++j) gq[j] = detail::half_sr_value(se * ph[j], rw[j]);
          } else {
            half_rn_row<F16C>(gp, qh, se, k);
            half_rn_row<F16C>(gq, ph, se, k);
          }
          // overflow: inf/nan in the FP16 scaled gradient.  With nearest rounding that is exactly
          // an FP16 value that is not finite; stochastic rounding saturates at 65504 instead, so
          // there it is a value that nearest rounding would have sent to inf (|x| >= 65520).
          bool overflow = !(std::fabs(se) <= kHalfMax) || count_half_overflow(gp, k) + count_half_overflow(gq, k) > 0;
          if (SR)
            overflow = overflow || !(std::fabs(S * e) < 65520.0f) || !(std::fabs(se) * max_abs16(qh, k) < 65520.0f) ||
                       !(std::fabs(se) * max_abs16(ph, k) < 65520.0f);
          ++w.updates;
          if (!w.ls.step(overflow)) {
            ++w.skipped;
            return;  // next rating
          }
          // unscale in FP32, update the FP32 masters (Eq. 2-3; L2 term on the master)
          const float inv = 1.0f / S;
          if (prm.ada_u) {
            adagrad_masters(
                p, q, k, rec, prm, [&](int j, float pj, float) { return detail::decay_grad(gp[j] * inv, lp, pj); },
                [&](int j, float, float qj) { return detail::decay_grad(gq[j] * inv, lq, qj); });
            return;
          }
          for (int j = 0; j < k; ++j) {
            const float pj = p[j], qj = q[j];
            p[j] = detail::descend(pj, lr, detail::decay_grad(gp[j] * inv, lp, pj));
            q[j] = detail::descend(qj, lr, detail::decay_grad(gq[j] * inv, lq, qj));
          }
        });
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  int epoch_ = 0;
  uint64_t epoch_key_ = 0;
  int64_t skipped_total_ = 0;
  std::vector<Worker> workers_;
};

}  // namespace

std::unique_ptr<CompetingMethod> make_mpt(const TrainConfig& cfg, int threads, uint64_t seed) {
  return std::make_unique<Mpt>(cfg, threads, seed);
}

}  // namespace mascot::cpu::competing
