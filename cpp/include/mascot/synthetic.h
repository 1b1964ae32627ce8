// Seeded, deterministic synthetic rating data shaped like the paper's datasets (Table I):
// power-law user and item degrees, ratings from a planted low-rank model plus noise, clipped
// to 1..5 in half-star steps, and a held-out test split.  The built-in default dataset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/ratings.h"

namespace mascot {

struct SyntheticShape {
  std::string name;      ///< "synthetic-ml10m", ...
  int64_t n_users;       ///< Table I
  int64_t n_items;
  int64_t n_ratings;     ///< train + test
  double test_fraction;  ///< held-out share (ML: 0.2 as one 5-fold split; Netflix/Yahoo: their split sizes)
  int min_user_degree;   ///< every user has at least this many ratings (before the split)
};

/// Sizes of a shape scaled by `scale`, exactly as generate_synthetic makes them (rounded and
/// clamped), so that a memory plan made before generating equals the data.
struct SyntheticSizes {
  int64_t users, items, ratings;  ///< ratings = train + test
  int64_t min_degree, max_degree;
  double test_fraction;  ///< each rating is held out with this probability (a seeded hash)
};
SyntheticSizes scaled_sizes(const SyntheticShape& shape, double scale);

/// The named shapes; throws InvalidArgument for an unknown name (listing the known ones).
SyntheticShape synthetic_shape(const std::string& name);
std::vector<std::string> synthetic_names();

struct SyntheticData {
  RatingSet train;
  RatingSet test;
};

/// Generates `name` scaled by `scale` in (0, 1]: ratings x scale, users and items x sqrt(scale),
/// so the density stays that of the full set.  Same (name, scale, seed) -> identical bytes,
/// whatever the thread count.
SyntheticData generate_synthetic(const std::string& name, double scale, uint64_t seed, int threads = 0);

/// Parses "synthetic-netflix" or "synthetic-netflix:0.1" into name and scale.
/// Returns false when `spec` is not a synthetic name at all.
bool parse_synthetic_spec(const std::string& spec, std::string* name, double* scale);

}  // namespace mascot
