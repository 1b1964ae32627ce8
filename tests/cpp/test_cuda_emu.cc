// Tests of the CUDA emulator itself (cuda/emu/), built only with -DMASCOT_CUDA=EMU and run by
// scripts/cuda_emu_check.sh.  The emulator is what runs the CUDA backend's kernels on machines
// without a GPU, so its collectives must be right and its hang checks must fire:
//   test_cuda_emu            the checks that must pass (exit 0)
//   test_cuda_emu <case>     a kernel that would hang or misbehave on a GPU: must abort with
//                            the message the script expects (deadlock, divergent, exited);
//                            the out-of-bounds cases only under ASan, the leak case with
//                            MASCOT_CUDA_EMU_LEAK_CHECK=1.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "device_common.cuh"

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  }
}

__global__ void butterfly(int* out) {
  int x = static_cast<int>(threadIdx.x & 31);
  for (int o = 16; o >= 1; o >>= 1) x += __shfl_xor_sync(0xFFFFFFFFu, x, o);
  out[blockIdx.x * blockDim.x + threadIdx.x] = x;
}

__global__ void broadcast(const float* in, float* out) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  // each lane reads lane + 5's value (mod 32): a shuffle that returned the caller's own value,
  // or another warp's, would show
  out[blockIdx.x * blockDim.x + threadIdx.x] = __shfl_sync(0xFFFFFFFFu, v, (lane + 5) & 31);
}

__global__ void any_odd(const int* in, int* out) {
  out[blockIdx.x * blockDim.x + threadIdx.x] = __any_sync(0xFFFFFFFFu, in[blockIdx.x * blockDim.x + threadIdx.x] & 1);
}

__global__ void reverse_block(const int* in, int* out) {
  __shared__ int buf[256];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  buf[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = buf[n - 1 - t];
}

__global__ void atomic_count(unsigned long long* c, float* sum) {
  atomicAdd(c, 1ull);
  atomicAdd(sum, 0.5f);
}

// every lane adds (1, 2, 3, 4) to the block's 4 floats through the reductions of
// device_common.cuh: the sm_90 vector forms on the default emulated sm_90, scalars on sm_80
__global__ void vector_reductions(float* out) {
  mascot::cuda::red_f32x4(out, 1.f, 2.f, 3.f, 4.f);
  mascot::cuda::red_f32x2(out + 4, 5.f, 6.f);
}

// ---- kernels that would hang on a GPU: the emulator must abort and say why
__global__ void half_warp_shuffle(int* out) {
  int x = static_cast<int>(threadIdx.x);
  if ((threadIdx.x & 31) < 16) x = __shfl_sync(0xFFFFFFFFu, x, 0);  // lanes 16-31 never arrive
  out[threadIdx.x] = x;
}
__global__ void divergent_collectives(int* out) {
  int x = static_cast<int>(threadIdx.x);
  if ((threadIdx.x & 31) < 16)
    x = __shfl_sync(0xFFFFFFFFu, x, 0);
  else
    x = __any_sync(0xFFFFFFFFu, x);
  out[threadIdx.x] = x;
}
__global__ void barrier_skipped_by_a_waiting_warp(int* out) {
  // warp 0 waits at a shuffle for lanes that wait at a block barrier: a cycle
  if (threadIdx.x < 16)
    out[threadIdx.x] = __shfl_sync(0xFFFFFFFFu, 1, 0);
  else
    __syncthreads();
}

// Cases for the memory checks (scripts/sanitize.sh cuda-emu, scripts/cuda_emu_check.sh): an
// access one element past a device buffer or a __shared__ array must be an ASan report in the
// ASan build of the emulator, and device memory never freed must fail the leak check.
__global__ void device_out_of_bounds(int* out, int n) {
  if (threadIdx.x == 0) out[n] = 1;
}
__global__ void shared_out_of_bounds(int* out) {
  __shared__ int s[64];
  s[threadIdx.x + 1] = static_cast<int>(threadIdx.x);  // thread 63 writes s[64]
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

// reverse_block without its barrier: thread t reads what thread 255 - t wrote, unordered (a
// racecheck hazard; scripts/sanitize.sh cuda-emu-race requires a TSan report for it)
__global__ void shared_race(const int* in, int* out) {
  __shared__ int buf[256];
  buf[threadIdx.x] = in[threadIdx.x];
  out[threadIdx.x] = buf[255 - threadIdx.x];
}

// an sm_90 vector reduction (device_common.cuh) at an address not aligned to its 16 bytes
__global__ void misaligned_reduction(float* out) {
  if (threadIdx.x == 0) mascot::cuda::red_f32x4(out + 1, 1.f, 2.f, 3.f, 4.f);
}

template <class T>
struct Buf {
  mascot::cuda::DeviceBuffer<T> d;
  std::vector<T> h;
  explicit Buf(size_t n) : d(n), h(n) {}
  T* get() { return d.get(); }
  const std::vector<T>& read() {
    d.download(h.data(), h.size());
    return h;
  }
};

int run_checks() {
  const int blocks = 3, threads = 128, n = blocks * threads;
  {
    Buf<int> out(n);
    MASCOT_LAUNCH(blocks, threads, butterfly)(out.get());
    MASCOT_CUDA_CHECK_LAUNCH();
    bool ok = true;
    for (int x : out.read()) ok = ok && x == 496;  // 0 + 1 + ... + 31 in every lane
    check(ok, "__shfl_xor_sync butterfly sums a warp in every lane");
  }
  {
    Buf<float> in(n), out(n);
    std::vector<float> h(n);
    for (int i = 0; i < n; ++i) h[i] = 0.25f * static_cast<float>(i);
    in.d.upload(h.data(), n);
    MASCOT_LAUNCH(blocks, threads, broadcast)(in.get(), out.get());
    const auto& o = out.read();
    bool ok = true;
    for (int i = 0; i < n; ++i) ok = ok && o[i] == h[i / 32 * 32 + (i % 32 + 5) % 32];
    check(ok, "__shfl_sync reads the named source lane");
  }
  {
    Buf<int> in(64), out(64);
    std::vector<int> h(64, 2);
    h[40] = 3;  // one odd value, in the second warp
    in.d.upload(h.data(), 64);
    MASCOT_LAUNCH(1, 64, any_odd)(in.get(), out.get());
    const auto& o = out.read();
    bool ok = true;
    for (int i = 0; i < 64; ++i) ok = ok && o[i] == (i >= 32 ? 1 : 0);
    check(ok, "__any_sync is per warp");
  }
  {
    Buf<int> in(2 * 256), out(2 * 256);
    std::vector<int> h(512);
    for (int i = 0; i < 512; ++i) h[i] = i;
    in.d.upload(h.data(), 512);
    MASCOT_LAUNCH(2, 256, reverse_block)(in.get(), out.get());
    const auto& o = out.read();
    bool ok = true;
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 256; ++t) ok = ok && o[b * 256 + t] == b * 256 + 255 - t;
    check(ok, "__syncthreads orders shared-memory writes before reads");
  }
  {
    Buf<unsigned long long> c(1);
    Buf<float> s(1);
    c.d.zero();
    s.d.zero();
    MASCOT_LAUNCH(5, 96, atomic_count)(c.get(), s.get());
    check(c.read()[0] == 480 && s.read()[0] == 240.f, "atomicAdd loses no update");
  }
  {
    Buf<float> f(6);
    f.d.zero();
    MASCOT_LAUNCH(2, 64, vector_reductions)(f.get());
    const auto& o = f.read();
    check(o[0] == 128 && o[1] == 256 && o[2] == 384 && o[3] == 512 && o[4] == 640 && o[5] == 768,
          "vector reductions (sm_" + std::to_string(MASCOT_CUDA_EMU_ARCH / 10) + " paths) lose no update");
  }
  {
    int sms = 0, per = 0;
    MASCOT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    MASCOT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, butterfly, 256, 0));
    check(sms >= 1 && per == 8, "device attributes");
    void* p = nullptr;
    check(cudaMalloc(&p, size_t{1} << 62) == cudaErrorMemoryAllocation &&
              cudaGetLastError() == cudaErrorMemoryAllocation && cudaGetLastError() == cudaSuccess,
          "an allocation beyond the emulated memory fails like a GPU's (sticky until read)");
  }
  if (failures == 0) std::printf("cuda emulator self-test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return run_checks();
  Buf<int> out(256);
  const std::string c = argv[1];
  if (c == "half-warp-shuffle")
    MASCOT_LAUNCH(1, 64, half_warp_shuffle)(out.get());
  else if (c == "divergent")
    MASCOT_LAUNCH(1, 32, divergent_collectives)(out.get());
  else if (c == "barrier-cycle")
    MASCOT_LAUNCH(1, 64, barrier_skipped_by_a_waiting_warp)(out.get());
  else if (c == "shared-race") {
    Buf<int> in(256);
    in.d.zero();
    MASCOT_LAUNCH(1, 256, shared_race)(in.get(), out.get());
  } else if (c == "misaligned-reduction") {
    Buf<float> f(8);
    MASCOT_LAUNCH(1, 32, misaligned_reduction)(f.get());
  } else if (c == "device-out-of-bounds")
    MASCOT_LAUNCH(1, 32, device_out_of_bounds)(out.get(), 256);
  else if (c == "shared-out-of-bounds")
    MASCOT_LAUNCH(1, 64, shared_out_of_bounds)(out.get());
  else if (c == "leak") {
    void* p = nullptr;
    if (cudaMalloc(&p, 1000) != cudaSuccess) return 2;
    return 0;  // never freed: with MASCOT_CUDA_EMU_LEAK_CHECK=1 the exit status becomes 99
  } else {
    std::fprintf(stderr, "unknown case '%s'\n", c.c_str());
    return 2;
  }
  std::printf("case %s ran to the end: the emulator did not catch it\n", c.c_str());
  return 0;
}
