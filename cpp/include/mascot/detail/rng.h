// Counter-based random numbers: every draw is a pure function of (seed, stream, counter),
// so results never depend on thread scheduling and there is no RNG state to save.
#pragma once
#include <cmath>
#include <cstdint>

#include "mascot/detail/hostdev.h"

namespace mascot::detail {

/// SplitMix64 finaliser: a strong 64-bit mixer.
MASCOT_HD uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
/// Hash of a (seed, stream, counter) triple.
MASCOT_HD uint64_t hash3(uint64_t seed, uint64_t stream, uint64_t counter) {
  return mix64(mix64(seed ^ mix64(stream)) + counter);
}
/// Uniform double in [0, 1) from 53 high bits.
MASCOT_HD double to_unit(uint64_t h) { return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0); }
/// Standard normal from two hashes (Box-Muller; u1 in (0,1]).
MASCOT_HD double normal_from(uint64_t h1, uint64_t h2) {
  const double u1 = 1.0 - to_unit(h1);
  const double u2 = to_unit(h2);
#if defined(__CUDA_ARCH__)
  return ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586 * u2);  // CUDA's double math (device)
#else
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
#endif
}

/// Stream ids, fixed forever (changing them changes every seeded result).
enum Stream : uint64_t {
  kStreamInitP = 1,
  kStreamInitQ = 2,
  kStreamOrder = 3,
  kStreamSample = 4,
  kStreamRound = 5,
  kStreamSynth = 6,
  kStreamRandomPrecisionP = 16,  ///< TrainConfig::random_fp16 coin per user
  kStreamRandomPrecisionQ = 17,  ///< ... per item
};

/// Small fast generator for hot loops (in-block shuffles): xorshift64*, seeded by a hash.
struct FastRng {
  uint64_t s;
  MASCOT_HD explicit FastRng(uint64_t seed) : s(mix64(seed) | 1) {}
  MASCOT_HD uint64_t next() {
    s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  /// Uniform in [0, n) (Lemire's multiply-shift; bias < n / 2^32, irrelevant for shuffling).
  MASCOT_HD uint32_t below(uint32_t n) {
    return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
  }
};

}  // namespace mascot::detail
