// Context: where and how a job runs (device, threads, seed).  Passed by const reference;
// the trainer factory (trainer.h) resolves Device::kAuto once and says what it picked.
#pragma once
#include <cstdint>
#include <string>

namespace mascot {

enum class Device { kAuto, kCpu, kCuda };

/// "auto" | "cpu" | "cuda" -> Device; throws InvalidArgument naming the bad value.
Device parse_device(const std::string& s);
std::string to_string(Device d);

struct Context {
  Device device = Device::kAuto;  ///< auto: CUDA when a device is visible and the CUDA backend exists
  int threads = 0;                ///< CPU worker threads; 0 = all hardware threads
  uint64_t seed = 42;             ///< seeds init, visiting order, sampling: a run is a function of it

  /// Threads actually used (threads, or hardware_concurrency() when 0; at least 1).
  int resolved_threads() const;
  /// kAuto -> kCuda if built with CUDA and a device is visible, else kCpu.  kCuda without a
  /// usable device throws CudaError with a clear message.
  Device resolved_device() const;
  void validate() const;
};

/// Number of visible CUDA devices; 0 in CPU-only builds or when the driver call fails. Never throws.
int cuda_device_count() noexcept;
/// Why the GPU cannot be used ("" when it can): no CUDA backend in this build, no device, no
/// driver, a driver older than the build's CUDA runtime, or a device fault earlier in this
/// process (after which the CUDA context stays unusable).  One line, for error messages.
std::string cuda_unavailable_reason();
/// True when the CUDA backend was compiled in.
bool built_with_cuda() noexcept;
/// Human-readable name of the device a resolved context trains on ("cpu (2 threads, avx512)").
std::string describe_device(const Context& ctx);

}  // namespace mascot
