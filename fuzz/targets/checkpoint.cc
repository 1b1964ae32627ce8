// Fuzz target: the checkpoint reader and the resume path (mascot::read_checkpoint,
// mascot::resume_training; format in cpp/include/mascot/checkpoint.h, docs/checkpoint.md).
//
// Input: a small container that becomes a checkpoint directory.
//   [ "!" ] MANIFEST { "\n==> " FILE-NAME " <==\n" FILE-BYTES }
// MANIFEST is written as checkpoint.json, each part as the named file (names outside
// [A-Za-z0-9._-] or starting with '.' are dropped).  Unless the input starts with "!", the
// target then re-stamps the manifest's "bytes.NAME" and "hash.NAME" fields of every part it
// wrote (NAME = the file name up to ".e"), recomputing the checkpoint checksum below -- blind
// mutation would otherwise only ever reach the checksum check, never the parsers behind it.
//
// Contract checked (fuzz_common.h): read_checkpoint(dir, verify_all=true) returns a validated
// CheckpointInfo or throws one clean line; when it returns, resume_training on the tiny data
// the seeds were written for (tiny_train/tiny_test below, mirrored by fuzz/make_corpus.py)
// either throws one clean line (InvalidArgument, IoError, Diverged for fuzzed factors too
// large to train on, or CudaError for a checkpoint of the cuda device without one) or
// finishes the run with consistent shapes, and the checkpoint it leaves reads back as
// complete.  Resume is skipped (not a finding) for checkpoints whose remaining work would be
// slow: > 3 epochs left, k > 64 or > 2 threads.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../fuzz_common.h"
#include "mascot/checkpoint.h"
#include "mascot/detail/rng.h"

namespace {

using mascot::RatingSet;

/// The seeds' training data (fuzz/make_corpus.py writes the same arrays).
RatingSet tiny_train() {
  RatingSet r;
  r.n_users = 12;
  r.n_items = 9;
  for (int i = 0; i < 60; ++i) {
    r.users.push_back(i % 12);
    r.items.push_back((i * 7 + i / 12) % 9);
    r.ratings.push_back(1.0f + 0.5f * static_cast<float>((i * 37) % 9));
  }
  return r;
}
RatingSet tiny_test() {
  RatingSet r;
  r.n_users = 12;
  r.n_items = 9;
  for (int i = 0; i < 15; ++i) {
    r.users.push_back((i * 5) % 12);
    r.items.push_back((i * 4 + 1) % 9);
    r.ratings.push_back(3.0f + 0.5f * static_cast<float>(i % 3));
  }
  return r;
}

// The checkpoint checksum: a mirror of checksum() in cpp/src/checkpoint.cc (and of _checksum /
// _file_hash in tests/python/test_checkpoint.py).  If it drifted, every re-stamped seed would
// fail the checksum check: the exit summary would show "0 read ok" (MASCOT_FUZZ_VERBOSE=1 on a
// valid_* seed prints "read ok" / "resumed ok").
uint64_t checksum(const unsigned char* p, size_t n) {
  uint64_t h = mascot::detail::mix64(0x6d6173636f74ull ^ n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mascot::detail::mix64(h ^ w);
  }
  uint64_t w = 0;
  if (n > i) std::memcpy(&w, p + i, n - i);
  return mascot::detail::mix64(h ^ w ^ (static_cast<uint64_t>(n - i) << 56));
}
uint64_t file_hash(const std::string& b) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  size_t head = 0;
  if (b.size() >= 10 && b.compare(0, 6, "\x93NUMPY") == 0) head = 10 + (p[8] | static_cast<size_t>(p[9]) << 8);
  head = std::min(head, b.size());
  return mascot::detail::mix64(checksum(p, head) ^ checksum(p + head, b.size() - head));
}

/// Replaces the value after `"key":` (a JSON integer or string) with `value`, if present.
void restamp(std::string& man, const std::string& key, const std::string& value) {
  const std::string k = "\"" + key + "\":";
  const size_t at = man.find(k);
  if (at == std::string::npos) return;
  size_t a = at + k.size();
  while (a < man.size() && man[a] == ' ') ++a;
  size_t b = a;
  if (b < man.size() && man[b] == '"') {
    b = man.find('"', b + 1);
    if (b == std::string::npos) return;
    ++b;
  } else {
    while (b < man.size() && (man[b] == '-' || (man[b] >= '0' && man[b] <= '9'))) ++b;
  }
  man.replace(a, b - a, value);
}

bool good_name(const std::string& f) {
  if (f.empty() || f.size() > 100 || f[0] == '.') return false;
  for (char c : f)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  return true;
}

void clear_dir(const std::string& dir) {
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    ::closedir(d);
    for (const auto& n : names) ::unlink((dir + "/" + n).c_str());
  }
}

/// How far inputs get (printed at exit: a run whose inputs never pass the reader tests little).
struct Counts {
  long inputs = 0, read_ok = 0, resumed = 0;
  ~Counts() {
    std::fprintf(stderr, "checkpoint target: %ld inputs, %ld read ok, %ld resumed ok\n", inputs, read_ok, resumed);
  }
} counts;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mascot;
  static const RatingSet train = tiny_train(), test = tiny_test();
  static const std::string kSep = "\n==> ", kEnd = " <==\n";
  const std::string dir = fuzz::scratch_subdir("ck");
  clear_dir(dir);
  ++counts.inputs;

  std::string in(reinterpret_cast<const char*>(data), size);
  const bool raw = !in.empty() && in[0] == '!';
  if (raw) in.erase(0, 1);
  size_t cut = in.find(kSep);
  std::string manifest = in.substr(0, cut);
  while (cut != std::string::npos) {
    const size_t name_at = cut + kSep.size();
    const size_t name_end = in.find(kEnd, name_at);
    if (name_end == std::string::npos) break;
    const std::string name = in.substr(name_at, name_end - name_at);
    const size_t body_at = name_end + kEnd.size();
    cut = in.find(kSep, body_at);
    const std::string body = in.substr(body_at, cut == std::string::npos ? std::string::npos : cut - body_at);
    if (!good_name(name) || name == "checkpoint.json") continue;
    fuzz::write_scratch("ck/" + name, reinterpret_cast<const uint8_t*>(body.data()), body.size());
    const size_t e = name.find(".e");
    if (!raw && e != std::string::npos && e > 0) {
      const std::string key = name.substr(0, e);
      char hex[24];
      std::snprintf(hex, sizeof hex, "\"%016llx\"", static_cast<unsigned long long>(file_hash(body)));
      restamp(manifest, "bytes." + key, std::to_string(body.size()));
      restamp(manifest, "hash." + key, hex);
    }
  }
  fuzz::write_scratch("ck/checkpoint.json", reinterpret_cast<const uint8_t*>(manifest.data()), manifest.size());

  fuzz::expect_clean([&] {
    const CheckpointInfo info = read_checkpoint(dir, true);
    fuzz::require(info.epochs_done >= 0 && info.epochs_done <= info.config.epochs, "0 <= epochs_done <= epochs");
    fuzz::require(static_cast<int>(info.report.epochs.size()) == info.epochs_done, "one report record per epoch done");
    fuzz::require(info.every >= 1 && info.context.threads >= 1, "every and threads positive");
    ++counts.read_ok;
    if (std::getenv("MASCOT_FUZZ_VERBOSE"))
      std::fprintf(stderr, "checkpoint: read ok (%d epochs done)\n", info.epochs_done);
    if (info.config.epochs - info.epochs_done > 3 || info.config.k > 64 || info.context.threads > 2) return;
    TrainResult r;
    try {
      r = resume_training(dir, train, &test, {});
    } catch (const Diverged& e) {  // fuzzed factors may be huge: a documented, clean outcome
      fuzz::check_message(e.what());
      return;
    } catch (const CudaError& e) {  // a checkpoint of the cuda device, and no device here: documented too
      fuzz::check_message(e.what());
      return;
    }
    const Model& m = r.model;
    fuzz::require(m.k == info.config.k && m.n_users == train.n_users && m.n_items == train.n_items, "model shape");
    fuzz::require(
        m.P.size() == static_cast<size_t>(m.n_users * m.k) && m.Q.size() == static_cast<size_t>(m.n_items * m.k),
        "P and Q sizes");
    fuzz::require(static_cast<int>(r.report.epochs.size()) == info.config.epochs, "report covers every epoch");
    const CheckpointInfo after = read_checkpoint(dir, true);
    fuzz::require(after.epochs_done == info.config.epochs, "the final checkpoint is complete");
    ++counts.resumed;
    if (std::getenv("MASCOT_FUZZ_VERBOSE")) std::fprintf(stderr, "checkpoint: resumed ok\n");
  });
  return 0;
}
