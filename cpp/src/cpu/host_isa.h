// The instruction set this host's CPU kernels use, decided once for every kernel family (the SGD
// kernel tables of cpu/kernels.h and the ALS micro-kernels of als/als.h pick their table from it).
#pragma once

namespace mascot::cpu {

enum class Isa { kGeneric, kAvx2, kAvx512 };

/// The best variant the CPU supports (AVX-512 needs F, VL, BW, F16C and FMA; AVX2 needs F16C and
/// FMA), or less when MASCOT_ISA=generic|avx2 asks for it (testing; context.cc refuses other
/// names).  A request the CPU cannot run falls back to the best supported.  Builds without the
/// x86 dispatch: always generic.
Isa host_isa();

}  // namespace mascot::cpu
