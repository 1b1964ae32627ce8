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
  kStreamValid = 7,              ///< TrainConfig::valid_fraction: which training ratings are held out (valid_split)
  kStreamRandomPrecisionP = 16,  ///< TrainConfig::random_fp16 coin per user
  kStreamRandomPrecisionQ = 17,  ///< ... per item
};

// ------------------------------------------------------------------ per-rating random words
// Written once for the CPU kernels (scalar and 16-lane vector), the competing methods and the
// CUDA kernels, so that the same rating draws the same bits on every backend.  Pure functions
// of (seed, epoch, u, i, operand, element): no RNG state, independent of thread scheduling
// and of the visiting order.  Relabelled ids (u, i) as the backends see them.

/// A rating's 64-bit identity: (u, i) of relabelled ids.
MASCOT_HD uint64_t rating_key(int32_t u, int32_t i) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(u)) << 32) | static_cast<uint32_t>(i);
}

/// lowbias32 (Wellons): a 32-bit mixer, templated so that the CPU kernels apply it to 16 lanes
/// at once (U: uint32_t or a vector of them with ^, >> and * by a uint32_t constant).
template <class U>
MASCOT_HD U lowbias32(U x) {
  x = x ^ (x >> 16);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16);
  return x;
}

/// Stochastic FP16 stores of the SGD update with FP32 arithmetic (mascot-n1, the mascot
/// family): element j of p_u uses sr_word(hp, j), of q_i sr_word(hq, j), with
/// (hp, hq) = sr_keys(round_seed, u, i); round_seed is the epoch's hash3(seed, kStreamRound, epoch).
MASCOT_HD void sr_keys(uint64_t round_seed, int32_t u, int32_t i, uint32_t* hp, uint32_t* hq) {
  const uint64_t h = mix64(round_seed ^ rating_key(u, i));  // round_seed is already a hash
  *hp = static_cast<uint32_t>(h);
  *hq = static_cast<uint32_t>(h >> 32);
}
/// Element j's constant: j * kSrStep.
constexpr uint32_t kSrStep = 0x9E3779B9u;
/// Odd multiplier of the dither hash.
constexpr uint32_t kSrMul = 0x85EBCA6Bu;
/// The random word of element j: a 13-bit dither (0 <= word < 2^13, all float_to_half_sr uses),
/// the top bits of (h ^ j kSrStep) kSrMul.  For a fixed j the map from h is a bijection followed
/// by the top 13 bits, so with h a strong hash of (epoch, u, i) (sr_keys) each element's dither
/// is uniform over the ratings, which is what unbiasedness needs.  Why so cheap: the update is
/// compute-bound once its rows are prefetched, and 2k stores per update each pay for it; with
/// j known at compile time (the CPU kernels' unrolled loops) it is an xor, a multiply and a
/// shift per 16 lanes.  The earlier full mixer (lowbias32 per element, 3 multiplies' worth of
/// vector work) was part of the 3.8x cost of a stochastic epoch (docs/benchmarks.md).
MASCOT_HD uint32_t sr_word(uint32_t h, uint32_t j) { return ((h ^ (j * kSrStep)) * kSrMul) >> 19; }

/// Whether rating (u, i) is in this epoch's q-error sample (probability below / 2^64);
/// sample_seed is the epoch's hash.
MASCOT_HD bool sampled(uint64_t sample_seed, uint64_t below, int32_t u, int32_t i) {
  return mix64(sample_seed ^ rating_key(u, i)) < below;  // sample_seed is already a hash
}

// The competing methods' stochastic rounding (mpt, muppet, afp): per epoch a key, per rating a
// key from it, per operand `tag` and element j a word.  (The `chunk` order, which samples with
// replacement, can visit a rating twice in an epoch; both visits then draw the same words.)

/// Key of an epoch's rounding draws of method `method_tag` (mpt 1, muppet 2, afp 3).
MASCOT_HD uint64_t epoch_round_key(uint64_t seed, uint64_t method_tag, int epoch) {
  return hash3(seed, kStreamRound, (method_tag << 40) + static_cast<uint64_t>(epoch));
}
/// Key of one rating's draws in the epoch of epoch_key.
MASCOT_HD uint64_t rating_round_key(uint64_t epoch_key, int32_t u, int32_t i) {
  return mix64(epoch_key ^ rating_key(u, i));
}
/// Base of the words of operand `tag` of the rating of key `key` (round_word).
MASCOT_HD uint64_t round_word_base(uint64_t key, uint32_t tag) { return key + (static_cast<uint64_t>(tag) << 24); }
/// Word of element j from its operand's base.
MASCOT_HD uint32_t round_word_at(uint64_t base, uint32_t j) { return static_cast<uint32_t>(mix64(base + j) >> 32); }
/// Word of element j of operand `tag`.
MASCOT_HD uint32_t round_word(uint64_t key, uint32_t tag, uint32_t j) {
  return round_word_at(round_word_base(key, tag), j);
}
/// The one word of a one-element operand `tag` (element 0xFFFFFF: never an element index, k <= 4096).
MASCOT_HD uint32_t round_one_word(uint64_t key, uint32_t tag) { return round_word(key, tag, 0xFFFFFFu); }

/// Small fast generator for hot loops (in-block shuffles): xorshift64*, seeded by a hash.
struct FastRng {
  uint64_t s;
  MASCOT_HD explicit FastRng(uint64_t seed) : s(mix64(seed) | 1) {}
  MASCOT_HD uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  /// Uniform in [0, n) (Lemire's multiply-shift; bias < n / 2^32, irrelevant for shuffling).
  MASCOT_HD uint32_t below(uint32_t n) {
    return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
  }
};

}  // namespace mascot::detail
