// A tiny streaming JSON writer (no parser: Python reads what we write).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mascot::detail {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const std::string& k);
  JsonWriter& value(const std::string& s);
  JsonWriter& value(const char* s) { return value(std::string(s)); }
  JsonWriter& value(double d);  ///< non-finite -> null; shortest text that round-trips
  JsonWriter& value(float f);   ///< shortest text that round-trips as float
  JsonWriter& value(int64_t i);
  JsonWriter& value(int i) { return value(static_cast<int64_t>(i)); }
  JsonWriter& value(uint64_t i);
  JsonWriter& value(bool b);
  JsonWriter& null();
  /// Inserts already-serialised JSON as a value.
  JsonWriter& raw(const std::string& json);
  template <class T>
  JsonWriter& kv(const std::string& k, const T& v) {
    key(k);
    return value(v);
  }
  template <class T>
  JsonWriter& array(const std::vector<T>& v) {
    begin_array();
    for (const auto& x : v) value(x);
    return end_array();
  }
  const std::string& str() const { return out_; }

 private:
  void sep();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

/// `s` with every byte sequence that is not valid UTF-8 replaced by U+FFFD, so any byte string
/// (a file name, say) can go into JSON, whose strings are Unicode.
std::string utf8_valid(const std::string& s);
std::string json_escape(const std::string& s);

}  // namespace mascot::detail
