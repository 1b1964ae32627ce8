// The training driver and its backends (internal).
//
// One driver (trainer.cc, detail::train_run) owns a training run; a backend is a plug-in that
// does, one epoch at a time, what only it can do.  The epoch loop exists once, in the driver.
//
//   driver (trainer.cc)                                  backend (cpu/, cuda/, als/; later dask)
//   ------------------------------------------------     ------------------------------------------
//   validate; relabel (reorder.h); group tables with
//   their initial precisions; the effective storage  ->  prepare(FitInput): copy / upload / pack the
//                                                        data, allocate, initialise the factors
//   per epoch e: EpochPlan (lr, seeds, sample?)      ->  run_epoch(plan): one pass, complete on return
//                                                    <-  EpochResult: updates, per-group gradient
//                                                        sums (sampled epochs), method state JSON
//   q-errors, Switcher baselines, switch decisions,
//   the group precision tables                       ->  widen_groups(side, groups): FP16 -> FP32, exact
//   evaluation schedule                              ->  eval_sse(set): on the prepared test or
//                                                        validation set
//   the guard, early stopping (best factors)         ->  factors(P, Q) after an improving epoch
//   EpochRecord, callbacks, divergence watch, stop,
//   checkpoints of its own state ("driver_state")    ->  export_state / import_state (backend sections)
//   undo the relabelling, finiteness                 <-  factors(P, Q) as float32
//
// Contract (every backend):
//  - Ids are RELABELLED (contiguous per group, reorder.h); the driver relabels before prepare
//    and undoes it after factors().
//  - Calls come from the driver's thread, one at a time, in the order prepare, [widen_groups
//    (resume replay), import_state], then per epoch run_epoch, [widen_groups('u'),
//    widen_groups('i')], [eval_sse], [export_state]; end_training() and factors() at the end.  A backend object
//    serves one run (prepare is called once).
//  - FitInput's pointers are valid during prepare() only: the backend copies what it keeps, or
//    moves it out of the driver's relabelled rating sets (train, test, valid), which the driver no
//    longer reads (one copy of the ratings: the CPU schedule keeps the training set's arrays).
//    Everything else crossing the interface is plain data (PODs, vectors, strings), so a
//    backend can live in another process or in Python.  StateWriter/StateReader take a
//    pointer to the caller's buffer, read or filled during the call only.
//  - run_epoch returns when every update of the epoch is complete (a GPU synchronised): the
//    driver times run_epoch plus the switching work (widen_groups) as the epoch's
//    train_seconds, and eval_sse as its eval_seconds.  Updates count rating visits.
//  - Randomness is counter-based: init from detail::init_row's formula (seed, stream,
//    original id), FP16 rounding words from plan.round_seed, sampling from plan.sample_seed,
//    the visiting order and a method's own words from (FitInput seed, epoch).  So the
//    completed-epoch count is the whole random-stream position, and a resumed run continues
//    exactly where export_state left off (bit for bit where the pass itself is deterministic).
//  - Precision: the backend keeps its own copy of the group tables given to prepare; it changes
//    only through widen_groups, which the driver calls with the groups its Switcher switched
//    (already marked FP32 in the driver's tables).  Rows of FP16 groups are FP16, of FP32 groups
//    FP32 (storage kPerGroup); other storages never see widen_groups.
//  - Sampled sums (plan.sample): per group of each side the sum of the sampled gradients
//    (groups x k), of their squared norms, of their norms (plan.grad_norms) and their count,
//    reduced race-free in a fixed order (per-thread or per-slot partials).  The driver turns
//    them into q-errors (switching.h) and gradient statistics.
//  - export_state / import_state: the backend's own state after a completed epoch: factors in
//    their storage, a method's state (loss scales, levels, per-worker formats), its epoch count
//    and what it needs to check a resume (shapes, threads or workers).  Section names are the
//    backend's ("cpu_state", "cuda_state", factor matrices "P32", "Q16", ...).  import_state is
//    called after prepare and after the driver replayed the run's switches through
//    widen_groups; it must refuse (InvalidArgument naming reader.where(section)) a state that
//    does not fit this run, and compare its saved epoch count with `epochs_done`.
//  - Errors: InvalidArgument for bad input or state, CudaError / IoError / std::bad_alloc as
//    they come; a backend never prints.
//
// How other backends plug in:
//  - ALS (a second solver, cpp/src/als/als_backend.cc): prepare builds the per-user and per-item
//    rating lists (CSR, relabelled ids) and initialises P and Q by init_row of the original ids;
//    run_epoch solves every user row with Q fixed (lambda_p), then every item row with P fixed
//    (lambda_q); plan.lr is unused and plan.sample is never set (its traits say Switching::kNone,
//    storage FP32, or FP16 with als_factors=fp16), so the GradSums stay empty and widen_groups is
//    never called; updates = ratings touched (2 x nnz); eval_sse and factors as here;
//    export_state writes "als_state" (epoch count, shapes) and P32 / Q32.  It is a row of the
//    method-traits table (methods.h) and a factory (make_als_backend) that Driver::prepare picks
//    for that method instead of make_cpu_backend / make_cuda_backend.
//  - Distributed (Dask): prepare partitions the relabelled ratings into p x p blocks and scatters
//    them (and the initial factor rows, by init_row) to p workers; run_epoch runs the p DSGD
//    sub-epochs (worker w updates block (w, (w + s) mod p) in sub-epoch s, all rows disjoint), with
//    the same plan on every worker; its GradSums are the workers' sums added in worker order (a
//    fixed reduction); widen_groups broadcasts the groups to the workers holding those rows;
//    eval_sse adds the workers' partial sums in worker order; export_state gathers the factors in
//    their storage and the per-worker method state ("dask_state" with p); factors gathers.  A
//    Python implementation binds this class as a nanobind trampoline: every argument above is a
//    POD, a vector, a string or a StateWriter/StateReader, which take numpy buffers.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/groups.h"
#include "mascot/methods.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/trainer.h"

namespace mascot::detail {

/// Checkpoint output seen by the driver and a backend (implemented over files in
/// cpp/src/checkpoint.cc): named sections, either factor matrices (float32 or float16 rows,
/// kept in their current storage) or small opaque blobs (detail/binio.h).
class StateWriter {
 public:
  virtual ~StateWriter() = default;
  /// rows x cols elements of `elem_bytes` (4: float32, 2: float16 bits), row-major; `data` is
  /// read during the call only.
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

/// The evaluation sets a backend holds: the caller's test set, and the validation hold-out the
/// driver carved from the training ratings (TrainConfig::valid_fraction, valid_split).
enum class EvalSet { kTest, kValid };

/// What prepare() gets: the relabelled data and the run's settings (valid during prepare only).
struct FitInput {
  const Context* ctx;
  const TrainConfig* cfg;
  /// The trainer's own relabelled sets (host memory; test: unknown ids dropped, may be null).
  /// The backend may move from them: the CPU backend's schedule keeps the training set's arrays
  /// and frees the test set once it holds its evaluation records (one copy of the ratings).
  RatingSet* train;
  RatingSet* test;
  /// The validation hold-out (disjoint from train; relabelled, items without a training rating
  /// dropped; may be null): evaluated like the test set, never trained on.
  RatingSet* valid = nullptr;
  const std::vector<int32_t>* user_old;  ///< original id of each relabelled user (seeds the init)
  const std::vector<int32_t>* item_old;
  const GroupTable* user_groups;  ///< boundaries and initial precisions (FP32 rows start FP32)
  const GroupTable* item_groups;
  /// The storage to train in: the method's (methods.h), except that the study options run the
  /// FP32 / FP16 methods on the per-group path (random_fp16, grad_stats; the driver presets the
  /// groups' precisions then).
  Storage storage = Storage::kFp32;
};

/// One epoch as the driver plans it.
struct EpochPlan {
  int epoch = 0;              ///< 0-based
  float lr = 0;               ///< TrainConfig::lr_at(epoch)
  uint64_t round_seed = 0;    ///< stochastic-rounding words of the FP16 stores (hash3(seed, kStreamRound, epoch))
  bool sample = false;        ///< accumulate the per-group gradient sums (a measured epoch, or grad_stats)
  bool grad_norms = false;    ///< ... and the sums of the gradients' norms (grad_stats)
  uint64_t sample_seed = 0;   ///< a rating is sampled when mix64(sample_seed ^ key(u, i)) < sample_below
  uint64_t sample_below = 0;  ///< gamma x 2^64
};

/// Per-group sums of one side's sampled gradients (empty when the epoch did not sample).
struct GradSums {
  std::vector<double> sum;   ///< groups x k: sum of the sampled gradients
  std::vector<double> sq;    ///< groups: sum of their squared norms
  std::vector<double> nsum;  ///< groups: sum of their norms (EpochPlan::grad_norms), else empty
  std::vector<int64_t> n;    ///< groups: number of samples
};

struct EpochResult {
  int64_t updates = 0;      ///< ratings visited
  GradSums user, item;      ///< when EpochPlan::sample
  std::string method_json;  ///< the method's state after the epoch (a JSON object), "" when none
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// "cpu", "cuda", ... (messages, checkpoint sections).
  virtual const char* name() const = 0;
  /// Copies / uploads the data, allocates, initialises the factors (see the contract above).
  virtual void prepare(const FitInput& in) = 0;
  /// The device as the report names it, once prepared ("" keeps describe_device()'s).
  virtual std::string describe() const { return ""; }
  /// The visiting order this run uses, once prepared: `requested` with `auto` resolved (the
  /// report names the order that ran).  Backends without a schedule of their own: shuffle.
  virtual Order resolved_order(Order requested) const {
    return requested == Order::kAuto ? Order::kShuffle : requested;
  }
  /// One pass over the training ratings (ALS: solve the users, then the items).
  virtual EpochResult run_epoch(const EpochPlan& plan) = 0;
  /// Groups of side `side` ('u' or 'i') switched FP16 -> FP32: their rows move to FP32 storage
  /// (exact: every half is a float) and train in FP32 from the next epoch on.
  virtual void widen_groups(char side, const std::vector<int>& groups) = 0;
  /// Sum of squared errors over the prepared test or validation set (FP32 dot products); the
  /// driver divides by the set's size.  Only called for a set that is not empty.
  virtual double eval_sse(EvalSet set) = 0;
  /// The backend's state after a completed epoch (sections named by the backend).
  virtual void export_state(StateWriter& out) const = 0;
  /// Restores export_state's output; `epochs_done` is the driver's count, which the saved one
  /// must equal.
  virtual void import_state(StateReader& in, int epochs_done) = 0;
  /// The epochs are over (called once, before factors(); no run_epoch or eval_sse follows): frees
  /// what only the epochs need, so that the finishing phase does not hold the ratings beside the
  /// factors' float32 copies (the CPU backend: its schedule with the ratings, the evaluation records).
  virtual void end_training() {}
  /// Current factors as float32, relabelled order (n x k, row-major).  Also called after a
  /// completed epoch (before end_training): early stopping's copy of the best epoch's factors.
  virtual void factors(std::vector<float>* P, std::vector<float>* Q) const = 0;
};

/// Checkpoint plumbing between checkpoint.cc and the driver (train_run).
struct RunHooks {
  StateReader* resume = nullptr;             ///< state to continue from (null: fresh run)
  const RunReport* resume_report = nullptr;  ///< the report so far (epochs, switches, totals)
  /// After each completed epoch with the number of completed epochs, whether training stops
  /// now (last epoch or stop requested) and the device it trains on; `save` writes the
  /// driver's state ("driver_state") and the backend's sections.  Not called once the run diverged.
  std::function<void(int epochs_done, bool last, Device device, const RunReport& report,
                     const std::function<void(StateWriter&)>& save)>
      epoch_done;
};

/// train() with optional checkpoint hooks (hooks may be null).
TrainResult train_run(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                      const EpochCallback& on_epoch, const std::string& dataset_name, const RunHooks* hooks);

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend();  ///< throws CudaError in CPU-only builds
/// Method als on `device` (cpp/src/als/als_backend.cc; cuda: throws CudaError in CPU-only builds at prepare).
std::unique_ptr<Backend> make_als_backend(Device device);
/// True when this build can train on the current CUDA device: the backend exists and the device
/// is visible with compute capability >= 8.0 (what `auto` requires to pick it).
bool cuda_training_available() noexcept;

/// Initial factor row of entity `original_id` (N(0, std^2), counter-based: independent of
/// relabelling, grouping and threads).  `stream` is kStreamInitP or kStreamInitQ.
void init_row(float* row, int k, float std, uint64_t seed, uint64_t stream, int64_t original_id);

/// Test hook: the positions of `train`'s ratings in the order the CPU backend visits them,
/// epoch after epoch, for `epochs` epochs (with threads = 1 the exact order).  Needs
/// nnz < 2^24.
std::vector<int64_t> cpu_visit_order(const RatingSet& train, Order order, int epochs, int threads, int k, bool half,
                                     uint64_t seed);

}  // namespace mascot::detail
