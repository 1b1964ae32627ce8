// Context: where and how a job runs (device, threads, seed, deterministic).  Passed by const
// reference; the trainer factory (trainer.h) resolves Device::kAuto once and says what it picked.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/params.h"

namespace mascot {

enum class Device { kAuto, kCpu, kCuda };

/// "auto" | "cpu" | "cuda" -> Device; throws InvalidArgument naming the bad value.
Device parse_device(const std::string& s);
std::string to_string(Device d);
std::vector<std::string> device_names();

/// How a front end spells a setting in its messages: "--threads 4" (mascot_train) or
/// "threads=4" (Python).
enum class Spelling { kCli, kPython };

/// Where and how a job runs; fields and defaults: MASCOT_CONTEXT_PARAMS (mascot/params.h).
struct Context {
  MASCOT_CONTEXT_PARAMS(MASCOT_PARAM_FIELD)

  /// Threads actually used (threads, or hardware_concurrency() when 0; at least 1).
  int resolved_threads() const;
  /// kAuto -> kCuda if built with CUDA and a device is visible, else kCpu.  kCuda without a
  /// usable device throws CudaError with a clear message.
  Device resolved_device() const;
  /// Checks the values (threads 0..1024) and the environment settings the core reads.
  void validate() const;
  /// The context a run uses, decided here for every front end: deterministic => one CPU thread
  /// on the CPU device (threads 0 or 1, device auto or cpu; anything else is an InvalidArgument
  /// naming the conflict as `how` spells it).  The values are validate()'s.
  Context for_run(Spelling how) const;
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
