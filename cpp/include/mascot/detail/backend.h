// Backend interface (internal).  A backend trains on RELABELLED data (ids contiguous per
// group, see reorder.h) and owns the factor storage while it does; trainer.cc does the
// relabelling before and undoes it after.  Backends: cpu (cpp/src/cpu), cuda (cuda/).
#pragma once
#include <memory>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/groups.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/trainer.h"

namespace mascot::detail {

struct FitInput {
  const Context* ctx;
  const TrainConfig* cfg;
  const RatingSet* train;            ///< relabelled, host memory
  const RatingSet* test;             ///< relabelled, unknown ids dropped; may be null
  const std::vector<int32_t>* user_old;  ///< original id of each relabelled user (seeds the init)
  const std::vector<int32_t>* item_old;
  GroupTable user_groups;            ///< backend updates precision as groups switch
  GroupTable item_groups;
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// Trains; appends one EpochRecord per epoch to report->epochs (and switch events).
  virtual void fit(FitInput& in, RunReport* report, const EpochCallback& on_epoch) = 0;
  /// Current factors as float32, relabelled order (n x k, row-major).
  virtual void factors(std::vector<float>* P, std::vector<float>* Q) const = 0;
};

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend();  ///< throws CudaError in CPU-only builds
/// True when this build can train on a CUDA device (the backend exists and is complete).
bool cuda_training_available() noexcept;

/// Initial factor row of entity `original_id` (N(0, std^2), counter-based: independent of
/// relabelling, grouping and threads).  `stream` is kStreamInitP or kStreamInitQ.
void init_row(float* row, int k, float std, uint64_t seed, uint64_t stream, int64_t original_id);

/// Test hook: the positions of `train`'s ratings in the order the CPU backend visits them,
/// epoch after epoch, for `epochs` epochs (with threads = 1 the exact order).  Needs
/// nnz < 2^24.
std::vector<int64_t> cpu_visit_order(const RatingSet& train, Order order, int epochs, int threads, int k,
                                     bool half, uint64_t seed);

}  // namespace mascot::detail
