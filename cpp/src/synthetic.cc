// Synthetic rating data shaped like the paper's datasets (Table I): the built-in default dataset.
//
// The model, step by step (constants below):
//
// * Sizes.  `scale` multiplies the ratings; users, items and the minimum user degree are
//   multiplied by sqrt(scale) (rounded; at least one user and item and one rating per user).
//   So the density, and with it the shape of the degree distributions under the n_items / 4
//   cap, stays that of the full set: scaling users and items linearly would make small scales
//   impossibly dense (ML10M at 0.01 would ask for 100K ratings among 75K user-item pairs).  A
//   scale so small that users x cap cannot hold the ratings gets that many instead.
// * Popularity skew (SyntheticSkew, synthetic.h) sets the exponents of the two laws below and
//   whether a user may draw an item twice.  Presets, realised on synthetic-ml10m at full size
//   (scale 0.25 in parentheses; the share of the most-rated item grows as the users shrink):
//     realistic  user exponent 0.5, item exponent 1.25, head 0.003, distinct pairs: the most-rated
//                item holds 0.42 % (0.84 %) of the ratings, as in MovieLens-10M (~0.4 %).
//     heavy      user exponent 0.5, item exponent 0.85, head 0, repeats: ~10 % (~11 %), as in
//                music and implicit-feedback data.  With ~70K users, one item can only hold 10 % of
//                10M ratings if users rate it more than once, so heavy draws items with
//                replacement (repeated pairs are repeated observations of one planted rating
//                plus fresh noise) and splits train / test by (user, item) pair, so that no pair
//                lies on both sides.
// * User degrees: a deterministic power law.  The user of degree rank j (0 = heaviest) gets
//   d_min + lambda * w_j, w_j = q^(-user_exponent) - 1 with q = (j + 0.5) / n_users: stratified
//   quantiles of a Lomax (shifted Pareto) law.  user_exponent = 0.5 gives median/mean ~ 0.5, as
//   in MovieLens and Netflix.  Degrees are capped at n_items / 4 (lambda solves the capped sum
//   exactly: water-filling) and rounded so that they sum to n_ratings exactly.  Quantiles instead
//   of random draws keep the shape, and so the difficulty of the data, the same for every seed;
//   the seed decides which user gets which degree.
// * Item popularity: a power law over popularity ranks, p_r ~ (q + item_head)^(-item_exponent) - floor,
//   q = (r + 0.5) / n_items.  item_head softens the head and the floor (kItemFloor of the weight
//   at q = 1) thins the tail without emptying it.  The realistic preset is tuned so the realised
//   item degrees resemble ML10M/Netflix: the top item is rated by about half the users, median
//   ~ 0.2 x mean, the top 10 % of items hold ~70 % of the ratings, and (nearly) every item gets
//   a few ratings.
// * Each user draws its distinct items by popularity: inverse-CDF sampling (binary search in
//   the cell of a guide table), rejecting repeats, in rounds of (degree - found) draws; after kMaxRounds the remainder
//   is filled with the most popular items not yet chosen, so the count is exact.  With repeats: `degree` draws, nothing
//   rejected.  A user's items are stored in ascending id order.  User and item ids are seeded permutations of the
//   ranks, so an id says nothing about its degree.
// * Ratings: a planted rank-kRank model, r = kMean + b_u + b_i + p_u . q_i + noise, rounded to
//   the nearest half star and clipped to [1, 5].  The biases and the interaction give a signal
//   std of ~0.8 and the noise std is 0.6; after rounding and clipping the ratings have mean ~3.57
//   and std ~0.94, about the spread of real 5-star data.
// * Test split: each rating is held out with probability test_fraction, decided by a hash of its
//   position in user-major order (with repeats: of its (user, item) pair).
// * Output order: train and test are each a uniformly random permutation.  Each rating gets a
//   hashed bucket; a stable counting-sort scatter makes the buckets contiguous and every bucket
//   is then Fisher-Yates shuffled with its own seeded generator.  Random buckets plus a uniform
//   shuffle inside each is a uniform permutation, and it is parallel and cache friendly.
//
// Determinism: every draw is a counter-based hash of (seed, kStreamSynth, sub-stream, index)
// and each thread only writes slots that are a function of those indices (the scatter is stable
// in position order whatever the split), so the bytes never depend on the thread count.
#include "mascot/synthetic.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <locale>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

#include "mascot/detail/parallel.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace mascot {

namespace {

using detail::FastRng;

const SyntheticShape kShapes[] = {
    {"synthetic-ml10m", 69878, 10677, 10000035, 0.2, 20, {}},
    {"synthetic-ml25m", 162541, 59047, 24997208, 0.2, 20, {}},
    {"synthetic-netflix", 480189, 17770, 100480507, 1408395.0 / 100480507.0, 1, {}},
    {"synthetic-yahoo", 1000990, 624961, 256804235, 4003960.0 / 256804235.0, 10, {}},
};

const SyntheticSkew kSkews[] = {
    {"realistic", 0.5, 1.25, 0.003, false},
    {"heavy", 0.5, 0.85, 0.0, true},
};
constexpr double kItemFloor = 0.95;
constexpr int kMaxRounds = 8;

constexpr int kRank = 8;
constexpr int kStride = kRank + 1;  // per entity: bias, then kRank factors
constexpr double kMean = 3.6;
constexpr double kUserBiasStd = 0.35;
constexpr double kItemBiasStd = 0.40;
constexpr double kInteractionStd = 0.60;  // std of p_u . q_i
constexpr double kNoiseStd = 0.60;

// Sub-streams of kStreamSynth, in the top byte of the counter (indices stay below 2^56).
enum Sub : uint64_t {
  kSubUserOrder = 1,
  kSubItemOrder = 2,
  kSubUserItems = 3,
  kSubUserFactors = 4,
  kSubItemFactors = 5,
  kSubNoise = 6,
  kSubSplit = 7,
  kSubShuffle = 8,
  kSubSplitPair = 9,  // with repeats: the held-out decision of a (user, item) pair
};

uint64_t draw(uint64_t seed, Sub sub, uint64_t index) {
  return detail::hash3(seed, detail::kStreamSynth, (static_cast<uint64_t>(sub) << 56) | index);
}

// The index-th standard normal of a sub-stream.
double normal(uint64_t seed, Sub sub, uint64_t index) {
  return detail::normal_from(draw(seed, sub, 2 * index), draw(seed, sub, 2 * index + 1));
}

using Sizes = SyntheticSizes;

}  // namespace

SyntheticSizes scaled_sizes(const SyntheticShape& shape, double scale) {
  SyntheticSizes s;
  const double side = std::sqrt(scale);
  s.users = std::max<int64_t>(1, std::llround(static_cast<double>(shape.n_users) * side));
  s.items = std::max<int64_t>(1, std::llround(static_cast<double>(shape.n_items) * side));
  s.max_degree = std::max<int64_t>(1, s.items / 4);
  s.min_degree = std::clamp<int64_t>(std::llround(shape.min_user_degree * side), 1, s.max_degree);
  s.ratings = std::clamp<int64_t>(std::llround(static_cast<double>(shape.n_ratings) * scale), s.users * s.min_degree,
                                  s.users * s.max_degree);
  s.test_fraction = shape.test_fraction;
  s.skew = shape.skew;
  return s;
}

namespace {

// A seeded uniform permutation of [0, n) (Fisher-Yates).
std::vector<int32_t> permutation(int64_t n, uint64_t seed, Sub sub) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
  FastRng rng(draw(seed, sub, 0));
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.below(static_cast<uint32_t>(i + 1))]);
  return p;
}

// Degree of each degree rank (0 = heaviest): the power law of the module comment, exact sum.
std::vector<int64_t> degrees_by_rank(const Sizes& s) {
  const int64_t n = s.users, lo = s.min_degree, cap = s.max_degree;
  std::vector<double> w(static_cast<size_t>(n)), tail(static_cast<size_t>(n + 1), 0.0);  // tail[j] = sum w[j..n)
  for (int64_t j = 0; j < n; ++j) {
    w[j] = std::pow((static_cast<double>(j) + 0.5) / static_cast<double>(n), -s.skew.user_exponent) - 1.0;
  }
  for (int64_t j = n - 1; j >= 0; --j) tail[j] = tail[j + 1] + w[j];
  // Water-filling: the top k ranks sit at the cap and the rest share the excess over `lo` in
  // proportion to w.  w falls with j, so k is the first count at which rank k stays below the
  // cap.  Asking for a margin of one keeps the rounded degrees <= cap; k = n only when every
  // user must sit at the cap (ratings == users * cap).
  int64_t k = 0;
  for (; k < n; ++k) {
    const double excess = static_cast<double>(s.ratings - k * cap - (n - k) * lo);
    if (static_cast<double>(lo) + excess * w[k] / tail[k] <= static_cast<double>(cap - 1)) break;
  }
  std::vector<int64_t> deg(static_cast<size_t>(n), cap);
  if (k == n) return deg;
  // Hand out the integer excess by flooring its running share: every degree is >= lo and
  // within one of its real target, and the total is exact.
  const int64_t excess = s.ratings - k * cap - (n - k) * lo;
  double run = 0;
  int64_t given = 0;
  for (int64_t j = k; j < n; ++j) {
    run += w[j];
    const int64_t upto =
        j == n - 1 ? excess : std::min(excess, static_cast<int64_t>(static_cast<double>(excess) * run / tail[k]));
    deg[j] = lo + (upto - given);
    given = upto;
  }
  return deg;
}

// Popularity CDF over item ranks (0 = most popular), unnormalised.
std::vector<double> item_cdf(int64_t n, const SyntheticSkew& skew) {
  const double floor = kItemFloor * std::pow(1.0 + skew.item_head, -skew.item_exponent);
  std::vector<double> cdf(static_cast<size_t>(n));
  double acc = 0;
  for (int64_t r = 0; r < n; ++r) {
    const double q = (static_cast<double>(r) + 0.5) / static_cast<double>(n);
    acc += std::pow(q + skew.item_head, -skew.item_exponent) - floor;
    cdf[r] = acc;
  }
  return cdf;
}

// User-major (CSR) sample of each user's distinct items, ascending within a user.
class ItemSampler {
 public:
  ItemSampler(uint64_t seed, const std::vector<double>& cdf, const std::vector<int32_t>& item_of_rank, bool repeats)
      : seed_(seed), repeats_(repeats), cdf_(cdf), item_of_rank_(item_of_rank), guide_(cdf.size() + 1) {
    // guide_[t] = first rank whose cdf exceeds t / n of the total, so the rank drawn for a point
    // in cell t lies in [guide_[t], guide_[t + 1]]: a few ranks to search instead of all of
    // them (the CDF of the Yahoo shape is 5 MB, and most of the generator's time is here).
    const auto n = static_cast<int64_t>(cdf.size());
    const double step = cdf.back() / static_cast<double>(n);
    for (int64_t t = 0, r = 0; t <= n; ++t) {
      while (r < n - 1 && cdf[r] <= static_cast<double>(t) * step) ++r;
      guide_[t] = r;
    }
  }

  /// Writes the `degree` items of `user` to out[0 .. degree).  `seen` holds one tag per item
  /// rank, private to the calling thread; tags are user + 1, so it never needs clearing.
  void sample(int64_t user, int64_t degree, int32_t* out, std::vector<uint32_t>* seen) const {
    uint32_t* const tag = seen->data();
    const auto me = static_cast<uint32_t>(user + 1);
    FastRng rng(draw(seed_, kSubUserItems, static_cast<uint64_t>(user)));
    int64_t found = 0;
    if (repeats_)
      for (; found < degree; ++found) out[found] = static_cast<int32_t>(rank_at(detail::to_unit(rng.next())));
    for (int round = 0; round < kMaxRounds && found < degree; ++round) {
      for (int64_t t = 0, draws = degree - found; t < draws; ++t) {
        const int64_t r = rank_at(detail::to_unit(rng.next()));
        if (tag[r] != me) {
          tag[r] = me;
          out[found++] = static_cast<int32_t>(r);
        }
      }
    }
    for (int64_t r = 0; found < degree; ++r) {
      if (tag[r] != me) {
        tag[r] = me;
        out[found++] = static_cast<int32_t>(r);
      }
    }
    for (int64_t t = 0; t < degree; ++t) out[t] = item_of_rank_[out[t]];
    std::sort(out, out + degree);
  }

 private:
  // The rank at CDF fraction u in [0, 1): the first rank whose cdf exceeds u * total.
  int64_t rank_at(double u) const {
    const auto n = static_cast<int64_t>(cdf_.size());
    const double x = u * cdf_.back();
    const int64_t cell = std::min<int64_t>(static_cast<int64_t>(u * static_cast<double>(n)), n - 1);
    const int64_t lo = guide_[cell], hi = std::min(guide_[cell + 1] + 1, n);
    const double* const cdf = cdf_.data();
    int64_t r = std::upper_bound(cdf + lo, cdf + hi, x) - cdf;
    // Rounding can put x just outside its cell; then search everything.
    if ((r == lo && lo > 0 && cdf[lo - 1] > x) || (r == hi && hi < n)) r = std::upper_bound(cdf, cdf + n, x) - cdf;
    return std::min(r, n - 1);
  }

  uint64_t seed_;
  bool repeats_;
  const std::vector<double>& cdf_;
  const std::vector<int32_t>& item_of_rank_;
  std::vector<int64_t> guide_;
};

// Per-entity bias and factors, kStride floats each.
std::vector<float> latent(int64_t n, double bias_std, uint64_t seed, Sub sub, int threads) {
  // Entries ~ N(0, s^2) make p . q have variance kRank * s^4 = kInteractionStd^2.
  const double factor_std = std::sqrt(kInteractionStd / std::sqrt(static_cast<double>(kRank)));
  std::vector<float> v(static_cast<size_t>(n * kStride));
  constexpr int64_t kBlock = 4096;
  detail::parallel_for(threads, (n + kBlock - 1) / kBlock, [&](int, int64_t b) {
    for (int64_t e = b * kBlock; e < std::min(n, (b + 1) * kBlock); ++e) {
      const auto base = static_cast<uint64_t>(e * kStride);
      v[e * kStride] = static_cast<float>(bias_std * normal(seed, sub, base));
      for (int f = 1; f < kStride; ++f)
        v[e * kStride + f] = static_cast<float>(factor_std * normal(seed, sub, base + f));
    }
  });
  return v;
}

float planted_rating(const float* p, const float* q, double noise) {
  double v = kMean + p[0] + q[0] + kNoiseStd * noise;
  for (int f = 1; f < kStride; ++f) v += static_cast<double>(p[f]) * q[f];
  return static_cast<float>(std::clamp(std::round(2.0 * v) * 0.5, 1.0, 5.0));
}

// Buckets of the output shuffle: a power of two (the bucket is the low bits of the split hash,
// disjoint from the high bits that decide the split) with at least ~64K ratings each and at most
// 256 of them: the scatter then writes 3 x 512 streams, few enough for the caches and TLB.
int64_t shuffle_buckets(int64_t ratings) {
  int64_t b = 1;
  while (b < 256 && b * 65536 < ratings) b *= 2;
  return b;
}

void resize_set(RatingSet* rs, int64_t n_users, int64_t n_items, int64_t nnz) {
  rs->n_users = n_users;
  rs->n_items = n_items;
  rs->users.resize(static_cast<size_t>(nnz));
  rs->items.resize(static_cast<size_t>(nnz));
  rs->ratings.resize(static_cast<size_t>(nnz));
}

}  // namespace

SyntheticSkew synthetic_skew(const std::string& preset) {
  for (const auto& k : kSkews)
    if (k.name == preset) return k;
  std::string known;
  for (const auto& k : kSkews) known += (known.empty() ? "" : ", ") + k.name;
  throw_invalid("unknown skew preset '" + preset + "' (known: " + known + ")");
}

std::vector<std::string> synthetic_skew_names() {
  std::vector<std::string> names;
  for (const auto& k : kSkews) names.push_back(k.name);
  return names;
}

SyntheticShape synthetic_shape(const std::string& name) {
  // kShapes[].skew is left default-constructed: the plain names are the realistic preset, kSkews[0]
  for (const auto& s : kShapes) {
    if (name == s.name) {
      SyntheticShape out = s;
      out.skew = kSkews[0];
      return out;
    }
    for (size_t k = 1; k < std::size(kSkews); ++k) {
      if (name == s.name + "-" + kSkews[k].name) {
        SyntheticShape out = s;
        out.name = name;
        out.skew = kSkews[k];
        return out;
      }
    }
  }
  std::string known;
  for (const auto& n : synthetic_names()) known += (known.empty() ? "" : ", ") + n;
  throw_invalid("unknown synthetic dataset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> synthetic_names() {
  std::vector<std::string> names;
  for (const auto& k : kSkews)
    for (const auto& s : kShapes) names.push_back(k.name == kSkews[0].name ? s.name : s.name + "-" + k.name);
  return names;
}

SyntheticData generate_synthetic(const std::string& name, double scale, uint64_t seed, int threads) {
  return generate_synthetic(synthetic_shape(name), scale, seed, threads);
}

SyntheticData generate_synthetic(const SyntheticShape& shape, double scale, uint64_t seed, int threads) {
  const SyntheticSkew& skew = shape.skew;
  for (const double x : {skew.user_exponent, skew.item_exponent}) {
    // 0.05..4: from nearly flat to one row holding almost everything; beyond, pow() under- or
    // overflows at the extreme ranks
    if (!(std::isfinite(x) && x >= 0.05 && x <= 4)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", x);
      throw_invalid(std::string("synthetic skew exponents must be in [0.05, 4], got ") + text);
    }
  }
  if (!(std::isfinite(skew.item_head) && skew.item_head >= 0 && skew.item_head <= 1))
    throw_invalid("synthetic item_head must be in [0, 1]");
  if (!(std::isfinite(scale) && scale > 0 && scale <= 1)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", scale);
    throw_invalid(std::string("synthetic scale must be in (0, 1], got ") + text);
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const Sizes s = scaled_sizes(shape, scale);
  const int64_t n_users = s.users, n_items = s.items;

  // Degrees by user id, as CSR row offsets.
  std::vector<int64_t> offset(static_cast<size_t>(n_users + 1), 0);
  {
    const std::vector<int64_t> deg = degrees_by_rank(s);
    const std::vector<int32_t> user_of_rank = permutation(n_users, seed, kSubUserOrder);
    for (int64_t j = 0; j < n_users; ++j) offset[user_of_rank[j] + 1] = deg[j];
    for (int64_t u = 0; u < n_users; ++u) offset[u + 1] += offset[u];
  }

  // Each user's items, user-major.
  std::vector<int32_t> csr_items(static_cast<size_t>(s.ratings));
  {
    const std::vector<double> cdf = item_cdf(n_items, skew);
    const std::vector<int32_t> item_of_rank = permutation(n_items, seed, kSubItemOrder);
    const ItemSampler sampler(seed, cdf, item_of_rank, skew.repeats);
    std::vector<std::vector<uint32_t>> seen(static_cast<size_t>(threads));  // per worker, sized on first use
    constexpr int64_t kBlock = 256;
    detail::parallel_for(threads, (n_users + kBlock - 1) / kBlock, [&](int worker, int64_t b) {
      std::vector<uint32_t>& mine = seen[worker];
      if (mine.empty()) mine.assign(static_cast<size_t>(n_items), 0);
      for (int64_t u = b * kBlock; u < std::min(n_users, (b + 1) * kBlock); ++u) {
        sampler.sample(u, offset[u + 1] - offset[u], &csr_items[offset[u]], &mine);
      }
    });
  }

  const std::vector<float> user_latent = latent(n_users, kUserBiasStd, seed, kSubUserFactors, threads);
  const std::vector<float> item_latent = latent(n_items, kItemBiasStd, seed, kSubItemFactors, threads);

  // Split and shuffle.  Key of a rating = (held out ? n_buckets : 0) + bucket; train keys come
  // first.  Chunks are contiguous user ranges of about equal rating count; counting per chunk and
  // key and scattering in position order is a stable sort, the same whatever the chunking.
  const int64_t n_buckets = shuffle_buckets(s.ratings), n_keys = 2 * n_buckets;
  auto key_of = [&](int64_t k, int64_t u) {
    const uint64_t h = draw(seed, kSubSplit, static_cast<uint64_t>(k));
    const int64_t bucket = static_cast<int64_t>(h & static_cast<uint64_t>(n_buckets - 1));
    // with repeats a pair's copies go to one side (user < 2^31, item < 2^31: the pair fits 62 bits)
    const double coin = skew.repeats
                            ? detail::to_unit(draw(seed, kSubSplitPair, static_cast<uint64_t>(u) << 31 | csr_items[k]))
                            : detail::to_unit(h);
    return (coin < s.test_fraction ? n_buckets : 0) + bucket;
  };
  const int64_t n_chunks = threads;
  std::vector<int64_t> chunk_user(static_cast<size_t>(n_chunks + 1));
  for (int64_t c = 0; c <= n_chunks; ++c) {
    chunk_user[c] = std::lower_bound(offset.begin(), offset.end(), s.ratings * c / n_chunks) - offset.begin();
  }
  chunk_user[n_chunks] = n_users;
  // cursor[c * n_keys + key]: first counts, then each chunk's write position for the key.
  std::vector<int64_t> cursor(static_cast<size_t>(n_chunks * n_keys), 0);
  detail::parallel_for(threads, n_chunks, [&](int, int64_t c) {
    int64_t* count = &cursor[c * n_keys];
    for (int64_t u = chunk_user[c]; u < chunk_user[c + 1]; ++u)
      for (int64_t k = offset[u]; k < offset[u + 1]; ++k) ++count[key_of(k, u)];
  });
  // [key_begin[key], key_end[key]) is the key's bucket in its output array.
  std::vector<int64_t> key_begin(static_cast<size_t>(n_keys)), key_end(static_cast<size_t>(n_keys));
  for (int64_t key = 0, pos = 0; key < n_keys; ++key) {
    if (key == n_buckets) pos = 0;  // test keys index the test arrays
    key_begin[key] = pos;
    for (int64_t c = 0; c < n_chunks; ++c) {
      const int64_t n = cursor[c * n_keys + key];
      cursor[c * n_keys + key] = pos;
      pos += n;
    }
    key_end[key] = pos;
  }
  const int64_t n_train = key_end[n_buckets - 1], n_test = key_end[n_keys - 1];

  SyntheticData out;
  resize_set(&out.train, n_users, n_items, n_train);
  resize_set(&out.test, n_users, n_items, n_test);
  detail::parallel_for(threads, n_chunks, [&](int, int64_t c) {
    int64_t* pos = &cursor[c * n_keys];
    for (int64_t u = chunk_user[c]; u < chunk_user[c + 1]; ++u) {
      const float* p = &user_latent[u * kStride];
      for (int64_t k = offset[u]; k < offset[u + 1]; ++k) {
        const int32_t i = csr_items[k];
        const int64_t key = key_of(k, u);
        RatingSet& dst = key < n_buckets ? out.train : out.test;
        const int64_t at = pos[key]++;
        dst.users[at] = static_cast<int32_t>(u);
        dst.items[at] = i;
        dst.ratings[at] =
            planted_rating(p, &item_latent[i * kStride], normal(seed, kSubNoise, static_cast<uint64_t>(k)));
      }
    }
  });
  csr_items = std::vector<int32_t>();  // no longer needed

  detail::parallel_for(threads, n_keys, [&](int, int64_t key) {
    RatingSet& rs = key < n_buckets ? out.train : out.test;
    const int64_t lo = key_begin[key], hi = key_end[key];
    FastRng rng(draw(seed, kSubShuffle, static_cast<uint64_t>(key)));
    for (int64_t a = hi - 1; a > lo; --a) {
      const int64_t b = lo + rng.below(static_cast<uint32_t>(a - lo + 1));
      std::swap(rs.users[a], rs.users[b]);
      std::swap(rs.items[a], rs.items[b]);
      std::swap(rs.ratings[a], rs.ratings[b]);
    }
  });
  return out;
}

bool parse_synthetic_spec(const std::string& spec, std::string* name, double* scale) {
  static const std::string kPrefix = "synthetic-";
  if (spec.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  const size_t colon = spec.find(':');
  const std::string base = spec.substr(0, colon);
  synthetic_shape(base);  // throws for an unknown name, listing the known ones
  double value = 1.0;
  if (colon != std::string::npos) {
    const std::string text = spec.substr(colon + 1);
    // A classic-locale stream: the decimal point is '.' whatever the process locale says.
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    in >> std::noskipws >> value;
    const bool parsed = !text.empty() && !in.fail() && in.peek() == std::char_traits<char>::eof();
    if (!parsed || !std::isfinite(value) || value <= 0 || value > 1) {
      throw_invalid("bad scale '" + text + "' in '" + spec + "': expected a number in (0, 1]");
    }
  }
  *name = base;
  *scale = value;
  return true;
}

}  // namespace mascot
