// A stand-in for libFuzzer where clang's -fsanitize=fuzzer is unavailable (gcc has none):
// linked with one target (fuzz/targets/*.cc) and built with -fsanitize=address,undefined, it
// replays every file of the given corpus directories, then runs N seeded random mutations of
// them (bit flips, interesting integers at random offsets, inserted / deleted / duplicated
// ranges, truncation, splicing two inputs).  Not coverage-guided, but deterministic for a seed
// and it exercises the same contract checks.  Each input is first written to the artifact
// path, so the input that crashed or hung is left there; on success that file is removed.
//
//   replay_<target> [--mutations N] [--max-time SEC] [--seed S] [--timeout SEC] [--artifact PATH] CORPUS...
// --mutations -1 means no count limit (then --max-time bounds the run).
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

std::string g_artifact = "replay-crash-input";
unsigned g_timeout = 10;
const char* g_current = "";

void on_alarm(int) {
  const char msg[] = "replay: TIMEOUT (hang) on an input; it is saved at the artifact path\n";
  if (::write(2, msg, sizeof msg - 1) < 0) {
  }
  _exit(70);
}

bool read_file(const std::string& path, Bytes* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  out->clear();
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->insert(out->end(), buf, buf + n);
  std::fclose(f);
  return true;
}

void run_one(const Bytes& in, const char* what) {
  g_current = what;
  if (std::FILE* f = std::fopen(g_artifact.c_str(), "wb")) {
    if (!in.empty()) std::fwrite(in.data(), 1, in.size(), f);
    std::fclose(f);
  }
  ::alarm(g_timeout);
  LLVMFuzzerTestOneInput(in.data(), in.size());
  ::alarm(0);
}

uint64_t interesting(std::mt19937_64& rng) {
  static const uint64_t v[] = {0,
                               1,
                               2,
                               0x7f,
                               0x80,
                               0xff,
                               0x7fff,
                               0x8000,
                               0xffff,
                               0x7fffffff,
                               0x80000000ull,
                               0xffffffffull,
                               0x100000000ull,
                               0x7fffffffffffffffull,
                               0x8000000000000000ull,
                               ~0ull,
                               40,
                               52,
                               64,
                               1000000};
  return v[rng() % (sizeof v / sizeof v[0])];
}

void mutate(Bytes* b, const std::vector<Bytes>& pool, std::mt19937_64& rng) {
  static const char kTokens[] = "0123456789 \t\n\r#-+.eE,()':xnaifNAIF";
  const int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds; ++r) {
    const size_t n = b->size();
    const auto pos = [&](size_t lim) { return lim ? static_cast<size_t>(rng() % lim) : 0; };
    switch (rng() % 9) {
      case 0:  // flip a bit
        if (n) (*b)[pos(n)] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // a byte from the text/npy alphabet
        if (n) (*b)[pos(n)] = static_cast<uint8_t>(kTokens[rng() % (sizeof kTokens - 1)]);
        break;
      case 2: {  // an interesting little-endian integer of 1, 2, 4 or 8 bytes
        const size_t w = size_t{1} << (rng() % 4);
        if (n >= w) {
          const uint64_t v = interesting(rng);
          const size_t at = pos(n - w + 1);
          for (size_t k = 0; k < w; ++k) (*b)[at + k] = static_cast<uint8_t>(v >> (8 * k));
        }
        break;
      }
      case 3: {  // insert random bytes
        const size_t at = pos(n + 1), len = 1 + rng() % 8;
        Bytes ins(len);
        for (auto& c : ins) c = static_cast<uint8_t>(rng() % 3 ? kTokens[rng() % (sizeof kTokens - 1)] : rng());
        b->insert(b->begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
        break;
      }
      case 4: {  // delete a range
        if (n) {
          const size_t at = pos(n), len = 1 + pos(std::min<size_t>(n - at, 64));
          b->erase(b->begin() + static_cast<std::ptrdiff_t>(at), b->begin() + static_cast<std::ptrdiff_t>(at + len));
        }
        break;
      }
      case 5: {  // duplicate a range (long lines, repeated records)
        if (n) {
          const size_t at = pos(n), len = 1 + pos(std::min<size_t>(n - at, 256));
          const Bytes dup(b->begin() + static_cast<std::ptrdiff_t>(at),
                          b->begin() + static_cast<std::ptrdiff_t>(at + len));
          const int times = 1 + static_cast<int>(rng() % 16);
          for (int t = 0; t < times; ++t)
            b->insert(b->begin() + static_cast<std::ptrdiff_t>(at), dup.begin(), dup.end());
        }
        break;
      }
      case 6:  // truncate
        b->resize(pos(n + 1));
        break;
      case 7: {  // splice: head of this input + tail of another
        const Bytes& o = pool[rng() % pool.size()];
        const size_t cut = pos(n + 1), from = pos(o.size() + 1);
        b->resize(cut);
        b->insert(b->end(), o.begin() + static_cast<std::ptrdiff_t>(from), o.end());
        break;
      }
      default:  // a random byte
        if (n) (*b)[pos(n)] = static_cast<uint8_t>(rng());
        break;
    }
  }
  if (b->size() > (size_t{1} << 16)) b->resize(size_t{1} << 16);  // like libFuzzer's -max_len: keeps runs fast
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 2000;
  double max_time = 0;  // seconds; 0 = no limit
  uint64_t seed = 1;
  std::vector<std::string> dirs;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    const bool has_value = a + 1 < argc;
    if (arg == "--mutations" && has_value)
      mutations = std::atol(argv[++a]);
    else if (arg == "--max-time" && has_value)
      max_time = std::atof(argv[++a]);
    else if (arg == "--seed" && has_value)
      seed = std::strtoull(argv[++a], nullptr, 10);
    else if (arg == "--timeout" && has_value)
      g_timeout = static_cast<unsigned>(std::atoi(argv[++a]));
    else if (arg == "--artifact" && has_value)
      g_artifact = argv[++a];
    else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "replay: unknown option %s\n", arg.c_str());
      return 2;
    } else
      dirs.push_back(arg);
  }
  std::vector<Bytes> pool;
  for (const auto& d : dirs) {
    std::vector<std::string> names;
    if (DIR* dp = ::opendir(d.c_str())) {
      while (const dirent* e = ::readdir(dp))
        if (e->d_name[0] != '.') names.push_back(d + "/" + e->d_name);
      ::closedir(dp);
    } else {
      names.push_back(d);  // a single file
    }
    std::sort(names.begin(), names.end());
    for (const auto& nm : names) {
      Bytes b;
      if (!read_file(nm, &b)) {
        std::fprintf(stderr, "replay: cannot read %s\n", nm.c_str());
        return 2;
      }
      pool.push_back(std::move(b));
    }
  }
  if (mutations < 0 && max_time <= 0) {
    std::fprintf(stderr, "replay: --mutations -1 needs --max-time\n");
    return 2;
  }
  if (pool.empty()) {
    std::fprintf(stderr, "replay: empty corpus\n");
    return 2;
  }
  ::signal(SIGALRM, on_alarm);
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& b : pool) run_one(b, "corpus");
  std::mt19937_64 rng(seed);
  Bytes cur;
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  long m = 0;
  for (; mutations < 0 || m < mutations; ++m) {
    if (max_time > 0 && (m & 63) == 0 && elapsed() > max_time) break;
    // mostly fresh mutants of corpus entries, sometimes a further mutation of the last one
    if (cur.empty() || rng() % 4 != 0) cur = pool[rng() % pool.size()];
    mutate(&cur, pool, rng);
    run_one(cur, "mutation");
  }
  const double s = elapsed();
  std::remove(g_artifact.c_str());
  std::printf("replay: %zu corpus inputs + %ld mutations (seed %llu) in %.2f s, no findings\n", pool.size(), m,
              static_cast<unsigned long long>(seed), s);
  return 0;
}
