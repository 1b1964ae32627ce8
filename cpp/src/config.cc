// TrainConfig parsing and validation: every message names the field and the bad value.
#include "mascot/config.h"

#include <cmath>
#include <sstream>

#include "mascot/detail/sgd.h"
#include "mascot/error.h"

namespace mascot {
namespace {

struct MethodName {
  Method m;
  const char* name;
};
constexpr MethodName kMethods[] = {
    {Method::kFp32, "fp32"},           {Method::kFp16, "fp16"},
    {Method::kMascotN1, "mascot-n1"},  {Method::kMascotN2, "mascot-n2"},
    {Method::kMascot, "mascot"},       {Method::kMascotNaive, "mascot-naive"},
    {Method::kMpt, "mpt"},             {Method::kMuppet, "muppet"},
    {Method::kAfp, "afp"},
};

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

Method parse_method(const std::string& s) {
  for (const auto& m : kMethods)
    if (s == m.name) return m.m;
  throw_invalid("unknown method '" + s + "' (valid: " + join(method_names()) + ")");
}

std::string to_string(Method m) {
  for (const auto& x : kMethods)
    if (x.m == m) return x.name;
  return "?";
}

std::vector<std::string> method_names() {
  std::vector<std::string> v;
  for (const auto& m : kMethods) v.push_back(m.name);
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
  const bool mixed_family = method == Method::kMascot || method == Method::kMascotNaive || method == Method::kMascotN1;
  need(random_fp16 == -1.0 || (std::isfinite(random_fp16) && random_fp16 >= 0 && random_fp16 <= 1),
       "random_fp16 must be in [0, 1], or -1 for off (got " + str(random_fp16) + ")");
  need(random_fp16 == -1.0 || mixed_family,
       "random_fp16 applies to methods mascot, mascot-naive and mascot-n1 (got " + to_string(method) + ")");
  need(!grad_stats || mixed_family || method == Method::kFp32 || method == Method::kMascotN2,
       "grad_stats applies to methods fp32, mascot-n1, mascot, mascot-n2 and mascot-naive (got " +
           to_string(method) + ")");
  need(!(rounding == Rounding::kStochastic && (method == Method::kFp32 || method == Method::kFp16)),
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
  if (random_fp16 >= 0 || method == Method::kMascotN2) return false;
  return method == Method::kMascot || method == Method::kMascotNaive || grad_stats;
}

float TrainConfig::lr_at(int epoch) const { return detail::lr_schedule(lr, decay, epoch); }

}  // namespace mascot
