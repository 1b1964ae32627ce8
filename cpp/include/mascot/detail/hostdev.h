#pragma once
// Marks formulas shared by the CPU backend and the CUDA kernels.
#if defined(__CUDACC__)
#define MASCOT_HD __host__ __device__ __forceinline__
#else
#define MASCOT_HD inline
#endif
