// mascot_train: parse -> options -> the core -> outputs.
//   parse_args        argv -> CliOptions: the training parameters through the core's parameter
//                     table (mascot/param_table.h), the data, output and checkpoint options here
//   reconcile_resume  --resume: the checkpoint's configuration, context and dataset
//   check_and_plan    validation, CUDA support, every input and output declared in one
//                     detail::OutputSet (resolved, checked, staged; a checkpoint directory locked)
//                     and the memory plan, all before the (possibly long) data load; --dry-run of
//                     synthetic data ends here
//   load              the data source (mascot/datasource.h)
//   train_run         train / train_checkpointed / resume_training with per-epoch progress
//   write_outputs     run report, LIBMF export and model directory staged, then published
//                     together: all or none
// Every error reaches the user as one line "mascot_train: error: ..." and a non-zero exit
// (2: bad usage, 1: anything else, 130: interrupted; --dry-run: 3 for a job that does not fit).
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "mascot/checkpoint.h"
#include "mascot/datasource.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/fileutil.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/model.h"
#include "mascot/param_table.h"
#include "mascot/preset.h"
#include "mascot/report.h"
#include "mascot/synthetic.h"
#include "mascot/trainer.h"

namespace {

using namespace mascot;

// --dry-run of a job that does not fit in memory: the plan is printed, then this status (scripts
// tell "fits" (0) from "does not fit" (3) from errors (1, 2)).
constexpr int kExitDoesNotFit = 3;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CliOptions {
  enum class Action { kRun, kHelp, kVersion };
  Action action = Action::kRun;
  Settings settings;                         ///< the training parameters (mascot_train's defaults)
  std::vector<const params::Option*> given;  ///< the parameter options given, in order
  std::string dataset, train_path, test_path;
  std::string report_path, save_dir, libmf_path;
  std::string ckpt_dir, resume_dir;
  std::string preset;  ///< --preset NAME|FILE (mascot/preset.h): applied before the options given
  int ckpt_every = 0;
  bool quiet = false, dry_run = false;

  bool gave(const std::string& flag) const {
    return std::any_of(given.begin(), given.end(), [&](const params::Option* o) { return flag == o->flag; });
  }
};

Settings cli_defaults() {
  Settings s;
  s.config.method = Method::kMascot;  // mascot_train trains the paper's method unless told otherwise
  return s;
}

std::string usage() {
  return R"(usage: mascot_train [options]

Trains a matrix-factorization model with SGD, keeping latent vectors in low precision.
With no options: the built-in synthetic-ml10m data, k=128, 50 epochs, method mascot.

data:
  --dataset NAME            synthetic-ml10m | synthetic-ml25m | synthetic-netflix | synthetic-yahoo,
                            with -heavy for heavy popularity skew (synthetic-ml10m-heavy), optionally
                            scaled (synthetic-netflix:0.1), or a prepared dataset
                            $MASCOT_DATA/NAME/{train,test}.mrat (MASCOT_DATA defaults to ~/.cache/mascot)
  --train PATH              training ratings (.mrat or text "user item rating" per line)
  --test PATH               test ratings (same formats); optional with --train
preset:
  --preset paper|FILE       start from a preset's values, then apply the options given: paper (the
                            paper's settings, written out) or a preset file (`mascot tune` writes one)
)" + params::help(cli_defaults()) +
         R"(outputs:
  --report FILE.json        write the run report (JSON)
  --save DIR                save the model (P.npy, Q.npy, model.json)
  --export-libmf PATH       also write the model in LIBMF's text format (LIBMF's mf-predict reads it)
  --quiet                   no per-epoch progress
checkpoints (docs/checkpoint.md):
  --checkpoint DIR          write the full training state to DIR (created, or an empty directory)
  --checkpoint-every N      ... after every N epochs (default 1), after the last, and on SIGINT/SIGTERM
  --resume DIR              continue the run saved in DIR on the same data; the configuration, seed
                            and threads come from the checkpoint (--method/--k may repeat them;
                            --epochs N extends or finishes the run to N epochs in total, the
                            schedule continuing; other training options are refused); without data
                            options it reads the checkpoint's data again: its synthetic or prepared
                            dataset, or the --train/--test files it read (recorded as absolute
                            paths); data given as Python arrays must be given again (--train/--test);
                            further checkpoints go to DIR
  --dry-run                 print the memory plan (items, bytes, peak, available) and exit: status
                            0 when the job fits, 3 when it does not (without --dry-run such a job
                            is refused before anything large is allocated)
  SIGINT/SIGTERM stop training at the end of the current epoch (a second signal kills at once),
  write a final checkpoint when --checkpoint/--resume is given, and exit with status 130.
  --help, --version
environment (docs/cuda.md):
  MASCOT_CUDA_WRITES=add|store  how CUDA Hogwild warps write rows: L2 reductions of their change
                            (default; no update lost) or plain stores
  MASCOT_CUDA_OVERLAP=X|inf     CUDA warps bounded so the most-rated row sees ~X concurrent updates
                            (default 32 with add, 1 with store; inf fills the device)
  MASCOT_ISA=generic|avx2|avx512  force a CPU kernel variant (default: the best the CPU has)
)";
}

// ---------------------------------------------------------------- parse
// The options that are not training parameters: a path each, or a flag.
struct TextOption {
  const char* flag;
  std::string CliOptions::* field;
};
const TextOption kTextOptions[] = {
    {"--dataset", &CliOptions::dataset},     {"--train", &CliOptions::train_path},
    {"--test", &CliOptions::test_path},      {"--report", &CliOptions::report_path},
    {"--save", &CliOptions::save_dir},       {"--export-libmf", &CliOptions::libmf_path},
    {"--checkpoint", &CliOptions::ckpt_dir}, {"--resume", &CliOptions::resume_dir},
    {"--preset", &CliOptions::preset},
};
bool is_flag(const std::string& o) {
  for (const char* f : {"--help", "-h", "--version", "--quiet", "-q", "--dry-run"})
    if (o == f) return true;
  const params::Option* p = params::find_option(o);
  return p && !p->takes_value();
}

CliOptions parse_args(const std::vector<std::string>& args) {
  CliOptions o;
  o.settings = cli_defaults();
  std::vector<std::pair<const params::Option*, std::string>> values;  // re-applied over a preset
  for (size_t a = 0; a < args.size(); ++a) {
    std::string opt = args[a], val;
    const bool has_eq = opt.rfind("--", 0) == 0 && opt.find('=') != std::string::npos;
    if (has_eq) {
      val = opt.substr(opt.find('=') + 1);
      opt = opt.substr(0, opt.find('='));
    }
    // options without a value: "--quiet=no" is an error, not --quiet
    if (has_eq && is_flag(opt)) throw UsageError(opt + " takes no value (got '" + args[a] + "')");
    auto value = [&]() -> std::string {
      if (!has_eq && a + 1 >= args.size()) throw UsageError(opt + " needs a value");
      const std::string v = has_eq ? val : args[++a];
      if (v.empty()) throw UsageError(opt + " needs a non-empty value");
      return v;
    };
    if (const params::Option* p = params::find_option(opt)) {
      values.emplace_back(p, p->takes_value() ? value() : "");
      p->apply(&o.settings, values.back().second);
      o.given.push_back(p);
      continue;
    }
    const auto text = std::find_if(std::begin(kTextOptions), std::end(kTextOptions),
                                   [&](const TextOption& t) { return opt == t.flag; });
    if (text != std::end(kTextOptions))
      o.*(text->field) = value();
    else if (opt == "--help" || opt == "-h") {
      o.action = CliOptions::Action::kHelp;
      return o;
    } else if (opt == "--version") {
      o.action = CliOptions::Action::kVersion;
      return o;
    } else if (opt == "--quiet" || opt == "-q")
      o.quiet = true;
    else if (opt == "--dry-run")
      o.dry_run = true;
    else if (opt == "--checkpoint-every") {
      o.ckpt_every = params::parse_int(opt, value());
      if (o.ckpt_every < 1)
        throw UsageError("--checkpoint-every must be >= 1 (got " + std::to_string(o.ckpt_every) + ")");
    } else
      throw UsageError("unknown option '" + args[a] + "' (see --help)");
  }
  if (!o.preset.empty()) {  // the preset's values, then the options given (in their order) override them
    o.settings = cli_defaults();
    params::apply_preset(params::load_preset(o.preset), &o.settings);
    for (const auto& [p, v] : values) p->apply(&o.settings, v);
  }
  return o;
}

// Checks that need the whole command line, then the context a run uses (deterministic => one
// CPU thread, decided by the core).
void check_combinations(CliOptions* o) {
  // "m/" is the directory m (a temp sibling must not land inside it); "r.json/" is not a file
  for (std::string* p : {&o->save_dir, &o->ckpt_dir, &o->resume_dir}) *p = detail::strip_trailing_slashes(*p);
  if (!o->dataset.empty() && !o->train_path.empty()) throw UsageError("give either --dataset or --train, not both");
  if (!o->test_path.empty() && o->train_path.empty())
    throw UsageError(o->dataset.empty()
                         ? "--test needs --train"
                         : "--test goes with --train: --dataset " + o->dataset +
                               " brings its own test set (for other files give --train PATH --test PATH)");
  if (!o->dataset.empty()) {  // a synthetic name, or a directory name under $MASCOT_DATA: never a path
    std::string sn;
    double sc = 1.0;
    if (!parse_synthetic_spec(o->dataset, &sn, &sc) &&
        (o->dataset.find('/') != std::string::npos || o->dataset[0] == '.'))
      throw UsageError("invalid dataset name '" + o->dataset + "': a prepared dataset is a directory name under " +
                       data_root() + " (as `mascot data list` shows them); for files give --train PATH [--test PATH]");
  }
  if (o->ckpt_every > 0 && o->ckpt_dir.empty() && o->resume_dir.empty())
    throw UsageError("--checkpoint-every needs --checkpoint DIR (or --resume DIR)");
  if (o->resume_dir.empty())  // a method's settings with another method: refused, as Python refuses them
    for (const params::Option* p : o->given) params::check_option_method(*p, o->settings.config.method);
  o->settings.context = o->settings.context.for_run(Spelling::kCli);
}

// --resume: the configuration, context and (unless data options are given) dataset of the checkpoint.
CheckpointInfo reconcile_resume(CliOptions* o) {
  const std::string& dir = o->resume_dir;
  if (!o->ckpt_dir.empty() && o->ckpt_dir != dir)
    throw UsageError("--resume " + dir + " keeps writing checkpoints into " + dir + "; --checkpoint " + o->ckpt_dir +
                     " conflicts with it");
  if (!o->preset.empty())
    throw UsageError("--preset cannot be combined with --resume: the configuration comes from the checkpoint");
  CheckpointInfo info = read_checkpoint(dir, false);  // checksums are verified while resuming
  if (o->settings.context.deterministic && !info.deterministic)
    throw UsageError("--deterministic cannot be combined with --resume " + dir + ": its run was not deterministic (" +
                     std::to_string(info.context.threads) + " threads); a resumed run keeps the checkpoint's settings");
  for (const params::Option* p : o->given) {
    const std::string f = p->flag;
    if (f == "--method" || f == "--k" || f == "--deterministic") continue;  // may repeat the checkpoint's
    if (f == "--epochs") {  // extends (or finishes) the run: checked against the epochs done here, before the data
      if (o->settings.config.epochs < info.epochs_done)
        throw UsageError("--epochs must be >= " + std::to_string(info.epochs_done) + ", the epochs checkpoint " + dir +
                         " has done (got " + std::to_string(o->settings.config.epochs) + ")");
      info.config.epochs = o->settings.config.epochs;
      continue;
    }
    throw UsageError(f + " cannot be combined with --resume: the configuration comes from the checkpoint (" +
                     to_string(info.config.method) + ", k=" + std::to_string(info.config.k) + ", " +
                     std::to_string(info.config.epochs) + " epochs, seed " + std::to_string(info.context.seed) + ", " +
                     std::to_string(info.context.threads) + " threads)");
  }
  o->settings.context = info.context;
  o->settings.context.deterministic = info.deterministic;
  if (o->dataset.empty() && o->train_path.empty()) {  // the checkpoint's data: the files it read, or its dataset
    if (!info.train_path.empty()) {
      o->train_path = info.train_path;
      o->test_path = info.test_path;
      return info;
    }
    const DataSource src = info.dataset_name.empty() ? DataSource{} : resolve_dataset(info.dataset_name);
    if (info.dataset_name.empty() || !src.unavailable.empty() || src.kind == DataSource::Kind::kFiles)
      throw UsageError(
          "--resume needs the training data again: give --train PATH [--test PATH] (the checkpoint "
          "recorded no files it read and was trained on '" +
          info.dataset_name + "', not a synthetic or prepared dataset)");
    o->dataset = info.dataset_name;
  }
  return info;
}

// Every input and output of the run in one publication (detail/fileutil.h): declared and
// prepared before the data load, written into staging while the run ends, published together.
struct Outputs {
  detail::OutputSet set;
  detail::OutputSet::Handle report = 0, libmf = 0, save = 0;
};

// Everything checkable before the (possibly long) data load and training, checked now: the
// configuration, the device, every input and output (resolved, checked against each other,
// staged beside their targets; a checkpoint directory created and locked), and the memory plan
// of data whose shape is known (synthetic).  Returns the exit status when --dry-run printed that
// plan (nothing more to do), else -1.
int check_and_plan(const CliOptions& o, const TrainConfig& cfg, DataSource* src, Outputs* out) {
  o.settings.config.validate();
  const Context& ctx = o.settings.context;
  ctx.validate();
  // --device cuda with a job the kernels do not take: say so first (whether or not a device is
  // visible), before the (possibly long) data load
  if (ctx.device == Device::kCuda)
    if (const std::string why = detail::cuda_unsupported_reason(cfg); !why.empty()) throw InvalidArgument(why);
  ctx.resolved_device();
  const std::string dataset = o.dataset.empty() && o.train_path.empty() ? "synthetic-ml10m" : o.dataset;
  *src = dataset.empty() ? file_source(o.train_path, o.test_path) : resolve_dataset(dataset);
  detail::OutputSet& set = out->set;
  if (src->kind != DataSource::Kind::kSynthetic) {
    const char* what = src->kind == DataSource::Kind::kFiles ? "--train" : "--dataset";
    if (!src->train_path.empty()) set.input(what, src->train_path);
    if (!src->test_path.empty()) set.input(src->kind == DataSource::Kind::kFiles ? "--test" : what, src->test_path);
  }
  if (!o.report_path.empty()) out->report = set.file("--report", o.report_path);
  if (!o.libmf_path.empty()) out->libmf = set.file("--export-libmf", o.libmf_path);
  if (!o.save_dir.empty()) out->save = set.directory("--save", o.save_dir, model_dir_spec());
  if (!o.resume_dir.empty())
    set.live_directory("checkpoint directory", o.resume_dir, checkpoint_dir_spec(true));
  else if (!o.ckpt_dir.empty())
    set.live_directory("checkpoint directory", o.ckpt_dir, checkpoint_dir_spec(false));
  set.prepare();
  for (const std::string& n : set.notes()) std::fprintf(stderr, "mascot_train: note: %s\n", n.c_str());
  DataShape shape;
  if (!planned_shape(*src, &shape)) return -1;  // file data: planned once loaded (--dry-run) or by train()
  const MemoryPlan plan = plan_memory(ctx, cfg, shape.n_users, shape.n_items, shape.n_train, shape.n_test, false);
  if (o.dry_run) {
    std::fputs(plan.to_text().c_str(), stdout);
    return plan.fits() ? 0 : kExitDoesNotFit;
  }
  check_memory_plan(plan);
  return -1;
}

LoadedData load(const CliOptions& o, const DataSource& src) {
  const Context& ctx = o.settings.context;
  if (!o.quiet && src.kind == DataSource::Kind::kSynthetic)
    std::fprintf(stderr, "generating %s (scale %g, seed %llu)...\n", src.synthetic.c_str(), src.scale,
                 static_cast<unsigned long long>(ctx.seed));
  LoadedData d = load_data(src, ctx.seed, ctx.threads);
  if (!o.quiet)
    std::fprintf(stderr, "data: %s  users %lld  items %lld  train %lld  test %lld\n", src.name.c_str(),
                 static_cast<long long>(d.train.n_users), static_cast<long long>(d.train.n_items),
                 static_cast<long long>(d.train.nnz()), static_cast<long long>(d.has_test ? d.test.nnz() : 0));
  return d;
}

// ---------------------------------------------------------------- training
std::atomic<bool> g_stop{false};
void on_signal(int sig) {
  g_stop.store(true);
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once
}

// One line per epoch on stdout (unless --quiet); false (stop) once SIGINT/SIGTERM arrived.
// With a validation hold-out (`valid`) a valid_rmse column follows test_rmse.
EpochCallback progress(bool quiet, bool valid) {
  auto header = std::make_shared<bool>(false);
  return [quiet, valid, header](const EpochRecord& e) {
    if (!quiet) {
      if (!*header) {
        std::printf("%6s %10s %9s %9s %10s", "epoch", "lr", "train_s", "eval_s", "test_rmse");
        if (valid) std::printf(" %10s", "valid_rmse");
        std::printf(" %8s %8s\n", "fp32_ug", "fp32_ig");
        *header = true;
      }
      char rmse[32] = "-", vrmse[32] = "-";
      if (e.test_rmse >= 0) std::snprintf(rmse, sizeof rmse, "%.6f", e.test_rmse);
      if (e.valid_rmse >= 0) std::snprintf(vrmse, sizeof vrmse, "%.6f", e.valid_rmse);
      std::printf("%6d %10.6f %9.3f %9.3f %10s", e.epoch + 1, e.lr, e.train_seconds, e.eval_seconds, rmse);
      if (valid) std::printf(" %10s", vrmse);
      std::printf(" %8d %8d\n", e.fp32_user_groups, e.fp32_item_groups);
      std::fflush(stdout);
    }
    // the guard's warnings (the core records, the front end prints), also with --quiet
    for (const RmseRise& x : e.rises)
      std::fprintf(stderr,
                   "mascot_train: warning: %s RMSE %.6f after epoch %d is more than %g%% above its best %.6f "
                   "(epoch %d)\n",
                   x.set == "valid" ? "validation" : "test", x.now, x.epoch + 1, kRmseRiseMargin * 100, x.best,
                   x.best_epoch + 1);
    return !g_stop.load();
  };
}

// What the outputs need of the training set (its mean rating; with --export-libmf, which rows
// it rates), kept apart so that a plain run can hand the set itself to the trainer.
struct TrainingSetSummary {
  double mean = 0;
  std::pair<std::vector<uint8_t>, std::vector<uint8_t>> rated;  // users, items
};

// `p` from the root (symlinks kept: the path as the user named it), for the checkpoint's record.
std::string absolute(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  std::vector<char> buf(PATH_MAX + 1);
  if (!::getcwd(buf.data(), buf.size())) return p;
  return std::string(buf.data()) + "/" + p;
}

// A plain run moves d->train into the trainer (train(RatingSet&&, ...) relabels it in place), so
// the ratings are held once (issue 23); resumed and checkpointed runs read the caller's set.
TrainResult train_run(const CliOptions& o, const CheckpointInfo& resume, const DataSource& src, LoadedData* d) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  RatingSet* test = d->has_test ? &d->test : nullptr;  // non-const: train(RatingSet&&, RatingSet*, ...) relabels both
  const TrainConfig& cfg = o.settings.config;
  if (!o.resume_dir.empty()) {
    if (!o.quiet)
      std::fprintf(stderr, "resuming %s after epoch %d of %d\n", o.resume_dir.c_str(), resume.epochs_done,
                   resume.config.epochs);
    ResumeOptions ro;
    ro.every = o.ckpt_every;
    ro.epochs = resume.config.epochs;  // the checkpoint's, or --epochs
    TrainConfig want = resume.config;  // --method / --k given with --resume must match the checkpoint
    if (o.gave("--method")) want.method = cfg.method;
    if (o.gave("--k")) want.k = cfg.k;
    if (o.gave("--method") || o.gave("--k")) ro.expect = &want;
    return resume_training(o.resume_dir, d->train, test, progress(o.quiet, resume.config.valid_fraction > 0), ro);
  }
  if (!o.ckpt_dir.empty()) {
    CheckpointOptions co;
    co.dir = o.ckpt_dir;
    co.every = o.ckpt_every > 0 ? o.ckpt_every : 1;
    co.deterministic = o.settings.context.deterministic;
    if (src.kind == DataSource::Kind::kFiles) {  // recorded, so that --resume DIR alone reads them again
      co.train_path = absolute(src.train_path);
      co.test_path = src.test_path.empty() ? "" : absolute(src.test_path);
    }
    return train_checkpointed(o.settings.context, cfg, d->train, test, progress(o.quiet, cfg.valid_fraction > 0),
                              src.name, co);
  }
  return train(o.settings.context, cfg, std::move(d->train), test, progress(o.quiet, cfg.valid_fraction > 0), src.name);
}

// ---------------------------------------------------------------- outputs
// A word for the shell: as is when safe, else single-quoted (the resume hint is copied and run).
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=+,@%") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// An interrupted run: how to continue it (exit status 130).
int report_interrupted(const CliOptions& o, const RunReport& rep) {
  const std::string& dir = o.resume_dir.empty() ? o.ckpt_dir : o.resume_dir;
  if (dir.empty()) {
    std::fprintf(stderr, "mascot_train: interrupted after epoch %zu; nothing saved\n", rep.epochs.size());
    return 130;
  }
  std::string how = "mascot_train --resume " + shell_quote(dir);
  if (!o.train_path.empty())
    how += " --train " + shell_quote(o.train_path) + (o.test_path.empty() ? "" : " --test " + shell_quote(o.test_path));
  if (!o.report_path.empty()) how += " --report " + shell_quote(o.report_path);
  if (!o.save_dir.empty()) how += " --save " + shell_quote(o.save_dir);
  if (!o.libmf_path.empty()) how += " --export-libmf " + shell_quote(o.libmf_path);
  std::fprintf(stderr, "mascot_train: interrupted after epoch %zu of %d; checkpoint saved in %s; resume with: %s\n",
               rep.epochs.size(), rep.config.epochs, dir.c_str(), how.c_str());
  return 130;
}

int write_outputs(const CliOptions& o, const TrainResult& res, const TrainingSetSummary& train, Outputs* out) {
  const RunReport& rep = res.report;
  if (rep.interrupted) return report_interrupted(o, rep);
  char rmse[32] = "n/a";
  if (rep.final_test_rmse >= 0) std::snprintf(rmse, sizeof rmse, "%.6f", rep.final_test_rmse);
  std::printf("done: method %s  k %d  epochs %zu  device %s\n", to_string(rep.config.method).c_str(), rep.config.k,
              rep.epochs.size(), rep.device.c_str());
  std::printf("      train %.3f s  (%.2f M updates/s)  eval %.3f s  setup %.3f s  final test RMSE %s\n",
              rep.total_train_seconds, rep.updates_per_second / 1e6, rep.total_eval_seconds, rep.setup_seconds, rmse);
  if (!rep.monitor.empty() && rep.best_epoch >= 0 && (rep.config.early_stop > 0 || rep.config.valid_fraction > 0))
    std::printf("      best epoch %d (%s RMSE %.6f)%s\n", rep.best_epoch + 1,
                rep.monitor == "valid" ? "validation" : "test", rep.best_rmse,
                rep.config.early_stop == 0 ? ""
                : rep.stopped_early        ? "; stopped early, the model is that epoch's"
                                           : "; the model is that epoch's");
  if (rep.config.valid_fraction > 0) {
    char v[32] = "n/a";
    if (rep.final_valid_rmse >= 0) std::snprintf(v, sizeof v, "%.6f", rep.final_valid_rmse);
    std::printf("      validation: %lld ratings held out  final validation RMSE %s\n",
                static_cast<long long>(rep.data.n_valid), v);
  }
  // All outputs or none: staged beside their targets, then published together.
  if (!o.libmf_path.empty())
    out->set.write(out->libmf, libmf_text(o.libmf_path, res.model, train.mean, train.rated.first, train.rated.second));
  if (!o.report_path.empty()) out->set.write(out->report, rep.to_json() + "\n");
  if (!o.save_dir.empty())
    write_model_files(out->set.staging_path(out->save), res.model,
                      model_metadata_json(res.model.n_users, res.model.n_items, res.model.k, rep, train.mean));
  out->set.publish();
  return 0;
}

int run(const std::vector<std::string>& args) {
  CliOptions o = parse_args(args);
  if (o.action == CliOptions::Action::kHelp) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (o.action == CliOptions::Action::kVersion) {
    std::printf("mascot_train %s\n", MASCOT_VERSION);
    return 0;
  }
  check_combinations(&o);
  const CheckpointInfo resume = o.resume_dir.empty() ? CheckpointInfo{} : reconcile_resume(&o);
  const TrainConfig& cfg = o.resume_dir.empty() ? o.settings.config : resume.config;
  DataSource src;
  Outputs out;
  if (const int status = check_and_plan(o, cfg, &src, &out); status >= 0) return status;  // --dry-run, synthetic
  LoadedData data = load(o, src);
  if (o.dry_run) {  // file data: the plan needs their shapes
    const MemoryPlan plan = plan_memory(o.settings.context, cfg, data.train.n_users, data.train.n_items,
                                        data.train.nnz(), data.has_test ? data.test.nnz() : 0, true);
    std::fputs(plan.to_text().c_str(), stdout);
    return plan.fits() ? 0 : kExitDoesNotFit;
  }
  TrainingSetSummary summary;
  summary.mean = mean_rating(data.train);
  if (!o.libmf_path.empty()) summary.rated = rated_rows(data.train);
  const TrainResult res = train_run(o, resume, src, &data);
  return write_outputs(o, res, summary, &out);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "mascot_train: error: %s\n", e.what());
    return 2;
  } catch (const mascot::InvalidArgument& e) {
    std::fprintf(stderr, "mascot_train: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mascot_train: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mascot_train: error: %s\n", e.what());
    return 1;
  }
}
