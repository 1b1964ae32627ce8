// Throw helpers declared in mascot/error.h.  Kept out of line so the many call sites stay small.
#include "mascot/error.h"

#include <cerrno>
#include <cstring>

namespace mascot {

void throw_invalid(const std::string& msg) { throw InvalidArgument(msg); }

void throw_io(const std::string& msg) { throw IoError(msg); }

void throw_errno(const std::string& path, const std::string& what) {
  const int err = errno;  // read first: building the message may allocate and clobber errno
  throw IoError(path + ": " + what + ": " + std::strerror(err));
}

}  // namespace mascot
