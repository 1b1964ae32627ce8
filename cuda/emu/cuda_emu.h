// The CUDA emulator's device side: lets the host compiler build the unchanged cuda/*.cu
// sources (CMake: -DMASCOT_CUDA=EMU) and run their kernels on the CPU, so the CUDA backend's
// logic (work mapping, lane indexing, warp shuffles, reductions, group lookup, switching,
// every method's kernel) is executed and tested on machines without a GPU.
//
// It is a correctness tool, not a GPU: nothing it measures is a GPU figure, and a test that
// passes on it has not passed on a GPU.  What it models and what it does not:
//   - every thread of a block is a fiber (cuda_emu.cc); blocks run one after another, the
//     threads of a block interleave at every warp collective (__shfl*_sync, __any_sync) and
//     __syncthreads, so the warps of a block really do race on the model (Hogwild) in a
//     fixed, deterministic order;
//   - warp collectives check their preconditions: a full mask, and every lane of the warp
//     present (a lane that has exited or sits at another collective is a hang on a GPU and an
//     abort with a message here; so is a __syncthreads that not every thread reaches);
//   - arithmetic is the host's IEEE float with -ffp-contract=off (nvcc's -fmad=false);
//     half arithmetic is cuda_fp16.h's host code (each operation in float, rounded once to
//     half: exact for add, sub and mul of halves); the PTX reductions of device_common.cuh
//     (red.global.add) are read-modify-writes with the same rounding; nothing runs between
//     two collectives of a fiber, so every atomic is atomic;
//   - the arch-specific paths follow MASCOT_CUDA_EMU_ARCH (CMake; default 90: the sm_90
//     vector reductions, with their alignment checked; 80: the sm_80 fallbacks);
//   - not modelled: timing, memory coherence between SMs (L1), vector-access atomicity,
//     resource limits (registers, shared memory size), device math functions' ulp errors.
// Force-included (-include) before every CUDA source of the EMU build; never included by a
// real CUDA build.
#pragma once
#ifndef MASCOT_CUDA_EMU
#error "cuda/emu/cuda_emu.h is only for the emulated CUDA build (-DMASCOT_CUDA=EMU)"
#endif

#include <cuda_runtime.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace mascot_emu {

/// The calling fiber's thread and block coordinates (set by the scheduler, cuda_emu.cc).
struct ThreadCoords {
  uint3 thread, block;
  dim3 block_dim, grid_dim;
};
const ThreadCoords& coords();

/// Warp collective: the lane contributes `v` (8 bytes) to the warp's exchange and waits until
/// every lane of its warp has; returns the 32 contributions (valid until its next collective).
const uint64_t* warp_exchange(unsigned mask, uint64_t v, const char* what);
/// Block barrier.
void sync_block();
/// Runs grid x block threads of `body` (a copy per thread) to completion.
void run_grid(dim3 grid, dim3 block, void (*body)(void*), void* ctx);
/// Why a launch cannot run (no device or driver, a sticky fault; cudaSuccess: it runs), and
/// records that error for cudaGetLastError.  Counts launches for MASCOT_CUDA_EMU_FAULT_LAUNCH.
cudaError_t launch_refused();

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <class... A>
struct Launcher {
  dim3 grid, block;
  void (*kernel)(A...);
  template <class... Args>
  void operator()(Args&&... args) const {
    struct Ctx {
      void (*kernel)(A...);
      std::tuple<std::decay_t<A>...> args;
    } ctx{kernel, std::tuple<std::decay_t<A>...>(std::forward<Args>(args)...)};
    run_grid(
        grid, block,
        [](void* c) {
          auto* x = static_cast<Ctx*>(c);
          std::apply(x->kernel, x->args);  // the kernel's by-value parameters are copied per thread
        },
        &ctx);
  }
};
template <class... A>
Launcher<A...> launcher(dim3 grid, dim3 block, void (*kernel)(A...)) {
  return Launcher<A...>{grid, block, kernel};
}

}  // namespace mascot_emu

// ---- launch (cuda_check.h: MASCOT_LAUNCH(grid, block, kernel)(args...))
#define MASCOT_EMU_LAUNCH(grid, block, ...) ::mascot_emu::launcher(dim3(grid), dim3(block), &__VA_ARGS__)

// ---- built-in variables
#define threadIdx (::mascot_emu::coords().thread)
#define blockIdx (::mascot_emu::coords().block)
#define blockDim (::mascot_emu::coords().block_dim)
#define gridDim (::mascot_emu::coords().grid_dim)

// ---- qualifiers: plain host functions; a kernel's __shared__ variables are static (blocks
// run one at a time, and every thread of the running block sees the same variable)
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __shared__
#define __shared__ static

// ---- warp collectives and barriers.  They read the emulator's exchange buffer, which TSan
// must not check (scripts/sanitize.sh cuda-emu-race: the scheduler's state is not the
// kernels'; cuda_emu.cc is not instrumented either).
#define MASCOT_EMU_NO_TSAN __attribute__((no_sanitize_thread))
template <class T>
MASCOT_EMU_NO_TSAN inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const uint64_t* all = ::mascot_emu::warp_exchange(mask, ::mascot_emu::to_bits(v), "__shfl_sync");
  const int lane = static_cast<int>(threadIdx.x & 31);
  return ::mascot_emu::from_bits<T>(all[(lane & ~(width - 1)) + (src & (width - 1))]);
}
template <class T>
MASCOT_EMU_NO_TSAN inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const uint64_t* all = ::mascot_emu::warp_exchange(mask, ::mascot_emu::to_bits(v), "__shfl_xor_sync");
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int src = lane ^ lane_mask;
  // a source outside the lane's width segment returns the lane's own value (CUDA semantics)
  return ::mascot_emu::from_bits<T>((src & ~(width - 1)) == (lane & ~(width - 1)) ? all[src] : all[lane]);
}
MASCOT_EMU_NO_TSAN inline int __any_sync(unsigned mask, int pred) {
  const uint64_t* all = ::mascot_emu::warp_exchange(mask, pred != 0 ? 1u : 0u, "__any_sync");
  for (int l = 0; l < 32; ++l)
    if (all[l]) return 1;
  return 0;
}
inline void __syncthreads() { ::mascot_emu::sync_block(); }

// ---- loads and atomics.  A fiber runs alone between collectives, so a read-modify-write is
// atomic anyway; they are still real atomics (a compare-and-swap loop on the value's bits), so
// that ThreadSanitizer (scripts/sanitize.sh cuda-emu-race) sees atomics where a GPU has them.
namespace mascot_emu {
template <class T, class F>
inline T atomic_update(T* p, F f) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- or 8-byte values");
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U* q = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(q, __ATOMIC_RELAXED);
  T o;
  do {
    std::memcpy(&o, &old, sizeof o);
  } while (!__atomic_compare_exchange_n(q, &old, to_bits(f(o)) & static_cast<U>(~U{0}), false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
  return o;
}
}  // namespace mascot_emu
template <class T>
inline T __ldcg(const T* p) {
  return *p;
}
template <class T>
inline T atomicAdd(T* p, T v) {
  return ::mascot_emu::atomic_update(p, [v](T o) { return static_cast<T>(o + v); });
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  return ::mascot_emu::atomic_update(p, [v](unsigned o) { return v > o ? v : o; });
}
inline unsigned __float_as_uint(float x) { return ::mascot_emu::to_bits(x) & 0xFFFFFFFFu; }
inline float __uint_as_float(unsigned x) { return ::mascot_emu::from_bits<float>(x); }

// ---- the PTX reductions of device_common.cuh (red.global.add.f32 / .noftz.f16x2)
// The sm_90 vector forms (.v2/.v4, MASCOT_SM90 in device_common.cuh): element-wise the same
// adds; their address must be aligned to the vector's size (8 or 16 bytes), or a GPU faults
// ("misaligned address"), so the emulator aborts.
#ifndef MASCOT_CUDA_EMU_ARCH
#define MASCOT_CUDA_EMU_ARCH 900
#endif
namespace mascot_emu {
[[noreturn]] void misaligned(const void* p, unsigned bytes, const char* what);
inline void red_add_f32(float* p, float a) {
  atomic_update(p, [a](float o) { return o + a; });
}
inline void red_add_f16x2(uint16_t* p, uint32_t a) {  // p: 4-byte aligned (an f16x2 word)
  atomic_update(reinterpret_cast<uint32_t*>(p), [a](uint32_t w) {
    uint32_t r = 0;
    for (int h = 0; h < 2; ++h) {
      const __half x = __ushort_as_half(static_cast<unsigned short>(w >> (16 * h)));
      const __half y = __ushort_as_half(static_cast<unsigned short>(a >> (16 * h)));
      r |= static_cast<uint32_t>(__half_as_ushort(__hadd(x, y))) << (16 * h);
    }
    return r;
  });
}
inline void red_add_vector(float* p, const float* v, int n, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % (4u * n) != 0) misaligned(p, 4u * n, what);
  for (int c = 0; c < n; ++c) red_add_f32(p + c, v[c]);
}
inline void red_add_f16x2_vector(uint16_t* p, const uint32_t* v, int n, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % (4u * n) != 0) misaligned(p, 4u * n, what);
  for (int c = 0; c < n; ++c) red_add_f16x2(p + 2 * c, v[c]);
}
}  // namespace mascot_emu
