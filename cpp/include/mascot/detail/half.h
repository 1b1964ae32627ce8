// FP16 <-> FP32 conversion in software, bit-exact with the hardware (F16C, CUDA __float2half_rn)
// for round-to-nearest-even, plus the stochastic-rounding rule (float_to_half_sr).  The CPU kernels use the
// hardware instructions where present; these scalar versions serve the generic path, the
// tails, and the tests.
#pragma once
#include <cstdint>
#include <cstring>

#include "mascot/detail/hostdev.h"

namespace mascot::detail {

// Bit casts: memcpy on the host (the portable way), the intrinsics in device code (nvcc has
// no std::memcpy there).  Same bits either way.
#if defined(__CUDA_ARCH__)
MASCOT_HD uint32_t f32_bits(float f) { return __float_as_uint(f); }
MASCOT_HD float bits_f32(uint32_t u) { return __uint_as_float(u); }
#else
MASCOT_HD uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
MASCOT_HD float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
#endif

MASCOT_HD float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t man = h & 0x3FFu;
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    // subnormal: normalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while ((man & 0x400u) == 0);
    man &= 0x3FFu;
    return bits_f32(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (man << 13));
  }
  if (exp == 0x1F) return bits_f32(sign | 0x7F800000u | (man << 13));
  return bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

/// Round to nearest, ties to even (IEEE default), with overflow to inf.
MASCOT_HD uint16_t float_to_half_rn(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return sign | (ax > 0x7F800000u ? 0x7E00u : 0x7C00u);  // nan / inf
  if (ax >= 0x477FF000u) return sign | 0x7C00u;                                 // rounds to >= 65520 -> inf
  if (ax < 0x38800000u) {                                                       // below 2^-14: subnormal half
    if (ax < 0x33000000u) return sign;                                          // < 2^-25: rounds to 0
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14 + (127-15) - e + 1 ... -> bits to drop
    // value = m * 2^(e-150); half subnormal unit = 2^-24 -> q = m * 2^(e-126)
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    uint32_t r = q + ((rem > halfway || (rem == halfway && (q & 1u))) ? 1u : 0u);
    return sign | static_cast<uint16_t>(r);
  }
  // normal
  const uint32_t e = (ax >> 23) - 127 + 15;
  uint32_t m = ax & 0x7FFFFFu;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into exponent: correct
  return sign | static_cast<uint16_t>(h);
}

/// Round toward zero (truncate).
MASCOT_HD uint16_t float_to_half_rz(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return sign | (ax > 0x7F800000u ? 0x7E00u : 0x7C00u);
  if (ax >= 0x47800000u) return sign | 0x7BFFu;  // >= 65536: largest finite (RZ never overflows)
  if (ax < 0x38800000u) {
    if (ax < 0x33800000u) return sign;  // < 2^-24
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    return sign | static_cast<uint16_t>(m >> (126 - e));
  }
  const uint32_t e = (ax >> 23) - 127 + 15;
  return sign | static_cast<uint16_t>((e << 10) | ((ax & 0x7FFFFFu) >> 13));
}

/// Round `f` to half precision (RN) and back: the value an FP16 store keeps.
MASCOT_HD float round_half(float f) { return half_to_float(float_to_half_rn(f)); }

/// Stochastic rounding to FP16 (dithered truncation), the one definition every backend follows:
/// the CPU kernels (scalar, AVX2/F16C and AVX-512 paths, cpu/kernels.cc), the competing methods
/// (fixed_point.h half_sr_value), the CUDA kernels and the NumPy reference (tests/python/reference.py
/// sr_half).  d = bits & 0x1FFF, a 13-bit random number, is added to the float's bits just below
/// the FP16 mantissa, and the sum is truncated toward zero (the hardware's RZ conversion on the
/// vector paths).  For a uniform d the result is one of the two neighbouring halves and rounds
/// up with probability (distance to the lower half) / spacing: unbiased.
/// Below 2^-14 (FP16 subnormals, spacing 2^-24) the float's low bits are finer than the dither
/// reaches, so x is first moved into the binade [2^-14, 2^-13), whose spacing is also 2^-24, by
/// adding copysign(2^-14, x) (in FP32: this rounds x to a multiple of 2^-37), dithered and
/// truncated there, and the half's exponent step is taken back (-0x0400 in half bits).  So
/// E[stored] = x exactly for halves >= 2^-14 and within 2^-38 below (1/16384 of a spacing).
/// Why not the earlier exact rule (a uniform [0, 1) compared with the fraction in units of
/// 2^-24): its subnormal branch and a full 32-bit mixer per element made a stochastic epoch
/// 3.8x a nearest one (docs/benchmarks.md); this costs a few integer operations per 16 lanes.
/// Edge cases, the same bits on every path: |x| >= 65504 saturates at 65504 (truncation never
/// overflows); +-inf becomes NaN unless d = 0 (a model at inf is already lost); NaN stays NaN
/// (a NaN payload of 0x7FFFE001 or more would wrap into the sign bit; arithmetic makes the
/// default NaN and FP16 loads leave the low 13 bits zero, so no stored NaN has one).
MASCOT_HD uint16_t float_to_half_sr(float f, uint32_t bits) {
  const uint32_t x = f32_bits(f);
  const uint32_t d = bits & 0x1FFFu;
  if ((x & 0x7FFFFFFFu) >= 0x38800000u) return float_to_half_rz(bits_f32(x + d));
  const float lifted = f + bits_f32((x & 0x80000000u) | 0x38800000u);  // |x| + 2^-14, sign of x
  return static_cast<uint16_t>(float_to_half_rz(bits_f32(f32_bits(lifted) + d)) - 0x0400u);
}

}  // namespace mascot::detail
