// Atomic file writing and small filesystem helpers (cpp/src/fileutil.cc).
#pragma once
#include <cstdio>
#include <string>

namespace mascot::detail {

/// Writes a file atomically: the content goes to "<path>.tmp.<pid>.<n>" in the same directory,
/// is fsync'ed, then renamed onto `path`.  On any failure the temp file is removed and an
/// IoError naming `path` is thrown; `path` is never left half-written.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  ///< removes the temp file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();  ///< flush + fsync + close + rename
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool done_ = false;
};

/// Whole file into a string; IoError on failure.
std::string read_file(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
/// Why nothing can be created at `path` in its parent directory P, or "" when it can: "directory
/// P does not exist", "P is not a directory" (a file in the path's directory part) or "directory
/// P is not writable".  Output targets are checked with it before a long run.
std::string cannot_create(const std::string& path);
/// True for an existing directory with no entries besides . and ..
bool is_empty_dir(const std::string& path);
/// Directory part of `path`: "." when it has none, "/" for "/x".
std::string parent_dir(const std::string& path);
/// "a/b//" -> "a/b"; "/" stays "/".
std::string strip_trailing_slashes(const std::string& path);
/// Unique sibling temp name "<path>.tmp.<pid>.<counter>".
std::string temp_sibling(const std::string& path);
/// Removes a directory tree (best effort, no throw).
void remove_tree(const std::string& path) noexcept;

}  // namespace mascot::detail
