// The competing methods of docs/design.md §4 (mpt, muppet, afp) on the CPU backend.
// The backend owns FP32 master P and Q (relabelled order) and the visiting order; a
// CompetingMethod decides, epoch by epoch, how the dot product and gradients are quantised
// and applies the SGD updates to the masters.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "cpu/kernels.h"
#include "mascot/config.h"

namespace mascot::cpu {

class CompetingMethod {
 public:
  virtual ~CompetingMethod() = default;
  /// Before epoch `epoch`'s SGD pass.  P: m x k, Q: n x k, FP32 masters.
  virtual void begin_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n) = 0;
  /// SGD over recs[0..count) in order, updating the masters in place.  Called concurrently
  /// from the backend's threads (tid in [0, threads)), Hogwild style.
  virtual void sgd(int tid, const Rec* recs, size_t count, float* P, float* Q, const SgdParams& prm) = 0;
  /// After the pass: switching decisions.  Writes the method's state for the run report as
  /// one JSON object (e.g. {"word_length": 12, ...}) into *json.
  virtual void end_epoch(int epoch, const float* P, int64_t m, const float* Q, int64_t n, std::string* json) = 0;
  /// Checkpoints: the state that carries from one epoch to the next (loss scales, levels,
  /// windows, per-worker quantization parameters ...), between epochs only.  import_state
  /// throws InvalidArgument when the blob does not fit this method / thread count.
  virtual std::string export_state() const = 0;
  virtual void import_state(const std::string& blob) = 0;
};

/// For cfg.method in {kMpt, kMuppet, kAfp}.
std::unique_ptr<CompetingMethod> make_competing_method(const TrainConfig& cfg, int threads, uint64_t seed);

}  // namespace mascot::cpu
