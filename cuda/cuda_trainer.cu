// CUDA backend: the epoch loop of cpu/cpu_trainer.cc on the device.  Owns, for one fit, the
// device copies of the training and test ratings, the factor rows P and Q in the method's
// storage (DeviceBuffer: freed on every path), the group tables and the q-error accumulators:
//   fp32, mpt            -> FP32 rows
//   fp16, mascot-n1      -> FP16 rows
//   mascot, -n2, -naive  -> FP16 rows; when a group switches its rows are converted to the
//                           FP32 buffer on the device (allocated at the first switch)
// Per epoch (DESIGN.md §3): SGD pass (kernels in sgd_kernels.cu) -> on measured epochs the
// per-group gradient sums come to the host (O(g k) doubles, never the model), q-error and
// Switcher decide, switched groups are converted on the device -> test RMSE on the device,
// outside the timed pass.  Only the q-error sums, g precision flags and the final factors
// cross the bus.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "kernels.h"
#include "mascot/detail/afp_report.h"
#include "mascot/context.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/half.h"
#include "mascot/detail/hogwild.h"
#include "mascot/detail/json.h"
#include "mascot/detail/muppet_report.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"

namespace mascot::cuda {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ------------------------------------------------------------------ small kernels

/// Initial rows (detail::init_row's formula, element (r, j) from the entity's original id),
/// stored as FP32 or rounded to nearest FP16.
__global__ void init_kernel(float* f32, uint16_t* f16, const int32_t* old, int64_t rows, int k, float std,
                            uint64_t seed, uint64_t stream) {
  const int64_t n = rows * k;
  for (int64_t x = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; x < n;
       x += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = x / k, j = x - r * k;
    const uint64_t c = 2 * (static_cast<uint64_t>(old[r]) * static_cast<uint64_t>(k) + static_cast<uint64_t>(j));
    const float v = static_cast<float>(static_cast<double>(std) *
                                       detail::normal_from(detail::hash3(seed, stream, c), detail::hash3(seed, stream, c + 1)));
    if (f32) f32[x] = v;
    else f16[x] = __half_as_ushort(__float2half_rn(v));
  }
}

/// FP16 -> FP32 rows [a, b) (elements), exact: a group switching precision.
__global__ void widen_kernel(const uint16_t* f16, float* f32, int64_t a, int64_t b) {
  for (int64_t x = a + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; x < b;
       x += static_cast<int64_t>(gridDim.x) * blockDim.x)
    f32[x] = __half2float(__ushort_as_half(f16[x]));
}

/// out[x] = sum over slots s (in slot order) of in[s * per + x]: deterministic reduction.
template <class T>
__global__ void reduce_slots_kernel(const T* in, T* out, int64_t per, int slots) {
  for (int64_t x = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; x < per;
       x += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T s = 0;
    for (int t = 0; t < slots; ++t) s += in[static_cast<int64_t>(t) * per + x];
    out[x] = s;
  }
}

/// Loads the kernels that first run inside a timed pass (q-error reduction, switching, the
/// competing methods' max scan) before the first epoch: CUDA loads kernels lazily
/// (CUDA_MODULE_LOADING=LAZY, the default since 12.2), and a load inside a timed epoch would
/// count as training time.  (The SGD kernels are loaded by the occupancy query.)
void preload_kernels() {
  // the C API, as the C++ template does ((const void*)func; the template is nvcc-only)
  cudaFuncAttributes attr{};
  MASCOT_CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&widen_kernel)));
  MASCOT_CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&reduce_slots_kernel<double>)));
  MASCOT_CUDA_CHECK(
      cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&reduce_slots_kernel<unsigned long long>)));
  preload_helper_kernels();
}

int grid_for(int64_t n, int threads = 256, int cap = 65535) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(cap, (n + threads - 1) / threads)));
}

// ------------------------------------------------------------------ device and method checks

struct DeviceInfo {
  int id = 0;
  int sms = 1;
  std::string name;
};

/// The current device, checked: compute capability >= 8.0 (the kernels are built for sm_80
/// and sm_90; older GPUs would fail at the first launch with a less clear message).
DeviceInfo check_device() {
  DeviceInfo d;
  if (const std::string why = cuda_unavailable_reason(); !why.empty()) throw CudaError(why + "; use --device cpu");
  MASCOT_CUDA_CHECK(cudaGetDevice(&d.id));
  cudaDeviceProp prop{};
  MASCOT_CUDA_CHECK(cudaGetDeviceProperties(&prop, d.id));
  if (prop.major < 8)
    throw CudaError(std::string("unsupported GPU ") + prop.name + " (compute capability " + std::to_string(prop.major) +
                    "." + std::to_string(prop.minor) + "): MASCOT's CUDA backend needs 8.0 or newer; use --device cpu");
  d.sms = prop.multiProcessorCount;
  d.name = prop.name;
  return d;
}

enum class Kind { kF32, kF16, kHalfMath, kMixed, kMpt, kMuppet, kAfp };

Kind kind_of(Method m) {
  switch (m) {
    case Method::kFp32: return Kind::kF32;
    case Method::kFp16: return Kind::kHalfMath;
    case Method::kMascotN1: return Kind::kF16;
    case Method::kMascot:
    case Method::kMascotN2:
    case Method::kMascotNaive: return Kind::kMixed;
    case Method::kMpt: return Kind::kMpt;
    case Method::kMuppet: return Kind::kMuppet;
    case Method::kAfp: return Kind::kAfp;
  }
  throw CudaError("method '" + to_string(m) + "' is not implemented on the cuda device");
}

std::vector<DRec> to_drecs(const RatingSet& s) {
  std::vector<DRec> v(static_cast<size_t>(s.nnz()));
  for (int64_t t = 0; t < s.nnz(); ++t) v[t] = DRec{s.users[t], s.items[t], s.ratings[t]};
  return v;
}

/// Ratings of the most-rated user or item (the Hogwild overlap bound, detail/hogwild.h).
int64_t max_row_ratings(const RatingSet& s) {
  std::vector<int64_t> cu(static_cast<size_t>(s.n_users)), ci(static_cast<size_t>(s.n_items));
  for (int64_t t = 0; t < s.nnz(); ++t) {
    ++cu[static_cast<size_t>(s.users[t])];
    ++ci[static_cast<size_t>(s.items[t])];
  }
  int64_t m = 0;
  for (int64_t c : cu) m = std::max(m, c);
  for (int64_t c : ci) m = std::max(m, c);
  return m;
}

/// Device state of one side.
struct Side {
  int64_t rows = 0;
  DeviceBuffer<float> f32;
  DeviceBuffer<uint16_t> f16;
  DeviceBuffer<int32_t> start;
  DeviceBuffer<uint8_t> fp32;
  DeviceBuffer<double> sum, sq, tsum, tsq;  // slot copies and their reduction
  DeviceBuffer<unsigned long long> n, tn;
  GroupTable* table = nullptr;

  void upload_flags() {
    std::vector<uint8_t> f(table->precision.size());
    for (size_t g = 0; g < f.size(); ++g) f[g] = table->precision[g] == Precision::kFp32 ? 1 : 0;
    fp32.upload(f.data(), f.size());
  }
  DSide view(bool measure) const {
    DSide s;
    s.f32 = f32.get();
    s.f16 = f16.get();
    s.start = start.get();
    s.fp32 = fp32.get();
    s.groups = table->size();
    if (measure) {
      s.grad_sum = sum.get();
      s.grad_sq = sq.get();
      s.grad_n = n.get();
    }
    return s;
  }
};

/// Max |x| over a side's FP32 rows, on the device (the competing methods' per-epoch tensor
/// scan), through `m` (one device word, allocated once per fit: no allocation, and so no
/// cudaFree synchronisation, inside a timed pass).
float side_max_abs(const Side& s, int k, DeviceBuffer<unsigned int>& m) {
  m.zero();
  launch_max_abs(s.f32.get(), s.rows * k, m.get());
  unsigned int bits = 0;
  m.download(&bits, 1);
  return detail::bits_f32(bits);
}

// ------------------------------------------------------------------ MuPPET, host side
// cpu/competing.cc Muppet::begin_epoch / end_epoch with a warp as the worker: the scales of
// P and Q come from a scan of the whole tensor at the epoch's start; the policy (MuppetPolicy,
// competing_params.h) decides at the end of evaluation epochs from the epoch's last
// mini-batch gradient (recorded by the first `batch` warps, one rating each).
class MuppetHost {
 public:
  void init(const TrainConfig& cfg, int64_t warps) {
    c_ = cfg.competing;
    k_ = cfg.k;
    warps_ = warps;
    policy_ = detail::MuppetPolicy{};  // a backend object may fit twice: no state carries over
    switches_.clear();
    policy_.levels = static_cast<int>(c_.muppet_word_lengths.size());
    batch_warps_ = static_cast<int>(std::min<int64_t>(c_.muppet_batch, warps));
    frac_.reset(static_cast<size_t>(2 * warps));
    batch_.reset(static_cast<size_t>(batch_warps_) * 2 * k_);
    batch_n_.reset(static_cast<size_t>(batch_warps_));
    rescales_.reset(1);
    max_.reset(1);
    win_.reset(k_);
  }
  void begin_epoch(const Side& U, const Side& I, int k, SgdArgs* a) {
    wl_ = policy_.fp32() ? 0 : c_.muppet_word_lengths[static_cast<size_t>(policy_.level)];
    if (wl_ > 0) {
      max_p_ = side_max_abs(U, k, max_);
      max_q_ = side_max_abs(I, k, max_);
      fp_ = detail::make_fixed_format(detail::fixed_frac_bits(max_p_, wl_), wl_);
      fq_ = detail::make_fixed_format(detail::fixed_frac_bits(max_q_, wl_), wl_);
      std::vector<int> f(static_cast<size_t>(2 * warps_));
      for (int64_t w = 0; w < warps_; ++w) {
        f[2 * w] = fp_.frac_bits;
        f[2 * w + 1] = fq_.frac_bits;
      }
      frac_.upload(f.data(), f.size());
      batch_n_.zero();
      rescales_.zero();
    }
    a->mu_word_length = wl_;
    a->mu_frac = frac_.get();
    a->mu_rescales = rescales_.get();
    a->mu_batch = batch_.get();
    a->mu_batch_n = batch_n_.get();
    a->mu_batch_warps = batch_warps_;
  }
  std::string end_epoch(int epoch, int k) {
    detail::MuppetEpochFacts f;
    f.word_length = wl_;
    std::vector<double> gp, gq;
    if (wl_ > 0) {
      std::vector<float> b(batch_.size());
      std::vector<int> bn(batch_n_.size());
      batch_.download(b.data(), b.size());
      batch_n_.download(bn.data(), bn.size());
      gp.assign(static_cast<size_t>(k), 0.0);
      gq.assign(static_cast<size_t>(k), 0.0);
      for (int w = 0; w < batch_warps_; ++w) {
        if (!bn[w]) continue;
        ++f.batch;
        for (int j = 0; j < k; ++j) {
          gp[j] += b[static_cast<size_t>(w) * 2 * k + j];
          gq[j] += b[static_cast<size_t>(w) * 2 * k + k + j];
        }
      }
      f.frac_p = f.frac_p_end = fp_.frac_bits;
      f.frac_q = f.frac_q_end = fq_.frac_bits;
      std::vector<int> fr(frac_.size());
      frac_.download(fr.data(), fr.size());
      for (size_t x = 0; x < fr.size(); x += 2) {
        f.frac_p_end = std::min(f.frac_p_end, fr[x]);
        f.frac_q_end = std::min(f.frac_q_end, fr[x + 1]);
      }
      unsigned long long rescales = 0;
      rescales_.download(&rescales, 1);
      f.rescales = static_cast<int64_t>(rescales);
      f.max_p = max_p_;
      f.max_q = max_q_;
    }
    return detail::muppet_end_epoch(c_, epoch, f, gp, gq, &win_, &policy_, &switches_);
  }

 private:
  CompetingParams c_;
  int k_ = 0;
  int64_t warps_ = 0;
  int batch_warps_ = 0;
  detail::MuppetPolicy policy_;
  int wl_ = 0;
  float max_p_ = 0, max_q_ = 0;
  detail::FixedFormat fp_{}, fq_{};
  detail::MuppetWindow win_;  ///< gradient-diversity window, as on the CPU
  std::vector<int> switches_;
  DeviceBuffer<int> frac_;
  DeviceBuffer<float> batch_;
  DeviceBuffer<int> batch_n_;
  DeviceBuffer<unsigned long long> rescales_;
  DeviceBuffer<unsigned int> max_;
};

// ------------------------------------------------------------------ AFP, host side
// cpu/competing.cc Afp::begin_epoch / end_epoch with a warp as the worker (its state lives in
// device memory between epochs; a host mirror resets the per-epoch parts and reads the stats).
class AfpHost {
 public:
  void init(const TrainConfig& cfg, int64_t warps) {
    c_ = cfg.competing;
    AfpWarp w{};
    for (auto& st : w.st) {
      st = detail::AfpTensorState{};
      st.bits = c_.afp_low_bits;
      st.next = 0;
    }
    for (int t = 0; t < 3; ++t) {
      w.fmt[t] = detail::FixedFormat{};
      w.fmax[t] = 0.f;
      w.stats[t] = AfpStats{};
    }
    w.run_max[0] = w.run_max[1] = 0.f;
    w.iter = 0;
    w.epoch_iter = 0;
    host_.assign(static_cast<size_t>(warps), w);
    dev_.reset(host_.size());
    dev_.upload(host_.data(), host_.size());
    recent_.reset(host_.size() * 32);  // slots are written before they are read (epoch_iter)
    max_.reset(1);
  }
  void begin_epoch(const Side& U, const Side& I, int k, SgdArgs* a) {
    max_p_ = side_max_abs(U, k, max_);
    max_q_ = side_max_abs(I, k, max_);
    for (auto& w : host_) {  // host_ mirrors the device after the last end_epoch()
      w.run_max[0] = w.run_max[1] = 0.f;
      w.epoch_iter = 0;
      for (auto& s : w.stats) s = AfpStats{};
    }
    dev_.upload(host_.data(), host_.size());
    a->afp = dev_.get();
    a->afp_recent = recent_.get();
    a->afp_low_bits = c_.afp_low_bits;
    a->afp_max_p = max_p_;
    a->afp_max_q = max_q_;
    a->afp_error_threshold = c_.afp_error_threshold;
    a->afp_alpha = c_.afp_alpha;
    a->afp_beta = c_.afp_beta;
    a->afp_gamma = c_.afp_gamma;
    a->afp_delta = c_.afp_delta;
    a->afp_high_bits = c_.afp_high_bits;
  }
  std::string end_epoch() {
    dev_.download(host_.data(), host_.size());
    return detail::afp_epoch_json(host_, c_, max_p_, max_q_);
  }

 private:
  CompetingParams c_;
  std::vector<AfpWarp> host_;
  DeviceBuffer<AfpWarp> dev_;
  DeviceBuffer<int2> recent_;
  DeviceBuffer<unsigned int> max_;
  float max_p_ = 0, max_q_ = 0;
};

/// Reduces the slot copies of s's accumulators on the device, brings the O(g k) sums to the
/// host and applies Eq. 4 (detail::qerror_from_sums, the CPU's code).
std::vector<double> qerror_of(Side* s, int slots, int k) {
  const int g = s->table ? s->table->size() : static_cast<int>(s->tsq.size());
  const int64_t gk = static_cast<int64_t>(g) * k;
  launch_reduce_grad_sums(s->sum.get(), s->tsum.get(), g, k, slots);  // lane-contiguous -> element order
  MASCOT_LAUNCH(grid_for(g), 256, reduce_slots_kernel<double>)(s->sq.get(), s->tsq.get(), g, slots);
  MASCOT_CUDA_CHECK_LAUNCH();
  MASCOT_LAUNCH(grid_for(g), 256, reduce_slots_kernel<unsigned long long>)(s->n.get(), s->tn.get(), g, slots);
  MASCOT_CUDA_CHECK_LAUNCH();
  std::vector<double> sum(static_cast<size_t>(gk)), sq(static_cast<size_t>(g));
  std::vector<unsigned long long> n(static_cast<size_t>(g));
  s->tsum.download(sum.data(), sum.size());
  s->tsq.download(sq.data(), sq.size());
  s->tn.download(n.data(), n.size());
  std::vector<int64_t> n64(n.begin(), n.end());
  return detail::qerror_from_sums(sum.data(), sq.data(), n64.data(), g, k);
}

void alloc_accumulators(Side* s, int groups, int k, int slots) {
  const size_t g = static_cast<size_t>(groups);
  s->sum.reset(g * k * slots);
  s->sq.reset(g * slots);
  s->n.reset(g * slots);
  s->tsum.reset(g * k);
  s->tsq.reset(g);
  s->tn.reset(g);
}

class CudaBackend final : public detail::LegacyBackend {
 public:
  const char* name() const override { return "cuda"; }
  void fit(detail::LegacyFitInput& in, RunReport* report, const EpochCallback& on_epoch) override {
    const TrainConfig& cfg = *in.cfg;
    const uint64_t seed = in.ctx->seed;
    k_ = cfg.k;
    if (const std::string why = detail::cuda_unsupported_reason(cfg); !why.empty()) throw_invalid(why);
    kind_ = kind_of(cfg.method);
    const auto bad = [](const std::string& m) { throw_invalid(m); };
    const bool merge = detail::hogwild_merge(bad);
    const double overlap = detail::hogwild_overlap(merge, bad);
    const DeviceInfo dev = check_device();
    preload_kernels();
    const int64_t nnz = in.train->nnz();
    MASCOT_CHECK_ARG(nnz < (int64_t(1) << 32), "the cuda device handles fewer than 2^32 training ratings");

    U_.rows = in.train->n_users;
    I_.rows = in.train->n_items;
    U_.table = &in.user_groups;
    I_.table = &in.item_groups;

    // ratings
    DeviceBuffer<DRec> train(static_cast<size_t>(nnz));
    {
      const std::vector<DRec> h = to_drecs(*in.train);
      train.upload(h.data(), h.size());
    }
    DeviceBuffer<DRec> test;
    int64_t ntest = 0;
    if (in.test && in.test->nnz() > 0) {
      ntest = in.test->nnz();
      const std::vector<DRec> h = to_drecs(*in.test);
      test.reset(h.size());
      test.upload(h.data(), h.size());
    }

    // factors
    const bool competing = kind_ == Kind::kMpt || kind_ == Kind::kMuppet || kind_ == Kind::kAfp;
    const bool f32_rows = kind_ == Kind::kF32 || competing;
    init_side(&U_, *in.user_old, f32_rows, cfg.init_std, seed, detail::kStreamInitP);
    init_side(&I_, *in.item_old, f32_rows, cfg.init_std, seed, detail::kStreamInitQ);

    // group tables (the optimised and the naive lookup read them; fp32 flags change on switches)
    for (Side* s : {&U_, &I_}) {
      s->start.reset(s->table->start.size());
      s->start.upload(s->table->start.data(), s->table->start.size());
      s->fp32.reset(s->table->precision.size());
      s->upload_flags();
    }

    // launch shape: a grid that fills the device once (grid-stride loops inside)
    const int fill_blocks =
        dev.sms * (kind_ == Kind::kMuppet ? competing_blocks_per_sm(k_, 0)
                   : kind_ == Kind::kAfp  ? competing_blocks_per_sm(k_, 1)
                                          : blocks_per_sm(k_, kind_ == Kind::kMpt,
                                                          kind_ == Kind::kMpt ? cfg.rounding == Rounding::kStochastic
                                                                              : kind_ == Kind::kHalfMath));
    // ... and no more warps (Hogwild workers) than keep the most-rated row's concurrent
    // updates near the overlap bound of the write mode (detail/hogwild.h): whole blocks, at
    // least one
    constexpr int kWarpsPerBlock = kThreads / 32;
    const int64_t workers = detail::hogwild_workers(static_cast<int64_t>(fill_blocks) * kWarpsPerBlock,
                                                    max_row_ratings(*in.train), nnz, overlap);
    const int blocks = static_cast<int>(std::max<int64_t>(1, workers / kWarpsPerBlock));
    const int64_t warps = static_cast<int64_t>(blocks) * kWarpsPerBlock;
    report->device =
        "cuda (" + dev.name + ", " + std::to_string(warps) + " warps, " + (merge ? "add" : "store") + " writes)";
    const int eval_blocks = dev.sms * 4;
    DeviceBuffer<double> partial(static_cast<size_t>(eval_blocks));

    // q-error accumulators: `slots` copies per side, at most ~64 MiB in all
    int slots = 1;
    if (kind_ == Kind::kMixed) {
      const size_t per = static_cast<size_t>(U_.table->size() + I_.table->size()) * (k_ + 2) * 8;
      slots = static_cast<int>(std::max<size_t>(1, std::min<size_t>(64, (size_t(64) << 20) / per)));
      for (Side* s : {&U_, &I_}) alloc_accumulators(s, s->table->size(), k_, slots);
    }

    // MPT: one loss scale per warp of the grid (a warp is a Hogwild worker)
    DeviceBuffer<float> mpt_scale;
    DeviceBuffer<int> mpt_clean;
    DeviceBuffer<unsigned long long> mpt_counts;
    int64_t mpt_skipped_total = 0;
    if (kind_ == Kind::kMpt) {
      std::vector<float> s(static_cast<size_t>(warps), cfg.competing.loss_scale);
      mpt_scale.reset(s.size());
      mpt_scale.upload(s.data(), s.size());
      mpt_clean.reset(s.size());
      mpt_clean.zero();
      mpt_counts.reset(2);
    }

    if (competing) cfg.competing.validate();
    if (kind_ == Kind::kMuppet) muppet_.init(cfg, warps);
    if (kind_ == Kind::kAfp) afp_.init(cfg, warps);

    detail::Switcher usw(U_.table->size(), cfg.threshold), isw(I_.table->size(), cfg.threshold);
    const bool naive = cfg.method == Method::kMascotNaive;
    const uint64_t sample_below =
        cfg.sample_ratio >= 1.0 ? ~0ull : static_cast<uint64_t>(std::ldexp(cfg.sample_ratio, 64));
    int half_bits = 1;
    while ((int64_t(1) << (2 * half_bits)) < nnz) ++half_bits;
    const int64_t chunk_len = std::min<int64_t>(128, nnz);
    const int64_t chunk_draws = std::max<int64_t>(1, nnz / 128);
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());

    int64_t updates = 0;
    for (int e = 0; e < cfg.epochs; ++e) {
      EpochRecord rec;
      rec.epoch = e;
      SgdArgs a;
      a.recs = train.get();
      a.nnz = nnz;
      const uint64_t eseed = detail::hash3(seed, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(e));
      if (cfg.order == Order::kChunk) {
        a.order = DOrder::kChunk;
        a.chunk_seed = eseed;  // the CPU Schedule's draws: hash3(eseed, 1, d) % (nnz - len + 1)
        a.chunk_len = chunk_len;
        a.tasks = chunk_draws * chunk_len;
      } else {
        a.order = DOrder::kShuffle;
        for (int r = 0; r < 4; ++r) a.perm_key[r] = static_cast<uint32_t>(detail::hash3(eseed, 7, static_cast<uint64_t>(r)));
        a.perm_half_bits = half_bits;
        a.tasks = nnz;
      }
      a.k = k_;
      a.lr = cfg.lr_at(e);
      a.lambda_p = cfg.lambda_p;
      a.lambda_q = cfg.lambda_q;
      a.stochastic = cfg.rounding == Rounding::kStochastic && kind_ != Kind::kF32 && kind_ != Kind::kHalfMath;
      a.round_seed = detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(e));
      a.naive = naive;
      a.slots = slots;
      a.merge = merge;
      rec.lr = a.lr;

      const auto t0 = Clock::now();
      if (kind_ == Kind::kMpt) {
        a.store = Store::kF32;
        a.U = U_.view(false);
        a.I = I_.view(false);
        a.mpt_scale = mpt_scale.get();
        a.mpt_clean = mpt_clean.get();
        a.mpt_counts = mpt_counts.get();
        a.mpt_dynamic = cfg.competing.dynamic_loss_scale;
        a.mpt_window = cfg.competing.loss_scale_window;
        a.mpt_epoch_key = detail::hash3(seed, detail::kStreamRound, (uint64_t(1) << 40) + static_cast<uint64_t>(e));
        mpt_counts.zero();
        launch_mpt(a, blocks);
      } else if (kind_ == Kind::kMuppet || kind_ == Kind::kAfp) {
        a.store = Store::kF32;
        a.U = U_.view(false);
        a.I = I_.view(false);
        const uint64_t tag = kind_ == Kind::kMuppet ? 2 : 3;  // epoch_round_key's method tags (cpu/competing.cc)
        a.mpt_epoch_key = detail::hash3(seed, detail::kStreamRound, (tag << 40) + static_cast<uint64_t>(e));
        if (kind_ == Kind::kMuppet) {
          muppet_.begin_epoch(U_, I_, k_, &a);
          launch_muppet(a, blocks);
          rec.method_json = muppet_.end_epoch(e, k_);
        } else {
          afp_.begin_epoch(U_, I_, k_, &a);
          launch_afp(a, blocks);
          rec.method_json = afp_.end_epoch();
        }
      } else if (kind_ != Kind::kMixed) {
        a.store = kind_ == Kind::kF32 ? Store::kF32 : Store::kF16;
        a.U = U_.view(false);
        a.I = I_.view(false);
        launch_sgd(a, kind_ == Kind::kHalfMath, blocks);
      } else {
        const bool measure = detail::measured_epoch(e, cfg.warmup, cfg.period);
        const int uf = U_.table->count_fp32(), if_ = I_.table->count_fp32();
        const bool all16 = uf == 0 && if_ == 0, all32 = uf == U_.table->size() && if_ == I_.table->size();
        // uniform precision and nothing to sample: the plain kernels, no group lookups
        a.store = measure ? Store::kMixed : all16 ? Store::kF16 : all32 ? Store::kF32 : Store::kMixed;
        a.measure = measure;
        a.sample_seed = detail::hash3(seed, detail::kStreamSample, static_cast<uint64_t>(e));
        a.sample_below = sample_below;
        if (measure) {
          for (Side* s : {&U_, &I_}) {
            s->sum.zero();
            s->sq.zero();
            s->n.zero();
          }
        }
        a.U = U_.view(measure);
        a.I = I_.view(measure);
        launch_sgd(a, false, blocks);
        if (measure) {
          rec.measured = true;
          rec.user_qerror = qerror(&U_, slots);
          rec.item_qerror = qerror(&I_, slots);
          bool changed = false;
          for (int g : usw.update(rec.user_qerror, U_.table)) changed |= widen(&U_, 'u', g, e, report);
          for (int g : isw.update(rec.item_qerror, I_.table)) changed |= widen(&I_, 'i', g, e, report);
          if (changed) {
            U_.upload_flags();
            I_.upload_flags();
          }
        }
      }
      MASCOT_CUDA_CHECK(cudaDeviceSynchronize());  // the pass is timed to its completion
      rec.train_seconds = seconds_since(t0);
      report->total_train_seconds += rec.train_seconds;
      updates += a.tasks;
      if (kind_ == Kind::kMpt) rec.method_json = mpt_json(mpt_counts, mpt_scale, cfg, &mpt_skipped_total);

      if (ntest > 0 && (cfg.eval_every_epoch || e == cfg.epochs - 1)) {
        const auto t1 = Clock::now();
        const Store st = kind_ == Kind::kMixed ? Store::kMixed : f32_rows ? Store::kF32 : Store::kF16;
        launch_sse(test.get(), ntest, U_.view(false), I_.view(false), st, naive, k_, partial.get(), eval_blocks);
        std::vector<double> h(static_cast<size_t>(eval_blocks));
        partial.download(h.data(), h.size());
        double s = 0;
        for (double x : h) s += x;
        rec.test_rmse = std::sqrt(s / static_cast<double>(ntest));
        rec.eval_seconds = seconds_since(t1);
        report->total_eval_seconds += rec.eval_seconds;
        report->final_test_rmse = rec.test_rmse;
      }
      rec.fp32_user_groups = kind_ == Kind::kMixed ? U_.table->count_fp32() : (f32_rows ? U_.table->size() : 0);
      rec.fp32_item_groups = kind_ == Kind::kMixed ? I_.table->count_fp32() : (f32_rows ? I_.table->size() : 0);
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
    to_float(U_, P);
    to_float(I_, Q);
  }

 private:
  void init_side(Side* s, const std::vector<int32_t>& old, bool f32_rows, float std, uint64_t seed, uint64_t stream) {
    const size_t n = static_cast<size_t>(s->rows) * k_;
    DeviceBuffer<int32_t> dold(old.size());
    dold.upload(old.data(), old.size());
    // both storages are (re)set here, so a side never keeps a buffer of an earlier fit (widen
    // allocates the FP32 rows at the first switch only when there are none)
    s->f32.reset(f32_rows ? n : 0);
    s->f16.reset(f32_rows ? 0 : n);
    MASCOT_LAUNCH(grid_for(static_cast<int64_t>(n)), 256, init_kernel)(s->f32.get(), s->f16.get(), dold.get(), s->rows, k_, std,
                                                            seed, stream);
    MASCOT_CUDA_CHECK_LAUNCH();
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());  // dold is freed at scope exit
  }

  std::vector<double> qerror(Side* s, int slots) const { return qerror_of(s, slots, k_); }

  /// Group g of side s switched to FP32 (the Switcher already marked the table): convert its
  /// rows on the device; the FP32 buffer is allocated at the first switch.
  bool widen(Side* s, char tag, int g, int epoch, RunReport* report) {
    if (!s->f32 || s->f32.size() != static_cast<size_t>(s->rows) * k_) s->f32.reset(static_cast<size_t>(s->rows) * k_);
    const int64_t a = static_cast<int64_t>(s->table->start[g]) * k_, b = static_cast<int64_t>(s->table->start[g + 1]) * k_;
    if (b > a) {
      MASCOT_LAUNCH(grid_for(b - a), 256, widen_kernel)(s->f16.get(), s->f32.get(), a, b);
      MASCOT_CUDA_CHECK_LAUNCH();
    }
    report->switches.push_back(SwitchEvent{tag, g, epoch});
    return true;
  }

  std::string mpt_json(const DeviceBuffer<unsigned long long>& counts, const DeviceBuffer<float>& scale,
                       const TrainConfig& cfg, int64_t* skipped_total) const {
    unsigned long long c[2] = {0, 0};
    counts.download(c, 2);
    std::vector<float> s(scale.size());
    scale.download(s.data(), s.size());
    const auto mm = std::minmax_element(s.begin(), s.end());
    *skipped_total += static_cast<int64_t>(c[1]);
    detail::JsonWriter j;
    j.begin_object();
    j.kv("name", "mpt").kv("dynamic_loss_scale", cfg.competing.dynamic_loss_scale);
    j.kv("loss_scale_min", static_cast<double>(*mm.first)).kv("loss_scale_max", static_cast<double>(*mm.second));
    // the GPU's workers are the warps of the grid (thousands): their count and the min/max above
    // instead of the CPU's per-worker "loss_scales" list, which would add ~4 MB to a 50-epoch report
    j.kv("workers", static_cast<int64_t>(s.size()));
    j.kv("updates", static_cast<int64_t>(c[0])).kv("skipped_updates", static_cast<int64_t>(c[1]));
    j.kv("skipped_total", *skipped_total);
    j.end_object();
    return j.str();
  }

  void to_float(const Side& s, std::vector<float>* out) const {
    const size_t n = static_cast<size_t>(s.rows) * k_;
    out->resize(n);
    if (kind_ == Kind::kF32 || kind_ == Kind::kMpt || kind_ == Kind::kMuppet || kind_ == Kind::kAfp) {
      s.f32.download(out->data(), n);
      return;
    }
    std::vector<uint16_t> h(n);
    s.f16.download(h.data(), n);
    std::vector<float> f;
    if (s.f32) {
      f.resize(n);
      s.f32.download(f.data(), n);
    }
    const GroupTable& t = *s.table;
    for (int g = 0; g < t.size(); ++g) {
      const size_t a = static_cast<size_t>(t.start[g]) * k_, b = static_cast<size_t>(t.start[g + 1]) * k_;
      const bool f32 = kind_ == Kind::kMixed && t.precision[g] == Precision::kFp32;
      for (size_t x = a; x < b; ++x) (*out)[x] = f32 ? f[x] : detail::half_to_float(h[x]);
    }
  }

  int k_ = 0;
  Kind kind_ = Kind::kF32;
  Side U_, I_;
  MuppetHost muppet_;
  AfpHost afp_;
};

}  // namespace
}  // namespace mascot::cuda

namespace mascot::detail {

// auto picks the GPU only when the kernels can run on it: a visible device of compute
// capability 8.0 or newer (older GPUs train on the CPU under auto; --device cuda names the reason)
bool cuda_training_available() noexcept {
  if (cuda::lost_context() != cudaSuccess) return false;  // an earlier device fault: the CPU trains
  int n = 0, id = 0;
  cudaDeviceProp prop{};
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0 || cudaGetDevice(&id) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, id) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return prop.major >= 8;
}

std::unique_ptr<LegacyBackend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }

}  // namespace mascot::detail

namespace mascot::detail {

std::vector<double> cuda_qerror(const std::vector<float>& grads, const std::vector<int32_t>& group, int groups, int k,
                                int slots) {
  MASCOT_CHECK_ARG(cuda::supported_k(k), cuda::unsupported_k_message(k));
  MASCOT_CHECK_ARG(groups >= 1, "groups must be >= 1");
  MASCOT_CHECK_ARG(slots >= 1 && slots <= 1024, "slots must be in [1, 1024]");
  const size_t n = group.size();
  MASCOT_CHECK_ARG(grads.size() == n * static_cast<size_t>(k), "grads must be n x k with n = len(group)");
  for (int32_t g : group) MASCOT_CHECK_ARG(g >= 0 && g < groups, "group ids must be in [0, groups)");
  const cuda::DeviceInfo dev = cuda::check_device();
  cuda::Side s;
  cuda::alloc_accumulators(&s, groups, k, slots);
  s.sum.zero();
  s.sq.zero();
  s.n.zero();
  cuda::DeviceBuffer<float> dg(grads.size());
  dg.upload(grads.data(), grads.size());
  cuda::DeviceBuffer<int32_t> dgr(n);
  dgr.upload(group.data(), n);
  cuda::DSide v;
  v.groups = groups;
  v.grad_sum = s.sum.get();
  v.grad_sq = s.sq.get();
  v.grad_n = s.n.get();
  if (n > 0) cuda::launch_accumulate(dg.get(), dgr.get(), static_cast<int64_t>(n), v, k, slots, dev.sms * 8);
  MASCOT_CUDA_CHECK(cudaDeviceSynchronize());
  return cuda::qerror_of(&s, slots, k);
}

}  // namespace mascot::detail
