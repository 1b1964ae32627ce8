// TrainConfig: the one validated set of training parameters.  The CLI, the Python API and
// the tests all build this struct; defaults follow DESIGN.md §3 (the paper's settings).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/detail/competing_params.h"

namespace mascot {

/// Precision methods (DESIGN.md §4).
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
};
Method parse_method(const std::string& s);  ///< throws InvalidArgument listing the valid names
std::string to_string(Method m);
std::vector<std::string> method_names();

enum class Rounding { kNearest, kStochastic };
Rounding parse_rounding(const std::string& s);
std::string to_string(Rounding r);

/// Visiting order of the training ratings within an epoch (DESIGN.md §3, §7).
enum class Order {
  kShuffle,  ///< every rating once per epoch in a fresh seeded order (default)
  kBlocked,  ///< every rating once per epoch, cache-blocked grid of user x item blocks
  kChunk,    ///< reference code: workers draw random starts, 128 consecutive ratings, with replacement
};
Order parse_order(const std::string& s);
std::string to_string(Order o);

struct TrainConfig {
  int k = 128;              ///< latent dimension
  int epochs = 50;          ///< passes over the training set
  float lr = 0.01f;         ///< eta0; eta_e = lr / (1 + decay * e^1.5), e 0-based
  float decay = 0.1f;       ///< d in the schedule above (>= 0)
  float lambda_p = 0.01f;   ///< L2 regularisation of user vectors
  float lambda_q = 0.015f;  ///< L2 regularisation of item vectors
  float init_std = 0.01f;   ///< P, Q ~ N(0, init_std^2)
  Method method = Method::kFp32;
  Rounding rounding = Rounding::kNearest;  ///< how FP16 stores round
  Order order = Order::kShuffle;
  int user_groups = 100;    ///< g for users (realised count may be smaller: ties are never split)
  int item_groups = 100;    ///< g for items
  int period = 2;           ///< pi: measure q-error every `period` epochs after warm-up
  double sample_ratio = 0.05;  ///< gamma in (0, 1]
  double threshold = 20.0;     ///< theta: switch when q-error / baseline > theta
  int warmup = 5;              ///< w: first measured epoch (0-based)
  bool eval_every_epoch = true;  ///< test RMSE after every epoch (outside the timed pass)
  /// Potential study (paper Fig. 4): when in [0, 1], each user and each item row is stored
  /// FP16 with this probability (chosen by a seeded hash of its id), FP32 otherwise, and no
  /// group ever switches; the groups are then "FP16 rows" and "FP32 rows" of each side.
  /// -1 (default) turns it off.  Methods mascot, mascot-naive, mascot-n1 only.
  double random_fp16 = -1.0;
  /// Gradient statistics (paper Fig. 5): every epoch, per group, the mean L2 norm of the
  /// gamma-sampled gradients (no learning rate), in EpochRecord::user_grad_norm/item_grad_norm.
  /// Methods fp32, mascot-n1, mascot, mascot-n2, mascot-naive.
  bool grad_stats = false;
  CompetingParams competing;     ///< mpt / muppet / afp settings

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

  /// Learning rate of epoch e (0-based).
  float lr_at(int epoch) const;
};

}  // namespace mascot
