// Where the training data come from, decided once for both front ends (mascot_train's --dataset
// / --train / --test and mascot.data.load / data_root / MF.memory_plan): the data root, dataset
// names (synthetic ones with an optional ":scale", or prepared ones under the data root), the
// shape of synthetic data before they exist (for the memory plan), and loading.
#pragma once
#include <cstdint>
#include <string>

#include "mascot/ratings.h"

namespace mascot {

/// Where prepared datasets live: $MASCOT_DATA when set, else ~/.cache/mascot ($HOME, else the
/// password database's home directory, else the current directory).
std::string data_root();

/// Training (and test) data named by a front end.
struct DataSource {
  enum class Kind { kSynthetic, kPrepared, kFiles };
  Kind kind = Kind::kFiles;
  std::string name;        ///< the run report's dataset name: the spec as given, or the training file
  std::string synthetic;   ///< kSynthetic: the generator's name ("synthetic-netflix")
  double scale = 1.0;      ///< kSynthetic: the share of the full size, in (0, 1]
  std::string train_path;  ///< kPrepared, kFiles
  std::string test_path;   ///< kPrepared, kFiles; "" when there is no test set
  /// kPrepared: why it cannot be read ("dataset 'x' is not prepared: ... (run `mascot data
  /// prepare x`, or use a synthetic name: ...)"), "" when it can.
  std::string unavailable;
};

/// A dataset name: "synthetic-NAME[:scale]" (InvalidArgument for an unknown synthetic name or a
/// bad scale) or a prepared dataset data_root()/NAME/{train,test}.mrat (test.mrat optional).
DataSource resolve_dataset(const std::string& name);
/// Rating files (text or .mrat): a training file and an optional test file.
DataSource file_source(const std::string& train_path, const std::string& test_path);

/// The shape of a data source before it is loaded.
struct DataShape {
  int64_t n_users = 0, n_items = 0, n_train = 0, n_test = 0;
};
/// Synthetic data only (false otherwise): the generator's own sizes (scaled_sizes), the test
/// count being the expected share of the seeded split (n_train + n_test is exact).
bool planned_shape(const DataSource& src, DataShape* shape);

struct LoadedData {
  RatingSet train, test;
  bool has_test = false;
};
/// Generates (with `seed` and `threads`) or reads the data; throws what the readers throw, and
/// InvalidArgument with `unavailable` for a prepared dataset that is missing.
LoadedData load_data(const DataSource& src, uint64_t seed, int threads);

}  // namespace mascot
