// The training driver: the one epoch loop of every run, on every backend (the plug-in
// interface and its contract: detail/backend.h; data flow: trainer.h).
//
// A run: check (validate, device, memory plan) -> relabel (reorder.h) and set the group
// tables' initial precisions -> report header -> backend prepare [-> resume: the driver's state,
// the switches replayed, the backend's state] -> epochs -> factors, relabelling undone.
// Per epoch the driver plans (learning rate, seeds, whether to sample), the backend runs the
// pass, the driver turns the sampled sums into q-errors and switching decisions (Switcher
// baselines and the precision tables are the driver's), has the backend widen the switched
// groups, evaluates on its schedule (the test set and the validation hold-out of valid_split),
// watches each evaluated RMSE (the rise guard; early stopping keeps the best epoch's factors),
// fills the EpochRecord, calls back, watches for divergence and hands the checkpoint writer its
// state.  Timing: an epoch's train_seconds covers the
// backend's pass and the switching work; evaluation is timed separately.
#include "mascot/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "mascot/detail/backend.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/methods.h"
#include "mascot/reorder.h"

namespace mascot {

namespace detail {
void init_row(float* row, int k, float std, uint64_t seed, uint64_t stream, int64_t original_id) {
  const uint64_t base = static_cast<uint64_t>(original_id) * static_cast<uint64_t>(k);
  for (int j = 0; j < k; ++j) {
    const uint64_t c = 2 * (base + static_cast<uint64_t>(j));
    row[j] =
        static_cast<float>(static_cast<double>(std) * normal_from(hash3(seed, stream, c), hash3(seed, stream, c + 1)));
  }
}
}  // namespace detail

ValidSplit valid_split(const RatingSet& ratings, double fraction, uint64_t seed) {
  if (!(std::isfinite(fraction) && fraction >= 0 && fraction < 1)) {
    char b[64];
    std::snprintf(b, sizeof b, "valid_fraction must be in [0, 1) (got %g)", fraction);
    throw InvalidArgument(b);
  }
  ratings.validate("ratings");
  const int64_t n = ratings.nnz();
  std::vector<char> held(static_cast<size_t>(n), 0);
  if (fraction > 0 && n > 0) {
    // each user's ratings (CSR, positions ascending), then the floor(F n_u) smallest (key, position)
    std::vector<int64_t> start(static_cast<size_t>(ratings.n_users) + 1, 0);
    for (int32_t u : ratings.users) ++start[static_cast<size_t>(u) + 1];
    for (size_t u = 0; u < static_cast<size_t>(ratings.n_users); ++u) start[u + 1] += start[u];
    std::vector<int64_t> pos(static_cast<size_t>(n));
    std::vector<uint64_t> key(static_cast<size_t>(n));
    {
      std::vector<int64_t> at(start.begin(), start.end() - 1);
      for (int64_t t = 0; t < n; ++t) {
        pos[static_cast<size_t>(at[static_cast<size_t>(ratings.users[t])]++)] = t;
        const uint64_t id = detail::rating_key(ratings.users[t], ratings.items[t]);  // original ids
        key[static_cast<size_t>(t)] = detail::hash3(seed, detail::kStreamValid, id);
      }
    }
    const auto before = [&](int64_t a, int64_t b) {
      const uint64_t ka = key[static_cast<size_t>(a)], kb = key[static_cast<size_t>(b)];
      return ka != kb ? ka < kb : a < b;
    };
    for (size_t u = 0; u < static_cast<size_t>(ratings.n_users); ++u) {
      const int64_t nu = start[u + 1] - start[u];
      const auto m = static_cast<int64_t>(std::floor(fraction * static_cast<double>(nu)));  // < nu: F < 1
      if (m == 0) continue;
      const auto first = pos.begin() + start[u], last = pos.begin() + start[u + 1];
      std::nth_element(first, first + (m - 1), last, before);
      for (auto it = first; it != first + m; ++it) held[static_cast<size_t>(*it)] = 1;
    }
  }
  ValidSplit out;
  for (RatingSet* r : {&out.train, &out.valid}) {
    r->n_users = ratings.n_users;
    r->n_items = ratings.n_items;
  }
  for (int64_t t = 0; t < n; ++t) {
    RatingSet& r = held[static_cast<size_t>(t)] ? out.valid : out.train;
    r.users.push_back(ratings.users[t]);
    r.items.push_back(ratings.items[t]);
    r.ratings.push_back(ratings.ratings[t]);
  }
  return out;
}

TrainResult train(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                  const EpochCallback& on_epoch, const std::string& dataset_name) {
  return detail::train_run(ctx, cfg, train, test, on_epoch, dataset_name, nullptr);
}
// declared after the driver (below)
namespace detail {
TrainResult train_owned(const Context& ctx, const TrainConfig& cfg, RatingSet&& train, RatingSet* test,
                        const EpochCallback& on_epoch, const std::string& dataset_name);
}
TrainResult train(const Context& ctx, const TrainConfig& cfg, RatingSet&& train, RatingSet* test,
                  const EpochCallback& on_epoch, const std::string& dataset_name) {
  return detail::train_owned(ctx, cfg, std::move(train), test, on_epoch, dataset_name);
}

namespace detail {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr const char* kNoMonitor =
    "early_stop needs an evaluated RMSE: a validation hold-out (valid_fraction > 0, --valid-fraction) or a test set";

/// Everything checkable before any work, in the order whose first failure is the message:
/// context, data, configuration against the data, a CUDA request the kernels do not take
/// (before regrouping the data), then the memory plan.  Returns the device to train on.
Device check_run(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test) {
  ctx.validate();
  train.validate("training set");
  MASCOT_CHECK_ARG(train.nnz() > 0, "training set has no ratings");
  if (test) test->validate("test set");
  cfg.validate_for(train.n_users, train.n_items);
  if (ctx.device == Device::kCuda)
    if (const std::string why = cuda_unsupported_reason(cfg); !why.empty()) throw InvalidArgument(why);
  // auto: a job the CUDA kernels do not handle (k, order, study options) trains on the CPU
  const Device dev = training_device(ctx, cfg);
  // early stopping follows the validation hold-out, else the test set: one of them must exist
  if (cfg.early_stop > 0 && cfg.valid_fraction == 0 && !test) throw InvalidArgument(kNoMonitor);
  // refuse up front a job that cannot fit (memory_plan.h; it plans for the same device choice)
  // (the validation hold-out is counted with the evaluation records: its share of the training set)
  const auto held = static_cast<int64_t>(cfg.valid_fraction * static_cast<double>(train.nnz()));
  check_memory_plan(
      plan_memory(ctx, cfg, train.n_users, train.n_items, train.nnz(), (test ? test->nnz() : 0) + held, true));
  return dev;
}

/// The relabelling of a run: mascot-n2 has one global group per side, random_fp16 two groups
/// per side by a seeded coin (FP16 rows and FP32 rows), and methods that never look at groups
/// lay rows out in min(groups, rows) of them (TrainConfig::uses_groups).
Reorder relabelling(const Context& ctx, const TrainConfig& cfg, const RatingSet& train) {
  if (cfg.random_fp16 >= 0) return Reorder::build_random_precision(train, cfg.random_fp16, ctx.seed);
  const bool global = method_traits(cfg.method).switching == Switching::kGlobal;
  const auto layout_groups = [&](int g, int64_t rows) {
    return global ? 1 : cfg.uses_groups() ? g : static_cast<int>(std::min<int64_t>(g, rows));
  };
  return Reorder::build(train, layout_groups(cfg.user_groups, train.n_users),
                        layout_groups(cfg.item_groups, train.n_items));
}

/// grad_stats: mean norm of the sampled gradients per group (-1 where nothing was sampled).
std::vector<double> mean_norms(const GradSums& s) {
  std::vector<double> m(s.n.size());
  for (size_t g = 0; g < m.size(); ++g) m[g] = s.n[g] > 0 ? s.nsum[g] / static_cast<double>(s.n[g]) : -1.0;
  return m;
}

class Driver {
 public:
  Driver(const Context& ctx, const TrainConfig& cfg, const EpochCallback& on_epoch, const RunHooks* hooks)
      : ctx_(ctx), cfg_(cfg), traits_(method_traits(cfg.method)), on_epoch_(on_epoch), hooks_(hooks),
        usw_(0, cfg.threshold), isw_(0, cfg.threshold) {}

  /// A run on the caller's sets, which it keeps: the driver trains on its own copies.
  TrainResult run(const RatingSet& train, const RatingSet* test, const std::string& dataset_name) {
    const auto t0 = Clock::now();
    device_ = check_run(ctx_, cfg_, train, test);  // before any copy
    RatingSet te = test ? *test : RatingSet();
    return run_owned(RatingSet(train), test ? &te : nullptr, dataset_name, t0);
  }
  /// A run on sets handed over (train(RatingSet&&, ...)): relabelled in place, then the backend
  /// may keep them (the CPU schedule takes the training set's arrays), so the ratings are held
  /// once, not twice; both are left empty.
  TrainResult run(RatingSet&& train, RatingSet* test, const std::string& dataset_name) {
    const auto t0 = Clock::now();
    device_ = check_run(ctx_, cfg_, train, test);
    return run_owned(std::move(train), test, dataset_name, t0);
  }

 private:
  TrainResult run_owned(RatingSet&& train, RatingSet* test, const std::string& dataset_name, Clock::time_point t0) {
    if (cfg_.valid_fraction > 0) {  // the hold-out, in original ids, before the groups are formed
      ValidSplit sp = valid_split(train, cfg_.valid_fraction, ctx_.seed);
      train = std::move(sp.train);
      va_ = std::move(sp.valid);
    }
    relabel(std::move(train), test);
    if (cfg_.early_stop > 0 && n_valid_ == 0 && n_test_ == 0) throw InvalidArgument(kNoMonitor);  // all dropped
    start_report(dataset_name);
    prepare(test != nullptr);
    rep().setup_seconds = seconds_since(t0);
    const int done = static_cast<int>(rep().epochs.size());
    const Watch* m = monitored();
    if (cfg_.early_stop > 0 && m && m->best_epoch >= 0 && done - 1 - m->best_epoch >= cfg_.early_stop)
      rep().stopped_early = true;  // a resumed run that had stopped early: nothing more to train
    else
      for (int e = done; e < cfg_.epochs; ++e)
        if (!epoch(e)) break;
    return finish();
  }

  RunReport& rep() { return res_.report; }

  // The sets relabelled in place and moved into tr_ / te_, which prepare() hands to the backend
  // (it may move from them: only the counts below are used afterwards).
  void relabel(RatingSet&& train, RatingSet* test) {
    ro_ = relabelling(ctx_, cfg_, train);
    ro_.apply_in_place(&train, nullptr);
    tr_ = std::move(train);
    if (cfg_.order == Order::kChunk) shuffle_for_chunk_order(&tr_, ctx_.seed);  // as the reference code does
    if (test) {
      ro_.apply_in_place(test, &dropped_);
      te_ = std::move(*test);
      *test = RatingSet();
    }
    ro_.apply_in_place(&va_, &valid_dropped_);  // an item whose ratings were all held out is unknown
    n_users_ = tr_.n_users;
    n_items_ = tr_.n_items;
    n_train_ = tr_.nnz();
    n_test_ = te_.nnz();
    n_valid_ = va_.nnz();
    // the storage to train in, and the groups' initial precisions: the study options run the
    // FP32 / FP16 methods on the per-group path (grad_stats samples there; fp32 then keeps
    // every group FP32, mascot-n1 every group FP16; random_fp16 comes with its groups preset)
    storage_ = traits_.storage;
    if (cfg_.random_fp16 >= 0) storage_ = Storage::kPerGroup;
    if (cfg_.grad_stats && (storage_ == Storage::kFp32 || storage_ == Storage::kFp16)) {
      if (storage_ == Storage::kFp32)
        for (GroupTable* t : {&ro_.user_groups, &ro_.item_groups})
          std::fill(t->precision.begin(), t->precision.end(), Precision::kFp32);
      storage_ = Storage::kPerGroup;
    }
    if (cfg_.method == Method::kAls && cfg_.competing.als_factors == AlsPrecision::kFp16) storage_ = Storage::kFp16;
    initial_user_ = ro_.user_groups.precision;
    initial_item_ = ro_.item_groups.precision;
    usw_ = Switcher(ro_.user_groups.size(), cfg_.threshold);
    isw_ = Switcher(ro_.item_groups.size(), cfg_.threshold);
  }

  void start_report(const std::string& dataset_name) {
    RunReport& r = rep();
    r.config = cfg_;
    if (device_ != ctx_.resolved_device()) {  // auto sent the job to the CPU, and says why
      Context cpu_ctx = ctx_;
      cpu_ctx.device = Device::kCpu;
      r.device = describe_device(cpu_ctx) + "; auto: k, order or a study option not supported on cuda";
    } else {
      r.device = describe_device(ctx_);
    }
    r.threads = ctx_.resolved_threads();
    r.seed = ctx_.seed;
    r.data.name = dataset_name;
    r.data.n_users = n_users_;
    r.data.n_items = n_items_;
    r.data.n_train = n_train_;
    r.data.n_test = n_test_;
    r.data.test_dropped = dropped_;
    r.data.n_valid = n_valid_;
    r.data.valid_dropped = valid_dropped_;
    r.data.user_groups = ro_.user_groups.size();
    r.data.item_groups = ro_.item_groups.size();
    if (hooks_ && hooks_->resume_report) {  // the run so far
      const RunReport& old = *hooks_->resume_report;
      r.epochs = old.epochs;
      r.switches = old.switches;
      r.total_train_seconds = old.total_train_seconds;
      r.total_eval_seconds = old.total_eval_seconds;
      r.final_test_rmse = old.final_test_rmse;
      r.final_valid_rmse = old.final_valid_rmse;
    }
  }

  /// The backend, prepared with the initial tables; on resume the driver's state, the run's
  /// switches replayed through widen_groups, then the backend's state.
  void prepare(bool has_test) {
    backend_ = cfg_.method == Method::kAls ? make_als_backend(device_)
               : device_ == Device::kCuda  ? make_cuda_backend()
                                           : make_cpu_backend();
    FitInput in{&ctx_,
                &cfg_,
                &tr_,
                has_test ? &te_ : nullptr,
                n_valid_ > 0 ? &va_ : nullptr,
                &ro_.user_old,
                &ro_.item_old,
                &ro_.user_groups,
                &ro_.item_groups,
                storage_};
    // a resumed run's driver state is read first: a wrong checkpoint fails before the (possibly
    // long) preparation
    StateReader* resume = hooks_ ? hooks_->resume : nullptr;
    DriverState saved;
    if (resume) saved = import_state(*resume);
    backend_->prepare(in);
    if (const std::string d = backend_->describe(); !d.empty()) rep().device = d;
    rep().config.order = backend_->resolved_order(cfg_.order);  // `auto` resolved: the order that ran
    if (!resume) return;
    for (char side : {'u', 'i'}) {
      GroupTable& t = side == 'u' ? ro_.user_groups : ro_.item_groups;
      const std::vector<Precision>& now = side == 'u' ? saved.user_precision : saved.item_precision;
      std::vector<int> switched;
      for (int g = 0; g < t.size(); ++g)
        if (t.precision[g] != now[g]) switched.push_back(g);
      t.precision = now;
      if (!switched.empty()) backend_->widen_groups(side, switched);
    }
    usw_.set_baseline(saved.user_baseline);
    isw_.set_baseline(saved.item_baseline);
    updates_ = saved.updates;
    backend_->import_state(*resume, saved.epochs);
    // the guard's and early stopping's state: a replay of the records so far (they are the run's)
    for (const EpochRecord& old : rep().epochs) {
      watch("test", old.epoch, old.test_rmse, &test_watch_, nullptr);
      watch("valid", old.epoch, old.valid_rmse, &valid_watch_, nullptr);
    }
    note_best();
    const Watch* m = monitored();
    if (cfg_.early_stop == 0 || !m || m->best_epoch < 0) return;
    if (m->best_epoch + 1 == saved.epochs) {
      keep_best(m->best_epoch);  // the factors just imported
    } else {
      if (!resume->has("best_P32") || !resume->has("best_Q32"))
        throw InvalidArgument(resume->where("driver_state") + ": corrupted (the best epoch's factors are missing)");
      best_P_.resize(static_cast<size_t>(n_users_) * static_cast<size_t>(cfg_.k));
      best_Q_.resize(static_cast<size_t>(n_items_) * static_cast<size_t>(cfg_.k));
      resume->matrix("best_P32", best_P_.data(), n_users_, cfg_.k, 4);
      resume->matrix("best_Q32", best_Q_.data(), n_items_, cfg_.k, 4);
      best_saved_epoch_ = m->best_epoch;
    }
  }

  EpochPlan plan(int e) const {
    EpochPlan p;
    p.epoch = e;
    p.lr = cfg_.method == Method::kAls ? 0.0f : cfg_.lr_at(e);  // ALS has no learning rate
    p.round_seed = hash3(ctx_.seed, kStreamRound, static_cast<uint64_t>(e));
    const bool per_group = storage_ == Storage::kPerGroup;
    p.sample = per_group && (measured(e) || cfg_.grad_stats);
    p.grad_norms = p.sample && cfg_.grad_stats;
    p.sample_seed = hash3(ctx_.seed, kStreamSample, static_cast<uint64_t>(e));
    p.sample_below = cfg_.sample_ratio >= 1.0 ? ~0ull : static_cast<uint64_t>(std::ldexp(cfg_.sample_ratio, 64));
    return p;
  }
  /// Whether epoch e measures the q-error for g-switching (random_fp16 never switches).
  bool measured(int e) const { return switching() && measured_epoch(e, cfg_.warmup, cfg_.period); }
  /// Whether this run measures at all, so that groups may switch.
  bool switching() const { return traits_.switches_groups() && cfg_.random_fp16 < 0 && storage_ == Storage::kPerGroup; }

  /// One epoch; false when training stops after it (a stop asked for, or divergence).
  bool epoch(int e) {
    EpochRecord rec;
    rec.epoch = e;
    const EpochPlan p = plan(e);
    rec.lr = p.lr;
    const auto t0 = Clock::now();
    EpochResult r = backend_->run_epoch(p);
    updates_ += r.updates;
    rec.method_json = std::move(r.method_json);
    if (p.sample) use_samples(r, p, &rec);
    rec.train_seconds = seconds_since(t0);
    rep().total_train_seconds += rec.train_seconds;
    if (cfg_.eval_every_epoch || cfg_.early_stop > 0 || e == cfg_.epochs - 1) evaluate(&rec);
    watch("test", e, rec.test_rmse, &test_watch_, &rec.rises);
    const bool valid_best = watch("valid", e, rec.valid_rmse, &valid_watch_, &rec.rises);
    const bool best = n_valid_ > 0 ? valid_best : test_watch_.best_epoch == e;
    if (best && cfg_.early_stop > 0) keep_best(e);
    note_best();
    rec.fp32_user_groups = fp32_groups(ro_.user_groups);
    rec.fp32_item_groups = fp32_groups(ro_.item_groups);
    rep().epochs.push_back(std::move(rec));
    const bool stop = !keep_going(rep().epochs.back());
    const Watch* m = monitored();
    const bool early = !stop && cfg_.early_stop > 0 && m && m->best_epoch >= 0 && e - m->best_epoch >= cfg_.early_stop;
    if (stop) rep().interrupted = true;
    if (early) rep().stopped_early = true;
    if (hooks_ && hooks_->epoch_done && diverged_ < 0)  // a diverged state is not worth a checkpoint
      hooks_->epoch_done(e + 1, stop || early || e + 1 == cfg_.epochs, device_, rep(),
                         [this, e](StateWriter& out) { save(out, e + 1); });
    return !stop && !early;
  }

  // ---------------------------------------------------------------- the guard and early stopping
  // Each evaluated set has a Watch: its best RMSE so far and where, and whether its current rise
  // was reported.  An RMSE more than kRmseRiseMargin (1 %) above the best is recorded once
  // (EpochRecord::rises; front ends print it), and again only after a new best.  Early stopping
  // follows the monitored set (the validation hold-out, else the test set) and keeps a float32
  // copy of the factors of its best epoch, which finish() returns.
  struct Watch {
    double best = std::numeric_limits<double>::infinity();
    int best_epoch = -1;
    bool warned = false;
  };
  /// One evaluated RMSE (-1: not evaluated); true when it is the set's new best.
  static bool watch(const char* set, int epoch, double rmse, Watch* w, std::vector<RmseRise>* rises) {
    if (rmse < 0 || !std::isfinite(rmse)) return false;
    if (rmse < w->best) {
      w->best = rmse;
      w->best_epoch = epoch;
      w->warned = false;
      return true;
    }
    if (!w->warned && rmse > w->best * (1.0 + kRmseRiseMargin)) {
      w->warned = true;
      if (rises) rises->push_back(RmseRise{set, epoch, w->best_epoch, w->best, rmse});
    }
    return false;
  }
  const Watch* monitored() const { return n_valid_ > 0 ? &valid_watch_ : n_test_ > 0 ? &test_watch_ : nullptr; }
  void note_best() {
    const Watch* m = monitored();
    if (!m) return;
    rep().monitor = n_valid_ > 0 ? "valid" : "test";
    rep().best_epoch = m->best_epoch;
    rep().best_rmse = m->best_epoch >= 0 ? m->best : -1.0;
  }
  /// The factors after epoch e, kept as the best (backend factors() after a completed epoch).
  void keep_best(int e) {
    backend_->factors(&best_P_, &best_Q_);
    best_saved_epoch_ = e;
  }

  /// A sampled epoch: gradient statistics, and on a measured epoch the q-errors and switching.
  void use_samples(const EpochResult& r, const EpochPlan& p, EpochRecord* rec) {
    if (p.grad_norms) {
      rec->user_grad_norm = mean_norms(r.user);
      rec->item_grad_norm = mean_norms(r.item);
    }
    if (!measured(p.epoch)) return;
    rec->measured = true;
    const int k = cfg_.k;
    const GradSums& u = r.user;
    const GradSums& i = r.item;
    rec->user_qerror = qerror_from_sums(u.sum.data(), u.sq.data(), u.n.data(), ro_.user_groups.size(), k);
    rec->item_qerror = qerror_from_sums(i.sum.data(), i.sq.data(), i.n.data(), ro_.item_groups.size(), k);
    switch_groups('u', usw_.update(rec->user_qerror, &ro_.user_groups), p.epoch);
    switch_groups('i', isw_.update(rec->item_qerror, &ro_.item_groups), p.epoch);
  }
  void switch_groups(char side, const std::vector<int>& groups, int epoch) {
    if (groups.empty()) return;
    backend_->widen_groups(side, groups);
    for (int g : groups) rep().switches.push_back(SwitchEvent{side, g, epoch});
  }

  /// The test RMSE and the validation RMSE, for the sets this run has (timed together).
  void evaluate(EpochRecord* rec) {
    if (n_test_ == 0 && n_valid_ == 0) return;
    const auto t1 = Clock::now();
    if (n_test_ > 0) {
      rec->test_rmse = std::sqrt(backend_->eval_sse(EvalSet::kTest) / static_cast<double>(n_test_));
      rep().final_test_rmse = rec->test_rmse;
    }
    if (n_valid_ > 0) {
      rec->valid_rmse = std::sqrt(backend_->eval_sse(EvalSet::kValid) / static_cast<double>(n_valid_));
      rep().final_valid_rmse = rec->valid_rmse;
    }
    rec->eval_seconds = seconds_since(t1);
    rep().total_eval_seconds += rec->eval_seconds;
  }

  int fp32_groups(const GroupTable& t) const {
    if (storage_ == Storage::kPerGroup) return t.count_fp32();
    return storage_ == Storage::kFp32 || storage_ == Storage::kFp32Master ? t.size() : 0;
  }

  /// The divergence watch around the caller's callback: a non-finite test RMSE stops training
  /// at that epoch (finish() throws Diverged); -1 (not evaluated) is finite.
  bool keep_going(const EpochRecord& e) {
    if (!std::isfinite(e.test_rmse) || !std::isfinite(e.valid_rmse)) {
      diverged_ = e.epoch + 1;
      diverged_set_ = std::isfinite(e.test_rmse) ? "validation" : "test";
      return false;
    }
    return on_epoch_ ? on_epoch_(e) : true;
  }

  TrainResult finish() {
    RunReport& r = rep();
    r.updates_per_second = r.total_train_seconds > 0 ? static_cast<double>(updates_) / r.total_train_seconds : 0.0;
    const auto advice = cfg_.method == Method::kAls ? "; raise lambda_p / lambda_q (--lambda-p, --lambda-q)"
                                                    : "; lower lr or init_std (--lr, --init-std)";
    if (diverged_ >= 0)
      throw Diverged("training diverged: the " + diverged_set_ + " RMSE is not finite after epoch " +
                     std::to_string(diverged_) + advice);
    // a stop asked for after the last epoch interrupted nothing
    if (r.interrupted && static_cast<int>(r.epochs.size()) >= cfg_.epochs) r.interrupted = false;
    backend_->end_training();
    std::vector<float> P, Q;
    // early stopping: the best epoch's factors, and the totals describe that model
    const bool best =
        cfg_.early_stop > 0 && best_saved_epoch_ >= 0 && best_saved_epoch_ + 1 < static_cast<int>(r.epochs.size());
    if (best) {
      P = std::move(best_P_);
      Q = std::move(best_Q_);
      const EpochRecord& b = r.epochs[static_cast<size_t>(best_saved_epoch_)];
      r.final_test_rmse = b.test_rmse;
      r.final_valid_rmse = b.valid_rmse;
    } else {
      backend_->factors(&P, &Q);
    }
    Model& m = res_.model;
    m.n_users = n_users_;
    m.n_items = n_items_;
    m.k = cfg_.k;
    m.P.resize(P.size());
    m.Q.resize(Q.size());
    const size_t row = sizeof(float) * static_cast<size_t>(cfg_.k);
    for (int64_t u = 0; u < m.n_users; ++u)
      std::memcpy(&m.P[static_cast<size_t>(ro_.user_old[u]) * cfg_.k], &P[static_cast<size_t>(u) * cfg_.k], row);
    for (int64_t i = 0; i < m.n_items; ++i)
      std::memcpy(&m.Q[static_cast<size_t>(ro_.item_old[i]) * cfg_.k], &Q[static_cast<size_t>(i) * cfg_.k], row);
    // without a test set (or with rows the test set never touches) divergence shows in the factors
    const auto finite = [](const std::vector<float>& v) {
      for (float x : v)
        if (!std::isfinite(x)) return false;
      return true;
    };
    if (!finite(m.P) || !finite(m.Q))
      throw Diverged("training diverged: the factors are not finite after epoch " + std::to_string(r.epochs.size()) +
                     advice);
    return std::move(res_);
  }

  // ---------------------------------------------------------------- checkpoint state
  // "driver_state": which backend, completed epochs, the update count, the groups' precisions
  // and the Switcher baselines; then the backend's own sections.
  struct DriverState {
    int epochs = 0;
    int64_t updates = 0;
    std::vector<Precision> user_precision, item_precision;
    std::vector<double> user_baseline, item_baseline;
  };

  void save(StateWriter& out, int epochs_done) const {
    BinWriter w;
    w.str("driver");
    w.str(backend_->name());
    w.pod(static_cast<int32_t>(epochs_done));
    w.pod(updates_);
    w.vec(ro_.user_groups.precision);
    w.vec(ro_.item_groups.precision);
    w.vec(usw_.baseline());
    w.vec(isw_.baseline());
    out.blob("driver_state", w.bytes());
    // early stopping's copy, when the best epoch is not the current one (float32, relabelled)
    if (cfg_.early_stop > 0 && best_saved_epoch_ >= 0 && best_saved_epoch_ + 1 < epochs_done) {
      out.matrix("best_P32", best_P_.data(), n_users_, cfg_.k, 4);
      out.matrix("best_Q32", best_Q_.data(), n_items_, cfg_.k, 4);
    }
    backend_->export_state(out);
  }

  DriverState import_state(StateReader& in) {
    const std::string blob = in.blob("driver_state");
    BinReader r(blob, in.where("driver_state"));
    if (r.str() != "driver") r.fail("not a driver state");
    const std::string backend = r.str();
    const std::string here = backend_->name();
    const bool known = backend == "cuda" || backend == "cpu" || backend == "als-cuda" || backend == "als-cpu";
    if (backend != here) r.fail("saved by the " + (known ? backend : "?") + " backend, this run trains on " + here);
    DriverState s;
    s.epochs = r.pod<int32_t>();
    s.updates = r.pod<int64_t>();
    s.user_precision = r.vec<Precision>();
    s.item_precision = r.vec<Precision>();
    s.user_baseline = r.vec<double>();
    s.item_baseline = r.vec<double>();
    r.expect_done();
    // the epoch count must be the run state's, else epochs repeat
    if (static_cast<size_t>(s.epochs) != rep().epochs.size())
      r.fail("corrupted (epoch count " + std::to_string(s.epochs) + ", the run state has " +
             std::to_string(rep().epochs.size()) + ")");
    if (s.updates < 0) r.fail("corrupted (negative update count)");
    const GroupTable& ut = ro_.user_groups;
    const GroupTable& it = ro_.item_groups;
    if (s.user_precision.size() != ut.precision.size() || s.item_precision.size() != it.precision.size() ||
        s.user_baseline.size() != ut.precision.size() || s.item_baseline.size() != it.precision.size())
      r.fail("group counts differ from this run's");
    // precision only ever goes FP16 -> FP32, and only where the method switches
    const auto fits = [&](const std::vector<Precision>& now, const std::vector<Precision>& initial) {
      for (size_t g = 0; g < now.size(); ++g) {
        if (now[g] != Precision::kFp16 && now[g] != Precision::kFp32) r.fail("bad group precision");
        if (now[g] != initial[g] && (initial[g] == Precision::kFp32 || !switching())) return false;
      }
      return true;
    };
    if (!fits(s.user_precision, initial_user_) || !fits(s.item_precision, initial_item_))
      r.fail("group precisions do not fit this run's method");
    return s;
  }
  const Context& ctx_;
  const TrainConfig& cfg_;
  const MethodTraits& traits_;
  const EpochCallback& on_epoch_;
  const RunHooks* hooks_;
  Device device_ = Device::kCpu;
  Reorder ro_;
  RatingSet tr_, te_, va_;  // relabelled; handed to the backend in prepare(), which may move from them
  int64_t n_users_ = 0, n_items_ = 0, n_train_ = 0, n_test_ = 0, n_valid_ = 0;
  int64_t dropped_ = 0, valid_dropped_ = 0;
  Storage storage_ = Storage::kFp32;
  std::vector<Precision> initial_user_, initial_item_;
  Switcher usw_, isw_;
  std::unique_ptr<Backend> backend_;
  int64_t updates_ = 0;
  int diverged_ = -1;  // the epoch (1-based) whose test (or validation) RMSE was not finite
  std::string diverged_set_;
  Watch test_watch_, valid_watch_;
  std::vector<float> best_P_, best_Q_;  // early_stop: the factors after epoch best_saved_epoch_
  int best_saved_epoch_ = -1;
  TrainResult res_;
};

}  // namespace

TrainResult train_run(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                      const EpochCallback& on_epoch, const std::string& dataset_name, const RunHooks* hooks) {
  return Driver(ctx, cfg, on_epoch, hooks).run(train, test, dataset_name);
}

TrainResult train_owned(const Context& ctx, const TrainConfig& cfg, RatingSet&& train, RatingSet* test,
                        const EpochCallback& on_epoch, const std::string& dataset_name) {
  return Driver(ctx, cfg, on_epoch, nullptr).run(std::move(train), test, dataset_name);
}

}  // namespace detail
}  // namespace mascot
