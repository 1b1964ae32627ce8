// Presets (mascot/preset.h): the built-in ones, and the reader of preset files, a small JSON
// parser (the core writes JSON but had no reader) whose values are checked through the parameter
// table: the row's type, then set_text (the CLI's syntax rules), then the row's check.
#include "mascot/preset.h"

#include <cmath>
#include <cstdlib>
#include <memory>

#include "mascot/detail/fileutil.h"
#include "mascot/error.h"

namespace mascot::params {
namespace {

// ---------------------------------------------------------------- JSON
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool b = false;
  std::string text;      ///< a number's literal, a string's value
  bool integer = false;  ///< a number without fraction or exponent
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;
  int line = 1;
};

const char* kind_name(Json::Kind k) {
  static const char* const names[] = {"null", "a bool", "a number", "a string", "an array", "an object"};
  return names[k];
}

class Parser {
 public:
  Parser(const std::string& s, const std::string& what) : s_(s), what_(what) {}

  Json document() {
    Json v = value(0);
    space();
    if (i_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw_invalid("preset " + what_ + ": line " + std::to_string(line_) + ": invalid JSON: " + msg);
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      if (s_[i_] == '\n') ++line_;
      ++i_;
    }
  }
  bool take(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!take(c)) fail(std::string("expected '") + c + "'");
  }
  bool word(const char* w) {
    const std::string x(w);
    if (s_.compare(i_, x.size(), x) != 0) return false;
    i_ += x.size();
    return true;
  }

  Json value(int depth) {
    if (depth > 32) fail("nested too deeply");
    space();
    Json v;
    v.line = line_;
    if (i_ >= s_.size()) fail("unexpected end of file");
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Json::kObject;
      if (take('}')) return v;
      do {
        space();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string key");
        std::string key = string();
        for (const auto& m : v.members)
          if (m.first == key) fail("key '" + key + "' appears twice");
        expect(':');
        v.members.emplace_back(std::move(key), value(depth + 1));
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = Json::kArray;
      if (take(']')) return v;
      do v.items.push_back(value(depth + 1));
      while (take(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Json::kString;
      v.text = string();
    } else if (word("true")) {
      v.kind = Json::kBool;
      v.b = true;
    } else if (word("false")) {
      v.kind = Json::kBool;
    } else if (word("null")) {
      v.kind = Json::kNull;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = Json::kNumber;
      number(&v);
    } else {
      fail(std::string("unexpected character '") + (c >= 0x20 && c < 0x7f ? std::string(1, c) : "?") + "'");
    }
    return v;
  }

  void number(Json* v) {
    const size_t start = i_;
    auto digits = [&] {
      const size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) fail("malformed number");
    };
    if (s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0')
      ++i_;
    else
      digits();
    v->integer = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      digits();
      v->integer = false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      digits();
      v->integer = false;
    }
    v->text = s_.substr(start, i_ - start);
  }

  std::string string() {
    ++i_;  // the opening quote
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated string");
      const char e = s_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u':
          utf8(hex4(), &out);
          break;
        default:
          fail(std::string("bad escape '\\") + (e >= 0x20 && e < 0x7f ? std::string(1, e) : "?") + "'");
      }
    }
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("bad \\u escape");
    unsigned x = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      x <<= 4;
      if (h >= '0' && h <= '9')
        x |= h - '0';
      else if (h >= 'a' && h <= 'f')
        x |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        x |= h - 'A' + 10;
      else
        fail("bad \\u escape");
    }
    return x;
  }
  void utf8(unsigned cp, std::string* out) {
    if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(i_, 2, "\\u") == 0) {  // a surrogate pair
      i_ += 2;
      const unsigned lo = hex4();
      if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;  // a lone surrogate
    }
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  const std::string& s_;
  const std::string& what_;
  size_t i_ = 0;
  int line_ = 1;
};

// A key or name read from a file, safe to print on one line.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out + (s.size() > 40 ? "..." : "");
}

// The value of row p as text for set_text, or InvalidArgument saying which type it needs.
std::string value_text(const Param& p, const Json& v, const std::string& field) {
  auto wrong = [&](const char* want) -> std::string {
    throw_invalid(field + " must be " + want + " (got " + kind_name(v.kind) +
                  (v.kind == Json::kNumber || v.kind == Json::kString ? " " + printable(v.text) : "") + ")");
  };
  switch (p.type) {
    case Type::kInt:
    case Type::kUint64:
      if (v.kind != Json::kNumber || !v.integer) return wrong("an integer");
      return v.text;
    case Type::kFloat:
    case Type::kDouble:
      if (v.kind == Json::kNull && p.check.kind == Check::kShareOrOff) return "-1";  // off
      if (v.kind != Json::kNumber) return wrong(p.check.kind == Check::kShareOrOff ? "a number or null" : "a number");
      return v.text;
    case Type::kBool:
      if (v.kind != Json::kBool) return wrong("true or false");
      return v.b ? "true" : "false";
    case Type::kEnum:
      if (v.kind != Json::kString) return wrong("a string (a name)");
      return v.text;
    case Type::kIntList: {
      if (v.kind != Json::kArray) return wrong("an array of integers");
      std::string out;
      for (const Json& x : v.items) {
        if (x.kind != Json::kNumber || !x.integer) return wrong("an array of integers");
        out += (out.empty() ? "" : ",") + x.text;
      }
      if (out.empty()) return wrong("a non-empty array of integers");
      return out;
    }
  }
  return wrong("?");
}

// The row's own rule on the value set in `s` (validate()'s per-value part).
void check_row(const Param& p, const Settings& s) {
  const void* f = p.at(s);
  switch (p.type) {
    case Type::kInt:
      check_value(p.name, *static_cast<const int*>(f), p.check);
      break;
    case Type::kFloat:
      check_value(p.name, *static_cast<const float*>(f), p.check);
      break;
    case Type::kDouble:
      check_value(p.name, *static_cast<const double*>(f), p.check);
      break;
    default:
      break;  // uint64, bool, enums: any value set_text accepts; lists: validate() with their method
  }
}

}  // namespace

std::vector<std::string> preset_names() { return {"paper"}; }

Preset builtin_preset(const std::string& name) {
  if (name != "paper") throw_invalid("unknown preset '" + printable(name) + "' (built in: paper; or a preset file)");
  // The paper's settings (ICDM 2021, section IV-A), each written out: eta 0.01 decayed by 0.1
  // over 50 epochs, lambda_P 0.01, lambda_Q 0.015, k 128, g = 100 groups, pi = 2, gamma = 5 %;
  // theta, the warm-up and the initialisation are the values the paper's experiments were
  // reproduced with.  Not "the defaults": those may change, this may not.
  static const char* const kPaper[][2] = {
      {"k", "128"},           {"epochs", "50"},      {"lr", "0.01"},           {"decay", "0.1"},
      {"lambda_p", "0.01"},   {"lambda_q", "0.015"}, {"init_std", "0.01"},     {"user_groups", "100"},
      {"item_groups", "100"}, {"period", "2"},       {"sample_ratio", "0.05"}, {"threshold", "20"},
      {"warmup", "5"},        {"schedule", "decay"},
  };
  Preset p;
  p.name = name;
  p.source = "the paper's settings (MASCOT, ICDM 2021)";
  for (const auto& kv : kPaper) {
    const Param* row = find(kv[0]);
    if (!row) continue;  // schedule: a row this build may not have yet (its only value then is the decay)
    p.values.push_back({row, kv[1]});
  }
  return p;
}

Preset parse_preset(const std::string& text, const std::string& what) {
  const Json doc = Parser(text, what).document();
  const std::string at = "preset " + what + ": ";
  if (doc.kind != Json::kObject) throw_invalid(at + "expected a JSON object (got " + kind_name(doc.kind) + ")");
  Preset p;
  p.name = what;
  const Json* params = nullptr;
  bool tagged = false;
  for (const auto& [key, v] : doc.members) {
    if (key == "mascot_preset") {
      if (v.kind != Json::kNumber || v.text != "1")
        throw_invalid(at + "mascot_preset must be 1 (got " +
                      (v.kind == Json::kNumber ? printable(v.text) : std::string(kind_name(v.kind))) + ")");
      tagged = true;
    } else if (key == "params") {
      if (v.kind != Json::kObject) throw_invalid(at + "params must be an object (got " + kind_name(v.kind) + ")");
      params = &v;
    } else if (key == "valid_rmse") {
      if (v.kind == Json::kNumber) {
        p.has_valid_rmse = true;
        p.valid_rmse = std::strtod(v.text.c_str(), nullptr);
      } else if (v.kind != Json::kNull) {
        throw_invalid(at + "valid_rmse must be a number or null (got " + kind_name(v.kind) + ")");
      }
    } else if (key == "source") {
      if (v.kind != Json::kString) throw_invalid(at + "source must be a string (got " + kind_name(v.kind) + ")");
      p.source = v.text;
    } else if (key == "tune") {
      if (v.kind != Json::kObject) throw_invalid(at + "tune must be an object (got " + kind_name(v.kind) + ")");
    } else {
      throw_invalid(at + "unknown field '" + printable(key) +
                    "' (a preset has mascot_preset, params, valid_rmse, source, tune)");
    }
  }
  if (!tagged) throw_invalid(at + "not a MASCOT preset (no \"mascot_preset\": 1)");
  if (!params) throw_invalid(at + "no \"params\" object");
  Settings scratch;
  for (const auto& [name, v] : params->members) {
    const std::string field = at + "params." + printable(name);
    const Param* row = find(name);
    if (!row || row->section == kInternal)
      throw_invalid(field + ": unknown parameter (names: mascot._core.param_table(), mascot_train --help)");
    const std::string t = value_text(*row, v, field);
    try {
      set_text(*row, &scratch, t, field);
      check_row(*row, scratch);
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      // set_text's messages start with `field`, check_value's with the bare name, an enum's not
      if (msg.rfind(at, 0) == 0) throw;
      throw_invalid(at + "params." + (msg.rfind(name + " ", 0) == 0 ? msg : printable(name) + ": " + msg));
    }
    p.values.push_back({row, t});
  }
  return p;
}

Preset load_preset(const std::string& name_or_path) {
  for (const std::string& n : preset_names())
    if (name_or_path == n) return builtin_preset(n);
  if (name_or_path.empty()) throw_invalid("preset: empty name (built in: paper; or a preset file)");
  if (!detail::path_exists(name_or_path))
    throw_io("preset " + name_or_path + ": no such file (built-in presets: paper)");
  if (detail::is_directory(name_or_path)) throw_io("preset " + name_or_path + ": is a directory, not a preset file");
  return parse_preset(detail::read_file(name_or_path), name_or_path);
}

void apply_preset(const Preset& p, Settings* s) {
  for (const PresetValue& v : p.values) set_text(*v.param, s, v.text, "preset " + p.name + ": " + v.param->name);
}

}  // namespace mascot::params
