// mascot_kernel_epochs: times one SGD epoch of the CPU kernels in several model states,
// alternating the states epoch by epoch, so that a host whose speed drifts (shared machines:
// +-30 % between minutes) affects every state alike.  Reports each state's median epoch time
// and its per-round paired ratios to the n1 and fp32 epochs of the same round.
//
//   cmake -S . -B build -DMASCOT_BUILD_BENCH=ON && cmake --build build --target mascot_kernel_epochs
//   build/mascot_kernel_epochs [--dataset synthetic-ml10m] [--k 128] [--threads 2] [--rounds 8]
//       [--states n1,fp32,shuffle,mixed-fp16,mixed-switched,mixed-switched-measured,mixed-fp16-measured]
//       [--fp32-user-groups 4,19-20,26,31,39] [--fp32-item-groups 0-4,6-13,15-16,19-20,40,67,74-75,77]
//       [--sample-ratio 0.05] [--naive] [--cpu-time]
//
// --cpu-time: each epoch's process CPU time (user + system, all threads) divided by --threads
// instead of its wall time.  On a host shared with other jobs a thread that is descheduled
// does not count, so kernel costs compare far more steadily; what it leaves out is the time
// threads wait (for a block of the grid schedule, or for the CPU).
//
// A state NAME:grid runs on the conflict-free grid schedule (--order grid) instead of the
// shuffle order (e.g. --states n1,fp32,n1:grid,fp32:grid), so the orders alternate too.
//
// A/B of a kernel change, paired within each round: configure with
// -DMASCOT_BENCH_B_FLAGS="-D..." (CMakeLists.txt) and name states NAME@b (e.g.
// --states n1,fp32,n1@b,fp32@b): those run the AVX-512 kernels compiled with the B flags.
//
// States (all on the same data, relabelled into 100 + 100 groups as MF.fit does):
//   n1 / fp32                 the single-storage kernels (mascot-n1, fp32)
//   n1-sr                     mascot-n1 with stochastic FP16 stores (--rounding stochastic)
//   shuffle                   the schedule alone (chunk order, in-chunk shuffles), no kernel:
//                             the part of every other state's epoch that is not SGD
//   mixed-fp16                the per-group kernel with every group FP16, nothing sampled
//   mixed-switched            the per-group kernel with the --fp32-*-groups in FP32
//   *-measured                the same, sampling gradients for the q-error (a measured epoch)
// The default FP32 groups are those that had switched by epoch 50 of the default mascot run on
// synthetic-ml10m (seed 42): 6 user and 22 item groups, 8 % and 79 % of the ratings.
// The model values are small random numbers and the learning rate small: only the speed of
// the kernels is of interest here, not the training.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/schedule.h"
#include "mascot/detail/half.h"
#include "mascot/error.h"
#include "mascot/reorder.h"
#include "mascot/synthetic.h"

using namespace mascot;
using namespace mascot::cpu;

#if defined(MASCOT_BENCH_B)
namespace mascot::cpu::bench_b {
extern const KernelTable kTable;
}
static const mascot::cpu::KernelTable* const kTableB = &mascot::cpu::bench_b::kTable;
#else
static const mascot::cpu::KernelTable* const kTableB = nullptr;
#endif

namespace {

using Clock = std::chrono::steady_clock;

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "mascot_kernel_epochs: %s\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = s.find(sep, a);
    out.push_back(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  return out;
}

int to_int(const std::string& s, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || v < 0 || v > 1 << 30) usage_error(std::string("bad ") + what + ": '" + s + "'");
  return static_cast<int>(v);
}

// "0-4,6,9" -> {0,1,2,3,4,6,9}; every group must exist.
std::vector<int> parse_groups(const std::string& spec, int groups, const char* what) {
  std::vector<int> out;
  if (spec.empty()) return out;
  for (const std::string& part : split(spec, ',')) {
    const size_t dash = part.find('-');
    const int a = to_int(part.substr(0, dash), what);
    const int b = dash == std::string::npos ? a : to_int(part.substr(dash + 1), what);
    if (a > b || b >= groups)
      usage_error(std::string(what) + ": '" + part + "' is not within 0-" + std::to_string(groups - 1));
    for (int g = a; g <= b; ++g) out.push_back(g);
  }
  return out;
}

std::vector<uint64_t> row_bits(const GroupTable& t) {
  std::vector<uint64_t> b(static_cast<size_t>(t.entities()) / 64 + 2, 0);
  for (int g = 0; g < t.size(); ++g)
    if (t.precision[g] == Precision::kFp32)
      for (int64_t id = t.start[g]; id < t.start[g + 1]; ++id) b[id >> 6] |= uint64_t{1} << (id & 63);
  return b;
}

// "NAME@b" -> ("NAME", true): the state run with the B kernels (MASCOT_BENCH_B_FLAGS).
// "NAME:grid" (before any @b) -> *order = kGrid: the state on the grid schedule.
std::string base_state(const std::string& s, bool* b, Order* order = nullptr) {
  *b = s.size() > 2 && s.compare(s.size() - 2, 2, "@b") == 0;
  std::string base = *b ? s.substr(0, s.size() - 2) : s;
  Order o = Order::kShuffle;
  const std::string suffix = ":grid";
  if (base.size() > suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0) {
    base = base.substr(0, base.size() - suffix.size());
    o = Order::kGrid;
  }
  if (order) *order = o;
  return base;
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// A 64-byte aligned factor matrix, like the trainer's (cpu_trainer.cc Buffer): a k = 128 FP16
// row is then exactly 4 cache lines, not 5.
template <class T>
struct Matrix {
  std::vector<T> buf;
  T* p = nullptr;
  size_t n = 0;
  explicit Matrix(size_t count) : buf(count + 64 / sizeof(T)), n(count) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(buf.data());
    p = buf.data() + ((64 - a % 64) % 64) / sizeof(T);
  }
  T* data() { return p; }
  size_t size() const { return n; }
  T& operator[](size_t j) { return p[j]; }
  T* begin() { return p; }
  T* end() { return p + n; }
};

struct Acc {
  std::vector<float> sum;
  std::vector<double> sq;
  std::vector<int64_t> n;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dataset = "synthetic-ml10m";
  int k = 128, threads = 2, rounds = 8;
  double gamma = 0.05;
  bool naive = false, cpu_time = false;
  std::string states_arg = "n1,fp32,shuffle,mixed-fp16,mixed-switched,mixed-switched-measured,mixed-fp16-measured";
  std::string ugroups = "4,19-20,26,31,39";
  std::string igroups = "0-4,6-13,15-16,19-20,40,67,74-75,77";
  for (int a = 1; a < argc; ++a) {
    const std::string f = argv[a];
    if (f == "--help" || f == "-h") {
      std::printf(
          "usage: mascot_kernel_epochs [--dataset NAME] [--k N] [--threads N] [--rounds N] [--states LIST]\n"
          "       [--fp32-user-groups LIST] [--fp32-item-groups LIST] [--sample-ratio X] [--naive]\n"
          "       [--cpu-time]\n"
          "(see the comment at the top of benchmarks/cpu_kernel_epochs.cc)\n");
      return 0;
    }
    if (f == "--naive") {
      naive = true;
      continue;
    }
    if (f == "--cpu-time") {
      cpu_time = true;
      continue;
    }
    if (a + 1 >= argc) usage_error(f + " needs a value");
    const std::string v = argv[++a];
    if (f == "--dataset")
      dataset = v;
    else if (f == "--k")
      k = to_int(v, "--k");
    else if (f == "--threads")
      threads = to_int(v, "--threads");
    else if (f == "--rounds")
      rounds = to_int(v, "--rounds");
    else if (f == "--states")
      states_arg = v;
    else if (f == "--fp32-user-groups")
      ugroups = v;
    else if (f == "--fp32-item-groups")
      igroups = v;
    else if (f == "--sample-ratio") {
      char* end = nullptr;
      gamma = std::strtod(v.c_str(), &end);
      if (*end || !(gamma > 0 && gamma <= 1)) usage_error("--sample-ratio must be in (0, 1], got '" + v + "'");
    } else
      usage_error("unknown option " + f);
  }
  if (k < 1 || k > 4096) usage_error("--k must be in 1..4096");
  if (threads < 1 || rounds < 1) usage_error("--threads and --rounds must be >= 1");
  const std::vector<std::string> known = {"n1",
                                          "n1-sr",
                                          "fp32",
                                          "shuffle",
                                          "mixed-fp16",
                                          "mixed-switched",
                                          "mixed-switched-measured",
                                          "mixed-fp16-measured"};
  const std::vector<std::string> states = split(states_arg, ',');
  for (const auto& s : states) {
    bool b = false;
    const std::string base = base_state(s, &b);
    if (b && !kTableB) usage_error("state '" + s + "': this build has no B kernels (cmake -DMASCOT_BENCH_B_FLAGS=...)");
    if (std::find(known.begin(), known.end(), base) == known.end()) usage_error("unknown state '" + s + "'");
  }
  if (std::find(states.begin(), states.end(), "n1") == states.end() ||
      std::find(states.begin(), states.end(), "fp32") == states.end())
    usage_error("--states must include n1 and fp32 (the baselines of the ratios)");

  std::string name;
  double scale = 1.0;
  if (!parse_synthetic_spec(dataset, &name, &scale)) usage_error("--dataset must be a synthetic name");
  SyntheticData data;
  try {
    data = generate_synthetic(name, scale, 42, threads);
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
  const Reorder ro = Reorder::build(data.train, 100, 100);
  int64_t dropped = 0;
  const RatingSet tr = ro.apply(data.train, &dropped);
  const int64_t m = tr.n_users, n = tr.n_items;
  GroupTable ug16 = ro.user_groups, ig16 = ro.item_groups, ugs = ug16, igs = ig16;
  for (int g : parse_groups(ugroups, ugs.size(), "--fp32-user-groups")) ugs.precision[g] = Precision::kFp32;
  for (int g : parse_groups(igroups, igs.size(), "--fp32-item-groups")) igs.precision[g] = Precision::kFp32;
  const auto bu16 = row_bits(ug16), bi16 = row_bits(ig16), bus = row_bits(ugs), bis = row_bits(igs);

  Matrix<float> P32(static_cast<size_t>(m) * k), Q32(static_cast<size_t>(n) * k);
  uint64_t s = 1;
  auto rnd = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>((static_cast<double>(s >> 40) / (1 << 24) - 0.5) * 0.2);
  };
  for (auto& x : P32) x = rnd();
  for (auto& x : Q32) x = rnd();
  Matrix<uint16_t> P16(P32.size()), Q16(Q32.size());
  for (size_t j = 0; j < P16.size(); ++j) P16[j] = detail::float_to_half_rn(P32[j]);
  for (size_t j = 0; j < Q16.size(); ++j) Q16[j] = detail::float_to_half_rn(Q32[j]);

  Schedule sched(tr, Order::kShuffle, threads, static_cast<size_t>(k) * 2, 42);
  // grid schedules, sized as the trainer sizes them: FP32 rows for fp32, FP16 otherwise
  std::map<std::pair<Order, bool>, std::unique_ptr<Schedule>> other;
  for (const auto& st : states) {
    bool b = false;
    Order o = Order::kShuffle;
    const bool f32 = base_state(st, &b, &o) == "fp32";
    if (o != Order::kShuffle && !other.count({o, f32}))
      other[{o, f32}] = std::make_unique<Schedule>(tr, o, threads, static_cast<size_t>(k) * (f32 ? 4 : 2), 42);
  }
  const KernelTable& kt_a = kernels();
  std::vector<Acc> ua(threads), ia(threads);
  auto side = [&](float* f32, uint16_t* f16, const GroupTable& t, const std::vector<uint64_t>& bits, Acc* acc) {
    MixedSide sd;
    sd.f32 = f32;
    sd.f16 = f16;
    sd.start = t.start.data();
    sd.fp32 = reinterpret_cast<const uint8_t*>(t.precision.data());
    sd.groups = t.size();
    sd.fp32_bits = bits.data();
    if (acc) {
      acc->sum.assign(static_cast<size_t>(t.size()) * k, 0.0f);
      acc->sq.assign(static_cast<size_t>(t.size()), 0.0);
      acc->n.assign(static_cast<size_t>(t.size()), 0);
      sd.grad_sum = acc->sum.data();
      sd.grad_sq = acc->sq.data();
      sd.grad_n = acc->n.data();
    }
    return sd;
  };
  int64_t fp32_u = 0, fp32_i = 0, tot = 0;
  for (int g = 0; g < ugs.size(); ++g) {
    tot += ugs.rating_count[g];
    if (ugs.precision[g] == Precision::kFp32) fp32_u += ugs.rating_count[g];
  }
  for (int g = 0; g < igs.size(); ++g)
    if (igs.precision[g] == Precision::kFp32) fp32_i += igs.rating_count[g];
  std::printf("%s: %lld users, %lld items, %lld ratings; k=%d, %d threads, kernels %s, %d rounds%s\n", dataset.c_str(),
              static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(tr.nnz()), k, threads,
              kernel_isa(), rounds, cpu_time ? "; CPU time per thread" : "");
  std::printf("mixed-switched: %d user / %d item groups FP32 (%.1f %% / %.1f %% of the ratings); sample ratio %g%s\n",
              ugs.count_fp32(), igs.count_fp32(), 100.0 * fp32_u / tot, 100.0 * fp32_i / tot, gamma,
              naive ? "; naive group lookup" : "");

  std::vector<std::vector<double>> secs(states.size());
  int epoch = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t v = 0; v < states.size(); ++v) {
      bool use_b = false;
      Order ord = Order::kShuffle;
      const std::string st = base_state(states[v], &use_b, &ord);
      const KernelTable& kt = use_b ? *kTableB : kt_a;
      SgdParams prm{k, 0.002f, 0.01f, 0.015f};
      Schedule& sc = ord == Order::kShuffle ? sched : *other.at({ord, st == "fp32"});
      const int e = ord == Order::kGrid ? epoch + Schedule::kGridWarmupEpochs : epoch;  // past the grid's warm-up
      const auto t0 = Clock::now();
      const double c0 = process_cpu_seconds();
      if (st == "n1" || st == "n1-sr") {
        prm.stochastic = st == "n1-sr";
        prm.round_seed = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch + 7);
        sc.run_epoch(e, [&](int, const Rec* rc, size_t c) { kt.sgd_n1(rc, c, P16.data(), Q16.data(), prm); });
      } else if (st == "shuffle") {  // the schedule alone: chunk order and in-chunk shuffles
        std::vector<int64_t> sink(threads);
        sc.run_epoch(e, [&](int tid, const Rec* rc, size_t c) { sink[tid] += rc[c / 2].u; });
        if (sink[0] == -1) std::puts("");
      } else if (st == "fp32") {
        sc.run_epoch(e, [&](int, const Rec* rc, size_t c) { kt.sgd_fp32(rc, c, P32.data(), Q32.data(), prm); });
      } else {
        const bool sw = st.find("switched") != std::string::npos, meas = st.find("measured") != std::string::npos;
        std::vector<MixedSide> us, is;
        for (int t = 0; t < threads; ++t) {
          us.push_back(side(P32.data(), P16.data(), sw ? ugs : ug16, sw ? bus : bu16, meas ? &ua[t] : nullptr));
          is.push_back(side(Q32.data(), Q16.data(), sw ? igs : ig16, sw ? bis : bi16, meas ? &ia[t] : nullptr));
        }
        const MixedParams mp{prm, naive, 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(epoch + 1),
                             gamma >= 1.0 ? ~0ull : static_cast<uint64_t>(gamma * 18446744073709551616.0)};
        sc.run_epoch(e, [&](int tid, const Rec* rc, size_t c) { kt.sgd_mixed(rc, c, us[tid], is[tid], mp); });
      }
      secs[v].push_back(cpu_time ? (process_cpu_seconds() - c0) / threads
                                 : std::chrono::duration<double>(Clock::now() - t0).count());
      ++epoch;
    }
  }
  const size_t in1 = std::find(states.begin(), states.end(), "n1") - states.begin();
  const size_t if32 = std::find(states.begin(), states.end(), "fp32") - states.begin();
  std::printf("%-24s %10s %22s %22s\n", "state", "median s", "time / n1 (min-max)", "fp32 / time (min-max)");
  for (size_t v = 0; v < states.size(); ++v) {
    std::vector<double> rn, rf;
    for (int r = 0; r < rounds; ++r) {
      rn.push_back(secs[v][r] / secs[in1][r]);
      rf.push_back(secs[if32][r] / secs[v][r]);
    }
    std::printf("%-24s %10.4f %8.3f (%5.3f-%5.3f) %8.3f (%5.3f-%5.3f)\n", states[v].c_str(), median(secs[v]),
                median(rn), *std::min_element(rn.begin(), rn.end()), *std::max_element(rn.begin(), rn.end()),
                median(rf), *std::min_element(rf.begin(), rf.end()), *std::max_element(rf.begin(), rf.end()));
  }
  return 0;
}
