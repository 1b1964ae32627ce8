// Data sources of the front ends (datasource.h): the data root, dataset names, planned shapes
// and loading.
#include "mascot/datasource.h"

#include <pwd.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>

#include "mascot/detail/fileutil.h"
#include "mascot/error.h"
#include "mascot/synthetic.h"

namespace mascot {

std::string data_root() {
  if (const char* d = std::getenv("MASCOT_DATA"); d && *d) return d;
  std::string home;
  if (const char* h = std::getenv("HOME"); h && *h)
    home = h;
  else if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir && *pw->pw_dir)
    home = pw->pw_dir;
  else
    home = ".";
  return home + "/.cache/mascot";
}

DataSource resolve_dataset(const std::string& name) {
  DataSource src;
  src.name = name;
  if (parse_synthetic_spec(name, &src.synthetic, &src.scale)) {  // throws for an unknown synthetic name
    src.kind = DataSource::Kind::kSynthetic;
    return src;
  }
  src.kind = DataSource::Kind::kPrepared;
  const std::string dir = data_root() + "/" + name;
  src.train_path = dir + "/train.mrat";
  if (detail::path_exists(dir + "/test.mrat")) src.test_path = dir + "/test.mrat";
  if (!detail::path_exists(src.train_path)) {
    std::string names;
    for (const std::string& n : synthetic_names()) names += (names.empty() ? "" : ", ") + n;
    src.unavailable = "dataset '" + name + "' is not prepared: " + src.train_path +
                      " does not exist (run `mascot data "
                      "prepare " +
                      name + "`, or use a synthetic name: " + names + ")";
  }
  return src;
}

DataSource file_source(const std::string& train_path, const std::string& test_path) {
  DataSource src;
  src.kind = DataSource::Kind::kFiles;
  src.name = train_path;
  src.train_path = train_path;
  src.test_path = test_path;
  return src;
}

bool planned_shape(const DataSource& src, DataShape* shape) {
  if (src.kind != DataSource::Kind::kSynthetic) return false;
  const SyntheticSizes s = scaled_sizes(synthetic_shape(src.synthetic), src.scale);
  shape->n_users = s.users;
  shape->n_items = s.items;
  shape->n_test = std::llround(static_cast<double>(s.ratings) * s.test_fraction);
  shape->n_train = s.ratings - shape->n_test;
  return true;
}

LoadedData load_data(const DataSource& src, uint64_t seed, int threads) {
  LoadedData d;
  if (src.kind == DataSource::Kind::kSynthetic) {
    SyntheticData g = generate_synthetic(src.synthetic, src.scale, seed, threads);
    d.train = std::move(g.train);
    d.test = std::move(g.test);
    d.has_test = true;
    return d;
  }
  if (!src.unavailable.empty()) throw InvalidArgument(src.unavailable);
  d.train = src.kind == DataSource::Kind::kPrepared ? read_mrat(src.train_path) : read_ratings(src.train_path);
  if (!src.test_path.empty()) {
    d.test = src.kind == DataSource::Kind::kPrepared ? read_mrat(src.test_path) : read_ratings(src.test_path);
    d.has_test = true;
  }
  return d;
}

}  // namespace mascot
