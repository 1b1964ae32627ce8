// CUDA runtime queries for the Context (built only with MASCOT_CUDA).
#include <cuda_runtime.h>

#include "mascot/context.h"

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

}  // namespace mascot
