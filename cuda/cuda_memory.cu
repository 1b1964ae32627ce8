// Free / total memory of the current CUDA device, for the memory plan (memory_plan.h).
// Creating the context here is intended: its own footprint is then already out of `free`.
#include <cuda_runtime.h>

#include <cstdint>

#include "mascot/memory_plan.h"

namespace mascot::detail {

bool cuda_memory_info(int64_t* free_bytes, int64_t* total_bytes) noexcept {
  size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of the runtime API
    return false;
  }
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
  return true;
}

}  // namespace mascot::detail
