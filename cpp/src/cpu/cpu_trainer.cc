// CPU backend: Hogwild SGD over the Schedule's visiting order with the ISA-dispatched
// kernels.  Owns P and Q (relabelled order) for the whole fit, in the method's storage:
//   fp32                 -> FP32 rows
//   fp16, mascot-n1      -> FP16 rows
//   mascot, -n2, -naive  -> FP16 rows; a group's rows move to FP32 storage when it switches
//   mpt, muppet, afp     -> FP32 master rows, quantised by the method (cpu/competing.cc)
// MASCOT epochs (DESIGN.md §3): SGD pass -> (measured epochs) q-error per group from the
// sampled gradients, reduced race-free from per-thread partials -> switching -> test RMSE
// (outside the timed pass).
#include <chrono>
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
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/reorder.h"

namespace mascot {
namespace cpu {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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
  Buffer& operator=(Buffer&& o) noexcept { std::swap(p, o.p); std::swap(bytes, o.bytes); return *this; }
  ~Buffer() { std::free(p); }
  float* f32() const { return static_cast<float*>(p); }
  uint16_t* f16() const { return static_cast<uint16_t*>(p); }
};

enum class Storage { kF32, kF16, kMixed, kCompeting };

Storage storage_of(Method m) {
  switch (m) {
    case Method::kFp32: return Storage::kF32;
    case Method::kFp16:
    case Method::kMascotN1: return Storage::kF16;
    case Method::kMascot:
    case Method::kMascotN2:
    case Method::kMascotNaive: return Storage::kMixed;
    default: return Storage::kCompeting;
  }
}

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
struct GradTotals {
  std::vector<double> sum, sq, nsum;
  std::vector<int64_t> n;
  GradTotals(const std::vector<GradAcc>& acc, int groups, int k)
      : sum(static_cast<size_t>(groups) * k, 0.0), sq(groups, 0.0), nsum(groups, 0.0), n(groups, 0) {
    for (const GradAcc& a : acc) {
      for (size_t x = 0; x < sum.size(); ++x) sum[x] += a.sum[x];
      for (size_t g = 0; g < sq.size(); ++g) { sq[g] += a.sq[g]; nsum[g] += a.nsum[g]; n[g] += a.n[g]; }
    }
  }
};

class CpuBackend final : public detail::LegacyBackend {
 public:
  void fit(detail::LegacyFitInput& in, RunReport* report, const EpochCallback& on_epoch) override {
    const TrainConfig& cfg = *in.cfg;
    const int threads = in.ctx->resolved_threads();
    const uint64_t seed = in.ctx->seed;
    const KernelTable& kt = kernels();
    k_ = cfg.k;
    m_ = in.train->n_users;
    n_ = in.train->n_items;
    storage_ = storage_of(cfg.method);
    ug_ = &in.user_groups;
    ig_ = &in.item_groups;
    // grad_stats needs the sampling of the per-group path: fp32 and mascot-n1 then run on it
    // with every group fixed at FP32 (fp32) or FP16 (mascot-n1) and no switching
    // random_fp16 (mascot, mascot-naive, mascot-n1) also runs on it, with the groups preset
    if (cfg.random_fp16 >= 0) storage_ = Storage::kMixed;
    if (cfg.grad_stats && (storage_ == Storage::kF32 || storage_ == Storage::kF16)) {
      if (storage_ == Storage::kF32) {
        std::fill(ug_->precision.begin(), ug_->precision.end(), Precision::kFp32);
        std::fill(ig_->precision.begin(), ig_->precision.end(), Precision::kFp32);
      }
      storage_ = Storage::kMixed;
    }
    const bool switching =
        (cfg.method == Method::kMascot || cfg.method == Method::kMascotN2 || cfg.method == Method::kMascotNaive) &&
        cfg.random_fp16 < 0;
    const bool f32_rows = storage_ == Storage::kF32 || storage_ == Storage::kCompeting;
    init(f32_rows, *in.user_old, *in.item_old, cfg.init_std, seed);

    std::unique_ptr<CompetingMethod> competing;
    if (storage_ == Storage::kCompeting) competing = make_competing_method(cfg, threads, seed);
    const SgdFn sgd = cfg.method == Method::kFp32 ? kt.sgd_fp32 : cfg.method == Method::kFp16 ? kt.sgd_fp16 : kt.sgd_n1;

    const bool all_f32 = f32_rows || (ug_->count_fp32() == ug_->size() && ig_->count_fp32() == ig_->size());
    const size_t row_bytes = static_cast<size_t>(k_) * (all_f32 ? sizeof(float) : sizeof(uint16_t));
    Schedule sched(*in.train, cfg.order, threads, row_bytes, seed);
    std::vector<Rec> test_recs;
    if (in.test && in.test->nnz() > 0) test_recs = to_records(*in.test);

    // MASCOT state
    detail::Switcher usw(ug_->size(), cfg.threshold), isw(ig_->size(), cfg.threshold);
    std::vector<GradAcc> uacc(threads), iacc(threads);
    const bool naive = cfg.method == Method::kMascotNaive;
    const uint64_t sample_below =
        cfg.sample_ratio >= 1.0 ? ~0ull : static_cast<uint64_t>(std::ldexp(cfg.sample_ratio, 64));

    // checkpoint hooks: the state export_state() reads lives in these locals during fit
    usw_ = &usw;
    isw_ = &isw;
    competing_ = competing.get();
    threads_ = threads;
    cfg_epochs_ = cfg.epochs;
    start_epoch_ = 0;
    updates_ = 0;
    if (in.resume) {
      import_state(*in.resume);
      // the backend's epoch count must be the run state's, else epochs repeat (fuzz finding)
      if (static_cast<size_t>(start_epoch_) != report->epochs.size())
        throw InvalidArgument(in.resume->where("cpu_state") + ": corrupted (epoch count " + std::to_string(start_epoch_) +
                              ", the run state has " + std::to_string(report->epochs.size()) + ")");
      sched.replay(start_epoch_);  // the visiting order carries state from epoch to epoch
    }

    int64_t updates = updates_;
    for (int e = start_epoch_; e < cfg.epochs; ++e) {
      EpochRecord rec;
      rec.epoch = e;
      SgdParams prm{k_, cfg.lr_at(e), cfg.lambda_p, cfg.lambda_q};
      prm.stochastic = cfg.rounding == Rounding::kStochastic;
      prm.round_seed = detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(e));
      rec.lr = prm.lr;
      const auto t0 = Clock::now();
      if (storage_ == Storage::kCompeting) {
        float* P = P32_.f32();
        float* Q = Q32_.f32();
        competing->begin_epoch(e, P, m_, Q, n_);
        updates += sched.run_epoch(e, [&](int tid, const Rec* r, size_t c) { competing->sgd(tid, r, c, P, Q, prm); });
        competing->end_epoch(e, P, m_, Q, n_, &rec.method_json);
      } else if (storage_ != Storage::kMixed) {
        void* P = f32_rows ? P32_.p : P16_.p;
        void* Q = f32_rows ? Q32_.p : Q16_.p;
        updates += sched.run_epoch(e, [&](int, const Rec* r, size_t c) { sgd(r, c, P, Q, prm); });
      } else {
        const bool measure = switching && detail::measured_epoch(e, cfg.warmup, cfg.period);
        const bool sample = measure || cfg.grad_stats;
        const int ufp32 = ug_->count_fp32(), ifp32 = ig_->count_fp32();
        if (!sample && ufp32 == 0 && ifp32 == 0) {
          // every row still FP16 and nothing to sample: the plain m-quantization kernel
          updates += sched.run_epoch(e, [&](int, const Rec* r, size_t c) { kt.sgd_n1(r, c, P16_.p, Q16_.p, prm); });
        } else {
          MixedParams mp{prm, naive, detail::hash3(seed, detail::kStreamSample, static_cast<uint64_t>(e)), sample_below};
          // one view per side for this epoch; each thread's copy gets its own accumulators
          std::vector<MixedSide> us(threads, side(P32_, P16_, *ug_)), is(threads, side(Q32_, Q16_, *ig_));
          for (int t = 0; t < threads; ++t) {
            if (sample) {
              uacc[t].reset(ug_->size(), k_);
              iacc[t].reset(ig_->size(), k_);
              attach(&us[t], &uacc[t], cfg.grad_stats);
              attach(&is[t], &iacc[t], cfg.grad_stats);
            }
          }
          updates += sched.run_epoch(e, [&](int tid, const Rec* r, size_t c) { kt.sgd_mixed(r, c, us[tid], is[tid], mp); });
          if (sample) {
            const GradTotals ut(uacc, ug_->size(), k_), it(iacc, ig_->size(), k_);
            if (cfg.grad_stats) {
              rec.user_grad_norm = mean_norms(ut);
              rec.item_grad_norm = mean_norms(it);
            }
            if (measure) {
              rec.measured = true;
              rec.user_qerror = detail::qerror_from_sums(ut.sum.data(), ut.sq.data(), ut.n.data(), ug_->size(), k_);
              rec.item_qerror = detail::qerror_from_sums(it.sum.data(), it.sq.data(), it.n.data(), ig_->size(), k_);
              for (int g : usw.update(rec.user_qerror, ug_)) switch_group('u', g, e, report);
              for (int g : isw.update(rec.item_qerror, ig_)) switch_group('i', g, e, report);
            }
          }
        }
      }
      rec.train_seconds = seconds_since(t0);
      report->total_train_seconds += rec.train_seconds;
      if (!test_recs.empty() && (cfg.eval_every_epoch || e == cfg.epochs - 1)) {
        const auto t1 = Clock::now();
        rec.test_rmse = evaluate(test_recs, threads, naive);
        rec.eval_seconds = seconds_since(t1);
        report->total_eval_seconds += rec.eval_seconds;
        report->final_test_rmse = rec.test_rmse;
      }
      rec.fp32_user_groups = storage_ == Storage::kMixed ? ug_->count_fp32() : (f32_rows ? ug_->size() : 0);
      rec.fp32_item_groups = storage_ == Storage::kMixed ? ig_->count_fp32() : (f32_rows ? ig_->size() : 0);
      report->epochs.push_back(rec);
      const bool stop = on_epoch && !on_epoch(report->epochs.back());
      if (stop) report->interrupted = true;
      if (in.epoch_done) {
        epochs_done_ = e + 1;
        updates_ = updates;
        in.epoch_done(e + 1, stop || e + 1 == cfg.epochs);
      }
      if (stop) break;
    }
    report->updates_per_second =
        report->total_train_seconds > 0 ? static_cast<double>(updates) / report->total_train_seconds : 0.0;
  }

  void factors(std::vector<float>* P, std::vector<float>* Q) const override {
    to_float(P32_, P16_, m_, *ug_, P);
    to_float(Q32_, Q16_, n_, *ig_, Q);
  }

  const char* name() const override { return "cpu"; }
  bool checkpointing() const override { return true; }

  // Checkpoint state: "cpu" blob (shapes, storage, epoch, update count, group precisions,
  // switcher baselines, competing method's blob) + the factor buffers in their storage.
  void export_state(detail::StateWriter& out) const override {
    detail::BinWriter w;
    w.str("cpu");
    w.pod(static_cast<int32_t>(storage_));
    w.pod(static_cast<int32_t>(k_));
    w.pod(m_);
    w.pod(n_);
    w.pod(static_cast<int32_t>(threads_));
    w.pod(static_cast<int32_t>(epochs_done_));
    w.pod(updates_);
    w.vec(ug_->precision);
    w.vec(ig_->precision);
    w.vec(usw_->baseline());
    w.vec(isw_->baseline());
    w.str(competing_ ? competing_->export_state() : std::string());
    const uint8_t have = (P32_.p ? 1 : 0) | (Q32_.p ? 2 : 0) | (P16_.p ? 4 : 0) | (Q16_.p ? 8 : 0);
    w.pod(have);
    out.blob("cpu_state", w.bytes());
    if (P32_.p) out.matrix("P32", P32_.p, m_, k_, 4);
    if (Q32_.p) out.matrix("Q32", Q32_.p, n_, k_, 4);
    if (P16_.p) out.matrix("P16", P16_.p, m_, k_, 2);
    if (Q16_.p) out.matrix("Q16", Q16_.p, n_, k_, 2);
  }

  void import_state(detail::StateReader& in) override {
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
    const int64_t updates = r.pod<int64_t>();
    auto up = r.vec<Precision>(), ip = r.vec<Precision>();
    auto ub = r.vec<double>(), ib = r.vec<double>();
    if (up.size() != ug_->precision.size() || ip.size() != ig_->precision.size() ||
        ub.size() != usw_->baseline().size() || ib.size() != isw_->baseline().size())
      r.fail("group counts differ from this run's");
    for (Precision x : up) if (x != Precision::kFp16 && x != Precision::kFp32) r.fail("bad group precision");
    for (Precision x : ip) if (x != Precision::kFp16 && x != Precision::kFp32) r.fail("bad group precision");
    const std::string comp = r.str();
    const uint8_t have = r.pod<uint8_t>();
    r.expect_done();
    if (done < 0 || done > cfg_epochs_) r.fail("epoch count out of range");
    // the factor files this storage needs (a mixed run needs FP32 rows once a group switched)
    bool any32 = false;
    for (Precision x : up) any32 = any32 || x == Precision::kFp32;
    const bool u32 = any32;
    any32 = false;
    for (Precision x : ip) any32 = any32 || x == Precision::kFp32;
    const bool i32 = any32;
    const bool f32_rows = storage_ == Storage::kF32 || storage_ == Storage::kCompeting;
    const uint8_t need = f32_rows ? 3 : 12 | (storage_ == Storage::kMixed ? (u32 ? 1 : 0) | (i32 ? 2 : 0) : 0);
    if ((have & need) != need) r.fail("lacks factor matrices this storage needs");

    ug_->precision = up;
    ig_->precision = ip;
    usw_->set_baseline(ub);
    isw_->set_baseline(ib);
    if (competing_) {
      try {
        competing_->import_state(comp);
      } catch (const InvalidArgument& e) {
        r.fail(e.what());
      }
    }
    else if (!comp.empty()) r.fail("holds a competing method's state, this run has none");
    auto load = [&](Buffer* b, const char* name, int64_t rows, size_t elem, bool want) {
      if (!want) return;
      if (!b->p) *b = Buffer(static_cast<size_t>(rows) * k_ * elem);
      in.matrix(name, b->p, rows, k_, static_cast<int>(elem));
    };
    load(&P32_, "P32", m_, 4, have & 1);
    load(&Q32_, "Q32", n_, 4, have & 2);
    load(&P16_, "P16", m_, 2, have & 4);
    load(&Q16_, "Q16", n_, 2, have & 8);
    start_epoch_ = done;
    epochs_done_ = done;
    updates_ = updates;
  }

 private:
  // Allocates and fills P and Q with the seeded initial values.  Single-storage methods get one
  // buffer per side; the per-group path gets an FP16 buffer when some group is FP16 and an FP32
  // one when some group starts FP32 (random_fp16, fp32 with grad_stats), each row written
  // exactly once in its group's precision.
  void init(bool f32_rows, const std::vector<int32_t>& user_old, const std::vector<int32_t>& item_old, float std,
            uint64_t seed) {
    auto fill = [&](Buffer* b32, Buffer* b16, int64_t rows, const GroupTable& t, const std::vector<int32_t>& old,
                    uint64_t stream) {
      const size_t n = static_cast<size_t>(rows) * k_;
      const bool mixed = storage_ == Storage::kMixed;
      const int nf32 = mixed ? t.count_fp32() : 0;
      if (f32_rows || nf32 > 0) *b32 = Buffer(n * sizeof(float));
      if (!f32_rows && nf32 < t.size()) *b16 = Buffer(n * sizeof(uint16_t));
      std::vector<float> row(static_cast<size_t>(k_));
      for (int g = 0; g < t.size(); ++g) {
        const bool f32 = f32_rows || (mixed && t.precision[g] == Precision::kFp32);
        for (int64_t r = t.start[g]; r < t.start[g + 1]; ++r) {
          detail::init_row(row.data(), k_, std, seed, stream, old[r]);
          if (f32) {
            std::memcpy(b32->f32() + static_cast<size_t>(r) * k_, row.data(), sizeof(float) * k_);
          } else {
            uint16_t* d = b16->f16() + static_cast<size_t>(r) * k_;
            for (int j = 0; j < k_; ++j) d[j] = detail::float_to_half_rn(row[j]);
          }
        }
      }
    };
    fill(&P32_, &P16_, m_, *ug_, user_old, detail::kStreamInitP);
    fill(&Q32_, &Q16_, n_, *ig_, item_old, detail::kStreamInitQ);
  }

  MixedSide side(const Buffer& b32, const Buffer& b16, const GroupTable& t) {
    std::vector<uint64_t>& bits = &t == ug_ ? ubits_ : ibits_;  // owns MixedSide::fp32_bits
    MixedSide s;
    s.fp32 = reinterpret_cast<const uint8_t*>(t.precision.data());
    encode_fp32_bits(t.start.data(), s.fp32, t.size(), &bits);
    s.fp32_bits = bits.data();
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

  // grad_stats: mean norm of the sampled gradients per group (-1 where nothing was sampled).
  static std::vector<double> mean_norms(const GradTotals& a) {
    std::vector<double> m(a.n.size());
    for (size_t g = 0; g < m.size(); ++g) m[g] = a.n[g] > 0 ? a.nsum[g] / static_cast<double>(a.n[g]) : -1.0;
    return m;
  }

  // Moves group g's rows from FP16 to FP32 storage (exact); allocates the FP32 side lazily.
  void switch_group(char side_tag, int g, int epoch, RunReport* report) {
    const bool user = side_tag == 'u';
    Buffer& b32 = user ? P32_ : Q32_;
    const Buffer& b16 = user ? P16_ : Q16_;
    const GroupTable& t = user ? *ug_ : *ig_;
    if (!b32.p) {
      b32 = Buffer(static_cast<size_t>(user ? m_ : n_) * k_ * sizeof(float));
      std::memset(b32.p, 0, b32.bytes);  // rows of FP16 groups are never read; zeroed for checkpoints
    }
    const size_t a = static_cast<size_t>(t.start[g]) * k_, b = static_cast<size_t>(t.start[g + 1]) * k_;
    for (size_t x = a; x < b; ++x) b32.f32()[x] = detail::half_to_float(b16.f16()[x]);
    report->switches.push_back(SwitchEvent{side_tag, g, epoch});
  }

  double evaluate(const std::vector<Rec>& recs, int threads, bool naive) {
    const KernelTable& kt = kernels();
    std::vector<double> part(static_cast<size_t>(threads) * 8, 0.0);  // 64 B apart
    MixedSide us, is;
    if (storage_ == Storage::kMixed) {
      us = side(P32_, P16_, *ug_);
      is = side(Q32_, Q16_, *ig_);
    }
    Schedule::parallel_for(recs, threads, [&](int tid, const Rec* r, size_t c) {
      double s;
      if (storage_ == Storage::kMixed) s = kt.sse_mixed(r, c, us, is, k_, naive);
      else if (P32_.p) s = kt.sse_f32(r, c, P32_.p, Q32_.p, k_);
      else s = kt.sse_f16(r, c, P16_.p, Q16_.p, k_);
      part[static_cast<size_t>(tid) * 8] += s;
    });
    double s = 0;
    for (double x : part) s += x;
    return std::sqrt(s / static_cast<double>(recs.size()));
  }

  void to_float(const Buffer& b32, const Buffer& b16, int64_t rows, const GroupTable& t, std::vector<float>* out) const {
    const size_t n = static_cast<size_t>(rows) * k_;
    out->resize(n);
    if (storage_ == Storage::kF32 || storage_ == Storage::kCompeting) {
      std::memcpy(out->data(), b32.p, n * sizeof(float));
      return;
    }
    for (int g = 0; g < t.size(); ++g) {
      const size_t a = static_cast<size_t>(t.start[g]) * k_, b = static_cast<size_t>(t.start[g + 1]) * k_;
      const bool f32 = storage_ == Storage::kMixed && t.precision[g] == Precision::kFp32;
      for (size_t x = a; x < b; ++x) (*out)[x] = f32 ? b32.f32()[x] : detail::half_to_float(b16.f16()[x]);
    }
  }

  int k_ = 0;
  int64_t m_ = 0, n_ = 0;
  Storage storage_ = Storage::kF32;
  GroupTable* ug_ = nullptr;
  GroupTable* ig_ = nullptr;
  Buffer P32_, Q32_, P16_, Q16_;
  std::vector<uint64_t> ubits_, ibits_;  // per-row precision bits of the current epoch (MixedSide::fp32_bits)
  // checkpointing (valid during fit): the switchers and the competing method are fit's locals
  detail::Switcher* usw_ = nullptr;
  detail::Switcher* isw_ = nullptr;
  CompetingMethod* competing_ = nullptr;
  int threads_ = 1;
  int start_epoch_ = 0, epochs_done_ = 0, cfg_epochs_ = 0;
  int64_t updates_ = 0;
};

}  // namespace
}  // namespace cpu

namespace detail {
std::unique_ptr<LegacyBackend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

std::vector<int64_t> cpu_visit_order(const RatingSet& train, Order order, int epochs, int threads, int k, bool half,
                                     uint64_t seed) {
  MASCOT_CHECK_ARG(train.nnz() < (1 << 24), "cpu_visit_order needs fewer than 2^24 ratings");
  RatingSet tagged = train;  // rating value = position, exact in float below 2^24
  for (int64_t t = 0; t < tagged.nnz(); ++t) tagged.ratings[t] = static_cast<float>(t);
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
