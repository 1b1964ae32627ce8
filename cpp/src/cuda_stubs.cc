// Built only without CUDA: the CUDA entry points exist and fail clearly.
#include "mascot/context.h"
#include "mascot/detail/backend.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"

namespace mascot {
int cuda_device_count() noexcept { return 0; }
std::string cuda_unavailable_reason() { return "this build of MASCOT has no CUDA backend"; }
bool built_with_cuda() noexcept { return false; }
namespace detail {
bool cuda_training_available() noexcept { return false; }
bool cuda_memory_info(int64_t*, int64_t*) noexcept { return false; }  // memory_plan.h
std::unique_ptr<Backend> make_cuda_backend() {
  throw CudaError("MASCOT was built without CUDA: the cuda device is unavailable (use --device cpu)");
}
}  // namespace detail
}  // namespace mascot

// CUDA tools (detail/cuda_tools.h)
#include "mascot/detail/cuda_tools.h"
namespace mascot::detail {
namespace {
[[noreturn]] void no_cuda() { throw CudaError("MASCOT was built without CUDA: no CUDA device functions"); }
}  // namespace
std::string cuda_device_name() { no_cuda(); }
double cuda_copy_bandwidth(int64_t, int) { no_cuda(); }
std::vector<double> cuda_qerror(const std::vector<float>&, const std::vector<int32_t>&, int, int, int) { no_cuda(); }
}  // namespace mascot::detail
