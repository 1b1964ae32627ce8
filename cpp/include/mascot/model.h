// Model: the trained factors in ORIGINAL id order (the relabelling is undone by the trainer).
// Saved as a directory: P.npy, Q.npy (float32, C order) and model.json (config, report).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mascot {

struct RatingSet;

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
/// Throws (IoError) when save_model could not write `dir`: it exists and is a file or a
/// non-empty directory without model.json, or its parent directory is missing or not writable.  Callers
/// check this before a long run, so a bad target fails before training, not after.
void check_model_target(const std::string& dir);
/// A file written next to P.npy/Q.npy/model.json by save_model: a plain file name (no '/')
/// and its complete content (e.g. the bytes of an .npy that Python produced: id maps, the
/// training pairs).  Written inside the temp directory, so it is part of the atomic rename.
using ModelFile = std::pair<std::string, std::string>;
/// save_model plus extra files; a name that is not a plain file name, or one of the three
/// standard names, is an InvalidArgument.
void save_model(const std::string& dir, const Model& m, const std::string& model_json,
                const std::vector<ModelFile>& extra_files);

/// Reads P.npy and Q.npy (shapes checked against each other); model.json is left to callers.
Model load_model(const std::string& dir);

/// .npy helpers (float32, 2-D, C order), exposed for tests and checkpointing.
void write_npy(const std::string& path, const float* data, int64_t rows, int64_t cols);
std::vector<float> read_npy(const std::string& path, int64_t* rows, int64_t* cols);

/// Writes `m` in LIBMF's text model format (what LIBMF's mf_save_model writes and
/// mf-predict reads), atomically:
///   f 0            loss function (0 = squared error, real-valued MF: prediction p_u . q_i)
///   m <n_users>
///   n <n_items>
///   k <k>
///   b <bias>       LIBMF's average training rating; mf-predict returns it for rows marked F
///   p<u> T v_1 ... v_k      one line per user, each value followed by a space
///   q<i> T v_1 ... v_k      one line per item
/// A user (item) whose flag in user_rated (item_rated) is 0 had no training rating: LIBMF
/// writes such a row as "p<u> F 0 0 ... 0".  Empty flag vectors mean "all rated".  Values are
/// printed with %.9g, enough to read back every float32 exactly (LIBMF itself prints 6 digits).
/// Non-finite factors are an InvalidArgument naming the row (LIBMF would read them as F).
void export_libmf(const std::string& path, const Model& m, double bias,
                  const std::vector<uint8_t>& user_rated = {}, const std::vector<uint8_t>& item_rated = {});
/// export_libmf with LIBMF's b and F rows taken from the training set (mean rating; entities
/// without a training rating), as LIBMF's own trainer would have written them.
void export_libmf(const std::string& path, const Model& m, const RatingSet& train);
/// The text export_libmf(path, m, train) writes, for callers that commit several outputs
/// together (mascot_train); `path` only names the target in error messages.
std::string libmf_text(const std::string& path, const Model& m, const RatingSet& train);

}  // namespace mascot
