// Glue shared by the reader fuzz targets (fuzz/targets/*.cc).
//
// Data flow: the fuzzer (libFuzzer, or fuzz/replay_main.cc where clang is unavailable) hands
// LLVMFuzzerTestOneInput a byte string; the target writes it to a scratch file owned by this
// process (the readers take paths: they stat, open and fread like they do for real input),
// calls the reader and checks the contract every reader promises:
//   * it returns a value that passes its own invariants, or
//   * it throws mascot::InvalidArgument / mascot::IoError whose message is ONE line of
//     printable ASCII naming the file (no raw input bytes, no newline, bounded length).
// Any other exception escapes to std::terminate, and any memory error, UB or hang is caught by
// the sanitizers / the fuzzer's timeout, so all of them are reported as findings.
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mascot/error.h"

namespace mascot::fuzz {

/// A per-process scratch directory (tmpfs when there is one), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("MASCOT_FUZZ_TMP");
    std::string tmpl =
        std::string(base ? base : (::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")) + "/mascot-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mascot fuzz: mkdtemp");
      std::abort();
    }
    static std::string keep = tmpl;
    std::atexit([] {
      const std::string cmd = "rm -rf '" + keep + "'";
      if (std::system(cmd.c_str()) != 0) {
      }
    });
    return tmpl;
  }();
  return dir;
}

/// Creates scratch_dir()/name once (for targets that read a directory) and returns its path.
inline std::string scratch_subdir(const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    std::perror("mascot fuzz: mkdir scratch subdirectory");
    std::abort();
  }
  return path;
}

/// Writes `n` bytes to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t n) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (n && std::fwrite(data, 1, n, f) != n) || std::fclose(f) != 0) {
    std::perror("mascot fuzz: write scratch file");
    std::abort();
  }
  return path;
}

/// Aborts (a finding) unless `msg` is a one-line, printable-ASCII message of bounded length.
inline void check_message(const char* msg) {
  const size_t n = std::strlen(msg);
  if (n == 0 || n > 1000) {
    std::fprintf(stderr, "mascot fuzz: error message empty or too long (%zu bytes)\n", n);
    std::abort();
  }
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(msg[i]);
    if (c < 0x20 || c > 0x7e) {
      std::fprintf(stderr, "mascot fuzz: error message has byte 0x%02x at %zu: %.200s\n", c, i, msg);
      std::abort();
    }
  }
}

/// Runs `body`; the documented errors are expected outcomes, anything else escapes.
template <class F>
void expect_clean(F&& body) {
  try {
    body();
  } catch (const InvalidArgument& e) {
    check_message(e.what());
  } catch (const IoError& e) {
    check_message(e.what());
  }
}

/// A violated invariant on a successful read: print and abort (a finding).
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "mascot fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace mascot::fuzz
