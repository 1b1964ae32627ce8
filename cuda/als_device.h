// The ALS solver's device-resident data (cuda/als_kernels.cu): one side's CSR and a factor
// matrix in device memory, and the solve of one side on them.  Internal to cuda/ (the test
// hooks in mascot/detail/als.h and the ALS backend use it); host code only.
#pragma once
#include <cstdint>
#include <vector>

#include "cuda_check.h"
#include "mascot/detail/als.h"

namespace mascot::als {

/// One side's ratings (SideCsr) copied to the device.
struct DeviceCsr {
  explicit DeviceCsr(const SideCsr& R);
  int64_t rows = 0, cols = 0;
  cuda::DeviceBuffer<int64_t> indptr;
  cuda::DeviceBuffer<int32_t> indices;
  cuda::DeviceBuffer<float> values;
};

/// rows x k factors on the device, FP32 or FP16 (half bits), rows back to back.
class DeviceFactors {
 public:
  DeviceFactors(int64_t rows, int k, bool half);
  /// From / to float32 host values (rounded to nearest half when half).
  void upload(const std::vector<float>& v);
  std::vector<float> download() const;
  void* data() const { return half_ ? static_cast<void*>(h_.get()) : static_cast<void*>(f_.get()); }
  int64_t rows() const { return rows_; }
  int k() const { return k_; }
  bool half() const { return half_; }

 private:
  int64_t rows_;
  int k_;
  bool half_;
  cuda::DeviceBuffer<float> f_;
  cuda::DeviceBuffer<uint16_t> h_;
};

/// Throws InvalidArgument when the device kernels do not take `o` (k > 256) and CudaError when
/// no usable device is visible.
void validate_options_on_device(const Options& o);

/// Y^T Y (padded_k(k) squared, zero-padded, float) of Y into yty.
void device_gram(const DeviceFactors& Y, cuda::DeviceBuffer<float>* yty);

/// The device's solve_side: every row of X from Y and R (the CPU's semantics, als.h).
void device_solve_side(const Options& o, const DeviceCsr& R, const DeviceFactors& Y, DeviceFactors* X);

}  // namespace mascot::als
