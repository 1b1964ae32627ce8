// mascot._core: converts between NumPy/Python and the core's types and forwards; all logic lives
// in the core (C++) or in python/mascot.  The test hooks are the submodule mascot._core._testing
// (testing.cc, testing_competing.cc); conversions shared with them: convert.h.
// Error mapping: InvalidArgument -> ValueError (nanobind's std::invalid_argument rule),
// IoError -> OSError, CudaError -> RuntimeError, Interrupted -> KeyboardInterrupt,
// InsufficientMemory -> MemoryError.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "convert.h"
#include "fspath.h"
#include "mascot/checkpoint.h"
#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/datasource.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/methods.h"
#include "mascot/model.h"
#include "mascot/param_table.h"
#include "mascot/preset.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/synthetic.h"
#include "mascot/trainer.h"

namespace nb = nanobind;
using namespace nb::literals;
using namespace mascot;
using namespace mascot::bind;

namespace mascot::cpu {
const char* kernel_isa();  // cpu/kernels_dispatch.cc
}
namespace mascot::bind {
void bind_files(nb::module_& m);          // files.cc
void bind_files_testing(nb::module_& t);  // files.cc: its fault hook
}  // namespace mascot::bind

namespace {

// ---------------------------------------------------------------- parameters
// One property per row of the parameter table (enums by name, through the table's rows).
template <class S, class T>
void bind_field(nb::class_<S>& cls, const char* name, T S::* field, const char* help) {
  if constexpr (std::is_enum_v<T>) {
    const params::Param* p = params::find(name);
    cls.def_prop_rw(
        name, [field, p](const S& s) { return p->enum_get(&(s.*field)); },
        [field, p](S& s, const std::string& v) { p->enum_set(&(s.*field), v); }, help);
  } else {
    cls.def_rw(name, field, help);
  }
}

// The default of a row as a Python value (a float32 field by the shortest decimal that is it).
nb::object python_value(const params::Param& p, const Settings& s) {
  const void* f = p.at(s);
  switch (p.type) {
    case params::Type::kInt:
      return nb::cast(*static_cast<const int*>(f));
    case params::Type::kUint64:
      return nb::cast(*static_cast<const uint64_t*>(f));
    case params::Type::kDouble:
      return nb::cast(*static_cast<const double*>(f));
    case params::Type::kBool:
      return nb::cast(*static_cast<const bool*>(f));
    case params::Type::kIntList:
      return nb::cast(*static_cast<const std::vector<int>*>(f));
    case params::Type::kEnum:
      return nb::cast(p.enum_get(f));
    case params::Type::kFloat: {
      const float v = *static_cast<const float*>(f);
      char b[32];
      for (int digits = 1; digits <= 9; ++digits) {
        std::snprintf(b, sizeof b, "%.*g", digits, static_cast<double>(v));
        if (static_cast<float>(std::strtod(b, nullptr)) == v) break;
      }
      return nb::cast(std::strtod(b, nullptr));
    }
  }
  return nb::none();
}

nb::dict param_row(const params::Param& p, const Settings& defaults) {
  static const char* const kTypes[] = {"int", "uint64", "float", "double", "bool", "int_list", "enum"};
  static const char* const kScopes[] = {"config", "competing", "context"};
  static const char* const kChecks[] = {"none", "range", "positive", "non_negative", "unit", "share_or_off", "custom"};
  static const char* const kSections[] = {"training", "switching", "study", "competing", "als", "run", "internal"};
  nb::dict d;
  d["name"] = p.name;
  d["type"] = kTypes[static_cast<int>(p.type)];
  d["scope"] = kScopes[static_cast<int>(p.scope)];
  d["default"] = python_value(p, defaults);
  d["check"] = kChecks[p.check.kind];
  // integers: the values the field takes (its rule's range within the C++ type)
  nb::object lo = nb::none(), hi = nb::none();
  if (p.type == params::Type::kInt) {
    const bool range = p.check.kind == params::Check::kRange;
    lo = nb::cast(range ? p.check.lo : int64_t(std::numeric_limits<int32_t>::min()));
    hi = nb::cast(range ? p.check.hi : int64_t(std::numeric_limits<int32_t>::max()));
  } else if (p.type == params::Type::kUint64) {
    lo = nb::cast(uint64_t(0));
    hi = nb::cast(std::numeric_limits<uint64_t>::max());
  }
  d["min"] = lo;
  d["max"] = hi;
  d["choices"] = p.enum_names ? nb::cast(p.enum_names()) : nb::none();
  std::vector<std::string> methods;
  for (const std::string& m : method_names())
    if (params::has_method(p.methods, parse_method(m))) methods.push_back(m);
  d["methods"] = methods;
  d["section"] = kSections[p.section];
  d["flag"] = *p.flag ? nb::cast(std::string(p.flag)) : nb::none();
  d["help"] = p.help;
  return d;
}

void bind_params(nb::module_& m) {
  nb::class_<CompetingParams> cp(
      m, "CompetingParams",
      "Settings of the competing methods (mpt, muppet, afp) and of als; validate() names bad fields.");
  cp.def(nb::init<>()).def("validate", &CompetingParams::validate);
#define MASCOT_BIND(type, name, def, check, methods, section, flag, metavar, help) \
  bind_field(cp, #name, &CompetingParams::name, help);
  MASCOT_COMPETING_PARAMS(MASCOT_BIND)
#undef MASCOT_BIND

  nb::class_<TrainConfig> tc(m, "TrainConfig", "Training parameters (mascot/params.h); validate() names bad fields.");
  tc.def(nb::init<>())
      .def_rw("competing", &TrainConfig::competing, "mpt / muppet / afp settings (CompetingParams)")
      .def("validate", &TrainConfig::validate)
      .def("lr_at", &TrainConfig::lr_at, "epoch"_a);
#define MASCOT_BIND(type, name, def, check, methods, section, flag, metavar, help) \
  bind_field(tc, #name, &TrainConfig::name, help);
  MASCOT_TRAIN_PARAMS(MASCOT_BIND)
#undef MASCOT_BIND

  nb::class_<Context> cx(m, "Context", "Where and how a job runs (device, threads, seed, deterministic).");
  cx.def(nb::init<>())
      .def("validate", &Context::validate)
      .def(
          "for_run", [](const Context& c) { return c.for_run(Spelling::kPython); },
          "The context a run uses: deterministic => one CPU thread on the CPU device (a conflicting threads or "
          "device setting is a ValueError).")
      .def("resolved_threads", &Context::resolved_threads);
#define MASCOT_BIND(type, name, def, check, methods, section, flag, metavar, help) \
  bind_field(cx, #name, &Context::name, help);
  MASCOT_CONTEXT_PARAMS(MASCOT_BIND)
#undef MASCOT_BIND

  m.def(
      "param_table",
      [] {
        const Settings defaults;
        nb::list rows;
        for (const params::Param& p : params::table()) rows.append(param_row(p, defaults));
        return rows;
      },
      "The parameter table (mascot/params.h): one dict per parameter with name, type (int, uint64, float, double, "
      "bool, int_list, enum), scope (config, competing, context: TrainConfig, its CompetingParams, Context), "
      "default, check and, for integers, min and max, choices (enums), methods, section, flag (mascot_train's "
      "option) and help.");
  // presets (mascot/preset.h): one reader for mascot_train and mascot.presets
  auto preset_dict = [](const params::Preset& p) {
    Settings s;
    params::apply_preset(p, &s);
    nb::dict values;
    for (const params::PresetValue& v : p.values) values[v.param->name] = python_value(*v.param, s);
    nb::dict d;
    d["name"] = p.name;
    d["params"] = values;
    d["valid_rmse"] = p.has_valid_rmse ? nb::cast(p.valid_rmse) : nb::none();
    d["source"] = p.source;
    return d;
  };
  m.def("preset_names", &params::preset_names, "The built-in presets (paper).");
  m.def(
      "read_preset", [preset_dict](const FsPath& p) { return preset_dict(params::load_preset(p)); }, "name_or_path"_a,
      "A built-in preset by name, else a preset file, read and checked by the parameter table: {name, params: "
      "{name: value}, valid_rmse (None when absent), source}.  ValueError / OSError: one line naming the file and "
      "the field.");
  m.def(
      "parse_preset",
      [preset_dict](const std::string& text, const std::string& what) {
        return preset_dict(params::parse_preset(text, what));
      },
      "text"_a, "what"_a, "A preset file's text, checked as read_preset checks a file (`what` names it).");
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
}

// ---------------------------------------------------------------- devices
void bind_devices(nb::module_& m) {
  m.attr("HAS_CUDA") = built_with_cuda();
  m.def("cuda_device_count", &cuda_device_count, "Visible CUDA devices (0 without CUDA, a driver or a GPU).");
  m.def("cuda_unavailable_reason", &cuda_unavailable_reason,
        "Why the GPU cannot be used (no CUDA backend, no device or driver, an old driver, an earlier device "
        "fault in this process), or '' when it can.");
  m.def("cuda_unsupported_reason", &detail::cuda_unsupported_reason, "config"_a,
        "Why the CUDA kernels do not take this configuration (k, order, a study option), '' when they do: "
        "--device cuda refuses such a job, auto trains it on the CPU.");
  m.def("cuda_device_name", &detail::cuda_device_name,
        "Name, compute capability, SMs and memory of the current CUDA device (RuntimeError without one).");
  m.def("cuda_copy_bandwidth", &detail::cuda_copy_bandwidth, "bytes"_a = int64_t(1) << 30, "reps"_a = 20,
        "Device-to-device copy bandwidth in GB/s (read + write bytes, median of reps, CUDA events).");
  m.def("kernel_isa", &cpu::kernel_isa, "Instruction set of the CPU kernels picked for this host.");
}

// ---------------------------------------------------------------- data
void bind_data(nb::module_& m) {
  m.def("read_ratings", [](const FsPath& p) { return set_to_tuple(read_ratings(p)); }, "path"_a);
  m.def("read_mrat", [](const FsPath& p) { return set_to_tuple(read_mrat(p)); }, "path"_a);
  m.def("read_text", [](const FsPath& p) { return set_to_tuple(read_text(p)); }, "path"_a);
  m.def(
      "write_mrat",
      [](const FsPath& p, const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t nu, int64_t ni) {
        write_mrat(p, make_set(u, i, r, nu, ni, p.s.c_str()));
      },
      "path"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a);
  m.def(
      "write_text",
      [](const FsPath& p, const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t nu, int64_t ni) {
        write_text(p, make_set(u, i, r, nu, ni, p.s.c_str()));
      },
      "path"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a);
  m.def(
      "synthetic",
      [](const std::string& name, double scale, uint64_t seed, int threads, std::optional<double> user_exponent,
         std::optional<double> item_exponent) {
        SyntheticShape shape = synthetic_shape(name);
        if (user_exponent || item_exponent) shape.skew.name = "custom";
        if (user_exponent) shape.skew.user_exponent = *user_exponent;
        if (item_exponent) shape.skew.item_exponent = *item_exponent;
        SyntheticData d;
        {
          nb::gil_scoped_release release;
          d = generate_synthetic(shape, scale, seed, threads);
        }
        return nb::make_tuple(set_to_tuple(std::move(d.train)), set_to_tuple(std::move(d.test)));
      },
      "name"_a, "scale"_a = 1.0, "seed"_a = 42, "threads"_a = 0, "user_exponent"_a = nb::none(),
      "item_exponent"_a = nb::none());
  m.def("synthetic_skew_names", &synthetic_skew_names);
  m.def("synthetic_names", &synthetic_names);
  m.def("parse_synthetic_spec", [](const std::string& s) -> nb::object {
    std::string name;
    double scale;
    if (!parse_synthetic_spec(s, &name, &scale)) return nb::none();
    return nb::make_tuple(name, scale);
  });
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
        d["skew"] = s.skew.name;
        d["user_exponent"] = s.skew.user_exponent;
        d["item_exponent"] = s.skew.item_exponent;
        d["repeats"] = s.skew.repeats;
        return d;
      },
      "name"_a, "Table I shape of a synthetic dataset (unscaled).");
  m.def("data_root", &data_root, "$MASCOT_DATA, else ~/.cache/mascot: where prepared datasets live.");
  m.def(
      "resolve_dataset",
      [](const std::string& name) {
        const DataSource src = resolve_dataset(name);
        nb::dict d;
        d["kind"] = src.kind == DataSource::Kind::kSynthetic ? "synthetic" : "prepared";
        d["name"] = src.name;
        d["synthetic"] = src.synthetic;
        d["scale"] = src.scale;
        d["train"] = src.train_path;
        d["test"] = src.test_path.empty() ? nb::none() : nb::cast(src.test_path);
        d["unavailable"] = src.unavailable;
        return d;
      },
      "name"_a,
      "A dataset name as mascot_train --dataset reads it: kind (synthetic, prepared), synthetic name and scale, or "
      "the prepared train / test paths, and `unavailable` (why a prepared one cannot be read, '' when it can).");
  m.def(
      "planned_shape",
      [](const std::string& name) -> nb::object {
        DataShape s;
        if (!planned_shape(resolve_dataset(name), &s)) return nb::none();
        return nb::make_tuple(s.n_users, s.n_items, s.n_train, s.n_test);
      },
      "name"_a,
      "(n_users, n_items, n_train, n_test) of a synthetic dataset before it is generated (the generator's sizes; "
      "n_test the expected share of the seeded split), None for other names.");
}

// ---------------------------------------------------------------- training
nb::dict epoch_dict(const EpochRecord& e) {
  nb::dict d;
  d["epoch"] = e.epoch;
  d["lr"] = e.lr;
  d["train_seconds"] = e.train_seconds;
  d["eval_seconds"] = e.eval_seconds;
  d["test_rmse"] = e.test_rmse >= 0 ? nb::cast(e.test_rmse) : nb::none();
  d["valid_rmse"] = e.valid_rmse >= 0 ? nb::cast(e.valid_rmse) : nb::none();
  d["fp32_user_groups"] = e.fp32_user_groups;
  d["fp32_item_groups"] = e.fp32_item_groups;
  nb::list rises;  // the guard's warnings of this epoch (RunReport "warnings")
  for (const RmseRise& x : e.rises) {
    nb::dict r;
    r["set"] = x.set;
    r["epoch"] = x.epoch;
    r["best_epoch"] = x.best_epoch;
    r["best"] = x.best;
    r["now"] = x.now;
    rises.append(r);
  }
  d["rises"] = rises;
  return d;
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

using OptIds = std::optional<In1<int32_t>>;
using OptRatings = std::optional<In1<float>>;

void bind_training(nb::module_& m) {
  m.def(
      "valid_split",
      [](const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r, int64_t n_users, int64_t n_items,
         double fraction, uint64_t seed) {
        const RatingSet rs = make_set(u, i, r, n_users, n_items, "ratings");
        ValidSplit sp;
        {
          nb::gil_scoped_release release;
          sp = valid_split(rs, fraction, seed);
        }
        return nb::make_tuple(set_to_tuple(std::move(sp.train)), set_to_tuple(std::move(sp.valid)));
      },
      "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a, "fraction"_a, "seed"_a,
      "The validation hold-out of valid_fraction (the trainer's split with seed = the run's seed): of each user's "
      "n_u ratings floor(fraction * n_u), chosen by a seeded hash of (user, item); returns (train, valid) as "
      "(users, items, ratings, n_users, n_items) tuples in the input's order.");
  m.def(
      "train",
      [](const TrainConfig& cfg, const Context& ctx, const In1<int32_t>& tu, const In1<int32_t>& ti,
         const In1<float>& tr, int64_t n_users, int64_t n_items, OptIds su, OptIds si, OptRatings sr,
         const std::string& name, std::function<bool(nb::dict)> on_epoch) {
        RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        if (su.has_value()) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        TrainResult res;
        {
          nb::gil_scoped_release release;
          // these copies are the trainer's to keep: the ratings are not copied again
          res = mascot::train(ctx, cfg, std::move(train), su.has_value() ? &test : nullptr, cb, name);
        }
        return result_tuple(std::move(res));
      },
      "config"_a, "context"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a,
      "test_users"_a.none() = nb::none(), "test_items"_a.none() = nb::none(), "test_ratings"_a.none() = nb::none(),
      "name"_a = "", "on_epoch"_a.none() = nb::none(),
      "Trains; returns (P, Q, report_json) with P, Q in original id order.");
  m.def(
      "train_checkpointed",
      [](const TrainConfig& cfg, const Context& ctx, const In1<int32_t>& tu, const In1<int32_t>& ti,
         const In1<float>& tr, int64_t n_users, int64_t n_items, OptIds su, OptIds si, OptRatings sr,
         const std::string& name, std::function<bool(nb::dict)> on_epoch, const FsPath& dir, int every) {
        const RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        if (su.has_value()) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        CheckpointOptions opt;
        opt.dir = dir;
        opt.every = every;
        opt.deterministic = ctx.deterministic;
        TrainResult res;
        {
          nb::gil_scoped_release release;
          res = train_checkpointed(ctx, cfg, train, su.has_value() ? &test : nullptr, cb, name, opt);
        }
        return result_tuple(std::move(res));
      },
      "config"_a, "context"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a, "test_users"_a.none(),
      "test_items"_a.none(), "test_ratings"_a.none(), "name"_a, "on_epoch"_a.none(), "checkpoint"_a, "every"_a = 1,
      "train() writing checkpoints into `checkpoint` (deterministic: the context's); returns (P, Q, report_json).");
  m.def(
      "resume",
      [](const FsPath& dir, const In1<int32_t>& tu, const In1<int32_t>& ti, const In1<float>& tr, int64_t n_users,
         int64_t n_items, OptIds su, OptIds si, OptRatings sr, std::function<bool(nb::dict)> on_epoch, int every,
         int epochs) {
        const RatingSet train = make_set(tu, ti, tr, n_users, n_items, "training set");
        RatingSet test;
        if (su.has_value()) test = make_test(su, si, sr);
        EpochCallback cb = wrap_callback(on_epoch);
        ResumeOptions opt;
        opt.every = every;
        opt.epochs = epochs;
        TrainResult res;
        {
          nb::gil_scoped_release release;
          res = resume_training(dir, train, su.has_value() ? &test : nullptr, cb, opt);
        }
        return result_tuple(std::move(res));
      },
      "dir"_a, "users"_a, "items"_a, "ratings"_a, "n_users"_a, "n_items"_a, "test_users"_a.none() = nb::none(),
      "test_items"_a.none() = nb::none(), "test_ratings"_a.none() = nb::none(), "on_epoch"_a.none() = nb::none(),
      "every"_a = 0, "epochs"_a = 0,
      "Continues the run saved in `dir` on the same data (epochs > 0: to that many epochs in total); returns "
      "(P, Q, report_json).");
  m.def(
      "read_checkpoint",
      [](const FsPath& dir, bool verify) {
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
  m.def(
      "memory_plan",
      [](const TrainConfig& cfg, const Context& ctx, int64_t n_users, int64_t n_items, int64_t n_train, int64_t n_test,
         bool inputs_loaded) {
        ctx.validate();
        const MemoryPlan p = plan_memory(ctx, cfg, n_users, n_items, n_train, n_test, inputs_loaded);
        return nb::make_tuple(p.to_json(), p.to_text());
      },
      "config"_a, "context"_a, "n_users"_a, "n_items"_a, "n_train"_a, "n_test"_a, "inputs_loaded"_a,
      "Memory plan of a job with these shapes: (json, text).  Allocates nothing.");
}

// ---------------------------------------------------------------- models
void bind_models(nb::module_& m) {
  m.def(
      "save_model",
      [](const FsPath& dir, const In2<float>& P, const In2<float>& Q, const std::string& meta,
         const std::vector<std::pair<std::string, nb::bytes>>& extra) {
        Model mdl = model_from(P, Q);
        std::vector<ModelFile> files;
        for (const auto& [name, content] : extra)
          files.emplace_back(name, std::string(content.c_str(), content.size()));
        save_model(dir, mdl, meta, files);
      },
      "dir"_a, "P"_a, "Q"_a, "model_json"_a, "extra"_a = std::vector<std::pair<std::string, nb::bytes>>(),
      "Writes the model directory atomically; `extra` = [(file name, bytes)] written inside it too.");
  m.def(
      "export_libmf",
      [](const FsPath& path, const In2<float>& P, const In2<float>& Q, double bias,
         std::optional<In1<uint8_t>> user_rated, std::optional<In1<uint8_t>> item_rated) {
        Model mdl = model_from(P, Q);
        std::vector<uint8_t> ur, ir;
        if (user_rated) ur = to_vec(*user_rated);
        if (item_rated) ir = to_vec(*item_rated);
        export_libmf(path, mdl, bias, ur, ir);
      },
      "path"_a, "P"_a, "Q"_a, "bias"_a, "user_rated"_a = nb::none(), "item_rated"_a = nb::none(),
      "Writes LIBMF's text model format atomically (rows whose rated flag is 0 are written as F).");
  m.def("load_model", [](const FsPath& dir) {
    Model mdl = load_model(dir);
    const size_t k = mdl.k, nu = mdl.n_users, ni = mdl.n_items;
    return nb::make_tuple(to_numpy(std::move(mdl.P), {nu, k}), to_numpy(std::move(mdl.Q), {ni, k}));
  });
}

}  // namespace

// ALS (issue 21): cpp/bindings/als_bindings.cc; its test hooks join the others in _core._testing
void bind_als(nb::module_& m);
void bind_dask(nb::module_& m);  // dask_bindings.cc
void bind_als_testing(nb::module_& m);

NB_MODULE(_core, m) {
  m.doc() = "MASCOT core (C++): low-precision matrix-factorization training";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const Interrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    } catch (const InsufficientMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  m.attr("__version__") = MASCOT_VERSION;
  bind_params(m);
  bind_devices(m);
  bind_data(m);
  bind_training(m);
  bind_models(m);
  bind_als(m);
  bind_dask(m);
  nb::module_ testing = m.def_submodule("_testing",
                                        "Test hooks: internals of the core for the tests and the NumPy "
                                        "reference (not part of the API).");
  bind_testing(testing);
  bind_testing_competing(testing);
  bind_als_testing(testing);
  bind_files_testing(testing);
  bind_files(m);  // last: its exception translator is tried first (files.cc)
}
