// CPU backend (a plug-in of the driver, detail/backend.h): Hogwild SGD over the Schedule's
// visiting order with the ISA-dispatched kernels.  Owns P and Q (relabelled order) for the
// run, in the storage the driver names (FitInput::storage, from methods.h):
//   kFp32                -> FP32 rows (fp32)
//   kFp16                -> FP16 rows (fp16: half arithmetic; mascot-n1: FP32 arithmetic)
//   kPerGroup            -> FP16 rows; a group's rows move to FP32 storage when the driver
//                           switches it (widen_groups); also the study options' path
//   kFp32Master          -> FP32 master rows, quantised by the method (cpu/competing.cc)
// Schedule adagrad: one FP32 state G per user and item row (relabelled order, ada_u_ / ada_i_),
// updated by the kernels with the rows (detail/sgd.h) and checkpointed beside them.
// A sampled epoch (EpochPlan::sample) adds each thread's sampled gradients into its own
// accumulators, reduced in thread order into the GradSums the driver turns into q-errors.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "cpu/competing.h"
#include "cpu/kernels.h"
#include "cpu/schedule.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/half.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/sgd.h"
#include "mascot/error.h"
#include "mascot/methods.h"
#include "mascot/reorder.h"

namespace mascot {
namespace cpu {
namespace {

/// 64-byte aligned, uninitialised buffer of a factor matrix.  (2 MiB pages were tried:
/// no measurable difference on these machines, see docs/benchmarks.md.)
struct Buffer {
  void* p = nullptr;
  size_t bytes = 0;
  Buffer() = default;
  explicit Buffer(size_t n) : bytes(n) {
    const size_t padded = std::max<size_t>(64, (n + 63) / 64 * 64);
    p = std::aligned_alloc(64, padded);
    if (!p) throw std::bad_alloc();
  }
  Buffer(Buffer&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(p, o.p);
    std::swap(bytes, o.bytes);
    return *this;
  }
  ~Buffer() { std::free(p); }
  float* f32() const { return static_cast<float*>(p); }
  uint16_t* f16() const { return static_cast<uint16_t*>(p); }
};

/// Per-thread gradient accumulators of one side (q-error sampling; MixedSide says why the
/// vector sums are float).
struct GradAcc {
  std::vector<float> sum;
  std::vector<double> sq, nsum;
  std::vector<int64_t> n;
  void reset(int groups, int k) {
    sum.assign(static_cast<size_t>(groups) * k, 0.0f);
    sq.assign(static_cast<size_t>(groups), 0.0);
    nsum.assign(static_cast<size_t>(groups), 0.0);
    n.assign(static_cast<size_t>(groups), 0);
  }
};

/// The threads' partials of one side reduced in thread order (deterministic), in double.
detail::GradSums reduce(const std::vector<GradAcc>& acc, int groups, int k, bool norms) {
  detail::GradSums s;
  s.sum.assign(static_cast<size_t>(groups) * k, 0.0);
  s.sq.assign(static_cast<size_t>(groups), 0.0);
  s.n.assign(static_cast<size_t>(groups), 0);
  std::vector<double> nsum(static_cast<size_t>(groups), 0.0);
  for (const GradAcc& a : acc) {
    for (size_t x = 0; x < s.sum.size(); ++x) s.sum[x] += a.sum[x];
    for (size_t g = 0; g < s.sq.size(); ++g) {
      s.sq[g] += a.sq[g];
      nsum[g] += a.nsum[g];
      s.n[g] += a.n[g];
    }
  }
  if (norms) s.nsum = std::move(nsum);
  return s;
}

class CpuBackend final : public detail::Backend {
 public:
  const char* name() const override { return "cpu"; }
  Order resolved_order(Order requested) const override { return sched_ ? sched_->order() : requested; }

  void prepare(const detail::FitInput& in) override {
    cfg_ = *in.cfg;
    threads_ = in.ctx->resolved_threads();
    seed_ = in.ctx->seed;
    k_ = cfg_.k;
    m_ = in.train->n_users;
    n_ = in.train->n_items;
    storage_ = in.storage;
    naive_ = cfg_.method == Method::kMascotNaive;
    ug_ = *in.user_groups;
    ig_ = *in.item_groups;
    const KernelTable& kt = kernels();
    init(*in.user_old, *in.item_old, cfg_.init_std, seed_);
    if (cfg_.schedule == LrSchedule::kAdagrad) {
      ada_u_.assign(static_cast<size_t>(m_), detail::kAdagradInit);
      ada_i_.assign(static_cast<size_t>(n_), detail::kAdagradInit);
    }
    if (storage_ == Storage::kFp32Master) competing_ = make_competing_method(cfg_, threads_, seed_);
    sgd_ = storage_ == Storage::kFp32                                   ? kt.sgd_fp32
           : method_traits(cfg_.method).arithmetic == Arithmetic::kFp16 ? kt.sgd_fp16
                                                                        : kt.sgd_n1;
    // the blocked grid is sized for the rows as they start (FP32 rows, or every group FP32)
    const bool all_f32 = f32_rows() || (ug_.count_fp32() == ug_.size() && ig_.count_fp32() == ig_.size());
    const size_t row_bytes = static_cast<size_t>(k_) * (all_f32 ? sizeof(float) : sizeof(uint16_t));
    // the schedule takes the ratings over (one copy of them)
    sched_ = std::make_unique<Schedule>(std::move(*in.train), cfg_.order, threads_, row_bytes, seed_);
    if (in.test && in.test->nnz() > 0) test_recs_ = to_records(*in.test);
    if (in.test) *in.test = RatingSet();  // the records are the copy kept
    if (in.valid && in.valid->nnz() > 0) valid_recs_ = to_records(*in.valid);
    if (in.valid) *in.valid = RatingSet();
    uacc_.resize(static_cast<size_t>(threads_));
    iacc_.resize(static_cast<size_t>(threads_));
  }

  detail::EpochResult run_epoch(const detail::EpochPlan& plan) override {
    const KernelTable& kt = kernels();
    const int e = plan.epoch;
    detail::EpochResult res;
    SgdParams prm{k_, plan.lr, cfg_.lambda_p, cfg_.lambda_q};
    prm.stochastic = cfg_.rounding == Rounding::kStochastic;
    prm.round_seed = plan.round_seed;
    if (!ada_u_.empty()) {
      prm.ada_u = ada_u_.data();
      prm.ada_i = ada_i_.data();
    }
    if (storage_ == Storage::kFp32Master) {
      float* P = P32_.f32();
      float* Q = Q32_.f32();
      CompetingMethod* cm = competing_.get();
      cm->begin_epoch(e, P, m_, Q, n_);
      res.updates = sched_->run_epoch(e, [&](int tid, const Rec* r, size_t c) { cm->sgd(tid, r, c, P, Q, prm); });
      cm->end_epoch(e, P, m_, Q, n_, &res.method_json);
    } else if (storage_ != Storage::kPerGroup) {
      void* P = f32_rows() ? P32_.p : P16_.p;
      void* Q = f32_rows() ? Q32_.p : Q16_.p;
      const SgdFn sgd = sgd_;
      res.updates = sched_->run_epoch(e, [&](int, const Rec* r, size_t c) { sgd(r, c, P, Q, prm); });
    } else if (!plan.sample && ug_.count_fp32() == 0 && ig_.count_fp32() == 0) {
      // every row still FP16 and nothing to sample: the plain m-quantization kernel
      res.updates = sched_->run_epoch(e, [&](int, const Rec* r, size_t c) { kt.sgd_n1(r, c, P16_.p, Q16_.p, prm); });
    } else {
      const MixedParams mp{prm, naive_, plan.sample_seed, plan.sample_below};
      // one view per side for this epoch; each thread's copy gets its own accumulators
      std::vector<MixedSide> us(threads_, side(P32_, P16_, ug_, &ubits_)), is(threads_, side(Q32_, Q16_, ig_, &ibits_));
      if (plan.sample) {
        for (int t = 0; t < threads_; ++t) {
          uacc_[t].reset(ug_.size(), k_);
          iacc_[t].reset(ig_.size(), k_);
          attach(&us[t], &uacc_[t], plan.grad_norms);
          attach(&is[t], &iacc_[t], plan.grad_norms);
        }
      }
      res.updates =
          sched_->run_epoch(e, [&](int tid, const Rec* r, size_t c) { kt.sgd_mixed(r, c, us[tid], is[tid], mp); });
      if (plan.sample) {
        res.user = reduce(uacc_, ug_.size(), k_, plan.grad_norms);
        res.item = reduce(iacc_, ig_.size(), k_, plan.grad_norms);
      }
    }
    ++epochs_run_;
    return res;
  }

  // Moves the groups' rows from FP16 to FP32 storage (exact); allocates the FP32 side lazily.
  void widen_groups(char side_tag, const std::vector<int>& groups) override {
    const bool user = side_tag == 'u';
    Buffer& b32 = user ? P32_ : Q32_;
    const Buffer& b16 = user ? P16_ : Q16_;
    GroupTable& t = user ? ug_ : ig_;
    if (!b32.p) {
      b32 = Buffer(static_cast<size_t>(user ? m_ : n_) * k_ * sizeof(float));
      std::memset(b32.p, 0, b32.bytes);  // rows of FP16 groups are never read; zeroed for checkpoints
    }
    for (int g : groups) {
      const size_t a = static_cast<size_t>(t.start[g]) * k_, b = static_cast<size_t>(t.start[g + 1]) * k_;
      for (size_t x = a; x < b; ++x) b32.f32()[x] = detail::half_to_float(b16.f16()[x]);
      t.precision[g] = Precision::kFp32;
    }
  }

  double eval_sse(detail::EvalSet set) override {
    const KernelTable& kt = kernels();
    std::vector<double> part(static_cast<size_t>(threads_) * 8, 0.0);  // 64 B apart
    const bool mixed = storage_ == Storage::kPerGroup;
    MixedSide us, is;
    if (mixed) {
      us = side(P32_, P16_, ug_, &ubits_);
      is = side(Q32_, Q16_, ig_, &ibits_);
    }
    const std::vector<Rec>& recs = set == detail::EvalSet::kValid ? valid_recs_ : test_recs_;
    Schedule::parallel_for(recs, threads_, [&](int tid, const Rec* r, size_t c) {
      double s;
      if (mixed)
        s = kt.sse_mixed(r, c, us, is, k_, naive_);
      else if (P32_.p)
        s = kt.sse_f32(r, c, P32_.p, Q32_.p, k_);
      else
        s = kt.sse_f16(r, c, P16_.p, Q16_.p, k_);
      part[static_cast<size_t>(tid) * 8] += s;
    });
    double s = 0;
    for (double x : part) s += x;
    return s;
  }

  // the ratings are held once, here: freed before the driver's float32 copies of the factors
  void end_training() override {
    sched_.reset();
    std::vector<Rec>().swap(test_recs_);
    std::vector<Rec>().swap(valid_recs_);
  }

  void factors(std::vector<float>* P, std::vector<float>* Q) const override {
    to_float(P32_, P16_, m_, ug_, P);
    to_float(Q32_, Q16_, n_, ig_, Q);
  }

  // Checkpoint state: "cpu_state" blob (storage, shapes, threads, completed epochs, the competing
  // method's blob, which factor buffers exist) + the factor buffers in their storage, and with
  // schedule adagrad the rows' states "GU", "GI" (m x 1, n x 1 float32; `have` bits 16, 32).  The group
  // precisions and q-error baselines are the driver's ("driver_state").
  void export_state(detail::StateWriter& out) const override {
    detail::BinWriter w;
    w.str("cpu");
    w.pod(static_cast<int32_t>(storage_));
    w.pod(static_cast<int32_t>(k_));
    w.pod(m_);
    w.pod(n_);
    w.pod(static_cast<int32_t>(threads_));
    w.pod(static_cast<int32_t>(epochs_run_));
    w.str(competing_ ? competing_->export_state() : std::string());
    const uint8_t have =
        (P32_.p ? 1 : 0) | (Q32_.p ? 2 : 0) | (P16_.p ? 4 : 0) | (Q16_.p ? 8 : 0) | (ada_u_.empty() ? 0 : 16 | 32);
    w.pod(have);
    out.blob("cpu_state", w.bytes());
    if (!ada_u_.empty()) {
      out.matrix("GU", ada_u_.data(), m_, 1, 4);
      out.matrix("GI", ada_i_.data(), n_, 1, 4);
    }
    if (P32_.p) out.matrix("P32", P32_.p, m_, k_, 4);
    if (Q32_.p) out.matrix("Q32", Q32_.p, n_, k_, 4);
    if (P16_.p) out.matrix("P16", P16_.p, m_, k_, 2);
    if (Q16_.p) out.matrix("Q16", Q16_.p, n_, k_, 2);
  }

  void import_state(detail::StateReader& in, int epochs_done) override {
    const std::string blob = in.blob("cpu_state");
    detail::BinReader r(blob, in.where("cpu_state"));
    if (r.str() != "cpu") r.fail("not a cpu backend state");
    if (r.pod<int32_t>() != static_cast<int32_t>(storage_)) r.fail("saved with another method's storage");
    const int32_t k = r.pod<int32_t>();
    if (k != k_) r.fail("saved with k=" + std::to_string(k) + ", this run has k=" + std::to_string(k_));
    if (r.pod<int64_t>() != m_ || r.pod<int64_t>() != n_) r.fail("saved for other data (user/item counts differ)");
    const int32_t threads = r.pod<int32_t>();
    if (threads != threads_)
      r.fail("saved with " + std::to_string(threads) + " threads, this run has " + std::to_string(threads_));
    const int32_t done = r.pod<int32_t>();
    const std::string comp = r.str();
    const uint8_t have = r.pod<uint8_t>();
    r.expect_done();
    // the factor files this storage needs: FP32 rows where some group is FP32 (after the replayed
    // switches), FP16 rows where some group is FP16
    uint8_t need = 0;
    if (f32_rows()) {
      need = 3;
    } else {
      const bool per_group = storage_ == Storage::kPerGroup;
      need |= per_group && ug_.count_fp32() > 0 ? 1 : 0;
      need |= per_group && ig_.count_fp32() > 0 ? 2 : 0;
      need |= !per_group || ug_.count_fp32() < ug_.size() ? 4 : 0;
      need |= !per_group || ig_.count_fp32() < ig_.size() ? 8 : 0;
    }
    if ((have & need) != need) r.fail("lacks factor matrices this storage needs");
    if (((have & 48) != 0) != !ada_u_.empty())
      r.fail(ada_u_.empty() ? "holds adagrad learning-rate states, this run has schedule decay"
                            : "lacks the adagrad learning-rate states this run's schedule needs");
    if (competing_) {
      try {
        competing_->import_state(comp);
      } catch (const InvalidArgument& e) {
        r.fail(e.what());
      }
    } else if (!comp.empty()) {
      r.fail("holds a competing method's state, this run has none");
    }
    // the backend's epoch count must be the driver's, else epochs repeat (fuzz finding)
    if (done != epochs_done)
      r.fail("corrupted (epoch count " + std::to_string(done) + ", the run state has " + std::to_string(epochs_done) +
             ")");
    auto load = [&](Buffer* b, const char* name, int64_t rows, size_t elem, bool want) {
      if (!want) return;
      if (!b->p) *b = Buffer(static_cast<size_t>(rows) * k_ * elem);
      in.matrix(name, b->p, rows, k_, static_cast<int>(elem));
    };
    load(&P32_, "P32", m_, 4, have & 1);
    load(&Q32_, "Q32", n_, 4, have & 2);
    load(&P16_, "P16", m_, 2, have & 4);
    load(&Q16_, "Q16", n_, 2, have & 8);
    if (!ada_u_.empty()) {
      in.matrix("GU", ada_u_.data(), m_, 1, 4);
      in.matrix("GI", ada_i_.data(), n_, 1, 4);
    }
    sched_->replay(done);  // the visiting order carries state from epoch to epoch
    epochs_run_ = done;
  }

 private:
  bool f32_rows() const { return storage_ == Storage::kFp32 || storage_ == Storage::kFp32Master; }

  // Allocates and fills P and Q with the seeded initial values.  Single-storage methods get one
  // buffer per side; the per-group path gets an FP16 buffer when some group is FP16 and an FP32
  // one when some group starts FP32 (random_fp16, fp32 with grad_stats), each row written
  // exactly once in its group's precision.
  void init(const std::vector<int32_t>& user_old, const std::vector<int32_t>& item_old, float std, uint64_t seed) {
    const bool f32 = f32_rows();
    auto fill = [&](Buffer* b32, Buffer* b16, int64_t rows, const GroupTable& t, const std::vector<int32_t>& old,
                    uint64_t stream) {
      const size_t n = static_cast<size_t>(rows) * k_;
      const bool mixed = storage_ == Storage::kPerGroup;
      const int nf32 = mixed ? t.count_fp32() : 0;
      if (f32 || nf32 > 0) *b32 = Buffer(n * sizeof(float));
      if (!f32 && nf32 < t.size()) *b16 = Buffer(n * sizeof(uint16_t));
      std::vector<float> row(static_cast<size_t>(k_));
      for (int g = 0; g < t.size(); ++g) {
        const bool g32 = f32 || (mixed && t.precision[g] == Precision::kFp32);
        for (int64_t r = t.start[g]; r < t.start[g + 1]; ++r) {
          detail::init_row(row.data(), k_, std, seed, stream, old[r]);
          if (g32) {
            std::memcpy(b32->f32() + static_cast<size_t>(r) * k_, row.data(), sizeof(float) * k_);
          } else {
            uint16_t* d = b16->f16() + static_cast<size_t>(r) * k_;
            for (int j = 0; j < k_; ++j) d[j] = detail::float_to_half_rn(row[j]);
          }
        }
      }
    };
    fill(&P32_, &P16_, m_, ug_, user_old, detail::kStreamInitP);
    fill(&Q32_, &Q16_, n_, ig_, item_old, detail::kStreamInitQ);
  }

  /// The kernels' view of one side; `bits` owns MixedSide::fp32_bits for the epoch.
  static MixedSide side(const Buffer& b32, const Buffer& b16, const GroupTable& t, std::vector<uint64_t>* bits) {
    MixedSide s;
    s.fp32 = reinterpret_cast<const uint8_t*>(t.precision.data());
    encode_fp32_bits(t.start.data(), s.fp32, t.size(), bits);
    s.fp32_bits = bits->data();
    s.f32 = b32.f32();
    s.f16 = b16.f16();
    s.start = t.start.data();
    s.groups = t.size();
    return s;
  }
  static void attach(MixedSide* s, GradAcc* a, bool norms) {
    s->grad_sum = a->sum.data();
    s->grad_sq = a->sq.data();
    s->grad_n = a->n.data();
    s->grad_nsum = norms ? a->nsum.data() : nullptr;
  }

  void to_float(const Buffer& b32, const Buffer& b16, int64_t rows, const GroupTable& t,
                std::vector<float>* out) const {
    const size_t n = static_cast<size_t>(rows) * k_;
    out->resize(n);
    if (f32_rows()) {
      std::memcpy(out->data(), b32.p, n * sizeof(float));
      return;
    }
    for (int g = 0; g < t.size(); ++g) {
      const size_t a = static_cast<size_t>(t.start[g]) * k_, b = static_cast<size_t>(t.start[g + 1]) * k_;
      const bool f32 = storage_ == Storage::kPerGroup && t.precision[g] == Precision::kFp32;
      for (size_t x = a; x < b; ++x) (*out)[x] = f32 ? b32.f32()[x] : detail::half_to_float(b16.f16()[x]);
    }
  }

  TrainConfig cfg_;
  int threads_ = 1;
  uint64_t seed_ = 0;
  int k_ = 0;
  int64_t m_ = 0, n_ = 0;
  Storage storage_ = Storage::kFp32;
  bool naive_ = false;
  SgdFn sgd_ = nullptr;  // the single-storage kernel
  GroupTable ug_, ig_;   // this backend's copy: precisions change by widen_groups
  Buffer P32_, Q32_, P16_, Q16_;
  std::unique_ptr<Schedule> sched_;
  std::vector<Rec> test_recs_, valid_recs_;
  std::unique_ptr<CompetingMethod> competing_;
  std::vector<GradAcc> uacc_, iacc_;     // per thread
  std::vector<float> ada_u_, ada_i_;     // adagrad states per user / item row (empty: schedule decay)
  std::vector<uint64_t> ubits_, ibits_;  // per-row precision bits of the current epoch (MixedSide::fp32_bits)
  int epochs_run_ = 0;
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
  // the grid cuts strips along relabelled ids, as the trainer hands them over (positions stay)
  if (cpu::resolve_order(order, threads, train.nnz()) == Order::kGrid)
    tagged = Reorder::build(tagged, 1, 1).apply(tagged, nullptr);
  if (order == Order::kChunk) shuffle_for_chunk_order(&tagged, seed);  // as trainer.cc does
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
