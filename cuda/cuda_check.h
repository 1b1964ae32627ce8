// Error checking and RAII device memory for the CUDA backend (internal to cuda/).
// Every CUDA runtime call goes through MASCOT_CUDA_CHECK, every kernel launch is followed by
// MASCOT_CUDA_CHECK_LAUNCH(); both throw mascot::CudaError carrying the failing expression,
// file and line, so the CLI prints one line and Python raises RuntimeError.  DeviceBuffer
// owns one cudaMalloc allocation and frees it on every path (exceptions included).
// A device fault in a kernel (an illegal address, ...) leaves the process's CUDA context
// unusable: every later call fails with the same error.  throw_cuda records the first such
// error (lost_context()), so that later requests say so (cuda_unavailable_reason, context.h)
// and `auto` trains on the CPU, instead of each failing later at some unrelated call.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <utility>

#include "mascot/error.h"
#include "mascot/memory_plan.h"

namespace mascot::cuda {

/// Whether `e` is a device fault after which the CUDA context stays unusable (CUDA runtime
/// API: "the process must be terminated and relaunched").
inline bool sticky_error(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

/// The first sticky error seen by this process (cudaSuccess while the context is usable).
inline std::atomic<int>& lost_context_slot() {
  static std::atomic<int> e{cudaSuccess};
  return e;
}
inline cudaError_t lost_context() { return static_cast<cudaError_t>(lost_context_slot().load()); }

/// Throws CudaError "<what> failed at file:line: <cuda error string>"; out of memory gets a
/// message saying so (the usual user-caused failure: too large a model for the device), a
/// device fault one saying that the process must restart to use the GPU again.
/// (file nullptr: no location.)
[[noreturn]] inline void throw_cuda(cudaError_t err, const char* what, const char* file, int line) {
  std::string msg = std::string("CUDA error: ") + what + " failed" +
                    (file ? std::string(" at ") + file + ":" + std::to_string(line) : std::string()) + ": " +
                    cudaGetErrorString(err);
  if (err == cudaErrorMemoryAllocation) msg += " (out of device memory: use a smaller k or dataset, or --device cpu)";
  if (sticky_error(err)) {
    int none = cudaSuccess;
    lost_context_slot().compare_exchange_strong(none, static_cast<int>(err));
    msg += " (a device fault: the GPU is unusable in this process until it restarts; --device cpu still works)";
  }
  throw CudaError(msg);
}

}  // namespace mascot::cuda

#define MASCOT_CUDA_CHECK(expr)                                                          \
  do {                                                                                   \
    const cudaError_t mascot_cuda_err_ = (expr);                                         \
    if (mascot_cuda_err_ != cudaSuccess) {                                               \
      cudaGetLastError(); /* clear a non-sticky error so later calls are not poisoned */ \
      ::mascot::cuda::throw_cuda(mascot_cuda_err_, #expr, __FILE__, __LINE__);           \
    }                                                                                    \
  } while (0)

/// After every launch: configuration errors show up here (execution errors at the next
/// synchronising call, which is checked too).
#define MASCOT_CUDA_CHECK_LAUNCH() MASCOT_CUDA_CHECK(cudaGetLastError())

/// Every kernel launch: MASCOT_LAUNCH(grid, block, kernel)(args...) is kernel<<<grid, block>>>(args...)
/// with nvcc, and runs the same kernel on the CPU emulator in the -DMASCOT_CUDA=EMU build
/// (cuda/emu/cuda_emu.h), which the host compiler builds from these same sources.
#ifdef MASCOT_CUDA_EMU
#define MASCOT_LAUNCH(grid, block, ...) MASCOT_EMU_LAUNCH(grid, block, __VA_ARGS__)
#else
#define MASCOT_LAUNCH(grid, block, ...) __VA_ARGS__<<<grid, block>>>
#endif

namespace mascot::cuda {

/// One device allocation of `count` elements of T (device memory; never dereferenced on the
/// host).  Move-only; freed in the destructor.  count == 0 holds no allocation.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { reset(count); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() { release(); }

  /// Frees the old allocation, allocates `count` elements (uninitialised).
  void reset(size_t count) {
    release();
    if (count == 0) return;
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, count * sizeof(T));
    if (err != cudaSuccess) {
      cudaGetLastError();
      // the size, not this helper's file and line, is what tells the user something
      throw_cuda(err, ("cudaMalloc of " + human_bytes(count * sizeof(T))).c_str(), nullptr, 0);
    }
    p_ = static_cast<T*>(p);
    n_ = count;
  }
  void upload(const T* host, size_t count) {
    if (count) MASCOT_CUDA_CHECK(cudaMemcpy(p_, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, size_t count) const {
    if (count) MASCOT_CUDA_CHECK(cudaMemcpy(host, p_, count * sizeof(T), cudaMemcpyDeviceToHost));
  }
  void zero() {
    if (n_) MASCOT_CUDA_CHECK(cudaMemset(p_, 0, n_ * sizeof(T)));
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  void release() noexcept {
    if (p_) cudaFree(p_);  // a failure here cannot be reported from a destructor; nothing leaks on the host
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0;
};

/// RAII pair of CUDA events for timing a region on the default stream.
class EventTimer {
 public:
  EventTimer() {
    MASCOT_CUDA_CHECK(cudaEventCreate(&a_));
    const cudaError_t e = cudaEventCreate(&b_);
    if (e != cudaSuccess) {
      cudaEventDestroy(a_);
      throw_cuda(e, "cudaEventCreate(&b_)", __FILE__, __LINE__);
    }
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  void start() { MASCOT_CUDA_CHECK(cudaEventRecord(a_)); }
  /// Records the end, waits for it, returns the elapsed seconds.
  double stop() {
    MASCOT_CUDA_CHECK(cudaEventRecord(b_));
    MASCOT_CUDA_CHECK(cudaEventSynchronize(b_));
    float ms = 0;
    MASCOT_CUDA_CHECK(cudaEventElapsedTime(&ms, a_, b_));
    return ms * 1e-3;
  }

 private:
  cudaEvent_t a_ = nullptr, b_ = nullptr;
};

}  // namespace mascot::cuda
