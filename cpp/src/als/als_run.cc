// AlsRun (als_run.h) and the CPU store.
#include "als/als_run.h"

#include <cmath>
#include <string>

#include "als/als.h"
#include "mascot/detail/backend.h"  // detail::init_row
#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace mascot {
namespace als {

namespace {

class CpuStore final : public Store {
 public:
  explicit CpuStore(int threads) : threads_(threads) {}
  const char* name() const override { return "cpu"; }
  void load(const RunConfig& cfg, SideCsr users, SideCsr items, const std::vector<float>& P,
            const std::vector<float>& Q) override {
    cfg_ = cfg;
    U_ = std::move(users);
    I_ = std::move(items);
    P_.resize(U_.rows, cfg.k, cfg.factors_half);
    Q_.resize(I_.rows, cfg.k, cfg.factors_half);
    set(P, Q);
  }
  void iterate() override {
    solve_side(cfg_.side(true), U_, Q_, &P_, threads_);
    solve_side(cfg_.side(false), I_, P_, &Q_, threads_);
  }
  void get(std::vector<float>* P, std::vector<float>* Q) const override {
    *P = P_.to_f32();
    *Q = Q_.to_f32();
  }
  void set(const std::vector<float>& P, const std::vector<float>& Q) override {
    P_.assign(P.data());
    Q_.assign(Q.data());
  }

 private:
  int threads_;
  RunConfig cfg_;
  SideCsr U_, I_;
  Factors P_, Q_;
};

// Row r is entity old[r] (the driver's relabelling; none: r itself), so the initial factors are
// those of the ids the caller knows.
std::vector<float> initial(int64_t rows, int k, float std, uint64_t seed, uint64_t stream,
                           const std::vector<int32_t>* old) {
  std::vector<float> v(static_cast<size_t>(rows) * k);
  for (int64_t r = 0; r < rows; ++r)
    detail::init_row(&v[static_cast<size_t>(r) * k], k, std, seed, stream, old ? (*old)[static_cast<size_t>(r)] : r);
  return v;
}

}  // namespace

std::unique_ptr<Store> make_cpu_store(int threads) { return std::make_unique<CpuStore>(threads); }

void validate(const RunConfig& c) {
  MASCOT_CHECK_ARG(c.k >= 1 && c.k <= 4096, "k must be between 1 and 4096 (got " + std::to_string(c.k) + ")");
  MASCOT_CHECK_ARG(std::isfinite(c.lambda_p) && c.lambda_p > 0.0f,
                   "lambda_p (ALS regularization of users) must be > 0 (got " + std::to_string(c.lambda_p) + ")");
  MASCOT_CHECK_ARG(std::isfinite(c.lambda_q) && c.lambda_q > 0.0f,
                   "lambda_q (ALS regularization of items) must be > 0 (got " + std::to_string(c.lambda_q) + ")");
  MASCOT_CHECK_ARG(std::isfinite(c.alpha) && c.alpha > 0.0f, "alpha must be > 0 (got " + std::to_string(c.alpha) + ")");
  MASCOT_CHECK_ARG(c.cg_steps >= 1 && c.cg_steps <= 1024,
                   "cg_steps must be between 1 and 1024 (got " + std::to_string(c.cg_steps) + ")");
  MASCOT_CHECK_ARG(std::isfinite(c.init_std) && c.init_std >= 0.0f,
                   "init_std must be >= 0 (got " + std::to_string(c.init_std) + ")");
}

void check_ratings(const RunConfig& cfg, const RatingSet& train, const std::string& what) {
  train.validate(what);  // lengths, id ranges, finite values
  if (!cfg.implicit) return;
  for (int64_t t = 0; t < train.nnz(); ++t)
    if (train.ratings[t] < 0.0f)
      throw InvalidArgument(what + ": implicit feedback needs confidences >= 0, got " +
                            std::to_string(train.ratings[t]) + " at entry " + std::to_string(t) + " (user " +
                            std::to_string(train.users[t]) + ", item " + std::to_string(train.items[t]) + ")");
}

RunConfig run_config(const TrainConfig& c) {
  const CompetingParams& a = c.competing;
  RunConfig r;
  r.k = c.k;
  r.lambda_p = c.lambda_p;
  r.lambda_q = c.lambda_q;
  r.implicit = a.implicit;
  r.alpha = a.alpha;
  r.weighted = a.als_regularization == AlsRegularization::kWeighted ||
               (a.als_regularization == AlsRegularization::kAuto && !a.implicit);
  r.solver = a.als_solver == AlsSolver::kCholesky ? Solver::kCholesky : Solver::kCg;
  r.cg_steps = a.cg_steps;
  r.hermitian_half = a.als_hermitian == AlsPrecision::kFp16;
  r.factors_half = a.als_factors == AlsPrecision::kFp16;
  r.cg_form = a.cg_form == AlsCgForm::kHermitian    ? Options::CgForm::kHermitian
              : a.cg_form == AlsCgForm::kMatrixFree ? Options::CgForm::kMatrixFree
                                                    : Options::CgForm::kAuto;
  r.init_std = c.init_std;
  return r;
}

void AlsRun::prepare(const RunConfig& cfg, const Context& ctx, const RatingSet& train, const RatingSet* test) {
  ctx.validate();
  Device dev = ctx.resolved_device();
  if (dev == Device::kCuda && ctx.device == Device::kAuto && cfg.k > 256) dev = Device::kCpu;  // the kernels' limit
  prepare_on(cfg, ctx, dev, train, test, nullptr, nullptr);
}

void AlsRun::prepare_on(const RunConfig& cfg, const Context& ctx, Device dev, const RatingSet& train,
                        const RatingSet* test, const std::vector<int32_t>* user_old,
                        const std::vector<int32_t>* item_old) {
  validate(cfg);
  check_ratings(cfg, train, "training set");
  MASCOT_CHECK_ARG(train.nnz() > 0, "training set has no ratings");
  if (test) test->validate("test set");
  cfg_ = cfg;
  if (dev == Device::kCuda) {
    store_ = make_cuda_store();
    device_ = "cuda";
  } else {
    store_ = make_cpu_store(ctx.resolved_threads());
    Context c = ctx;
    c.device = Device::kCpu;
    device_ = describe_device(c);
  }
  n_users_ = train.n_users;
  n_items_ = train.n_items;
  nnz_ = train.nnz();
  const bool drop = cfg.implicit;  // a zero strength is no interaction
  SideCsr U = build_csr(train.n_users, train.n_items, train.users.data(), train.items.data(), train.ratings.data(),
                        train.nnz(), drop);
  SideCsr I = build_csr(train.n_items, train.n_users, train.items.data(), train.users.data(), train.ratings.data(),
                        train.nnz(), drop);
  MASCOT_CHECK_ARG(U.indptr.back() > 0,
                   "training set has no ratings other than zero (implicit: a zero is no interaction)");
  store_->load(cfg, std::move(U), std::move(I),
               initial(n_users_, cfg.k, cfg.init_std, ctx.seed, detail::kStreamInitP, user_old),
               initial(n_items_, cfg.k, cfg.init_std, ctx.seed, detail::kStreamInitQ, item_old));
  test_ = keep_pairs(test);
  valid_ = Pairs();
}

AlsRun::Pairs AlsRun::keep_pairs(const RatingSet* set) const {
  Pairs out;
  if (set)
    for (int64_t t = 0; t < set->nnz(); ++t)
      if (set->users[t] < n_users_ && set->items[t] < n_items_) {  // ids the model knows
        out.u.push_back(set->users[t]);
        out.i.push_back(set->items[t]);
        out.r.push_back(cfg_.implicit ? 1.0f : set->ratings[t]);
      }
  return out;
}

void AlsRun::set_valid(const RatingSet* valid) { valid_ = keep_pairs(valid); }

int64_t AlsRun::run_epoch() {
  MASCOT_CHECK_ARG(store_ != nullptr, "ALS: run_epoch before prepare");
  store_->iterate();
  return 2 * nnz_;
}

double AlsRun::pairs_sse(const Pairs& pairs) const {
  if (pairs.r.empty()) return 0.0;
  std::vector<float> P, Q;
  store_->get(&P, &Q);
  const int k = cfg_.k;
  double s = 0.0;
  for (size_t t = 0; t < pairs.r.size(); ++t) {
    const float* p = &P[static_cast<size_t>(pairs.u[t]) * k];
    const float* q = &Q[static_cast<size_t>(pairs.i[t]) * k];
    float d = 0.0f;
    for (int j = 0; j < k; ++j) d += p[j] * q[j];
    const double e = static_cast<double>(d) - pairs.r[t];
    s += e * e;
  }
  return s;
}

void AlsRun::set_factors(const std::vector<float>& P, const std::vector<float>& Q) {
  MASCOT_CHECK_ARG(store_ != nullptr, "ALS: set_factors before prepare");
  MASCOT_CHECK_ARG(
      P.size() == static_cast<size_t>(n_users_) * cfg_.k && Q.size() == static_cast<size_t>(n_items_) * cfg_.k,
      "ALS: the factors' shapes do not match the data");
  store_->set(P, Q);
}

}  // namespace als
}  // namespace mascot
