// MuPPET (multi-precision policy enforced training) on the CPU backend (competing_common.h:
// what the three competing methods share).
#include "cpu/competing_common.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/muppet_report.h"

namespace mascot::cpu::competing {
namespace {

// Rajagopal et al., "Multi-Precision Policy Enforced Training (MuPPET)", ICML 2020, and its
// code (github.com/ICIdsl/muppet), on MF:
//  * Precision levels: dynamic fixed point at word lengths 8 -> 12 -> 14 -> 16, then FP32
//    (Prec_Schedule 8 12 14 16 -1); updates always go to the FP32 masters (quant_sgd.py keeps
//    fpWeights and re-quantizes the weights from them).
//  * Weights: per-layer ("block floating point") scale 2^f chosen from the layer's max |w|
//    (quantize.py findSfAndScale).  MF's two layers are P and Q.  MuPPET re-derives the scale
//    from the whole FP32 tensor after every step (quant_sgd.py).  Scanning P (m x k) per
//    rating is impossible, so: at the start of each epoch the scale of P and of Q comes from
//    a scan of the whole tensor (begin_epoch), and during the epoch a worker lowers its
//    fractional bits as soon as a row it reads has outgrown them - the tensor's max can only
//    have grown to at least that row's max, which is what MuPPET's per-step rescaling would
//    follow.  (Values that shrink keep the epoch's scale until the next scan.)  Holding the
//    begin-of-epoch scale for the whole epoch instead saturates the fast-growing early MF
//    weights: measured on synthetic-ml10m:0.01 (k = 16, 20 epochs) the test RMSE jumps from
//    3.73 to 4.9 in epoch 1 and ends 1.1 % above FP32; following the tensor it tracks FP32
//    (within 0.01 %).
//  * Forward: p_hat, q_hat quantized, dot product of the quantized values accumulated in FP32
//    (MuPPET: integer products, 32-bit accumulation).
//  * Backward: MuPPET quantizes every back-propagated gradient tensor with its own dynamic
//    scale at the call (scaler.py backward hook).  MF's only back-propagated gradient is the
//    loss gradient e = r - r_hat, a one-element tensor at batch size 1: it is quantized to WL
//    bits with a scale from |e|.  The weight gradients are computed from the quantized
//    operands and, as quant_sgd.py does with p.grad, quantized to WL bits with a per-tensor
//    scale taken from the gradient itself: P's gradient tensor at one rating is the row
//    e_hat * q_hat (all other rows are zero), so its scale comes from max_j |e_hat q_hat_j|.
//    Weight decay is added after that quantization, in FP32, on the quantized weights
//    (quant_sgd.py: d_p = Q(grad) + wd * p.data):  p += lr (Q(e_hat q_hat) - lambda_P p_hat).
//  * Switching (policy.py): at the end of each epoch the gradient of the epoch's last
//    mini-batch is recorded per layer; every r epochs the inter-epoch gradient diversity of
//    each layer over the last r epochs, sum_j ||g_j||^2 / ||sum_j g_j||^2, is averaged over
//    the layers and fed to MuppetPolicy (competing_params.h).
//    Mapping of "the gradient of the last mini-batch of epoch j" to MF: the mini-batch is the
//    last muppet_batch (128, MuPPET's batch size) ratings of the epoch, split over the worker
//    threads (each thread records its last ceil(128 / threads) ratings; the union is the
//    epoch's last mini-batch); the layer gradient of a mini-batch is the sum of its ratings'
//    gradients.  Literally that is a sparse m x k matrix whose few non-zero rows differ from
//    epoch to epoch (batch size 1, rows of different users are orthogonal), which would make
//    every inter-epoch diversity ~1 and the policy blind.  As the MASCOT paper does when it
//    applies gradient diversity to MF (Eq. 4: ||sum_u grad p_u||^2 / sum_u ||grad p_u||^2 over
//    k-vectors of different users) and as the MASCOT authors' MuPPET code does, the rows are
//    summed as k-vectors: g_P^j = sum over the mini-batch of the recorded gradient of p_u
//    (Q likewise), which keeps the latent dimensions - the parameters every rating shares,
//    like a convolution's filter - as the tensor.  P and Q stay separate layers (the
//    reference code mixed them into one vector).  The recorded gradient is what policy.py
//    reads from p.grad after the step: the quantized gradient plus weight decay.
//    Decisions only at fixed-point levels; the FP32 level records nothing (policy.py).
//    MuPPET's extra FP32 learning-rate schedule (Fp32_Epochs_Per_Lr) has no counterpart:
//    the epochs and the learning-rate schedule are the trainer's, shared by all methods.
class Muppet final : public CompetingMethod {
 public:
  Muppet(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        threads_(std::max(1, threads)), workers_(static_cast<size_t>(threads_)) {
    policy_.levels = static_cast<int>(c_.muppet_word_lengths.size());
    batch_per_thread_ = (c_.muppet_batch + threads_ - 1) / threads_;
    for (auto& w : workers_) {
      w.s.init(k_);
      w.bp.assign(static_cast<size_t>(k_), 0.f);
      w.bq.assign(static_cast<size_t>(k_), 0.f);
    }
    win_.reset(k_);
  }

  void begin_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n) override {
    epoch_key_ = epoch_round_key(seed_, 2, epoch);
    wl_ = policy_.fp32() ? 0 : c_.muppet_word_lengths[static_cast<size_t>(policy_.level)];
    if (wl_ > 0) {
      max_p_ = tensor_max_abs(P, m * k_);
      max_q_ = tensor_max_abs(Q, n * k_);
      fp_ = detail::make_fixed_format(detail::fixed_frac_bits(max_p_, wl_), wl_);
      fq_ = detail::make_fixed_format(detail::fixed_frac_bits(max_q_, wl_), wl_);
    }
    for (auto& w : workers_) {
      std::fill(w.bp.begin(), w.bp.end(), 0.f);
      std::fill(w.bq.begin(), w.bq.end(), 0.f);
      w.bn = 0;
      w.fp = fp_;
      w.fq = fq_;
      w.rescales = 0;
    }
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    const int v = wl_ == 0 ? 0 : stochastic_ ? 2 : 1;
    if (use_avx2()) {
      if (v == 0)
        run_avx2<0>(w, recs, count, P, Q, prm);
      else if (v == 1)
        run_avx2<1>(w, recs, count, P, Q, prm);
      else
        run_avx2<2>(w, recs, count, P, Q, prm);
    } else {
      if (v == 0)
        run_generic<0>(w, recs, count, P, Q, prm);
      else if (v == 1)
        run_generic<1>(w, recs, count, P, Q, prm);
      else
        run_generic<2>(w, recs, count, P, Q, prm);
    }
  }

  void end_epoch(int epoch, const float*, int64_t, const float*, int64_t, std::string* json) override {
    detail::MuppetEpochFacts f;
    f.word_length = wl_;
    std::vector<double> gp, gq;
    if (wl_ > 0) {
      // this epoch's last mini-batch gradient per layer: the union of the workers' last ratings
      gp.assign(static_cast<size_t>(k_), 0.0);
      gq.assign(static_cast<size_t>(k_), 0.0);
      f.frac_p = f.frac_p_end = fp_.frac_bits;
      f.frac_q = f.frac_q_end = fq_.frac_bits;
      for (const auto& w : workers_) {
        f.batch += w.bn;
        for (int j = 0; j < k_; ++j) {
          gp[j] += w.bp[j];
          gq[j] += w.bq[j];
        }
        f.frac_p_end = std::min(f.frac_p_end, w.fp.frac_bits);
        f.frac_q_end = std::min(f.frac_q_end, w.fq.frac_bits);
        f.rescales += w.rescales;
      }
      f.max_p = max_p_;
      f.max_q = max_q_;
    }
    *json = detail::muppet_end_epoch(c_, epoch, f, gp, gq, &win_, &policy_, &switches_);
  }

  // checkpoint: the policy (level, max diversity, violations), the open diversity window and
  // the switch history; everything else is re-derived in begin_epoch
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("muppet");
    w.pod(static_cast<uint64_t>(workers_.size()));
    w.pod(policy_);
    w.vec(win_.p);
    w.vec(win_.q);
    w.pod(win_.norm_p);
    w.pod(win_.norm_q);
    w.vec(switches_);
    w.pod(fp_);
    w.pod(fq_);
    w.pod(max_p_);
    w.pod(max_q_);
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "muppet state");
    if (r.str() != "muppet") r.fail("not a muppet state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    policy_ = r.pod<detail::MuppetPolicy>();
    if (!bool_byte_ok(policy_.evaluated) || !std::isfinite(policy_.max_gd) || !std::isfinite(policy_.ratio) ||
        !std::isfinite(policy_.threshold) || policy_.violations < 0 || !std::isfinite(policy_.compared_max) ||
        policy_.violations_seen < 0)
      r.fail("policy state out of range");
    win_.p = r.vec<double>();
    win_.q = r.vec<double>();
    if (win_.p.size() != static_cast<size_t>(k_) || win_.q.size() != static_cast<size_t>(k_)) r.fail("wrong k");
    r.pod(&win_.norm_p);
    r.pod(&win_.norm_q);
    switches_ = r.vec<int>();
    r.pod(&fp_);
    r.pod(&fq_);
    r.pod(&max_p_);
    r.pod(&max_q_);
    r.expect_done();
    if (policy_.levels != static_cast<int>(c_.muppet_word_lengths.size()) || policy_.level < 0 ||
        policy_.level > policy_.levels)
      r.fail("policy level out of range");
    if (!format_ok(fp_) || !format_ok(fq_)) r.fail("fixed-point format out of range");
  }

 private:
  struct alignas(64) Worker {
    Scratch s;
    std::vector<float> bp, bq;  // gradient sums of this worker's last ratings of the epoch
    int64_t bn = 0;
    FixedFormat fp{}, fq{};  // this worker's scales of P and Q (the epoch's, lowered on growth)
    int64_t rescales = 0;
  };

  /// V: 0 FP32 level, 1 fixed point with nearest rounding, 2 fixed point with stochastic rounding.
  template <int V>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    if (V == 0)
      run_fp32(recs, count, P, Q, prm);
    else
      run_fixed<V == 2>(w, recs, count, P, Q, prm);
  }
  template <int V>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    if (V == 0)
      run_fp32(recs, count, P, Q, prm);
    else
      run_fixed<V == 2>(w, recs, count, P, Q, prm);
  }

  MASCOT_FORCE_INLINE void run_fp32(const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<false>(recs, count, P, Q, k, 0,
                           [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q,
                               [[maybe_unused]] uint64_t key) MASCOT_FORCE_INLINE_LAMBDA {
                             const float e = rec.r - dot16(p, q, k);
                             if (prm.ada_u) {
                               adagrad_masters(
                                   p, q, k, rec, prm,
                                   [&](int, float pj, float qj) { return detail::sgd_grad(e, qj, lp, pj); },
                                   [&](int, float pj, float qj) { return detail::sgd_grad(e, pj, lq, qj); });
                               return;
                             }
                             for (int j = 0; j < k; ++j) {
                               const float pj = p[j], qj = q[j];
                               p[j] = detail::descend(pj, lr, detail::sgd_grad(e, qj, lp, pj));
                               q[j] = detail::descend(qj, lr, detail::sgd_grad(e, pj, lq, qj));
                             }
                           });
  }

  template <bool SR>
  MASCOT_FORCE_INLINE void run_fixed(Worker& w, const Rec* recs, size_t count, float* P, float* Q,
                                     const SgdParams& prm) {
    const int k = k_, wl = wl_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict gp = w.s.c.data();
    float* __restrict gq = w.s.d.data();
    uint32_t* __restrict rw = w.s.w.data();
    float* __restrict bp = w.bp.data();
    float* __restrict bq = w.bq.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    FixedFormat fp = w.fp, fq = w.fq;
    float fmax_p = detail::muppet_range(fp), fmax_q = detail::muppet_range(fq);
    // the worker's last ratings of the epoch: the tail of this call (a later call replaces it)
    const size_t B = static_cast<size_t>(batch_per_thread_);
    if (count >= B || static_cast<size_t>(w.bn) + count > B) {
      std::fill(w.bp.begin(), w.bp.end(), 0.f);
      std::fill(w.bq.begin(), w.bq.end(), 0.f);
      w.bn = 0;
    }
    const size_t tail = count > B ? count - B : 0;
    for_each_rating<SR>(
        recs, count, P, Q, k, epoch_key_,
        [&](size_t x, const Rec& rec, float* __restrict p, float* __restrict q, uint64_t key)
            MASCOT_FORCE_INLINE_LAMBDA {
              // the layer scale follows the tensor's growth (see above)
              const float mp = max_abs16(p, k), mq = max_abs16(q, k);
              if (mp > fmax_p) {
                fp = detail::make_fixed_format(detail::fixed_frac_bits(mp, wl), wl);
                fmax_p = detail::muppet_range(fp);
                ++w.rescales;
              }
              if (mq > fmax_q) {
                fq = detail::make_fixed_format(detail::fixed_frac_bits(mq, wl), wl);
                fmax_q = detail::muppet_range(fq);
                ++w.rescales;
              }
              // forward on the per-layer quantized weights
              if (SR) {
                fill_words(rw, k, key, 1);
                fixed_row_sr(ph, p, k, fp, rw);
                fill_words(rw, k, key, 2);
                fixed_row_sr(qh, q, k, fq, rw);
              } else {
                fixed_row_rn(ph, p, k, fp);
                fixed_row_rn(qh, q, k, fq);
              }
              const float e = rec.r - dot16(ph, qh, k);
              // back-propagated gradient (one element): own dynamic scale
              const FixedFormat fe = detail::make_fixed_format(detail::fixed_frac_bits(std::fabs(e), wl), wl);
              const float eh = SR ? detail::fixed_round_sr(e, fe, one_word(key, 3)) : detail::fixed_round_rn(e, fe);
              // weight gradients (data term) from the quantized operands, quantized with their own scale
              const float ae = std::fabs(eh);
              const FixedFormat fgp = detail::make_fixed_format(detail::fixed_frac_bits(ae * max_abs16(qh, k), wl), wl);
              const FixedFormat fgq = detail::make_fixed_format(detail::fixed_frac_bits(ae * max_abs16(ph, k), wl), wl);
              // (quantize e_hat * q_hat, then + weight decay on the quantized weights; the same
              // operations as separate passes, fused)
              if (SR) {
                fill_words(rw, k, key, 4);
                for (int j = 0; j < k; ++j)
                  gp[j] = detail::decay_grad(detail::fixed_round_sr(eh * qh[j], fgp, rw[j]), lp, ph[j]);
                fill_words(rw, k, key, 5);
                for (int j = 0; j < k; ++j)
                  gq[j] = detail::decay_grad(detail::fixed_round_sr(eh * ph[j], fgq, rw[j]), lq, qh[j]);
              } else {
                for (int j = 0; j < k; ++j) {
                  gp[j] = detail::decay_grad(detail::fixed_round_rn(eh * qh[j], fgp), lp, ph[j]);
                  gq[j] = detail::decay_grad(detail::fixed_round_rn(eh * ph[j], fgq), lq, qh[j]);
                }
              }
              // FP32 update of the masters
              if (prm.ada_u) {
                adagrad_masters(
                    p, q, k, rec, prm, [&](int j, float, float) { return gp[j]; },
                    [&](int j, float, float) { return gq[j]; });
              } else {
                for (int j = 0; j < k; ++j) {
                  p[j] = detail::descend(p[j], lr, gp[j]);
                  q[j] = detail::descend(q[j], lr, gq[j]);
                }
              }
              if (x >= tail) {
                for (int j = 0; j < k; ++j) {
                  bp[j] += gp[j];
                  bq[j] += gq[j];
                }
                ++w.bn;
              }
            });
    w.fp = fp;
    w.fq = fq;
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  int threads_;
  int batch_per_thread_ = 1;
  uint64_t epoch_key_ = 0;
  detail::MuppetPolicy policy_;
  int wl_ = 0;  // this epoch's word length, 0 = FP32
  float max_p_ = 0, max_q_ = 0;
  FixedFormat fp_{}, fq_{};
  detail::MuppetWindow win_;  ///< gradient-diversity window (policy.py sumOfGrads / sumOfNorms)
  std::vector<int> switches_;
  std::vector<Worker> workers_;
};

}  // namespace

std::unique_ptr<CompetingMethod> make_muppet(const TrainConfig& cfg, int threads, uint64_t seed) {
  return std::make_unique<Muppet>(cfg, threads, seed);
}

}  // namespace mascot::cpu::competing
