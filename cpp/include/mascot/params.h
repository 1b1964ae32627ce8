// The training parameters, each declared once.  Everything that lists parameters is derived
// from these lists (cpp/src/params.cc and the few X-macro expansions named here):
//
//   fields and defaults of TrainConfig, CompetingParams, Context  config.h, competing_params.h, context.h
//   per-value validation, messages naming the field               TrainConfig / CompetingParams / Context::validate
//   the run report's "config" object                              params::write_config_json
//   the checkpoint's configuration record, tagged by name         params::write_config / read_config
//   the Python bindings: a property per field, param_table()      cpp/bindings/module.cc
//   mascot_train's parameter options and their part of --help     params::find_option, params::help
//   mascot.MF's keyword arguments, their types and ranges         python/mascot/model.py (_core.param_table())
//
// Columns of X(type, name, default, check, methods, section, flag, metavar, help):
//   type     the field's C++ type: int, float, double, bool, uint64_t, std::vector<int>, or an enum
//            with names (Method, Rounding, Order, Device: parse_/to_string in config.h, context.h)
//   name     the field; also the Python keyword, the report's JSON key and the checkpoint's tag
//   default  the field's initial value (parenthesised when it holds commas)
//   check    the rule one value must meet (params::Check); rules that relate fields (afp_high_bits >
//            afp_low_bits, a study option's methods, ...) are written out in validate()
//   methods  the methods it applies to: kAll, or only(Method::kMpt, ...).  The settings of a method
//            (MASCOT_COMPETING_PARAMS) are refused with another method, by the CLI and by Python;
//            elsewhere the column documents (and --help shows) where a parameter matters
//   section  where --help lists it: kTraining, kSwitching, kStudy, kCompeting, kRun; kInternal for a
//            field no front end sets (it is still bound, validated and checkpointed)
//   flag     the mascot_train option ("" for none; MASCOT_SHORTHAND_OPTIONS covers options that set
//            two parameters at once)
//   metavar  the option's value in --help ("" for an option without value: a bool that it sets)
//   help     one line for --help and _core.param_table()
//
// Adding a parameter: one X(...) line in the list of the struct that holds it, then its use.  The
// checkpoint needs no format change for it (an older checkpoint lacks the tag and gets the
// default, which must therefore reproduce the behaviour from before the parameter existed).
// Adding a name to an enum (an Order, a Method): one line in its name table (config.cc, or the
// method traits).  Parameters of another struct (say the synthetic generator's skew exponents, if
// they become options): a list like these for it, a member of Settings and a Scope value
// (param_table.h, and the row macro of params.cc), once; then one line each.  This header is plain macros: it is
// included by device code (competing_params.h).
#pragma once

// ---------------------------------------------------------------- TrainConfig (config.h)
// The order here is the order of the run report's "config" object.  random_fp16 (the paper's
// potential study): each user and item row is FP16 with probability F (a seeded hash of its id),
// FP32 otherwise, and no group switches; -1 (off) is written as null.  grad_stats: the mean L2
// norm of each group's gamma-sampled gradients (no learning rate) in every epoch record.
#define MASCOT_TRAIN_PARAMS(X)                                                                                        \
  X(Method, method, Method::kFp32, Check::none(), kAll, kTraining, "--method", "NAME",                                \
    "precision method (README: Methods)")                                                                             \
  X(int, k, 128, Check::range(1, 4096), kAll, kTraining, "--k", "N", "latent dimension")                              \
  X(int, epochs, 50, Check::at_least(1), kAll, kTraining, "--epochs", "N", "passes over the training set")            \
  X(float, lr, 0.03f, Check::positive(), kSgdMethods, kTraining, "--lr", "X", "initial learning rate eta0")           \
  X(float, decay, 0.1f, Check::non_negative(), kSgdMethods, kTraining, "--decay", "X",                                \
    "schedule eta_e = eta0 / (1 + decay * e^1.5), e 0-based")                                                         \
  X(LrSchedule, schedule, LrSchedule::kDecay, Check::none(), kSgdMethods, kTraining, "--schedule", "NAME",            \
    "learning rate: decay (the paper's, above) or adagrad (LIBMF's per-row eta0 / sqrt(G), G: mean sq. grads)")       \
  X(float, lambda_p, 0.05f, Check::non_negative(), kAll, kTraining, "--lambda-p", "X",                                \
    "L2 regularisation of user vectors")                                                                              \
  X(float, lambda_q, 0.03f, Check::non_negative(), kAll, kTraining, "--lambda-q", "X",                                \
    "L2 regularisation of item vectors")                                                                              \
  X(float, init_std, 0.01f, Check::positive(), kAll, kTraining, "--init-std", "X", "P, Q ~ N(0, init_std^2)")         \
  X(Rounding, rounding, Rounding::kNearest, Check::none(), kSgdMethods, kTraining, "--rounding", "NAME",              \
    "how FP16 stores of FP32 results round")                                                                          \
  X(Order, order, Order::kAuto, Check::none(), kSgdMethods, kTraining, "--order", "NAME",                             \
    "visiting order of the training ratings (auto: grid with > 1 thread on >= 2^20 ratings, else shuffle)")           \
  X(int, user_groups, 100, Check::at_least(1), kSgdMethods, kTraining, "--user-groups", "G",                          \
    "user groups by rating count (ties are never split: fewer may be realised)")                                      \
  X(int, item_groups, 100, Check::at_least(1), kSgdMethods, kTraining, "--item-groups", "G",                          \
    "item groups by rating count")                                                                                    \
  X(int, period, 2, Check::at_least(1), kSwitchingMethods, kSwitching, "--period", "N",                               \
    "measure the q-error every N epochs after warm-up")                                                               \
  X(double, sample_ratio, 0.05, Check::unit(), kSwitchingMethods, kSwitching, "--sample-ratio", "X",                  \
    "share of ratings sampled for the q-error (and --grad-stats)")                                                    \
  X(double, threshold, 20.0, Check::positive(), kSwitchingMethods, kSwitching, "--threshold", "X",                    \
    "switch a group when its q-error / its first measurement > X")                                                    \
  X(int, warmup, 5, Check::at_least(0), kSwitchingMethods, kSwitching, "--warmup", "N",                               \
    "first measured epoch, 0-based")                                                                                  \
  X(double, random_fp16, -1.0, Check::share_or_off(), only(Method::kMascot, Method::kMascotNaive, Method::kMascotN1), \
    kStudy, "--random-fp16", "F",                                                                                     \
    "paper Fig. 4: store a random share F of the user and item rows in FP16, the rest FP32, no switching")            \
  X(bool, grad_stats, false, Check::none(),                                                                           \
    only(Method::kFp32, Method::kMascotN1, Method::kMascot, Method::kMascotN2, Method::kMascotNaive), kStudy,         \
    "--grad-stats", "", "paper Fig. 5: report each group's mean sampled-gradient norm every epoch")                   \
  X(bool, eval_every_epoch, true, Check::none(), kAll, kInternal, "", "",                                             \
    "test RMSE after every epoch (outside the timed pass)")                                                           \
  X(double, valid_fraction, 0.0, Check::custom(), kAll, kTraining, "--valid-fraction", "F",                           \
    "hold out a seeded share F in [0, 1) of each user's training ratings as a validation set (0: off)")               \
  X(int, early_stop, 0, Check::at_least(0), kAll, kTraining, "--early-stop", "N",                                     \
    "stop after N epochs without a better validation (else test) RMSE and keep the best epoch's factors (0: off)")

// ---------------------------------------------------------------- CompetingParams (competing_params.h)
// The settings of the competing methods: MPT (loss scaling), MuPPET (fixed-point schedule and its
// gradient-diversity rule), AFP (adaptive fixed point); the sources of the defaults are given in
// competing_params.h.  Then ALS's (method als, docs/als.md; the model: mascot/detail/als.h): its
// k, epochs (= iterations), lambda_p / lambda_q, init_std and the Context rows are the shared
// rows; lr, decay, rounding, order and the groups do not apply to it (ignored: their methods
// column says so; rounding=stochastic is refused by the method traits), the switching rows are
// the switching methods' (ignored as for every method without switching).
#define MASCOT_COMPETING_PARAMS(X)                                                                                    \
  X(float, loss_scale, 1000.0f, Check::positive(), only(Method::kMpt), kCompeting, "", "",                            \
    "loss scale S (the initial S when dynamic): e * S in the FP16 backward pass, gradients / S in FP32")              \
  X(bool, dynamic_loss_scale, false, Check::none(), only(Method::kMpt), kCompeting, "", "",                           \
    "dynamic scaling: an overflowing update is skipped and S halves")                                                 \
  X(int, loss_scale_window, 2000, Check::at_least(1), only(Method::kMpt), kCompeting, "--loss-scale-window", "N",     \
    "dynamic scaling: clean updates before S doubles")                                                                \
  X(std::vector<int>, muppet_word_lengths, (std::vector<int>{8, 12, 14, 16}), Check::custom(), only(Method::kMuppet), \
    kCompeting, "--muppet-word-lengths", "LIST",                                                                      \
    "fixed-point word lengths before FP32, strictly increasing, 2..24 bits")                                          \
  X(int, muppet_resolution, 3, Check::at_least(1), only(Method::kMuppet), kCompeting, "--muppet-resolution", "N",     \
    "epochs per gradient-diversity window")                                                                           \
  X(int, muppet_patience, 2, Check::at_least(1), only(Method::kMuppet), kCompeting, "--muppet-patience", "N",         \
    "threshold violations before the next word length")                                                               \
  X(double, muppet_threshold_alpha, 1.0, Check::positive(), only(Method::kMuppet), kCompeting, "", "",                \
    "threshold T(e) = alpha + beta * exp(-decay * e): alpha")                                                         \
  X(double, muppet_threshold_beta, 1.5, Check::non_negative(), only(Method::kMuppet), kCompeting, "", "",             \
    "threshold T(e): beta")                                                                                           \
  X(double, muppet_threshold_decay, 0.1, Check::non_negative(), only(Method::kMuppet), kCompeting, "", "",            \
    "threshold T(e): decay")                                                                                          \
  X(int, muppet_batch, 128, Check::at_least(1), only(Method::kMuppet), kCompeting, "", "",                            \
    "ratings of an epoch's last mini-batch whose gradient is recorded")                                               \
  X(int, afp_low_bits, 8, Check::range(2, 24), only(Method::kAfp), kCompeting, "", "",                                \
    "bit width every tensor starts with")                                                                             \
  X(int, afp_high_bits, 16, Check::custom(), only(Method::kAfp), kCompeting, "", "",                                  \
    "bit width when the quantization error exceeds the threshold (> afp_low_bits, <= 24)")                            \
  X(double, afp_error_threshold, 0.0005, Check::positive(), only(Method::kAfp), kCompeting, "--afp-error-threshold",  \
    "X", "threshold T on the quantization error log2(|sum|x| - sum|xq|| / sum|x| + 1)")                               \
  X(double, afp_alpha, 0.04, Check::unit(), only(Method::kAfp), kCompeting, "", "",                                   \
    "update interval: weight of the newest point position in its moving average m")                                   \
  X(double, afp_beta, 0.1, Check::positive(), only(Method::kAfp), kCompeting, "", "",                                 \
    "update interval I = beta / max(delta * diff^2, |m_t - m_t-1|) - gamma: beta")                                    \
  X(double, afp_gamma, 2.0, Check::non_negative(), only(Method::kAfp), kCompeting, "", "",                            \
    "update interval: gamma (in iterations)")                                                                         \
  X(double, afp_delta, 100.0, Check::positive(), only(Method::kAfp), kCompeting, "", "",                              \
    "update interval: delta (weight of the squared quantization error)")                                              \
  X(bool, implicit, false, Check::none(), only(Method::kAls), kAls, "--implicit", "",                                 \
    "implicit feedback: a rating r is a strength >= 0, confidence c = 1 + alpha r, preference 1 (0 if unrated)")      \
  X(float, alpha, 1.0f, Check::positive(), only(Method::kAls), kAls, "--alpha", "X",                                  \
    "implicit confidence c = 1 + alpha r")                                                                            \
  X(AlsSolver, als_solver, AlsSolver::kCg, Check::none(), only(Method::kAls), kAls, "--als-solver", "NAME",           \
    "each row's normal equations: cg_steps conjugate-gradient steps from its last value, or exact")                   \
  X(int, cg_steps, 3, Check::range(1, 1024), only(Method::kAls), kAls, "--cg-steps", "N", "CG steps per row solve")   \
  X(AlsRegularization, als_regularization, AlsRegularization::kAuto, Check::none(), only(Method::kAls), kAls,         \
    "--als-regularization", "NAME", "reg_u = lambda n_u (weighted) or lambda (plain); auto: weighted iff explicit")   \
  X(AlsPrecision, als_factors, AlsPrecision::kFp32, Check::none(), only(Method::kAls), kAls, "--als-factors", "NAME", \
    "storage of P and Q (fp16: rounded to nearest, computed in fp32)")                                                \
  X(AlsPrecision, als_hermitian, AlsPrecision::kFp32, Check::none(), only(Method::kAls), kAls, "--als-hermitian",     \
    "NAME", "storage of CG's matrices A_u (fp16: the cuMF_ALS paper's Solution 4)")                                   \
  X(AlsCgForm, cg_form, AlsCgForm::kAuto, Check::none(), only(Method::kAls), kAls, "--cg-form", "NAME",               \
    "CG's products A p: with A_u built, or matrix-free (CPU; auto: whichever costs less)")

// ---------------------------------------------------------------- Context (context.h)
#define MASCOT_CONTEXT_PARAMS(X)                                                          \
  X(Device, device, Device::kAuto, Check::none(), kAll, kRun, "--device", "NAME",         \
    "where to train; auto: CUDA when a GPU is visible and takes the job, else the CPU")   \
  X(int, threads, 0, Check::range(0, 1024, "all cores"), kAll, kRun, "--threads", "N",    \
    "CPU worker threads, 0 = all hardware threads")                                       \
  X(uint64_t, seed, 42, Check::none(), kAll, kRun, "--seed", "N",                         \
    "seeds init, visiting order, sampling and synthetic data: a run is a function of it") \
  X(bool, deterministic, false, Check::none(), kAll, kRun, "--deterministic", "",         \
    "one CPU thread, fixed order: bit-for-bit reproducible (also across resume)")

// ---------------------------------------------------------------- options that set two parameters
// Y(flag, metavar, kind, first, second, help):
//   kBoth          one value sets both (--groups G)
//   kEach          "A,B": one value each (--afp-bits LOW,HIGH)
//   kNumberOrWord  the word after '|' in metavar sets the bool `second` (--loss-scale dynamic); a
//                  number sets `first` and clears `second` (the last --loss-scale wins)
#define MASCOT_SHORTHAND_OPTIONS(Y)                                             \
  Y("--groups", "G", kBoth, user_groups, item_groups,                           \
    "user and item groups; --user-groups / --item-groups set one side")         \
  Y("--loss-scale", "X|dynamic", kNumberOrWord, loss_scale, dynamic_loss_scale, \
    "static loss scale S, or dynamic scaling")                                  \
  Y("--afp-bits", "LOW,HIGH", kEach, afp_low_bits, afp_high_bits, "word lengths")

/// Declares the fields of one list inside its struct: `type name = default;`.
#define MASCOT_PARAM_FIELD(type, name, def, ...) type name = def;
