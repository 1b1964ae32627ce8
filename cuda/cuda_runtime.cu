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

namespace detail {

std::string cuda_device_name() {
  if (cuda_device_count() == 0) throw CudaError("no CUDA device is visible (no GPU or no driver)");
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
  if (cuda_device_count() == 0) throw CudaError("no CUDA device is visible (no GPU or no driver)");
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
