// CUDA measurement and test hooks (internal; bound in mascot._core for benchmarks/gpu_bench.py
// and tests/python/test_gpu.py).  Implemented in cuda/cuda_runtime.cu; in CPU-only builds
// (cpp/src/cuda_stubs.cc) each throws CudaError("built without CUDA").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/methods.h"

namespace mascot::detail {

/// Why the CUDA kernels do not take `cfg` (a one-line message naming the field), "" when they
/// do: they need a method the backend implements (methods.h), k in [1, 512], an order that is
/// not a CPU thread schedule (grid; auto means shuffle there), no study option (random_fp16,
/// grad_stats) and the decay schedule (adagrad: CPU only so far).  `--device cuda` fails with this message as
/// soon as the device is known, before any data is loaded or regrouped; `--device auto` trains
/// such a job on the CPU (trainer.cc).  Bound as mascot._core.cuda_unsupported_reason (the
/// experiment harness checks its grids with it).
inline std::string cuda_unsupported_reason(const TrainConfig& cfg) {
  if (!method_traits(cfg.method).cuda)
    return "method '" + to_string(cfg.method) + "' is not implemented on the cuda device; use --device cpu";
  if (cfg.method == Method::kAls)  // the ALS kernels (cuda/als_kernels.cu); order, groups and studies do not apply
    return cfg.k <= 256 ? ""
                        : "k must be between 1 and 256 for als on the cuda device (got " + std::to_string(cfg.k) +
                              "); use --device cpu for larger k";
  if (!(cfg.k >= 1 && cfg.k <= 512))
    return "k must be between 1 and 512 on the cuda device (got " + std::to_string(cfg.k) +
           "); use --device cpu for larger k";
  if (cfg.order == Order::kGrid)
    return "order '" + to_string(cfg.order) +
           "' schedules CPU threads; on the cuda device use order 'auto', 'shuffle' or 'chunk'";
  if (cfg.random_fp16 >= 0 || cfg.grad_stats)
    return "random_fp16 and grad_stats (study options) run on the CPU backend only; use --device cpu";
  if (cfg.schedule == LrSchedule::kAdagrad)  // the kernels' per-row states are not written yet (issue 20)
    return "schedule 'adagrad' runs on the CPU backend only so far; use --device cpu";
  return "";
}
inline bool cuda_supports(const TrainConfig& cfg) { return cuda_unsupported_reason(cfg).empty(); }

/// The device a job trains on: ctx.resolved_device(), except that `auto` sends a job the CUDA
/// kernels do not take to the CPU (trainer.cc trains it there and says so; memory_plan.cc plans
/// for it there).
inline Device training_device(const Context& ctx, const TrainConfig& cfg) {
  const Device dev = ctx.resolved_device();
  return dev == Device::kCuda && ctx.device == Device::kAuto && !cuda_supports(cfg) ? Device::kCpu : dev;
}

/// "<name> (sm_XY, N SMs, M MiB)" of the current device; throws CudaError without one.
std::string cuda_device_name();

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written per second, 1e9),
/// median of `reps` cudaMemcpy's of `bytes` bytes timed with CUDA events after one warm-up.
double cuda_copy_bandwidth(int64_t bytes, int reps);

/// Test hook: the q-error (Eq. 4) of `groups` groups computed with the CUDA backend's
/// accumulation kernel (slot copies, double atomics, slot reduction) from given gradients:
/// grads is n x k (row-major float32), group[t] in [0, groups) the group of gradient t.
/// -1 for a group without gradients.  k must be in [1, 512].
std::vector<double> cuda_qerror(const std::vector<float>& grads, const std::vector<int32_t>& group, int groups, int k,
                                int slots);

}  // namespace mascot::detail
