// Backend interface (internal).  A backend trains on RELABELLED data (ids contiguous per
// group, see reorder.h) and owns the factor storage while it does; trainer.cc does the
// relabelling before and undoes it after.  Backends: cpu (cpp/src/cpu), cuda (cuda/).
#pragma once
#include <functional>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/groups.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/trainer.h"

namespace mascot::detail {

/// Checkpoint I/O seen by a backend (implemented over files in cpp/src/checkpoint.cc).  A
/// backend exports its complete training state as named sections: factor matrices (float32
/// or float16 rows, kept in their current storage) and small opaque blobs (detail/binio.h).
class StateWriter {
 public:
  virtual ~StateWriter() = default;
  /// rows x cols elements of `elem_bytes` (4: float32, 2: float16 bits), row-major.
  virtual void matrix(const std::string& name, const void* data, int64_t rows, int64_t cols, int elem_bytes) = 0;
  virtual void blob(const std::string& name, const std::string& bytes) = 0;
};
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual bool has(const std::string& name) const = 0;
  /// Fills `data`; throws InvalidArgument naming the file when the stored shape or type differs.
  virtual void matrix(const std::string& name, void* data, int64_t rows, int64_t cols, int elem_bytes) = 0;
  virtual std::string blob(const std::string& name) = 0;
  /// How errors about section `name` name it (the file: "checkpoint DIR/FILE").
  virtual std::string where(const std::string& name) const { return name; }
};

struct FitInput {
  const Context* ctx;
  const TrainConfig* cfg;
  const RatingSet* train;            ///< relabelled, host memory
  const RatingSet* test;             ///< relabelled, unknown ids dropped; may be null
  const std::vector<int32_t>* user_old;  ///< original id of each relabelled user (seeds the init)
  const std::vector<int32_t>* item_old;
  GroupTable user_groups;            ///< backend updates precision as groups switch
  GroupTable item_groups;
  /// Resume: when set, the backend imports this state after allocating (import_state) and
  /// continues with the epoch after the saved ones.  Null for a fresh run.
  StateReader* resume = nullptr;
  /// Called after every completed epoch (after on_epoch) with the number of completed epochs
  /// and whether training stops now (last epoch or stop requested); the trainer writes
  /// checkpoints from it by calling export_state.  Empty: no checkpoints.
  std::function<void(int epochs_done, bool last)> epoch_done;
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// Trains; appends one EpochRecord per epoch to report->epochs (and switch events).
  virtual void fit(FitInput& in, RunReport* report, const EpochCallback& on_epoch) = 0;
  /// Current factors as float32, relabelled order (n x k, row-major).
  virtual void factors(std::vector<float>* P, std::vector<float>* Q) const = 0;

  /// Backend name for messages ("cpu", "cuda").
  virtual const char* name() const { return "this"; }
  /// True when export_state / import_state are implemented (and fit honours FitInput::resume
  /// and FitInput::epoch_done).
  virtual bool checkpointing() const { return false; }
  /// Complete training state after the last completed epoch (only valid from epoch_done).
  virtual void export_state(StateWriter& /*out*/) const { unsupported(); }
  /// Restores export_state's output (called by fit when FitInput::resume is set).
  virtual void import_state(StateReader& /*in*/) { unsupported(); }

 protected:
  [[noreturn]] void unsupported() const {
    throw std::runtime_error(std::string("checkpointing is not supported on the ") + name() + " backend");
  }
};

/// Checkpoint plumbing between checkpoint.cc and trainer.cc (train_run).
struct RunHooks {
  StateReader* resume = nullptr;              ///< state to continue from (null: fresh run)
  const RunReport* resume_report = nullptr;   ///< the report so far (epochs, switches, totals)
  /// After each completed epoch (see FitInput::epoch_done), with the backend to export from.
  std::function<void(int epochs_done, bool last, const Backend& backend, const RunReport& report)> epoch_done;
};

/// train() with optional checkpoint hooks (hooks may be null).
TrainResult train_run(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                      const EpochCallback& on_epoch, const std::string& dataset_name, const RunHooks* hooks);

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend();  ///< throws CudaError in CPU-only builds
/// True when this build can train on the current CUDA device: the backend exists and the device
/// is visible with compute capability >= 8.0 (what `auto` requires to pick it).
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
