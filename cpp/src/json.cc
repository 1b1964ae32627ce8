#include "mascot/detail/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mascot::detail {

std::string utf8_valid(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    // sequence length, and the allowed range of the second byte (no overlongs, no surrogates,
    // nothing above U+10FFFF)
    int n = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
      n = 1;
    else if (c >= 0xc2 && c <= 0xdf)
      n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    }
    bool ok = n > 0 && i + static_cast<size_t>(n) <= s.size();
    for (int x = 1; ok && x < n; ++x) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(x)]);
      ok = x == 1 ? (b >= lo && b <= hi) : (b >> 6) == 2;
    }
    if (ok) {
      o.append(s, i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else {
      o += "\xEF\xBF\xBD";  // U+FFFD, for one byte
      ++i;
    }
  }
  return o;
}

std::string json_escape(const std::string& raw) {
  const std::string s = utf8_valid(raw);
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\r':
        o += "\\r";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

void JsonWriter::sep() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
}
JsonWriter& JsonWriter::begin_object() {
  sep();
  out_ += '{';
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  out_ += '}';
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  sep();
  out_ += '[';
  first_.push_back(true);
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  out_ += ']';
  first_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::key(const std::string& k) {
  sep();
  out_ += json_escape(k);
  out_ += ':';
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(const std::string& s) {
  sep();
  out_ += json_escape(s);
  return *this;
}
JsonWriter& JsonWriter::value(double d) {
  sep();
  if (!std::isfinite(d)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  for (int prec = 15; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  out_ += buf;
  return *this;
}
JsonWriter& JsonWriter::value(float f) {
  sep();
  if (!std::isfinite(f)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  out_ += buf;
  return *this;
}
JsonWriter& JsonWriter::value(int64_t i) {
  sep();
  out_ += std::to_string(i);
  return *this;
}
JsonWriter& JsonWriter::value(uint64_t i) {
  sep();
  out_ += std::to_string(i);
  return *this;
}
JsonWriter& JsonWriter::value(bool b) {
  sep();
  out_ += b ? "true" : "false";
  return *this;
}
JsonWriter& JsonWriter::null() {
  sep();
  out_ += "null";
  return *this;
}
JsonWriter& JsonWriter::raw(const std::string& json) {
  sep();
  out_ += json;
  return *this;
}

}  // namespace mascot::detail
