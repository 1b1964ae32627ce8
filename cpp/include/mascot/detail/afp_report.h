// AFP's per-epoch report (the run report's "method" object), host side, shared by the CPU
// backend (cpu/competing.cc: one worker per thread) and the CUDA backend (cuda/cuda_trainer.cu:
// one worker per warp).  A worker is anything with st[t] (AfpTensorState), stats[t] (evals,
// saturated, to_high, err_sum, err_max, itv_sum, itv_max) and iter, for the tensors P, Q, G.
// "bits" is the widest width in use at the epoch's end, "threads_high" the workers using it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "mascot/detail/competing_params.h"
#include "mascot/detail/json.h"

namespace mascot::detail {

template <class Workers>
std::string afp_epoch_json(const Workers& workers, const CompetingParams& c, float max_p, float max_q) {
  static const char* names[3] = {"P", "Q", "G"};
  JsonWriter j;
  j.begin_object();
  j.kv("name", "afp");
  j.key("tensors").begin_object();
  for (int t = 0; t < 3; ++t) {
    int bits = 0, high = 0, pmin = 0, pmax = 0;
    int64_t evals = 0, saturated = 0, to_high = 0, imax = 0;
    double esum = 0, emax = 0, isum = 0;
    bool first = true;
    for (const auto& w : workers) {
      const auto& st = w.st[t];
      const auto& s = w.stats[t];
      bits = std::max(bits, st.bits);
      high += st.bits >= c.afp_high_bits;
      if (s.evals > 0 || w.iter > 0) {
        pmin = first ? st.pos : std::min(pmin, st.pos);
        pmax = first ? st.pos : std::max(pmax, st.pos);
        first = false;
      }
      evals += s.evals;
      saturated += s.saturated;
      to_high += s.to_high;
      esum += s.err_sum;
      emax = std::max(emax, static_cast<double>(s.err_max));
      isum += s.itv_sum;
      imax = std::max<int64_t>(imax, s.itv_max);
    }
    j.key(names[t]).begin_object();
    // "threads": the workers (CPU threads, or the warps of the CUDA grid)
    j.kv("bits", bits).kv("threads_high", high).kv("threads", static_cast<int>(workers.size()));
    j.kv("point_position_min", pmin).kv("point_position_max", pmax);
    // high_evaluations: re-evaluations that chose the high width (the others chose the low one)
    j.kv("evaluations", evals).kv("saturation_evaluations", saturated).kv("high_evaluations", to_high);
    j.kv("error_mean", evals > 0 ? esum / static_cast<double>(evals) : NAN).kv("error_max", evals > 0 ? emax : NAN);
    j.kv("interval_mean", evals > 0 ? isum / static_cast<double>(evals) : NAN).kv("interval_max", imax);
    j.end_object();
  }
  j.end_object();
  j.kv("max_abs_p", static_cast<double>(max_p)).kv("max_abs_q", static_cast<double>(max_q));
  j.end_object();
  return j.str();
}

}  // namespace mascot::detail
