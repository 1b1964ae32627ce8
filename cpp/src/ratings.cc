// Rating files: the binary `.mrat` format (docs/design.md §5) and LIBMF-style text.
//
// Both readers are built for multi-GB inputs: `.mrat` arrays are fread straight into the
// result vectors, and text is parsed from large buffers with hand-written integer parsing and
// std::from_chars for the rating (no iostreams, no per-line allocation).
#include "mascot/ratings.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "mascot/detail/fileutil.h"
#include "mascot/error.h"

// The arrays are copied between memory and file as raw bytes, so the host must match the file.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mascot reads and writes .mrat arrays as raw little-endian memory"
#endif

namespace mascot {

namespace {

constexpr char kMagic[8] = {'M', 'A', 'S', 'C', 'O', 'T', 'R', '\0'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 40;  // magic, version, flags, n_users, n_items, nnz
constexpr uint64_t kBytesPerRating = sizeof(int32_t) + sizeof(int32_t) + sizeof(float);
constexpr int64_t kMaxEntities = int64_t{INT32_MAX} + 1;  // ids are int32
constexpr size_t kIoChunk = size_t{64} << 20;

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_read(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw_errno(path, "cannot open");
  return f;
}

uint64_t load_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_le(unsigned char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i, v >>= 8) p[i] = static_cast<unsigned char>(v & 0xff);
}

// Reads exactly `n` bytes, in bounded pieces so a multi-GB array is not one giant request.
void read_exact(std::FILE* f, void* dst, uint64_t n, const std::string& path) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t want = n < kIoChunk ? static_cast<size_t>(n) : kIoChunk;
    const size_t got = std::fread(p, 1, want, f);
    if (got != want) {
      if (std::ferror(f)) throw_errno(path, "cannot read");
      throw_invalid(path + ": file ended early (was it truncated while being read?)");
    }
    p += got;
    n -= got;
  }
}

// `sized`: the file's size was checked against n, so the array is allocated at once; otherwise
// (a pipe) it grows piece by piece, never beyond what was read.
template <class T>
void read_array(std::FILE* f, std::vector<T>* v, uint64_t n, const std::string& path, bool sized) {
  if (sized) {
    v->resize(static_cast<size_t>(n));
    read_exact(f, v->data(), n * sizeof(T), path);
    return;
  }
  v->clear();
  const uint64_t piece = kIoChunk / sizeof(T);
  for (uint64_t done = 0; done < n;) {
    const uint64_t step = std::min(piece, n - done);
    v->resize(static_cast<size_t>(done + step));
    read_exact(f, v->data() + done, step * sizeof(T), path);
    done += step;
  }
}

// ----------------------------------------------------------------------------- text parsing

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

const char* skip_space(const char* p, const char* e) {
  while (p < e && is_space(*p)) ++p;
  return p;
}

const char* skip_token(const char* p, const char* e) {
  while (p < e && !is_space(*p)) ++p;
  return p;
}

// A token for an error message, shortened so a garbage line cannot produce a huge message,
// with bytes outside printable ASCII written as \xNN: the message stays one readable line and
// valid UTF-8 (Python decodes it into the exception text), whatever the file holds.
std::string quoted(const char* b, const char* e) {
  constexpr ptrdiff_t kMax = 40;
  const char* const stop = e - b <= kMax ? e : b + kMax;
  std::string out = "'";
  for (const char* p = b; p < stop; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char esc[5];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    }
  }
  return out + (stop == e ? "'" : "...'");
}

enum class FloatParse { kOk, kNotNumber, kOutOfRange };

FloatParse parse_float(const char* b, const char* e, float* out) {
#if defined(__cpp_lib_to_chars)
  const auto res = std::from_chars(b, e, *out);
  if (res.ec == std::errc::result_out_of_range) return FloatParse::kOutOfRange;
  return res.ec == std::errc() && res.ptr == e ? FloatParse::kOk : FloatParse::kNotNumber;
#else
  // Standard libraries without floating-point from_chars (older libc++): strtof on a
  // NUL-terminated copy.  Rating tokens are short; anything longer is not a plain number.
  char buf[64];
  if (e - b >= static_cast<ptrdiff_t>(sizeof buf)) return FloatParse::kNotNumber;
  std::memcpy(buf, b, static_cast<size_t>(e - b));
  buf[e - b] = '\0';
  char* end = nullptr;
  errno = 0;
  *out = std::strtof(buf, &end);
  if (end != buf + (e - b)) return FloatParse::kNotNumber;
  return errno == ERANGE ? FloatParse::kOutOfRange : FloatParse::kOk;
#endif
}

// Accumulates ratings line by line; every error names "<path>:<line>".
class TextParser {
 public:
  explicit TextParser(const std::string& path) : path_(path) {}

  /// One line, without its '\n'.
  void line(const char* p, const char* e) {
    ++line_no_;
    const char* const start = p;
    p = skip_space(p, e);
    if (p == e || *p == '#') return;
    const char* tok[3][2];
    int n = 0;
    while (p < e) {
      if (n == 3) fail_fields(start, e);
      tok[n][0] = p;
      p = skip_token(p, e);
      tok[n][1] = p;
      ++n;
      p = skip_space(p, e);
    }
    if (n != 3) fail_fields(start, e);
    const int32_t u = parse_id(tok[0][0], tok[0][1], "user");
    const int32_t i = parse_id(tok[1][0], tok[1][1], "item");
    float r;
    switch (parse_float(tok[2][0], tok[2][1], &r)) {
      case FloatParse::kOk:
        break;
      case FloatParse::kNotNumber:
        fail("rating " + quoted(tok[2][0], tok[2][1]) + " is not a number");
      case FloatParse::kOutOfRange:
        fail("rating " + quoted(tok[2][0], tok[2][1]) + " is out of the float32 range");
    }
    if (!std::isfinite(r)) fail("rating " + quoted(tok[2][0], tok[2][1]) + " is not a finite number");
    if (u > max_user_) max_user_ = u;
    if (i > max_item_) max_item_ = i;
    rs_.users.push_back(u);
    rs_.items.push_back(i);
    rs_.ratings.push_back(r);
  }

  RatingSet finish() {
    if (rs_.ratings.empty()) throw_invalid(path_ + ": no ratings found");
    rs_.n_users = int64_t{max_user_} + 1;
    rs_.n_items = int64_t{max_item_} + 1;
    return std::move(rs_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw_invalid(path_ + ":" + std::to_string(line_no_) + ": " + what);
  }

  [[noreturn]] void fail_fields(const char* p, const char* e) const {
    int n = 0;
    for (p = skip_space(p, e); p < e; p = skip_space(skip_token(p, e), e)) ++n;
    fail("expected 3 fields (user item rating), got " + std::to_string(n));
  }

  int32_t parse_id(const char* b, const char* e, const char* kind) const {
    uint64_t v = 0;
    for (const char* p = b; p < e; ++p) {
      const unsigned d = static_cast<unsigned char>(*p) - unsigned{'0'};
      if (d > 9) fail(std::string(kind) + " id " + quoted(b, e) + " is not a non-negative integer");
      if (v <= uint64_t{INT32_MAX}) v = v * 10 + d;  // saturates above the range: no overflow
    }
    if (v > uint64_t{INT32_MAX}) fail(std::string(kind) + " id " + quoted(b, e) + " exceeds the int32 range");
    return static_cast<int32_t>(v);
  }

  const std::string& path_;
  RatingSet rs_;
  int64_t line_no_ = 0;
  int32_t max_user_ = -1, max_item_ = -1;
};

}  // namespace

void RatingSet::validate(const std::string& what) const {
  const size_t n = ratings.size();
  if (users.size() != n || items.size() != n) {
    throw_invalid(what + ": users, items and ratings have different lengths (" + std::to_string(users.size()) + ", " +
                  std::to_string(items.size()) + ", " + std::to_string(n) + ")");
  }
  if (n_users < 0 || n_users > kMaxEntities) {
    throw_invalid(what + ": n_users = " + std::to_string(n_users) + " is outside [0, 2^31]");
  }
  if (n_items < 0 || n_items > kMaxEntities) {
    throw_invalid(what + ": n_items = " + std::to_string(n_items) + " is outside [0, 2^31]");
  }
  // Negative ids wrap to >= 2^31 >= n as unsigned, so one comparison checks both ends.
  const auto nu = static_cast<uint64_t>(n_users), ni = static_cast<uint64_t>(n_items);
  for (size_t k = 0; k < n; ++k) {
    if (static_cast<uint32_t>(users[k]) >= nu) {
      throw_invalid(what + ": user id " + std::to_string(users[k]) + " at index " + std::to_string(k) +
                    " is outside [0, n_users = " + std::to_string(n_users) + ")");
    }
    if (static_cast<uint32_t>(items[k]) >= ni) {
      throw_invalid(what + ": item id " + std::to_string(items[k]) + " at index " + std::to_string(k) +
                    " is outside [0, n_items = " + std::to_string(n_items) + ")");
    }
    if (!std::isfinite(ratings[k])) {
      throw_invalid(what + ": rating at index " + std::to_string(k) + " is not finite (" + std::to_string(ratings[k]) +
                    ")");
    }
  }
}

namespace {

// .mrat from an open stream.  `head` holds the first `have` bytes, already read by the caller
// (read_ratings peeks at the magic; a pipe cannot be reopened).  A regular file's size is
// checked against the header before anything is allocated; a pipe's arrays grow as they arrive,
// so a corrupted count cannot ask for more memory than the data that actually came.
RatingSet read_mrat_stream(std::FILE* f, const std::string& path, const unsigned char* head, size_t have) {
  struct stat st;
  if (::fstat(::fileno(f), &st) != 0) throw_errno(path, "cannot stat");
  const bool regular = S_ISREG(st.st_mode);
  const auto actual = static_cast<uint64_t>(st.st_size);
  if (regular && actual < kHeaderBytes) {
    throw_invalid(path + ": truncated header (" + std::to_string(actual) + " bytes; a .mrat header is " +
                  std::to_string(kHeaderBytes) + ")");
  }
  unsigned char h[kHeaderBytes];
  if (have > 0) std::memcpy(h, head, have);
  const size_t got = std::fread(h + have, 1, kHeaderBytes - have, f);
  if (got != kHeaderBytes - have) {
    if (std::ferror(f)) throw_errno(path, "cannot read");
    throw_invalid(path + ": truncated header (" + std::to_string(have + got) + " bytes; a .mrat header is " +
                  std::to_string(kHeaderBytes) + ")");
  }
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) throw_invalid(path + ": not a .mrat file (wrong magic bytes)");
  const uint64_t version = load_le(h + 8, 4), flags = load_le(h + 12, 4);
  if (version != kVersion) {
    throw_invalid(path + ": unsupported .mrat version " + std::to_string(version) + " (this build reads version " +
                  std::to_string(kVersion) + ")");
  }
  if (flags != 0) throw_invalid(path + ": unsupported .mrat flags " + std::to_string(flags) + " (expected 0)");
  const uint64_t n_users = load_le(h + 16, 8), n_items = load_le(h + 24, 8), nnz = load_le(h + 32, 8);
  if (n_users > uint64_t{kMaxEntities}) {
    throw_invalid(path + ": n_users = " + std::to_string(n_users) + " exceeds the int32 id range");
  }
  if (n_items > uint64_t{kMaxEntities}) {
    throw_invalid(path + ": n_items = " + std::to_string(n_items) + " exceeds the int32 id range");
  }
  const bool overflows = nnz > (UINT64_MAX - kHeaderBytes) / kBytesPerRating;
  const uint64_t expected = overflows ? 0 : kHeaderBytes + nnz * kBytesPerRating;
  if (overflows || (regular && expected != actual)) {
    throw_invalid(path + ": header says nnz = " + std::to_string(nnz) + ", which needs " +
                  (overflows ? std::string("more than 2^64") : std::to_string(expected)) + " bytes, but the file has " +
                  (regular ? std::to_string(actual) : std::string("fewer")) + " bytes");
  }
  RatingSet rs;
  rs.n_users = static_cast<int64_t>(n_users);
  rs.n_items = static_cast<int64_t>(n_items);
  read_array(f, &rs.users, nnz, path, regular);
  read_array(f, &rs.items, nnz, path, regular);
  read_array(f, &rs.ratings, nnz, path, regular);
  if (!regular && std::fgetc(f) != EOF)
    throw_invalid(path + ": header says nnz = " + std::to_string(nnz) + ", but more bytes follow the ratings");
  rs.validate(path);
  return rs;
}

}  // namespace

RatingSet read_mrat(const std::string& path) {
  File f = open_read(path);
  return read_mrat_stream(f.get(), path, nullptr, 0);
}

void write_mrat(const std::string& path, const RatingSet& rs) {
  rs.validate(path);
  unsigned char h[kHeaderBytes];
  std::memcpy(h, kMagic, sizeof kMagic);
  store_le(h + 8, kVersion, 4);
  store_le(h + 12, 0, 4);
  store_le(h + 16, static_cast<uint64_t>(rs.n_users), 8);
  store_le(h + 24, static_cast<uint64_t>(rs.n_items), 8);
  store_le(h + 32, static_cast<uint64_t>(rs.nnz()), 8);
  detail::AtomicFile out(path);
  out.write(h, sizeof h);
  out.write(rs.users.data(), rs.users.size() * sizeof(int32_t));
  out.write(rs.items.data(), rs.items.size() * sizeof(int32_t));
  out.write(rs.ratings.data(), rs.ratings.size() * sizeof(float));
  out.commit();
}

namespace {

// Text ratings from an open stream whose first `have` bytes (`head`) the caller already read.
RatingSet read_text_stream(std::FILE* f, const std::string& path, const unsigned char* head, size_t have) {
  TextParser parser(path);
  // 16 MiB pieces for big files; a small file gets a buffer of its own size, so reading many
  // small files (tests, fuzzing) does not allocate and clear 16 MiB each time.
  struct stat st;
  size_t cap = size_t{16} << 20;
  if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < cap) {
    cap = std::max<size_t>(static_cast<size_t>(st.st_size) + 1, 4096);
  }
  std::vector<char> buf(cap);
  if (have > 0) std::memcpy(buf.data(), head, have);  // bytes of an unfinished line at the front of buf
  bool first = true;
  // A UTF-8 byte-order mark (as some Windows editors write) is not part of the first field.
  auto skip_bom = [&](const char* p, const char* end) {
    if (first && end - p >= 3 && std::memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    first = false;
    return p;
  };
  for (;;) {
    if (have == buf.size()) buf.resize(buf.size() * 2);  // one line longer than the buffer
    const size_t got = std::fread(buf.data() + have, 1, buf.size() - have, f);
    if (got == 0 && std::ferror(f)) throw_errno(path, "cannot read");
    // (with got == 0 the head bytes may still hold whole lines: split them all the same)
    const char* const end = buf.data() + have + got;
    const char* p = skip_bom(buf.data(), end);
    while (const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p))) {
      parser.line(p, static_cast<const char*>(nl));
      p = static_cast<const char*>(nl) + 1;
    }
    if (got == 0) {
      if (p < end) parser.line(p, end);  // last line without a '\n'
      break;
    }
    have = static_cast<size_t>(end - p);
    std::memmove(buf.data(), p, have);
  }
  return parser.finish();
}

bool ends_with(const std::string& s, const char* tail) {
  const size_t n = std::strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

}  // namespace

RatingSet read_text(const std::string& path) {
  File f = open_read(path);
  return read_text_stream(f.get(), path, nullptr, 0);
}

void write_text(const std::string& path, const RatingSet& rs) {
  rs.validate(path);
  detail::AtomicFile out(path);
  std::string buf;
  buf.reserve(size_t{1} << 20);
  char line[64];
  for (int64_t k = 0; k < rs.nnz(); ++k) {
    // %.9g: nine significant digits always round-trip a float32 exactly.
    const int len =
        std::snprintf(line, sizeof line, "%d %d %.9g\n", rs.users[k], rs.items[k], static_cast<double>(rs.ratings[k]));
    buf.append(line, static_cast<size_t>(len));
    if (buf.size() >= (size_t{1} << 20) - sizeof line) {
      out.write(buf);
      buf.clear();
    }
  }
  out.write(buf);
  out.commit();
}

double mean_rating(const RatingSet& rs) {
  double sum = 0;
  for (float r : rs.ratings) sum += r;
  return rs.ratings.empty() ? 0.0 : sum / static_cast<double>(rs.ratings.size());
}

// One open, one pass: the magic is peeked from the stream the parser then continues, so a pipe
// (--train /dev/stdin, <(...)) loses nothing.  A name ending in .mrat is always read as .mrat,
// so a damaged one says "wrong magic bytes" instead of being parsed as text.
RatingSet read_ratings(const std::string& path) {
  File f = open_read(path);
  unsigned char head[sizeof kMagic];
  const size_t got = std::fread(head, 1, sizeof head, f.get());
  if (got < sizeof head && std::ferror(f.get())) throw_errno(path, "cannot read");
  if (ends_with(path, ".mrat") || (got == sizeof head && std::memcmp(head, kMagic, sizeof kMagic) == 0))
    return read_mrat_stream(f.get(), path, head, got);
  return read_text_stream(f.get(), path, head, got);
}

}  // namespace mascot
