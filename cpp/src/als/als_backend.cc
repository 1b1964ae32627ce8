// ALS as a plug-in of the training driver (detail/backend.h, "How other backends plug in"): an
// AlsRun (als_run.h) behind the Backend interface, so that method als trains through the one
// epoch loop of trainer.cc like every SGD method.
//
// Data flow: prepare() takes the driver's relabelled ratings (ALS ignores the group tables:
// they only shape the relabelling, which orders each row's entries but changes no equation)
// and the original ids, from which the initial factors are drawn (detail::init_row, as the SGD
// backends do), so P and Q start as those of the ids the caller knows; the AlsRun then owns the
// CSR views and the factors on its device.  run_epoch() is one ALS iteration (plan.lr, the
// rounding and sampling seeds are unused: ALS has no learning rate, no stochastic rounding and
// never switches, so the driver never asks for gradient sums or widen_groups).  Checkpoints:
// "als_state" (epoch count, shapes, storage) and the factors as float32 "P32" / "Q32" (with
// als_factors=fp16 every value is a half, so writing them as float32 and rounding them back on
// import is exact).
#include <memory>
#include <string>

#include "als/als_run.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/binio.h"
#include "mascot/error.h"

namespace mascot::detail {
namespace {

class AlsBackend final : public Backend {
 public:
  explicit AlsBackend(Device device) : device_(device) {}

  const char* name() const override { return device_ == Device::kCuda ? "als-cuda" : "als-cpu"; }

  void prepare(const FitInput& in) override {
    cfg_ = als::run_config(*in.cfg);
    run_.prepare_on(cfg_, *in.ctx, device_, *in.train, in.test, in.user_old, in.item_old);
    run_.set_valid(in.valid);
  }

  EpochResult run_epoch(const EpochPlan&) override {
    EpochResult r;
    r.updates = run_.run_epoch();  // 2 nnz: every rating once per side
    ++epochs_;
    return r;
  }

  void widen_groups(char, const std::vector<int>&) override {
    throw InvalidArgument("als: the ALS backend has no FP16 groups to widen");  // switching kNone: never called
  }

  double eval_sse(EvalSet set) override { return set == EvalSet::kValid ? run_.valid_sse() : run_.test_sse(); }

  void export_state(StateWriter& out) const override {
    BinWriter w;
    w.str("als");
    w.pod(static_cast<int32_t>(cfg_.k));
    w.pod(run_.n_users());
    w.pod(run_.n_items());
    w.pod(static_cast<uint8_t>(cfg_.factors_half ? 1 : 0));
    w.pod(static_cast<int32_t>(epochs_));
    out.blob("als_state", w.bytes());
    std::vector<float> P, Q;
    run_.factors(&P, &Q);
    out.matrix("P32", P.data(), run_.n_users(), cfg_.k, 4);
    out.matrix("Q32", Q.data(), run_.n_items(), cfg_.k, 4);
  }

  void import_state(StateReader& in, int epochs_done) override {
    const std::string blob = in.blob("als_state");
    BinReader r(blob, in.where("als_state"));
    if (r.str() != "als") r.fail("not an ALS backend state");
    const int32_t k = r.pod<int32_t>();
    if (k != cfg_.k) r.fail("saved with k=" + std::to_string(k) + ", this run has k=" + std::to_string(cfg_.k));
    if (r.pod<int64_t>() != run_.n_users() || r.pod<int64_t>() != run_.n_items())
      r.fail("saved for other data (user/item counts differ)");
    if (r.pod<uint8_t>() != (cfg_.factors_half ? 1 : 0)) r.fail("saved with another factor storage (als_factors)");
    const int32_t done = r.pod<int32_t>();
    r.expect_done();
    if (done != epochs_done)
      r.fail("corrupted (epoch count " + std::to_string(done) + ", the run state has " + std::to_string(epochs_done) +
             ")");
    std::vector<float> P(static_cast<size_t>(run_.n_users()) * cfg_.k), Q(static_cast<size_t>(run_.n_items()) * cfg_.k);
    in.matrix("P32", P.data(), run_.n_users(), cfg_.k, 4);
    in.matrix("Q32", Q.data(), run_.n_items(), cfg_.k, 4);
    run_.set_factors(P, Q);
    epochs_ = done;
  }

  void factors(std::vector<float>* P, std::vector<float>* Q) const override { run_.factors(P, Q); }

 private:
  Device device_;
  als::RunConfig cfg_;
  als::AlsRun run_;
  int epochs_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_als_backend(Device device) { return std::make_unique<AlsBackend>(device); }

}  // namespace mascot::detail
