// TrainConfig: the enums' names and validation (per value by the table of mascot/params.h, then
// the rules that relate fields); every message names the field and the bad value.
#include "mascot/config.h"

#include <cmath>
#include <cstdio>

#include "mascot/detail/sgd.h"
#include "mascot/error.h"
#include "mascot/methods.h"
#include "mascot/param_table.h"

namespace mascot {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

std::string str(int64_t v) { return std::to_string(v); }
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

}  // namespace

// method names: the method-traits table (methods.h)
Method parse_method(const std::string& s) {
  for (const MethodTraits& t : all_method_traits())
    if (s == t.name) return t.method;
  throw_invalid("unknown method '" + s + "' (valid: " + join(method_names()) + ")");
}

std::string to_string(Method m) {
  for (const MethodTraits& t : all_method_traits())
    if (t.method == m) return t.name;
  return "?";
}

std::vector<std::string> method_names() {
  std::vector<std::string> v;
  for (const MethodTraits& t : all_method_traits()) v.push_back(t.name);
  return v;
}

namespace {
template <class E>
struct EnumName {
  E value;
  const char* name;
};
constexpr EnumName<Rounding> kRoundings[] = {{Rounding::kNearest, "nearest"}, {Rounding::kStochastic, "stochastic"}};
constexpr EnumName<LrSchedule> kLrSchedules[] = {{LrSchedule::kDecay, "decay"}, {LrSchedule::kAdagrad, "adagrad"}};
constexpr EnumName<Order> kOrders[] = {
    {Order::kAuto, "auto"}, {Order::kGrid, "grid"}, {Order::kShuffle, "shuffle"}, {Order::kChunk, "chunk"}};

// Names that older MASCOTs took and this one refuses, with the reason: parse_order throws it, so
// an option, a keyword and a checkpoint's configuration record (by name) all say it.  blocked:
// the grid order does what it did (cache-sized blocks) faster with threads and without its
// accuracy loss on skewed data (docs/benchmarks.md, issue 23).
struct RemovedName {
  const char* name;
  const char* reason;
};
constexpr RemovedName kRemovedOrders[] = {
    {"blocked",
     "order 'blocked' was removed: use 'grid' (cache-sized blocks, threads on disjoint rows; the default with "
     "threads) or 'shuffle'; a checkpoint written with order 'blocked' cannot be resumed"}};
constexpr EnumName<AlsSolver> kAlsSolvers[] = {{AlsSolver::kCg, "cg"}, {AlsSolver::kCholesky, "cholesky"}};
constexpr EnumName<AlsRegularization> kAlsRegularizations[] = {{AlsRegularization::kAuto, "auto"},
                                                               {AlsRegularization::kWeighted, "weighted"},
                                                               {AlsRegularization::kPlain, "plain"}};
constexpr EnumName<AlsPrecision> kAlsPrecisions[] = {{AlsPrecision::kFp32, "fp32"}, {AlsPrecision::kFp16, "fp16"}};
constexpr EnumName<AlsCgForm> kAlsCgForms[] = {
    {AlsCgForm::kAuto, "auto"}, {AlsCgForm::kHermitian, "hermitian"}, {AlsCgForm::kMatrixFree, "matrix_free"}};

template <class E, size_t N>
E parse_name(const char* what, const EnumName<E> (&names)[N], const std::string& s) {
  std::vector<std::string> valid;
  for (const auto& x : names) {
    if (s == x.name) return x.value;
    valid.push_back(x.name);
  }
  throw_invalid(std::string("unknown ") + what + " '" + s + "' (valid: " + join(valid) + ")");
}
template <class E, size_t N>
std::string name_of(const EnumName<E> (&names)[N], E v) {
  for (const auto& x : names)
    if (x.value == v) return x.name;
  return "?";
}
template <class E, size_t N>
std::vector<std::string> names_of(const EnumName<E> (&names)[N]) {
  std::vector<std::string> v;
  for (const auto& x : names) v.push_back(x.name);
  return v;
}
}  // namespace

Rounding parse_rounding(const std::string& s) { return parse_name("rounding", kRoundings, s); }
std::string to_string(Rounding r) { return name_of(kRoundings, r); }
std::vector<std::string> rounding_names() { return names_of(kRoundings); }

LrSchedule parse_lr_schedule(const std::string& s) { return parse_name("schedule", kLrSchedules, s); }
std::string to_string(LrSchedule s) { return name_of(kLrSchedules, s); }
std::vector<std::string> lr_schedule_names() { return names_of(kLrSchedules); }

std::string order_refusal(const std::string& s) {
  for (const RemovedName& x : kRemovedOrders)
    if (s == x.name) return x.reason;
  return "";
}
Order parse_order(const std::string& s) {
  const std::string refused = order_refusal(s);
  if (!refused.empty()) throw_invalid(refused);
  return parse_name("order", kOrders, s);
}
std::string to_string(Order o) { return name_of(kOrders, o); }
std::vector<std::string> order_names() { return names_of(kOrders); }

AlsSolver parse_als_solver(const std::string& s) { return parse_name("als_solver", kAlsSolvers, s); }
std::string to_string(AlsSolver v) { return name_of(kAlsSolvers, v); }
std::vector<std::string> als_solver_names() { return names_of(kAlsSolvers); }
AlsRegularization parse_als_regularization(const std::string& s) {
  return parse_name("als_regularization", kAlsRegularizations, s);
}
std::string to_string(AlsRegularization v) { return name_of(kAlsRegularizations, v); }
std::vector<std::string> als_regularization_names() { return names_of(kAlsRegularizations); }
AlsPrecision parse_als_precision(const std::string& s) { return parse_name("ALS precision", kAlsPrecisions, s); }
std::string to_string(AlsPrecision v) { return name_of(kAlsPrecisions, v); }
std::vector<std::string> als_precision_names() { return names_of(kAlsPrecisions); }
AlsCgForm parse_als_cg_form(const std::string& s) { return parse_name("cg_form", kAlsCgForms, s); }
std::string to_string(AlsCgForm v) { return name_of(kAlsCgForms, v); }
std::vector<std::string> als_cg_form_names() { return names_of(kAlsCgForms); }

void TrainConfig::validate() const {
  using namespace params;
  // one value at a time, by the table's rules (messages name the field)
#define MASCOT_CHECK_FIELD(type, name, def, check, ...) check_value(#name, name, check);
  MASCOT_TRAIN_PARAMS(MASCOT_CHECK_FIELD)
#undef MASCOT_CHECK_FIELD
  competing.validate();
  // rules that relate fields; which methods an option applies to: the method-traits table (methods.h)
  auto need = [](bool ok, const std::string& msg) { MASCOT_CHECK_ARG(ok, msg); };
  const MethodTraits& t = method_traits(method);
  auto methods_with = [](bool MethodTraits::* applies) {
    MethodSet s = 0;
    for (const MethodTraits& m : all_method_traits())
      if (m.*applies) s |= only(m.method);
    return method_list(s);
  };
  need(random_fp16 == -1.0 || t.random_fp16, "random_fp16 applies to methods " +
                                                 methods_with(&MethodTraits::random_fp16) + " (got " +
                                                 to_string(method) + ")");
  need(!grad_stats || t.grad_stats,
       "grad_stats applies to methods " + methods_with(&MethodTraits::grad_stats) + " (got " + to_string(method) + ")");
  need(!(rounding == Rounding::kStochastic && !t.stochastic_rounding),
       "rounding=stochastic applies to FP16 stores of FP32 results (mascot-n1, mascot, mascot-n2, "
       "mascot-naive and the quantising methods); " +
           to_string(method) + " has none");
  need(!(schedule == LrSchedule::kAdagrad && method == Method::kAls),
       "schedule=adagrad applies to the SGD methods (als has no learning rate)");
  // a user's hold-out is floor(F n_u) of its n_u ratings: F < 1 keeps at least one in training
  need(std::isfinite(valid_fraction) && valid_fraction >= 0 && valid_fraction < 1,
       "valid_fraction must be in [0, 1) (got " + num(valid_fraction) + ")");
  if (method == Method::kAls) {  // its normal equations need lambda > 0 (A_u must be positive definite)
    const auto g = [](float v) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", static_cast<double>(v));
      return std::string(b);
    };
    need(lambda_p > 0, "lambda_p must be > 0 for method als (got " + g(lambda_p) + ")");
    need(lambda_q > 0, "lambda_q must be > 0 for method als (got " + g(lambda_q) + ")");
  }
}

void CompetingParams::validate() const {
  using namespace params;
#define MASCOT_CHECK_FIELD(type, name, def, check, ...) check_value(#name, name, check);
  MASCOT_COMPETING_PARAMS(MASCOT_CHECK_FIELD)
#undef MASCOT_CHECK_FIELD
  // Check::custom(): the rules that relate values
  const auto i = [](long long v) { return std::to_string(v); };
  MASCOT_CHECK_ARG(!muppet_word_lengths.empty() && muppet_word_lengths.size() <= 8,
                   "muppet_word_lengths must list 1 to 8 word lengths (got " +
                       i(static_cast<long long>(muppet_word_lengths.size())) + ")");
  for (size_t x = 0; x < muppet_word_lengths.size(); ++x) {
    const int w = muppet_word_lengths[x];
    MASCOT_CHECK_ARG(w >= 2 && w <= 24, "muppet_word_lengths must be between 2 and 24 bits (got " + i(w) + ")");
    MASCOT_CHECK_ARG(x == 0 || w > muppet_word_lengths[x - 1], "muppet_word_lengths must be strictly increasing (got " +
                                                                   i(muppet_word_lengths[x - 1]) + " then " + i(w) +
                                                                   ")");
  }
  MASCOT_CHECK_ARG(afp_high_bits > afp_low_bits && afp_high_bits <= 24,
                   "afp_high_bits must be > afp_low_bits and <= 24 (got " + i(afp_high_bits) + ")");
}

void TrainConfig::validate_for(int64_t n_users, int64_t n_items) const {
  validate();
  MASCOT_CHECK_ARG(n_users >= 1 && n_items >= 1, "training set has no users or no items");
  if (!uses_groups()) return;  // laid out with min(groups, rows) groups (trainer.cc)
  MASCOT_CHECK_ARG(user_groups <= n_users, "user_groups must be <= the number of users (" + str(n_users) + ", got " +
                                               str(user_groups) + "); lower user_groups (--groups, --user-groups)");
  MASCOT_CHECK_ARG(item_groups <= n_items, "item_groups must be <= the number of items (" + str(n_items) + ", got " +
                                               str(item_groups) + "); lower item_groups (--groups, --item-groups)");
}

bool TrainConfig::uses_groups() const {
  const MethodTraits& t = method_traits(method);
  if (random_fp16 >= 0 || t.switching == Switching::kGlobal) return false;
  return t.uses_groups || grad_stats;
}

float TrainConfig::lr_at(int epoch) const {
  return schedule == LrSchedule::kAdagrad ? lr : detail::lr_schedule(lr, decay, epoch);
}

}  // namespace mascot
