// mascot._core: the only file that includes nanobind.  It converts between NumPy/Python
// and the core's types and forwards; all logic lives in the core (C++) or in python/mascot.
// Error mapping: InvalidArgument -> ValueError (nanobind's std::invalid_argument rule),
// IoError -> OSError, CudaError -> RuntimeError, Interrupted -> KeyboardInterrupt.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>

#include "mascot/checkpoint.h"
#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/detail/backend.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/half.h"
#include "mascot/detail/hogwild.h"
#include "mascot/detail/rng.h"
#include "mascot/detail/switching.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/methods.h"
#include "mascot/model.h"
#include "mascot/ratings.h"
#include "mascot/reorder.h"
#include "mascot/report.h"
#include "mascot/synthetic.h"
#include "mascot/trainer.h"

namespace nb = nanobind;
using namespace nb::literals;
using namespace mascot;

#include "cpu/kernels.h"

namespace {

template <class T>
using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using In2 = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Arr = nb::ndarray<nb::numpy>;

// Moves a vector into a NumPy array without a copy.
template <class T>
nb::object to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(heap->data(), shape.size(), shape.begin(), owner));
}
template <class T>
nb::object to_numpy(std::vector<T>&& v) {
  const size_t n = v.size();
  return to_numpy(std::move(v), {n});
}

template <class T>
std::vector<T> to_vec(const In1<T>& a) {
  return std::vector<T>(a.data(), a.data() + a.shape(0));
}

RatingSet make_set(const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t n_users,
                   int64_t n_items, const char* what) {
  MASCOT_CHECK_ARG(u.shape(0) == i.shape(0) && u.shape(0) == r.shape(0),
                   std::string(what) + ": users, items and ratings must have the same length (got " +
                       std::to_string(u.shape(0)) + ", " + std::to_string(i.shape(0)) + ", " +
                       std::to_string(r.shape(0)) + ")");
  RatingSet rs;
  rs.n_users = n_users;
  rs.n_items = n_items;
  rs.users = to_vec(u);
  rs.items = to_vec(i);
  rs.ratings = to_vec(r);
  rs.validate(what);
  return rs;
}

/// A Model holding copies of the factor matrices P (users x k) and Q (items x k).
Model model_from(const In2<float>& P, const In2<float>& Q) {
  MASCOT_CHECK_ARG(P.shape(1) == Q.shape(1), "P and Q must have the same number of columns");
  Model mdl;
  mdl.n_users = static_cast<int64_t>(P.shape(0));
  mdl.n_items = static_cast<int64_t>(Q.shape(0));
  mdl.k = static_cast<int>(P.shape(1));
  mdl.P.assign(P.data(), P.data() + P.size());
  mdl.Q.assign(Q.data(), Q.data() + Q.size());
  return mdl;
}

// A rating set of ids only (ratings 0): for the hooks that look at the structure.
RatingSet ids_only(const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni) {
  MASCOT_CHECK_ARG(u.shape(0) == i.shape(0), "users and items must have the same length");
  RatingSet rs;
  rs.n_users = nu;
  rs.n_items = ni;
  rs.users = to_vec(u);
  rs.items = to_vec(i);
  rs.ratings.assign(rs.users.size(), 0.0f);
  rs.validate("ratings");
  return rs;
}

nb::tuple set_to_tuple(RatingSet&& rs) {
  const int64_t nu = rs.n_users, ni = rs.n_items;
  return nb::make_tuple(to_numpy(std::move(rs.users)), to_numpy(std::move(rs.items)), to_numpy(std::move(rs.ratings)),
                        nu, ni);
}

nb::dict epoch_dict(const EpochRecord& e) {
  nb::dict d;
  d["epoch"] = e.epoch;
  d["lr"] = e.lr;
  d["train_seconds"] = e.train_seconds;
  d["eval_seconds"] = e.eval_seconds;
  d["test_rmse"] = e.test_rmse >= 0 ? nb::cast(e.test_rmse) : nb::none();
  d["fp32_user_groups"] = e.fp32_user_groups;
  d["fp32_item_groups"] = e.fp32_item_groups;
  return d;
}

}  // namespace

namespace {
// helpers of the train bindings
Context make_context(const std::string& device, int threads, uint64_t seed) {
  Context ctx;
  ctx.device = parse_device(device);
  ctx.threads = threads;
  ctx.seed = seed;
  return ctx;
}
// A test set: its ids may exceed the training range; train() drops (and counts) those ratings.
RatingSet make_test(std::optional<In1<int32_t>>& su, std::optional<In1<int32_t>>& si, std::optional<In1<float>>& sr) {
  MASCOT_CHECK_ARG(si.has_value() && sr.has_value(), "test set needs users, items and ratings");
  int64_t mu = 0, mi = 0;
  for (size_t x = 0; x < su->shape(0); ++x) mu = std::max<int64_t>(mu, int64_t((*su)(x)) + 1);
  for (size_t x = 0; x < si->shape(0); ++x) mi = std::max<int64_t>(mi, int64_t((*si)(x)) + 1);
  return make_set(*su, *si, *sr, mu, mi, "test set");
}
EpochCallback wrap_callback(std::function<bool(nb::dict)>& on_epoch) {
  EpochCallback cb;
  if (on_epoch)
    cb = [&on_epoch](const EpochRecord& e) {
      nb::gil_scoped_acquire gil;
      return on_epoch(epoch_dict(e));
    };
  return cb;
}
nb::tuple result_tuple(TrainResult&& res) {
  const size_t k = static_cast<size_t>(res.model.k);
  const size_t nu = static_cast<size_t>(res.model.n_users), ni = static_cast<size_t>(res.model.n_items);
  std::string report = res.report.to_json();
  return nb::make_tuple(to_numpy(std::move(res.model.P), {nu, k}), to_numpy(std::move(res.model.Q), {ni, k}), report);
}
}  // namespace

void bind_competing(nb::module_& m);  // competing_bindings.cc
void bind_als(nb::module_& m);        // als_bindings.cc
void bind_als_testing(nb::module_& m);  // als_bindings.cc (test hooks)

NB_MODULE(_core, m) {
  m.doc() = "MASCOT core (C++): low-precision matrix-factorization training";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const Interrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    }
  });

  m.attr("__version__") = MASCOT_VERSION;
  bind_competing(m);
  bind_als(m);
  bind_als_testing(m);
  m.attr("HAS_CUDA") = built_with_cuda();
  m.def("cuda_device_count", &cuda_device_count, "Visible CUDA devices (0 without CUDA, a driver or a GPU).");
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason,
        "Why the GPU cannot be used (no CUDA backend, no device or driver, an old driver, an earlier device "
        "fault in this process), or '' when it can.");
  m.def("cuda_unsupported_reason", &detail::cuda_unsupported_reason, "config"_a,
        "Why the CUDA kernels do not take this configuration (k, order, a study option), '' when they do: "
        "--device cuda refuses such a job, auto trains it on the CPU.");
  m.def(
      "resolved_threads",
      [](int threads) {
        Context ctx;
        ctx.threads = threads;
        ctx.validate();
        return ctx.resolved_threads();
      },
      "threads"_a,
      "The CPU thread count a run with this `threads` setting uses (0: every core the host reports, at least "
      "1): what a run report's top-level \"threads\" holds.");
  m.def("cuda_device_name", &detail::cuda_device_name,
        "Name, compute capability, SMs and memory of the current CUDA device (RuntimeError without one).");
  m.def("cuda_copy_bandwidth", &detail::cuda_copy_bandwidth, "bytes"_a = int64_t(1) << 30, "reps"_a = 20,
        "Device-to-device copy bandwidth in GB/s (read + write bytes, median of reps, CUDA events).");
  m.def(
      "cuda_qerror",
      [](const In2<float>& grads, const In1<int32_t>& group, int groups, int slots) {
        MASCOT_CHECK_ARG(grads.shape(0) == group.shape(0), "one group per gradient row");
        std::vector<float> g(grads.data(), grads.data() + grads.size());
        return to_numpy(detail::cuda_qerror(g, to_vec(group), groups, static_cast<int>(grads.shape(1)), slots));
      },
      "grads"_a, "group"_a, "groups"_a, "slots"_a = 4,
      "Test hook: qerror() computed by the CUDA backend's accumulation kernel (k in [1, 512]).");
  m.def("kernel_isa", &cpu::kernel_isa, "Instruction set of the CPU kernels picked for this host.");
  m.def("method_names", &method_names);
  m.def(
      "method_traits",
      [] {
        nb::dict all;
        for (const MethodTraits& t : all_method_traits()) {
          nb::dict d;
          d["storage"] = to_string(t.storage);
          d["arithmetic"] = to_string(t.arithmetic);
          d["switching"] = to_string(t.switching);
          d["uses_groups"] = t.uses_groups;
          d["stochastic_rounding"] = t.stochastic_rounding;
          d["random_fp16"] = t.random_fp16;
          d["grad_stats"] = t.grad_stats;
          std::vector<std::string> backends;
          if (t.cpu) backends.push_back("cpu");
          if (t.cuda) backends.push_back("cuda");
          d["backends"] = backends;
          d["bytes_per_element"] = t.dram_bytes;
          all[t.name] = d;
        }
        return all;
      },
      "The method-traits table (mascot/methods.h): {method: {storage, arithmetic, switching, uses_groups, "
      "stochastic_rounding, random_fp16, grad_stats, backends, bytes_per_element}}.");

  nb::class_<TrainConfig>(m, "TrainConfig", "Training parameters (DESIGN.md §3); validate() names bad fields.")
      .def(nb::init<>())
      .def_rw("k", &TrainConfig::k)
      .def_rw("epochs", &TrainConfig::epochs)
      .def_rw("lr", &TrainConfig::lr)
      .def_rw("decay", &TrainConfig::decay)
      .def_rw("lambda_p", &TrainConfig::lambda_p)
      .def_rw("lambda_q", &TrainConfig::lambda_q)
      .def_rw("init_std", &TrainConfig::init_std)
      .def_rw("user_groups", &TrainConfig::user_groups)
      .def_rw("item_groups", &TrainConfig::item_groups)
      .def_rw("period", &TrainConfig::period)
      .def_rw("sample_ratio", &TrainConfig::sample_ratio)
      .def_rw("threshold", &TrainConfig::threshold)
      .def_rw("warmup", &TrainConfig::warmup)
      .def_rw("eval_every_epoch", &TrainConfig::eval_every_epoch)
      .def_rw("random_fp16", &TrainConfig::random_fp16, "potential study: FP16 share of rows chosen at random (-1: off)")
      .def_rw("grad_stats", &TrainConfig::grad_stats, "report per-group mean sampled-gradient norms every epoch")
      .def_rw("competing", &TrainConfig::competing, "mpt / muppet / afp settings (CompetingParams)")
      .def_prop_rw("method", [](const TrainConfig& c) { return to_string(c.method); },
                   [](TrainConfig& c, const std::string& s) { c.method = parse_method(s); })
      .def_prop_rw("rounding", [](const TrainConfig& c) { return to_string(c.rounding); },
                   [](TrainConfig& c, const std::string& s) { c.rounding = parse_rounding(s); })
      .def_prop_rw("order", [](const TrainConfig& c) { return to_string(c.order); },
                   [](TrainConfig& c, const std::string& s) { c.order = parse_order(s); })
      .def("validate", &TrainConfig::validate)
      .def("lr_at", &TrainConfig::lr_at, "epoch"_a);

  m.def(
      "train",
      [](const TrainConfig& cfg, const std::string& device, int threads, uint64_t seed, const In1<int32_t>& tu,
         const In1<int32_t>& ti, const In1<float>& tr, int64_t n_users, int64_t n_items,
         std::optional<In1<int32_t>> su, std::optional<In1<int32_t>> si, std::optional<In1<float>> sr,
         const std::string& name, std::function<bool(nb::dict)> on_epoch) {
        const Context ctx = make_context(device, threads, seed);
        const RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        const bool has_test = su.has_value();
        if (has_test) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        TrainResult res;
        {
          nb::gil_scoped_release release;
          res = mascot::train(ctx, cfg, train, has_test ? &test : nullptr, cb, name);
        }
        const size_t k = static_cast<size_t>(res.model.k);
        const size_t nu = static_cast<size_t>(res.model.n_users), ni = static_cast<size_t>(res.model.n_items);
        std::string report = res.report.to_json();
        return nb::make_tuple(to_numpy(std::move(res.model.P), {nu, k}), to_numpy(std::move(res.model.Q), {ni, k}),
                              report);
      },
      "config"_a, "device"_a, "threads"_a, "seed"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a,
      "test_users"_a.none() = nb::none(), "test_items"_a.none() = nb::none(), "test_ratings"_a.none() = nb::none(),
      "name"_a = "", "on_epoch"_a.none() = nb::none(),
      "Trains; returns (P, Q, report_json) with P, Q in original id order.");

  m.def("read_ratings", [](const std::string& p) { return set_to_tuple(read_ratings(p)); }, "path"_a);
  m.def("read_mrat", [](const std::string& p) { return set_to_tuple(read_mrat(p)); }, "path"_a);
  m.def("read_text", [](const std::string& p) { return set_to_tuple(read_text(p)); }, "path"_a);
  m.def(
      "write_mrat",
      [](const std::string& p, const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t nu,
         int64_t ni) { write_mrat(p, make_set(u, i, r, nu, ni, p.c_str())); },
      "path"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a);
  m.def(
      "write_text",
      [](const std::string& p, const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t nu,
         int64_t ni) { write_text(p, make_set(u, i, r, nu, ni, p.c_str())); },
      "path"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a);

  m.def(
      "synthetic",
      [](const std::string& name, double scale, uint64_t seed, int threads) {
        SyntheticData d;
        {
          nb::gil_scoped_release release;
          d = generate_synthetic(name, scale, seed, threads);
        }
        return nb::make_tuple(set_to_tuple(std::move(d.train)), set_to_tuple(std::move(d.test)));
      },
      "name"_a, "scale"_a = 1.0, "seed"_a = 42, "threads"_a = 0);
  m.def("synthetic_names", &synthetic_names);
  m.def("parse_synthetic_spec", [](const std::string& s) -> nb::object {
    std::string name;
    double scale;
    if (!parse_synthetic_spec(s, &name, &scale)) return nb::none();
    return nb::make_tuple(name, scale);
  });

  m.def(
      "save_model",
      [](const std::string& dir, const In2<float>& P, const In2<float>& Q, const std::string& meta,
         const std::vector<std::pair<std::string, nb::bytes>>& extra) {
        Model mdl = model_from(P, Q);
        std::vector<ModelFile> files;
        for (const auto& [name, content] : extra) files.emplace_back(name, std::string(content.c_str(), content.size()));
        save_model(dir, mdl, meta, files);
      },
      "dir"_a, "P"_a, "Q"_a, "model_json"_a, "extra"_a = std::vector<std::pair<std::string, nb::bytes>>(),
      "Writes the model directory atomically; `extra` = [(file name, bytes)] written inside it too.");
  m.def(
      "export_libmf",
      [](const std::string& path, const In2<float>& P, const In2<float>& Q, double bias,
         std::optional<In1<uint8_t>> user_rated, std::optional<In1<uint8_t>> item_rated) {
        Model mdl = model_from(P, Q);
        std::vector<uint8_t> ur, ir;
        if (user_rated) ur = to_vec(*user_rated);
        if (item_rated) ir = to_vec(*item_rated);
        export_libmf(path, mdl, bias, ur, ir);
      },
      "path"_a, "P"_a, "Q"_a, "bias"_a, "user_rated"_a = nb::none(), "item_rated"_a = nb::none(),
      "Writes LIBMF's text model format atomically (rows whose rated flag is 0 are written as F).");
  m.def("load_model", [](const std::string& dir) {
    Model mdl = load_model(dir);
    const size_t k = mdl.k, nu = mdl.n_users, ni = mdl.n_items;
    return nb::make_tuple(to_numpy(std::move(mdl.P), {nu, k}), to_numpy(std::move(mdl.Q), {ni, k}));
  });

  // ---- exposed internals, for tests and the NumPy reference
  m.def(
      "reorder",
      [](const In1<int32_t>& u, const In1<int32_t>& i, int64_t nu, int64_t ni, int ug, int ig, double random_fp16,
         uint64_t seed) {
        const RatingSet rs = ids_only(u, i, nu, ni);
        Reorder r = random_fp16 >= 0 ? Reorder::build_random_precision(rs, random_fp16, seed) : Reorder::build(rs, ug, ig);
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
  m.def("split_groups", [](const In1<int64_t>& counts, int g) { return to_numpy(split_groups(to_vec(counts), g)); });
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
         const In1<uint8_t>& ifp32, float lr, float lambda_p, float lambda_q, bool stochastic, uint64_t seed,
         int epoch) {
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
        mp.sgd = {k, lr, lambda_p, lambda_q, stochastic,
                  detail::hash3(seed, detail::kStreamRound, static_cast<uint64_t>(epoch))};
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
        return nb::make_tuple(out(U), out(I));
      },
      "users"_a, "items"_a, "ratings"_a, "P"_a, "Q"_a, "user_start"_a, "user_fp32"_a, "item_start"_a, "item_fp32"_a,
      "lr"_a, "lambda_p"_a, "lambda_q"_a, "stochastic"_a = false, "seed"_a = 0, "epoch"_a = 0,
      "Test hook: one pass of the CPU per-group (MASCOT) kernel over the ratings in this order; returns\n"
      "(P, Q) as stored (FP32 groups' rows as floats, the others as halves).");
  m.def(
      "half_round",
      [](const In1<float>& x, const std::string& mode, uint64_t seed) {
        MASCOT_CHECK_ARG(mode == "nearest" || mode == "zero" || mode == "stochastic",
                         "mode must be nearest, zero or stochastic");
        std::vector<float> out(x.shape(0));
        for (size_t t = 0; t < out.size(); ++t) {
          uint16_t h;
          if (mode == "nearest") h = detail::float_to_half_rn(x(t));
          else if (mode == "zero") h = detail::float_to_half_rz(x(t));
          else h = detail::float_to_half_sr(x(t), static_cast<uint32_t>(detail::hash3(seed, detail::kStreamRound, t)));
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

  // ---------------------------------------------------------------- checkpoints (checkpoint.h)
  m.def(
      "train_checkpointed",
      [](const TrainConfig& cfg, const std::string& device, int threads, uint64_t seed, const In1<int32_t>& tu,
         const In1<int32_t>& ti, const In1<float>& tr, int64_t n_users, int64_t n_items,
         std::optional<In1<int32_t>> su, std::optional<In1<int32_t>> si, std::optional<In1<float>> sr,
         const std::string& name, std::function<bool(nb::dict)> on_epoch, const std::string& dir, int every,
         bool deterministic) {
        const Context ctx = make_context(device, threads, seed);
        const RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        if (su.has_value()) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        CheckpointOptions opt;
        opt.dir = dir;
        opt.every = every;
        opt.deterministic = deterministic;
        TrainResult res;
        {
          nb::gil_scoped_release release;
          res = train_checkpointed(ctx, cfg, train, su.has_value() ? &test : nullptr, cb, name, opt);
        }
        return result_tuple(std::move(res));
      },
      "config"_a, "device"_a, "threads"_a, "seed"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a,
      "test_users"_a.none(), "test_items"_a.none(), "test_ratings"_a.none(), "name"_a, "on_epoch"_a.none(),
      "checkpoint"_a, "every"_a = 1, "deterministic"_a = false,
      "train() writing checkpoints into `checkpoint`; returns (P, Q, report_json).");
  m.def(
      "resume",
      [](const std::string& dir, const In1<int32_t>& tu, const In1<int32_t>& ti, const In1<float>& tr, int64_t n_users,
         int64_t n_items, std::optional<In1<int32_t>> su, std::optional<In1<int32_t>> si,
         std::optional<In1<float>> sr, std::function<bool(nb::dict)> on_epoch, int every) {
        const RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        if (su.has_value()) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        ResumeOptions opt;
        opt.every = every;
        TrainResult res;
        {
          nb::gil_scoped_release release;
          res = resume_training(dir, train, su.has_value() ? &test : nullptr, cb, opt);
        }
        return result_tuple(std::move(res));
      },
      "dir"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a, "test_users"_a.none() = nb::none(),
      "test_items"_a.none() = nb::none(), "test_ratings"_a.none() = nb::none(), "on_epoch"_a.none() = nb::none(),
      "every"_a = 0, "Continues the run saved in `dir` on the same data; returns (P, Q, report_json).");
  m.def(
      "read_checkpoint",
      [](const std::string& dir, bool verify) {
        const CheckpointInfo info = read_checkpoint(dir, verify);
        nb::dict d;
        d["epochs_done"] = info.epochs_done;
        d["every"] = info.every;
        d["deterministic"] = info.deterministic;
        d["threads"] = info.context.threads;
        d["seed"] = info.context.seed;
        d["device"] = to_string(info.context.device);
        d["dataset"] = info.dataset_name;
        d["n_users"] = info.train.n_users;
        d["n_items"] = info.train.n_items;
        d["n_train"] = info.train.nnz;
        d["n_test"] = info.test.nnz;
        d["report"] = info.report.to_json();
        return d;
      },
      "dir"_a, "verify"_a = true,
      "Validates DIR's checkpoint (manifest, every file's size and, with verify, checksum); returns its metadata and "
      "report JSON.");

  // ---------------------------------------------------------------- memory plan (memory_plan.h)
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const InsufficientMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  m.def(
      "memory_plan",
      [](const TrainConfig& cfg, const std::string& device, int threads, int64_t n_users, int64_t n_items,
         int64_t n_train, int64_t n_test, bool inputs_loaded) {
        Context ctx;
        ctx.device = parse_device(device);
        ctx.threads = threads;
        ctx.validate();
        const MemoryPlan p = plan_memory(ctx, cfg, n_users, n_items, n_train, n_test, inputs_loaded);
        return nb::make_tuple(p.to_json(), p.to_text());
      },
      "config"_a, "device"_a, "threads"_a, "n_users"_a, "n_items"_a, "n_train"_a, "n_test"_a, "inputs_loaded"_a,
      "Memory plan of a job with these shapes: (json, text).  Allocates nothing.");
  m.def(
      "synthetic_shape",
      [](const std::string& name) {
        const SyntheticShape s = synthetic_shape(name);
        nb::dict d;
        d["name"] = s.name;
        d["n_users"] = s.n_users;
        d["n_items"] = s.n_items;
        d["n_ratings"] = s.n_ratings;
        d["test_fraction"] = s.test_fraction;
        return d;
      },
      "name"_a, "Table I shape of a synthetic dataset (unscaled).");
}
