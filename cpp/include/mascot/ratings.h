// RatingSet: the training/test data, structure-of-arrays.  Produced by the readers below,
// by the synthetic generator (synthetic.h) or by Python (mascot.data); consumed by Reorder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mascot {

struct RatingSet {
  int64_t n_users = 0;  ///< ids are 0 .. n_users-1 (some may have no ratings)
  int64_t n_items = 0;
  std::vector<int32_t> users;
  std::vector<int32_t> items;
  std::vector<float> ratings;

  int64_t nnz() const { return static_cast<int64_t>(ratings.size()); }
  /// Checks array lengths agree, ids in range, ratings finite.  `what` names the source.
  void validate(const std::string& what = "ratings") const;
};

/// Reads a `.mrat` file (docs/design.md §5); validates magic, version, sizes vs file length, ids,
/// finite ratings.  Errors: IoError (cannot open/read), InvalidArgument ("<path>: ...").
RatingSet read_mrat(const std::string& path);
/// Writes atomically (temp file + fsync + rename): no partial file on failure.
void write_mrat(const std::string& path, const RatingSet& rs);

/// Reads LIBMF-style text: `user item rating` per line, whitespace separated, 0-based ids.
/// Blank lines and lines starting with '#' are skipped.  n_users/n_items = max id + 1.
/// Every malformed line is an InvalidArgument "<path>:<line>: <what>".
RatingSet read_text(const std::string& path);
void write_text(const std::string& path, const RatingSet& rs);

/// Reads either format, by the file's magic bytes (a name ending in .mrat: always .mrat), in
/// one pass over one open file, so a pipe works too (--train /dev/stdin).
RatingSet read_ratings(const std::string& path);

/// Mean rating (double accumulation); 0 for an empty set.  LIBMF's b, model.json's train_mean.
double mean_rating(const RatingSet& rs);

}  // namespace mascot
