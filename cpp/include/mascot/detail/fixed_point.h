// Low-precision number formats of the competing methods, written once for host and device
// (MASCOT_HD): no std:: containers, no exceptions, no allocation.
//
// Dynamic fixed point (MuPPET, AFP): a tensor shares one power-of-two scale.  A value x is
// stored as the integer q = round(x * 2^f), clamped to the word length's range
// [-2^(WL-1), 2^(WL-1) - 1], and means q * 2^-f; f is the number of fractional bits
// (f = -s for AFP's "point position" s, step 2^s).  The scale is chosen from the tensor's
// max |x|:
//   MuPPET (quantize.py findSfAndScale): the largest f with max|x| * 2^f <= 2^(WL-1) - 0.5,
//          i.e. floor(log2((2^(WL-1) - 0.5) / max|x|)) (MuPPET uses the signed max and min
//          separately; max |x| with the positive bound is the same rule, never looser);
//   AFP:   the largest f with max|x| * 2^f <= 2^(WL-1) - 1 (s = ceil(log2(max|x| / (2^(WL-1)-1)))),
//          see afp_point_position() in competing_params.h.
// Rounding to the integer grid: to nearest (ties to even), or stochastic: floor(y) + 1 with
// probability frac(y) (unbiased; the result is always one of the two neighbouring integers),
// from a 32-bit random word.  Values beyond the range saturate.
//
// FP16 values (MPT): half_rn_value / half_sr_value give exactly half_to_float(float_to_half_rn(x))
// and half_to_float(float_to_half_sr(x, bits)) of half.h, computed without branches so that a
// loop over k vectorises (half.h's scalar conversions are the reference and the test oracle).
#pragma once
#include <cmath>
#include <cstdint>

#include "mascot/detail/half.h"
#include "mascot/detail/hostdev.h"

namespace mascot::detail {

constexpr int kFixedMinFracBits = -100;  ///< guards: 2^f and 2^-f stay normal floats
constexpr int kFixedMaxFracBits = 100;
constexpr int kFixedMaxWordLength = 24;  ///< every integer of the grid is exact in float

/// 2^e as a float, exactly, for e in [-126, 127].
MASCOT_HD float pow2f(int e) { return bits_f32(static_cast<uint32_t>(e + 127) << 23); }

/// frexp for a positive finite float: x = m 2^e with m in [0.5, 1).  Exponent bits for normal
/// numbers (no libm call in the per-rating loops), frexpf for subnormals.
MASCOT_HD float frexp_pos(float x, int* e) {
  const uint32_t b = f32_bits(x);
  const uint32_t be = (b >> 23) & 0xFFu;
  if (be == 0) return frexpf(x, e);
  *e = static_cast<int>(be) - 126;
  return bits_f32((b & 0x007FFFFFu) | 0x3F000000u);
}

/// The largest f with max_abs * 2^f <= bound (exact; frexp, no log rounding), clamped to the
/// guards.  max_abs <= 0, inf or nan: 0 (MuPPET's convention for an all-zero tensor).
MASCOT_HD int fixed_frac_bits_for_bound(float max_abs, float bound) {
  if (!(max_abs > 0) || !(max_abs <= 3.4028234663852886e38f)) return 0;
  int E, F;
  const float m = frexp_pos(max_abs, &E);  // max_abs = m 2^E, m in [0.5, 1)
  const float b = frexp_pos(bound, &F);    // bound   = b 2^F
  // m 2^(E+f) <= b 2^F  <=>  2^(E+f-F) <= b/m, b/m in (0.5, 2)
  int f = F - E - (b >= m ? 0 : 1);
  if (f < kFixedMinFracBits) f = kFixedMinFracBits;
  if (f > kFixedMaxFracBits) f = kFixedMaxFracBits;
  return f;
}

/// MuPPET's scale: fractional bits for a tensor with max |x| = max_abs at word length wl.
MASCOT_HD int fixed_frac_bits(float max_abs, int wl) {
  return fixed_frac_bits_for_bound(max_abs, static_cast<float>(1 << (wl - 1)) - 0.5f);
}

/// A word length and scale, precomputed for the inner loops.
struct FixedFormat {
  float scale;      ///< 2^f
  float inv_scale;  ///< 2^-f
  float lo, hi;     ///< -2^(wl-1), 2^(wl-1) - 1
  int frac_bits;
  int word_length;
};

MASCOT_HD FixedFormat make_fixed_format(int frac_bits, int wl) {
  FixedFormat f;
  f.frac_bits = frac_bits;
  f.word_length = wl;
  f.scale = pow2f(frac_bits);
  f.inv_scale = pow2f(-frac_bits);
  f.lo = -static_cast<float>(1 << (wl - 1));
  f.hi = static_cast<float>((1 << (wl - 1)) - 1);
  return f;
}

/// The largest |x| that MuPPET's scale choice (fixed_frac_bits) accepts at this format:
/// it guarantees max |x| 2^f <= 2^(wl-1) - 0.5, i.e. (hi + 0.5) 2^-f (such values round to the
/// clamp hi).  A tensor is rescaled only when it grows past this, so a row in the half-step
/// gap between hi 2^-f and it no longer re-derives the same format on every read.
MASCOT_HD float muppet_range(const FixedFormat& f) { return (f.hi + 0.5f) * f.inv_scale; }

// Selects written as masks: GCC if-converts (and so vectorises) these, not ternaries on bits.

/// c ? a : b on 32-bit patterns.
MASCOT_HD uint32_t select_u32(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}
/// c ? 1.0f : 0.0f
MASCOT_HD float one_if(bool c) { return bits_f32(0x3F800000u & (0u - static_cast<uint32_t>(c))); }

/// x * 2^f clamped to [lo, hi] (nan -> lo).
MASCOT_HD float fixed_scaled_clamped(float x, const FixedFormat& f) {
  float y = x * f.scale;
  y = y > f.lo ? y : f.lo;
  y = y < f.hi ? y : f.hi;
  return y;
}

/// Round to the nearest integer, ties to even, for |y| <= 2^23 (one add in the 2^23 binade).
MASCOT_HD float round_int_even(float y) {
  const float a = fabsf(y);
  return copysignf((a + 8388608.0f) - 8388608.0f, y);
}

/// floor(y) for |y| < 2^31.
MASCOT_HD float floor_int(float y) {
  const float t = static_cast<float>(static_cast<int32_t>(y));
  return t - one_if(t > y);
}

/// Uniform in [0, 1) on a 2^-24 grid from the top 24 bits of a random word.
MASCOT_HD float unit_from_bits(uint32_t bits) {
  return static_cast<float>(static_cast<int32_t>(bits >> 8)) * (1.0f / 16777216.0f);
}

/// The integer code of x: round to nearest even after clamping.
MASCOT_HD float fixed_code_rn(float x, const FixedFormat& f) { return round_int_even(fixed_scaled_clamped(x, f)); }

/// The integer code of x, stochastic: floor(y) + [u < y - floor(y)], u uniform from `bits`.
MASCOT_HD float fixed_code_sr(float x, const FixedFormat& f, uint32_t bits) {
  const float y = fixed_scaled_clamped(x, f);
  const float fl = floor_int(y);
  return fl + one_if(unit_from_bits(bits) < y - fl);
}

/// Quantize and dequantize: the value the format represents for x.
MASCOT_HD float fixed_round_rn(float x, const FixedFormat& f) { return fixed_code_rn(x, f) * f.inv_scale; }
MASCOT_HD float fixed_round_sr(float x, const FixedFormat& f, uint32_t bits) {
  return fixed_code_sr(x, f, bits) * f.inv_scale;
}

/// AFP's quantization error of a tensor from sum |x| and sum |x_q| (the quantized values):
/// diff_bit = log2(|sum|x| - sum|x_q|| / sum|x| + 1); 0 for an all-zero tensor.
MASCOT_HD double afp_quant_error(double sum_abs, double sum_abs_q) {
  if (!(sum_abs > 0)) return 0.0;
  return log2(fabs(sum_abs - sum_abs_q) / sum_abs + 1.0);
}

// ------------------------------------------------------------------ FP16 values, branchless

/// half_to_float(float_to_half_rn(x)): round to nearest even at half precision, inf beyond.
MASCOT_HD float half_rn_value(float x) {
  const uint32_t b = f32_bits(x);
  const uint32_t sign = b & 0x80000000u;
  const uint32_t ax = b & 0x7FFFFFFFu;
  const int32_t sax = static_cast<int32_t>(ax);  // signed compares vectorise on SSE2
  // normal halves: round the float mantissa at bit 13, ties to even (a carry moves the exponent)
  uint32_t rn = (ax + 0x0FFFu + ((ax >> 13) & 1u)) & 0xFFFFE000u;
  rn = select_u32(static_cast<int32_t>(rn) >= 0x47800000, 0x7F800000u, rn);  // rounds to >= 65536: inf
  // subnormal halves (|x| < 2^-14): multiples of 2^-24; one add in the 2^-1 binade rounds there
  const uint32_t sub = f32_bits((bits_f32(ax) + 0.5f) - 0.5f);
  uint32_t r = select_u32(sax < 0x38800000, sub, rn);
  r = select_u32(sax > 0x7F800000, ax, r);  // nan stays nan
  return bits_f32(r | sign);
}

/// half_to_float(float_to_half_sr(x, bits)): stochastic rounding to half (half.h's rule: the low
/// 13 bits of `bits` added below the half mantissa, truncated; below 2^-14 the same in the binade
/// above, reached by adding 2^-14 and left by subtracting it, exact by Sterbenz).  Saturates at
/// 65504 like half.h (truncation never reaches inf); inf becomes NaN unless the dither is 0.
MASCOT_HD float half_sr_value(float x, uint32_t bits) {
  const uint32_t b = f32_bits(x);
  const uint32_t sign = b & 0x80000000u;
  const uint32_t ax = b & 0x7FFFFFFFu;
  const int32_t sax = static_cast<int32_t>(ax);
  const uint32_t d = bits & 0x1FFFu;
  const bool sub = sax < 0x38800000;
  const uint32_t a = select_u32(sub, f32_bits(bits_f32(ax) + 6.103515625e-05f), ax);
  uint32_t n = (a + d) & 0xFFFFE000u;
  n = select_u32(static_cast<int32_t>(n) >= 0x47800000, 0x477FE000u, n);
  uint32_t r = select_u32(sub, f32_bits(bits_f32(n) - 6.103515625e-05f), n);
  r = select_u32(sax >= 0x7F800000, select_u32(ax + d > 0x7F800000u, 0x7FC00000u, 0x7F800000u), r);
  return bits_f32(r | sign);
}

}  // namespace mascot::detail
