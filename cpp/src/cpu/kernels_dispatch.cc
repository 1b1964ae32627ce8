// Picks the kernel variant for this host once (cpu/kernels.h).
#include <cstdlib>
#include <cstring>

#include "cpu/kernels.h"

namespace mascot::cpu {
namespace generic {
extern const KernelTable kTable;
}
#if defined(MASCOT_X86_DISPATCH)
namespace avx2 {
extern const KernelTable kTable;
}
namespace avx512 {
extern const KernelTable kTable;
}
#endif

namespace {
const KernelTable& pick() {
  const char* want = std::getenv("MASCOT_ISA");
#if defined(MASCOT_X86_DISPATCH)
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("f16c") &&
                      __builtin_cpu_supports("fma");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  if (want && std::strcmp(want, "generic") == 0) return generic::kTable;
  if (want && std::strcmp(want, "avx2") == 0 && has2) return avx2::kTable;
  if (has512) return avx512::kTable;
  if (has2) return avx2::kTable;
#else
  (void)want;
#endif
  return generic::kTable;
}
}  // namespace

const KernelTable& kernels() {
  static const KernelTable& t = pick();
  return t;
}
const char* kernel_isa() { return kernels().isa; }

}  // namespace mascot::cpu
