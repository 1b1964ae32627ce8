// mascot_train: parse -> TrainConfig/Context -> train() -> progress, report, model.
// Every error reaches the user as one line "mascot_train: error: ..." and a non-zero exit
// (2: bad usage, 1: anything else, 130: interrupted).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "mascot/checkpoint.h"
#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/fileutil.h"
#include "mascot/error.h"
#include "mascot/memory_plan.h"
#include "mascot/model.h"
#include "mascot/ratings.h"
#include "mascot/report.h"
#include "mascot/synthetic.h"
#include "mascot/trainer.h"

namespace {

using namespace mascot;

constexpr const char* kUsage = R"(usage: mascot_train [options]

Trains a matrix-factorization model with SGD, keeping latent vectors in low precision.
With no options: the built-in synthetic-ml10m data, k=128, 50 epochs, method mascot.

data:
  --dataset NAME        synthetic-ml10m | synthetic-ml25m | synthetic-netflix | synthetic-yahoo,
                        optionally scaled (synthetic-netflix:0.1), or a prepared dataset
                        $MASCOT_DATA/NAME/{train,test}.mrat (MASCOT_DATA defaults to ~/.cache/mascot)
  --train PATH          training ratings (.mrat or text "user item rating" per line)
  --test PATH           test ratings (same formats); optional with --train
model and training:
  --method NAME         fp32 | fp16 | mascot-n1 | mascot | mascot-n2 | mascot-naive |
                        mpt | muppet | afp (default mascot)
  --k N                 latent dimension (default 128)
  --epochs N            epochs (default 50)
  --lr X                initial learning rate eta0 (default 0.01)
  --decay X             schedule eta_e = eta0 / (1 + decay * e^1.5) (default 0.1)
  --lambda-p X          user regularisation (default 0.01)
  --lambda-q X          item regularisation (default 0.015)
  --init-std X          std of the N(0, s^2) init (default 0.01)
  --groups G            user and item groups (default 100); --user-groups / --item-groups set one side
  --order NAME          shuffle | blocked | chunk: visiting order (default shuffle)
  --rounding NAME       nearest | stochastic FP16 stores of FP32 results (default nearest)
g-switching (mascot, mascot-n2, mascot-naive):
  --period N            measure the q-error every N epochs after warm-up (default 2)
  --sample-ratio X      share of ratings sampled for the q-error, in (0, 1] (default 0.05)
  --threshold X         switch a group when q-error / its first measurement > X (default 20)
  --warmup N            first measured epoch, 0-based (default 5)
studies:
  --random-fp16 F       paper Fig. 4: store a random share F of the user and item rows in FP16,
                        the rest FP32, no switching (mascot, mascot-naive, mascot-n1)
  --grad-stats          paper Fig. 5: report each group's mean sampled-gradient norm every epoch
                        (fp32, mascot-n1, mascot, mascot-n2, mascot-naive; sampled with --sample-ratio)
competing methods:
  --loss-scale X|dynamic       mpt: static loss scale S (default 1000), or dynamic scaling
  --loss-scale-window N        mpt dynamic: clean updates before S doubles (default 2000)
  --muppet-word-lengths LIST   muppet: fixed-point schedule before FP32 (default 8,12,14,16)
  --muppet-resolution N        muppet: epochs per gradient-diversity window (default 3)
  --muppet-patience N          muppet: violations before switching (default 2)
  --afp-bits LOW,HIGH          afp: word lengths (default 8,16)
  --afp-error-threshold X      afp: quantization-error threshold T (default 0.0005)
run:
  --threads N           CPU threads (default 0 = all cores)
  --seed N              seed of init, order and data generation (default 42)
  --device NAME         auto | cpu | cuda (default auto)
  --report FILE.json    write the run report (JSON)
  --save DIR            save the model (P.npy, Q.npy, model.json)
  --export-libmf PATH   also write the model in LIBMF's text format (LIBMF's mf-predict reads it)
  --quiet               no per-epoch progress
checkpoints (docs/checkpoint.md):
  --checkpoint DIR      write the full training state to DIR (created, or an empty directory)
  --checkpoint-every N  ... after every N epochs (default 1), after the last, and on SIGINT/SIGTERM
  --resume DIR          continue the run saved in DIR on the same data; the configuration, seed
                        and threads come from the checkpoint (--method/--k may repeat them; other
                        training flags are refused); the data flags default to the checkpoint's
                        dataset; further checkpoints go to DIR
  --deterministic       one CPU thread, fixed order: bit-for-bit reproducible (also across resume)
  --dry-run             print the memory plan (items, bytes, peak, available) and exit; a job
                        that cannot fit is refused before anything large is allocated
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

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::atomic<bool> g_stop{false};
void on_signal(int sig) {
  g_stop.store(true);
  std::signal(sig, SIG_DFL);  // a second signal ends the process at once
}

// Training flags: with --resume they come from the checkpoint.
bool is_config_flag(const std::string& o) {
  static const char* const flags[] = {"--method", "--k", "--epochs", "--lr", "--decay", "--lambda-p", "--lambda-q",
                                      "--init-std", "--groups", "--user-groups", "--item-groups", "--order",
                                      "--rounding", "--period", "--sample-ratio", "--threshold", "--warmup",
                                      "--loss-scale", "--loss-scale-window", "--muppet-word-lengths",
                                      "--muppet-resolution", "--muppet-patience", "--afp-bits",
                                      "--afp-error-threshold", "--threads", "--seed", "--device",
                                      "--random-fp16", "--grad-stats"};
  for (const char* f : flags)
    if (o == f) return true;
  return false;
}

double parse_num(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw UsageError(opt + " expects a number (got '" + v + "')");
  if (errno == ERANGE) throw UsageError(opt + " is outside the double range (got '" + v + "')");
  return d;
}
long long parse_int(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) throw UsageError(opt + " expects an integer (got '" + v + "')");
  return x;
}
// A float32 option: a finite double that float32 cannot hold (1e40, 1e-50) is an error, not inf or 0.
float parse_f32(const std::string& opt, const std::string& v) {
  const double d = parse_num(opt, v);
  const auto f = static_cast<float>(d);
  if (std::isfinite(d) && (std::isinf(f) || (d != 0 && f == 0)))
    throw UsageError(opt + " is outside the float32 range (got '" + v + "')");
  return f;
}
int parse_i32(const std::string& opt, const std::string& v) {
  const long long x = parse_int(opt, v);
  if (x < -2147483647LL || x > 2147483647LL) throw UsageError(opt + " is out of range (got '" + v + "')");
  return static_cast<int>(x);
}

std::vector<int> parse_int_list(const std::string& opt, const std::string& v) {
  std::vector<int> out;
  size_t a = 0;
  while (a <= v.size()) {
    const size_t b = v.find(',', a);
    out.push_back(parse_i32(opt, v.substr(a, b == std::string::npos ? std::string::npos : b - a)));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return out;
}

std::string data_root() {
  if (const char* d = std::getenv("MASCOT_DATA"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mascot";
}

// Fails now (not after training) when the file `path` cannot be created or replaced.
void check_writable_target(const std::string& what, const std::string& path) {
  if (const std::string why = detail::cannot_create(path); !why.empty()) throw IoError(what + " " + path + ": " + why);
  if (detail::is_directory(path)) throw IoError(what + " " + path + ": is a directory");
}

// A word for the shell: as is when safe, else single-quoted (the resume hint is copied and run).
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=+,@%") ==
                        std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int run(int argc, char** argv) {
  TrainConfig cfg;
  cfg.method = Method::kMascot;
  Context ctx;
  std::string dataset, train_path, test_path, report_path, save_dir;
  std::string libmf_path;
  bool quiet = false;
  std::string ckpt_dir, resume_dir;
  int ckpt_every = 0;
  bool deterministic = false;
  bool dry_run = false;
  std::vector<std::string> cfg_flags;  // training flags given (checked against --resume)

  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t a = 0; a < args.size(); ++a) {
    std::string opt = args[a], val;
    const bool has_eq = opt.rfind("--", 0) == 0 && opt.find('=') != std::string::npos;
    if (has_eq) {
      val = opt.substr(opt.find('=') + 1);
      opt = opt.substr(0, opt.find('='));
    }
    auto value = [&]() -> std::string {
      if (!has_eq && a + 1 >= args.size()) throw UsageError(opt + " needs a value");
      const std::string v = has_eq ? val : args[++a];
      if (v.empty()) throw UsageError(opt + " needs a non-empty value");
      return v;
    };
    // options without a value: "--quiet=no" is an error, not --quiet
    static const char* const kFlags[] = {"--help", "-h", "--version", "--quiet", "-q", "--grad-stats",
                                         "--deterministic", "--dry-run"};
    if (has_eq)
      for (const char* f : kFlags)
        if (opt == f) throw UsageError(opt + " takes no value (got '" + args[a] + "')");
    if (is_config_flag(opt)) cfg_flags.push_back(opt);
    if (opt == "--help" || opt == "-h") { std::fputs(kUsage, stdout); return 0; }
    else if (opt == "--version") { std::printf("mascot_train %s\n", MASCOT_VERSION); return 0; }
    else if (opt == "--quiet" || opt == "-q") quiet = true;
    else if (opt == "--dataset") dataset = value();
    else if (opt == "--train") train_path = value();
    else if (opt == "--test") test_path = value();
    else if (opt == "--method") cfg.method = parse_method(value());
    else if (opt == "--k") cfg.k = parse_i32(opt, value());
    else if (opt == "--epochs") cfg.epochs = parse_i32(opt, value());
    else if (opt == "--lr") cfg.lr = parse_f32(opt, value());
    else if (opt == "--decay") cfg.decay = parse_f32(opt, value());
    else if (opt == "--lambda-p") cfg.lambda_p = parse_f32(opt, value());
    else if (opt == "--lambda-q") cfg.lambda_q = parse_f32(opt, value());
    else if (opt == "--init-std") cfg.init_std = parse_f32(opt, value());
    else if (opt == "--groups") cfg.user_groups = cfg.item_groups = parse_i32(opt, value());
    else if (opt == "--user-groups") cfg.user_groups = parse_i32(opt, value());
    else if (opt == "--item-groups") cfg.item_groups = parse_i32(opt, value());
    else if (opt == "--order") cfg.order = parse_order(value());
    else if (opt == "--rounding") cfg.rounding = parse_rounding(value());
    else if (opt == "--period") cfg.period = parse_i32(opt, value());
    else if (opt == "--sample-ratio") cfg.sample_ratio = parse_num(opt, value());
    else if (opt == "--threshold") cfg.threshold = parse_num(opt, value());
    else if (opt == "--warmup") cfg.warmup = parse_i32(opt, value());
    else if (opt == "--random-fp16") cfg.random_fp16 = parse_num(opt, value());
    else if (opt == "--grad-stats") cfg.grad_stats = true;
    else if (opt == "--loss-scale") {
      const std::string v = value();
      cfg.competing.dynamic_loss_scale = v == "dynamic";  // the last --loss-scale wins
      if (v != "dynamic") cfg.competing.loss_scale = parse_f32(opt, v);
    }
    else if (opt == "--loss-scale-window") cfg.competing.loss_scale_window = parse_i32(opt, value());
    else if (opt == "--muppet-word-lengths") cfg.competing.muppet_word_lengths = parse_int_list(opt, value());
    else if (opt == "--muppet-resolution") cfg.competing.muppet_resolution = parse_i32(opt, value());
    else if (opt == "--muppet-patience") cfg.competing.muppet_patience = parse_i32(opt, value());
    else if (opt == "--afp-bits") {
      const std::vector<int> b = parse_int_list(opt, value());
      if (b.size() != 2) throw UsageError("--afp-bits expects LOW,HIGH (got " + std::to_string(b.size()) + " values)");
      cfg.competing.afp_low_bits = b[0];
      cfg.competing.afp_high_bits = b[1];
    }
    else if (opt == "--afp-error-threshold") cfg.competing.afp_error_threshold = parse_num(opt, value());
    else if (opt == "--threads") ctx.threads = parse_i32(opt, value());
    else if (opt == "--seed") {
      const long long s = parse_int(opt, value());
      if (s < 0) throw UsageError("--seed must be >= 0");
      ctx.seed = static_cast<uint64_t>(s);
    }
    else if (opt == "--device") ctx.device = parse_device(value());
    else if (opt == "--report") report_path = value();
    else if (opt == "--save") save_dir = value();
    else if (opt == "--export-libmf") libmf_path = value();
    else if (opt == "--checkpoint") ckpt_dir = value();
    else if (opt == "--checkpoint-every") {
      ckpt_every = parse_i32(opt, value());
      if (ckpt_every < 1) throw UsageError("--checkpoint-every must be >= 1 (got " + std::to_string(ckpt_every) + ")");
    }
    else if (opt == "--resume") resume_dir = value();
    else if (opt == "--deterministic") deterministic = true;
    else if (opt == "--dry-run") dry_run = true;
    else throw UsageError("unknown option '" + args[a] + "' (see --help)");
  }
  // "m/" is the directory m (a temp sibling must not land inside it); "r.json/" is not a file
  for (std::string* p : {&save_dir, &ckpt_dir, &resume_dir}) *p = detail::strip_trailing_slashes(*p);
  if (!dataset.empty() && !train_path.empty()) throw UsageError("give either --dataset or --train, not both");
  if (!test_path.empty() && train_path.empty()) throw UsageError("--test needs --train");
  if (ckpt_every > 0 && ckpt_dir.empty() && resume_dir.empty())
    throw UsageError("--checkpoint-every needs --checkpoint DIR (or --resume DIR)");
  if (deterministic) {
    if (ctx.threads > 1) throw UsageError("--deterministic runs one thread (got --threads " + std::to_string(ctx.threads) + ")");
    if (ctx.device == Device::kCuda) throw UsageError("--deterministic runs on the CPU (got --device cuda)");
    ctx.threads = 1;
    ctx.device = Device::kCpu;
  }
  CheckpointInfo resume_info;
  if (!resume_dir.empty()) {
    if (!ckpt_dir.empty() && ckpt_dir != resume_dir)
      throw UsageError("--resume " + resume_dir + " keeps writing checkpoints into " + resume_dir +
                       "; --checkpoint " + ckpt_dir + " conflicts with it");
    resume_info = read_checkpoint(resume_dir, false);  // checksums are verified while resuming
    if (deterministic && !resume_info.deterministic)
      throw UsageError("--deterministic cannot be combined with --resume " + resume_dir +
                       ": its run was not deterministic (" + std::to_string(resume_info.context.threads) +
                       " threads); a resumed run keeps the checkpoint's settings");
    for (const std::string& f : cfg_flags)
      if (f != "--method" && f != "--k")
        throw UsageError(f + " cannot be combined with --resume: the configuration comes from the checkpoint (" +
                         to_string(resume_info.config.method) + ", k=" + std::to_string(resume_info.config.k) +
                         ", " + std::to_string(resume_info.config.epochs) + " epochs, seed " +
                         std::to_string(resume_info.context.seed) + ", " + std::to_string(resume_info.context.threads) +
                         " threads)");
    ctx = resume_info.context;
    if (dataset.empty() && train_path.empty()) {
      std::string sn;
      double sc = 1.0;
      const std::string& dn = resume_info.dataset_name;
      if (parse_synthetic_spec(dn, &sn, &sc) || detail::path_exists(data_root() + "/" + dn + "/train.mrat")) dataset = dn;
      else
        throw UsageError("--resume needs the training data again: give --train PATH [--test PATH] (the checkpoint "
                         "was trained on '" + dn + "')");
    }
  }
  if (dataset.empty() && train_path.empty()) dataset = "synthetic-ml10m";

  // Everything checkable before the (possibly long) data load and training, checked now.
  cfg.validate();
  ctx.validate();
  // --device cuda with a job the kernels do not take: say so first (whether or not a device is
  // visible), before the (possibly long) data load
  if (ctx.device == Device::kCuda) {
    const TrainConfig& rc = resume_dir.empty() ? cfg : resume_info.config;
    if (const std::string why = detail::cuda_unsupported_reason(rc); !why.empty()) throw InvalidArgument(why);
  }
  ctx.resolved_device();
  // every output target, before the (possibly long) data load and training
  if (!report_path.empty()) check_writable_target("--report", report_path);
  if (!libmf_path.empty()) check_writable_target("--export-libmf", libmf_path);
  if (!save_dir.empty()) {
    try {
      check_model_target(save_dir);
    } catch (const IoError& e) {
      throw IoError(std::string("--save ") + e.what());
    }
  }
  if (!ckpt_dir.empty() && resume_dir.empty()) check_checkpoint_target(ckpt_dir);

  // Memory plan before the data exist (synthetic shapes are known): refuse or print it now.
  if (!dataset.empty()) {
    std::string sn;
    double sc = 1.0;
    if (parse_synthetic_spec(dataset, &sn, &sc)) {
      const SyntheticShape sh = synthetic_shape(sn);
      const TrainConfig& pc = resume_dir.empty() ? cfg : resume_info.config;
      const int64_t nr = static_cast<int64_t>(static_cast<double>(sh.n_ratings) * sc);
      const int64_t nte = static_cast<int64_t>(static_cast<double>(nr) * sh.test_fraction);
      const MemoryPlan plan = plan_memory(ctx, pc, static_cast<int64_t>(static_cast<double>(sh.n_users) * std::sqrt(sc)),
                                          static_cast<int64_t>(static_cast<double>(sh.n_items) * std::sqrt(sc)), nr - nte,
                                          nte, false);
      if (dry_run) {
        std::fputs(plan.to_text().c_str(), stdout);
        return 0;
      }
      check_memory_plan(plan);
    }
  }

  RatingSet train_set, test_set;
  bool have_test = false;
  std::string name;
  std::string syn_name;
  double scale = 1.0;
  if (!dataset.empty() && parse_synthetic_spec(dataset, &syn_name, &scale)) {
    if (!quiet) std::fprintf(stderr, "generating %s (scale %g, seed %llu)...\n", syn_name.c_str(), scale,
                             static_cast<unsigned long long>(ctx.seed));
    SyntheticData d = generate_synthetic(syn_name, scale, ctx.seed, ctx.threads);
    train_set = std::move(d.train);
    test_set = std::move(d.test);
    have_test = true;
    name = dataset;
  } else if (!dataset.empty()) {
    const std::string dir = data_root() + "/" + dataset;
    if (!detail::path_exists(dir + "/train.mrat"))
      throw InvalidArgument("dataset '" + dataset + "' is not prepared: " + dir +
                            "/train.mrat does not exist (run `mascot data prepare " + dataset +
                            "`, or use a synthetic name: " + "synthetic-ml10m, synthetic-ml25m, "
                            "synthetic-netflix, synthetic-yahoo)");
    train_set = read_mrat(dir + "/train.mrat");
    if (detail::path_exists(dir + "/test.mrat")) { test_set = read_mrat(dir + "/test.mrat"); have_test = true; }
    name = dataset;
  } else {
    train_set = read_ratings(train_path);
    if (!test_path.empty()) { test_set = read_ratings(test_path); have_test = true; }
    name = train_path;
  }
  if (!quiet)
    std::fprintf(stderr, "data: %s  users %lld  items %lld  train %lld  test %lld\n", name.c_str(),
                 static_cast<long long>(train_set.n_users), static_cast<long long>(train_set.n_items),
                 static_cast<long long>(train_set.nnz()), static_cast<long long>(have_test ? test_set.nnz() : 0));

  if (dry_run) {  // file data: the plan needs their shapes
    const MemoryPlan plan = plan_memory(ctx, resume_dir.empty() ? cfg : resume_info.config, train_set.n_users,
                                        train_set.n_items, train_set.nnz(), have_test ? test_set.nnz() : 0, true);
    std::fputs(plan.to_text().c_str(), stdout);
    return 0;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  bool header = false;
  auto progress = [&](const EpochRecord& e) {
    if (!quiet) {
      if (!header) {
        std::printf("%6s %10s %9s %9s %10s %8s %8s\n", "epoch", "lr", "train_s", "eval_s", "test_rmse", "fp32_ug", "fp32_ig");
        header = true;
      }
      char rmse[32] = "-";
      if (e.test_rmse >= 0) std::snprintf(rmse, sizeof rmse, "%.6f", e.test_rmse);
      std::printf("%6d %10.6f %9.3f %9.3f %10s %8d %8d\n", e.epoch + 1, e.lr, e.train_seconds, e.eval_seconds, rmse,
                  e.fp32_user_groups, e.fp32_item_groups);
      std::fflush(stdout);
    }
    return !g_stop.load();
  };
  TrainResult res;
  if (!resume_dir.empty()) {
    if (!quiet)
      std::fprintf(stderr, "resuming %s after epoch %d of %d\n", resume_dir.c_str(), resume_info.epochs_done,
                   resume_info.config.epochs);
    ResumeOptions ro;
    ro.every = ckpt_every;
    const bool expect = std::find(cfg_flags.begin(), cfg_flags.end(), "--method") != cfg_flags.end() ||
                        std::find(cfg_flags.begin(), cfg_flags.end(), "--k") != cfg_flags.end();
    TrainConfig want = resume_info.config;
    if (std::find(cfg_flags.begin(), cfg_flags.end(), "--method") != cfg_flags.end()) want.method = cfg.method;
    if (std::find(cfg_flags.begin(), cfg_flags.end(), "--k") != cfg_flags.end()) want.k = cfg.k;
    if (expect) ro.expect = &want;
    res = resume_training(resume_dir, train_set, have_test ? &test_set : nullptr, progress, ro);
    cfg = res.report.config;
    ckpt_dir = resume_dir;
  } else if (!ckpt_dir.empty()) {
    CheckpointOptions co;
    co.dir = ckpt_dir;
    co.every = ckpt_every > 0 ? ckpt_every : 1;
    co.deterministic = deterministic;
    res = train_checkpointed(ctx, cfg, train_set, have_test ? &test_set : nullptr, progress, name, co);
  } else {
    res = train(ctx, cfg, train_set, have_test ? &test_set : nullptr, progress, name);
  }
  const RunReport& rep = res.report;
  if (rep.interrupted && !ckpt_dir.empty()) {
    std::string how = "mascot_train --resume " + shell_quote(ckpt_dir);
    if (!train_path.empty())
      how += " --train " + shell_quote(train_path) + (test_path.empty() ? "" : " --test " + shell_quote(test_path));
    if (!report_path.empty()) how += " --report " + shell_quote(report_path);
    if (!save_dir.empty()) how += " --save " + shell_quote(save_dir);
    if (!libmf_path.empty()) how += " --export-libmf " + shell_quote(libmf_path);
    std::fprintf(stderr, "mascot_train: interrupted after epoch %zu of %d; checkpoint saved in %s; resume with: %s\n",
                 rep.epochs.size(), cfg.epochs, ckpt_dir.c_str(), how.c_str());
    return 130;
  }
  if (rep.interrupted) {
    std::fprintf(stderr, "mascot_train: interrupted after epoch %zu; nothing saved\n", rep.epochs.size());
    return 130;
  }
  char rmse[32] = "n/a";
  if (rep.final_test_rmse >= 0) std::snprintf(rmse, sizeof rmse, "%.6f", rep.final_test_rmse);
  std::printf("done: method %s  k %d  epochs %zu  device %s\n", to_string(cfg.method).c_str(), cfg.k,
              rep.epochs.size(), rep.device.c_str());
  std::printf("      train %.3f s  (%.2f M updates/s)  eval %.3f s  setup %.3f s  final test RMSE %s\n",
              rep.total_train_seconds, rep.updates_per_second / 1e6, rep.total_eval_seconds, rep.setup_seconds, rmse);
  // All outputs or none: the files are written to temporaries first, the model directory is
  // moved into place, and only then are the files renamed over their targets.
  std::unique_ptr<detail::AtomicFile> report_file, libmf_file;
  if (!libmf_path.empty()) {
    libmf_file = std::make_unique<detail::AtomicFile>(libmf_path);
    libmf_file->write(libmf_text(libmf_path, res.model, train_set));
  }
  if (!report_path.empty()) {
    report_file = std::make_unique<detail::AtomicFile>(report_path);
    report_file->write(rep.to_json());
    report_file->write("\n");
  }
  if (!save_dir.empty())
    save_model(save_dir, res.model,
               model_metadata_json(res.model.n_users, res.model.n_items, res.model.k, rep, mean_rating(train_set)));
  if (report_file) report_file->commit();
  if (libmf_file) libmf_file->commit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
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
