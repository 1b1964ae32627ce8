// Trainer: the one entry point for training.  Data flow (docs/design.md §2):
//   train/test RatingSet --Reorder::build/apply--> relabelled sets + GroupTables
//   --backend (cpu | cuda, picked from Context)--> P, Q in relabelled order
//   --undo relabelling--> Model (original ids) + RunReport.
// The backend owns the factor storage during training; the caller owns the RatingSets.
#pragma once
#include <functional>
#include <memory>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/model.h"
#include "mascot/ratings.h"
#include "mascot/report.h"

namespace mascot {

/// Called after every epoch, on the calling thread.  Return false to stop training early
/// (the result then has report.interrupted = true).
using EpochCallback = std::function<bool(const EpochRecord&)>;

struct TrainResult {
  Model model;
  RunReport report;
};

/// The validation hold-out of TrainConfig::valid_fraction (docs/design.md §8): of each user's n_u
/// ratings, the floor(fraction x n_u) with the smallest keys hash3(seed, kStreamValid,
/// rating_key(u, i)) (ties: the earlier position) go to `valid`, the rest to `train`; both keep
/// the input's order and id ranges.  fraction in [0, 1), so every user keeps a training rating.
/// A pure function of (ratings, fraction, seed): the trainer splits with the run's seed.
struct ValidSplit {
  RatingSet train, valid;
};
ValidSplit valid_split(const RatingSet& ratings, double fraction, uint64_t seed);

/// Validates `cfg` against the data, resolves the device, trains, and returns the model in
/// original ids.  `test` may be null.  `dataset_name` only labels the report.
TrainResult train(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                  const EpochCallback& on_epoch = {}, const std::string& dataset_name = "");

/// The same, taking the sets over: `train` (and `*test`, when given) are relabelled in place and
/// handed to the backend, which may keep them (the CPU backend's schedule takes the training
/// set's arrays), so the ratings are held once instead of twice; both are left empty.  For
/// callers that need the sets no more (mascot_train, the Python binding's own copies).
TrainResult train(const Context& ctx, const TrainConfig& cfg, RatingSet&& train, RatingSet* test,
                  const EpochCallback& on_epoch = {}, const std::string& dataset_name = "");

}  // namespace mascot
