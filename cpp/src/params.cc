// The parameter table of mascot/params.h as rows, and everything derived from the rows: the
// per-value checks, the value <-> text rules of mascot_train's options, --help's parameter
// sections, the run report's "config" object and the checkpoint's config record.
#include "mascot/param_table.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "mascot/detail/binio.h"
#include "mascot/detail/json.h"
#include "mascot/error.h"
#include "mascot/methods.h"

namespace mascot::params {
namespace {

// ---------------------------------------------------------------- types
template <class T>
constexpr Type type_of() {
  if constexpr (std::is_enum_v<T>)
    return Type::kEnum;
  else if constexpr (std::is_same_v<T, bool>)
    return Type::kBool;
  else if constexpr (std::is_same_v<T, int>)
    return Type::kInt;
  else if constexpr (std::is_same_v<T, uint64_t>)
    return Type::kUint64;
  else if constexpr (std::is_same_v<T, float>)
    return Type::kFloat;
  else if constexpr (std::is_same_v<T, double>)
    return Type::kDouble;
  else {
    static_assert(std::is_same_v<T, std::vector<int>>, "a parameter type params.cc does not know");
    return Type::kIntList;
  }
}

// The enums' names (config.h, context.h), for any enum-typed row.
template <class E>
struct EnumOps;
#define MASCOT_ENUM_OPS(E, parse, names)                                                   \
  template <>                                                                              \
  struct EnumOps<E> {                                                                      \
    static std::string get(const void* p) { return to_string(*static_cast<const E*>(p)); } \
    static void set(void* p, const std::string& s) { *static_cast<E*>(p) = parse(s); }     \
    static E parse_name(const std::string& s) { return parse(s); }                         \
    static std::vector<std::string> all() { return names(); }                              \
  };
MASCOT_ENUM_OPS(Method, parse_method, method_names)
MASCOT_ENUM_OPS(Rounding, parse_rounding, rounding_names)
MASCOT_ENUM_OPS(Order, parse_order, order_names)
MASCOT_ENUM_OPS(LrSchedule, parse_lr_schedule, lr_schedule_names)
MASCOT_ENUM_OPS(Device, parse_device, device_names)
MASCOT_ENUM_OPS(AlsSolver, parse_als_solver, als_solver_names)
MASCOT_ENUM_OPS(AlsRegularization, parse_als_regularization, als_regularization_names)
MASCOT_ENUM_OPS(AlsPrecision, parse_als_precision, als_precision_names)
MASCOT_ENUM_OPS(AlsCgForm, parse_als_cg_form, als_cg_form_names)
#undef MASCOT_ENUM_OPS

template <class T>
Param row(const char* name, Scope scope, Check check, MethodSet methods, Section section, const char* flag,
          const char* metavar, const char* help, void* (*field)(Settings&)) {
  Param p{name, type_of<T>(), scope, check, methods, section, flag, metavar, help, field};
  if constexpr (std::is_enum_v<T>) {
    p.enum_get = &EnumOps<T>::get;
    p.enum_set = &EnumOps<T>::set;
    p.enum_names = &EnumOps<T>::all;
  }
  return p;
}

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::string join(const std::vector<std::string>& v, const char* sep, const char* last_sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? last_sep : sep) + v[i];
  return s;
}

std::vector<std::string> split(const std::string& v, char sep) {
  std::vector<std::string> out;
  size_t a = 0;
  for (size_t b; (b = v.find(sep, a)) != std::string::npos; a = b + 1) out.push_back(v.substr(a, b - a));
  out.push_back(v.substr(a));
  return out;
}

// ---------------------------------------------------------------- text -> value (mascot_train's rules)
double parse_num(const std::string& what, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') throw_invalid(what + " expects a number (got '" + v + "')");
  if (errno == ERANGE) throw_invalid(what + " is outside the double range (got '" + v + "')");
  return d;
}
// A float32 value: a finite double that float32 cannot hold (1e40, 1e-50) is an error, not inf or 0.
float parse_f32(const std::string& what, const std::string& v) {
  const double d = parse_num(what, v);
  const auto f = static_cast<float>(d);
  if (std::isfinite(d) && (std::isinf(f) || (d != 0 && f == 0)))
    throw_invalid(what + " is outside the float32 range (got '" + v + "')");
  return f;
}
int parse_i32(const std::string& what, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) throw_invalid(what + " expects an integer (got '" + v + "')");
  if (x < -2147483647LL || x > 2147483647LL) throw_invalid(what + " is out of range (got '" + v + "')");
  return static_cast<int>(x);
}
// Every 64-bit seed Python accepts: decimal digits only (strtoull alone would wrap "-1" around).
uint64_t parse_u64(const std::string& what, const std::string& v) {
  errno = 0;
  const bool digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long long x = digits ? std::strtoull(v.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw_invalid(what + " expects an integer between 0 and 18446744073709551615 (got '" + v + "')");
  return static_cast<uint64_t>(x);
}

// ---------------------------------------------------------------- report and checkpoint fields
template <class T>
void json_field(detail::JsonWriter& w, const char* name, const T& v, const Check& check) {
  w.key(name);
  if constexpr (std::is_enum_v<T>)
    w.value(to_string(v));
  else if constexpr (std::is_same_v<T, std::vector<int>>)
    w.array(v);
  else if constexpr (std::is_same_v<T, double>) {
    if (check.kind == Check::kShareOrOff && v < 0)
      w.null();  // off
    else
      w.value(v);
  } else
    w.value(v);
}

template <class T>
void put_field(detail::BinWriter& w, const char* name, const T& v) {
  w.str(name);
  w.pod(static_cast<uint8_t>(type_of<T>()));
  if constexpr (std::is_enum_v<T>)
    w.str(to_string(v));
  else if constexpr (std::is_same_v<T, std::vector<int>>)
    w.vec(v);
  else if constexpr (std::is_same_v<T, bool>)
    w.pod(static_cast<uint8_t>(v ? 1 : 0));
  else
    w.pod(v);
}

template <class T>
void get_field(detail::BinReader& r, uint8_t tag, const char* name, T* v) {
  const std::string field = std::string("invalid configuration: field '") + name + "'";
  if (tag != static_cast<uint8_t>(type_of<T>())) r.fail(field + " has the wrong type");
  if constexpr (std::is_enum_v<T>) {
    const std::string s = r.str();
    if constexpr (std::is_same_v<T, Order>) {
      const std::string refused = order_refusal(s);  // a name older MASCOTs wrote says why it is refused
      if (!refused.empty()) r.fail(field + ": " + refused);
    }
    try {
      *v = EnumOps<T>::parse_name(s);
    } catch (const InvalidArgument&) {
      r.fail(field + " holds an unknown name");
    }
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    *v = r.vec<int>(64);
  } else if constexpr (std::is_same_v<T, bool>) {
    const uint8_t b = r.pod<uint8_t>();  // read as a byte: a bool load of another value is undefined
    if (b > 1) r.fail(field + " is not a bool");
    *v = b != 0;
  } else {
    r.pod(v);
  }
}

// A name read from a file, safe to print on one line.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 40 ? "..." : "");
}

}  // namespace

// ---------------------------------------------------------------- checks
void check_value(const char* name, int v, const Check& c) {
  if (c.kind != Check::kRange || (v >= c.lo && v <= c.hi)) return;
  const std::string got = " (got " + std::to_string(v) + ")";
  const std::string note = *c.note ? std::string(" (") + c.note + ")" : "";
  const std::string n = name;
  if (c.hi == std::numeric_limits<int32_t>::max()) throw_invalid(n + " must be >= " + std::to_string(c.lo) + got);
  throw_invalid(n + " must be between " + std::to_string(c.lo) + note + " and " + std::to_string(c.hi) + got);
}

void check_value(const char* name, double v, const Check& c) {
  const std::string n = name, got = " (got " + num(v) + ")";
  switch (c.kind) {
    case Check::kPositive:
      MASCOT_CHECK_ARG(std::isfinite(v) && v > 0, n + " must be a finite number > 0" + got);
      break;
    case Check::kNonNegative:
      MASCOT_CHECK_ARG(std::isfinite(v) && v >= 0, n + " must be a finite number >= 0" + got);
      break;
    case Check::kUnit:
      MASCOT_CHECK_ARG(std::isfinite(v) && v > 0 && v <= 1, n + " must be in (0, 1]" + got);
      break;
    case Check::kShareOrOff:
      MASCOT_CHECK_ARG(v == -1.0 || (std::isfinite(v) && v >= 0 && v <= 1),
                       n + " must be in [0, 1], or -1 for off" + got);
      break;
    default:
      break;
  }
}

namespace {
std::vector<std::string> methods_of(MethodSet s) {
  std::vector<std::string> names;
  for (const std::string& n : method_names())
    if (has_method(s, parse_method(n))) names.push_back(n);
  return names;
}
}  // namespace

std::string method_list(MethodSet s) { return join(methods_of(s), ", ", " and "); }

// ---------------------------------------------------------------- the rows
const std::vector<Param>& table() {
  static const std::vector<Param> rows = [] {
    std::vector<Param> v;
#define MASCOT_ROW(scope, path, type, name, def, check, methods, section, flag, metavar, help) \
  v.push_back(row<type>(#name, scope, check, methods, section, flag, metavar, help,            \
                        [](Settings& s) -> void* { return &s.path name; }));
#define MASCOT_CONFIG_ROW(...) MASCOT_ROW(Scope::kConfig, config., __VA_ARGS__)
#define MASCOT_COMPETING_ROW(...) MASCOT_ROW(Scope::kCompeting, config.competing., __VA_ARGS__)
#define MASCOT_CONTEXT_ROW(...) MASCOT_ROW(Scope::kContext, context., __VA_ARGS__)
    MASCOT_TRAIN_PARAMS(MASCOT_CONFIG_ROW)
    MASCOT_COMPETING_PARAMS(MASCOT_COMPETING_ROW)
    MASCOT_CONTEXT_PARAMS(MASCOT_CONTEXT_ROW)
#undef MASCOT_CONFIG_ROW
#undef MASCOT_COMPETING_ROW
#undef MASCOT_CONTEXT_ROW
#undef MASCOT_ROW
    return v;
  }();
  return rows;
}

const Param* find(const std::string& name) {
  for (const Param& p : table())
    if (name == p.name) return &p;
  return nullptr;
}

std::string to_text(const Param& p, const Settings& s) {
  const void* f = p.at(s);
  switch (p.type) {
    case Type::kInt:
      return std::to_string(*static_cast<const int*>(f));
    case Type::kUint64:
      return std::to_string(*static_cast<const uint64_t*>(f));
    case Type::kFloat:
      return num(*static_cast<const float*>(f));
    case Type::kDouble:
      return num(*static_cast<const double*>(f));
    case Type::kBool:
      return *static_cast<const bool*>(f) ? "true" : "false";
    case Type::kEnum:
      return p.enum_get(f);
    case Type::kIntList: {
      std::vector<std::string> parts;
      for (int x : *static_cast<const std::vector<int>*>(f)) parts.push_back(std::to_string(x));
      return join(parts, ",", ",");
    }
  }
  return "?";
}

void set_text(const Param& p, Settings* s, const std::string& text, const std::string& what) {
  void* f = p.field(*s);
  switch (p.type) {
    case Type::kInt:
      *static_cast<int*>(f) = parse_i32(what, text);
      return;
    case Type::kUint64:
      *static_cast<uint64_t*>(f) = parse_u64(what, text);
      return;
    case Type::kFloat:
      *static_cast<float*>(f) = parse_f32(what, text);
      return;
    case Type::kDouble:
      *static_cast<double*>(f) = parse_num(what, text);
      return;
    case Type::kEnum:
      p.enum_set(f, text);
      return;
    case Type::kBool:
      MASCOT_CHECK_ARG(text == "true" || text == "false", what + " expects true or false (got '" + text + "')");
      *static_cast<bool*>(f) = text == "true";
      return;
    case Type::kIntList: {
      std::vector<int> v;
      for (const std::string& x : split(text, ',')) v.push_back(parse_i32(what, x));
      *static_cast<std::vector<int>*>(f) = v;
      return;
    }
  }
}

int parse_int(const std::string& what, const std::string& text) { return parse_i32(what, text); }

// ---------------------------------------------------------------- mascot_train options
const std::vector<Option>& options() {
  static const std::vector<Option> all = [] {
    struct Shorthand {
      const char* flag;
      const char* metavar;
      Option::Kind kind;
      const char* first;
      const char* second;
      const char* help;
    };
#define MASCOT_SHORTHAND(flag, metavar, kind, first, second, help) {flag, metavar, Option::kind, #first, #second, help},
    static const Shorthand shorthands[] = {MASCOT_SHORTHAND_OPTIONS(MASCOT_SHORTHAND)};
#undef MASCOT_SHORTHAND
    std::vector<Option> v;
    for (const Param& p : table()) {
      for (const Shorthand& s : shorthands)
        if (std::string(s.first) == p.name) v.push_back({s.flag, s.metavar, s.kind, &p, find(s.second), s.help});
      if (*p.flag) v.push_back({p.flag, p.metavar, Option::kRow, &p, nullptr, p.help});
    }
    return v;
  }();
  return all;
}

const Option* find_option(const std::string& flag) {
  for (const Option& o : options())
    if (flag == o.flag) return &o;
  return nullptr;
}

void Option::apply(Settings* s, const std::string& value) const {
  switch (kind) {
    case kRow:
      if (!takes_value())
        *static_cast<bool*>(first->field(*s)) = true;  // a flag: --grad-stats
      else
        set_text(*first, s, value, flag);
      return;
    case kBoth:
      set_text(*first, s, value, flag);
      set_text(*second, s, value, flag);
      return;
    case kEach: {
      const std::vector<std::string> parts = split(value, ',');
      MASCOT_CHECK_ARG(parts.size() == 2, std::string(flag) + " expects " + metavar + " (got " +
                                              std::to_string(parts.size()) + " values)");
      set_text(*first, s, parts[0], flag);
      set_text(*second, s, parts[1], flag);
      return;
    }
    case kNumberOrWord: {
      const std::string word = split(metavar, '|').back();
      *static_cast<bool*>(second->field(*s)) = value == word;
      if (value != word) set_text(*first, s, value, flag);
      return;
    }
  }
}

void check_option_method(const Option& o, Method method) {
  const MethodSet own = o.owners();
  if (has_method(own, method)) return;
  const bool one = (own & (own - 1)) == 0;
  throw_invalid(std::string(o.flag) + " applies to method" + (one ? " " : "s ") + method_list(own) + ", not " +
                to_string(method));
}

std::string help(const Settings& defaults) {
  static const char* const kTitles[] = {"model and training", "g-switching", "studies",
                                        "competing methods",  "ALS",         "run"};
  constexpr size_t kColumn = 28, kWidth = 110;
  std::string out;
  for (int section = kTraining; section < kInternal; ++section) {
    std::vector<const Option*> opts;
    for (const Option& o : options())
      if (o.first->section == section) opts.push_back(&o);
    if (opts.empty()) continue;
    // a section whose parameters all belong to the same methods names them once, in its title
    MethodSet common = opts.front()->first->methods;
    for (const Option* o : opts) common = o->first->methods == common ? common : kAll;
    out += kTitles[section];
    if (common != kAll) out += " (" + join(methods_of(common), ", ", ", ") + ")";
    out += ":\n";
    for (const Option* o : opts) {
      const Param& p = *o->first;
      std::string left = std::string("  ") + o->flag + (o->takes_value() ? std::string(" ") + o->metavar : "");
      std::string text = o->help;
      if (p.type == Type::kEnum && o->kind == Option::kRow) text = join(p.enum_names(), " | ", " | ") + ": " + text;
      std::vector<std::string> notes;
      if (p.methods != common && p.methods != kAll) {  // the shorter of "a, b" and "not c"
        const std::vector<std::string> in = methods_of(p.methods), out = methods_of(~p.methods);
        notes.push_back(in.size() <= out.size() ? join(in, ", ", ", ") : "not " + join(out, ", ", ", "));
      }
      if (o->takes_value()) {
        std::string d = to_text(p, defaults);
        if (o->kind == Option::kEach) d += "," + to_text(*o->second, defaults);
        if (p.check.kind == Check::kShareOrOff && d == "-1") d += " = off";
        notes.push_back("default " + d);
      }
      if (!notes.empty()) text += " (" + join(notes, "; ", "; ") + ")";
      left += left.size() + 2 <= kColumn ? std::string(kColumn - left.size(), ' ') : "  ";
      // wrap the text at word boundaries under its column
      std::string line = left;
      for (const std::string& word : split(text, ' ')) {
        if (line.size() + 1 + word.size() > kWidth && line.size() > kColumn) {
          out += line + "\n";
          line = std::string(kColumn, ' ');
        } else if (line.back() != ' ') {
          line += ' ';
        }
        line += word;
      }
      out += line + "\n";
    }
  }
  return out;
}

// ---------------------------------------------------------------- report and checkpoint
void write_config_json(detail::JsonWriter& w, const TrainConfig& c) {
  w.begin_object();
#define MASCOT_JSON(type, name, def, check, methods, section, ...) \
  if (section != kInternal) json_field(w, #name, c.name, check);
  MASCOT_TRAIN_PARAMS(MASCOT_JSON)
  const CompetingParams& p = c.competing;
  if (method_traits(c.method).competing()) {  // the method-traits table: mpt, muppet, afp
    w.key("competing").begin_object();
#define MASCOT_JSON_COMPETING(type, name, def, check, methods, ...) \
  if ((methods) != only(Method::kAls)) json_field(w, #name, p.name, check);
    MASCOT_COMPETING_PARAMS(MASCOT_JSON_COMPETING)
#undef MASCOT_JSON_COMPETING
    w.end_object();
  }
  if (c.method == Method::kAls) {  // ALS's own settings
    w.key("als").begin_object();
#define MASCOT_JSON_ALS(type, name, def, check, methods, ...) \
  if (has_method(methods, Method::kAls)) json_field(w, #name, p.name, check);
    MASCOT_COMPETING_PARAMS(MASCOT_JSON_ALS)
#undef MASCOT_JSON_ALS
    w.end_object();
  }
#undef MASCOT_JSON
  w.end_object();
}

void write_config(detail::BinWriter& w, const TrainConfig& c) {
#define MASCOT_COUNT(...) +1
  constexpr uint32_t kFields = 0 MASCOT_TRAIN_PARAMS(MASCOT_COUNT) MASCOT_COMPETING_PARAMS(MASCOT_COUNT);
#undef MASCOT_COUNT
  w.pod(kFields);
#define MASCOT_PUT(type, name, ...) put_field(w, #name, c.name);
  MASCOT_TRAIN_PARAMS(MASCOT_PUT)
#undef MASCOT_PUT
#define MASCOT_PUT(type, name, ...) put_field(w, #name, c.competing.name);
  MASCOT_COMPETING_PARAMS(MASCOT_PUT)
#undef MASCOT_PUT
}

TrainConfig read_config(detail::BinReader& r) {
  TrainConfig c;
  const uint32_t n = r.pod<uint32_t>();
  if (n > 1000) r.fail("invalid configuration: field count out of range");
  std::vector<std::string> seen;
  for (uint32_t i = 0; i < n; ++i) {
    const std::string key = r.str();
    const uint8_t tag = r.pod<uint8_t>();
    for (const std::string& s : seen)
      if (s == key) r.fail("invalid configuration: field '" + printable(key) + "' appears twice");
    seen.push_back(key);
#define MASCOT_GET(type, name, ...)    \
  if (key == #name) {                  \
    get_field(r, tag, #name, &c.name); \
    continue;                          \
  }
    MASCOT_TRAIN_PARAMS(MASCOT_GET)
#undef MASCOT_GET
#define MASCOT_GET(type, name, ...)              \
  if (key == #name) {                            \
    get_field(r, tag, #name, &c.competing.name); \
    continue;                                    \
  }
    MASCOT_COMPETING_PARAMS(MASCOT_GET)
#undef MASCOT_GET
    r.fail("invalid configuration: unknown field '" + printable(key) + "' (written by a newer MASCOT?)");
  }
  try {
    c.validate();
  } catch (const std::exception& e) {
    r.fail(std::string("invalid configuration: ") + e.what());
  }
  return c;
}

}  // namespace mascot::params
