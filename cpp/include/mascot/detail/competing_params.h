// Parameters of the competing methods (mpt, muppet, afp) and of ALS, embedded in TrainConfig, and the
// three methods' decision rules as small pure state machines (host and device: the CPU
// backend, a CUDA backend and the Python test hooks all run these same few lines).
//
// Defaults are the values the methods' own papers / code recommend (the MASCOT paper,
// Section IV-A: "For MuPPET, MPT, and AFP, we set their hyperparameters as recommended in
// their work"):
//   MPT    Micikevicius et al., "Mixed Precision Training", ICLR 2018, and NVIDIA's dynamic
//          loss-scaling recipe (start S, halve on overflow and skip the step, double after
//          N = 2000 overflow-free steps).  The static S = 1000 is the MASCOT reference code's.
//   MuPPET Rajagopal et al., ICML 2020 (arXiv 2006.09049) and its code (github.com/ICIdsl/muppet:
//          policy.py, configs/*muppet*.ini): word lengths 8,12,14,16 then FP32, resolution
//          r = 3, patience 2, threshold T(e) = 1 + 1.5 exp(-0.1 e), mini-batch 128.
//   AFP    Zhang et al., "Fixed-Point Back-Propagation Training", CVPR 2020 (arXiv 1911.00361):
//          at every re-evaluation 8 bits, or +8 bits when the 8-bit quantization error exceeds
//          T; update interval I = beta / max(delta * diff^2, |m_t - m_{t-1}|) - gamma with m
//          the moving average (alpha) of the point position.  The numbers (T = 0.0005,
//          alpha = 0.04, beta = 0.1, gamma = 2, delta = 100) are those of the MASCOT authors'
//          AFP implementation (github.com/Yujaeseo/ICDM-2021_MASCOT, afp/afp_sgd_kernel.h),
//          i.e. the settings behind the MASCOT paper's AFP results; they were not re-checked
//          against the CVPR text itself (not retrievable here).  Where we differ from that
//          code: its moving average is of the range (max |x|), ours of the point position (as
//          AFP defines m); it forces the interval to 1 for the first 10 % of epoch 0, where we
//          re-evaluate whenever the range outgrows the format in use (the saturation guard,
//          cpu/competing.cc); it measures the error on the iteration's own values, we on the
//          rows of the last kAfpRecentRows iterations (see there).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "mascot/detail/fixed_point.h"
#include "mascot/detail/hostdev.h"
#include "mascot/error.h"
#include "mascot/params.h"

namespace mascot {

// The ALS method's choices (its rows of MASCOT_COMPETING_PARAMS; names: config.h / config.cc).
enum class AlsSolver { kCg, kCholesky };                    ///< approximate CG (cg_steps) or exact Cholesky
enum class AlsRegularization { kAuto, kWeighted, kPlain };  ///< lambda n_u / lambda; auto: weighted iff explicit
enum class AlsPrecision { kFp32, kFp16 };                   ///< storage of the factors, or of CG's A_u
enum class AlsCgForm { kAuto, kHermitian, kMatrixFree };    ///< how CG forms A p (mascot/detail/als.h)

/// The settings of the competing methods: fields, defaults and per-value rules are
/// MASCOT_COMPETING_PARAMS (mascot/params.h; what each means: its help column, and the papers
/// above).  Embedded in TrainConfig.
struct CompetingParams {
  MASCOT_COMPETING_PARAMS(MASCOT_PARAM_FIELD)

  /// Throws InvalidArgument naming the bad field ("loss_scale must be a finite number > 0 (got -1)").
  void validate() const;  // config.cc
};

namespace detail {

// ==================================================================== MPT: loss scale
/// Loss-scale state of one worker.  One per worker thread (CPU) or worker (GPU): Hogwild
/// workers share no mutable state, and MPT's rule only needs "did this update overflow",
/// which each worker knows about its own updates; every worker runs the same rule on its
/// own stream of updates.
struct MptLossScale {
  static constexpr float kMin = 1.0f / 16777216.0f;  ///< 2^-24: numeric guard, never reached in practice
  static constexpr float kMax = 1099511627776.0f;    ///< 2^40: numeric guard (S*e overflows FP16 long before)
  float scale = 1000.0f;
  int clean = 0;  ///< overflow-free updates since the last change of S
  bool dynamic = false;
  int window = 2000;

  MASCOT_HD void init(float s, bool dyn, int win) {
    scale = s;
    clean = 0;
    dynamic = dyn;
    window = win;
  }
  /// Records one update; returns true when it must be applied, false when it is skipped
  /// (its FP16 scaled gradient overflowed).  A static S also skips an overflowing update:
  /// applying inf/nan would destroy the FP32 master (MPT picks a static S that avoids
  /// overflow; the report counts the skips).
  MASCOT_HD bool step(bool overflow) {
    if (overflow) {
      if (dynamic) {
        scale = scale * 0.5f < kMin ? kMin : scale * 0.5f;
        clean = 0;
      }
      return false;
    }
    if (dynamic && ++clean >= window) {
      scale = scale * 2.0f > kMax ? kMax : scale * 2.0f;
      clean = 0;
    }
    return true;
  }
};

// ==================================================================== MuPPET: switching policy
/// MuPPET's gradient-diversity window over epochs (policy.py: sumOfGrads and sumOfNorms per
/// layer; the layers are P and Q), host side, shared by the CPU and CUDA backends.  Each epoch
/// adds its last mini-batch gradient (k values per layer, summed over the workers).
struct MuppetWindow {
  std::vector<double> p, q;       ///< sum of the added gradients
  double norm_p = 0, norm_q = 0;  ///< sum of their squared norms

  void reset(int k) {
    p.assign(static_cast<size_t>(k), 0.0);
    q.assign(static_cast<size_t>(k), 0.0);
    norm_p = norm_q = 0;
  }
  /// Adds one epoch's gradients; *np, *nq receive their squared norms.
  void add(const std::vector<double>& gp, const std::vector<double>& gq, double* np, double* nq) {
    double a = 0, b = 0;
    for (size_t j = 0; j < p.size(); ++j) {
      a += gp[j] * gp[j];
      b += gq[j] * gq[j];
      p[j] += gp[j];
      q[j] += gq[j];
    }
    norm_p += a;
    norm_q += b;
    *np = a;
    *nq = b;
  }
  /// policy.py calculate_mean_gd(): per layer sumOfNorms / ||sumOfGrads||^2 (*gd_p, *gd_q; NaN
  /// for a zero sum), returns their mean over the finite ones (NaN if none), and empties the window.
  double mean_diversity(double* gd_p, double* gd_q) {
    double sp = 0, sq = 0;
    for (size_t j = 0; j < p.size(); ++j) {
      sp += p[j] * p[j];
      sq += q[j] * q[j];
    }
    *gd_p = sp > 0 ? norm_p / sp : NAN;
    *gd_q = sq > 0 ? norm_q / sq : NAN;
    int nl = 0;
    double s = 0;
    if (std::isfinite(*gd_p)) s += *gd_p, ++nl;
    if (std::isfinite(*gd_q)) s += *gd_q, ++nl;
    reset(static_cast<int>(p.size()));
    return nl > 0 ? s / nl : NAN;
  }
};

/// MuPPET's precision-switching policy (paper Sec. 3.3; code: policy.py check_violation), one
/// per training run.  At the end of every epoch e with (e + 1) % r == 0 the caller passes the
/// mean over layers of the inter-epoch gradient diversity of the last r epochs,
///   Delta_s_l = sum_{j in window} ||grad_l^j||^2 / ||sum_{j in window} grad_l^j||^2,
/// and the policy compares p = max(diversities seen at this word length) / Delta_s with the
/// decaying threshold T(e) = alpha + beta exp(-decay e); p > T is a violation, and after
/// `patience` violations training moves to the next word length (maximum and violation count
/// reset).  One-way: the level only increases, and the FP32 level makes no more decisions.
struct MuppetPolicy {
  int level = 0;        ///< index into the word lengths; == their count: FP32
  int levels = 4;       ///< number of fixed-point word lengths
  double max_gd = 0.0;  ///< max diversity at this level (0: none yet)
  int violations = 0;

  // results of the last end_epoch(), for the report (a switch has reset max_gd and violations
  // by the time it is written)
  bool evaluated = false;
  double ratio = 0.0;
  double threshold = 0.0;
  double compared_max = 0.0;  ///< max diversity at the level when the epoch was evaluated
  int violations_seen = 0;    ///< violations counted at the level by then (this epoch's included)

  bool fp32() const { return level >= levels; }
  static double threshold_at(const CompetingParams& c, int epoch) {
    return c.muppet_threshold_alpha + c.muppet_threshold_beta * std::exp(-c.muppet_threshold_decay * epoch);
  }
  static bool is_evaluation_epoch(const CompetingParams& c, int epoch) {
    return (epoch + 1) % c.muppet_resolution == 0;
  }
  /// End of epoch `epoch`.  `mean_gd` is the window's mean diversity (ignored unless this is
  /// an evaluation epoch; a non-finite or non-positive value means "no gradient data" and
  /// makes no decision).  Returns true when the word length switches up.
  bool end_epoch(const CompetingParams& c, int epoch, double mean_gd) {
    evaluated = false;
    ratio = 0.0;
    threshold = threshold_at(c, epoch);
    compared_max = max_gd;
    violations_seen = violations;
    if (fp32() || !is_evaluation_epoch(c, epoch)) return false;
    if (!(std::isfinite(mean_gd) && mean_gd > 0)) return false;
    evaluated = true;
    if (mean_gd >= max_gd) {
      max_gd = mean_gd;
      ratio = 1.0;
    } else {
      ratio = max_gd / mean_gd;
      if (ratio > threshold) ++violations;
    }
    compared_max = max_gd;
    violations_seen = violations;
    if (violations >= c.muppet_patience) {
      ++level;
      violations = 0;
      max_gd = 0.0;
      return true;
    }
    return false;
  }
};

// ==================================================================== AFP: bit width and interval
/// AFP's quantization-parameter state of one tensor, as seen by one worker (see competing.cc
/// for why per worker).  The point position s is the exponent of the quantization step 2^s.
struct AfpTensorState {
  int bits = 8;
  int pos = 0;           ///< point position s (step 2^s); frac bits = -s
  double mov_avg = 0.0;  ///< m: moving average of s
  bool has_avg = false;
  int64_t next = 0;      ///< iteration of the next re-evaluation
  int64_t interval = 1;  ///< last interval set
};

constexpr int64_t kAfpMaxInterval = int64_t(1) << 40;  ///< guard when the formula is infinite

/// AFP's point position for data with max |x| = range at `bits`: s = ceil(log2(range /
/// (2^(bits-1) - 1))), the smallest step at which the largest value needs no clamping.
MASCOT_HD int afp_point_position(float range, int bits) {
  if (!(range > 0) || !(range < 3.0e38f)) return 0;
  const float top = static_cast<float>((1 << (bits - 1)) - 1);
  // smallest s with range <= top * 2^s, exactly (frexp: range = m 2^E, top = t 2^F, m,t in [0.5,1))
  int E, F;
  const float m = frexp_pos(range, &E);
  const float t = frexp_pos(top, &F);
  const int s = (E - F) + (m > t ? 1 : 0);
  // the format's scale 2^-s must stay a normal float (make_fixed_format's guards): a range
  // below ~1e-30 or above ~1e30 clamps instead of producing garbage scale bits
  return s < -kFixedMaxFracBits ? -kFixedMaxFracBits : s > -kFixedMinFracBits ? -kFixedMinFracBits : s;
}

/// AFP's P (Q) data at a re-evaluation: the rows the worker read in its last min(n, 32)
/// iterations of the epoch (n counts the current one).  A whole-tensor measurement per
/// re-evaluation would cost O(rows x k); one row's k values are too few: the error of 16 or
/// 128 values scatters around the tensor's (at initialisation the 8-bit error of 85-94 % of
/// single rows is above T while the whole tensor's is below), so every tensor went to 16 bits
/// at its first re-evaluation.  32 recent rows (4,096 values at k = 128) estimate the error of
/// the data the tensor is being used on.
constexpr int kAfpRecentRows = 32;

/// The recent rows a re-evaluation at the worker's iteration `epoch_iter` of the epoch measures
/// (the current one included), and the iteration by which the next re-evaluation is due: a
/// decision on fewer than kAfpRecentRows rows is provisional, the next comes when that many have
/// been read (INT64_MAX: no limit).  Both backends use these two.
MASCOT_HD int afp_recent_count(int64_t epoch_iter) {
  return epoch_iter + 1 < kAfpRecentRows ? static_cast<int>(epoch_iter + 1) : kAfpRecentRows;
}
MASCOT_HD int64_t afp_due_by(int64_t epoch_iter, int64_t iter) {
  const int n = afp_recent_count(epoch_iter);
  return n < kAfpRecentRows ? iter + (kAfpRecentRows - n) : INT64_MAX;
}

/// AFP bit-width rule at a re-evaluation (AFP's layer-wise precision adaptation, as the MASCOT
/// authors' QPA() applies it): decided afresh every time, from the low width: the high width
/// when the error measured at the low width exceeds the threshold (AFP's "+8 bits" step, capped
/// at afp_high_bits), else the low width.  So a tensor goes back to 8 bits when its data allow.
MASCOT_HD int afp_width(double error_at_low, double threshold, int low_bits, int high_bits) {
  return error_at_low > threshold ? high_bits : low_bits;
}

/// AFP update-interval rule, after the bit width and point position of this re-evaluation
/// are set: m_t = alpha s_t + (1 - alpha) m_(t-1) (m_0 = s_0), diff1 = |m_t - m_(t-1)|,
/// diff2 = delta * diff_bit^2, I = beta / max(diff1, diff2) - gamma, at least 1 iteration.
/// s_t is the point position of the data's range at the low width (`pos_low`): the drift of
/// the data, not of the width; with the width decided afresh at every re-evaluation, a change
/// of width alone would move s by 8 and force I = 1 (the MASCOT authors' code averages the
/// range itself, which is the same measure in log2 units).  `error` is the quantization error
/// at the chosen width.  Sets st.interval and st.next.
MASCOT_HD void afp_set_interval(AfpTensorState& st, int pos_low, double error, double alpha, double beta, double gamma,
                                double delta, int64_t iteration) {
  const double prev = st.has_avg ? st.mov_avg : static_cast<double>(pos_low);
  st.mov_avg = alpha * pos_low + (1.0 - alpha) * prev;
  st.has_avg = true;
  const double d1 = fabs(st.mov_avg - prev);
  const double d2 = delta * error * error;
  const double den = d1 > d2 ? d1 : d2;
  double itv = den > 0 ? beta / den - gamma : static_cast<double>(kAfpMaxInterval);
  if (!(itv >= 1.0)) itv = 1.0;
  if (itv > static_cast<double>(kAfpMaxInterval)) itv = static_cast<double>(kAfpMaxInterval);
  st.interval = static_cast<int64_t>(itv);  // floor (itv >= 1)
  st.next = iteration + st.interval;
}

/// One AFP re-evaluation of a tensor, for both backends: the point position for `range` at the
/// low width and its error, the high width instead when that error exceeds the threshold
/// (afp_width), then the next update interval, due no later than iteration `due_by` (P, Q: an
/// error measured on fewer than kAfpRecentRows rows is provisional, the next re-evaluation comes
/// when that many have been read); and the tensor's statistics (evals, saturated, to_high =
/// re-evaluations that chose the high width, err_sum/max, itv_sum/max).  error_at(format) is
/// the backend's quantization error of the tensor's data (a CPU loop, or a warp reduction on
/// the GPU).  Returns the format.
template <class Stats, class ErrorAt>
MASCOT_HD FixedFormat afp_reevaluate_tensor(AfpTensorState& st, Stats& s, float range, bool saturated, double threshold,
                                            int low_bits, int high_bits, double alpha, double beta, double gamma,
                                            double delta, int64_t iteration, int64_t due_by, ErrorAt&& error_at) {
  st.bits = low_bits;
  st.pos = afp_point_position(range, st.bits);
  const int pos_low = st.pos;
  FixedFormat f = make_fixed_format(-st.pos, st.bits);
  double err = error_at(f);
  if (afp_width(err, threshold, low_bits, high_bits) != low_bits) {
    st.bits = high_bits;
    ++s.to_high;
    st.pos = afp_point_position(range, st.bits);
    f = make_fixed_format(-st.pos, st.bits);
    err = error_at(f);
  }
  afp_set_interval(st, pos_low, err, alpha, beta, gamma, delta, iteration);
  if (st.next > due_by) {
    st.next = due_by > iteration ? due_by : iteration + 1;
    st.interval = st.next - iteration;
  }
  ++s.evals;
  s.saturated += saturated ? 1 : 0;
  s.err_sum += err;
  s.err_max = err > s.err_max ? err : s.err_max;
  s.itv_sum += static_cast<double>(st.interval);
  s.itv_max = st.interval > s.itv_max ? st.interval : s.itv_max;
  return f;
}

}  // namespace detail
}  // namespace mascot
