// Atomic file writing and small filesystem helpers (POSIX).
#include "mascot/detail/fileutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "mascot/error.h"

namespace mascot::detail {

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(temp_sibling(path)) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) throw_errno(path_, "cannot open for writing");
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  if (!f_) throw_io(path_ + ": write after a failed write or commit");
  if (n == 0) return;
  if (std::fwrite(data, 1, n, f_) != n) {
    const int err = errno;
    // Close now so that a later commit() cannot publish a partial file.
    std::fclose(f_);
    f_ = nullptr;
    std::remove(tmp_.c_str());
    errno = err;
    throw_errno(path_, "cannot write");
  }
}

void AtomicFile::commit() {
  if (!f_) throw_io(path_ + ": commit after a failed write or commit");
  std::FILE* f = f_;
  f_ = nullptr;  // from here on the destructor only removes the temp file
  bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    errno = err;
    throw_errno(path_, "cannot write");
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) throw_errno(path_, "cannot rename " + tmp_ + " onto it");
  done_ = true;
  // Make the rename itself durable.  Best effort: the data is already complete and in place.
  const int dir = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
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

bool is_empty_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return false;
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) { empty = false; break; }
  }
  ::closedir(d);
  return empty;
}

std::string strip_trailing_slashes(const std::string& path) {
  size_t n = path.size();
  while (n > 1 && path[n - 1] == '/') --n;
  return path.substr(0, n);
}

std::string temp_sibling(const std::string& path) {
  static std::atomic<unsigned long long> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long long>(::getpid())) + "." + std::to_string(counter++);
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
