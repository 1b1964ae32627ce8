// Distributed training pieces: mascot._core.dask_*.  The Dask driver (python/mascot/dask/)
// runs the epochs from the client with small metadata only; each worker calls these on its
// own blocks (docs/design.md §12).  Data flow of one DSGD sub-epoch on a worker: the block's
// ratings in block-local ids (users of the worker's user block, items of the item block it
// holds), the resident P block and the visiting Q block, both in their storage (float32, or
// FP16 bits as uint16 for mascot-n1), updated in place by the CPU kernels of cpu/kernels.h.
// Randomness is detail/rng.h's, keyed additionally by the block so that blocks draw independent
// words: the visiting order and the stochastic-rounding words are pure functions of (seed,
// epoch, block, local ids), so a run is deterministic for a given worker count.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "convert.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/half.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/groups.h"
#include "mascot/reorder.h"

#include "cpu/kernels.h"

namespace nb = nanobind;
using namespace nb::literals;

using namespace mascot;
using namespace mascot::bind;

namespace {

using Rows = nb::ndarray<nb::ndim<2>, nb::c_contig, nb::device::cpu>;

// Stream of the block keys (not a detail::Stream: only this file's draws use it).
constexpr uint64_t kBlockSalt = 0xD5C0B10C5ull;

/// The block's own key under an epoch's hash: distinct blocks of one epoch draw independent words.
uint64_t block_key(uint64_t epoch_hash, int64_t block) {
  return detail::mix64(epoch_hash ^ detail::mix64(kBlockSalt + static_cast<uint64_t>(block)));
}

/// Storage check of a factor block: float32 rows (half = false) or FP16 bits (uint16, half = true).
void check_rows(const Rows& X, bool half, int k, const char* what) {
  const bool ok = half ? X.dtype() == nb::dtype<uint16_t>() : X.dtype() == nb::dtype<float>();
  MASCOT_CHECK_ARG(ok, std::string(what) + " must be " + (half ? "uint16 (FP16 bits)" : "float32") + " rows");
  MASCOT_CHECK_ARG(static_cast<int>(X.shape(1)) == k, std::string(what) + " must have k columns");
}

std::vector<cpu::Rec> block_records(const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, size_t rows_p,
                                    size_t rows_q) {
  const size_t n = u.shape(0);
  MASCOT_CHECK_ARG(i.shape(0) == n && r.shape(0) == n, "users, items, ratings: one length");
  std::vector<cpu::Rec> recs(n);
  for (size_t t = 0; t < n; ++t) {
    MASCOT_CHECK_ARG(u(t) >= 0 && static_cast<size_t>(u(t)) < rows_p && i(t) >= 0 && static_cast<size_t>(i(t)) < rows_q,
                     "block rating ids out of the factor blocks' range");
    recs[t] = {u(t), i(t), r(t)};
  }
  return recs;
}

/// One side of the per-group kernel over a block's full-size float32 and FP16 arrays.
struct MixedBuf {
  std::vector<int32_t> start;
  std::vector<uint8_t> fp32;
  std::vector<uint64_t> bits;
  std::vector<float> sum;
  std::vector<double> sq, nsum;
  std::vector<int64_t> n;
  cpu::MixedSide side;
};

void make_side(Rows& X32, Rows& X16, const In1<int32_t>& start, const In1<uint8_t>& fp32, int k, bool sample,
               const char* what, MixedBuf* b) {
  check_rows(X32, false, k, what);
  check_rows(X16, true, k, what);
  const size_t rows = X32.shape(0), g = fp32.shape(0);
  MASCOT_CHECK_ARG(X16.shape(0) == rows, std::string(what) + ": float32 and FP16 arrays of one row count");
  MASCOT_CHECK_ARG(g >= 1 && start.shape(0) == g + 1 && start(0) == 0 && static_cast<size_t>(start(g)) == rows,
                   std::string(what) + ": group start must have groups + 1 entries from 0 to the rows");
  for (size_t j = 0; j < g; ++j)
    MASCOT_CHECK_ARG(start(j + 1) >= start(j), std::string(what) + ": group start must be non-decreasing");
  b->start.assign(start.data(), start.data() + g + 1);
  b->fp32.assign(fp32.data(), fp32.data() + g);
  cpu::encode_fp32_bits(b->start.data(), b->fp32.data(), static_cast<int>(g), &b->bits);
  b->side.f32 = static_cast<float*>(X32.data());
  b->side.f16 = static_cast<uint16_t*>(X16.data());
  b->side.start = b->start.data();
  b->side.fp32 = b->fp32.data();
  b->side.groups = static_cast<int>(g);
  b->side.fp32_bits = b->bits.data();
  if (sample) {
    b->sum.assign(g * k, 0.0f);
    b->sq.assign(g, 0.0);
    b->n.assign(g, 0);
    b->side.grad_sum = b->sum.data();
    b->side.grad_sq = b->sq.data();
    b->side.grad_n = b->n.data();
  }
}

nb::tuple sums_tuple(MixedBuf& b, int k) {
  std::vector<double> sum(b.sum.begin(), b.sum.end());
  const size_t g = b.sq.size();
  return nb::make_tuple(to_numpy(std::move(sum), {g, static_cast<size_t>(k)}), to_numpy(std::move(b.sq)),
                        to_numpy(std::move(b.n)));
}

}  // namespace

// global, as bind_als (module.cc declares both)
void bind_dask(nb::module_& m) {
  m.def(
      "dask_init_rows",
      [](const In1<int32_t>& original_ids, int k, float std, uint64_t seed, const std::string& side, bool half) {
        MASCOT_CHECK_ARG(side == "P" || side == "Q", "side must be 'P' or 'Q'");
        MASCOT_CHECK_ARG(k >= 1 && k <= 4096, "k must be in [1, 4096]");
        const size_t n = original_ids.shape(0);
        const uint64_t stream = side == "P" ? detail::kStreamInitP : detail::kStreamInitQ;
        std::vector<float> v(n * k);
        for (size_t r = 0; r < n; ++r) detail::init_row(&v[r * k], k, std, seed, stream, original_ids(r));
        if (!half) return to_numpy(std::move(v), {n, static_cast<size_t>(k)});
        // FP16 rows start as the nearest half of the float row, as the CPU backend's do
        std::vector<uint16_t> h(n * k);
        for (size_t x = 0; x < h.size(); ++x) h[x] = detail::float_to_half_rn(v[x]);
        return to_numpy(std::move(h), {n, static_cast<size_t>(k)});
      },
      "original_ids"_a, "k"_a, "std"_a, "seed"_a, "side"_a, "half"_a,
      "Initial factor rows of the given ORIGINAL ids (detail::init_row), float32 or FP16 bits (uint16).");
  m.def(
      "dask_sgd_block",
      [](const In1<int32_t>& users, const In1<int32_t>& items, const In1<float>& ratings, Rows P, Rows Q, bool half,
         float lr, float lambda_p, float lambda_q, bool stochastic, uint64_t seed, int epoch, int64_t block) {
        const int k = static_cast<int>(P.shape(1));
        check_rows(P, half, k, "P block");
        check_rows(Q, half, k, "Q block");
        std::vector<cpu::Rec> recs = block_records(users, items, ratings, P.shape(0), Q.shape(0));
        cpu::SgdParams prm{k, lr, lambda_p, lambda_q};
        prm.stochastic = stochastic;
        prm.round_seed = block_key(detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(epoch)), block);
        {
          nb::gil_scoped_release release;
          // a fresh seeded order of the block's ratings every epoch (Fisher-Yates)
          const uint64_t order_hash = detail::hash3(seed, detail::kStreamOrder, static_cast<uint64_t>(epoch));
          detail::FastRng rng(block_key(order_hash, block));
          for (size_t t = recs.size(); t > 1; --t) std::swap(recs[t - 1], recs[rng.next() % t]);
          const cpu::KernelTable& kt = cpu::kernels();
          (half ? kt.sgd_n1 : kt.sgd_fp32)(recs.data(), recs.size(), P.data(), Q.data(), prm);
        }
        return static_cast<int64_t>(recs.size());
      },
      "users"_a, "items"_a, "ratings"_a, "P"_a, "Q"_a, "half"_a, "lr"_a, "lambda_p"_a, "lambda_q"_a, "stochastic"_a,
      "seed"_a, "epoch"_a, "block"_a,
      "One DSGD block: the ratings (block-local ids) in a seeded order of (seed, epoch, block), updating the\n"
      "P and Q blocks in place (float32, or FP16 bits for mascot-n1) with the CPU kernels; returns the updates.");
  m.def(
      "dask_block_sse",
      [](const In1<int32_t>& users, const In1<int32_t>& items, const In1<float>& ratings, Rows P, Rows Q, bool half) {
        const int k = static_cast<int>(P.shape(1));
        check_rows(P, half, k, "P block");
        check_rows(Q, half, k, "Q block");
        const std::vector<cpu::Rec> recs = block_records(users, items, ratings, P.shape(0), Q.shape(0));
        nb::gil_scoped_release release;
        const cpu::KernelTable& kt = cpu::kernels();
        return (half ? kt.sse_f16 : kt.sse_f32)(recs.data(), recs.size(), P.data(), Q.data(), k);
      },
      "users"_a, "items"_a, "ratings"_a, "P"_a, "Q"_a, "half"_a,
      "Sum of squared errors of the ratings (block-local ids) on the P and Q blocks (the kernels' FP32 dot).");
  m.def(
      "dask_mixed_block",
      [](const In1<int32_t>& users, const In1<int32_t>& items, const In1<float>& ratings, Rows P32, Rows P16,
         const In1<int32_t>& ustart, const In1<uint8_t>& ufp32, Rows Q32, Rows Q16, const In1<int32_t>& istart,
         const In1<uint8_t>& ifp32, float lr, float lambda_p, float lambda_q, bool stochastic, uint64_t seed, int epoch,
         int64_t block, bool sample, double sample_ratio) {
        const int k = static_cast<int>(P32.shape(1));
        MixedBuf U, I;
        make_side(P32, P16, ustart, ufp32, k, sample, "P block", &U);
        make_side(Q32, Q16, istart, ifp32, k, sample, "Q block", &I);
        std::vector<cpu::Rec> recs = block_records(users, items, ratings, P32.shape(0), Q32.shape(0));
        cpu::MixedParams mp;
        mp.sgd = cpu::SgdParams{k, lr, lambda_p, lambda_q};
        mp.sgd.stochastic = stochastic;
        mp.sgd.round_seed = block_key(detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(epoch)), block);
        if (sample) {
          mp.sample_seed = block_key(detail::hash3(seed, detail::kStreamSample, static_cast<uint64_t>(epoch)), block);
          mp.sample_below = sample_ratio >= 1.0 ? ~0ull : static_cast<uint64_t>(std::ldexp(sample_ratio, 64));
        }
        {
          nb::gil_scoped_release release;
          const uint64_t order_hash = detail::hash3(seed, detail::kStreamOrder, static_cast<uint64_t>(epoch));
          detail::FastRng rng(block_key(order_hash, block));
          for (size_t t = recs.size(); t > 1; --t) std::swap(recs[t - 1], recs[rng.next() % t]);
          cpu::kernels().sgd_mixed(recs.data(), recs.size(), U.side, I.side, mp);
        }
        if (!sample) return nb::make_tuple(static_cast<int64_t>(recs.size()), nb::none(), nb::none());
        return nb::make_tuple(static_cast<int64_t>(recs.size()), sums_tuple(U, k), sums_tuple(I, k));
      },
      "users"_a, "items"_a, "ratings"_a, "P32"_a, "P16"_a, "user_start"_a, "user_fp32"_a, "Q32"_a, "Q16"_a,
      "item_start"_a, "item_fp32"_a, "lr"_a, "lambda_p"_a, "lambda_q"_a, "stochastic"_a, "seed"_a, "epoch"_a, "block"_a,
      "sample"_a, "sample_ratio"_a,
      "One DSGD block of the per-group kernel (method mascot): rows of FP32 groups in P32 / Q32, of FP16 groups\n"
      "in P16 / Q16 (full-size arrays, block-local group tables).  Returns (updates, user sums, item sums), the\n"
      "sums (per group: gradient sum groups x k, squared norms, count) when `sample`, else None.");
  m.def(
      "dask_mixed_sse",
      [](const In1<int32_t>& users, const In1<int32_t>& items, const In1<float>& ratings, Rows P32, Rows P16,
         const In1<int32_t>& ustart, const In1<uint8_t>& ufp32, Rows Q32, Rows Q16, const In1<int32_t>& istart,
         const In1<uint8_t>& ifp32) {
        const int k = static_cast<int>(P32.shape(1));
        MixedBuf U, I;
        make_side(P32, P16, ustart, ufp32, k, false, "P block", &U);
        make_side(Q32, Q16, istart, ifp32, k, false, "Q block", &I);
        const std::vector<cpu::Rec> recs = block_records(users, items, ratings, P32.shape(0), Q32.shape(0));
        nb::gil_scoped_release release;
        return cpu::kernels().sse_mixed(recs.data(), recs.size(), U.side, I.side, k, false);
      },
      "users"_a, "items"_a, "ratings"_a, "P32"_a, "P16"_a, "user_start"_a, "user_fp32"_a, "Q32"_a, "Q16"_a,
      "item_start"_a, "item_fp32"_a, "Test SSE on per-group blocks (dask_mixed_block's layout).");
  m.def(
      "dask_split_groups", [](const In1<int64_t>& counts, int g) { return to_numpy(split_groups(to_vec(counts), g)); },
      "counts"_a, "groups"_a, "Group boundaries of rows sorted by rating count (reorder.h split_groups).");
  m.def(
      "dask_measured_epoch", [](int e, int warmup, int period) { return detail::measured_epoch(e, warmup, period); },
      "epoch"_a, "warmup"_a, "period"_a, "Whether epoch e measures the q-error (g-switching).");
  m.def(
      "dask_qerror",
      [](const In2<double>& sum, const In1<double>& sq, const In1<int64_t>& n) {
        const int g = static_cast<int>(sq.shape(0));
        MASCOT_CHECK_ARG(sum.shape(0) == sq.shape(0) && n.shape(0) == sq.shape(0), "one row per group");
        return to_numpy(detail::qerror_from_sums(sum.data(), sq.data(), n.data(), g, static_cast<int>(sum.shape(1))));
      },
      "sum"_a, "sq"_a, "n"_a, "Eq. 4 q-error per group from summed gradient samples (-1: none).");
  nb::class_<detail::Switcher>(m, "GroupSwitcher", "g-switching's decision (detail::Switcher) for one side.")
      .def(nb::init<int, double>(), "groups"_a, "threshold"_a)
      .def(
          "update",
          [](detail::Switcher& sw, const In1<double>& q, const In1<uint8_t>& fp32) {
            const size_t g = fp32.shape(0);
            MASCOT_CHECK_ARG(q.shape(0) == g && sw.baseline().size() == g, "one q-error and one flag per group");
            GroupTable t;
            for (size_t j = 0; j < g; ++j) t.precision.push_back(fp32(j) ? Precision::kFp32 : Precision::kFp16);
            return sw.update(to_vec(q), &t);
          },
          "qerror"_a, "fp32"_a, "The groups that switch to FP32 after this measurement (baselines kept).");
}
