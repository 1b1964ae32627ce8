// TrainConfig parsing and validation: every message names the field and the bad value.
#include "mascot/config.h"

#include <cmath>
#include <sstream>

#include "mascot/detail/sgd.h"
#include "mascot/error.h"
#include "mascot/methods.h"

namespace mascot {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

template <class T>
std::string str(T v) {
  std::ostringstream os;
  os << v;
  return os.str();
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

Rounding parse_rounding(const std::string& s) {
  if (s == "nearest") return Rounding::kNearest;
  if (s == "stochastic") return Rounding::kStochastic;
  throw_invalid("unknown rounding '" + s + "' (valid: nearest, stochastic)");
}
std::string to_string(Rounding r) { return r == Rounding::kNearest ? "nearest" : "stochastic"; }

Order parse_order(const std::string& s) {
  if (s == "shuffle") return Order::kShuffle;
  if (s == "blocked") return Order::kBlocked;
  if (s == "chunk") return Order::kChunk;
  throw_invalid("unknown order '" + s + "' (valid: shuffle, blocked, chunk)");
}
std::string to_string(Order o) {
  switch (o) {
    case Order::kShuffle: return "shuffle";
    case Order::kBlocked: return "blocked";
    case Order::kChunk: return "chunk";
  }
  return "?";
}

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) { MASCOT_CHECK_ARG(ok, msg); };
  need(k >= 1 && k <= 4096, "k must be between 1 and 4096 (got " + str(k) + ")");
  need(epochs >= 1, "epochs must be >= 1 (got " + str(epochs) + ")");
  need(std::isfinite(lr) && lr > 0, "lr must be a finite number > 0 (got " + str(lr) + ")");
  need(std::isfinite(decay) && decay >= 0, "decay must be a finite number >= 0 (got " + str(decay) + ")");
  need(std::isfinite(lambda_p) && lambda_p >= 0, "lambda_p must be a finite number >= 0 (got " + str(lambda_p) + ")");
  need(std::isfinite(lambda_q) && lambda_q >= 0, "lambda_q must be a finite number >= 0 (got " + str(lambda_q) + ")");
  need(std::isfinite(init_std) && init_std > 0, "init_std must be a finite number > 0 (got " + str(init_std) + ")");
  need(user_groups >= 1, "user_groups must be >= 1 (got " + str(user_groups) + ")");
  need(item_groups >= 1, "item_groups must be >= 1 (got " + str(item_groups) + ")");
  need(period >= 1, "period must be >= 1 (got " + str(period) + ")");
  need(std::isfinite(sample_ratio) && sample_ratio > 0 && sample_ratio <= 1,
       "sample_ratio must be in (0, 1] (got " + str(sample_ratio) + ")");
  need(std::isfinite(threshold) && threshold > 0, "threshold must be a finite number > 0 (got " + str(threshold) + ")");
  need(warmup >= 0, "warmup must be >= 0 (got " + str(warmup) + ")");
  competing.validate();
  // which options a method takes: the method-traits table (methods.h)
  const MethodTraits& t = method_traits(method);
  need(random_fp16 == -1.0 || (std::isfinite(random_fp16) && random_fp16 >= 0 && random_fp16 <= 1),
       "random_fp16 must be in [0, 1], or -1 for off (got " + str(random_fp16) + ")");
  need(random_fp16 == -1.0 || t.random_fp16,
       "random_fp16 applies to methods mascot, mascot-naive and mascot-n1 (got " + to_string(method) + ")");
  need(!grad_stats || t.grad_stats,
       "grad_stats applies to methods fp32, mascot-n1, mascot, mascot-n2 and mascot-naive (got " +
           to_string(method) + ")");
  need(!(rounding == Rounding::kStochastic && !t.stochastic_rounding),
       "rounding=stochastic applies to FP16 stores of FP32 results (mascot-n1, mascot, mascot-n2, "
       "mascot-naive and the quantising methods); " + to_string(method) + " has none");
}

void TrainConfig::validate_for(int64_t n_users, int64_t n_items) const {
  validate();
  MASCOT_CHECK_ARG(n_users >= 1 && n_items >= 1, "training set has no users or no items");
  if (!uses_groups()) return;  // laid out with min(groups, rows) groups (trainer.cc)
  MASCOT_CHECK_ARG(user_groups <= n_users, "user_groups must be <= the number of users (" + str(n_users) +
                                               ", got " + str(user_groups) + "); lower user_groups (--groups, --user-groups)");
  MASCOT_CHECK_ARG(item_groups <= n_items, "item_groups must be <= the number of items (" + str(n_items) +
                                               ", got " + str(item_groups) + "); lower item_groups (--groups, --item-groups)");
}

bool TrainConfig::uses_groups() const {
  const MethodTraits& t = method_traits(method);
  if (random_fp16 >= 0 || t.switching == Switching::kGlobal) return false;
  return t.uses_groups || grad_stats;
}

float TrainConfig::lr_at(int epoch) const { return detail::lr_schedule(lr, decay, epoch); }

}  // namespace mascot
