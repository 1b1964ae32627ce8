// Memory planning: the estimate (memory_plan.h) and the host/device availability probes.
#include "mascot/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mascot/detail/cuda_tools.h"
#include "mascot/detail/json.h"
#include "mascot/error.h"
#include "mascot/methods.h"

namespace mascot {
namespace {

constexpr unsigned kSetup = 1, kTrain = 2, kFinish = 4;

void compute_peaks(MemoryPlan* p) {
  p->host_peak = p->device_peak = 0;
  for (unsigned ph : {kSetup, kTrain, kFinish}) {
    uint64_t h = 0, d = 0;
    for (const MemoryItem& it : p->items)
      if (it.phases & ph) (it.device ? d : h) += it.bytes;
    p->host_peak = std::max(p->host_peak, h);
    p->device_peak = std::max(p->device_peak, d);
  }
}

MemoryPlan build(Device dev, int threads, const TrainConfig& cfg, int64_t m, int64_t n, int64_t nnz, int64_t nt,
                 bool loaded) {
  MemoryPlan p;
  p.device = dev;
  p.threads = threads;
  p.k = cfg.k;
  p.n_users = m;
  p.n_items = n;
  p.n_train = nnz;
  p.n_test = nt;
  p.inputs_loaded = loaded;
  const uint64_t k = static_cast<uint64_t>(cfg.k), rows = static_cast<uint64_t>(m + n);
  const uint64_t tr = static_cast<uint64_t>(nnz), te = static_cast<uint64_t>(nt);
  const bool cuda = dev == Device::kCuda;
  const unsigned all = kSetup | kTrain | kFinish;
  auto add = [&](const std::string& name, uint64_t bytes, bool device, unsigned phases, bool sk = false,
                 bool pt = false) {
    if (bytes > 0) p.items.push_back(MemoryItem{name, bytes, device, phases, sk, pt});
  };
  // host: the caller's rating sets and the trainer's own, relabelled in place (trainer.cc).  A
  // caller that hands its sets over (mascot_train without checkpoints; train(RatingSet&&)) holds
  // them once: then the first two items are the same memory as the next two, and the plan is
  // 12 bytes per rating above the real peak.
  add(loaded ? "training ratings (input, already loaded)" : "training ratings (input)", 12 * tr, false, all);
  add(loaded ? "test ratings (input, already loaded)" : "test ratings (input)", 12 * te, false, all);
  // the CPU backend frees its schedule (the ratings) and evaluation records before the factors'
  // float32 copies are made (Backend::end_training)
  add("training ratings, the trainer's (relabelled in place; the CPU schedule keeps them)", 12 * tr, false,
      cuda ? all : kSetup | kTrain);
  add("test ratings, the trainer's (relabelled in place)", 12 * te, false, cuda ? all : kSetup | kTrain);
  add("relabelling tables (reorder)", 24 * rows, false, all);
  // the backend: the schedule's permutation buffer, evaluation records, factor storage
  if (!cuda) {
    add("schedule construction (one 4-byte array at a time)", 4 * tr, false, kTrain);
    add("evaluation records", 12 * te, false, kTrain);
  } else {
    add("host staging of packed records", 12 * (tr + te), false, kTrain);
    add("training records on device", 12 * tr, true, kTrain | kFinish);
    add("test records on device", 12 * te, true, kTrain | kFinish);
  }
  // the method's storage (methods.h); FP32 masters are FP32 rows here
  const MethodTraits& t = method_traits(cfg.method);
  const Storage st = t.storage;
  if (st == Storage::kFp32 || st == Storage::kFp32Master) {
    add("P, Q float32", 4 * k * rows, cuda, kTrain | kFinish, true);
  } else {
    add("P, Q float16", 2 * k * rows, cuda, kTrain | kFinish, true);
    if (st == Storage::kPerGroup)
      add("P, Q float32 (switched groups; worst case all)", 4 * k * rows, cuda, kTrain | kFinish, true);
  }
  // groups realised: at most one per row (widened: two int counts may sum past INT_MAX, a
  // fuzzed checkpoint's config found it)
  const auto side_groups = [](int g, int64_t rows_of_side) {
    return std::min<uint64_t>(static_cast<uint64_t>(std::max(g, 1)),
                              static_cast<uint64_t>(std::max<int64_t>(rows_of_side, 1)));
  };
  const uint64_t groups =
      t.switching == Switching::kGlobal ? 2 : side_groups(cfg.user_groups, m) + side_groups(cfg.item_groups, n);
  if (st == Storage::kPerGroup) {
    if (!cuda)
      add("q-error accumulators (per thread)", static_cast<uint64_t>(threads) * groups * (8 * k + 16), false, kTrain,
          true, true);
    else
      add("q-error accumulators (per block partials)", 64 * groups * (8 * k + 16), true, kTrain, true);
  }
  add("group tables", groups * 32, cuda, kTrain | kFinish);
  if (!cuda && t.competing())
    add("competing method scratch (per thread)", static_cast<uint64_t>(threads) * (40 * k + 512), false, kTrain, true,
        true);
  // finishing: backend factors() as float32, then the model in original ids
  add("result: factors as float32", 4 * k * rows, false, kFinish, true);
  add("result: model in original ids", 4 * k * rows, false, kFinish, true);
  add("runtime overhead (code, stacks, allocator)", (12u << 20) + static_cast<uint64_t>(threads) * (256u << 10), false,
      all, false, true);
  compute_peaks(&p);
  return p;
}

}  // namespace

namespace {
int64_t read_int_file(const char* path) {
  std::ifstream f(path);
  std::string v;
  if (!(f >> v) || v == "max") return -1;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  return end && *end == '\0' && x >= 0 ? x : -1;
}
}  // namespace

int64_t host_available_bytes() noexcept {
  int64_t avail = -1;
  try {
    std::ifstream f("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    std::string unit;
    while (f >> key >> kb) {
      std::getline(f, unit);
      if (key == "MemAvailable:") {
        avail = kb * 1024;
        break;
      }
    }
    // a cgroup (v2) limit below that, as in containers: what the limit still allows
    const int64_t lim = read_int_file("/sys/fs/cgroup/memory.max"),
                  cur = read_int_file("/sys/fs/cgroup/memory.current");
    if (lim >= 0 && cur >= 0) {
      const int64_t left = lim > cur ? lim - cur : 0;
      if (avail < 0 || left < avail) avail = left;
    }
    // MASCOT_MEMORY_LIMIT=BYTES caps it further (shared hosts, tests)
    if (const char* e = std::getenv("MASCOT_MEMORY_LIMIT"); e && *e) {
      char* end = nullptr;
      const long long x = std::strtoll(e, &end, 10);
      if (end && *end == '\0' && x >= 0 && (avail < 0 || x < avail)) avail = x;
    }
  } catch (...) {
  }
  return avail;
}

MemoryPlan plan_memory(const Context& ctx, const TrainConfig& cfg, int64_t n_users, int64_t n_items, int64_t n_train,
                       int64_t n_test, bool inputs_loaded) {
  MASCOT_CHECK_ARG(n_users >= 0 && n_items >= 0 && n_train >= 0 && n_test >= 0, "memory plan: negative sizes");
  const Device dev = detail::training_device(ctx, cfg);  // auto's CPU fallback included
  MemoryPlan p = build(dev, ctx.resolved_threads(), cfg, n_users, n_items, n_train, n_test, inputs_loaded);
  p.host_available = host_available_bytes();
  if (dev == Device::kCuda) {
    int64_t f = -1, t = -1;
    if (detail::cuda_memory_info(&f, &t)) {
      p.device_available = f;
      p.device_total = t;
    }
    // MASCOT_DEVICE_MEMORY_LIMIT=BYTES caps the free device memory (shared GPUs, tests)
    if (const char* e = std::getenv("MASCOT_DEVICE_MEMORY_LIMIT"); e && *e) {
      char* end = nullptr;
      const long long x = std::strtoll(e, &end, 10);
      if (end && *end == '\0' && x >= 0 && (p.device_available < 0 || x < p.device_available)) p.device_available = x;
    }
  }
  return p;
}

std::string MemoryPlan::to_text() const {
  std::ostringstream o;
  char line[256];
  std::snprintf(line, sizeof line,
                "memory plan: device %s, %d threads, k %d, %lld users, %lld items, %lld train, %lld test\n",
                to_string(device).c_str(), threads, k, static_cast<long long>(n_users), static_cast<long long>(n_items),
                static_cast<long long>(n_train), static_cast<long long>(n_test));
  o << line;
  std::snprintf(line, sizeof line, "  %-52s %6s %10s %16s\n", "item", "where", "phases", "bytes");
  o << line;
  for (const MemoryItem& it : items) {
    std::string ph;
    ph += (it.phases & kSetup) ? 's' : '-';
    ph += (it.phases & kTrain) ? 't' : '-';
    ph += (it.phases & kFinish) ? 'f' : '-';
    std::snprintf(line, sizeof line, "  %-52s %6s %10s %16llu  %s\n", it.name.c_str(), it.device ? "device" : "host",
                  ph.c_str(), static_cast<unsigned long long>(it.bytes), human_bytes(it.bytes).c_str());
    o << line;
  }
  std::snprintf(line, sizeof line, "  host peak   %llu bytes (%s); available %s\n",
                static_cast<unsigned long long>(host_peak), human_bytes(host_peak).c_str(),
                host_available < 0 ? "unknown"
                                   : (human_bytes(static_cast<uint64_t>(host_available)) +
                                      " (MemAvailable, cgroup limit, MASCOT_MEMORY_LIMIT)")
                                         .c_str());
  o << line;
  if (device == Device::kCuda) {
    std::snprintf(line, sizeof line, "  device peak %llu bytes (%s); free %s\n",
                  static_cast<unsigned long long>(device_peak), human_bytes(device_peak).c_str(),
                  device_available < 0 ? "unknown" : human_bytes(static_cast<uint64_t>(device_available)).c_str());
    o << line;
  }
  o << "  (phases: s setup, t training, f finishing; the peak is the largest phase total)\n";
  o << (fits() ? "  fits\n" : "  DOES NOT FIT: " + refusal() + "\n");
  return o.str();
}

std::string MemoryPlan::to_json() const {
  detail::JsonWriter j;
  j.begin_object();
  j.kv("device", to_string(device)).kv("threads", threads).kv("k", k);
  j.kv("n_users", n_users).kv("n_items", n_items).kv("n_train", n_train).kv("n_test", n_test);
  j.key("items").begin_array();
  for (const MemoryItem& it : items) {
    j.begin_object().kv("name", it.name).kv("bytes", static_cast<uint64_t>(it.bytes)).kv("device", it.device);
    j.key("phases").begin_array();
    if (it.phases & kSetup) j.value("setup");
    if (it.phases & kTrain) j.value("training");
    if (it.phases & kFinish) j.value("finishing");
    j.end_array().end_object();
  }
  j.end_array();
  j.kv("host_peak", static_cast<uint64_t>(host_peak)).kv("host_available", host_available);
  j.kv("device_peak", static_cast<uint64_t>(device_peak)).kv("device_available", device_available);
  j.kv("fits", fits()).kv("refusal", refusal());
  j.end_object();
  return j.str();
}

std::string MemoryPlan::refusal() const {
  if (fits()) return "";
  const bool dev_side = !device_fits();
  const uint64_t need = dev_side ? device_peak : host_peak;
  const int64_t have = dev_side ? device_available : host_available;
  // the three largest items of the failing side
  std::vector<const MemoryItem*> v;
  for (const MemoryItem& it : items)
    if (it.device == dev_side) v.push_back(&it);
  std::sort(v.begin(), v.end(), [](const MemoryItem* a, const MemoryItem* b) { return a->bytes > b->bytes; });
  std::string top;
  for (size_t x = 0; x < v.size() && x < 3; ++x) top += (x ? "; " : "") + v[x]->name + " " + human_bytes(v[x]->bytes);
  // largest k that fits (plans are monotone in k)
  int lo = 0, hi = k;           // lo fits (or 0), hi does not
  auto fits_at = [&](int kk) {  // k-dependent items scale linearly with k
    uint64_t peak = 0;
    for (unsigned ph : {kSetup, kTrain, kFinish}) {
      uint64_t s = 0;
      for (const MemoryItem& it : items) {
        if (it.device != dev_side || !(it.phases & ph)) continue;
        s += it.scales_with_k ? static_cast<uint64_t>(static_cast<double>(it.bytes) * kk / k) : it.bytes;
      }
      peak = std::max(peak, s);
    }
    return peak <= static_cast<uint64_t>(have);
  };
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (fits_at(mid))
      lo = mid;
    else
      hi = mid;
  }
  uint64_t per_thread = 0;
  for (const MemoryItem& it : items)
    if (it.device == dev_side && it.per_thread) per_thread += it.bytes;
  std::string advice;
  if (lo >= 1)
    advice = "use a smaller k (at most " + std::to_string(lo) + " fits)";
  else
    advice = "use a smaller dataset or a larger machine (even k=1 does not fit)";
  if (!dev_side && threads > 1 && per_thread * 10 > need) advice += ", fewer threads";
  if (dev_side) {
    advice += ", or train on the CPU (--device cpu)";
  }
  char b[64];
  std::snprintf(b, sizeof b, "%s", human_bytes(need).c_str());
  return std::string("job does not fit in ") + (dev_side ? "CUDA device memory" : "host memory") + ": needs " + b +
         " at peak (" + top + ") but " + human_bytes(static_cast<uint64_t>(have)) +
         (dev_side ? " is free on the device" : " is available") + "; " + advice +
         " (mascot_train --dry-run prints the plan)";
}

void check_memory_plan(const MemoryPlan& plan) {
  if (const char* s = std::getenv("MASCOT_SKIP_MEMORY_CHECK"); s && std::strcmp(s, "1") == 0) return;
  if (!plan.fits()) throw InsufficientMemory(plan.refusal());
}

}  // namespace mascot
