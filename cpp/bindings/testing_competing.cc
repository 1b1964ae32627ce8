// Test hooks of the competing methods (quantizers, switching rules): mascot._core._testing.
// Pure functions over the core's headers (detail/fixed_point.h, detail/competing_params.h):
// the binding converts and forwards, the logic is the one the CPU backend runs.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <optional>
#include <vector>

#include "convert.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mascot::bind {
namespace {

using InF = In1<float>;
using InD3 = In3<double>;

/// The random word of element t, as _core.half_round draws it.
uint32_t word_at(uint64_t seed, size_t t) {
  return static_cast<uint32_t>(detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(t)));
}

void check_word_length(int wl) {
  MASCOT_CHECK_ARG(wl >= 2 && wl <= detail::kFixedMaxWordLength,
                   "word_length must be between 2 and 24 (got " + std::to_string(wl) + ")");
}

void check_mode(const std::string& mode) {
  MASCOT_CHECK_ARG(mode == "nearest" || mode == "stochastic",
                   "mode must be nearest or stochastic (got '" + mode + "')");
}

}  // namespace

void bind_testing_competing(nb::module_& m) {
  // ---------------------------------------------------------------- fixed point
  m.def(
      "fixed_point_frac_bits",
      [](float max_abs, int word_length, const std::string& rule) {
        check_word_length(word_length);
        MASCOT_CHECK_ARG(rule == "muppet" || rule == "afp", "rule must be muppet or afp (got '" + rule + "')");
        return rule == "muppet" ? detail::fixed_frac_bits(max_abs, word_length)
                                : -detail::afp_point_position(max_abs, word_length);
      },
      "max_abs"_a, "word_length"_a, "rule"_a = "muppet",
      "Fractional bits f (scale 2^f) for a tensor with this max |x|: MuPPET's rule (largest f with "
      "max|x| 2^f <= 2^(WL-1) - 0.5) or AFP's (-s, s = ceil(log2(max|x| / (2^(WL-1) - 1)))).");
  m.def(
      "fixed_point_quantize",
      [](const InF& x, int word_length, std::optional<int> frac_bits, std::optional<float> max_abs,
         const std::string& mode, uint64_t seed, bool codes) {
        check_word_length(word_length);
        check_mode(mode);
        const size_t n = x.shape(0);
        int f;
        if (frac_bits) {
          f = *frac_bits;
          MASCOT_CHECK_ARG(f >= detail::kFixedMinFracBits && f <= detail::kFixedMaxFracBits,
                           "frac_bits must be between -100 and 100 (got " + std::to_string(f) + ")");
        } else {
          float mx = 0;
          if (max_abs)
            mx = *max_abs;
          else
            for (size_t t = 0; t < n; ++t) mx = std::max(mx, std::fabs(x(t)));
          f = detail::fixed_frac_bits(mx, word_length);
        }
        const detail::FixedFormat fmt = detail::make_fixed_format(f, word_length);
        std::vector<float> out(n);
        for (size_t t = 0; t < n; ++t) {
          const float c =
              mode == "nearest" ? detail::fixed_code_rn(x(t), fmt) : detail::fixed_code_sr(x(t), fmt, word_at(seed, t));
          out[t] = codes ? c : c * fmt.inv_scale;
        }
        return to_numpy(std::move(out));
      },
      "x"_a, "word_length"_a, "frac_bits"_a.none() = nb::none(), "max_abs"_a.none() = nb::none(), "mode"_a = "nearest",
      "seed"_a = 0, "codes"_a = false,
      "Dynamic fixed point: the values (or with codes=True the integers) x quantizes to at this word "
      "length; the scale is frac_bits, or MuPPET's rule on max_abs (default: max |x|).  Stochastic "
      "rounding draws element t's word from hash3(seed, kStreamRound, t).");
  m.def(
      "half_round_fast",
      [](const InF& x, const std::string& mode, uint64_t seed) {
        check_mode(mode);
        std::vector<float> out(x.shape(0));
        for (size_t t = 0; t < out.size(); ++t)
          out[t] = mode == "nearest" ? detail::half_rn_value(x(t)) : detail::half_sr_value(x(t), word_at(seed, t));
        return to_numpy(std::move(out));
      },
      "x"_a, "mode"_a = "nearest", "seed"_a = 0,
      "The branchless FP16 rounding MPT uses (must equal _core.half_round with the same seed).");

  // ---------------------------------------------------------------- AFP
  m.def(
      "afp_point_position",
      [](float range, int bits) {
        check_word_length(bits);
        return detail::afp_point_position(range, bits);
      },
      "range"_a, "bits"_a, "AFP's point position s = ceil(log2(range / (2^(bits-1) - 1))).");
  m.def(
      "afp_quant_error",
      [](const InF& x, int bits, std::optional<int> point_position) {
        check_word_length(bits);
        const size_t n = x.shape(0);
        int s;
        if (point_position)
          s = *point_position;
        else {
          float mx = 0;
          for (size_t t = 0; t < n; ++t) mx = std::max(mx, std::fabs(x(t)));
          s = detail::afp_point_position(mx, bits);
        }
        const detail::FixedFormat f = detail::make_fixed_format(-s, bits);
        double sa = 0, sq = 0;
        for (size_t t = 0; t < n; ++t) {
          sa += std::fabs(x(t));
          sq += std::fabs(detail::fixed_round_rn(x(t), f));
        }
        return detail::afp_quant_error(sa, sq);
      },
      "x"_a, "bits"_a, "point_position"_a.none() = nb::none(),
      "AFP's quantization error log2(|sum|x| - sum|x_q|| / sum|x| + 1), nearest rounding.");
  m.def(
      "afp_rule",
      [](const std::vector<double>& err_low, const std::vector<double>& err_high, const std::vector<float>& ranges,
         std::optional<CompetingParams> params) {
        const CompetingParams c = params ? *params : CompetingParams{};
        c.validate();
        MASCOT_CHECK_ARG(err_low.size() == err_high.size() && err_low.size() == ranges.size(),
                         "err_low, err_high and ranges must have the same length");
        detail::AfpTensorState st;
        st.bits = c.afp_low_bits;
        std::vector<int> bits, pos;
        std::vector<int64_t> itv, iters;
        std::vector<double> errs;
        int64_t it = 0;
        for (size_t x = 0; x < err_low.size(); ++x) {
          // one re-evaluation: the error at the low width decides the width afresh; then the interval
          st.bits = detail::afp_width(err_low[x], c.afp_error_threshold, c.afp_low_bits, c.afp_high_bits);
          const double err = st.bits == c.afp_low_bits ? err_low[x] : err_high[x];
          st.pos = detail::afp_point_position(ranges[x], st.bits);
          detail::afp_set_interval(st, detail::afp_point_position(ranges[x], c.afp_low_bits), err, c.afp_alpha,
                                   c.afp_beta, c.afp_gamma, c.afp_delta, it);
          iters.push_back(it);
          bits.push_back(st.bits);
          pos.push_back(st.pos);
          itv.push_back(st.interval);
          errs.push_back(err);
          it = st.next;
        }
        nb::dict d;
        d["iteration"] = to_numpy(std::move(iters));
        d["bits"] = to_numpy(std::move(bits));
        d["point_position"] = to_numpy(std::move(pos));
        d["interval"] = to_numpy(std::move(itv));
        d["error"] = to_numpy(std::move(errs));
        return d;
      },
      "err_low"_a, "err_high"_a, "ranges"_a, "params"_a.none() = nb::none(),
      "AFP's bit-width and update-interval rule over successive re-evaluations of one tensor: at "
      "re-evaluation x the tensor's error at the low width is err_low[x] (8 bits; above the threshold "
      "the width is the high one), at the high width err_high[x] (16 bits), and its max |x| is ranges[x].  Returns per "
      "re-evaluation its iteration, bits, "
      "point position, interval and the error used.");

  // ---------------------------------------------------------------- MuPPET
  m.def(
      "muppet_diversity",
      [](const InD3& g) {
        // g[epoch, layer, k]: mean over layers of sum_e ||g_e||^2 / ||sum_e g_e||^2
        const size_t ne = g.shape(0), nl = g.shape(1), k = g.shape(2);
        double total = 0;
        int used = 0;
        for (size_t l = 0; l < nl; ++l) {
          double norms = 0, sum2 = 0;
          for (size_t j = 0; j < k; ++j) {
            double s = 0;
            for (size_t e = 0; e < ne; ++e) {
              const double v = g(e, l, j);
              norms += v * v;
              s += v;
            }
            sum2 += s * s;
          }
          if (sum2 > 0) {
            total += norms / sum2;
            ++used;
          }
        }
        return used > 0 ? total / used : NAN;
      },
      "grads"_a,
      "MuPPET's inter-epoch gradient diversity of a window: grads[epoch, layer, k] -> mean over layers of "
      "sum_e ||g||^2 / ||sum_e g||^2 (nan when no layer has gradient).");
  m.def(
      "muppet_policy",
      [](const std::vector<double>& diversity, std::optional<CompetingParams> params) {
        const CompetingParams c = params ? *params : CompetingParams{};
        c.validate();
        detail::MuppetPolicy pol;
        pol.levels = static_cast<int>(c.muppet_word_lengths.size());
        std::vector<int> wl, switches, violations;
        std::vector<double> ratio, threshold;
        std::vector<bool> evaluated;
        for (size_t e = 0; e < diversity.size(); ++e) {
          wl.push_back(pol.fp32() ? 32 : c.muppet_word_lengths[static_cast<size_t>(pol.level)]);
          if (pol.end_epoch(c, static_cast<int>(e), diversity[e])) switches.push_back(static_cast<int>(e));
          evaluated.push_back(pol.evaluated);
          ratio.push_back(pol.evaluated ? pol.ratio : NAN);
          threshold.push_back(pol.threshold);
          violations.push_back(pol.violations);
        }
        nb::dict d;
        d["word_length"] = to_numpy(std::move(wl));
        d["switch_epochs"] = switches;
        d["evaluated"] = evaluated;
        d["ratio"] = to_numpy(std::move(ratio));
        d["threshold"] = to_numpy(std::move(threshold));
        d["violations"] = to_numpy(std::move(violations));
        return d;
      },
      "diversity"_a, "params"_a.none() = nb::none(),
      "MuPPET's switching policy over epochs: diversity[e] is the window's mean gradient diversity at the "
      "end of epoch e (only read at evaluation epochs, (e+1) % resolution == 0; nan = no data).  Returns "
      "the word length used in each epoch (32 = FP32), the epochs after which it switched, and per epoch "
      "whether it evaluated, the ratio max/diversity, the threshold T(e) and the violation count.");

  // ---------------------------------------------------------------- MPT
  m.def(
      "mpt_loss_scale",
      [](const std::vector<bool>& overflow, float loss_scale, bool dynamic, int window) {
        CompetingParams c;
        c.loss_scale = loss_scale;
        c.dynamic_loss_scale = dynamic;
        c.loss_scale_window = window;
        c.validate();
        detail::MptLossScale ls;
        ls.init(loss_scale, dynamic, window);
        std::vector<float> scale;
        std::vector<bool> applied;
        for (bool o : overflow) {
          scale.push_back(ls.scale);
          applied.push_back(ls.step(o));
        }
        return nb::make_tuple(to_numpy(std::move(scale)), applied);
      },
      "overflow"_a, "loss_scale"_a = 1000.0f, "dynamic"_a = true, "window"_a = 2000,
      "MPT's loss-scale rule on a sequence of updates (overflow[t]: the FP16 scaled gradient of update t "
      "overflowed).  Returns (the scale each update used, whether each update was applied).");
}

}  // namespace mascot::bind
