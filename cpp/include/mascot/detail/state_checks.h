// Checks on structs read raw from a checkpoint's state (a backend's import_state): a bool
// member holding any byte but 0/1 is undefined behaviour once loaded (found by
// fuzz/targets/checkpoint.cc), and a fixed-point format must be the one make_fixed_format
// builds from its two integers.  Host code (the CUDA backend's importer; cpu/competing.cc keeps
// its own copy of the same two rules).
#pragma once
#include <cmath>
#include <cstring>

#include "mascot/detail/fixed_point.h"

namespace mascot::detail {

inline bool bool_byte_ok(const bool& b) {
  unsigned char c;
  std::memcpy(&c, &b, 1);
  return c <= 1;
}

inline bool format_ok(const FixedFormat& f) {
  if (f.word_length < 0 || f.word_length > 24 || f.frac_bits <= -300 || f.frac_bits >= 300) return false;
  if (f.word_length == 0)  // never built (FP32 level): only needs to be harmless
    return std::isfinite(f.scale) && std::isfinite(f.inv_scale) && std::isfinite(f.lo) && std::isfinite(f.hi);
  const FixedFormat g = make_fixed_format(f.frac_bits, f.word_length);
  return std::memcmp(&f.scale, &g.scale, sizeof(float)) == 0 &&
         std::memcmp(&f.inv_scale, &g.inv_scale, sizeof(float)) == 0 && f.lo == g.lo && f.hi == g.hi;
}

}  // namespace mascot::detail
