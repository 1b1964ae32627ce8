// Model: the trained factors in ORIGINAL id order (the relabelling is undone by the trainer).
// Saved as a directory: P.npy, Q.npy (float32, C order) and model.json (config, report).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mascot {

struct Model {
  int64_t n_users = 0;
  int64_t n_items = 0;
  int k = 0;
  std::vector<float> P;  ///< n_users x k, row-major, host memory
  std::vector<float> Q;  ///< n_items x k

  /// p_u . q_i; throws InvalidArgument for ids out of range.
  float predict(int64_t user, int64_t item) const;
  /// Root-mean-square error on (users, items, ratings); InvalidArgument for ids out of range.
  double rmse(const int32_t* users, const int32_t* items, const float* ratings, int64_t n) const;
};

/// Writes dir/{P.npy,Q.npy,model.json} atomically: the files go into a fresh sibling temp
/// directory which is renamed into place, so `dir` is either the old content or the new,
/// never half.  An existing `dir` is replaced only if it is empty or holds a model.json.
void save_model(const std::string& dir, const Model& m, const std::string& model_json);
/// Reads P.npy and Q.npy (shapes checked against each other); model.json is left to callers.
Model load_model(const std::string& dir);

/// .npy helpers (float32, 2-D, C order), exposed for tests and checkpointing.
void write_npy(const std::string& path, const float* data, int64_t rows, int64_t cols);
std::vector<float> read_npy(const std::string& path, int64_t* rows, int64_t* cols);

}  // namespace mascot
