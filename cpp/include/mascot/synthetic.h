// Seeded, deterministic synthetic rating data shaped like the paper's datasets (Table I):
// power-law user and item degrees, ratings from a planted low-rank model plus noise, clipped
// to 1..5 in half-star steps, and a held-out test split.  The built-in default dataset.
//
// Popularity skew is a separate axis with named presets (synthetic.cc has the laws):
//   realistic  the plain names ("synthetic-ml10m"): the most-rated item holds ~0.4 % of the
//              ratings at full size, as in MovieLens-10M; (user, item) pairs are distinct.
//   heavy      the "-heavy" names ("synthetic-ml10m-heavy"): the most-rated item holds ~10 %, as
//              in music and implicit-feedback data; a user may rate an item more than once.
// A dataset spec is NAME[-SKEW][:SCALE], e.g. "synthetic-ml10m-heavy:0.25".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/ratings.h"

namespace mascot {

/// Popularity skew of users and items.  User of degree rank j (0 = heaviest): degree
/// d_min + lambda (((j + 0.5) / n)^-user_exponent - 1), capped at n_items / 4.  Item of
/// popularity rank r: drawn with weight (q + item_head)^-item_exponent - floor,
/// q = (r + 0.5) / n_items (floor: 0.95 of the weight at q = 1).  Larger exponents: heavier heads.
struct SyntheticSkew {
  std::string name;             ///< "realistic", "heavy", or "custom" when an exponent was overridden
  double user_exponent = 0.5;   ///< tail of the user degrees (0.5: median / mean ~ 0.5, as MovieLens)
  double item_exponent = 1.25;  ///< head of the item popularity
  double item_head = 0.003;     ///< softens the head (fraction of the items)
  bool repeats = false;         ///< items drawn with replacement (needed for a hot item of ~10 %)
};

/// The named skew presets: "realistic" (the plain names), "heavy".  Throws InvalidArgument for
/// another name (listing them).
SyntheticSkew synthetic_skew(const std::string& preset);
std::vector<std::string> synthetic_skew_names();

struct SyntheticShape {
  std::string name;  ///< "synthetic-ml10m", ...
  int64_t n_users;   ///< Table I
  int64_t n_items;
  int64_t n_ratings;     ///< train + test
  double test_fraction;  ///< held-out share (ML: 0.2 as one 5-fold split; Netflix/Yahoo: their split sizes)
  int min_user_degree;   ///< every user has at least this many ratings (before the split)
  SyntheticSkew skew;    ///< realistic, or the preset the name's suffix names
};

/// Sizes of a shape scaled by `scale`, exactly as generate_synthetic makes them (rounded and
/// clamped), so that a memory plan made before generating equals the data, whatever the skew.
struct SyntheticSizes {
  int64_t users, items, ratings;  ///< ratings = train + test
  int64_t min_degree, max_degree;
  double test_fraction;  ///< each rating (with repeats: each (user, item) pair) is held out with this probability
  SyntheticSkew skew;    ///< the shape's
};
SyntheticSizes scaled_sizes(const SyntheticShape& shape, double scale);

/// The named shapes, "synthetic-ml10m" or with a skew suffix "synthetic-ml10m-heavy"; throws
/// InvalidArgument for an unknown name (listing the known ones).
SyntheticShape synthetic_shape(const std::string& name);
/// The shape names (realistic skew), then the same with each other skew's suffix.
std::vector<std::string> synthetic_names();

struct SyntheticData {
  RatingSet train;
  RatingSet test;
};

/// Generates `name` scaled by `scale` in (0, 1]: ratings x scale, users and items x sqrt(scale),
/// so the density stays that of the full set.  Same (name, scale, seed) -> identical bytes,
/// whatever the thread count.
SyntheticData generate_synthetic(const std::string& name, double scale, uint64_t seed, int threads = 0);
/// The same for a shape whose skew the caller set (exponents checked: finite, in [0.05, 4]).
SyntheticData generate_synthetic(const SyntheticShape& shape, double scale, uint64_t seed, int threads = 0);

/// Parses "synthetic-netflix", "synthetic-netflix-heavy" or "synthetic-netflix:0.1" into name and scale.
/// Returns false when `spec` is not a synthetic name at all.
bool parse_synthetic_spec(const std::string& spec, std::string* name, double* scale);

}  // namespace mascot
