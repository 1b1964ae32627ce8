// Memory planning (docs/checkpoint.md#memory-planning): before a job allocates anything
// large, estimate what it will hold on the host (and on the CUDA device) from its shapes
// alone, compare with what is available, and refuse a job that cannot fit with the numbers
// and what to change.  Data flow: shapes (+ config, context) -> plan_memory -> MemoryPlan ->
// check_memory_plan (throws) / to_text (--dry-run) / to_json (Python MF.memory_plan).
// The items mirror the allocations of trainer.cc, reorder.cc, cpu/schedule.cc and
// cpu/cpu_trainer.cc; each item is live in some phases (setup, training, finishing), and the
// peak is the largest phase total.  Numbers are estimates of the large buffers; fixed costs
// (code, libraries, thread stacks) are one "runtime overhead" item.
#pragma once
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"

namespace mascot {

/// "512 B", "4.6 MiB", "1.2 GiB": the byte counts of plans and of device-memory errors.
inline std::string human_bytes(uint64_t b) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char s[32];
  std::snprintf(s, sizeof s, u == 0 ? "%.0f %s" : "%.1f %s", v, unit[u]);
  return s;
}

struct MemoryItem {
  std::string name;
  uint64_t bytes = 0;
  bool device = false;  ///< on the CUDA device (else host)
  unsigned phases = 0;  ///< bit 0 setup, bit 1 training, bit 2 finishing
  bool scales_with_k = false;
  bool per_thread = false;
};

struct MemoryPlan {
  Device device = Device::kCpu;  ///< resolved
  int threads = 1;
  int k = 0;
  int64_t n_users = 0, n_items = 0, n_train = 0, n_test = 0;
  bool inputs_loaded = false;  ///< the rating sets already exist (counted, not allocated)
  std::vector<MemoryItem> items;
  uint64_t host_peak = 0, device_peak = 0;
  int64_t host_available = -1;    ///< MemAvailable; -1 unknown
  int64_t device_available = -1;  ///< free device memory; -1 unknown / not a CUDA job
  int64_t device_total = -1;

  bool host_fits() const { return host_available < 0 || host_peak <= static_cast<uint64_t>(host_available); }
  bool device_fits() const {
    return device != Device::kCuda || device_available < 0 || device_peak <= static_cast<uint64_t>(device_available);
  }
  bool fits() const { return host_fits() && device_fits(); }
  /// Table of items and bytes, peaks and availability (--dry-run).
  std::string to_text() const;
  std::string to_json() const;
  /// One line: what does not fit, by how much, and what to change ("" when it fits).
  std::string refusal() const;
};

/// The plan of a job with these shapes (no allocation).  `inputs_loaded`: the caller already
/// holds the rating sets (they are listed but were allocated before the plan).
MemoryPlan plan_memory(const Context& ctx, const TrainConfig& cfg, int64_t n_users, int64_t n_items, int64_t n_train,
                       int64_t n_test, bool inputs_loaded);

/// Throws InsufficientMemory with refusal() when the plan does not fit.
/// MASCOT_SKIP_MEMORY_CHECK=1 in the environment disables the check (for over-committing hosts).
void check_memory_plan(const MemoryPlan& plan);

/// Host memory a job may use, in bytes: MemAvailable of /proc/meminfo, lowered to what a
/// cgroup v2 limit still allows (containers), lowered to $MASCOT_MEMORY_LIMIT (bytes) when set;
/// -1 when unknown.
int64_t host_available_bytes() noexcept;

/// Thrown when a job cannot fit (CLI exit status 1; Python MemoryError).
class InsufficientMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
/// Free and total memory of the current CUDA device (cuda/cuda_memory.cu); false when there
/// is no usable device or no CUDA in this build (cpp/src/cuda_stubs.cc).
bool cuda_memory_info(int64_t* free_bytes, int64_t* total_bytes) noexcept;
}  // namespace detail

}  // namespace mascot
