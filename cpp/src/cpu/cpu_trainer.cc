// CPU backend: Hogwild SGD over the Schedule's visiting order with the ISA-dispatched
// kernels.  Owns P and Q (relabelled order) in the method's storage type for the whole fit.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "cpu/kernels.h"
#include "cpu/schedule.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/half.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"

namespace mascot {
namespace cpu {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// 64-byte aligned, uninitialised buffer of a factor matrix.
struct Buffer {
  void* p = nullptr;
  size_t bytes = 0;
  Buffer() = default;
  explicit Buffer(size_t n) : bytes(n) {
    const size_t padded = (n + 63) / 64 * 64;
    p = std::aligned_alloc(64, padded == 0 ? 64 : padded);
    if (!p) throw std::bad_alloc();
  }
  Buffer(Buffer&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
  Buffer& operator=(Buffer&& o) noexcept { std::swap(p, o.p); std::swap(bytes, o.bytes); return *this; }
  ~Buffer() { std::free(p); }
};

class CpuBackend final : public detail::Backend {
 public:
  void fit(detail::FitInput& in, RunReport* report, const EpochCallback& on_epoch) override {
    const TrainConfig& cfg = *in.cfg;
    const int threads = in.ctx->resolved_threads();
    const KernelTable& kt = kernels();
    k_ = cfg.k;
    m_ = in.train->n_users;
    n_ = in.train->n_items;
    half_ = cfg.method != Method::kFp32;
    const size_t es = half_ ? sizeof(uint16_t) : sizeof(float);
    P_ = Buffer(static_cast<size_t>(m_) * k_ * es);
    Q_ = Buffer(static_cast<size_t>(n_) * k_ * es);
    init(P_, m_, *in.user_old, detail::kStreamInitP, cfg, in.ctx->seed, threads);
    init(Q_, n_, *in.item_old, detail::kStreamInitQ, cfg, in.ctx->seed, threads);

    SgdFn sgd = cfg.method == Method::kFp32 ? kt.sgd_fp32 : cfg.method == Method::kFp16 ? kt.sgd_fp16 : kt.sgd_n1;
    SseFn sse = half_ ? kt.sse_f16 : kt.sse_f32;

    Schedule sched(*in.train, cfg.order, threads, static_cast<size_t>(k_) * es, in.ctx->seed);
    std::vector<Rec> test_recs;
    if (in.test && in.test->nnz() > 0) test_recs = to_records(*in.test);

    int64_t updates = 0;
    for (int e = 0; e < cfg.epochs; ++e) {
      EpochRecord rec;
      rec.epoch = e;
      const SgdParams prm{k_, cfg.lr_at(e), cfg.lambda_p, cfg.lambda_q};
      rec.lr = prm.lr;
      const auto t0 = Clock::now();
      updates += sched.run_epoch(e, [&](int, const Rec* r, size_t c) { sgd(r, c, P_.p, Q_.p, prm); });
      rec.train_seconds = seconds_since(t0);
      report->total_train_seconds += rec.train_seconds;
      if (!test_recs.empty() && (cfg.eval_every_epoch || e == cfg.epochs - 1)) {
        const auto t1 = Clock::now();
        std::vector<double> part(static_cast<size_t>(threads) * 8, 0.0);  // 64 B apart
        Schedule::parallel_for(test_recs, threads, [&](int tid, const Rec* r, size_t c) {
          part[static_cast<size_t>(tid) * 8] += sse(r, c, P_.p, Q_.p, k_);
        });
        double s = 0;
        for (double x : part) s += x;
        rec.test_rmse = std::sqrt(s / static_cast<double>(test_recs.size()));
        rec.eval_seconds = seconds_since(t1);
        report->total_eval_seconds += rec.eval_seconds;
        report->final_test_rmse = rec.test_rmse;
      }
      rec.fp32_user_groups = in.user_groups.count_fp32();
      rec.fp32_item_groups = in.item_groups.count_fp32();
      report->epochs.push_back(rec);
      if (on_epoch && !on_epoch(report->epochs.back())) {
        report->interrupted = true;
        break;
      }
    }
    report->updates_per_second =
        report->total_train_seconds > 0 ? static_cast<double>(updates) / report->total_train_seconds : 0.0;
  }

  void factors(std::vector<float>* P, std::vector<float>* Q) const override {
    to_float(P_, m_, P);
    to_float(Q_, n_, Q);
  }

 private:
  void init(Buffer& buf, int64_t rows, const std::vector<int32_t>& old_id, uint64_t stream, const TrainConfig& cfg,
            uint64_t seed, int threads) {
    (void)threads;  // init is a few ms even for Yahoo-sized models; kept serial
    std::vector<float> row(static_cast<size_t>(k_));
    for (int64_t r = 0; r < rows; ++r) {
      detail::init_row(row.data(), k_, cfg.init_std, seed, stream, old_id[r]);
      if (half_) {
        uint16_t* d = static_cast<uint16_t*>(buf.p) + static_cast<size_t>(r) * k_;
        for (int j = 0; j < k_; ++j) d[j] = detail::float_to_half_rn(row[j]);
      } else {
        std::memcpy(static_cast<float*>(buf.p) + static_cast<size_t>(r) * k_, row.data(), sizeof(float) * k_);
      }
    }
  }

  void to_float(const Buffer& buf, int64_t rows, std::vector<float>* out) const {
    const size_t n = static_cast<size_t>(rows) * k_;
    out->resize(n);
    if (half_) {
      const uint16_t* s = static_cast<const uint16_t*>(buf.p);
      for (size_t x = 0; x < n; ++x) (*out)[x] = detail::half_to_float(s[x]);
    } else {
      std::memcpy(out->data(), buf.p, n * sizeof(float));
    }
  }

  int k_ = 0;
  int64_t m_ = 0, n_ = 0;
  bool half_ = false;
  Buffer P_, Q_;
};

}  // namespace
}  // namespace cpu

namespace detail {
std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

std::vector<int64_t> cpu_visit_order(const RatingSet& train, Order order, int epochs, int threads, int k, bool half,
                                     uint64_t seed) {
  MASCOT_CHECK_ARG(train.nnz() < (1 << 24), "cpu_visit_order needs fewer than 2^24 ratings");
  RatingSet tagged = train;  // rating value = position, exact in float below 2^24
  for (int64_t t = 0; t < tagged.nnz(); ++t) tagged.ratings[t] = static_cast<float>(t);
  const size_t es = half ? sizeof(uint16_t) : sizeof(float);
  cpu::Schedule sched(tagged, order, threads, static_cast<size_t>(k) * es, seed);
  std::vector<int64_t> out;
  std::mutex mu;
  for (int e = 0; e < epochs; ++e)
    sched.run_epoch(e, [&](int, const cpu::Rec* r, size_t c) {
      std::lock_guard<std::mutex> lock(mu);
      for (size_t x = 0; x < c; ++x) out.push_back(static_cast<int64_t>(r[x].r));
    });
  return out;
}
}  // namespace detail

}  // namespace mascot
