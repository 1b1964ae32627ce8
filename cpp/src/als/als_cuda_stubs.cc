// Built only without CUDA (beside cpp/src/cuda_stubs.cc): the ALS solver's CUDA entry points
// exist and fail clearly.
#include "mascot/detail/als.h"
#include "mascot/error.h"

namespace mascot::als {
std::vector<float> cuda_solve_side(const Options&, const SideCsr&, const std::vector<float>&,
                                   const std::vector<float>&) {
  throw CudaError("MASCOT was built without CUDA: the cuda device is unavailable (use --device cpu)");
}
void cuda_hermitian(const Options&, const SideCsr&, const std::vector<float>&, std::vector<float>*,
                    std::vector<float>*) {
  throw CudaError("MASCOT was built without CUDA: the cuda device is unavailable (use --device cpu)");
}
}  // namespace mascot::als

#include "mascot/detail/als_engine.h"
namespace mascot::als {
std::unique_ptr<Store> make_cuda_store() {
  throw CudaError("MASCOT was built without CUDA: the cuda device is unavailable (use --device cpu)");
}
}  // namespace mascot::als
