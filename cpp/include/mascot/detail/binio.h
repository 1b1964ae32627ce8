// Little binary (de)serialisation helpers for checkpoint state (cpp/src/checkpoint.cc and the
// backends' export_state / import_state).  Host byte order (checkpoints are not portable
// between architectures of different endianness; the manifest records the byte order).
// BinReader never reads past its buffer: a short or malformed blob throws InvalidArgument
// ("... truncated ..."), which the checkpoint loader turns into a one-line error naming the file.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "mascot/error.h"

namespace mascot::detail {

class BinWriter {
 public:
  template <class T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    // through a zeroed buffer so that padding bytes are deterministic
    unsigned char b[sizeof(T)];
    std::memset(b, 0, sizeof b);
    std::memcpy(b, &v, sizeof(T));
    out_.append(reinterpret_cast<const char*>(b), sizeof b);
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    pod(static_cast<uint64_t>(v.size()));
    if (!v.empty()) out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  }
  void str(const std::string& s) {
    pod(static_cast<uint64_t>(s.size()));
    out_.append(s);
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

class BinReader {
 public:
  BinReader(const std::string& data, std::string what) : d_(data), what_(std::move(what)) {}
  template <class T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, d_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  void pod(T* v) {
    *v = pod<T>();
  }
  template <class T>
  std::vector<T> vec(uint64_t max_elems = uint64_t(1) << 40) {
    const uint64_t n = pod<uint64_t>();
    if (n > max_elems || n > (d_.size() - pos_) / (sizeof(T) ? sizeof(T) : 1)) fail("length field out of range");
    std::vector<T> v(static_cast<size_t>(n));
    if (n) std::memcpy(v.data(), d_.data() + pos_, static_cast<size_t>(n) * sizeof(T));
    pos_ += static_cast<size_t>(n) * sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = pod<uint64_t>();
    if (n > d_.size() - pos_) fail("length field out of range");
    std::string s = d_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  bool done() const { return pos_ == d_.size(); }
  void expect_done() const {
    if (!done()) fail(std::to_string(d_.size() - pos_) + " unexpected trailing bytes");
  }
  [[noreturn]] void fail(const std::string& why) const { throw_invalid(what_ + ": " + why); }

 private:
  void need(size_t n) const {
    if (n > d_.size() - pos_)
      fail("truncated (needs " + std::to_string(pos_ + n) + " bytes, has " + std::to_string(d_.size()) + ")");
  }
  const std::string& d_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace mascot::detail
