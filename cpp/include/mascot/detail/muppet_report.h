// MuPPET's end of epoch, host side, shared by the CPU backend (cpu/competing.cc: one worker per
// thread) and the CUDA backend (cuda/cuda_trainer.cu: one worker per warp).  The backends gather
// the epoch's last mini-batch gradient per layer (gp, gq: summed over the workers' last
// ratings) and their fixed-point bookkeeping; this adds the gradient to the diversity window
// (policy.py update()), evaluates the gradient-diversity rule on evaluation epochs
// (calculate_mean_gd(), then the policy), records a switch, and writes the run report's
// "method" object.  Same operations in the same order for both backends.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/detail/competing_params.h"
#include "mascot/detail/json.h"

namespace mascot::detail {

struct MuppetEpochFacts {
  int word_length = 0;                 ///< this epoch's; 0: the FP32 level
  int frac_p = 0, frac_q = 0;          ///< fractional bits of P and Q at the epoch's start
  int frac_p_end = 0, frac_q_end = 0;  ///< the smallest over the workers at its end
  int64_t rescales = 0;                ///< row-driven scale changes during the epoch
  float max_p = 0, max_q = 0;          ///< max |x| of P and Q at the epoch's start
  int64_t batch = 0;                   ///< ratings in the last mini-batch
};

/// gp, gq are read only on fixed-point epochs (word_length > 0).
inline std::string muppet_end_epoch(const CompetingParams& c, int epoch, const MuppetEpochFacts& f,
                                    const std::vector<double>& gp, const std::vector<double>& gq, MuppetWindow* win,
                                    MuppetPolicy* policy, std::vector<int>* switches) {
  const int wl = f.word_length;
  double norm_p = 0, norm_q = 0;
  if (wl > 0) win->add(gp, gq, &norm_p, &norm_q);
  double gd_p = NAN, gd_q = NAN, mean_gd = NAN;
  if (wl > 0 && MuppetPolicy::is_evaluation_epoch(c, epoch)) mean_gd = win->mean_diversity(&gd_p, &gd_q);
  const bool switched = policy->end_epoch(c, epoch, mean_gd);
  if (switched) switches->push_back(epoch);

  JsonWriter j;
  j.begin_object();
  j.kv("name", "muppet");
  j.kv("word_length", wl > 0 ? wl : 32).kv("fixed_point", wl > 0);
  if (wl > 0) {
    j.kv("frac_bits_p", f.frac_p).kv("frac_bits_q", f.frac_q);
    j.kv("frac_bits_p_end", f.frac_p_end).kv("frac_bits_q_end", f.frac_q_end).kv("rescales", f.rescales);
    j.kv("max_abs_p", static_cast<double>(f.max_p)).kv("max_abs_q", static_cast<double>(f.max_q));
    j.kv("batch_ratings", f.batch).kv("batch_grad_norm2_p", norm_p).kv("batch_grad_norm2_q", norm_q);
  }
  j.kv("evaluated", policy->evaluated);
  j.kv("diversity_p", gd_p).kv("diversity_q", gd_q).kv("diversity", mean_gd);
  // max_diversity / violations: as the evaluation saw them (a switch resets them afterwards)
  j.kv("max_diversity", policy->compared_max).kv("ratio", policy->evaluated ? policy->ratio : NAN);
  j.kv("threshold", policy->threshold).kv("violations", policy->violations_seen);
  j.kv("switched", switched);
  j.kv("next_word_length", policy->fp32() ? 32 : c.muppet_word_lengths[static_cast<size_t>(policy->level)]);
  j.key("switch_epochs").array(*switches);
  j.end_object();
  return j.str();
}

}  // namespace mascot::detail
