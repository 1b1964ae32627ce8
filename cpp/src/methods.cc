// The method-traits table (methods.h): one row per Method, in the order of method_names().
#include "mascot/methods.h"

#include "mascot/error.h"

namespace mascot {
namespace {

using A = Arithmetic;
using S = Storage;
using W = Switching;

// clang-format off
// columns: method, name, storage, arithmetic, switching; uses_groups, stochastic_rounding,
// random_fp16, grad_stats; cpu, cuda; DRAM bytes per element
const MethodTraits kMethodTraits[] = {
  {Method::kFp32,        "fp32",         S::kFp32,       A::kFp32,         W::kNone,        0, 0, 0, 1, 1, 1, 4},
  {Method::kFp16,        "fp16",         S::kFp16,       A::kFp16,         W::kNone,        0, 0, 0, 0, 1, 1, 2},
  {Method::kMascotN1,    "mascot-n1",    S::kFp16,       A::kFp32,         W::kNone,        0, 1, 1, 1, 1, 1, 2},
  {Method::kMascotN2,    "mascot-n2",    S::kPerGroup,   A::kFp32,         W::kGlobal,      0, 1, 0, 1, 1, 1, 2},
  {Method::kMascot,      "mascot",       S::kPerGroup,   A::kFp32,         W::kPerGroup,    1, 1, 1, 1, 1, 1, 2},
  {Method::kMascotNaive, "mascot-naive", S::kPerGroup,   A::kFp32,         W::kPerGroup,    1, 1, 1, 1, 1, 1, 2},
  {Method::kMpt,         "mpt",          S::kFp32Master, A::kFp16Products, W::kNone,        0, 1, 0, 0, 1, 1, 4},
  {Method::kMuppet,      "muppet",       S::kFp32Master, A::kFixedPoint,   W::kMethodOwned, 0, 1, 0, 0, 1, 1, 4},
  {Method::kAfp,         "afp",          S::kFp32Master, A::kFixedPoint,   W::kMethodOwned, 0, 1, 0, 0, 1, 1, 4},
  // ALS: FP32 factors unless als_factors=fp16 (the driver's storage then), solved per row (cpp/src/als/)
  {Method::kAls,         "als",          S::kFp32,       A::kFp32,         W::kNone,        0, 0, 0, 0, 1, 1, 4},
};
// clang-format on

}  // namespace

const std::vector<MethodTraits>& all_method_traits() {
  static const std::vector<MethodTraits> all(std::begin(kMethodTraits), std::end(kMethodTraits));
  return all;
}

const MethodTraits& method_traits(Method m) {
  for (const MethodTraits& t : kMethodTraits)
    if (t.method == m) return t;
  throw_invalid("unknown method id " + std::to_string(static_cast<int>(m)));
}

std::string to_string(Storage s) {
  switch (s) {
    case Storage::kFp32:
      return "fp32";
    case Storage::kFp16:
      return "fp16";
    case Storage::kPerGroup:
      return "per-group";
    case Storage::kFp32Master:
      return "fp32-master";
  }
  return "?";
}

std::string to_string(Arithmetic a) {
  switch (a) {
    case Arithmetic::kFp32:
      return "fp32";
    case Arithmetic::kFp16:
      return "fp16";
    case Arithmetic::kFp16Products:
      return "fp16-products";
    case Arithmetic::kFixedPoint:
      return "fixed-point";
  }
  return "?";
}

std::string to_string(Switching s) {
  switch (s) {
    case Switching::kNone:
      return "none";
    case Switching::kPerGroup:
      return "per-group";
    case Switching::kGlobal:
      return "global";
    case Switching::kMethodOwned:
      return "method";
  }
  return "?";
}

}  // namespace mascot
