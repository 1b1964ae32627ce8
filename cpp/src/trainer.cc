// Device-neutral orchestration of a training run (data flow in trainer.h): validate,
// reconstruct groups, hand relabelled data to the backend, undo the relabelling.
#include "mascot/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "mascot/detail/backend.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/reorder.h"

namespace mascot {

namespace detail {
void init_row(float* row, int k, float std, uint64_t seed, uint64_t stream, int64_t original_id) {
  const uint64_t base = static_cast<uint64_t>(original_id) * static_cast<uint64_t>(k);
  for (int j = 0; j < k; ++j) {
    const uint64_t c = 2 * (base + static_cast<uint64_t>(j));
    row[j] = static_cast<float>(static_cast<double>(std) * normal_from(hash3(seed, stream, c), hash3(seed, stream, c + 1)));
  }
}
}  // namespace detail

TrainResult train(const Context& ctx, const TrainConfig& cfg, const RatingSet& train, const RatingSet* test,
                  const EpochCallback& on_epoch, const std::string& dataset_name) {
  return detail::legacy_train_run(ctx, cfg, train, test, on_epoch, dataset_name, nullptr);
}

TrainResult detail::legacy_train_run(const Context& ctx, const TrainConfig& cfg, const RatingSet& train,
                              const RatingSet* test, const EpochCallback& on_epoch, const std::string& dataset_name,
                              const LegacyRunHooks* hooks) {
  const auto t0 = std::chrono::steady_clock::now();
  ctx.validate();
  train.validate("training set");
  MASCOT_CHECK_ARG(train.nnz() > 0, "training set has no ratings");
  if (test) test->validate("test set");
  cfg.validate_for(train.n_users, train.n_items);
  // --device cuda with a job the kernels do not take: say so first, before regrouping the data
  if (ctx.device == Device::kCuda)
    if (const std::string why = detail::cuda_unsupported_reason(cfg); !why.empty()) throw InvalidArgument(why);
  // auto: a job the CUDA kernels do not handle (k, order, study options) trains on the CPU, and says so
  const Device dev = detail::training_device(ctx, cfg);
  const bool auto_cpu = dev != ctx.resolved_device();
  // refuse up front a job that cannot fit (memory_plan.h; it plans for the same device choice)
  check_memory_plan(plan_memory(ctx, cfg, train.n_users, train.n_items, train.nnz(), test ? test->nnz() : 0, true));

  // mascot-n2: the same machinery with one global user group and one global item group
  const bool global = cfg.method == Method::kMascotN2;
  // random_fp16 (potential study): two groups per side, FP16 rows and FP32 rows, by a seeded coin
  // methods that never look at groups lay rows out in min(groups, rows) of them (uses_groups)
  const auto layout_groups = [&](int g, int64_t rows) {
    return global ? 1 : cfg.uses_groups() ? g : static_cast<int>(std::min<int64_t>(g, rows));
  };
  const Reorder ro = cfg.random_fp16 >= 0
                         ? Reorder::build_random_precision(train, cfg.random_fp16, ctx.seed)
                         : Reorder::build(train, layout_groups(cfg.user_groups, train.n_users),
                                          layout_groups(cfg.item_groups, train.n_items));
  RatingSet tr = ro.apply(train, nullptr);
  if (cfg.order == Order::kChunk) shuffle_for_chunk_order(&tr, ctx.seed);  // as the reference code does
  int64_t dropped = 0;
  RatingSet te;
  if (test) te = ro.apply(*test, &dropped);

  TrainResult res;
  RunReport& rep = res.report;
  int diverged = -1;  // the epoch (1-based) whose test RMSE was not finite
  rep.config = cfg;
  if (auto_cpu) {
    Context cpu_ctx = ctx;
    cpu_ctx.device = Device::kCpu;
    rep.device = describe_device(cpu_ctx) + "; auto: k, order or a study option not supported on cuda";
  } else {
    rep.device = describe_device(ctx);
  }
  rep.threads = ctx.resolved_threads();
  rep.seed = ctx.seed;
  rep.data.name = dataset_name;
  rep.data.n_users = train.n_users;
  rep.data.n_items = train.n_items;
  rep.data.n_train = train.nnz();
  rep.data.n_test = te.nnz();
  rep.data.test_dropped = dropped;
  rep.data.user_groups = ro.user_groups.size();
  rep.data.item_groups = ro.item_groups.size();

  detail::LegacyFitInput in{&ctx, &cfg, &tr, test ? &te : nullptr, &ro.user_old, &ro.item_old, ro.user_groups, ro.item_groups,
                      nullptr, {}};
  auto backend = dev == Device::kCuda ? detail::make_cuda_backend() : detail::make_cpu_backend();
  if (hooks) {  // checkpoint / resume (checkpoint.cc)
    if (!backend->checkpointing())
      throw InvalidArgument(std::string("checkpointing is not supported on the ") + backend->name() + " backend");
    if (const RunReport* old = hooks->resume_report) {
      rep.epochs = old->epochs;
      rep.switches = old->switches;
      rep.total_train_seconds = old->total_train_seconds;
      rep.total_eval_seconds = old->total_eval_seconds;
      rep.final_test_rmse = old->final_test_rmse;
    }
    in.resume = hooks->resume;
    if (hooks->epoch_done)  // a diverged state is not worth a checkpoint
      in.epoch_done = [&](int done, bool last) { if (diverged < 0) hooks->epoch_done(done, last, *backend, rep); };
  }
  rep.setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // divergence: a non-finite test RMSE stops training at that epoch (Diverged below)
  const EpochCallback watch = [&](const EpochRecord& e) {
    if (!std::isfinite(e.test_rmse)) {  // -1 (not evaluated) is finite
      diverged = e.epoch + 1;
      return false;
    }
    return on_epoch ? on_epoch(e) : true;
  };
  backend->fit(in, &rep, watch);
  const auto advice = "; lower lr or init_std (--lr, --init-std)";
  if (diverged >= 0)
    throw Diverged("training diverged: the test RMSE is not finite after epoch " + std::to_string(diverged) + advice);
  // a stop asked for after the last epoch interrupted nothing
  if (rep.interrupted && static_cast<int>(rep.epochs.size()) >= cfg.epochs) rep.interrupted = false;

  // undo the relabelling
  std::vector<float> P, Q;
  backend->factors(&P, &Q);
  Model& m = res.model;
  m.n_users = train.n_users;
  m.n_items = train.n_items;
  m.k = cfg.k;
  m.P.resize(P.size());
  m.Q.resize(Q.size());
  const size_t row = sizeof(float) * static_cast<size_t>(cfg.k);
  for (int64_t u = 0; u < m.n_users; ++u)
    std::memcpy(&m.P[static_cast<size_t>(ro.user_old[u]) * cfg.k], &P[static_cast<size_t>(u) * cfg.k], row);
  for (int64_t i = 0; i < m.n_items; ++i)
    std::memcpy(&m.Q[static_cast<size_t>(ro.item_old[i]) * cfg.k], &Q[static_cast<size_t>(i) * cfg.k], row);
  // without a test set (or with rows the test set never touches) divergence shows in the factors
  const auto finite = [](const std::vector<float>& v) {
    for (float x : v)
      if (!std::isfinite(x)) return false;
    return true;
  };
  if (!finite(m.P) || !finite(m.Q))
    throw Diverged("training diverged: the factors are not finite after epoch " + std::to_string(rep.epochs.size()) +
                   advice);
  return res;
}

}  // namespace mascot
