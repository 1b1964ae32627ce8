// Context resolution: which device and how many threads a job really uses.
#include "mascot/context.h"

#include <cstdlib>
#include <string>
#include <thread>

#include "mascot/detail/backend.h"
#include "mascot/error.h"
#include "mascot/param_table.h"

namespace mascot {

namespace cpu {
const char* kernel_isa();  // cpu/kernels_dispatch.cc
}

Device parse_device(const std::string& s) {
  if (s == "auto") return Device::kAuto;
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda") return Device::kCuda;
  throw_invalid("unknown device '" + s + "' (valid: auto, cpu, cuda)");
}

std::vector<std::string> device_names() { return {"auto", "cpu", "cuda"}; }

std::string to_string(Device d) {
  switch (d) {
    case Device::kAuto:
      return "auto";
    case Device::kCpu:
      return "cpu";
    case Device::kCuda:
      return "cuda";
  }
  return "?";
}

int Context::resolved_threads() const {
  if (threads > 0) return threads;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

void Context::validate() const {
  using namespace params;
#define MASCOT_CHECK_FIELD(type, name, def, check, ...) check_value(#name, name, check);
  MASCOT_CONTEXT_PARAMS(MASCOT_CHECK_FIELD)
#undef MASCOT_CHECK_FIELD
  // the environment settings the core reads: a typo is an error, not a silent default
  if (const char* e = std::getenv("MASCOT_ISA"); e && *e) {
    const std::string v = e;
    MASCOT_CHECK_ARG(v == "generic" || v == "avx2" || v == "avx512",
                     "MASCOT_ISA='" + v.substr(0, 40) + "' is not a kernel variant (valid: generic, avx2, avx512)");
  }
  for (const char* name : {"MASCOT_MEMORY_LIMIT", "MASCOT_DEVICE_MEMORY_LIMIT"}) {
    const char* e = std::getenv(name);
    if (!e || !*e) continue;
    const std::string v = e;
    const bool digits = v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos;
    MASCOT_CHECK_ARG(digits,
                     std::string(name) + "='" + v.substr(0, 40) + "' is not a byte count (a non-negative integer)");
  }
}

Context Context::for_run(Spelling how) const {
  Context c = *this;
  if (deterministic) {  // one CPU thread, fixed order: bit-for-bit reproducible
    const bool cli = how == Spelling::kCli;
    const std::string who = cli ? "--deterministic" : "deterministic=True";
    if (threads > 1)
      throw InvalidArgument(who + " runs one thread (got " + (cli ? "--threads " : "threads=") +
                            std::to_string(threads) + ")");
    if (device == Device::kCuda)
      throw InvalidArgument(who + " runs on the CPU (got " + (cli ? "--device cuda" : "device='cuda'") + ")");
    c.threads = 1;
    c.device = Device::kCpu;
  }
  return c;
}

Device Context::resolved_device() const {
  switch (device) {
    case Device::kCpu:
      return Device::kCpu;
    case Device::kCuda:
      if (!built_with_cuda())
        throw CudaError(
            "device 'cuda' requested, but this build of MASCOT has no CUDA backend "
            "(rebuild with nvcc available, or use --device cpu)");
      if (const std::string why = cuda_unavailable_reason(); !why.empty())
        throw CudaError("device 'cuda' requested, but " + why + "; use --device cpu or auto");
      return Device::kCuda;
    case Device::kAuto:
    default:
      return (detail::cuda_training_available() && cuda_device_count() > 0) ? Device::kCuda : Device::kCpu;
  }
}

std::string describe_device(const Context& ctx) {
  if (ctx.resolved_device() == Device::kCuda) return "cuda";
  return "cpu (" + std::to_string(ctx.resolved_threads()) + " threads, " + cpu::kernel_isa() + ")";
}

}  // namespace mascot
