// Kernel-side data structures of the CUDA backend and the host functions that launch the
// kernels (internal to cuda/; included only by .cu files).  Every pointer in these structs is
// DEVICE memory owned by the trainer (cuda_trainer.cu, DeviceBuffer); the kernels never
// allocate.  Work mapping: one warp per rating; lane l holds E = ceil(k / 32) elements of both
// rows in chunks of 4, 2 or 1 consecutive elements interleaved across the lanes (RowLayout,
// device_common.cuh: every warp instruction covers 32 consecutive chunks), FP32 arithmetic in
// registers, shuffle reductions.  The SGD kernels are specialised per launch on the storage,
// the write mode, the rounding and whether gradients are sampled (sgd_kernels.cu).
// A warp first fetches the records (and, for MASCOT, the groups and precisions) of 32
// ratings at once, one per lane, then updates them one after another: the index arithmetic
// of the visiting order and the group lookup are spread over the lanes instead of being
// repeated by all 32.
#pragma once
#include <cstdint>
#include <string>

#include "mascot/detail/competing_params.h"
#include "mascot/detail/fixed_point.h"

namespace mascot::cuda {

/// One training or test rating in relabelled ids (12 bytes, as cpu::Rec).
struct DRec {
  int32_t u;
  int32_t i;
  float r;
};

/// How the rows of one side are stored this epoch.
enum class Store : int {
  kF32 = 0,    ///< every row in f32
  kF16 = 1,    ///< every row in f16
  kMixed = 2,  ///< per group: fp32[group] ? f32 : f16 (MASCOT family)
};

enum class DOrder : int { kShuffle = 0, kChunk = 1 };

/// One side (users or items) of the model on the device.
struct DSide {
  float* f32 = nullptr;            ///< rows x k, FP32 rows (null until a group is FP32)
  uint16_t* f16 = nullptr;         ///< rows x k, FP16 bits
  const int32_t* start = nullptr;  ///< groups + 1 boundaries
  const uint8_t* fp32 = nullptr;   ///< per group: 1 = rows in f32
  int groups = 0;
  // q-error sampling (measured epochs, else null): `slots` copies of the accumulators, a
  // block adds into copy blockIdx.x % slots with double atomics (no lost updates; the copies
  // spread the contention on the most-rated groups), reduce_slots() sums them in slot order.
  double* grad_sum = nullptr;            ///< slots x groups x k
  double* grad_sq = nullptr;             ///< slots x groups
  unsigned long long* grad_n = nullptr;  ///< slots x groups
};

/// Number of groups whose boundaries the optimised lookup keeps in shared memory (the
/// most-rated ones: group 0 first).  Groups beyond are binary-searched in global memory.
constexpr int kHotGroups = 512;
constexpr int kThreads = 256;  ///< threads per block of the SGD kernels (8 warps)

struct AfpWarp;

struct SgdArgs {
  const DRec* recs = nullptr;
  int64_t nnz = 0;
  DOrder order = DOrder::kShuffle;
  int64_t tasks = 0;                    ///< ratings visited this epoch
  uint32_t perm_key[4] = {0, 0, 0, 0};  ///< shuffle: Feistel round keys of this epoch
  int perm_half_bits = 1;               ///< shuffle: permutation domain 2^(2 * half_bits) >= nnz
  uint64_t chunk_seed = 0;              ///< chunk: draw d starts at hash3(chunk_seed, 1, d) % (nnz - len + 1)
  int64_t chunk_len = 128;
  int k = 0;
  float lr = 0, lambda_p = 0, lambda_q = 0;
  bool stochastic = false;    ///< FP16 stores round stochastically (FP32 arithmetic only)
  uint64_t round_seed = 0;    ///< as cpu::SgdParams::round_seed
  Store store = Store::kF32;  ///< applies to both sides
  DSide U, I;
  bool naive = false;                          ///< mascot-naive: group lookup in global memory
  bool measure = false;                        ///< sample gradients for the q-error
  uint64_t sample_seed = 0, sample_below = 0;  ///< as cpu::MixedParams
  int slots = 1;
  bool merge = true;  ///< write updated rows as reductions of the change (device_common.cuh, detail/hogwild.h)
  // mpt only
  float* mpt_scale = nullptr;                ///< per warp of the grid: loss scale S
  int* mpt_clean = nullptr;                  ///< per warp: clean updates since the last change of S
  unsigned long long* mpt_counts = nullptr;  ///< [0] updates, [1] skipped (this epoch)
  bool mpt_dynamic = false;
  int mpt_window = 2000;
  uint64_t mpt_epoch_key = 0;  ///< as detail::epoch_round_key(seed, 1, epoch)
                               ///< (muppet: method tag 2, afp: 3; the same field)
  // muppet only (fixed-point levels; word_length 0 = the FP32 level)
  int mu_word_length = 0;
  int* mu_frac = nullptr;                     ///< per warp: frac bits of P, Q (2 ints), lowered on growth
  unsigned long long* mu_rescales = nullptr;  ///< one counter: rescales this epoch
  float* mu_batch = nullptr;                  ///< mu_batch_warps x 2k: the last gradient (p part, q part) of warp w
  int* mu_batch_n = nullptr;                  ///< per recording warp: 1 when it recorded a gradient
  int mu_batch_warps = 0;                     ///< warps 0..mu_batch_warps-1 record (the epoch's last mini-batch)
  // afp only
  AfpWarp* afp = nullptr;      ///< per warp: AFP's per-worker state
  int2* afp_recent = nullptr;  ///< per warp x 32 lanes: lane j holds the (P, Q) rows read in
                               ///< the warp's iterations with epoch_iter % 32 == j
  int afp_low_bits = 8;
  float afp_max_p = 0, afp_max_q = 0;  ///< max |x| of P and Q at the epoch's start
  double afp_error_threshold = 0, afp_alpha = 0, afp_beta = 0, afp_gamma = 0, afp_delta = 0;
  int afp_high_bits = 16;
};

/// AFP's state of one worker (a warp), cpu/afp.cc Afp::Worker without the scratch rows.
struct AfpStats {
  long long evals = 0, saturated = 0, to_high = 0, itv_max = 0;
  double err_sum = 0, err_max = 0, itv_sum = 0;
};
struct AfpWarp {
  detail::AfpTensorState st[3];  ///< P, Q, G
  detail::FixedFormat fmt[3];
  float fmax[3];  ///< largest value fmt can hold (0: not evaluated yet)
  AfpStats stats[3];
  float run_max[2];
  long long iter;        ///< this worker's iterations (ratings), across epochs
  long long epoch_iter;  ///< ... in this epoch (slot of the recent rows: epoch_iter % 32)
};

/// Resident blocks per SM of the SGD kernel (mpt = false; flag: half math) or the MPT kernel
/// (mpt = true; flag: stochastic rounding) at this k (cudaOccupancyMaxActiveBlocksPerMultiprocessor).
int blocks_per_sm(int k, bool mpt, bool flag);
/// The same for the MuPPET (which = 0) or AFP (which = 1) kernel.
int competing_blocks_per_sm(int k, int which);
/// SGD pass of fp32 / fp16 / mascot-n1 / mascot family (half_math: method fp16).  Throws
/// InvalidArgument for k outside [1, 512].
void launch_sgd(const SgdArgs& a, bool half_math, int blocks);
/// SGD pass of MPT on FP32 masters (a.store must be kF32).
void launch_mpt(const SgdArgs& a, int blocks);
/// SGD pass of MuPPET / AFP on FP32 masters.
void launch_muppet(const SgdArgs& a, int blocks);
void launch_afp(const SgdArgs& a, int blocks);
/// *out = max(*out, max |x| over x[0..n)) as float bits (out: one device uint32, >= 0 floats).
void launch_max_abs(const float* x, int64_t n, unsigned int* out);
/// Loads the helper kernels of sgd_kernels.cu that first run inside a timed pass (max_abs):
/// CUDA loads kernels lazily (CUDA_MODULE_LOADING=LAZY, the default since 12.2), and a load
/// inside a timed epoch would be counted as training time.
void preload_helper_kernels();
/// Sum of squared errors of the test ratings, one double per block in partial[0..blocks).
void launch_sse(const DRec* recs, int64_t n, const DSide& U, const DSide& I, Store store, bool naive, int k,
                double* partial, int blocks);

/// out[g * k + j] = sum over the slots s (in slot order) of the q-error gradient sums in[s][g],
/// element j (the accumulators are lane-contiguous, acc_element; out is in element order):
/// groups x k doubles, deterministic.
void launch_reduce_grad_sums(const double* in, double* out, int groups, int k, int slots);

/// Test hook: adds gradients grads (n x k) of groups group[0..n) into s's accumulators with
/// the SGD kernel's sampling code (slot b % slots for block b).
void launch_accumulate(const float* grads, const int32_t* group, int64_t n, const DSide& s, int k, int slots,
                       int blocks);

/// Whether k is supported by the kernels: any k in [1, 512] (row_layout).
inline bool supported_k(int k) { return k >= 1 && k <= 512; }
inline std::string unsupported_k_message(int k) {
  return "k must be between 1 and 512 on the cuda device (got " + std::to_string(k) +
         "); use --device cpu for larger k";
}
/// The row layout of the kernels for k (device_common.cuh, RowLayout): e values per lane in
/// chunks of w consecutive elements; mask: lanes past the row's end stay idle.
struct RowShape {
  int e, w;
  bool mask;
};
MASCOT_HD RowShape row_layout(int k) {
  if (k == 32 || k == 64 || k == 128 || k == 256 || k == 512) return {k / 32, k == 32 ? 1 : k == 64 ? 2 : 4, false};
  int e = 1;
  while (32 * e < k) e *= 2;
  return {e, 1, true};
}
MASCOT_HD int row_chunk(int k) { return row_layout(k).w; }
/// Element index of position `pos` of a lane-contiguous q-error accumulator of a k-vector
/// (device_common.cuh, RowLayout::acc_pos: position x * 32 + lane holds the lane's x-th value).
MASCOT_HD int acc_element(int pos, int k) {
  const int w = row_chunk(k), lane = pos % 32, x = pos / 32;
  return ((x / w) * 32 + lane) * w + x % w;
}

}  // namespace mascot::cuda
