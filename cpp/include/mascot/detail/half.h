// FP16 <-> FP32 conversion in software, bit-exact with the hardware (F16C, CUDA __float2half_rn)
// for round-to-nearest-even, plus the stochastic-rounding rule.  The CPU kernels use the
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

/// Stochastic rounding to FP16: unbiased, result is always one of the two neighbouring
/// representable halves, P(up) = distance to lower / spacing.  `bits` is a fresh 32-bit
/// random word.  For normal halves this is docs/design.md §7's rule (add 13 random bits below the
/// FP16 mantissa, truncate toward zero); in the subnormal range the spacing is the fixed
/// 2^-24, so the random offset is scaled to it.
MASCOT_HD uint16_t float_to_half_sr(float f, uint32_t bits) {
  const uint32_t x = f32_bits(f);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) return float_to_half_rn(f);
  if (ax >= 0x38800000u) {
    // normal range: add random below bit 13 of the mantissa, then truncate
    return float_to_half_rz(bits_f32(x + (bits & 0x1FFFu)));
  }
  // subnormal halves: value = n * 2^-24 + frac; round up with probability frac
  const float unit = 5.9604644775390625e-08f;  // 2^-24
  const float a = bits_f32(ax);
  const float n = static_cast<float>(static_cast<uint32_t>(a / unit));   // exact for a < 2^-14
  const float frac = (a - n * unit) / unit;                              // exact in [0,1)
  const float u = static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);  // [0,1) with 24 bits
  const uint32_t q = static_cast<uint32_t>(n) + (u < frac ? 1u : 0u);
  return static_cast<uint16_t>(((x >> 16) & 0x8000u) | q);
}

}  // namespace mascot::detail
