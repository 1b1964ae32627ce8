// CUDA backend (a plug-in of the driver, detail/backend.h).  Owns, for one run, the device
// copies of the training and test ratings, the factor rows P and Q in the storage the driver
// names (DeviceBuffer: freed on every path), its copy of the group tables, the q-error
// accumulators and the competing methods' per-warp state:
//   kFp32, kFp32Master   -> FP32 rows (fp32; mpt, muppet, afp)
//   kFp16                -> FP16 rows (fp16: half arithmetic; mascot-n1)
//   kPerGroup            -> FP16 rows; when the driver switches a group (widen_groups) its rows
//                           are converted to the FP32 buffer on the device (allocated at the
//                           first switch)
// Per epoch: the SGD pass (kernels in sgd_kernels.cu, competing_kernels.cu); on a sampled epoch
// the per-group gradient sums come to the host (O(g k) doubles, never the model) for the
// driver's q-errors; test SSE on the device.  Only those sums, g precision flags, the final
// factors and checkpoints cross the bus.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
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
#include "mascot/detail/binio.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/state_checks.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/methods.h"

namespace mascot::cuda {
namespace {

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
    const float v =
        static_cast<float>(static_cast<double>(std) *
                           detail::normal_from(detail::hash3(seed, stream, c), detail::hash3(seed, stream, c + 1)));
    if (f32)
      f32[x] = v;
    else
      f16[x] = __half_as_ushort(__float2half_rn(v));
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

/// Which kernels train a run: the storage (methods.h) and, for the FP16 rows and FP32 masters,
/// the method's arithmetic.
enum class Kind { kF32, kF16, kHalfMath, kMixed, kMpt, kMuppet, kAfp };

Kind kind_of(Method m, Storage storage) {
  const MethodTraits& t = method_traits(m);
  if (!t.cuda) throw CudaError("method '" + to_string(m) + "' is not implemented on the cuda device");
  switch (storage) {
    case Storage::kFp32:
      return Kind::kF32;
    case Storage::kFp16:
      return t.arithmetic == Arithmetic::kFp16 ? Kind::kHalfMath : Kind::kF16;
    case Storage::kPerGroup:
      return Kind::kMixed;
    case Storage::kFp32Master:
      break;
  }
  if (t.arithmetic == Arithmetic::kFp16Products) return Kind::kMpt;
  return m == Method::kMuppet ? Kind::kMuppet : Kind::kAfp;
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
  GroupTable* table = nullptr;  ///< the backend's copy (precisions change in widen_groups)

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

  // checkpoint: the policy (level, max diversity, violations), the open diversity window and the
  // switch history; the scales and the device buffers are re-derived in begin_epoch
  void export_state(detail::BinWriter& w) const {
    w.pod(policy_);
    w.vec(win_.p);
    w.vec(win_.q);
    w.pod(win_.norm_p);
    w.pod(win_.norm_q);
    w.vec(switches_);
  }
  void import_state(detail::BinReader& r) {
    policy_ = r.pod<detail::MuppetPolicy>();
    if (!detail::bool_byte_ok(policy_.evaluated) || !std::isfinite(policy_.max_gd) || !std::isfinite(policy_.ratio) ||
        !std::isfinite(policy_.threshold) || policy_.violations < 0 || !std::isfinite(policy_.compared_max) ||
        policy_.violations_seen < 0)
      r.fail("muppet policy state out of range");
    if (policy_.levels != static_cast<int>(c_.muppet_word_lengths.size()) || policy_.level < 0 ||
        policy_.level > policy_.levels)
      r.fail("muppet policy level out of range");
    win_.p = r.vec<double>();
    win_.q = r.vec<double>();
    if (win_.p.size() != static_cast<size_t>(k_) || win_.q.size() != static_cast<size_t>(k_)) r.fail("wrong k");
    r.pod(&win_.norm_p);
    r.pod(&win_.norm_q);
    switches_ = r.vec<int>();
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

  // checkpoint: each warp's per-tensor state, formats in use and iteration count (host_ mirrors
  // the device after end_epoch; begin_epoch resets the per-epoch parts and uploads it)
  void export_state(detail::BinWriter& w) const {
    w.pod(static_cast<uint64_t>(host_.size()));
    for (const AfpWarp& x : host_) {
      for (int t = 0; t < 3; ++t) {
        w.pod(x.st[t]);
        w.pod(x.fmt[t]);
        w.pod(x.fmax[t]);
      }
      w.pod(static_cast<int64_t>(x.iter));
    }
  }
  void import_state(detail::BinReader& r) {
    if (r.pod<uint64_t>() != host_.size()) r.fail("afp state of another number of warps");
    for (AfpWarp& x : host_) {
      for (int t = 0; t < 3; ++t) {
        r.pod(&x.st[t]);
        r.pod(&x.fmt[t]);
        r.pod(&x.fmax[t]);
        const detail::AfpTensorState& st = x.st[t];
        if ((st.bits != c_.afp_low_bits && st.bits != c_.afp_high_bits) || st.pos < -300 || st.pos > 300 ||
            st.next < 0 || st.interval < 0 || !detail::bool_byte_ok(st.has_avg) || !(std::fabs(st.mov_avg) <= 300) ||
            !detail::format_ok(x.fmt[t]) || !std::isfinite(x.fmax[t]))
          r.fail("afp tensor state out of range or from other settings");
      }
      const int64_t iter = r.pod<int64_t>();
      if (iter < 0) r.fail("afp: negative iteration count");
      x.iter = static_cast<long long>(iter);
    }
  }

 private:
  CompetingParams c_;
  std::vector<AfpWarp> host_;
  DeviceBuffer<AfpWarp> dev_;
  DeviceBuffer<int2> recent_;
  DeviceBuffer<unsigned int> max_;
  float max_p_ = 0, max_q_ = 0;
};

/// Reduces the slot copies of s's accumulators on the device and brings the O(g k) sums to the
/// host (in slot order: deterministic for a deterministic pass).
detail::GradSums sums_of(Side* s, int slots, int k) {
  const int g = s->table ? s->table->size() : static_cast<int>(s->tsq.size());
  const int64_t gk = static_cast<int64_t>(g) * k;
  launch_reduce_grad_sums(s->sum.get(), s->tsum.get(), g, k, slots);  // lane-contiguous -> element order
  MASCOT_LAUNCH(grid_for(g), 256, reduce_slots_kernel<double>)(s->sq.get(), s->tsq.get(), g, slots);
  MASCOT_CUDA_CHECK_LAUNCH();
  MASCOT_LAUNCH(grid_for(g), 256, reduce_slots_kernel<unsigned long long>)(s->n.get(), s->tn.get(), g, slots);
  MASCOT_CUDA_CHECK_LAUNCH();
  detail::GradSums r;
  r.sum.resize(static_cast<size_t>(gk));
  r.sq.resize(static_cast<size_t>(g));
  std::vector<unsigned long long> n(static_cast<size_t>(g));
  s->tsum.download(r.sum.data(), r.sum.size());
  s->tsq.download(r.sq.data(), r.sq.size());
  s->tn.download(n.data(), n.size());
  r.n.assign(n.begin(), n.end());
  return r;
}

/// Eq. 4 on s's accumulators (detail::qerror_from_sums, the driver's code): the test hook's path.
std::vector<double> qerror_of(Side* s, int slots, int k) {
  const detail::GradSums r = sums_of(s, slots, k);
  return detail::qerror_from_sums(r.sum.data(), r.sq.data(), r.n.data(), static_cast<int>(r.sq.size()), k);
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

class CudaBackend final : public detail::Backend {
 public:
  const char* name() const override { return "cuda"; }
  std::string describe() const override { return describe_; }

  void prepare(const detail::FitInput& in) override {
    cfg_ = *in.cfg;
    seed_ = in.ctx->seed;
    k_ = cfg_.k;
    kind_ = kind_of(cfg_.method, in.storage);
    const auto bad = [](const std::string& m) { throw_invalid(m); };
    merge_ = detail::hogwild_merge(bad);
    const double overlap = detail::hogwild_overlap(merge_, bad);
    const DeviceInfo dev = check_device();
    preload_kernels();
    nnz_ = in.train->nnz();
    MASCOT_CHECK_ARG(nnz_ < (int64_t(1) << 32), "the cuda device handles fewer than 2^32 training ratings");

    ut_ = *in.user_groups;
    it_ = *in.item_groups;
    U_.rows = in.train->n_users;
    I_.rows = in.train->n_items;
    U_.table = &ut_;
    I_.table = &it_;

    // ratings
    train_.reset(static_cast<size_t>(nnz_));
    {
      const std::vector<DRec> h = to_drecs(*in.train);
      train_.upload(h.data(), h.size());
    }
    if (in.test && in.test->nnz() > 0) {
      ntest_ = in.test->nnz();
      const std::vector<DRec> h = to_drecs(*in.test);
      test_.reset(h.size());
      test_.upload(h.data(), h.size());
    }
    if (in.valid && in.valid->nnz() > 0) {
      nvalid_ = in.valid->nnz();
      const std::vector<DRec> h = to_drecs(*in.valid);
      valid_.reset(h.size());
      valid_.upload(h.data(), h.size());
    }

    // factors
    init_side(&U_, *in.user_old, f32_rows(), cfg_.init_std, seed_, detail::kStreamInitP);
    init_side(&I_, *in.item_old, f32_rows(), cfg_.init_std, seed_, detail::kStreamInitQ);

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
                                                          kind_ == Kind::kMpt ? cfg_.rounding == Rounding::kStochastic
                                                                              : kind_ == Kind::kHalfMath));
    // ... and no more warps (Hogwild workers) than keep the most-rated row's concurrent
    // updates near the overlap bound of the write mode (detail/hogwild.h): whole blocks, at
    // least one
    constexpr int kWarpsPerBlock = kThreads / 32;
    const int64_t workers = detail::hogwild_workers(static_cast<int64_t>(fill_blocks) * kWarpsPerBlock,
                                                    max_row_ratings(*in.train), nnz_, overlap);
    blocks_ = static_cast<int>(std::max<int64_t>(1, workers / kWarpsPerBlock));
    warps_ = static_cast<int64_t>(blocks_) * kWarpsPerBlock;
    describe_ =
        "cuda (" + dev.name + ", " + std::to_string(warps_) + " warps, " + (merge_ ? "add" : "store") + " writes)";
    eval_blocks_ = dev.sms * 4;
    partial_.reset(static_cast<size_t>(eval_blocks_));

    // q-error accumulators: `slots` copies per side, at most ~64 MiB in all
    if (kind_ == Kind::kMixed) {
      const size_t per = static_cast<size_t>(U_.table->size() + I_.table->size()) * (k_ + 2) * 8;
      slots_ = static_cast<int>(std::max<size_t>(1, std::min<size_t>(64, (size_t(64) << 20) / per)));
      for (Side* s : {&U_, &I_}) alloc_accumulators(s, s->table->size(), k_, slots_);
    }

    // MPT: one loss scale per warp of the grid (a warp is a Hogwild worker)
    if (kind_ == Kind::kMpt) {
      std::vector<float> s(static_cast<size_t>(warps_), cfg_.competing.loss_scale);
      mpt_scale_.reset(s.size());
      mpt_scale_.upload(s.data(), s.size());
      mpt_clean_.reset(s.size());
      mpt_clean_.zero();
      mpt_counts_.reset(2);
    }
    if (kind_ == Kind::kMuppet) muppet_.init(cfg_, warps_);
    if (kind_ == Kind::kAfp) afp_.init(cfg_, warps_);

    half_bits_ = 1;
    while ((int64_t(1) << (2 * half_bits_)) < nnz_) ++half_bits_;
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());
  }

  detail::EpochResult run_epoch(const detail::EpochPlan& plan) override {
    const int e = plan.epoch;
    SgdArgs a;
    a.recs = train_.get();
    a.nnz = nnz_;
    const uint64_t eseed = detail::hash3(seed_, detail::kStreamOrder, 0x100000000ull + static_cast<uint64_t>(e));
    if (cfg_.order == Order::kChunk) {
      const int64_t chunk_len = std::min<int64_t>(128, nnz_);
      a.order = DOrder::kChunk;
      a.chunk_seed = eseed;  // the CPU Schedule's draws: hash3(eseed, 1, d) % (nnz - len + 1)
      a.chunk_len = chunk_len;
      a.tasks = std::max<int64_t>(1, nnz_ / 128) * chunk_len;
    } else {
      a.order = DOrder::kShuffle;
      for (int r = 0; r < 4; ++r)
        a.perm_key[r] = static_cast<uint32_t>(detail::hash3(eseed, 7, static_cast<uint64_t>(r)));
      a.perm_half_bits = half_bits_;
      a.tasks = nnz_;
    }
    a.k = k_;
    a.lr = plan.lr;
    a.lambda_p = cfg_.lambda_p;
    a.lambda_q = cfg_.lambda_q;
    a.stochastic = cfg_.rounding == Rounding::kStochastic && kind_ != Kind::kF32 && kind_ != Kind::kHalfMath;
    a.round_seed = plan.round_seed;
    a.naive = cfg_.method == Method::kMascotNaive;
    a.slots = slots_;
    a.merge = merge_;

    detail::EpochResult res;
    if (kind_ == Kind::kMpt) {
      a.store = Store::kF32;
      a.U = U_.view(false);
      a.I = I_.view(false);
      a.mpt_scale = mpt_scale_.get();
      a.mpt_clean = mpt_clean_.get();
      a.mpt_counts = mpt_counts_.get();
      a.mpt_dynamic = cfg_.competing.dynamic_loss_scale;
      a.mpt_window = cfg_.competing.loss_scale_window;
      a.mpt_epoch_key = detail::epoch_round_key(seed_, 1, e);
      mpt_counts_.zero();
      launch_mpt(a, blocks_);
    } else if (kind_ == Kind::kMuppet || kind_ == Kind::kAfp) {
      a.store = Store::kF32;
      a.U = U_.view(false);
      a.I = I_.view(false);
      a.mpt_epoch_key = detail::epoch_round_key(seed_, kind_ == Kind::kMuppet ? 2 : 3, e);
      if (kind_ == Kind::kMuppet) {
        muppet_.begin_epoch(U_, I_, k_, &a);
        launch_muppet(a, blocks_);
        res.method_json = muppet_.end_epoch(e, k_);
      } else {
        afp_.begin_epoch(U_, I_, k_, &a);
        launch_afp(a, blocks_);
        res.method_json = afp_.end_epoch();
      }
    } else if (kind_ != Kind::kMixed) {
      a.store = kind_ == Kind::kF32 ? Store::kF32 : Store::kF16;
      a.U = U_.view(false);
      a.I = I_.view(false);
      launch_sgd(a, kind_ == Kind::kHalfMath, blocks_);
    } else {
      const bool measure = plan.sample;  // the cuda device takes no grad_stats: sampled = measured
      const int user32 = ut_.count_fp32(), item32 = it_.count_fp32();
      const bool all16 = user32 == 0 && item32 == 0, all32 = user32 == ut_.size() && item32 == it_.size();
      // uniform precision and nothing to sample: the plain kernels, no group lookups
      a.store = measure ? Store::kMixed : all16 ? Store::kF16 : all32 ? Store::kF32 : Store::kMixed;
      a.measure = measure;
      a.sample_seed = plan.sample_seed;
      a.sample_below = plan.sample_below;
      if (measure) {
        for (Side* s : {&U_, &I_}) {
          s->sum.zero();
          s->sq.zero();
          s->n.zero();
        }
      }
      a.U = U_.view(measure);
      a.I = I_.view(measure);
      launch_sgd(a, false, blocks_);
      if (measure) {
        res.user = sums_of(&U_, slots_, k_);
        res.item = sums_of(&I_, slots_, k_);
      }
    }
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());  // the pass is timed to its completion
    res.updates = a.tasks;
    if (kind_ == Kind::kMpt) res.method_json = mpt_json();
    ++epochs_run_;
    return res;
  }

  /// The groups of one side switched to FP32 (the driver's Switcher decided): mark them in this
  /// backend's table, convert their rows on the device (the FP32 buffer is allocated at the first
  /// switch) and upload the side's flags; complete on return (the driver times it).
  void widen_groups(char tag, const std::vector<int>& groups) override {
    Side* s = tag == 'u' ? &U_ : &I_;
    if (!s->f32 || s->f32.size() != static_cast<size_t>(s->rows) * k_) s->f32.reset(static_cast<size_t>(s->rows) * k_);
    for (int g : groups) {
      s->table->precision[g] = Precision::kFp32;
      const int64_t a = static_cast<int64_t>(s->table->start[g]) * k_;
      const int64_t b = static_cast<int64_t>(s->table->start[g + 1]) * k_;
      if (b > a) {
        MASCOT_LAUNCH(grid_for(b - a), 256, widen_kernel)(s->f16.get(), s->f32.get(), a, b);
        MASCOT_CUDA_CHECK_LAUNCH();
      }
    }
    s->upload_flags();
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());
  }

  double eval_sse(detail::EvalSet set) override {
    const bool valid = set == detail::EvalSet::kValid;
    const Store st = kind_ == Kind::kMixed ? Store::kMixed : f32_rows() ? Store::kF32 : Store::kF16;
    launch_sse(valid ? valid_.get() : test_.get(), valid ? nvalid_ : ntest_, U_.view(false), I_.view(false), st,
               cfg_.method == Method::kMascotNaive, k_, partial_.get(), eval_blocks_);
    std::vector<double> h(static_cast<size_t>(eval_blocks_));
    partial_.download(h.data(), h.size());
    double s = 0;
    for (double x : h) s += x;
    return s;
  }

  void factors(std::vector<float>* P, std::vector<float>* Q) const override {
    to_float(U_, P);
    to_float(I_, Q);
  }

  // Checkpoint state: "cuda_state" blob (kernel kind, shapes, warps of the launch, completed
  // epochs, the method's per-warp state: MPT loss scales and clean-update counters, MuPPET's
  // policy and window, AFP's per-warp tensor states; which factor buffers exist) + the factor
  // buffers in their storage.  The per-warp state ties a checkpoint to the launch shape: a
  // resume must launch as many warps (the same GPU model and MASCOT_CUDA_* settings).
  void export_state(detail::StateWriter& out) const override {
    detail::BinWriter w;
    w.str("cuda");
    w.pod(static_cast<int32_t>(kind_));
    w.pod(static_cast<int32_t>(k_));
    w.pod(U_.rows);
    w.pod(I_.rows);
    w.pod(warps_);
    w.pod(static_cast<int32_t>(epochs_run_));
    if (kind_ == Kind::kMpt) {
      std::vector<float> scale(mpt_scale_.size());
      std::vector<int> clean(mpt_clean_.size());
      mpt_scale_.download(scale.data(), scale.size());
      mpt_clean_.download(clean.data(), clean.size());
      w.vec(scale);
      w.vec(clean);
      w.pod(mpt_skipped_total_);
    }
    if (kind_ == Kind::kMuppet) muppet_.export_state(w);
    if (kind_ == Kind::kAfp) afp_.export_state(w);
    const uint8_t have = (U_.f32 ? 1 : 0) | (I_.f32 ? 2 : 0) | (U_.f16 ? 4 : 0) | (I_.f16 ? 8 : 0);
    w.pod(have);
    out.blob("cuda_state", w.bytes());
    export_side(out, U_, "P32", "P16");
    export_side(out, I_, "Q32", "Q16");
  }

  void import_state(detail::StateReader& in, int epochs_done) override {
    const std::string blob = in.blob("cuda_state");
    detail::BinReader r(blob, in.where("cuda_state"));
    if (r.str() != "cuda") r.fail("not a cuda backend state");
    if (r.pod<int32_t>() != static_cast<int32_t>(kind_)) r.fail("saved with another method's storage");
    const int32_t k = r.pod<int32_t>();
    if (k != k_) r.fail("saved with k=" + std::to_string(k) + ", this run has k=" + std::to_string(k_));
    if (r.pod<int64_t>() != U_.rows || r.pod<int64_t>() != I_.rows)
      r.fail("saved for other data (user/item counts differ)");
    const int64_t warps = r.pod<int64_t>();
    if (warps != warps_)
      r.fail("saved with " + std::to_string(warps) + " warps, this run launches " + std::to_string(warps_) +
             " (another GPU model, or other MASCOT_CUDA_OVERLAP / MASCOT_CUDA_WRITES settings)");
    const int32_t done = r.pod<int32_t>();
    std::vector<float> scale;
    std::vector<int> clean;
    if (kind_ == Kind::kMpt) {
      scale = r.vec<float>();
      clean = r.vec<int>();
      mpt_skipped_total_ = r.pod<int64_t>();
      if (scale.size() != static_cast<size_t>(warps_) || clean.size() != scale.size() || mpt_skipped_total_ < 0)
        r.fail("mpt state of another number of warps");
      for (size_t x = 0; x < scale.size(); ++x)
        if (!(scale[x] >= detail::MptLossScale::kMin && scale[x] <= detail::MptLossScale::kMax) || clean[x] < 0)
          r.fail("mpt loss scale state out of range");
    }
    if (kind_ == Kind::kMuppet) muppet_.import_state(r);
    if (kind_ == Kind::kAfp) afp_.import_state(r);
    const uint8_t have = r.pod<uint8_t>();
    r.expect_done();
    // the factor files this storage needs: FP32 rows where some group is FP32 (after the replayed
    // switches), FP16 rows where some group is FP16
    uint8_t need = 0;
    if (f32_rows()) {
      need = 3;
    } else if (kind_ != Kind::kMixed) {
      need = 12;
    } else {
      need |= ut_.count_fp32() > 0 ? 1 : 0;
      need |= it_.count_fp32() > 0 ? 2 : 0;
      need |= ut_.count_fp32() < ut_.size() ? 4 : 0;
      need |= it_.count_fp32() < it_.size() ? 8 : 0;
    }
    if ((have & need) != need) r.fail("lacks factor matrices this storage needs");
    if (done != epochs_done)
      r.fail("corrupted (epoch count " + std::to_string(done) + ", the run state has " + std::to_string(epochs_done) +
             ")");
    if (kind_ == Kind::kMpt) {
      mpt_scale_.upload(scale.data(), scale.size());
      mpt_clean_.upload(clean.data(), clean.size());
    }
    import_side(in, &U_, "P32", "P16", have & 1, have & 4);
    import_side(in, &I_, "Q32", "Q16", have & 2, have & 8);
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());
    epochs_run_ = done;
  }

 private:
  bool f32_rows() const {
    return kind_ == Kind::kF32 || kind_ == Kind::kMpt || kind_ == Kind::kMuppet || kind_ == Kind::kAfp;
  }

  void init_side(Side* s, const std::vector<int32_t>& old, bool f32, float std, uint64_t seed, uint64_t stream) {
    const size_t n = static_cast<size_t>(s->rows) * k_;
    DeviceBuffer<int32_t> dold(old.size());
    dold.upload(old.data(), old.size());
    // widen allocates the FP32 rows of a per-group side at the first switch
    s->f32.reset(f32 ? n : 0);
    s->f16.reset(f32 ? 0 : n);
    MASCOT_LAUNCH(grid_for(static_cast<int64_t>(n)), 256, init_kernel)(s->f32.get(), s->f16.get(), dold.get(), s->rows,
                                                                       k_, std, seed, stream);
    MASCOT_CUDA_CHECK_LAUNCH();
    MASCOT_CUDA_CHECK(cudaDeviceSynchronize());  // dold is freed at scope exit
  }

  /// A side's buffers as checkpoint matrices.  The FP32 rows of a per-group side's FP16 groups
  /// were never written (the buffer is allocated at the first switch): they are saved as zeros.
  void export_side(detail::StateWriter& out, const Side& s, const char* n32, const char* n16) const {
    const size_t n = static_cast<size_t>(s.rows) * k_;
    if (s.f32) {
      std::vector<float> h(n);
      s.f32.download(h.data(), n);
      if (kind_ == Kind::kMixed) {
        const GroupTable& t = *s.table;
        for (int g = 0; g < t.size(); ++g)
          if (t.precision[g] != Precision::kFp32)
            std::fill(h.begin() + static_cast<int64_t>(t.start[g]) * k_,
                      h.begin() + static_cast<int64_t>(t.start[g + 1]) * k_, 0.0f);
      }
      out.matrix(n32, h.data(), s.rows, k_, 4);
    }
    if (s.f16) {
      std::vector<uint16_t> h(n);
      s.f16.download(h.data(), n);
      out.matrix(n16, h.data(), s.rows, k_, 2);
    }
  }
  void import_side(detail::StateReader& in, Side* s, const char* n32, const char* n16, bool f32, bool f16) {
    const size_t n = static_cast<size_t>(s->rows) * k_;
    if (f32) {
      std::vector<float> h(n);
      in.matrix(n32, h.data(), s->rows, k_, 4);
      if (!s->f32) s->f32.reset(n);
      s->f32.upload(h.data(), n);
    }
    if (f16) {
      std::vector<uint16_t> h(n);
      in.matrix(n16, h.data(), s->rows, k_, 2);
      if (!s->f16) s->f16.reset(n);
      s->f16.upload(h.data(), n);
    }
  }

  std::string mpt_json() {
    unsigned long long c[2] = {0, 0};
    mpt_counts_.download(c, 2);
    std::vector<float> s(mpt_scale_.size());
    mpt_scale_.download(s.data(), s.size());
    const auto mm = std::minmax_element(s.begin(), s.end());
    mpt_skipped_total_ += static_cast<int64_t>(c[1]);
    detail::JsonWriter j;
    j.begin_object();
    j.kv("name", "mpt").kv("dynamic_loss_scale", cfg_.competing.dynamic_loss_scale);
    j.kv("loss_scale_min", static_cast<double>(*mm.first)).kv("loss_scale_max", static_cast<double>(*mm.second));
    // the GPU's workers are the warps of the grid (thousands): their count and the min/max above
    // instead of the CPU's per-worker "loss_scales" list, which would add ~4 MB to a 50-epoch report
    j.kv("workers", static_cast<int64_t>(s.size()));
    j.kv("updates", static_cast<int64_t>(c[0])).kv("skipped_updates", static_cast<int64_t>(c[1]));
    j.kv("skipped_total", mpt_skipped_total_);
    j.end_object();
    return j.str();
  }

  void to_float(const Side& s, std::vector<float>* out) const {
    const size_t n = static_cast<size_t>(s.rows) * k_;
    out->resize(n);
    if (f32_rows()) {
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

  TrainConfig cfg_;
  uint64_t seed_ = 0;
  int k_ = 0;
  Kind kind_ = Kind::kF32;
  bool merge_ = true;
  int64_t nnz_ = 0, ntest_ = 0, nvalid_ = 0;
  DeviceBuffer<DRec> train_, test_, valid_;
  GroupTable ut_, it_;  // this backend's copies: precisions change in widen_groups
  Side U_, I_;
  int blocks_ = 1;
  int64_t warps_ = 0;
  int eval_blocks_ = 1;
  DeviceBuffer<double> partial_;
  int slots_ = 1;
  int half_bits_ = 1;
  // MPT: one loss scale and clean-update counter per warp, the epoch's counts
  DeviceBuffer<float> mpt_scale_;
  DeviceBuffer<int> mpt_clean_;
  DeviceBuffer<unsigned long long> mpt_counts_;
  int64_t mpt_skipped_total_ = 0;
  MuppetHost muppet_;
  AfpHost afp_;
  int epochs_run_ = 0;
  std::string describe_;
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

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }

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
