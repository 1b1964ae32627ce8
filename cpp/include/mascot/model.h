// Model: the trained factors in ORIGINAL id order (the relabelling is undone by the trainer).
// Saved as a directory: P.npy, Q.npy (float32, C order) and model.json (config, report).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mascot {

struct RatingSet;
namespace detail {
struct DirSpec;
}

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

/// A file written next to P.npy/Q.npy/model.json: one of the optional names of
/// model_file_names() (user_ids.npy, item_ids.npy, seen_indptr.npy, seen_indices.npy; Python
/// writes them) and its complete content.
using ModelFile = std::pair<std::string, std::string>;

/// Every name a model directory may hold: P.npy, Q.npy, model.json, then the optional files.
std::vector<std::string> model_file_names();
/// The model directory as an output (detail::OutputSet::directory): an existing directory is
/// replaced only when it is empty, or holds model.json and nothing but model_file_names();
/// anything else in it is refused, never deleted.
detail::DirSpec model_dir_spec();

/// Writes dir/{P.npy,Q.npy,model.json} (+ extra files) through an OutputSet: into a staged
/// sibling directory that is exchanged with `dir` atomically, so `dir` is the old model or the
/// new one, never half, and a crash leaves no model-less path (detail/fileutil.h).  Factors
/// that are not finite, or an extra file name outside model_file_names(), are an
/// InvalidArgument; a target that cannot be replaced (see model_dir_spec) an IoError.
void save_model(const std::string& dir, const Model& m, const std::string& model_json);
void save_model(const std::string& dir, const Model& m, const std::string& model_json,
                const std::vector<ModelFile>& extra_files);
/// The files of a model written into `dir`, an empty directory nobody else sees yet (the staging
/// directory of an OutputSet's model output: mascot_train stages the model with its other outputs).
void write_model_files(const std::string& dir, const Model& m, const std::string& model_json,
                       const std::vector<ModelFile>& extra_files = {});
/// Throws (IoError) when save_model could not write `dir` (see model_dir_spec; also a missing or
/// unwritable parent directory).  Leaves nothing behind.
void check_model_target(const std::string& dir);

/// Reads P.npy and Q.npy (shapes checked against each other; factors must be finite: NaN or inf
/// is an InvalidArgument naming the file and row); model.json is left to callers.
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
void export_libmf(const std::string& path, const Model& m, double bias, const std::vector<uint8_t>& user_rated = {},
                  const std::vector<uint8_t>& item_rated = {});
/// export_libmf with LIBMF's b and F rows taken from the training set (mean rating; entities
/// without a training rating), as LIBMF's own trainer would have written them.
void export_libmf(const std::string& path, const Model& m, const RatingSet& train);
/// The text export_libmf(path, m, train) writes, for callers that commit several outputs
/// together (mascot_train); `path` only names the target in error messages.
std::string libmf_text(const std::string& path, const Model& m, const RatingSet& train);
/// The same from what it needs of the training set: its mean rating and which users / items it
/// rates (rated_rows), for a caller that handed the set over to the trainer.
std::string libmf_text(const std::string& path, const Model& m, double mean, const std::vector<uint8_t>& user_rated,
                       const std::vector<uint8_t>& item_rated);
/// Per user and per item (ids of the set): 1 where the set has a rating.
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> rated_rows(const RatingSet& train);

}  // namespace mascot
