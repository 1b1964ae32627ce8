// RunReport: what a training run did, epoch by epoch (docs/design.md §5).  Written by the
// trainer, serialised to JSON for `--report`, parsed by Python (MF.report_, mascot.analysis).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mascot/config.h"

namespace mascot {

/// The guard (trainer.cc): an evaluated RMSE more than kRmseRiseMargin above the best so far of
/// its set, recorded once per rise (again only after a new best).
constexpr double kRmseRiseMargin = 0.01;
struct RmseRise {
  std::string set;     ///< "test" or "valid"
  int epoch = 0;       ///< 0-based, the epoch whose RMSE rose
  int best_epoch = 0;  ///< 0-based, where the best so far was reached
  double best = 0, now = 0;
};

struct EpochRecord {
  int epoch = 0;             ///< 0-based
  double lr = 0;             ///< learning rate used in this epoch
  double train_seconds = 0;  ///< wall time of the SGD pass (and switching), excluding evaluation
  double eval_seconds = 0;   ///< wall time of the test RMSE
  double test_rmse = -1;     ///< -1 when not evaluated (no test set)
  double valid_rmse = -1;    ///< RMSE on the validation hold-out (valid_fraction); -1 when none
  int fp32_user_groups = 0;  ///< after this epoch's switching
  int fp32_item_groups = 0;
  bool measured = false;            ///< q-error measured this epoch
  std::vector<double> user_qerror;  ///< per group when measured (-1: no samples)
  std::vector<double> item_qerror;
  std::vector<double> user_grad_norm;  ///< grad_stats: per group mean sampled-gradient norm (-1: no samples)
  std::vector<double> item_grad_norm;
  std::string method_json;      ///< method-specific state (a JSON object), empty when none
  std::vector<RmseRise> rises;  ///< the guard's warnings of this epoch (front ends print them)
};

struct SwitchEvent {
  char side;  ///< 'u' or 'i'
  int group;
  int epoch;
};

struct DatasetStats {
  std::string name;
  int64_t n_users = 0, n_items = 0;
  int64_t n_train = 0, n_test = 0;
  int64_t test_dropped = 0;              ///< test ratings whose user or item has no training rating
  int64_t n_valid = 0;                   ///< validation ratings held out of the training set (valid_fraction)
  int64_t valid_dropped = 0;             ///< ... whose item kept no training rating (not evaluated)
  int user_groups = 0, item_groups = 0;  ///< realised group counts
};

struct RunReport {
  TrainConfig config;
  std::string device;  ///< describe_device()
  int threads = 0;
  uint64_t seed = 0;
  DatasetStats data;
  std::vector<EpochRecord> epochs;
  std::vector<SwitchEvent> switches;
  double total_train_seconds = 0;
  double total_eval_seconds = 0;
  double setup_seconds = 0;  ///< reconstruction, allocation, init
  double updates_per_second = 0;
  double final_test_rmse = -1;
  double final_valid_rmse = -1;
  /// The monitored RMSE (validation, else test; "" when neither) and its best epoch (0-based),
  /// reported when early_stop > 0 or valid_fraction > 0.  With early stopping the model is that
  /// epoch's and the final_* RMSEs are its.
  std::string monitor;
  int best_epoch = -1;
  double best_rmse = -1;
  bool stopped_early = false;  ///< early_stop ended the run (not an interruption)
  bool interrupted = false;

  std::string to_json() const;
};

/// model.json of a saved model: format tag, shapes, method, and the run report.
/// `train_mean`: the mean training rating (LIBMF's b; Python's MF writes it too), left out when NaN.
std::string model_metadata_json(int64_t n_users, int64_t n_items, int k, const RunReport& report,
                                double train_mean = std::numeric_limits<double>::quiet_NaN());

}  // namespace mascot
