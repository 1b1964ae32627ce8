// The parameter table (mascot/params.h) as data, and what the front ends do with it: parse a
// mascot_train option, print --help's parameter sections, write the run report's "config", and
// (de)serialise a configuration for checkpoints.  The Python binding _core.param_table() hands
// the same rows to mascot.MF (names, types, defaults, ranges, methods, help).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mascot/config.h"
#include "mascot/context.h"
#include "mascot/params.h"

namespace mascot {
namespace detail {
class BinWriter;
class BinReader;
class JsonWriter;
}  // namespace detail

/// Everything a front end sets: the training configuration and where and how it runs.
struct Settings {
  TrainConfig config;
  Context context;
};

namespace params {

/// The rule a single value must meet (the check column of params.h).  Its message names the
/// field: "k must be between 1 and 4096 (got 0)".
struct Check {
  enum Kind {
    kNone,         ///< any value of the type
    kRange,        ///< integer in [lo, hi] (hi = INT32_MAX: ">= lo")
    kPositive,     ///< finite number > 0
    kNonNegative,  ///< finite number >= 0
    kUnit,         ///< number in (0, 1]
    kShareOrOff,   ///< number in [0, 1], or -1 for off (the report writes null)
    kCustom,       ///< checked with the fields it relates to, in validate()
  };
  Kind kind = kNone;
  int64_t lo = 0, hi = 0;
  const char* note = "";  ///< kRange: what lo means ("all cores")

  static constexpr Check none() { return {}; }
  static constexpr Check range(int64_t lo, int64_t hi, const char* note = "") { return {kRange, lo, hi, note}; }
  static constexpr Check at_least(int64_t lo) { return {kRange, lo, std::numeric_limits<int32_t>::max(), ""}; }
  static constexpr Check positive() { return {kPositive, 0, 0, ""}; }
  static constexpr Check non_negative() { return {kNonNegative, 0, 0, ""}; }
  static constexpr Check unit() { return {kUnit, 0, 0, ""}; }
  static constexpr Check share_or_off() { return {kShareOrOff, 0, 0, ""}; }
  static constexpr Check custom() { return {kCustom, 0, 0, ""}; }
};

/// Throw InvalidArgument naming `name` when `v` breaks `c` (a no-op for types without checks).
void check_value(const char* name, int v, const Check& c);
void check_value(const char* name, double v, const Check& c);
inline void check_value(const char* name, float v, const Check& c) { check_value(name, static_cast<double>(v), c); }
template <class T>
void check_value(const char*, const T&, const Check&) {}

/// A set of methods, one bit per Method value.
using MethodSet = uint32_t;
constexpr MethodSet kAll = ~MethodSet(0);
template <class... M>
constexpr MethodSet only(M... m) {
  return ((MethodSet(1) << static_cast<int>(m)) | ...);
}
constexpr MethodSet kSwitchingMethods = only(Method::kMascot, Method::kMascotN2, Method::kMascotNaive);
/// The SGD methods: every method but als (the learning rate, rounding, order and groups are theirs).
constexpr MethodSet kSgdMethods = kAll & ~only(Method::kAls);
constexpr bool has_method(MethodSet s, Method m) { return (s >> static_cast<int>(m)) & 1u; }
/// "mpt", "mascot, mascot-naive and mascot-n1" (the methods of `s`, in Method order).
std::string method_list(MethodSet s);

enum Section { kTraining, kSwitching, kStudy, kCompeting, kAls, kRun, kInternal };
enum class Scope { kConfig, kCompeting, kContext };  ///< which struct holds the field
enum class Type { kInt, kUint64, kFloat, kDouble, kBool, kIntList, kEnum };

/// One row of the table.
struct Param {
  const char* name;
  Type type;
  Scope scope;
  Check check;
  MethodSet methods;
  Section section;
  const char* flag;     ///< "" when mascot_train has no option of its own for it
  const char* metavar;  ///< "" for an option without value
  const char* help;
  void* (*field)(Settings&);  ///< the field in a Settings
  // enums only: the value as its name, from its name (InvalidArgument listing the names), the names
  std::string (*enum_get)(const void*) = nullptr;
  void (*enum_set)(void*, const std::string&) = nullptr;
  std::vector<std::string> (*enum_names)() = nullptr;

  const void* at(const Settings& s) const { return field(const_cast<Settings&>(s)); }
  /// True for the settings of a method (refused by the front ends with another method).
  bool method_setting() const { return scope == Scope::kCompeting; }
};

/// Every row: MASCOT_TRAIN_PARAMS, then MASCOT_COMPETING_PARAMS, then MASCOT_CONTEXT_PARAMS.
const std::vector<Param>& table();
/// The row named `name`; nullptr if none.
const Param* find(const std::string& name);

/// A value as text: "128", "0.01" (%g), "true", "8,12,14,16", "mascot".
std::string to_text(const Param& p, const Settings& s);
/// Parses `text` into the field (the CLI's rules: ints are decimal and within the type, a float
/// parameter within float32, a uint64 is 0..2^64-1, a list is comma-separated).  Syntax errors
/// throw InvalidArgument naming `what` ("--k expects an integer (got 'x')"); the value's range is
/// validate()'s.
void set_text(const Param& p, Settings* s, const std::string& text, const std::string& what);
/// An int32 option value by the same rules ("--checkpoint-every expects an integer (got 'x')").
int parse_int(const std::string& what, const std::string& text);

// ---------------------------------------------------------------- mascot_train options
/// A mascot_train option of the table: one row's flag, or a shorthand that sets two rows.
struct Option {
  enum Kind { kRow, kBoth, kEach, kNumberOrWord };
  const char* flag;
  const char* metavar;
  Kind kind;
  const Param* first;
  const Param* second;  ///< nullptr for kRow
  const char* help;

  bool takes_value() const { return *metavar != '\0'; }
  /// The methods whose settings it sets (kAll unless it sets a method setting).
  MethodSet owners() const { return first->method_setting() ? first->methods : kAll; }
  /// Sets the parameter(s) from the option's value (ignored for an option without value, which
  /// sets its bool to true).  Syntax errors throw InvalidArgument naming the flag.
  void apply(Settings* s, const std::string& value) const;
};
/// Every option of the table, in table order (a shorthand before its first parameter's row).
const std::vector<Option>& options();
/// The option spelled `flag` ("--k"), or nullptr.
const Option* find_option(const std::string& flag);
/// Refuses an option of another method's settings, like Python's method_params:
/// "--loss-scale applies to method mpt, not fp32".
void check_option_method(const Option& o, Method method);
/// --help's parameter sections, defaults taken from `defaults` (mascot_train's own).
std::string help(const Settings& defaults);

// ---------------------------------------------------------------- report and checkpoint
/// The run report's "config" object: every front-end row of TrainConfig (random_fp16 null when
/// off), and "competing" with every method setting when the method has settings (its traits:
/// MethodTraits::competing()).
void write_config_json(detail::JsonWriter& w, const TrainConfig& c);
/// A configuration as the checkpoint stores it: a count, then per field its name, a type tag and
/// the value (enums by name).  Tagged by name so that adding a parameter keeps older checkpoints
/// readable (a missing field keeps its default).
void write_config(detail::BinWriter& w, const TrainConfig& c);
/// Reads what write_config wrote and validates it; an unknown, repeated or mistyped field fails
/// through r (one line naming the file).
TrainConfig read_config(detail::BinReader& r);

}  // namespace params
}  // namespace mascot
