// TrainConfig: the one validated set of training parameters.  The CLI, the Python API and
// the tests all build this struct; its fields are declared once in mascot/params.h (defaults:
// the paper's settings) and the enums' names are here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/detail/competing_params.h"
#include "mascot/params.h"

namespace mascot {

/// Precision methods (docs/design.md §4).
enum class Method {
  kFp32,         ///< FP32 storage, FP32 arithmetic
  kFp16,         ///< FP16 storage, FP16 (half) arithmetic: every operation rounded to half
  kMascotN1,     ///< FP16 storage, FP32 arithmetic in registers, no switching (m-quantization only)
  kMascotN2,     ///< m-quantization + one global user group and one global item group
  kMascot,       ///< m-quantization + per-group precision switching (g-switching)
  kMascotNaive,  ///< as kMascot, group lookup without the optimised search
  kMpt,          ///< mixed-precision training (Micikevicius et al. 2018)
  kMuppet,       ///< MuPPET (Rajagopal et al. 2020)
  kAfp,          ///< adaptive fixed point (Zhang et al. 2020)
  kAls,          ///< alternating least squares (cuMF_ALS; its settings: the als_* rows of params.h)
};
Method parse_method(const std::string& s);  ///< throws InvalidArgument listing the valid names
std::string to_string(Method m);
std::vector<std::string> method_names();

enum class Rounding { kNearest, kStochastic };
Rounding parse_rounding(const std::string& s);  ///< throws InvalidArgument listing the valid names
std::string to_string(Rounding r);
std::vector<std::string> rounding_names();

/// Learning-rate schedule of the SGD methods: the paper's decayed rate (lr_at), or LIBMF's per-row
/// AdaGrad step (detail/sgd.h, adagrad_*), whose state is one FP32 word per user and item row.
enum class LrSchedule { kDecay, kAdagrad };
LrSchedule parse_lr_schedule(const std::string& s);  ///< throws InvalidArgument listing the valid names
std::string to_string(LrSchedule s);
std::vector<std::string> lr_schedule_names();

AlsSolver parse_als_solver(const std::string& s);
std::string to_string(AlsSolver v);
std::vector<std::string> als_solver_names();
AlsRegularization parse_als_regularization(const std::string& s);
std::string to_string(AlsRegularization v);
std::vector<std::string> als_regularization_names();
AlsPrecision parse_als_precision(const std::string& s);
std::string to_string(AlsPrecision v);
std::vector<std::string> als_precision_names();
AlsCgForm parse_als_cg_form(const std::string& s);
std::string to_string(AlsCgForm v);
std::vector<std::string> als_cg_form_names();

/// Visiting order of the training ratings within an epoch (cpu/schedule.h).  Checkpoints store
/// it by name (config.cc's name table).
enum class Order {
  kShuffle,  ///< every rating once per epoch in a fresh seeded order
  kChunk,    ///< reference code: workers draw random starts, 128 consecutive ratings, with replacement
  kGrid,     ///< every rating once per epoch; threads on blocks that share no user and no item row
  kAuto,     ///< default: grid with > 1 CPU thread on >= 2^20 ratings, else shuffle (CUDA: shuffle)
};
Order parse_order(const std::string& s);  ///< throws InvalidArgument listing the valid names
/// Why `s`, an order an older MASCOT took ("blocked"), is refused; "" for any other name.
std::string order_refusal(const std::string& s);
std::string to_string(Order o);
std::vector<std::string> order_names();

/// The training parameters: fields, defaults and per-value rules are MASCOT_TRAIN_PARAMS
/// (mascot/params.h); `competing` holds MASCOT_COMPETING_PARAMS.
struct TrainConfig {
  MASCOT_TRAIN_PARAMS(MASCOT_PARAM_FIELD)
  CompetingParams competing;  ///< mpt / muppet / afp settings

  /// Throws InvalidArgument naming the first bad field ("k must be >= 1 (got 0)").
  void validate() const;
  /// validate() plus checks that need the data: groups <= number of users / items where the
  /// groups matter (uses_groups()).
  void validate_for(int64_t n_users, int64_t n_items) const;
  /// Whether user_groups / item_groups change the result: g-switching (mascot, mascot-naive)
  /// and grad_stats, except under random_fp16 and mascot-n2 (one global group per side).  Other
  /// methods still lay rows out by group, with min(groups, rows) groups: the default 100 must
  /// not refuse a small data set to a method that never looks at groups.
  bool uses_groups() const;

  /// Learning rate of epoch e (0-based): the decayed rate, or eta0 with schedule adagrad (whose
  /// per-row steps the backends derive from it).
  float lr_at(int epoch) const;
};

}  // namespace mascot
