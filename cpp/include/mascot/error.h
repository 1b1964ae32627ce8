// Error types of the core.  Every failure the user can cause is one of these, with a
// one-line message that names what was wrong (file:line for files, the field for config).
// The binding maps InvalidArgument -> ValueError, IoError -> OSError, CudaError -> RuntimeError;
// the CLI prints "mascot_train: error: <message>" and exits 2 (usage) or 1 (everything else).
#pragma once
#include <stdexcept>
#include <string>

namespace mascot {

/// A bad argument, config field, or malformed input file (maps to Python ValueError).
class InvalidArgument : public std::invalid_argument {
 public:
  explicit InvalidArgument(const std::string& msg) : std::invalid_argument(msg) {}
};

/// An I/O failure: missing/unreadable/unwritable file or directory (maps to Python OSError).
class IoError : public std::runtime_error {
 public:
  explicit IoError(const std::string& msg) : std::runtime_error(msg) {}
};

/// A CUDA runtime failure, or CUDA requested where it is unavailable (maps to RuntimeError).
class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& msg) : std::runtime_error(msg) {}
};

/// Training stopped early because the progress callback asked for it (e.g. Ctrl-C in Python).
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(const std::string& msg) : std::runtime_error(msg) {}
};

/// Training diverged: the test RMSE or the factors became non-finite (too large a learning rate
/// or init).  Training stops at the first such epoch; nothing is saved (Python RuntimeError).
class Diverged : public std::runtime_error {
 public:
  explicit Diverged(const std::string& msg) : std::runtime_error(msg) {}
};

[[noreturn]] void throw_invalid(const std::string& msg);
[[noreturn]] void throw_io(const std::string& msg);
/// "<path>: <what>: <strerror(errno)>"
[[noreturn]] void throw_errno(const std::string& path, const std::string& what);

}  // namespace mascot

#define MASCOT_CHECK_ARG(cond, msg)            \
  do {                                         \
    if (!(cond)) ::mascot::throw_invalid(msg); \
  } while (0)
