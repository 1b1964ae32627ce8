// The competing methods of the CPU backend (mpt, muppet, afp): the one a configuration asks
// for, and the checks of checkpointed state they share.  Each method lives in its own file
// (mpt.cc, muppet.cc, afp.cc); what they share is competing_common.h.
#include "cpu/competing_common.h"
#include "mascot/error.h"

namespace mascot::cpu {
namespace competing {

bool bool_byte_ok(const bool& b) {
  unsigned char c;
  std::memcpy(&c, &b, 1);
  return c <= 1;
}
bool format_ok(const FixedFormat& f) {
  if (f.word_length < 0 || f.word_length > 24 || f.frac_bits <= -300 || f.frac_bits >= 300) return false;
  if (f.word_length == 0)  // never built (FP32 level): only needs to be harmless
    return std::isfinite(f.scale) && std::isfinite(f.inv_scale) && std::isfinite(f.lo) && std::isfinite(f.hi);
  const FixedFormat g = detail::make_fixed_format(f.frac_bits, f.word_length);
  return std::memcmp(&f.scale, &g.scale, sizeof(float)) == 0 &&
         std::memcmp(&f.inv_scale, &g.inv_scale, sizeof(float)) == 0 && f.lo == g.lo && f.hi == g.hi;
}

}  // namespace competing

std::unique_ptr<CompetingMethod> make_competing_method(const TrainConfig& cfg, int threads, uint64_t seed) {
  cfg.competing.validate();
  MASCOT_CHECK_ARG(cfg.k >= 1, "k must be >= 1");
  switch (cfg.method) {
    case Method::kMpt:
      return competing::make_mpt(cfg, threads, seed);
    case Method::kMuppet:
      return competing::make_muppet(cfg, threads, seed);
    case Method::kAfp:
      return competing::make_afp(cfg, threads, seed);
    default:
      break;
  }
  throw_invalid("method '" + to_string(cfg.method) + "' is not a competing method (mpt, muppet, afp)");
}

}  // namespace mascot::cpu
