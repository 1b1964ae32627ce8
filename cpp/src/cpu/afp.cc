// AFP (adaptive fixed-point training) on the CPU backend (competing_common.h: what the three
// competing methods share).
#include "cpu/competing_common.h"
#include "mascot/detail/afp_report.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/competing_params.h"

namespace mascot::cpu::competing {
namespace {

// Zhang et al., "Fixed-Point Back-Propagation Training" (CVPR 2020; arXiv 1911.00361 "Adaptive
// Precision Training"), on MF:
//  * Tensors: each layer's data is quantized to dynamic fixed point with a shared point
//    position s (step 2^s, s = ceil(log2(max|x| / (2^(n-1) - 1))), no clamping of the
//    maximum) and its own bit width n.  MF's tensors: P and Q (the layers' weights, operands
//    of the forward dot product and of the backward pass) and G, the back-propagated
//    gradients of the iteration (grad p_u = e q_hat - lambda_P p_hat and grad q_i, the data
//    the weight update is computed from); the updates go to the FP32 masters.  The loss
//    gradient e itself is FP32 (the loss layer), computed from the fixed-point dot product.
//  * Bit width (AFP's layer-wise precision rule): at every re-evaluation the quantization
//    error diff = log2(|sum|x| - sum|x_q|| / sum|x| + 1) is measured at 8 bits, and above the
//    threshold the tensor uses 16 bits until its next re-evaluation (AFP's "+8 bits", within
//    the 8/16 bits the MASCOT paper uses for AFP), else 8 bits.
//  * Update interval (AFP's rule): the quantization parameters (s, n) of a tensor are only
//    re-evaluated every I iterations, I = beta / max(delta diff^2, |m_t - m_(t-1)|) - gamma,
//    m the moving average of s (m starts at the first s); in between the stale parameters
//    are used.  An iteration is one rating (batch size 1).
//  * Saturation guard (the one addition to AFP's schedule): a re-evaluation is also due as
//    soon as the tensor's max |x| no longer fits the point position in use.  AFP picks s so
//    that the largest value never saturates and lengthens the interval while s is stable,
//    presuming the layer's range drifts slowly, as it does in CNNs.  MF latent vectors grow
//    ~20-50x from their initialisation (sigma = 0.01) in the first epochs, and the very first
//    interval is enormous (|m_1 - m_0| = 0 and delta diff^2 ~ 1e-11 at 16 bits give I ~ 1e8),
//    so without the guard the initial s is frozen for the whole run: the quantized weights
//    saturate at 2^15 2^s ~ 0.06, the error never shrinks and training diverges (measured:
//    test RMSE 32 after 20 epochs on synthetic-ml10m:0.01).  The report counts the guard's
//    re-evaluations ("saturation_evaluations").
//  * What is measured at a re-evaluation: AFP measures a layer's data (the whole tensor) at
//    the iteration of the re-evaluation.  For P and Q the range (max |x|) is the tensor's
//    own: its max |x| at the start of the epoch (a scan of the whole tensor, as AFP takes the
//    whole layer's max) raised by every row the worker has read since (a running max: the
//    tensor's max is at least that, so the shared scale follows the tensor without
//    rescanning it).  The quantization error, which decides the width, is measured on the
//    rows the worker read in its last kAfpRecentRows (32) iterations of the epoch, the
//    current one included (competing_params.h: one row's k values scatter too much, every
//    tensor went to 16 bits at its first re-evaluation; the whole tensor per re-evaluation
//    would cost O(rows x k)).  For G the data of the iteration is its whole gradient tensor
//    (grad p_u, grad q_i: batch size 1).
//  * One state (s, n, m, next iteration) per tensor per worker thread: AFP's state is a
//    per-layer sequence of decisions along the iterations; Hogwild workers run their own
//    iteration streams, so each worker applies the rule to its stream (as the MASCOT
//    authors' AFP code does per GPU warp), without shared mutable state.
class Afp final : public CompetingMethod {
 public:
  enum { kP = 0, kQ = 1, kG = 2, kTensors = 3 };

  Afp(const TrainConfig& cfg, int threads, uint64_t seed)
      : c_(cfg.competing), stochastic_(cfg.rounding == Rounding::kStochastic), k_(cfg.k), seed_(seed),
        workers_(static_cast<size_t>(std::max(1, threads))) {
    for (auto& w : workers_) {
      w.s.init(k_);
      w.g2.assign(static_cast<size_t>(2 * k_), 0.f);
      w.gq2.assign(static_cast<size_t>(2 * k_), 0.f);
      for (auto& st : w.st) {
        st.bits = c_.afp_low_bits;
        st.next = 0;
      }
    }
  }

  void begin_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n) override {
    epoch_key_ = epoch_round_key(seed_, 3, epoch);
    max_p_ = tensor_max_abs(P, m * k_);
    max_q_ = tensor_max_abs(Q, n * k_);
    for (auto& w : workers_) {
      w.run_max[kP] = w.run_max[kQ] = 0.f;
      w.epoch_iter = 0;
      for (auto& s : w.stats) s = Stats{};
    }
  }

  void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) override {
    Worker& w = workers_[static_cast<size_t>(tid)];
    if (use_avx2())
      stochastic_ ? run_avx2<true>(w, recs, count, P, Q, prm) : run_avx2<false>(w, recs, count, P, Q, prm);
    else
      stochastic_ ? run_generic<true>(w, recs, count, P, Q, prm) : run_generic<false>(w, recs, count, P, Q, prm);
  }

  void end_epoch(int, const float*, int64_t, const float*, int64_t, std::string* json) override {
    static_assert(kTensors == 3, "afp_epoch_json reports P, Q and G");
    *json = detail::afp_epoch_json(workers_, c_, max_p_, max_q_);
  }

  // checkpoint: each worker's tensor states (bits, point position, moving average, next
  // re-evaluation), its formats in use and its iteration count; stats are per epoch
  std::string export_state() const override {
    detail::BinWriter w;
    w.str("afp");
    w.pod(static_cast<uint64_t>(workers_.size()));
    for (const auto& x : workers_) {
      for (int t = 0; t < kTensors; ++t) {
        w.pod(x.st[t]);
        w.pod(x.fmt[t]);
        w.pod(x.fmax[t]);
      }
      w.pod(x.iter);
    }
    return w.bytes();
  }
  void import_state(const std::string& blob) override {
    detail::BinReader r(blob, "afp state");
    if (r.str() != "afp") r.fail("not an afp state");
    if (r.pod<uint64_t>() != workers_.size()) r.fail("saved with a different number of threads");
    for (auto& x : workers_) {
      for (int t = 0; t < kTensors; ++t) {
        r.pod(&x.st[t]);
        r.pod(&x.fmt[t]);
        r.pod(&x.fmax[t]);
        const auto& st = x.st[t];
        const auto& f = x.fmt[t];
        if ((st.bits != c_.afp_low_bits && st.bits != c_.afp_high_bits) || st.pos < -300 || st.pos > 300 ||
            st.next < 0 || st.interval < 0 || !bool_byte_ok(st.has_avg) || !(std::fabs(st.mov_avg) <= 300) ||
            !format_ok(f) || !std::isfinite(x.fmax[t]))
          r.fail("tensor state out of range or from other settings");
      }
      r.pod(&x.iter);
      if (x.iter < 0) r.fail("negative iteration count");
    }
    r.expect_done();
  }

 private:
  struct Stats {
    int64_t evals = 0, saturated = 0, to_high = 0, itv_max = 0;
    double err_sum = 0, err_max = 0, itv_sum = 0;
  };
  struct alignas(64) Worker {
    detail::AfpTensorState st[kTensors];
    FixedFormat fmt[kTensors]{};
    float fmax[kTensors] = {0.f, 0.f, 0.f};  // largest value fmt can hold
    Stats stats[kTensors];
    float run_max[2] = {0.f, 0.f};
    int64_t iter = 0;                           // this worker's iterations (ratings), across epochs
    int64_t epoch_iter = 0;                     // ... in this epoch
    int32_t recent[2][detail::kAfpRecentRows];  // P, Q rows of the last iterations (slot = epoch_iter % 32)
    Scratch s;
    std::vector<float> g2;   // gradient of the iteration (p part, q part) for measuring G
    std::vector<float> gq2;  // ... quantized by this iteration's re-evaluation of G
  };

  /// A re-evaluation of tensor t at this iteration (AFP's rule, competing_params.h): its data
  /// are `rows` rows of k values (P, Q: the recent rows; G: the iteration's two gradient rows),
  /// row(x) the x-th; its max |x| is range.  out: where the rows quantized to the format
  /// chosen go (rows x k), or null.
  template <class Row>
  void reevaluate(Worker& w, int t, int rows, Row&& row, float range, bool saturated, int64_t due_by,
                  float* out = nullptr) {
    detail::AfpTensorState& st = w.st[t];
    Stats& s = w.stats[t];
    float* tmp = w.s.c.data();
    const int k = k_;
    // Nearest rounding: the format's error, not one draw's.  sum |x| (each row's float sum,
    // added in double) does not depend on the format, so it is taken once; sum |x_q| is one
    // fused pass per row and format.  The last call is at the format chosen, so `out` ends up
    // holding the data in that format.
    double sum_abs = -1;
    auto error_at = [&](const FixedFormat& f) {
      if (sum_abs < 0) {
        sum_abs = 0;
        for (int x = 0; x < rows; ++x) sum_abs += sum_abs16(row(x), k);
      }
      double sq = 0;
      for (int x = 0; x < rows; ++x)
        sq += fixed_row_rn_sum_abs(out ? out + static_cast<size_t>(x) * k : tmp, row(x), k, f);
      return detail::afp_quant_error(sum_abs, sq);
    };
    const FixedFormat f = detail::afp_reevaluate_tensor(st, s, range, saturated, c_.afp_error_threshold,
                                                        c_.afp_low_bits, c_.afp_high_bits, c_.afp_alpha, c_.afp_beta,
                                                        c_.afp_gamma, c_.afp_delta, w.iter, due_by, error_at);
    w.fmt[t] = f;
    w.fmax[t] = f.hi * f.inv_scale;
  }

  template <bool SR>
  MASCOT_TARGET_AVX2 void run_avx2(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR>(w, recs, count, P, Q, prm);
  }
  template <bool SR>
  void run_generic(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    run<SR>(w, recs, count, P, Q, prm);
  }

  template <bool SR>
  MASCOT_FORCE_INLINE void run(Worker& w, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) {
    const int k = k_;
    float* __restrict ph = w.s.a.data();
    float* __restrict qh = w.s.b.data();
    float* __restrict g = w.g2.data();    // g[0..k): grad p, g[k..2k): grad q
    float* __restrict gq = w.gq2.data();  // G quantized by a re-evaluation (nearest rounding)
    uint32_t* __restrict rw = w.s.w.data();
    const float lr = prm.lr, lp = prm.lambda_p, lq = prm.lambda_q;
    for_each_rating<SR>(
        recs, count, P, Q, k, epoch_key_,
        [&]([[maybe_unused]] size_t x, const Rec& rec, float* __restrict p, float* __restrict q, uint64_t key)
            MASCOT_FORCE_INLINE_LAMBDA {
              // P and Q: re-evaluate when the interval is over, or when the tensor outgrew its range
              w.run_max[kP] = std::max(w.run_max[kP], max_abs16(p, k));
              w.run_max[kQ] = std::max(w.run_max[kQ], max_abs16(q, k));
              const float range_p = std::max(max_p_, w.run_max[kP]), range_q = std::max(max_q_, w.run_max[kQ]);
              const int slot = static_cast<int>(w.epoch_iter % detail::kAfpRecentRows);
              w.recent[kP][slot] = rec.u;
              w.recent[kQ][slot] = rec.i;
              const int nrecent = detail::afp_recent_count(w.epoch_iter);
              const int64_t due_by = detail::afp_due_by(w.epoch_iter, w.iter);
              if (w.iter >= w.st[kP].next || range_p > w.fmax[kP])
                reevaluate(
                    w, kP, nrecent, [&](int x) { return P + static_cast<size_t>(w.recent[kP][x]) * k; }, range_p,
                    w.iter < w.st[kP].next, due_by);
              if (w.iter >= w.st[kQ].next || range_q > w.fmax[kQ])
                reevaluate(
                    w, kQ, nrecent, [&](int x) { return Q + static_cast<size_t>(w.recent[kQ][x]) * k; }, range_q,
                    w.iter < w.st[kQ].next, due_by);
              if (SR) {
                fill_words(rw, k, key, 1);
                fixed_row_sr(ph, p, k, w.fmt[kP], rw);
                fill_words(rw, k, key, 2);
                fixed_row_sr(qh, q, k, w.fmt[kQ], rw);
              } else {
                fixed_row_rn(ph, p, k, w.fmt[kP]);
                fixed_row_rn(qh, q, k, w.fmt[kQ]);
              }
              const float e = rec.r - dot16(ph, qh, k);
              for (int j = 0; j < k; ++j) {
                g[j] = detail::sgd_grad(e, qh[j], lp, ph[j]);
                g[k + j] = detail::sgd_grad(e, ph[j], lq, qh[j]);
              }
              // G: the iteration's data is its whole gradient tensor (grad p_u, grad q_i).  With
              // nearest rounding a re-evaluation leaves G quantized to its new format in gq.
              const float range_g = std::max(max_abs16(g, k), max_abs16(g + k, k));
              bool have_gq = false;
              if (w.iter >= w.st[kG].next || range_g > w.fmax[kG]) {
                reevaluate(
                    w, kG, 2, [&](int x) { return g + x * k; }, range_g, w.iter < w.st[kG].next, INT64_MAX,
                    SR ? nullptr : gq);
                have_gq = !SR;
              }
              const FixedFormat fg = w.fmt[kG];
              if (SR) {
                fill_words(rw, k, key, 3);
                fixed_inplace_sr(g, k, fg, rw);
                fill_words(rw, k, key, 4);
                fixed_inplace_sr(g + k, k, fg, rw);
              } else if (!have_gq) {
                fixed_inplace_rn(g, 2 * k, fg);
              }
              const float* gu = have_gq ? gq : g;
              if (prm.ada_u) {
                adagrad_masters(
                    p, q, k, rec, prm, [&](int j, float, float) { return gu[j]; },
                    [&](int j, float, float) { return gu[k + j]; });
              } else {
                for (int j = 0; j < k; ++j) {
                  p[j] = detail::descend(p[j], lr, gu[j]);
                  q[j] = detail::descend(q[j], lr, gu[k + j]);
                }
              }
              ++w.iter;
              ++w.epoch_iter;
            });
  }

  CompetingParams c_;
  bool stochastic_;
  int k_;
  uint64_t seed_;
  uint64_t epoch_key_ = 0;
  float max_p_ = 0, max_q_ = 0;
  std::vector<Worker> workers_;
};

}  // namespace

std::unique_ptr<CompetingMethod> make_afp(const TrainConfig& cfg, int threads, uint64_t seed) {
  return std::make_unique<Afp>(cfg, threads, seed);
}

}  // namespace mascot::cpu::competing
