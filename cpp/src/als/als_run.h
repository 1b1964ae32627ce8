// One ALS run (issue 21), the solver behind the driver's ALS backend (detail/backend.h: prepare,
// run_epoch, test_sse, factors): "one epoch" is one ALS iteration, every user row solved with Q fixed (lambda_p),
// then every item row with P fixed (lambda_q).
//
// Data flow: prepare() checks the ratings (implicit strengths must be >= 0; zeros are no
// interaction), builds the two CSR views (user -> items, item -> users), initialises P and Q
// from detail::init_row's counter-based formula (seeded by the ids, like the SGD backends)
// and hands all of it to the device's Store (mascot/detail/als_engine.h), which owns it from
// then on; run_epoch() is Store::iterate; test_sse() evaluates the kept test pairs on float32
// copies of the factors.  The caller owns the RatingSets during prepare() only.
//
// AlsBackend (als_backend.cc) makes an AlsRun a plug-in of the core's training driver
// (detail/backend.h): the driver owns the epoch loop, the records, callbacks, evaluation
// schedule and checkpoints, for mascot_train --method als, mascot.MF(method="als") and
// mascot.ALS alike.  prepare() alone (iterations = 0 in mascot.ALS) and the test hooks use an
// AlsRun directly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/detail/als_engine.h"
#include "mascot/ratings.h"

namespace mascot::als {

/// InvalidArgument naming the first bad field.
void validate(const RunConfig& cfg);
/// The ALS settings of a training configuration (method als: the als rows of mascot/params.h).
RunConfig run_config(const TrainConfig& cfg);
/// Checks the training data for ALS (one-line InvalidArgument naming the entry).
void check_ratings(const RunConfig& cfg, const RatingSet& train, const std::string& what);

class AlsRun {
 public:
  /// `ctx.device` kAuto: cuda when a usable device is visible and the kernels take k, else cpu.
  void prepare(const RunConfig& cfg, const Context& ctx, const RatingSet& train, const RatingSet* test);
  /// On device `dev` (no fallback), ctx's threads and seed; row r of P (Q) is user (item)
  /// user_old[r] (item_old[r]) for the initial factors (nullptr: r).  The driver's path.
  void prepare_on(const RunConfig& cfg, const Context& ctx, Device dev, const RatingSet& train, const RatingSet* test,
                  const std::vector<int32_t>* user_old, const std::vector<int32_t>* item_old);
  /// The device the run is on ("cpu (2 threads, avx512)" / "cuda").
  const std::string& describe() const { return device_; }
  /// One iteration; returns the ratings touched (2 nnz).
  int64_t run_epoch();
  /// Sum of squared errors of p_u . q_i - r over the test pairs (implicit: against 1); 0 without.
  double test_sse() const { return pairs_sse(test_); }
  int64_t test_size() const { return static_cast<int64_t>(test_.r.size()); }
  /// The driver's validation hold-out (after prepare_on; relabelled ids), evaluated like the test set.
  void set_valid(const RatingSet* valid);
  double valid_sse() const { return pairs_sse(valid_); }
  int64_t n_users() const { return n_users_; }
  int64_t n_items() const { return n_items_; }
  int k() const { return cfg_.k; }
  void factors(std::vector<float>* P, std::vector<float>* Q) const { store_->get(P, Q); }
  void set_factors(const std::vector<float>& P, const std::vector<float>& Q);

 private:
  RunConfig cfg_;
  std::unique_ptr<Store> store_;
  std::string device_;
  int64_t nnz_ = 0, n_users_ = 0, n_items_ = 0;
  struct Pairs {  // evaluation pairs of ids the model knows (implicit: against 1)
    std::vector<int32_t> u, i;
    std::vector<float> r;
  };
  Pairs keep_pairs(const RatingSet* set) const;
  double pairs_sse(const Pairs& pairs) const;
  Pairs test_, valid_;
};

}  // namespace mascot::als
