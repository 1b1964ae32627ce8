// Test hooks: mascot._core._testing.  Internals of the core exposed for the tests and the NumPy
// reference (tests/python/reference.py): reordering, initial factors, visiting orders, group
// lookup, q-errors and switching, the random words and FP16 rounding of stochastic stores, one
// pass of the CPU per-group kernel, and the CUDA backend's worker count and q-error kernel.
// They convert and forward like the production bindings; none is part of the API.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <string>
#include <vector>

#include "convert.h"
#include "mascot/config.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/half.h"
#include "mascot/detail/hogwild.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/groups.h"
#include "mascot/reorder.h"

#include "cpu/kernels.h"
#include "cpu/schedule.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace mascot::bind {

void bind_testing(nb::module_& m) {
  m.def(
      "cuda_qerror",
      [](const In2<float>& grads, const In1<int32_t>& group, int groups, int slots) {
        MASCOT_CHECK_ARG(grads.shape(0) == group.shape(0), "one group per gradient row");
        std::vector<float> g(grads.data(), grads.data() + grads.size());
        return to_numpy(detail::cuda_qerror(g, to_vec(group), groups, static_cast<int>(grads.shape(1)), slots));
      },
      "grads"_a, "group"_a, "groups"_a, "slots"_a = 4,
      "Test hook: qerror() computed by the CUDA backend's accumulation kernel (k in [1, 512]).");
  m.def(
      "reorder",
      [](const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni, int ug, int ig, double random_fp16,
         uint64_t seed) {
        const RatingSet rs = ids_only(u, i, nu, ni);
        Reorder r =
            random_fp16 >= 0 ? Reorder::build_random_precision(rs, random_fp16, seed) : Reorder::build(rs, ug, ig);
        auto fp32_flags = [](const GroupTable& t) {
          std::vector<uint8_t> f;
          for (Precision p : t.precision) f.push_back(p == Precision::kFp32);
          return f;
        };
        nb::dict d;
        d["user_group_fp32"] = to_numpy(fp32_flags(r.user_groups));
        d["item_group_fp32"] = to_numpy(fp32_flags(r.item_groups));
        d["user_new"] = to_numpy(std::move(r.user_new));
        d["user_old"] = to_numpy(std::move(r.user_old));
        d["item_new"] = to_numpy(std::move(r.item_new));
        d["item_old"] = to_numpy(std::move(r.item_old));
        d["user_count"] = to_numpy(std::move(r.user_count));
        d["item_count"] = to_numpy(std::move(r.item_count));
        d["user_group_start"] = to_numpy(std::move(r.user_groups.start));
        d["item_group_start"] = to_numpy(std::move(r.item_groups.start));
        d["user_group_ratings"] = to_numpy(std::move(r.user_groups.rating_count));
        d["item_group_ratings"] = to_numpy(std::move(r.item_groups.rating_count));
        return d;
      },
      "users"_a, "items"_a, "n_users"_a, "n_items"_a, "user_groups"_a, "item_groups"_a, "random_fp16"_a = -1.0,
      "seed"_a = 42, "Group-based reconstruction (test hook); random_fp16 >= 0: the potential study's random split.");
  m.def(
      "split_groups", [](const In1<int64_t>& counts, int g) { return to_numpy(split_groups(to_vec(counts), g)); },
      "counts"_a, "groups"_a, "Group boundaries of rows sorted by rating count (reorder.h split_groups).");
  m.def(
      "init_factors",
      [](int64_t n, int k, float std, uint64_t seed, const std::string& side) {
        MASCOT_CHECK_ARG(side == "P" || side == "Q", "side must be 'P' or 'Q'");
        MASCOT_CHECK_ARG(n >= 0 && k >= 1, "n must be >= 0 and k >= 1");
        std::vector<float> v(static_cast<size_t>(n) * k);
        const uint64_t stream = side == "P" ? detail::kStreamInitP : detail::kStreamInitQ;
        for (int64_t r = 0; r < n; ++r) detail::init_row(&v[static_cast<size_t>(r) * k], k, std, seed, stream, r);
        return to_numpy(std::move(v), {static_cast<size_t>(n), static_cast<size_t>(k)});
      },
      "n"_a, "k"_a, "std"_a, "seed"_a, "side"_a, "Initial factors of ids 0..n-1, exactly as training starts.");
  m.def(
      "visit_order",
      [](const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni, const std::string& order, int epochs,
         int threads, int k, bool half, uint64_t seed) {
        const RatingSet rs = ids_only(u, i, nu, ni);
        return to_numpy(detail::cpu_visit_order(rs, parse_order(order), epochs, threads, k, half, seed));
      },
      "users"_a, "items"_a, "n_users"_a, "n_items"_a, "order"_a, "epochs"_a, "threads"_a = 1, "k"_a = 128,
      "half"_a = false, "seed"_a = 42);
  m.def(
      "schedule_check",
      [](const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni, const std::string& order, int threads,
         int epochs, int k, bool half, uint64_t seed, int spin_us) {
        const RatingSet rs = ids_only(u, i, nu, ni);
        cpu::ScheduleCheck c;
        {
          nb::gil_scoped_release release;
          c = cpu::check_schedule(rs, parse_order(order), threads, epochs, static_cast<size_t>(k) * (half ? 2 : 4),
                                  seed, spin_us);
        }
        nb::dict d;
        d["grants"] = c.grants;
        d["strip_conflicts"] = c.strip_conflicts;
        d["max_held"] = c.max_held;
        d["overlaps"] = c.overlaps;
        d["row_conflicts"] = c.row_conflicts;  // per epoch
        d["warmup_epochs"] = c.grants > 0 ? cpu::Schedule::kGridWarmupEpochs : 0;
        d["each_once"] = c.each_once;
        return d;
      },
      "users"_a, "items"_a, "n_users"_a, "n_items"_a, "order"_a, "threads"_a, "epochs"_a = 1, "k"_a = 128,
      "half"_a = false, "seed"_a = 42, "spin_us"_a = 20,
      "Test hook (cpu/schedule.h check_schedule): runs the CPU schedule with instrumented callbacks and\n"
      "returns what it saw (row and strip conflicts between threads, overlaps, each rating once).");
  m.def(
      "lookup_groups",
      [](const In1<int32_t>& start, const In1<int32_t>& ids, bool naive) {
        const size_t g1 = start.shape(0);
        MASCOT_CHECK_ARG(g1 >= 2, "start needs groups + 1 >= 2 boundaries");
        std::vector<int32_t> st(start.data(), start.data() + g1);
        MASCOT_CHECK_ARG(st[0] == 0, "start[0] must be 0");
        for (size_t j = 1; j < g1; ++j) MASCOT_CHECK_ARG(st[j] >= st[j - 1], "start must be non-decreasing");
        std::vector<int32_t> out(ids.shape(0));
        for (size_t r = 0; r < out.size(); ++r) {
          MASCOT_CHECK_ARG(ids(r) >= 0 && ids(r) < st.back(), "id out of range");
          out[r] = lookup_group(st.data(), static_cast<int>(g1 - 1), ids(r), naive);
        }
        return to_numpy(std::move(out));
      },
      "start"_a, "ids"_a, "naive"_a,
      "Test hook: mascot::lookup_group of each id (naive: the branching binary search of mascot-naive).");
  m.def(
      "hogwild_workers",
      [](int64_t fill, int64_t max_row_ratings, int64_t nnz) {
        const auto bad = [](const std::string& msg) { throw_invalid(msg); };
        return detail::hogwild_workers(fill, max_row_ratings, nnz,
                                       detail::hogwild_overlap(detail::hogwild_merge(bad), bad));
      },
      "fill"_a, "max_row_ratings"_a, "nnz"_a,
      "Test hook: the CUDA backend's Hogwild worker count (detail/hogwild.h) with the overlap bound\n"
      "of MASCOT_CUDA_OVERLAP or the default of the write mode (MASCOT_CUDA_WRITES).");
  m.def(
      "qerror",
      [](const In2<float>& grads, const In1<int32_t>& group, int groups) {
        MASCOT_CHECK_ARG(grads.shape(0) == group.shape(0), "one group per gradient row");
        MASCOT_CHECK_ARG(groups >= 1, "groups must be >= 1");
        const int k = static_cast<int>(grads.shape(1));
        std::vector<double> sum(static_cast<size_t>(groups) * k, 0.0), sq(groups, 0.0);
        std::vector<int64_t> n(groups, 0);
        for (size_t r = 0; r < grads.shape(0); ++r) {
          const int g = group(r);
          MASCOT_CHECK_ARG(g >= 0 && g < groups, "group id out of range");
          for (int j = 0; j < k; ++j) {
            const double x = grads(r, j);
            sum[static_cast<size_t>(g) * k + j] += x;
            sq[g] += x * x;
          }
          ++n[g];
        }
        return to_numpy(detail::qerror_from_sums(sum.data(), sq.data(), n.data(), groups, k));
      },
      "grads"_a, "group"_a, "groups"_a, "Eq. 4 q-error per group of the given gradient samples (-1: none).");
  m.def(
      "switch_epochs",
      [](const In2<double>& qerr, double threshold) {
        // qerr: measurements x groups (-1 = no samples); returns, per group, the index of the
        // measurement at which it switches FP16 -> FP32, or -1
        const int g = static_cast<int>(qerr.shape(1));
        detail::Switcher sw(g, threshold);
        GroupTable t;
        t.precision.assign(g, Precision::kFp16);
        std::vector<int64_t> when(g, -1);
        for (size_t e = 0; e < qerr.shape(0); ++e) {
          std::vector<double> q(g);
          for (int j = 0; j < g; ++j) q[j] = qerr(e, j);
          for (int j : sw.update(q, &t)) when[j] = static_cast<int64_t>(e);
        }
        return to_numpy(std::move(when));
      },
      "qerror"_a, "threshold"_a, "Switching rule of g-switching on a sequence of q-error measurements.");
  m.def(
      "sr_words",
      [](uint64_t seed, int epoch, int32_t u, int32_t i, int k) {
        uint32_t hp, hq;
        cpu::sr_keys(detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(epoch)), u, i, &hp, &hq);
        std::vector<uint32_t> wp(k), wq(k);
        for (int j = 0; j < k; ++j) {
          wp[j] = cpu::sr_word(hp, static_cast<uint32_t>(j));
          wq[j] = cpu::sr_word(hq, static_cast<uint32_t>(j));
        }
        return nb::make_tuple(to_numpy(std::move(wp)), to_numpy(std::move(wq)));
      },
      "seed"_a, "epoch"_a, "u"_a, "i"_a, "k"_a, "Random words of the stochastic FP16 stores of one update.");
  m.def(
      "mixed_sgd_pass",
      [](const In1<int32_t>& users, const In1<int32_t>& items, const In1<float>& ratings, const In2<float>& P,
         const In2<float>& Q, const In1<int32_t>& ustart, const In1<uint8_t>& ufp32, const In1<int32_t>& istart,
         const In1<uint8_t>& ifp32, float lr, float lambda_p, float lambda_q, bool stochastic, uint64_t seed, int epoch,
         std::optional<In1<float>> gu, std::optional<In1<float>> gi) -> nb::object {
        // one call of the per-group kernel (cpu/kernels.cc mixed_loop) on the ratings in the
        // given order: a row of an FP32 group is stored as the given float, any other as its
        // nearest half; stochastic FP16 stores with the words of sr_words(seed, epoch, u, i);
        // nothing sampled
        const size_t n = users.shape(0);
        MASCOT_CHECK_ARG(items.shape(0) == n && ratings.shape(0) == n, "users, items, ratings: one length");
        const int k = static_cast<int>(P.shape(1));
        MASCOT_CHECK_ARG(k >= 1 && k <= 4096 && Q.shape(1) == static_cast<size_t>(k), "P and Q: k columns, 1..4096");
        struct SideBuf {
          std::vector<float> f32;
          std::vector<uint16_t> f16;
          std::vector<int32_t> start;
          std::vector<uint8_t> fp32;
          std::vector<uint64_t> bits;
          cpu::MixedSide side;
        };
        auto make = [k](const In2<float>& X, const In1<int32_t>& st, const In1<uint8_t>& f, SideBuf* b) {
          const size_t rows = X.shape(0);
          const size_t g = f.shape(0);
          MASCOT_CHECK_ARG(g >= 1 && st.shape(0) == g + 1 && st(0) == 0 && static_cast<size_t>(st(g)) == rows,
                           "group start must have groups + 1 entries from 0 to the rows");
          b->start.assign(st.data(), st.data() + g + 1);
          b->fp32.assign(f.data(), f.data() + g);
          for (size_t j = 0; j < g; ++j) MASCOT_CHECK_ARG(st(j + 1) >= st(j), "group start must be non-decreasing");
          b->f32.assign(X.data(), X.data() + rows * k);
          b->f16.resize(rows * k);
          for (size_t x = 0; x < rows * k; ++x) b->f16[x] = detail::float_to_half_rn(X.data()[x]);
          cpu::encode_fp32_bits(b->start.data(), b->fp32.data(), static_cast<int>(g), &b->bits);
          b->side.f32 = b->f32.data();
          b->side.f16 = b->f16.data();
          b->side.start = b->start.data();
          b->side.fp32 = b->fp32.data();
          b->side.groups = static_cast<int>(g);
          b->side.fp32_bits = b->bits.data();
        };
        SideBuf U, I;
        make(P, ustart, ufp32, &U);
        make(Q, istart, ifp32, &I);
        std::vector<cpu::Rec> recs(n);
        for (size_t t = 0; t < n; ++t) {
          MASCOT_CHECK_ARG(users(t) >= 0 && static_cast<size_t>(users(t)) < P.shape(0) && items(t) >= 0 &&
                               static_cast<size_t>(items(t)) < Q.shape(0),
                           "rating ids out of range");
          recs[t] = {users(t), items(t), ratings(t)};
        }
        cpu::MixedParams mp;
        mp.sgd = {k,        lr,         lambda_p,
                  lambda_q, stochastic, detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(epoch))};
        // schedule adagrad when the rows' states are given: lr is eta0, the states are updated copies
        MASCOT_CHECK_ARG(gu.has_value() == gi.has_value(), "user_ada and item_ada: both or neither");
        std::vector<float> GU, GI;
        if (gu) {
          MASCOT_CHECK_ARG(gu->shape(0) == P.shape(0) && gi->shape(0) == Q.shape(0), "user_ada, item_ada: one per row");
          GU.assign(gu->data(), gu->data() + gu->shape(0));
          GI.assign(gi->data(), gi->data() + gi->shape(0));
          mp.sgd.ada_u = GU.data();
          mp.sgd.ada_i = GI.data();
        }
        cpu::kernels().sgd_mixed(recs.data(), n, U.side, I.side, mp);
        auto out = [k](const SideBuf& b) {
          const size_t rows = b.f32.size() / k;
          std::vector<float> x(rows * k);
          for (size_t g = 0; g + 1 < b.start.size(); ++g)
            for (int64_t id = b.start[g]; id < b.start[g + 1]; ++id)
              for (int j = 0; j < k; ++j) {
                const size_t at = static_cast<size_t>(id) * k + j;
                x[at] = b.fp32[g] ? b.f32[at] : detail::half_to_float(b.f16[at]);
              }
          return to_numpy(std::move(x), {rows, static_cast<size_t>(k)});
        };
        if (gu) return nb::make_tuple(out(U), out(I), to_numpy(std::move(GU)), to_numpy(std::move(GI)));
        return nb::make_tuple(out(U), out(I));
      },
      "users"_a, "items"_a, "ratings"_a, "P"_a, "Q"_a, "user_start"_a, "user_fp32"_a, "item_start"_a, "item_fp32"_a,
      "lr"_a, "lambda_p"_a, "lambda_q"_a, "stochastic"_a = false, "seed"_a = 0, "epoch"_a = 0,
      "user_ada"_a = nb::none(), "item_ada"_a = nb::none(),
      "Test hook: one pass of the CPU per-group (MASCOT) kernel over the ratings in this order; returns\n"
      "(P, Q) as stored (FP32 groups' rows as floats, the others as halves); with user_ada / item_ada\n"
      "(the rows' adagrad states) schedule adagrad with eta0 = lr, and (P, Q, user_ada', item_ada').");
  m.def(
      "half_round",
      [](const In1<float>& x, const std::string& mode, uint64_t seed) {
        MASCOT_CHECK_ARG(mode == "nearest" || mode == "zero" || mode == "stochastic",
                         "mode must be nearest, zero or stochastic");
        std::vector<float> out(x.shape(0));
        for (size_t t = 0; t < out.size(); ++t) {
          uint16_t h;
          if (mode == "nearest")
            h = detail::float_to_half_rn(x(t));
          else if (mode == "zero")
            h = detail::float_to_half_rz(x(t));
          else
            h = detail::float_to_half_sr(x(t), static_cast<uint32_t>(detail::hash3(seed, detail::kStreamRound, t)));
          out[t] = detail::half_to_float(h);
        }
        return to_numpy(std::move(out));
      },
      "x"_a, "mode"_a = "nearest", "seed"_a = 0, "Software FP16 rounding of the core (for tests).");
  m.def(
      "half_round_words",
      [](const In1<float>& x, const In1<uint32_t>& w) {
        MASCOT_CHECK_ARG(x.shape(0) == w.shape(0), "one random word per value");
        std::vector<float> out(x.shape(0));
        for (size_t t = 0; t < out.size(); ++t) out[t] = detail::half_to_float(detail::float_to_half_sr(x(t), w(t)));
        return to_numpy(std::move(out));
      },
      "x"_a, "words"_a, "Stochastic FP16 rounding with the given random words.");
}

}  // namespace mascot::bind
