// SGD kernels of the CPU backend.  kernels.cc is compiled once per instruction set
// (generic, avx2, avx512; see CMakeLists.txt) into namespaces of those names, and
// kernels_dispatch.cc picks the best the host supports at run time.  Every variant performs
// the operations of detail/sgd.h in the same order, so all of them give identical bits.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mascot::cpu {

/// One training rating in relabelled ids, as the epoch streams it (12 bytes).
struct Rec {
  int32_t u;
  int32_t i;
  float r;
};

struct SgdParams {
  int k;
  float lr, lambda_p, lambda_q;
};

/// Processes recs[0..n) in order, updating P and Q in place (Hogwild: other threads may be
/// updating other rows, or the same ones, concurrently).
using SgdFn = void (*)(const Rec* recs, size_t n, void* P, void* Q, const SgdParams& prm);
/// Sum of squared errors of p_u . q_i (FP32 dot, documented lane order) over recs.
using SseFn = double (*)(const Rec* recs, size_t n, const void* P, const void* Q, int k);

struct KernelTable {
  const char* isa;
  SgdFn sgd_fp32;  ///< float storage, float arithmetic
  SgdFn sgd_n1;    ///< half storage, float arithmetic, round-to-nearest store
  SgdFn sgd_fp16;  ///< half storage, half arithmetic (every operation rounded to half)
  SseFn sse_f32;   ///< evaluation on float storage
  SseFn sse_f16;   ///< evaluation on half storage
};

/// The best table for this host (MASCOT_ISA=generic|avx2|avx512 in the environment forces one,
/// for testing; an unsupported request falls back to the best supported).
const KernelTable& kernels();
const char* kernel_isa();

}  // namespace mascot::cpu
