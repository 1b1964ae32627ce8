// Checkpoint files and the resume path (format and write protocol: checkpoint.h).
#include "mascot/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "mascot/detail/backend.h"
#include "mascot/detail/binio.h"
#include "mascot/detail/fileutil.h"
#include "mascot/detail/json.h"
#include "mascot/detail/rng.h"
#include "mascot/error.h"
#include "mascot/param_table.h"

namespace mascot {
namespace {

constexpr const char* kManifest = "checkpoint.json";
constexpr const char* kFormat = "mascot-checkpoint";
// 2: the driver's state ("driver_state": epochs, update count, group precisions, q-error
// baselines) apart from the backend's, and the device recorded (CUDA runs checkpoint too).
// 3: the configuration tagged by name (params::write_config).
// 4: the report's validation RMSE (valid_rmse per epoch, final_valid_rmse) and the early-stopping
// state (best epoch, the guard's warnings); version 3 is still read (those fields empty).
constexpr int kVersion = 4;
constexpr int kOldestReadable = 3;

// ------------------------------------------------------------------ checksums
// 64-bit checksum of a byte string: mix64 over 8-byte words (fast enough to verify every
// byte of P and Q on load: ~1 GB/s).
uint64_t checksum(const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t h = detail::mix64(0x6d6173636f74ull ^ n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = detail::mix64(h ^ w);
  }
  uint64_t w = 0;
  if (n > i) std::memcpy(&w, p + i, n - i);
  return detail::mix64(h ^ w ^ (static_cast<uint64_t>(n - i) << 56));
}

/// Strict UTF-8 without NUL (text fields of a checkpoint): what detail::utf8_valid leaves
/// unchanged, the same rule the writer applies (JSON strings).  Other control characters are
/// allowed: a dataset name is a file name, and a tab is a valid byte of one.
bool clean_text(const std::string& s) { return s.find('\0') == std::string::npos && detail::utf8_valid(s) == s; }

/// Syntax check of one JSON value (the per-epoch method states of a report are stored as JSON
/// text and re-inserted verbatim into reports, so they must be valid).  Depth-limited.
class JsonCheck {
 public:
  explicit JsonCheck(const std::string& t) : t_(t) {}
  bool ok() {
    ws();
    if (!value(0)) return false;
    ws();
    return p_ == t_.size();
  }

 private:
  void ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\n' || t_[p_] == '\t' || t_[p_] == '\r')) ++p_;
  }
  bool lit(const char* w) {
    const size_t n = std::strlen(w);
    if (t_.compare(p_, n, w) != 0) return false;
    p_ += n;
    return true;
  }
  bool str() {
    if (p_ >= t_.size() || t_[p_] != '"') return false;
    for (++p_; p_ < t_.size(); ++p_) {
      const char c = t_[p_];
      if (c == '"') {
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '\\') {
        if (++p_ >= t_.size()) return false;
        const char e = t_[p_];
        if (e == 'u') {
          for (int x = 0; x < 4; ++x)
            if (++p_ >= t_.size() || !std::isxdigit(static_cast<unsigned char>(t_[p_]))) return false;
        } else if (!std::strchr("\"\\/bfnrt", e)) {
          return false;
        }
      }
    }
    return false;
  }
  bool num() {
    const size_t a = p_;
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    size_t d = 0;
    while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_, ++d;
    if (d == 0) return false;
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      d = 0;
      while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_, ++d;
      if (d == 0) return false;
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      d = 0;
      while (p_ < t_.size() && std::isdigit(static_cast<unsigned char>(t_[p_]))) ++p_, ++d;
      if (d == 0) return false;
    }
    return p_ > a;
  }
  bool value(int depth) {
    if (depth > 32 || p_ >= t_.size()) return false;
    const char c = t_[p_];
    if (c == '"') return str();
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++p_;
      ws();
      if (p_ < t_.size() && t_[p_] == close) {
        ++p_;
        return true;
      }
      while (true) {
        ws();
        if (c == '{') {
          if (!str()) return false;
          ws();
          if (p_ >= t_.size() || t_[p_] != ':') return false;
          ++p_;
          ws();
        }
        if (!value(depth + 1)) return false;
        ws();
        if (p_ < t_.size() && t_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < t_.size() && t_[p_] == close) {
          ++p_;
          return true;
        }
        return false;
      }
    }
    if (lit("true") || lit("false") || lit("null")) return true;
    return num();
  }
  const std::string& t_;
  size_t p_ = 0;
};

std::string hex64(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

bool parse_hex64(const std::string& s, uint64_t* v) {
  if (s.size() != 16) return false;
  uint64_t x = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return false;
    x = x << 4 | static_cast<uint64_t>(d);
  }
  *v = x;
  return true;
}

// ------------------------------------------------------------------ .npy headers
std::string npy_header(int elem, int64_t rows, int64_t cols) {
  std::string dict = std::string("{'descr': '") + (elem == 4 ? "<f4" : "<f2") +
                     "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " + std::to_string(cols) +
                     "), }";
  const size_t pre = 10;
  size_t total = pre + dict.size() + 1;
  const size_t pad = (64 - total % 64) % 64;
  dict.append(pad, ' ');
  dict.push_back('\n');
  std::string h("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(dict.size());
  h.push_back(static_cast<char>(len & 0xff));
  h.push_back(static_cast<char>(len >> 8));
  return h + dict;
}

// ------------------------------------------------------------------ flat JSON manifest
// The manifest is one flat JSON object of strings, integers and booleans (written with
// JsonWriter); this strict reader accepts exactly that and reports what is wrong.
struct Manifest {
  std::map<std::string, std::string> str;
  std::map<std::string, std::string> num;  // integers (and booleans as 0/1), as validated digits
};

Manifest parse_manifest(const std::string& text, const std::string& path) {
  Manifest m;
  size_t p = 0;
  auto bad = [&](const std::string& why) -> void {
    throw_invalid("checkpoint " + path + ": corrupted manifest (" + why + " at byte " + std::to_string(p) + ")");
  };
  auto ws = [&] {
    while (p < text.size() && (text[p] == ' ' || text[p] == '\n' || text[p] == '\t' || text[p] == '\r')) ++p;
  };
  auto string = [&]() {
    if (p >= text.size() || text[p] != '"') bad("expected a string");
    ++p;
    std::string s;
    while (true) {
      if (p >= text.size()) bad("unterminated string");
      const char c = text[p++];
      if (c == '"') break;
      if (c == '\\') {
        if (p >= text.size()) bad("unterminated string");
        const char e = text[p++];
        if (e == '"' || e == '\\' || e == '/')
          s.push_back(e);
        else if (e == 'n')
          s.push_back('\n');
        else if (e == 't')
          s.push_back('\t');
        else if (e == 'u' && p + 4 <= text.size()) {
          int v = 0;
          for (int x = 0; x < 4; ++x) {
            const char h = text[p + x];
            const int d = h >= '0' && h <= '9'   ? h - '0'
                          : h >= 'a' && h <= 'f' ? h - 'a' + 10
                          : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                 : -1;
            if (d < 0) bad("bad \\u escape");
            v = v * 16 + d;
          }
          p += 4;
          s.push_back(v < 0x80 ? static_cast<char>(v) : '?');  // the manifest itself is ASCII
        } else
          bad("bad escape");
      } else {
        s.push_back(c);
      }
    }
    return s;
  };
  ws();
  if (p >= text.size() || text[p] != '{') bad("expected '{'");
  ++p;
  ws();
  if (p < text.size() && text[p] == '}') {
    ++p;
  } else {
    while (true) {
      ws();
      const std::string key = string();
      // keys are ASCII names we wrote; they end up in error messages, which stay printable ASCII
      for (char c : key)
        if (c < 0x20 || c > 0x7e) bad("invalid character in a key");
      ws();
      if (p >= text.size() || text[p] != ':') bad("expected ':'");
      ++p;
      ws();
      if (p < text.size() && text[p] == '"') {
        m.str[key] = string();
        if (!clean_text(m.str[key])) bad("invalid text in a value");
      } else if (text.compare(p, 4, "true") == 0) {
        m.num[key] = "1";
        p += 4;
      } else if (text.compare(p, 5, "false") == 0) {
        m.num[key] = "0";
        p += 5;
      } else {
        const size_t a = p;
        if (p < text.size() && text[p] == '-') ++p;
        while (p < text.size() && text[p] >= '0' && text[p] <= '9') ++p;
        if (p == a || (p == a + 1 && text[a] == '-') || p - a > 20) bad("expected an integer");
        m.num[key] = text.substr(a, p - a);
      }
      ws();
      if (p < text.size() && text[p] == ',') {
        ++p;
        continue;
      }
      if (p < text.size() && text[p] == '}') {
        ++p;
        break;
      }
      bad("expected ',' or '}'");
    }
  }
  ws();
  if (p != text.size()) bad("trailing characters");
  return m;
}

// ------------------------------------------------------------------ report (binary); the config: param_table.h
void put_report(detail::BinWriter& w, const RunReport& rep) {
  w.str(rep.device);
  w.pod(static_cast<uint64_t>(rep.epochs.size()));
  for (const EpochRecord& e : rep.epochs) {
    w.pod(e.epoch);
    w.pod(e.lr);
    w.pod(e.train_seconds);
    w.pod(e.eval_seconds);
    w.pod(e.test_rmse);
    w.pod(e.valid_rmse);
    w.pod(e.fp32_user_groups);
    w.pod(e.fp32_item_groups);
    w.pod(e.measured);
    w.vec(e.user_qerror);
    w.vec(e.item_qerror);
    w.str(e.method_json);
    w.vec(e.user_grad_norm);
    w.vec(e.item_grad_norm);
    w.pod(static_cast<uint64_t>(e.rises.size()));
    for (const RmseRise& x : e.rises) {
      w.str(x.set);
      w.pod(static_cast<int32_t>(x.epoch));
      w.pod(static_cast<int32_t>(x.best_epoch));
      w.pod(x.best);
      w.pod(x.now);
    }
  }
  w.pod(static_cast<uint64_t>(rep.switches.size()));
  for (const SwitchEvent& s : rep.switches) {
    w.pod(s.side);
    w.pod(s.group);
    w.pod(s.epoch);
  }
  w.pod(rep.total_train_seconds);
  w.pod(rep.total_eval_seconds);
  w.pod(rep.final_test_rmse);
  w.pod(rep.final_valid_rmse);
}
void get_report(detail::BinReader& r, RunReport* rep, int64_t version) {
  rep->device = r.str();
  const uint64_t ne = r.pod<uint64_t>();
  if (ne > 100000000) r.fail("epoch count out of range");
  for (uint64_t x = 0; x < ne; ++x) {
    EpochRecord e;
    r.pod(&e.epoch);
    r.pod(&e.lr);
    r.pod(&e.train_seconds);
    r.pod(&e.eval_seconds);
    r.pod(&e.test_rmse);
    if (version >= 4) r.pod(&e.valid_rmse);
    r.pod(&e.fp32_user_groups);
    r.pod(&e.fp32_item_groups);
    e.measured = r.pod<uint8_t>() != 0;
    e.user_qerror = r.vec<double>();
    e.item_qerror = r.vec<double>();
    e.method_json = r.str();
    e.user_grad_norm = r.vec<double>();
    e.item_grad_norm = r.vec<double>();
    if (version >= 4) {
      const uint64_t nr = r.pod<uint64_t>();
      if (nr > 2) r.fail("corrupted (rise count out of range)");
      for (uint64_t y = 0; y < nr; ++y) {
        RmseRise x;
        x.set = r.str();
        if (x.set != "test" && x.set != "valid") r.fail("corrupted (rise set)");
        x.epoch = r.pod<int32_t>();
        x.best_epoch = r.pod<int32_t>();
        x.best = r.pod<double>();
        x.now = r.pod<double>();
        e.rises.push_back(std::move(x));
      }
    }
    rep->epochs.push_back(std::move(e));
  }
  const uint64_t ns = r.pod<uint64_t>();
  if (ns > 100000000) r.fail("switch count out of range");
  for (uint64_t x = 0; x < ns; ++x) {
    SwitchEvent s{};
    r.pod(&s.side);
    r.pod(&s.group);
    r.pod(&s.epoch);
    rep->switches.push_back(s);
  }
  r.pod(&rep->total_train_seconds);
  r.pod(&rep->total_eval_seconds);
  r.pod(&rep->final_test_rmse);
  if (version >= 4) r.pod(&rep->final_valid_rmse);
}

// ------------------------------------------------------------------ files
std::string join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

struct FileEntry {
  std::string file;
  int64_t bytes = 0;
  uint64_t hash = 0;
};

/// Our state file names exactly: NAME.eNNNNNN.TOKEN.{bin,npy} (NAME [A-Za-z0-9_]+, six or more
/// digits, TOKEN 16 hex digits), or one of their AtomicFile temps (".NAME....npy.tmp.PID.N", or
/// "NAME....npy.tmp.PID.N" of earlier versions).  Only these, the manifest's temps and
/// python_ids.npz (MF.fit's side file) are ever deleted from a checkpoint directory.
bool digits(const std::string& f, size_t* p, size_t min_n, bool hex) {
  size_t n = 0;
  while (*p < f.size() && (std::isdigit(static_cast<unsigned char>(f[*p])) || (hex && f[*p] >= 'a' && f[*p] <= 'f'))) {
    ++*p;
    ++n;
  }
  return n >= min_n && (!hex || n == min_n);
}
bool is_temp_tail(const std::string& f, size_t p) {  // ".tmp.PID.N"
  if (f.compare(p, 5, ".tmp.") != 0) return false;
  p += 5;
  if (!digits(f, &p, 1, false) || p >= f.size() || f[p] != '.') return false;
  ++p;
  return digits(f, &p, 1, false) && p == f.size();
}
bool is_state_name(const std::string& f, size_t p, bool temp) {  // from f[p]: the name, then its temp tail
  const size_t a = p;
  while (p < f.size() && (std::isalnum(static_cast<unsigned char>(f[p])) || f[p] == '_')) ++p;
  if (p == a || f.compare(p, 2, ".e") != 0) return false;
  p += 2;
  if (!digits(f, &p, 6, false) || p >= f.size() || f[p] != '.') return false;
  ++p;
  if (!digits(f, &p, 16, true)) return false;
  if (f.compare(p, 4, ".npy") != 0 && f.compare(p, 4, ".bin") != 0) return false;
  return temp ? is_temp_tail(f, p + 4) : p + 4 == f.size();
}
bool is_state_file(const std::string& f) {
  return is_state_name(f, 0, false) || is_state_name(f, 0, true) ||
         (!f.empty() && f[0] == '.' && is_state_name(f, 1, true));
}
bool is_manifest_temp(const std::string& f) {
  const std::string m = kManifest;
  if (!f.empty() && f[0] == '.' && f.compare(1, m.size(), m) == 0) return is_temp_tail(f, m.size() + 1);
  return f.compare(0, m.size(), m) == 0 && is_temp_tail(f, m.size());
}
constexpr const char* kPythonIds = "python_ids.npz";  // written by mascot/_persist.py
bool is_ours(const std::string& f) {
  return is_state_file(f) || is_manifest_temp(f) || f == kPythonIds ||
         (f.compare(0, 16, ".python_ids.npz.") == 0 && is_temp_tail(f, 15));
}

/// Writes the backend's sections as files with fresh names; remembers them for the manifest.
class FileStateWriter final : public detail::StateWriter {
 public:
  FileStateWriter(std::string dir, std::string suffix) : dir_(std::move(dir)), suffix_(std::move(suffix)) {}
  void matrix(const std::string& name, const void* data, int64_t rows, int64_t cols, int elem) override {
    const std::string h = npy_header(elem, rows, cols);
    const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols) * static_cast<size_t>(elem);
    write(name, name + suffix_ + ".npy", h, data, n);
  }
  void blob(const std::string& name, const std::string& bytes) override {
    write(name, name + suffix_ + ".bin", std::string(), bytes.data(), bytes.size());
  }
  std::map<std::string, FileEntry> entries;

 private:
  void write(const std::string& name, const std::string& file, const std::string& head, const void* data, size_t n) {
    detail::AtomicFile f(join(dir_, file));
    f.write(head);
    f.write(data, n);
    f.commit();
    const uint64_t hh = checksum(head.data(), head.size());
    entries[name] = FileEntry{file, static_cast<int64_t>(head.size() + n), detail::mix64(hh ^ checksum(data, n))};
  }
  std::string dir_, suffix_;
};

/// Reads the files named by a validated manifest, checking size and checksum of each.
class FileStateReader final : public detail::StateReader {
 public:
  FileStateReader(std::string dir, std::map<std::string, FileEntry> e) : dir_(std::move(dir)), entries_(std::move(e)) {}
  bool has(const std::string& name) const override { return entries_.count(name) != 0; }
  void matrix(const std::string& name, void* data, int64_t rows, int64_t cols, int elem) override {
    const FileEntry& fe = entry(name);
    const std::string path = join(dir_, fe.file);
    const std::string h = npy_header(elem, rows, cols);
    const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols) * static_cast<size_t>(elem);
    if (static_cast<int64_t>(h.size() + n) != fe.bytes)
      throw_invalid("checkpoint " + path + ": holds a different shape than this run needs (" + std::to_string(rows) +
                    " x " + std::to_string(cols) + " of " + (elem == 4 ? "float32" : "float16") +
                    ": wrong k or other data?)");
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw_errno(path, "cannot open checkpoint file");
    std::string head(h.size(), '\0');
    const bool ok = std::fread(&head[0], 1, head.size(), f) == head.size() && std::fread(data, 1, n, f) == n;
    const bool eof = std::fgetc(f) == EOF;
    std::fclose(f);
    if (!ok || !eof) throw_invalid("checkpoint " + path + ": truncated or resized since the manifest was written");
    if (head != h) throw_invalid("checkpoint " + path + ": not the expected .npy header (wrong k or other data?)");
    const uint64_t hh = checksum(head.data(), head.size());
    if (detail::mix64(hh ^ checksum(data, n)) != fe.hash)
      throw_invalid("checkpoint " + path + ": corrupted (checksum mismatch)");
  }
  std::string where(const std::string& name) const override {
    auto it = entries_.find(name);
    return "checkpoint " + (it == entries_.end() ? dir_ : join(dir_, it->second.file));
  }
  std::string blob(const std::string& name) override {
    const FileEntry& fe = entry(name);
    const std::string path = join(dir_, fe.file);
    const std::string s = detail::read_file(path);
    if (static_cast<int64_t>(s.size()) != fe.bytes)
      throw_invalid("checkpoint " + path + ": truncated (" + std::to_string(s.size()) + " of " +
                    std::to_string(fe.bytes) + " bytes)");
    if (detail::mix64(checksum(nullptr, 0) ^ checksum(s.data(), s.size())) != fe.hash)
      throw_invalid("checkpoint " + path + ": corrupted (checksum mismatch)");
    return s;
  }

 private:
  const FileEntry& entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw_invalid("checkpoint " + dir_ + ": the manifest names no '" + name + "' file");
    return it->second;
  }
  std::string dir_;
  std::map<std::string, FileEntry> entries_;
};

struct Loaded {
  CheckpointInfo info;
  std::map<std::string, FileEntry> files;
};

Loaded load_manifest(const std::string& dir) {
  if (!detail::is_directory(dir)) throw IoError("checkpoint " + dir + ": directory does not exist");
  const std::string mpath = join(dir, kManifest);
  if (!detail::path_exists(mpath)) {
    if (const std::string who = detail::lock_holder(dir); !who.empty())
      throw IoError("checkpoint directory " + dir + " is in use by " + who +
                    " (its run has not written a complete "
                    "checkpoint yet); wait for it to end, or choose another directory");
    size_t leftovers = 0;
    for (const std::string& f : detail::list_dir(dir)) leftovers += is_ours(f) ? 1 : 0;
    throw IoError("checkpoint " + dir + ": " + kManifest + " is missing (no complete checkpoint in this directory" +
                  (leftovers ? "; it holds " + std::to_string(leftovers) +
                                   " leftover files of an interrupted first "
                                   "checkpoint: start the run again with --checkpoint " +
                                   dir + ", which removes them)"
                             : std::string(")")));
  }
  const Manifest m = parse_manifest(detail::read_file(mpath), mpath);
  auto s = [&](const std::string& k) -> const std::string& {
    auto it = m.str.find(k);
    if (it == m.str.end()) throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' missing)");
    return it->second;
  };
  auto digits = [&](const std::string& k) -> const std::string& {
    auto it = m.num.find(k);
    if (it == m.num.end()) throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' missing)");
    return it->second;
  };
  auto n = [&](const std::string& k) -> int64_t {
    errno = 0;
    const long long v = std::strtoll(digits(k).c_str(), nullptr, 10);
    if (errno == ERANGE) throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' out of range)");
    return v;
  };
  auto nu = [&](const std::string& k) -> uint64_t {
    const std::string& d = digits(k);
    errno = 0;
    const unsigned long long v = std::strtoull(d.c_str(), nullptr, 10);
    if (errno == ERANGE || d[0] == '-')
      throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' out of range)");
    return v;
  };
  auto n32 = [&](const std::string& k, int64_t lo, int64_t hi) -> int {
    const int64_t v = n(k);
    if (v < lo || v > hi)
      throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' = " + std::to_string(v) +
                    " out of range)");
    return static_cast<int>(v);
  };
  auto h = [&](const std::string& k) {
    uint64_t v = 0;
    if (!parse_hex64(s(k), &v))
      throw_invalid("checkpoint " + mpath + ": corrupted manifest (field '" + k + "' is not a hash)");
    return v;
  };
  if (m.str.count("format") == 0 || m.str.at("format") != kFormat)
    throw_invalid("checkpoint " + mpath + ": not a MASCOT checkpoint manifest (format tag missing)");
  const int64_t version = n("version");
  if (version >= 1 && version < kOldestReadable)
    throw_invalid("checkpoint " + mpath + ": written by an older MASCOT (checkpoint format version " +
                  std::to_string(version) + "; this build reads versions " + std::to_string(kOldestReadable) + " to " +
                  std::to_string(kVersion) + "): it cannot be resumed, start the run again");
  if (version < kOldestReadable || version > kVersion)
    throw_invalid("checkpoint " + mpath + ": unsupported version " + std::to_string(version) +
                  " (this build reads versions " + std::to_string(kOldestReadable) + " to " + std::to_string(kVersion) +
                  ")" + (version > kVersion ? ": written by a newer MASCOT" : ""));
  const uint16_t probe = 1;
  const bool little = *reinterpret_cast<const uint8_t*>(&probe) == 1;
  if (s("byte_order") != (little ? "little" : "big"))
    throw_invalid("checkpoint " + mpath + ": written on a machine of the other byte order");
  Loaded L;
  CheckpointInfo& I = L.info;
  I.dir = dir;
  I.epochs_done = n32("epochs_done", 0, 1 << 30);
  I.every = n32("checkpoint_every", 1, 1 << 30);
  I.deterministic = n("deterministic") != 0;
  I.train = DataFingerprint{n("n_users"), n("n_items"), n("n_train"), h("train_hash")};
  I.test = DataFingerprint{0, 0, n("n_test"), m.str.count("test_hash") ? h("test_hash") : 0};
  // state files: "file.NAME" -> file name, "bytes.NAME", "hash.NAME"
  for (const auto& kv : m.str) {
    if (kv.first.rfind("file.", 0) != 0) continue;
    const std::string name = kv.first.substr(5);
    const std::string& file = kv.second;
    bool ok_name = !file.empty() && file[0] != '.' && file.size() < 200;
    for (char c : file)
      ok_name = ok_name && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                            c == '_' || c == '-');
    if (!ok_name) throw_invalid("checkpoint " + mpath + ": corrupted manifest (bad file name for '" + name + "')");
    FileEntry fe{file, n("bytes." + name), h("hash." + name)};
    const std::string path = join(dir, file);
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0)
      throw IoError("checkpoint " + path + ": missing (the manifest names it; the checkpoint is incomplete)");
    if (static_cast<int64_t>(st.st_size) != fe.bytes)
      throw_invalid("checkpoint " + path + ": truncated (" + std::to_string(st.st_size) + " of " +
                    std::to_string(fe.bytes) + " bytes)");
    L.files[name] = fe;
  }
  if (L.files.count("run_state") == 0)
    throw_invalid("checkpoint " + mpath + ": corrupted manifest (no run_state file)");
  // run state: config, context, report
  FileStateReader rd(dir, L.files);
  const std::string blob = rd.blob("run_state");
  detail::BinReader r(blob, "checkpoint " + join(dir, L.files["run_state"].file));
  if (r.str() != "run_state") r.fail("not a run state");
  I.config = params::read_config(r);
  I.context.threads = r.pod<int32_t>();
  I.context.seed = r.pod<uint64_t>();
  const int32_t device = r.pod<int32_t>();
  if (device != static_cast<int32_t>(Device::kCpu) && device != static_cast<int32_t>(Device::kCuda))
    r.fail("corrupted (device out of range)");
  I.context.device = static_cast<Device>(device);
  I.dataset_name = r.str();
  if (auto it = m.str.find("train_path"); it != m.str.end()) I.train_path = it->second;
  if (auto it = m.str.find("test_path"); it != m.str.end()) I.test_path = it->second;
  get_report(r, &I.report, version);
  r.expect_done();
  bool text_ok = clean_text(I.dataset_name) && clean_text(I.report.device);
  for (const EpochRecord& e : I.report.epochs)
    text_ok = text_ok && clean_text(e.method_json) &&
              (e.method_json.empty() || (e.method_json.front() == '{' && JsonCheck(e.method_json).ok()));
  if (!text_ok) r.fail("corrupted (invalid text field)");
  if (I.context.threads < 1 || I.context.threads > 1024) r.fail("thread count out of range");
  if (I.epochs_done < 0 || I.epochs_done > I.config.epochs || static_cast<int>(I.report.epochs.size()) != I.epochs_done)
    r.fail("corrupted (its epochs do not match " + std::string(kManifest) + ")");
  if (to_string(I.config.method) != s("method") || I.config.k != n("k") || I.config.epochs != n("epochs") ||
      I.context.threads != n("threads") || I.context.seed != nu("seed") || to_string(I.context.device) != s("device"))
    r.fail("corrupted (method, k, epochs, threads, seed or device do not match " + std::string(kManifest) + ")");
  I.report.config = I.config;
  I.report.seed = I.context.seed;
  I.report.threads = I.context.threads;
  return L;
}

void write_checkpoint(const std::string& dir, int epochs_done, const std::function<void(detail::StateWriter&)>& save,
                      const RunReport& rep, const CheckpointInfo& meta) {
  static uint64_t counter = 0;
  const uint64_t token =
      detail::hash3(static_cast<uint64_t>(::getpid()),
                    static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()), ++counter);
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".e%06d.%s", epochs_done, hex64(token).c_str());
  FileStateWriter w(dir, suffix);
  try {
    detail::BinWriter b;
    b.str("run_state");
    params::write_config(b, meta.config);
    b.pod(static_cast<int32_t>(meta.context.threads));
    b.pod(meta.context.seed);
    b.pod(static_cast<int32_t>(meta.context.device));
    b.str(meta.dataset_name);
    put_report(b, rep);
    w.blob("run_state", b.bytes());
    save(w);  // the driver's state and the backend's sections
    // manifest last
    const uint16_t probe = 1;
    detail::JsonWriter j;
    j.begin_object();
    j.kv("format", kFormat).kv("version", kVersion).kv("mascot_version", MASCOT_VERSION);
    j.kv("byte_order", *reinterpret_cast<const uint8_t*>(&probe) == 1 ? "little" : "big");
    j.kv("epochs_done", epochs_done).kv("epochs", meta.config.epochs);
    j.kv("method", to_string(meta.config.method)).kv("k", meta.config.k);
    j.kv("threads", meta.context.threads).kv("seed", meta.context.seed).kv("device", to_string(meta.context.device));
    j.kv("deterministic", meta.deterministic).kv("checkpoint_every", meta.every);
    j.kv("dataset", meta.dataset_name);
    if (!meta.train_path.empty()) j.kv("train_path", meta.train_path);
    if (!meta.test_path.empty()) j.kv("test_path", meta.test_path);
    j.kv("n_users", meta.train.n_users).kv("n_items", meta.train.n_items).kv("n_train", meta.train.nnz);
    j.kv("train_hash", hex64(meta.train.hash));
    j.kv("n_test", meta.test.nnz).kv("test_hash", hex64(meta.test.hash));
    for (const auto& kv : w.entries) {
      j.kv("file." + kv.first, kv.second.file);
      j.kv("bytes." + kv.first, kv.second.bytes);
      j.kv("hash." + kv.first, hex64(kv.second.hash));
    }
    j.end_object();
    {
      detail::AtomicFile f(join(dir, kManifest));
      f.write(j.str());
      f.write("\n");
      f.commit();  // fsync + rename + fsync(dir)
    }
  } catch (...) {
    // a failed write (disk full) cleans up after itself: the previous checkpoint stays complete
    // and the space it needs to be resumed is not held by half a new one
    for (const auto& kv : w.entries) ::unlink(join(dir, kv.second.file).c_str());
    throw;
  }
  // the new checkpoint is durable: remove the previous one's files and stale temps
  std::map<std::string, bool> keep;
  for (const auto& kv : w.entries) keep[kv.second.file] = true;
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> drop;
    while (dirent* e = ::readdir(d)) {
      const std::string f = e->d_name;
      if (keep.count(f) == 0 && (is_state_file(f) || is_manifest_temp(f))) drop.push_back(f);
    }
    ::closedir(d);
    for (const auto& f : drop) ::unlink(join(dir, f).c_str());
  }
}

void check_same_data(const CheckpointInfo& I, const RatingSet& train, const RatingSet* test) {
  const DataFingerprint t = fingerprint(train);
  if (!(t == I.train))
    throw_invalid("checkpoint " + I.dir + " was written for other data: its training set has " +
                  std::to_string(I.train.n_users) + " users, " + std::to_string(I.train.n_items) + " items, " +
                  std::to_string(I.train.nnz) + " ratings (this one: " + std::to_string(t.n_users) + ", " +
                  std::to_string(t.n_items) + ", " + std::to_string(t.nnz) +
                  (t.nnz == I.train.nnz && t.n_users == I.train.n_users && t.n_items == I.train.n_items
                       ? "; same shape, different content"
                       : "") +
                  ")");
  const int64_t tn = test ? test->nnz() : -1;
  const uint64_t th = test ? fingerprint(*test).hash : 0;
  if (tn != I.test.nnz || th != I.test.hash)
    throw_invalid("checkpoint " + I.dir + " was written with another test set (" +
                  (I.test.nnz < 0 ? std::string("none") : std::to_string(I.test.nnz) + " ratings") +
                  ", this one: " + (tn < 0 ? std::string("none") : std::to_string(tn) + " ratings") + ")");
}

TrainResult run_with_checkpoints(const CheckpointInfo& meta, const RatingSet& train, const RatingSet* test,
                                 const EpochCallback& on_epoch, detail::StateReader* resume,
                                 const RunReport* resume_report) {
  detail::RunHooks hooks;
  hooks.resume = resume;
  hooks.resume_report = resume_report;
  int last_written = resume ? meta.epochs_done : -1;
  CheckpointInfo m = meta;
  hooks.epoch_done = [&](int done, bool last, Device device, const RunReport& rep,
                         const std::function<void(detail::StateWriter&)>& save) {
    if (done == last_written || !(last || done % m.every == 0)) return;
    m.context.device = device;  // the device it trains on (auto resolved), which a resume trains on
    write_checkpoint(m.dir, done, save, rep, m);
    last_written = done;
  };
  return detail::train_run(meta.context, meta.config, train, test, on_epoch, meta.dataset_name, &hooks);
}

}  // namespace

DataFingerprint fingerprint(const RatingSet& rs) {
  DataFingerprint f;
  f.n_users = rs.n_users;
  f.n_items = rs.n_items;
  f.nnz = rs.nnz();
  const size_t n = static_cast<size_t>(rs.nnz());
  uint64_t h = checksum(rs.users.data(), n * sizeof(int32_t));
  h = detail::mix64(h ^ checksum(rs.items.data(), n * sizeof(int32_t)));
  f.hash = detail::mix64(h ^ checksum(rs.ratings.data(), n * sizeof(float)));
  return f;
}

CheckpointInfo read_checkpoint(const std::string& dir, bool verify_all) {
  Loaded L = load_manifest(dir);
  if (!verify_all) return L.info;
  // verify every state file's checksum (resume_training does so while loading)
  for (const auto& kv : L.files) {
    const std::string path = join(dir, kv.second.file);
    const std::string s = detail::read_file(path);
    size_t head = 0;
    if (s.size() >= 10 && s.compare(0, 6, "\x93NUMPY") == 0)
      head =
          10 + (static_cast<size_t>(static_cast<uint8_t>(s[8])) | static_cast<size_t>(static_cast<uint8_t>(s[9])) << 8);
    if (head > s.size() || static_cast<int64_t>(s.size()) != kv.second.bytes)
      throw_invalid("checkpoint " + path + ": truncated or resized since the manifest was written");
    const uint64_t h = detail::mix64(checksum(s.data(), head) ^ checksum(s.data() + head, s.size() - head));
    if (h != kv.second.hash) throw_invalid("checkpoint " + path + ": corrupted (checksum mismatch)");
  }
  return L.info;
}

TrainResult train_checkpointed(const Context& ctx, const TrainConfig& cfg, const RatingSet& train,
                               const RatingSet* test, const EpochCallback& on_epoch, const std::string& dataset_name,
                               const CheckpointOptions& opt) {
  MASCOT_CHECK_ARG(!opt.dir.empty(), "checkpoint directory must not be empty");
  MASCOT_CHECK_ARG(opt.every >= 1, "checkpoint_every must be >= 1 (got " + std::to_string(opt.every) + ")");
  // the directory: created when missing, locked for the whole run (a second run on it is refused),
  // leftovers of a dead writer removed; a run that fails before its first checkpoint removes a
  // directory it created (detail::OutputSet::live_directory)
  detail::OutputSet out;
  out.live_directory("checkpoint directory", opt.dir, checkpoint_dir_spec(false));
  out.prepare();
  CheckpointInfo meta;
  meta.dir = opt.dir;
  meta.every = opt.every;
  meta.deterministic = opt.deterministic;
  meta.config = cfg;
  meta.context = ctx;  // device: resolved by the driver (auto included); each checkpoint records it
  meta.context.threads = ctx.resolved_threads();
  // the name is stored as JSON text and binary state alike: the same valid UTF-8 in both
  meta.dataset_name = detail::utf8_valid(dataset_name);
  meta.train = fingerprint(train);
  meta.test = test ? fingerprint(*test) : DataFingerprint{0, 0, -1, 0};
  // recorded only when they survive the manifest's JSON unchanged (a resume reads them again)
  if (clean_text(opt.train_path) && clean_text(opt.test_path)) {
    meta.train_path = opt.train_path;
    meta.test_path = opt.test_path;
  }
  TrainResult res = run_with_checkpoints(meta, train, test, on_epoch, nullptr, nullptr);
  out.publish();  // keeps the directory, releases the lock
  return res;
}

detail::DirSpec checkpoint_dir_spec(bool resume) {
  detail::DirSpec spec;
  spec.ours = is_ours;
  spec.marker = kManifest;
  spec.content = "a checkpoint";
  spec.on_existing = [resume](const std::string& dir) {
    std::vector<std::string> foreign, leftovers;
    for (const std::string& f : detail::list_dir(dir)) {
      if (f == detail::kLockFile || f == kManifest) continue;
      (is_ours(f) ? leftovers : foreign).push_back(f);
    }
    const bool complete = detail::path_exists(join(dir, kManifest));
    if (resume) {
      if (!complete) {
        for (const std::string& f : leftovers) ::unlink(join(dir, f).c_str());  // we hold the lock: nobody writes them
        throw IoError("checkpoint " + dir + ": " + kManifest + " is missing (no complete checkpoint in this directory" +
                      (leftovers.empty() ? std::string(")")
                                         : "; removed " + std::to_string(leftovers.size()) +
                                               " leftover files of an interrupted first checkpoint): start the run "
                                               "again with --checkpoint " +
                                               dir + " (MF.fit(..., checkpoint=))"));
      }
      return;
    }
    if (complete)
      throw_invalid("checkpoint directory " + dir + " already holds a checkpoint: resume it (--resume " + dir +
                    ", MF.resume) or choose another directory");
    if (!foreign.empty())
      throw IoError("checkpoint directory " + dir + " exists and is not empty (" + foreign[0] +
                    (foreign.size() > 1 ? ", ..." : "") + "): give a new or empty directory");
    // only leftovers of a writer that died before its first checkpoint (the lock says none runs)
    for (const std::string& f : leftovers) ::unlink(join(dir, f).c_str());
  };
  return spec;
}

void check_checkpoint_target(const std::string& dir) {
  MASCOT_CHECK_ARG(!dir.empty(), "checkpoint directory must not be empty");
  detail::OutputSet out;  // prepared and discarded: a directory it made goes again
  out.live_directory("checkpoint directory", dir, checkpoint_dir_spec(false));
  out.prepare();
}

TrainResult resume_training(const std::string& dir, const RatingSet& train, const RatingSet* test,
                            const EpochCallback& on_epoch, const ResumeOptions& opt) {
  detail::OutputSet out;  // the lock (a second run on the directory is refused) and a writability check
  out.live_directory("checkpoint directory", dir, checkpoint_dir_spec(true));
  out.prepare();
  Loaded L = load_manifest(dir);
  CheckpointInfo& I = L.info;
  if (opt.expect) {
    if (opt.expect->method != I.config.method)
      throw_invalid("checkpoint " + dir + " was written by method " + to_string(I.config.method) + ", not " +
                    to_string(opt.expect->method));
    if (opt.expect->k != I.config.k)
      throw_invalid("checkpoint " + dir + " has k=" + std::to_string(I.config.k) +
                    ", not k=" + std::to_string(opt.expect->k));
  }
  MASCOT_CHECK_ARG(opt.every >= 0, "checkpoint_every must be >= 1 (got " + std::to_string(opt.every) + ")");
  if (opt.epochs != 0) {  // extend (or just finish) the run: the schedule is a function of the epoch
    MASCOT_CHECK_ARG(opt.epochs >= I.epochs_done && opt.epochs >= 1,
                     "epochs must be >= " + std::to_string(std::max(I.epochs_done, 1)) + ", the epochs checkpoint " +
                         dir + " has done (got " + std::to_string(opt.epochs) + ")");
    I.config.epochs = opt.epochs;
  }
  if (opt.every > 0) I.every = opt.every;
  if (I.every < 1) I.every = 1;
  check_same_data(I, train, test);
  if (I.context.device == Device::kCuda)
    if (const std::string why = cuda_unavailable_reason(); !why.empty())
      throw CudaError("checkpoint " + dir + " was written on the cuda device and resumes there only, but " + why);
  FileStateReader reader(dir, L.files);
  TrainResult res = run_with_checkpoints(I, train, test, on_epoch, &reader, &I.report);
  out.publish();
  return res;
}

}  // namespace mascot
