// CUDA runtime queries for the Context and the measurement hooks of detail/cuda_tools.h
// (built only with MASCOT_CUDA).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "mascot/context.h"
#include "mascot/detail/cuda_tools.h"

namespace mascot {

int cuda_device_count() noexcept {
  int n = 0;
  // No driver, no device, or a driver too old for this runtime: all mean "0 devices here".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error state
    return 0;
  }
  return n;
}

bool built_with_cuda() noexcept { return true; }

namespace {
std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
}  // namespace

std::string cuda_unavailable_reason() {
  if (const cudaError_t lost = cuda::lost_context(); lost != cudaSuccess)
    return std::string("the GPU is unusable in this process after an earlier device fault (") +
           cudaGetErrorString(lost) + "): restart the process";
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess && n > 0) return "";
  cudaGetLastError();  // clear the error state
  if (e == cudaSuccess || e == cudaErrorNoDevice)
    return "no CUDA device is visible (no GPU, or CUDA_VISIBLE_DEVICES hides it)";
  if (e == cudaErrorInsufficientDriver) {
    // the runtime is linked statically: it reports a missing driver and an old one alike
    int v = 0;
    if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
    if (v == 0) return "no CUDA device is visible (no NVIDIA driver is installed)";
    return "the NVIDIA driver supports CUDA " + cuda_version(v) + ", older than the CUDA " +
           cuda_version(CUDART_VERSION) + " runtime this build uses: update the driver";
  }
  return std::string("CUDA is unavailable: ") + cudaGetErrorString(e);
}

namespace detail {

std::string cuda_device_name() {
  if (const std::string why = cuda_unavailable_reason(); !why.empty()) throw CudaError(why);
  int id = 0;
  MASCOT_CUDA_CHECK(cudaGetDevice(&id));
  cudaDeviceProp p{};
  MASCOT_CUDA_CHECK(cudaGetDeviceProperties(&p, id));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.totalGlobalMem >> 20) + " MiB)";
}

double cuda_copy_bandwidth(int64_t bytes, int reps) {
  MASCOT_CHECK_ARG(bytes >= (1 << 20) && bytes % 16 == 0, "bytes must be >= 1 MiB and a multiple of 16");
  MASCOT_CHECK_ARG(reps >= 1 && reps <= 1000, "reps must be in [1, 1000]");
  if (const std::string why = cuda_unavailable_reason(); !why.empty()) throw CudaError(why);
  cuda::DeviceBuffer<char> a(static_cast<size_t>(bytes)), b(static_cast<size_t>(bytes));
  MASCOT_CUDA_CHECK(cudaMemset(a.get(), 1, static_cast<size_t>(bytes)));  // never time zeros only
  cuda::EventTimer t;
  MASCOT_CUDA_CHECK(cudaMemcpy(b.get(), a.get(), static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice));  // warm-up
  std::vector<double> s;
  for (int r = 0; r < reps; ++r) {
    t.start();
    MASCOT_CUDA_CHECK(cudaMemcpy(r % 2 ? a.get() : b.get(), r % 2 ? b.get() : a.get(), static_cast<size_t>(bytes),
                                 cudaMemcpyDeviceToDevice));
    s.push_back(t.stop());
  }
  std::sort(s.begin(), s.end());
  const double med = s[s.size() / 2];
  return 2.0 * static_cast<double>(bytes) / med / 1e9;  // read + write
}

}  // namespace detail
}  // namespace mascot
