// Publication of outputs (OutputSet, AtomicFile) and small filesystem helpers (POSIX; the atomic
// exchange is Linux's renameat2).  The protocol and its guarantees: mascot/detail/fileutil.h.
#include "mascot/detail/fileutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#include "mascot/error.h"

namespace mascot::detail {

// ------------------------------------------------------------------ small helpers
std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string strip_trailing_slashes(const std::string& path) {
  size_t n = path.size();
  while (n > 1 && path[n - 1] == '/') --n;
  return path.substr(0, n);
}

std::string base_name(const std::string& path) {
  const std::string p = strip_trailing_slashes(path);
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos || p == "/" ? p : p.substr(slash + 1);
}

namespace {

std::string join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

std::string errstr(int e) { return std::strerror(e); }

// A file name for a message: control bytes as \xNN (other bytes as they are; the CLI prints them,
// the binding decodes them as the file system encoding does).
std::string shown(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      char esc[5];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// ---- fault injection (tests only: set_publish_fault)
std::mutex g_fault_mu;
std::string g_fault;

bool fault_has(const std::string& token) {
  std::lock_guard<std::mutex> lock(g_fault_mu);
  size_t a = 0;
  while (a <= g_fault.size()) {
    const size_t b = g_fault.find(',', a);
    if (g_fault.compare(a, (b == std::string::npos ? g_fault.size() : b) - a, token) == 0 &&
        (b == std::string::npos ? g_fault.size() : b) - a == token.size())
      return true;
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return false;
}

void fault(const std::string& point) {
  if (fault_has(point + ":kill")) ::raise(SIGKILL);
  if (fault_has(point)) throw IoError("injected fault at " + point);
}

// ---- renames
constexpr unsigned kRenameNoReplace = 1, kRenameExchange = 2;  // linux/fs.h

// 0, or the errno of renameat2(a, b, flags); ENOSYS where there is no renameat2.
int rename2(const std::string& a, const std::string& b, unsigned flags) {
#if defined(__linux__) && defined(SYS_renameat2)
  if (flags == kRenameExchange && fault_has("no-exchange")) return EINVAL;
  if (::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags) == 0) return 0;
  return errno;
#else
  (void)a, (void)b, (void)flags;
  return ENOSYS;
#endif
}

// The file system (or kernel) has no such rename: use the documented fallback.
bool unsupported(int e) { return e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == ENOTSUP; }

int rename_plain(const std::string& a, const std::string& b) {
  return std::rename(a.c_str(), b.c_str()) == 0 ? 0 : errno;
}

// Renames a to b unless b exists (EEXIST then).
int rename_noreplace(const std::string& a, const std::string& b) {
  const int r = rename2(a, b, kRenameNoReplace);
  if (!unsupported(r)) return r;
  struct stat st;
  if (::lstat(b.c_str(), &st) == 0) return EEXIST;
  return rename_plain(a, b);
}

void fsync_dir(const std::string& dir) noexcept {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void remove_path(const std::string& p) noexcept {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode))
    remove_tree(p);
  else
    ::unlink(p.c_str());
}

// ---- temp names: ".NAME.TAG.PID.N" beside the target (NAME cut to 200 bytes: any name fits)
constexpr size_t kMaxTempBase = 200;
std::atomic<unsigned long long> g_counter{0};

std::string temp_base(const std::string& base) {
  return base.size() > kMaxTempBase ? base.substr(0, kMaxTempBase) : base;
}

std::string temp_path(const std::string& dir, const std::string& base, const char* tag) {
  return join(dir, "." + temp_base(base) + "." + tag + "." + std::to_string(static_cast<long long>(::getpid())) + "." +
                       std::to_string(g_counter++));
}

bool all_digits(const std::string& s, size_t a, size_t b) {
  if (a >= b) return false;
  for (size_t i = a; i < b; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// "TAG.PID.N" at s[pos..]: the tag and pid, or false.
bool parse_temp_tail(const std::string& s, size_t pos, std::string* tag, long* pid) {
  const size_t d1 = s.find('.', pos);
  if (d1 == std::string::npos) return false;
  const size_t d2 = s.find('.', d1 + 1);
  if (d2 == std::string::npos) return false;
  const std::string t = s.substr(pos, d1 - pos);
  if ((t != "tmp" && t != "old") || !all_digits(s, d1 + 1, d2) || !all_digits(s, d2 + 1, s.size()) || d2 - d1 > 12)
    return false;
  *tag = t;
  *pid = std::strtol(s.c_str() + d1 + 1, nullptr, 10);
  return true;
}

// ---- path resolution
struct Resolved {
  std::string path;  // absolute, canonical (parent realpath'ed, final symlinks followed); "" for an fd
  int fd = -1;       // /dev/fd/N, /proc/self/fd/N, /dev/stdout...: the descriptor
  bool exists = false;
  struct stat st{};
};

std::string real_path(const std::string& p, int* err) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) {
    *err = errno;
    return "";
  }
  std::string s = r;
  std::free(r);
  return s;
}

bool is_proc_fd_dir(const std::string& d) {
  return d == "/proc/self/fd" || d == "/dev/fd" ||
         d == "/proc/" + std::to_string(static_cast<long long>(::getpid())) + "/fd";
}

std::string read_link(const std::string& p) {
  std::string buf(256, '\0');
  for (;;) {
    const ssize_t n = ::readlink(p.c_str(), &buf[0], buf.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) < buf.size()) return buf.substr(0, static_cast<size_t>(n));
    buf.resize(buf.size() * 2);
  }
}

// Resolves an output path; `fail(why)` throws.
template <class Fail>
Resolved resolve_output(const std::string& given, Fail fail) {
  Resolved r;
  std::string p = strip_trailing_slashes(given);
  for (int hop = 0; hop < 40; ++hop) {
    const std::string dir = parent_dir(p), base = base_name(p);
    int err = 0;
    if (base == "." || base == ".." || p == "/") {  // a directory named by . or ..: resolve it whole
      r.path = real_path(p, &err);
      if (r.path.empty()) fail("cannot resolve it: " + errstr(err));
      r.exists = ::stat(r.path.c_str(), &r.st) == 0;
      return r;
    }
    const std::string rdir = real_path(dir, &err);
    if (rdir.empty()) {
      if (err == ENOENT) fail("directory " + dir + " does not exist");
      if (err == ENOTDIR) fail(dir + " is not a directory");
      fail("cannot resolve directory " + dir + ": " + errstr(err));
    }
    if (!is_directory(rdir)) fail(dir + " is not a directory");
    if (is_proc_fd_dir(rdir)) {
      if (!all_digits(base, 0, base.size()) || base.size() > 9) fail("not a file descriptor");
      r.fd = std::atoi(base.c_str());
      return r;
    }
    const std::string cur = join(rdir, base);
    struct stat st;
    if (::lstat(cur.c_str(), &st) != 0) {
      if (errno == ENOENT) {
        r.path = cur;
        return r;
      }
      fail("cannot look at " + cur + ": " + errstr(errno));
    }
    if (!S_ISLNK(st.st_mode)) {
      r.path = cur;
      r.exists = true;
      r.st = st;
      return r;
    }
    const std::string link = read_link(cur);
    if (link.empty()) fail("cannot read the symbolic link " + cur);
    p = strip_trailing_slashes(link[0] == '/' ? link : join(rdir, link));
  }
  fail("too many levels of symbolic links");
  return r;
}

// ---- advisory locks of live directories, shared by every OutputSet of this process
class LockedDir {
 public:
  static std::shared_ptr<LockedDir> acquire(const std::string& dir, const std::string& label);
  ~LockedDir() {
    ::unlink(file_.c_str());  // while still holding it: a waiter re-checks the inode (below)
    ::close(fd_);
  }
  dev_t dev = 0;
  ino_t ino = 0;

 private:
  LockedDir(std::string file, int fd) : file_(std::move(file)), fd_(fd) {}
  std::string file_;
  int fd_;
};

std::mutex g_locks_mu;
std::vector<std::weak_ptr<LockedDir>> g_locks;

std::shared_ptr<LockedDir> LockedDir::acquire(const std::string& dir, const std::string& label) {
  struct stat ds;
  if (::stat(dir.c_str(), &ds) != 0) throw IoError(label + ": cannot look at it: " + errstr(errno));
  std::lock_guard<std::mutex> guard(g_locks_mu);
  for (auto it = g_locks.begin(); it != g_locks.end();) {
    auto held = it->lock();
    if (!held) {
      it = g_locks.erase(it);
      continue;
    }
    if (held->dev == ds.st_dev && held->ino == ds.st_ino) return held;  // this process holds it already
    ++it;
  }
  const std::string file = join(dir, kLockFile);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
      const int e = errno;
      throw IoError(label + (e == EACCES || e == EROFS || e == EPERM ? " is not writable" : "") +
                    ": cannot create its lock file " + kLockFile + ": " + errstr(e));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      char buf[32] = {0};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (e == EWOULDBLOCK) {
        const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
        throw IoError(label + " is in use by " +
                      (pid > 0 ? "process " + std::to_string(pid) : std::string("another process")) + " (it holds " +
                      kLockFile + "); wait for it to end, or choose another directory");
      }
      throw IoError(label + ": cannot lock " + kLockFile + ": " + errstr(e));
    }
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(file.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      const std::string pid = std::to_string(static_cast<long long>(::getpid())) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const int e = errno;
        ::unlink(file.c_str());
        ::close(fd);
        throw IoError(label + " is not writable: cannot write its lock file: " + errstr(e));
      }
      std::shared_ptr<LockedDir> l(new LockedDir(file, fd));
      l->dev = ds.st_dev;
      l->ino = ds.st_ino;
      g_locks.push_back(l);
      return l;
    }
    ::close(fd);  // its holder removed the file as we opened it: take the new one
  }
  throw IoError(label + ": cannot lock " + kLockFile + " (it keeps being replaced)");
}

// Copies the file `from` into the descriptor `to`.  SIGPIPE is blocked meanwhile (a reader that
// went away is EPIPE, an error, not the death of the process).
int copy_into(const std::string& from, int to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno;
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int err = 0;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        err = errno;
        break;
      }
      off += w;
    }
    if (err) break;
  }
  ::close(in);
  if (err == EPIPE) {  // consume the SIGPIPE this raised before unblocking
    const struct timespec zero = {0, 0};
    ::sigtimedwait(&pipe_set, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return err;
}

int fsync_tree(const std::string& dir) {
  int err = 0;
  for (const std::string& name : list_dir(dir)) {
    const std::string p = join(dir, name);
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (int e = fsync_tree(p)) err = e;
    } else if (S_ISREG(st.st_mode)) {
      const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) err = errno;
      if (fd >= 0) ::close(fd);
    }
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  return err;
}

std::string kind_of(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

// ------------------------------------------------------------------ OutputSet
struct OutputSet::Output {
  enum class Kind { kFile, kDir, kLive } kind = Kind::kFile;
  enum class Mode { kReplace, kStream, kFd } mode = Mode::kReplace;
  enum class Step { kNone, kExchanged, kMovedAside, kRenamedWithBackup, kRenamedNoUndo, kCreated, kStreamed };
  std::string what, given;
  DirSpec spec;
  Resolved r;
  bool prepared = false, failed = false, created = false;
  std::string staged;  // temp file / temp dir (kLive: the directory itself)
  int staged_fd = -1;
  int dup_fd = -1;
  std::shared_ptr<LockedDir> lock;
  Step step = Step::kNone;
  std::string old;  // where the replaced content is once applied

  std::string label() const { return what.empty() ? given : what + " " + given; }
  [[noreturn]] void fail(const std::string& why) const { throw IoError(label() + ": " + why); }
  bool char_device() const { return r.exists && S_ISCHR(r.st.st_mode); }
  std::string dir() const { return parent_dir(r.path); }
  std::string base() const { return base_name(r.path); }
};

struct OutputSet::Input {
  std::string what, given, path;
  bool exists = false;
  struct stat st{};
};

OutputSet::OutputSet() = default;
OutputSet::~OutputSet() {
  if (!published_ && !discarded_) discard();
}

void OutputSet::input(const std::string& what, const std::string& path) {
  auto in = std::make_unique<Input>();
  in->what = what;
  in->given = path;
  if (!path.empty() && ::stat(path.c_str(), &in->st) == 0) {  // a missing input is the reader's error, later
    in->exists = true;
    int err = 0;
    in->path = real_path(path, &err);
    if (is_proc_fd_dir(parent_dir(in->path)) || in->path.compare(0, 5, "pipe:") == 0) in->path.clear();
  }
  inputs_.push_back(std::move(in));
}

OutputSet::Handle OutputSet::file(const std::string& what, const std::string& path) {
  auto o = std::make_unique<Output>();
  o->kind = Output::Kind::kFile;
  o->what = what;
  o->given = path;
  outputs_.push_back(std::move(o));
  return outputs_.size() - 1;
}

OutputSet::Handle OutputSet::directory(const std::string& what, const std::string& path, DirSpec spec) {
  auto o = std::make_unique<Output>();
  o->kind = Output::Kind::kDir;
  o->what = what;
  o->given = path;
  o->spec = std::move(spec);
  outputs_.push_back(std::move(o));
  return outputs_.size() - 1;
}

OutputSet::Handle OutputSet::live_directory(const std::string& what, const std::string& path, DirSpec spec) {
  const Handle h = directory(what, path, std::move(spec));
  outputs_[h]->kind = Output::Kind::kLive;
  return h;
}

namespace {

// The checks of an existing directory that a directory output would replace.
void check_replaceable(const OutputSet::Output& o);

}  // namespace

void OutputSet::prepare_output(Output& o) {
  using K = Output::Kind;
  if (o.given.empty()) throw InvalidArgument((o.what.empty() ? std::string("output") : o.what) + ": the path is empty");
  if (o.given.find('\0') != std::string::npos) o.fail("the path holds a NUL byte");
  o.r = resolve_output(o.given, [&](const std::string& why) { o.fail(why); });
  if (o.r.fd >= 0) {
    if (o.kind != K::kFile) o.fail("a directory cannot be written to a file descriptor");
    const int fl = ::fcntl(o.r.fd, F_GETFL);
    if (fl < 0) o.fail("file descriptor " + std::to_string(o.r.fd) + " is not open");
    if ((fl & O_ACCMODE) == O_RDONLY) o.fail("file descriptor " + std::to_string(o.r.fd) + " is not open for writing");
    if (::fstat(o.r.fd, &o.r.st) == 0) o.r.exists = true;
    o.mode = Output::Mode::kFd;
    return;
  }
  const bool is_dir = o.r.exists && S_ISDIR(o.r.st.st_mode);
  if (o.kind == K::kFile) {
    if (!o.r.exists || S_ISREG(o.r.st.st_mode))
      o.mode = Output::Mode::kReplace;
    else if (is_dir)
      o.fail("is a directory");
    else if (S_ISCHR(o.r.st.st_mode) || S_ISFIFO(o.r.st.st_mode))
      o.mode = Output::Mode::kStream;
    else if (S_ISBLK(o.r.st.st_mode))
      o.fail("is a block device: refusing to write into it");
    else
      o.fail("is " + kind_of(o.r.st) + ": cannot write a file there");
    return;
  }
  if (o.r.path == "/") o.fail("is the root directory");
  if (o.r.exists && !is_dir) o.fail("exists and is not a directory");
  if (o.kind == K::kDir && o.r.exists) check_replaceable(o);
}

namespace {

bool same_object(bool ae, const struct stat& as, const std::string& ap, bool be, const struct stat& bs,
                 const std::string& bp) {
  if (ae && be && as.st_dev == bs.st_dev && as.st_ino == bs.st_ino) return true;
  return !ap.empty() && ap == bp;
}

bool inside(const std::string& p, const std::string& dir) {
  return !p.empty() && !dir.empty() && p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 &&
         p[dir.size()] == '/';
}

void check_replaceable(const OutputSet::Output& o) {
  if (!o.spec.replace) o.fail("exists");
  std::vector<std::string> entries;
  try {
    entries = list_dir(o.r.path);
  } catch (const IoError& e) {
    o.fail(std::string("cannot read it (") + e.what() + ")");
  }
  if (!entries.empty()) {
    bool marker = o.spec.marker.empty();
    std::vector<std::string> foreign;
    for (const std::string& e : entries) {
      if (e == o.spec.marker) marker = true;
      if (!o.spec.ours || !o.spec.ours(e)) foreign.push_back(e);
    }
    if (!marker) o.fail("exists, is not empty and holds no " + o.spec.marker + "; refusing to replace it");
    if (!foreign.empty()) {
      std::string list;
      for (size_t i = 0; i < foreign.size() && i < 5; ++i) list += (i ? ", " : "") + shown(foreign[i]);
      if (foreign.size() > 5) list += ", ... (" + std::to_string(foreign.size()) + " in all)";
      o.fail("holds files that are not part of " + o.spec.content + " (" + list +
             "): refusing to replace it; move them out or choose another directory");
    }
  }
  int err = 0;
  const std::string cwd = real_path(".", &err);
  if (!cwd.empty() && (cwd == o.r.path || inside(cwd, o.r.path)))
    o.fail(
        "is the current directory or contains it; it would be replaced as a whole: give a directory outside "
        "the current one");
}

}  // namespace

void OutputSet::check_pairs(size_t first_new) {
  using K = Output::Kind;
  for (size_t a = first_new; a < outputs_.size(); ++a) {
    const Output& A = *outputs_[a];
    for (size_t b = 0; b < a; ++b) {
      const Output& B = *outputs_[b];
      if (same_object(A.r.exists, A.r.st, A.r.path, B.r.exists, B.r.st, B.r.path)) {
        if (A.char_device() && B.char_device()) continue;  // e.g. both into /dev/null
        throw IoError(B.label() + " and " + A.label() + " name the same " +
                      (A.kind == K::kFile && B.kind == K::kFile ? "file" : "path") + ": each output needs its own");
      }
      if (B.kind != K::kFile && inside(A.r.path, B.r.path))
        throw IoError(A.label() + " lies inside " + B.label() + ", another output directory; put it elsewhere");
      if (A.kind != K::kFile && inside(B.r.path, A.r.path))
        throw IoError(B.label() + " lies inside " + A.label() + ", another output directory; put it elsewhere");
    }
    for (const auto& in : inputs_) {
      if (!in->exists) continue;
      if (!A.char_device() && same_object(A.r.exists, A.r.st, A.r.path, true, in->st, in->path))
        throw IoError(A.label() + " is the " + in->what + " file " + in->given +
                      ": refusing to overwrite an input; choose another path");
      if (A.kind == K::kDir && inside(in->path, A.r.path))
        throw IoError(in->what + " " + in->given + " lies inside " + A.label() +
                      ", which would be replaced as a whole; choose another directory");
    }
  }
}

namespace {

// Removes the temps of earlier writers of `base` in `dir` that no longer run; an old content put
// aside by a replacement that was interrupted (no new content in place) goes back first.
void remove_stale(const std::string& dir, const std::string& base, std::vector<std::string>* notes) {
  std::vector<std::string> names;
  try {
    names = list_dir(dir);
  } catch (const IoError&) {
    return;
  }
  const std::string prefix = "." + temp_base(base) + ".";
  const long me = static_cast<long>(::getpid());
  for (const std::string& n : names) {
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    std::string tag;
    long pid = 0;
    if (!parse_temp_tail(n, prefix.size(), &tag, &pid) || pid == me || pid_alive(pid)) continue;
    const std::string p = join(dir, n);
    if (tag == "old" && base.size() <= kMaxTempBase) {
      const std::string target = join(dir, base);
      struct stat st;
      if (::lstat(target.c_str(), &st) != 0 && errno == ENOENT) {
        if (rename_plain(p, target) == 0) {
          notes->push_back("restored " + target + ": process " + std::to_string(pid) +
                           " was interrupted while replacing it, after moving the old content aside");
          continue;
        }
      }
    }
    remove_path(p);
  }
}

std::string tmp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? strip_trailing_slashes(t) : std::string("/tmp");
}

// Creates a new file at a fresh temp name; returns its descriptor.
int create_temp_file(const std::string& dir, const std::string& base, std::string* path) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    *path = temp_path(dir, base, "tmp");
    const int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

std::string create_failure(const std::string& what, const std::string& dir, int e) {
  if (e == EACCES || e == EPERM || e == EROFS) return "directory " + dir + " is not writable (" + errstr(e) + ")";
  return "cannot create " + what + " in " + dir + ": " + errstr(e);
}

}  // namespace

void OutputSet::stage(Output& o) {
  using K = Output::Kind;
  using M = Output::Mode;
  if (o.kind == K::kFile) {
    if (o.mode == M::kReplace) {
      remove_stale(o.dir(), o.base(), &notes_);
      o.staged_fd = create_temp_file(o.dir(), o.base(), &o.staged);
      if (o.staged_fd < 0) o.fail(create_failure("a file", o.dir(), errno));
      if (o.r.exists && ::fchmod(o.staged_fd, o.r.st.st_mode & 07777) != 0) {
        // keeping the old permission bits is a courtesy; the umask's are the fallback
      }
    } else {
      const std::string t = tmp_dir();
      remove_stale(t, "mascot-stream", &notes_);
      o.staged_fd = create_temp_file(t, "mascot-stream", &o.staged);
      if (o.staged_fd < 0) o.fail("cannot stage its content in " + t + ": " + errstr(errno));
      if (o.mode == M::kFd) {
        o.dup_fd = ::fcntl(o.r.fd, F_DUPFD_CLOEXEC, 3);
        if (o.dup_fd < 0) {
          const int e = errno;
          ::close(o.staged_fd);
          o.staged_fd = -1;
          ::unlink(o.staged.c_str());
          o.staged.clear();
          o.fail("cannot duplicate file descriptor " + std::to_string(o.r.fd) + ": " + errstr(e));
        }
      }
    }
    return;
  }
  if (o.kind == K::kDir) {
    remove_stale(o.dir(), o.base(), &notes_);
    for (int attempt = 0; attempt < 100; ++attempt) {
      o.staged = temp_path(o.dir(), o.base(), "tmp");
      if (::mkdir(o.staged.c_str(), 0777) == 0) return;
      if (errno != EEXIST) break;
    }
    const int e = errno;
    o.staged.clear();
    o.fail(create_failure("a directory", o.dir(), e));
  }
  // live directory: created now when missing, locked, then the owner's checks
  if (!o.r.exists) {
    if (::mkdir(o.r.path.c_str(), 0777) == 0)
      o.created = true;
    else if (errno != EEXIST)
      o.fail(create_failure("it", o.dir(), errno));
  }
  try {
    o.lock = LockedDir::acquire(o.r.path, o.label());
    std::string probe;  // the owner will create files here: prove it can
    const int fd = create_temp_file(o.r.path, "mascot-probe", &probe);
    if (fd < 0) {
      const int e = errno;
      o.fail(e == EACCES || e == EROFS || e == EPERM ? "is not writable (" + errstr(e) + ")"
                                                     : "cannot create a file in it: " + errstr(e));
    }
    ::close(fd);
    ::unlink(probe.c_str());
    o.staged = o.r.path;
    if (o.spec.on_existing) o.spec.on_existing(o.r.path);
  } catch (...) {
    o.lock.reset();
    if (o.created) ::rmdir(o.r.path.c_str());
    o.created = false;
    o.staged.clear();
    throw;
  }
}

void OutputSet::prepare() {
  if (published_ || discarded_)
    throw InvalidArgument(published_ ? "these outputs are published already" : "these outputs were discarded");
  size_t first_new = outputs_.size();
  for (size_t i = 0; i < outputs_.size(); ++i)
    if (!outputs_[i]->prepared) {
      first_new = i;
      break;
    }
  if (first_new == outputs_.size()) return;
  for (size_t i = first_new; i < outputs_.size(); ++i) prepare_output(*outputs_[i]);
  check_pairs(first_new);
  size_t i = first_new;
  try {
    for (; i < outputs_.size(); ++i) {
      stage(*outputs_[i]);
      outputs_[i]->prepared = true;
    }
  } catch (...) {
    for (size_t j = first_new; j < i; ++j) drop(*outputs_[j]);  // the failing one cleaned up after itself
    throw;
  }
}

const std::string& OutputSet::staging_path(Handle h) const {
  MASCOT_CHECK_ARG(h < outputs_.size() && outputs_[h]->prepared, "output " + std::to_string(h) + " is not prepared");
  return outputs_[h]->staged;
}

const std::string& OutputSet::target_path(Handle h) const {
  MASCOT_CHECK_ARG(h < outputs_.size() && outputs_[h]->prepared, "output " + std::to_string(h) + " is not prepared");
  return outputs_[h]->r.path.empty() ? outputs_[h]->given : outputs_[h]->r.path;
}

void OutputSet::write(Handle h, const void* data, size_t n) {
  MASCOT_CHECK_ARG(h < outputs_.size() && outputs_[h]->prepared, "output " + std::to_string(h) + " is not prepared");
  Output& o = *outputs_[h];
  MASCOT_CHECK_ARG(o.kind == Output::Kind::kFile, o.label() + ": a directory output is filled through its path");
  if (o.failed || o.staged_fd < 0) o.fail("write after a failed write or after publication");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(o.staged_fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int e = errno;
      o.failed = true;  // nothing of it can be published now; its temp goes at once (disk space)
      ::close(o.staged_fd);
      o.staged_fd = -1;
      ::unlink(o.staged.c_str());
      o.fail("cannot write: " + errstr(e));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void OutputSet::publish() {
  if (published_) return;
  if (discarded_) throw InvalidArgument("these outputs were discarded (an earlier failure): nothing to publish");
  prepare();
  try {
    publish_all();
  } catch (...) {
    discard();  // a publication that failed leaves nothing staged behind (the targets are as they were)
    throw;
  }
}

void OutputSet::publish_all() {
  using K = Output::Kind;
  using M = Output::Mode;
  using S = Output::Step;
  fault("publish:before");
  // 1. the staged content, complete and on disk
  for (auto& op : outputs_) {
    Output& o = *op;
    if (o.failed) o.fail("cannot publish after a failed write");
    if (o.kind == K::kFile) {
      int e = 0;
      if (o.staged_fd >= 0 && o.mode == M::kReplace && ::fsync(o.staged_fd) != 0) e = errno;
      if (o.staged_fd >= 0 && ::close(o.staged_fd) != 0 && !e) e = errno;
      o.staged_fd = -1;
      if (e) {
        o.failed = true;
        o.fail("cannot write: " + errstr(e));
      }
    } else if (o.kind == K::kDir) {
      if (int e = fsync_tree(o.staged)) o.fail("cannot write its files: " + errstr(e));
    }
  }
  // 2. every target still what prepare() found (nothing is touched until all are)
  for (auto& op : outputs_) {
    Output& o = *op;
    if (o.kind == K::kLive || o.mode == M::kFd) continue;
    struct stat st;
    const bool now = ::stat(o.r.path.c_str(), &st) == 0;
    if (o.mode == M::kStream) {
      if (!now || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) o.fail("changed while the run went on");
    } else if (now && o.kind == K::kFile && !S_ISREG(st.st_mode)) {
      o.fail("is now " + kind_of(st) + " (it changed while the run went on)");
    } else if (now && o.kind == K::kDir) {
      if (!S_ISDIR(st.st_mode)) o.fail("exists now and is not a directory");
      o.r.exists = true;
      o.r.st = st;
      check_replaceable(o);
    }
  }
  // 3. in place: files and directories first (each step can be undone), then the streams
  std::vector<Output*> order;
  for (auto& op : outputs_)
    if (op->kind != K::kLive && op->mode == M::kReplace) order.push_back(op.get());
  for (auto& op : outputs_)
    if (op->kind != K::kLive && op->mode != M::kReplace) order.push_back(op.get());
  size_t done = 0;
  try {
    for (Output* op : order) {
      Output& o = *op;
      if (o.mode == M::kReplace) {
        const bool dir = o.kind == K::kDir;
        struct stat st;
        int r = 0;
        if (::lstat(o.r.path.c_str(), &st) != 0) {
          r = rename_noreplace(o.staged, o.r.path);
          if (r == 0)
            o.step = S::kCreated;
          else if (r != EEXIST)
            o.fail("cannot move it into place: " + errstr(r));
          else if (dir)
            check_replaceable(o);  // created meanwhile: replaced below if it may be
        }
        if (o.step == S::kNone) {
          r = rename2(o.staged, o.r.path, kRenameExchange);
          if (r == 0) {
            o.step = S::kExchanged;
            o.old = o.staged;
            fault(dir ? "dir:exchanged" : "file:exchanged");
          } else if (!unsupported(r)) {
            o.fail("cannot replace it: " + errstr(r));
          } else if (dir) {  // fallback: old aside, new in (a crash between: see remove_stale)
            o.old = temp_path(o.dir(), o.base(), "old");
            if ((r = rename_plain(o.r.path, o.old)) != 0) o.fail("cannot move the old directory aside: " + errstr(r));
            o.step = S::kMovedAside;
            fault("dir:aside");
            if ((r = rename_plain(o.staged, o.r.path)) != 0) {
              rename_plain(o.old, o.r.path);
              o.step = S::kNone;
              o.fail("cannot move it into place: " + errstr(r));
            }
          } else {  // fallback: a hard link keeps the old file until the end (when the fs has them)
            o.old = temp_path(o.dir(), o.base(), "old");
            const bool backup = ::link(o.r.path.c_str(), o.old.c_str()) == 0;
            if (!backup) o.old.clear();
            if ((r = rename_plain(o.staged, o.r.path)) != 0) {
              if (backup) ::unlink(o.old.c_str());
              o.fail("cannot move it into place: " + errstr(r));
            }
            o.step = backup ? S::kRenamedWithBackup : S::kRenamedNoUndo;
          }
        }
      } else {  // a device, FIFO or descriptor: streamed, never replaced
        int fd = o.dup_fd;
        if (o.mode == M::kStream) {
          fd = ::open(o.r.path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
          if (fd < 0) o.fail("cannot open it for writing: " + errstr(errno));
        } else {
          std::fflush(stdout);
          std::fflush(stderr);
        }
        const int e = copy_into(o.staged, fd);
        if (o.mode == M::kStream) ::close(fd);
        if (e) o.fail("cannot write into it: " + errstr(e));
        o.step = S::kStreamed;
      }
      ++done;
      if (done == 1 && order.size() > 1) fault("publish:between");
    }
  } catch (...) {
    for (size_t k = done + 1; k-- > 0;) {  // the failing one may have done a step too
      if (k >= order.size()) continue;
      Output& o = *order[k];
      switch (o.step) {
        case S::kExchanged:
          rename2(o.staged, o.r.path, kRenameExchange);
          break;
        case S::kMovedAside:
          rename_plain(o.r.path, o.staged);
          rename_plain(o.old, o.r.path);
          break;
        case S::kRenamedWithBackup:
          rename_plain(o.old, o.r.path);
          break;
        case S::kCreated:
          rename_plain(o.r.path, o.staged);
          break;
        default:
          break;
      }
      o.step = S::kNone;
      o.old.clear();
    }
    throw;
  }
  // 4. durable, then the old content goes
  for (Output* op : order) {
    Output& o = *op;
    if (o.mode == M::kReplace) fsync_dir(o.dir());
    if (!o.old.empty()) remove_path(o.old);
    if (o.mode != M::kReplace) ::unlink(o.staged.c_str());
    if (o.dup_fd >= 0) ::close(o.dup_fd);
    o.dup_fd = -1;
    o.old.clear();
  }
  for (auto& op : outputs_) op->lock.reset();
  published_ = true;
}

void OutputSet::drop(Output& o) noexcept {
  if (o.staged_fd >= 0) ::close(o.staged_fd);
  if (o.dup_fd >= 0) ::close(o.dup_fd);
  o.staged_fd = o.dup_fd = -1;
  if (o.kind == Output::Kind::kLive) {
    // a directory this set made and that holds no result (no marker): everything of ours goes
    struct stat st;
    const bool keep =
        !o.created || (!o.spec.marker.empty() && ::lstat(join(o.r.path, o.spec.marker).c_str(), &st) == 0);
    if (!keep) {
      try {
        for (const std::string& n : list_dir(o.r.path))
          if (n != kLockFile && ((o.spec.ours && o.spec.ours(n)) || is_publish_temp(n))) remove_path(join(o.r.path, n));
      } catch (...) {
      }
    }
    o.lock.reset();
    if (!keep) ::rmdir(o.r.path.c_str());
  } else if (!o.staged.empty()) {
    remove_path(o.staged);
  }
  o.staged.clear();
  o.created = false;
  o.prepared = false;
}

void OutputSet::discard() noexcept {
  for (auto& op : outputs_) drop(*op);
  outputs_.clear();
  discarded_ = true;
}

std::string lock_holder(const std::string& dir) {
  struct stat ds;
  if (::stat(dir.c_str(), &ds) != 0) return "";
  {
    std::lock_guard<std::mutex> guard(g_locks_mu);
    for (const auto& w : g_locks)
      if (auto held = w.lock(); held && held->dev == ds.st_dev && held->ino == ds.st_ino) return "";  // ours
  }
  const int fd = ::open(join(dir, kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  std::string who;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
    who = pid > 0 ? "process " + std::to_string(pid) : "another process";
  }
  ::close(fd);  // (drops the shared lock when it was taken)
  return who;
}

// ------------------------------------------------------------------ AtomicFile, helpers
AtomicFile::AtomicFile(const std::string& path, const std::string& what) : path_(path) {
  h_ = set_.file(what, path);
  set_.prepare();
}

void write_new_file(const std::string& path, const void* data, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw_errno(path, "cannot create");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      throw_errno(path, "cannot write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    throw_errno(path, "cannot write");
  }
  if (::close(fd) != 0) throw_errno(path, "cannot write");
}

void set_publish_fault(const std::string& spec) {
  std::lock_guard<std::mutex> lock(g_fault_mu);
  g_fault = spec;
}

std::string interrupted_replacement_note(const std::string& dir_arg) {
  const std::string p = strip_trailing_slashes(dir_arg);
  const std::string dir = parent_dir(p), base = base_name(p);
  std::vector<std::string> names;
  try {
    names = list_dir(dir);
  } catch (const IoError&) {
    return "";
  }
  const std::string prefix = "." + temp_base(base) + ".";
  for (const std::string& n : names) {
    std::string tag;
    long pid = 0;
    if (n.compare(0, prefix.size(), prefix) == 0 && parse_temp_tail(n, prefix.size(), &tag, &pid) && tag == "old" &&
        !pid_alive(pid))
      return "an interrupted replacement (process " + std::to_string(pid) + ") left its previous content in " +
             join(dir, n) + "; saving to " + p + " again puts it back";
  }
  return "";
}

bool is_publish_temp(const std::string& n) {
  std::string tag;
  long pid;
  // ".NAME.TAG.PID.N": the tail after the third-last dot
  size_t dots = 0, pos = n.size();
  while (pos > 0 && dots < 3) {
    --pos;
    if (n[pos] == '.') ++dots;
  }
  if (dots == 3 && pos > 0 && parse_temp_tail(n, pos + 1, &tag, &pid)) return true;
  return false;
}

bool pid_alive(long pid) {
  if (pid <= 0 || pid > INT_MAX) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string read_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw_errno(path, "cannot open");
  std::string out;
  struct stat st;
  if (::fstat(::fileno(f.get()), &st) == 0 && S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
  if (std::ferror(f.get())) throw_errno(path, "cannot read");
  return out;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string cannot_create(const std::string& path) {
  const std::string parent = parent_dir(path);
  if (!is_directory(parent))
    return path_exists(parent) ? parent + " is not a directory" : "directory " + parent + " does not exist";
  if (::access(parent.c_str(), W_OK) != 0) return "directory " + parent + " is not writable";
  return "";
}

std::vector<std::string> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw_errno(dir, "cannot read the directory");
  std::vector<std::string> out;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

bool is_empty_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return false;
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

void remove_tree(const std::string& path) noexcept {
  // Depth-first (children before their directory), without following symlinks out of the tree.
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        std::remove(p);
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS);
}

}  // namespace mascot::detail
