// Model persistence: a directory with P.npy, Q.npy (float32, original ids) and model.json
// (plus optional extra files from Python: id maps, training pairs).  The directory is written
// as a whole into a fresh sibling and renamed into place.  Also LIBMF's text model export.
#include "mascot/model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <tuple>

#include "mascot/detail/fileutil.h"
#include "mascot/error.h"
#include "mascot/ratings.h"

namespace mascot {

float Model::predict(int64_t u, int64_t i) const {
  MASCOT_CHECK_ARG(u >= 0 && u < n_users,
                   "user id " + std::to_string(u) + " is outside the model (0.." + std::to_string(n_users - 1) + ")");
  MASCOT_CHECK_ARG(i >= 0 && i < n_items,
                   "item id " + std::to_string(i) + " is outside the model (0.." + std::to_string(n_items - 1) + ")");
  const float* p = &P[static_cast<size_t>(u) * k];
  const float* q = &Q[static_cast<size_t>(i) * k];
  double s = 0;
  for (int j = 0; j < k; ++j) s += static_cast<double>(p[j]) * q[j];
  return static_cast<float>(s);
}

double Model::rmse(const int32_t* users, const int32_t* items, const float* ratings, int64_t n) const {
  MASCOT_CHECK_ARG(n > 0, "rmse needs at least one rating");
  double se = 0;
  for (int64_t t = 0; t < n; ++t) {
    const double e = static_cast<double>(ratings[t]) - predict(users[t], items[t]);
    se += e * e;
  }
  return std::sqrt(se / static_cast<double>(n));
}

void write_npy(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  // magic(6) + version(2) + len(2) + header + '\n', padded to a multiple of 64
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  detail::AtomicFile f(path);
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(magic, 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  const unsigned char hlb[2] = {static_cast<unsigned char>(hl & 0xFF), static_cast<unsigned char>(hl >> 8)};
  f.write(hlb, 2);
  f.write(header);
  f.write(data, static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(float));
  f.commit();
}

namespace {

// A piece of an .npy header for an error message: at most 40 bytes, non-printable bytes as \xNN.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 40; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char esc[5];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    }
  }
  return s.size() > 40 ? out + "..." : out;
}

// The .npy header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }.  This parses exactly that grammar (string keys; string, True/False or
// tuple-of-integers values) by hand: no regex (std::regex recurses per character and can
// overflow the stack on a long adversarial header), no integer overflow, one clear error.
struct NpyHeader {
  std::string descr;
  bool has_descr = false, has_order = false, has_shape = false;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
};

class NpyHeaderParser {
 public:
  NpyHeaderParser(const std::string& h, const std::string& path) : h_(h), path_(path) {}

  NpyHeader parse() {
    NpyHeader out;
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') {
        ++p_;
        break;
      }
      const std::string key = string();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (out.has_descr) fail("'descr' appears twice");
        out.descr = string();
        out.has_descr = true;
      } else if (key == "fortran_order") {
        if (out.has_order) fail("'fortran_order' appears twice");
        out.fortran_order = boolean();
        out.has_order = true;
      } else if (key == "shape") {
        if (out.has_shape) fail("'shape' appears twice");
        out.shape = tuple();
        out.has_shape = true;
      } else {
        fail("unexpected key '" + printable(key) + "'");
      }
      ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      ws();
      expect('}');
      break;
    }
    for (; p_ < h_.size(); ++p_) {
      if (h_[p_] != ' ' && h_[p_] != '\n' && h_[p_] != '\0') fail("unexpected bytes after the header dict");
    }
    if (!out.has_descr || !out.has_order || !out.has_shape) fail("header lacks 'descr', 'fortran_order' or 'shape'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw_invalid(path_ + ": bad .npy header: " + what); }
  char peek() const { return p_ < h_.size() ? h_[p_] : '\0'; }
  void ws() {
    while (p_ < h_.size() && (h_[p_] == ' ' || h_[p_] == '\t' || h_[p_] == '\n')) ++p_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at byte " + std::to_string(p_));
    ++p_;
  }
  std::string string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string at byte " + std::to_string(p_));
    const size_t close = h_.find(q, p_ + 1);
    if (close == std::string::npos) fail("unterminated string");
    std::string s = h_.substr(p_ + 1, close - p_ - 1);
    p_ = close + 1;
    return s;
  }
  bool boolean() {
    if (h_.compare(p_, 4, "True") == 0) {
      p_ += 4;
      return true;
    }
    if (h_.compare(p_, 5, "False") == 0) {
      p_ += 5;
      return false;
    }
    fail("'fortran_order' must be True or False");
  }
  std::vector<uint64_t> tuple() {
    expect('(');
    std::vector<uint64_t> dims;
    for (;;) {
      ws();
      if (peek() == ')') {
        ++p_;
        return dims;
      }
      if (peek() < '0' || peek() > '9') fail("'shape' must be a tuple of non-negative integers");
      uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const unsigned d = static_cast<unsigned>(peek() - '0');
        if (v > (UINT64_MAX - d) / 10) fail("a 'shape' dimension overflows 64 bits");
        v = v * 10 + d;
        ++p_;
      }
      dims.push_back(v);
      if (dims.size() > 32) fail("'shape' has too many dimensions");
      ws();
      if (peek() == ',') {
        ++p_;
        continue;
      }
      expect(')');
      return dims;
    }
  }

  const std::string& h_;
  const std::string& path_;
  size_t p_ = 0;
};

std::string shape_string(const std::vector<uint64_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

}  // namespace

std::vector<float> read_npy(const std::string& path, int64_t* rows, int64_t* cols) {
  const std::string s = detail::read_file(path);
  auto bad = [&](const std::string& what) { throw_invalid(path + ": " + what); };
  if (s.size() < 10 || std::memcmp(s.data(), "\x93NUMPY", 6) != 0) bad("not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(s[6]);
  size_t hl, off;
  if (major == 1) {
    hl = static_cast<unsigned char>(s[8]) | (static_cast<size_t>(static_cast<unsigned char>(s[9])) << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (s.size() < 12) bad("truncated .npy header");
    hl = 0;
    for (int b = 0; b < 4; ++b) hl |= static_cast<size_t>(static_cast<unsigned char>(s[8 + b])) << (8 * b);
    off = 12;
  } else {
    bad("unsupported .npy version " + std::to_string(major));
    return {};
  }
  if (s.size() - off < hl) bad("truncated .npy header");
  const NpyHeader h = NpyHeaderParser(s.substr(off, hl), path).parse();
  if (h.descr != "<f4") bad("dtype '" + printable(h.descr) + "' is not float32 ('<f4')");
  if (h.fortran_order) bad("Fortran-order data is not supported (expected C order)");
  if (h.shape.size() != 2) bad("expected a 2-D array, got shape " + shape_string(h.shape));
  const uint64_t r = h.shape[0], c = h.shape[1];
  // rows are user/item ids (int32), k is an int: anything larger cannot be a model
  if (r > (uint64_t{1} << 31) || c > uint64_t{INT32_MAX}) bad("shape " + shape_string(h.shape) + " is too large");
  const size_t data_off = off + hl;
  const uint64_t have = s.size() - data_off;
  const bool too_big = c != 0 && r > UINT64_MAX / 4 / c;
  if (too_big || r * c * 4 != have)
    bad("data length " + std::to_string(have) + " bytes does not match shape " + shape_string(h.shape) +
        " (float32: " + (too_big ? std::string("more than 2^64") : std::to_string(r * c * 4)) + " bytes)");
  std::vector<float> v(static_cast<size_t>(r * c));
  if (have) std::memcpy(v.data(), s.data() + data_off, have);
  *rows = static_cast<int64_t>(r);
  *cols = static_cast<int64_t>(c);
  return v;
}

std::vector<std::string> model_file_names() {
  return {"P.npy", "Q.npy", "model.json", "user_ids.npy", "item_ids.npy", "seen_indptr.npy", "seen_indices.npy"};
}

detail::DirSpec model_dir_spec() {
  detail::DirSpec spec;
  spec.ours = [](const std::string& name) {
    for (const std::string& n : model_file_names())
      if (name == n) return true;
    return false;
  };
  spec.marker = "model.json";
  spec.content = "a model";
  return spec;
}

void check_model_target(const std::string& dir) {
  detail::OutputSet out;  // prepared and discarded: the checks (and a temp made and removed)
  out.directory("", dir, model_dir_spec());
  out.prepare();
}

namespace {
// "user 3" / "item 7": the first row of F holding a non-finite value, or "" when all are finite.
std::string first_non_finite(const std::vector<float>& F, int64_t rows, int k, const char* what) {
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j)
      if (!std::isfinite(F[static_cast<size_t>(r) * static_cast<size_t>(k) + static_cast<size_t>(j)]))
        return std::string(what) + " " + std::to_string(r);
  return "";
}

void check_model_files(const Model& m, const std::vector<ModelFile>& extra_files) {
  MASCOT_CHECK_ARG(m.k >= 1 && m.P.size() == static_cast<size_t>(m.n_users) * static_cast<size_t>(m.k) &&
                       m.Q.size() == static_cast<size_t>(m.n_items) * static_cast<size_t>(m.k),
                   "model arrays do not match its shape");
  for (const ModelFile& f : extra_files) {
    const std::string& n = f.first;
    const std::vector<std::string> names = model_file_names();
    MASCOT_CHECK_ARG(std::find(names.begin() + 3, names.end(), n) != names.end(),
                     "model file name '" + n +
                         "' is not allowed (one of user_ids.npy, item_ids.npy, "
                         "seen_indptr.npy, seen_indices.npy)");
  }
  std::string bad = first_non_finite(m.P, m.n_users, m.k, "user");
  if (bad.empty()) bad = first_non_finite(m.Q, m.n_items, m.k, "item");
  if (!bad.empty())
    throw_invalid("cannot save a model whose factors are not finite (" + bad +
                  " holds NaN or inf): training diverged; nothing was written");
}

std::string npy_bytes(const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  // magic(6) + version(2) + len(2) + header + '\n', padded to a multiple of 64
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  out += static_cast<char>(hl & 0xFF);
  out += static_cast<char>(hl >> 8);
  out += header;
  const size_t bytes = static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(float);
  out.append(reinterpret_cast<const char*>(data), bytes);
  return out;
}
}  // namespace

void write_model_files(const std::string& dir, const Model& m, const std::string& model_json,
                       const std::vector<ModelFile>& extra_files) {
  check_model_files(m, extra_files);
  detail::write_new_file(dir + "/P.npy", npy_bytes(m.P.data(), m.n_users, m.k));
  detail::write_new_file(dir + "/Q.npy", npy_bytes(m.Q.data(), m.n_items, m.k));
  detail::write_new_file(dir + "/model.json", model_json);
  for (const ModelFile& f : extra_files) detail::write_new_file(dir + "/" + f.first, f.second);
}

void save_model(const std::string& dir, const Model& m, const std::string& model_json) {
  save_model(dir, m, model_json, {});
}

void save_model(const std::string& dir, const Model& m, const std::string& model_json,
                const std::vector<ModelFile>& extra_files) {
  MASCOT_CHECK_ARG(!dir.empty(), "model directory path is empty");
  check_model_files(m, extra_files);  // before anything is created
  detail::OutputSet out;
  const auto h = out.directory("", dir, model_dir_spec());
  out.prepare();
  write_model_files(out.staging_path(h), m, model_json, extra_files);
  out.publish();
}

namespace {
// %.9g: the shortest printf precision that reads back every float32 bit-exactly.
void append_float(std::string& out, double v) {
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
  out.append(buf, static_cast<size_t>(n));
}

void append_libmf_rows(std::string& out, char prefix, const std::vector<float>& F, int64_t rows, int k,
                       const std::vector<uint8_t>& rated, const std::string& path) {
  for (int64_t r = 0; r < rows; ++r) {
    out += prefix;
    out += std::to_string(r);
    const float* v = &F[static_cast<size_t>(r) * static_cast<size_t>(k)];
    if (!rated.empty() && !rated[static_cast<size_t>(r)]) {
      out += " F";
      for (int d = 0; d < k; ++d) out += " 0";
    } else {
      out += " T";
      for (int d = 0; d < k; ++d) {
        if (!std::isfinite(v[d]))
          throw_invalid(path + ": cannot export to LIBMF: " + (prefix == 'p' ? "user " : "item ") + std::to_string(r) +
                        " has a non-finite factor (the model diverged)");
        out += ' ';
        append_float(out, v[d]);
      }
    }
    out += " \n";  // LIBMF ends every value, the last included, with a space
  }
}
}  // namespace

namespace {
std::string libmf_format(const std::string& path, const Model& m, double bias, const std::vector<uint8_t>& user_rated,
                         const std::vector<uint8_t>& item_rated) {
  MASCOT_CHECK_ARG(!path.empty(), "LIBMF export path is empty");
  MASCOT_CHECK_ARG(m.k >= 1, "cannot export a model with k=0");
  MASCOT_CHECK_ARG(m.P.size() == static_cast<size_t>(m.n_users) * static_cast<size_t>(m.k) &&
                       m.Q.size() == static_cast<size_t>(m.n_items) * static_cast<size_t>(m.k),
                   "model arrays do not match its shape");
  MASCOT_CHECK_ARG(
      user_rated.empty() || user_rated.size() == static_cast<size_t>(m.n_users),
      "user_rated has " + std::to_string(user_rated.size()) + " flags for " + std::to_string(m.n_users) + " users");
  MASCOT_CHECK_ARG(
      item_rated.empty() || item_rated.size() == static_cast<size_t>(m.n_items),
      "item_rated has " + std::to_string(item_rated.size()) + " flags for " + std::to_string(m.n_items) + " items");
  MASCOT_CHECK_ARG(std::isfinite(bias), "LIBMF bias b must be finite");
  // LIBMF's mf_int is 32-bit: larger models cannot be read by mf-predict.
  MASCOT_CHECK_ARG(m.n_users <= 2147483647 && m.n_items <= 2147483647, "model too large for LIBMF's 32-bit ids");
  std::string out = "f 0\nm " + std::to_string(m.n_users) + "\nn " + std::to_string(m.n_items) + "\nk " +
                    std::to_string(m.k) + "\nb ";
  append_float(out, bias);
  out += '\n';
  append_libmf_rows(out, 'p', m.P, m.n_users, m.k, user_rated, path);
  append_libmf_rows(out, 'q', m.Q, m.n_items, m.k, item_rated, path);
  return out;
}
}  // namespace

void export_libmf(const std::string& path, const Model& m, double bias, const std::vector<uint8_t>& user_rated,
                  const std::vector<uint8_t>& item_rated) {
  const std::string out = libmf_format(path, m, bias, user_rated, item_rated);
  detail::AtomicFile f(path);
  f.write(out);
  f.commit();
}

std::pair<std::vector<uint8_t>, std::vector<uint8_t>> rated_rows(const RatingSet& train) {
  std::vector<uint8_t> ur(static_cast<size_t>(train.n_users), 0), ir(static_cast<size_t>(train.n_items), 0);
  for (int64_t t = 0; t < train.nnz(); ++t) {
    ur[static_cast<size_t>(train.users[t])] = 1;
    ir[static_cast<size_t>(train.items[t])] = 1;
  }
  return {std::move(ur), std::move(ir)};
}

std::string libmf_text(const std::string& path, const Model& m, double mean, const std::vector<uint8_t>& user_rated,
                       const std::vector<uint8_t>& item_rated) {
  MASCOT_CHECK_ARG(
      static_cast<int64_t>(user_rated.size()) <= m.n_users && static_cast<int64_t>(item_rated.size()) <= m.n_items,
      "training set has more users or items than the model");
  std::vector<uint8_t> ur(user_rated), ir(item_rated);
  ur.resize(static_cast<size_t>(m.n_users), 0);
  ir.resize(static_cast<size_t>(m.n_items), 0);
  return libmf_format(path, m, mean, ur, ir);
}

std::string libmf_text(const std::string& path, const Model& m, const RatingSet& train) {
  MASCOT_CHECK_ARG(train.n_users <= m.n_users && train.n_items <= m.n_items,
                   "training set has more users or items than the model");
  const auto rated = rated_rows(train);
  return libmf_text(path, m, mean_rating(train), rated.first, rated.second);
}

void export_libmf(const std::string& path, const Model& m, const RatingSet& train) {
  const std::string out = libmf_text(path, m, train);
  detail::AtomicFile f(path);
  f.write(out);
  f.commit();
}

Model load_model(const std::string& dir) {
  if (!detail::is_directory(dir)) {
    const std::string note = detail::interrupted_replacement_note(dir);
    throw_io(dir + ": not a model directory (does not exist or is not a directory)" +
             (note.empty() ? "" : "; " + note));
  }
  Model m;
  int64_t pr, pc, qr, qc;
  m.P = read_npy(dir + "/P.npy", &pr, &pc);
  m.Q = read_npy(dir + "/Q.npy", &qr, &qc);
  if (pc != qc) throw_invalid(dir + ": P.npy has k=" + std::to_string(pc) + " but Q.npy has k=" + std::to_string(qc));
  if (pc < 1) throw_invalid(dir + ": P.npy has k=0");
  m.n_users = pr;
  m.n_items = qr;
  m.k = static_cast<int>(pc);
  // a model whose factors are not finite answers nothing (recommend would return empty rows)
  for (const auto& [F, rows, file, what] :
       {std::make_tuple(&m.P, pr, "P.npy", "user"), std::make_tuple(&m.Q, qr, "Q.npy", "item")}) {
    const std::string bad = first_non_finite(*F, rows, m.k, what);
    if (!bad.empty())
      throw_invalid(dir + "/" + file + ": " + bad +
                    " holds NaN or inf (a damaged model, or one of a run that "
                    "diverged)");
  }
  return m;
}

}  // namespace mascot
