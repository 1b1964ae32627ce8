// CUDA trainer entry point.  The GPU kernels are the CUDA-backend issue's work; until they
// land, asking for the cuda device fails with this clear message and `auto` picks the CPU
// (see cuda_training_available in cpp/src/context.cc).
#include "mascot/detail/backend.h"
#include "mascot/error.h"

namespace mascot::detail {

bool cuda_training_available() noexcept { return false; }

std::unique_ptr<Backend> make_cuda_backend() {
  throw CudaError("the CUDA training backend is not implemented in this version yet; use --device cpu");
}

}  // namespace mascot::detail
