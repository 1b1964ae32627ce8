// Decides this host's instruction set once (cpu/host_isa.h) and picks the SGD kernel table for it
// (cpu/kernels.h).
#include <cstdlib>
#include <cstring>

#include "cpu/host_isa.h"
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
Isa detect() {
#if defined(MASCOT_X86_DISPATCH)
  const char* want = std::getenv("MASCOT_ISA");
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("f16c") &&
                      __builtin_cpu_supports("fma");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  if (want && std::strcmp(want, "generic") == 0) return Isa::kGeneric;
  if (want && std::strcmp(want, "avx2") == 0 && has2) return Isa::kAvx2;
  if (has512) return Isa::kAvx512;
  if (has2) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

const KernelTable& pick() {
#if defined(MASCOT_X86_DISPATCH)
  switch (host_isa()) {
    case Isa::kAvx512:
      return avx512::kTable;
    case Isa::kAvx2:
      return avx2::kTable;
    case Isa::kGeneric:
      break;
  }
#endif
  return generic::kTable;
}
}  // namespace

Isa host_isa() {
  static const Isa isa = detect();
  return isa;
}

const KernelTable& kernels() {
  static const KernelTable& t = pick();
  return t;
}
const char* kernel_isa() { return kernels().isa; }

}  // namespace mascot::cpu
