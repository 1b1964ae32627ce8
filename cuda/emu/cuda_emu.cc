// The CUDA emulator's runtime (see cuda_emu.h for what it models): the fiber scheduler that
// runs a grid's threads, the warp collectives and block barrier, and the CUDA runtime API
// calls the backend makes (memory on the host heap, one emulated device, synchronous
// kernels).  Built only with -DMASCOT_CUDA=EMU, in place of libcudart.
//
// Scheduling: blocks run one after another; a block's threads are fibers (own stacks, a
// hand-written register switch on x86-64, ucontext elsewhere), resumed round-robin.  A fiber
// runs until it must wait (a warp collective whose other lanes have not arrived, a block
// barrier) or ends.  A full round in which no fiber moves is a deadlock, reported with what
// each waiting thread waits for, and the process aborts: on a GPU the same code would hang.
//
// Environment: CUDA_VISIBLE_DEVICES as the CUDA runtime reads it ("" hides the device: every
// call fails with cudaErrorNoDevice); MASCOT_CUDA_EMU_SMS (default 132, an H100 SXM's count) is the emulated SM count,
// which sizes the backend's grids (and so how many warps share an epoch's work);
// MASCOT_CUDA_EMU_MEMORY_MIB (default 8192) the emulated device memory, so out-of-memory
// paths can be exercised; MASCOT_CUDA_EMU_FAIL_ALLOC=N fails the N-th cudaMalloc (fault
// injection: scripts/cuda_emu_faults.sh); MASCOT_CUDA_EMU_LEAK_CHECK=1 makes device memory left
// allocated at exit a report and exit status 99.  Built with -fsanitize=address (scripts/
// sanitize.sh cuda-emu), the stack switches are announced to ASan.
// Driver and fault injection (scripts/cuda_emu_check.sh): MASCOT_CUDA_EMU_DRIVER=V is the
// driver's CUDA version (cudaDriverGetVersion; default: the runtime's own, CUDART_VERSION);
// below the runtime's, every call fails with cudaErrorInsufficientDriver as CUDA's does (0: no
// driver installed).  MASCOT_CUDA_EMU_FAULT_LAUNCH=N makes the process's N-th kernel launch a
// device fault: the kernel does not run, and from then on every call but the device queries
// fails with cudaErrorIllegalAddress, which cudaGetLastError does not clear (a sticky error:
// on a GPU the context is unusable until the process ends).
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#ifndef MASCOT_CUDA_EMU
#error "cuda_emu.cc is only for the emulated CUDA build (-DMASCOT_CUDA=EMU)"
#endif
#include "cuda_emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// AddressSanitizer builds (scripts/sanitize.sh cuda-emu): ASan must be told of every stack
// switch, or it takes a fiber's stack for a corrupted one (and loses its fake stacks).
#if defined(__SANITIZE_ADDRESS__)
#define MASCOT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MASCOT_EMU_ASAN 1
#endif
#endif
#if defined(MASCOT_EMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// ThreadSanitizer builds (scripts/sanitize.sh cuda-emu-race): every emulated thread is a TSan
// fiber, and switching between fibers implies no ordering, so TSan sees the threads of a block
// as concurrent, as they are on a GPU.  What orders them is what orders them on a GPU: a
// launch (everything before it happens before every thread of the grid, every thread before
// whatever follows it), __syncthreads (the block's threads), a warp collective (the warp's
// lanes); and, unlike a GPU, one block before the next (see run_grid), so races between
// threads of one block are what is checked.  Atomics are real atomics there.  So a missing
// barrier between a shared-memory write and another thread's read is a TSan report: the
// emulator's stand-in for compute-sanitizer racecheck.
// This file itself is compiled without TSan instrumentation (CMakeLists.txt): the scheduler's
// own state passes from fiber to fiber with the switch, which TSan cannot see as ordering, so
// only the kernels' accesses are checked.  The build says it is a TSan build with
// -DMASCOT_EMU_TSAN=1 (scripts/sanitize.sh).
#if defined(MASCOT_EMU_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#define MASCOT_TSAN_ACQUIRE(a) __tsan_acquire(a)
#define MASCOT_TSAN_RELEASE(a) __tsan_release(a)
#else
#define MASCOT_TSAN_ACQUIRE(a) ((void)0)
#define MASCOT_TSAN_RELEASE(a) ((void)0)
#endif

namespace mascot_emu {
namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "mascot CUDA emulator: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

long env_long(const char* name, long dflt, long lo, long hi) {
  const char* s = std::getenv(name);
  if (!s || !*s) return dflt;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < lo || v > hi)
    die(std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (got '" +
        s + "')");
  return v;
}

// ---------------------------------------------------------------- fibers

constexpr size_t kStack = 256 * 1024;  // per thread; a guard page below it

struct Fiber {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  char* mem = nullptr;  // mapping: guard page + stack
  ThreadCoords c{};
  int warp = 0, lane = 0;
  bool done = false;
  uint64_t wseq = 0;            // warp collectives entered
  uint64_t bseq = 0;            // block barriers entered
  const char* waits = nullptr;  // what it waits at (diagnostics)
  void* tsan = nullptr;         // its TSan fiber (TSan builds)
};

/// A synchronisation point that threads pass in a numbered sequence (a warp's collectives,
/// the block's barriers), from 1 per launch: `open` is the one threads are entering (`count`
/// of them have), `completed` the last one every taking-part thread entered.
struct Gate {
  uint64_t open = 0, completed = 0;
  int count = 0;
};

/// A warp's collectives; slot[seq & 1] holds the values exchanged by collective seq.
struct Warp {
  Gate gate;
  const char* what = nullptr;
  uint64_t slot[2][32];
};

struct Sched {
  Gate barrier;  // the block's __syncthreads, over the threads that have not ended
  std::vector<Fiber> f;
  int nthreads = 0, nwarps = 0;
  std::vector<Warp> warps;
  Fiber* cur = nullptr;
  int alive = 0;  // threads of the running block that have not ended
  int idle = 0;   // hand-overs in a row in which no thread moved: > alive means a deadlock
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
#if defined(__x86_64__)
  void* main_sp = nullptr;
#else
  ucontext_t main_uc;
#endif
  // the launching thread's stack (ASan builds: learnt by thread 0's first switch, which always
  // comes from the launching thread)
  const void* main_stack = nullptr;
  size_t main_stack_size = 0;
  void* main_tsan = nullptr;           // the launching thread's TSan fiber
  char launch_sync = 0, end_sync = 0;  // TSan sync objects: launch -> threads -> after the launch
};
Sched g_s;
std::mutex g_device;  // one emulated device: launches run one at a time
thread_local bool t_in_kernel = false;

}  // namespace
}  // namespace mascot_emu

#if defined(__x86_64__)
// mascot_emu_switch(&from_sp, to_sp): saves the callee-saved registers on the current stack,
// stores the stack pointer in *from_sp, switches to to_sp and restores its registers.
extern "C" void mascot_emu_switch(void** from_sp, void* to_sp);
asm(R"(
  .text
  .globl mascot_emu_switch
  .hidden mascot_emu_switch
  .type mascot_emu_switch, @function
mascot_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mascot_emu_switch, .-mascot_emu_switch
)");
#endif

namespace mascot_emu {
namespace {

[[noreturn]] void deadlock();

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

// Switches from fiber `from` (nullptr: the launching thread) to fiber `to` (nullptr: back to
// the launching thread).  `from_ends`: `from` has ended and is never resumed.
void raw_switch(Fiber* from, Fiber* to, bool from_ends = false) {
#if defined(MASCOT_EMU_ASAN)
  void* fake = nullptr;  // from's fake stack (detect_stack_use_after_return), kept while it sleeps
  __sanitizer_start_switch_fiber(from_ends ? nullptr : &fake, to ? to->mem + page_size() : g_s.main_stack,
                                 to ? kStack : g_s.main_stack_size);
#else
  (void)from_ends;
#endif
#if defined(MASCOT_EMU_TSAN)
  __tsan_switch_to_fiber(to ? to->tsan : g_s.main_tsan, 1 /* __tsan_switch_to_fiber_no_sync */);
#endif
#if defined(__x86_64__)
  mascot_emu_switch(from ? &from->sp : &g_s.main_sp, to ? to->sp : g_s.main_sp);
#else
  swapcontext(from ? &from->uc : &g_s.main_uc, to ? &to->uc : &g_s.main_uc);
#endif
#if defined(MASCOT_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);  // `from` runs again
#endif
}

/// The next thread of the block after the current one that has not ended (round-robin).
Fiber* next_alive() {
  const int n = g_s.nthreads;
  const int t = static_cast<int>(g_s.cur - g_s.f.data());
  for (int s = 1; s <= n; ++s) {
    Fiber& o = g_s.f[(t + s) % n];
    if (!o.done) return &o;
  }
  return nullptr;
}

void moved() { g_s.idle = 0; }
void wait_turn();

/// The current thread enters point `seq` of gate `g`; returns whether it is the first to.
bool enter(Gate& g, uint64_t seq) {
  if (g.open == seq) return false;
  g.open = seq;
  g.count = 0;
  return true;
}
/// ... and waits there until `needed` threads have entered it.
void pass(Gate& g, uint64_t seq, int needed, const char* what) {
  g_s.cur->waits = what;
  moved();
  MASCOT_TSAN_RELEASE(&g);  // what this thread did before the gate ...
  if (++g.count >= needed) g.completed = seq;
  while (g.completed < seq) wait_turn();  // a thread that ends instead: deadlock() names it
  MASCOT_TSAN_ACQUIRE(&g);                // ... happens before what every thread passing it does after
  g_s.cur->waits = nullptr;
  moved();
}

/// The current thread must wait: hands over to the next thread directly (no trip through the
/// launching thread: one switch per wait).  Callers loop, re-checking what they wait for.
void wait_turn() {
  Fiber* me = g_s.cur;
  Fiber* nx = next_alive();
  if (nx == me || ++g_s.idle > g_s.alive) deadlock();  // a full round and nobody moved
  g_s.cur = nx;
  raw_switch(me, nx);
}

extern "C" [[noreturn]] void fiber_entry() {
#if defined(MASCOT_EMU_ASAN)
  {  // a fiber's first run: the switch into it completes here, not in raw_switch
    const void* from_stack = nullptr;
    size_t from_size = 0;
    __sanitizer_finish_switch_fiber(nullptr, &from_stack, &from_size);
    if (g_s.cur == &g_s.f[0]) {  // thread 0 is always started by the launching thread
      g_s.main_stack = from_stack;
      g_s.main_stack_size = from_size;
    }
  }
#endif
  MASCOT_TSAN_ACQUIRE(&g_s.launch_sync);  // what the host did before the launch
  moved();
  g_s.body(g_s.ctx);
  Fiber* me = g_s.cur;
  MASCOT_TSAN_RELEASE(&g_s.end_sync);  // ... and this thread's work, before what follows the launch
  me->done = true;
  --g_s.alive;
  moved();
  Gate& b = g_s.barrier;  // a barrier the others wait at may now be complete
  if (b.open > b.completed && b.count >= g_s.alive) b.completed = b.open;
  Fiber* nx = g_s.alive > 0 ? next_alive() : nullptr;
  g_s.cur = nx;
  raw_switch(me, nx, true);  // the last thread of the block returns to the launching thread
  die("a finished thread was resumed");
}

void start_fiber(Fiber& f) {
  const size_t page = page_size();
  if (!f.mem) {
    void* m = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) die("cannot map a thread stack");
    mprotect(m, page, PROT_NONE);  // stack overflow: a fault, not silent corruption
    f.mem = static_cast<char*>(m);
  }
#if defined(MASCOT_EMU_ASAN)
  // a reused stack: the frames of its last thread never returned, so their redzones are
  // still poisoned
  ASAN_UNPOISON_MEMORY_REGION(f.mem + page, kStack);
#endif
  char* top = f.mem + page + kStack;
#if defined(__x86_64__)
  // frame popped by mascot_emu_switch: r15 r14 r13 r12 rbx rbp, then `ret` into fiber_entry
  // with rsp = top - 8 (the alignment a call leaves)
  auto* sp = reinterpret_cast<void**>(top - 64);
  for (int r = 0; r < 6; ++r) sp[r] = nullptr;
  sp[6] = reinterpret_cast<void*>(&fiber_entry);
  sp[7] = nullptr;
  f.sp = sp;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.mem + page;
  f.uc.uc_stack.ss_size = kStack;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&fiber_entry), 0);
#endif
}

std::string where(const Fiber& f) {
  return "block " + std::to_string(f.c.block.x) + " thread " + std::to_string(f.c.thread.x) + " (warp " +
         std::to_string(f.warp) + " lane " + std::to_string(f.lane) + ")";
}

/// "0-15, 17" for the lanes set in `m`.
std::string lanes(uint32_t m) {
  std::string out;
  for (int l = 0; l < 32;) {
    if (!(m >> l & 1)) {
      ++l;
      continue;
    }
    int e = l;
    while (e + 1 < 32 && (m >> (e + 1) & 1)) ++e;
    out += (out.empty() ? "" : ", ") + std::to_string(l) + (e > l ? "-" + std::to_string(e) : "");
    l = e + 1;
  }
  return out;
}

[[noreturn]] void deadlock() {
  std::string msg = "deadlock: no thread can move (on a GPU this kernel would hang).";
  int shown = 0;
  for (int w = 0; w < g_s.nwarps && shown < 4; ++w) {
    std::map<std::string, uint32_t> by;  // what -> lanes
    bool waiting = false;
    for (int l = 0; l < 32 && w * 32 + l < g_s.nthreads; ++l) {
      const Fiber& f = g_s.f[w * 32 + l];
      const std::string what = f.done ? "have exited" : f.waits ? std::string("wait at ") + f.waits : "are running";
      waiting = waiting || (!f.done && f.waits);
      by[what] |= 1u << l;
    }
    if (!waiting) continue;
    ++shown;
    msg += "\n  block " + std::to_string(g_s.f[w * 32].c.block.x) + " warp " + std::to_string(w) + ":";
    for (const auto& [what, m] : by) msg += " lanes " + lanes(m) + " " + what + ";";
  }
  die(msg);
}

}  // namespace

void misaligned(const void* p, unsigned bytes, const char* what) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%p", p);
  die(std::string(what) + " at " + buf + ", not aligned to " + std::to_string(bytes) + " bytes (" +
      (g_s.cur ? where(*g_s.cur) : std::string("outside a kernel")) + "): a misaligned address fault on a GPU");
}

const ThreadCoords& coords() {
  if (!g_s.cur) die("a CUDA built-in variable was read outside a kernel");
  return g_s.cur->c;
}

const uint64_t* warp_exchange(unsigned mask, uint64_t v, const char* what) {
  Fiber& f = *g_s.cur;
  if (mask != 0xFFFFFFFFu)
    die(std::string(what) + " with a partial mask: the emulator models full-warp collectives only");
  if ((f.warp + 1) * 32 > g_s.nthreads) die(std::string(what) + " in a partial warp (block size not a multiple of 32)");
  Warp& w = g_s.warps[f.warp];
  const uint64_t seq = ++f.wseq;  // this lane's collective number; the warp's open one is completed + 1
  if (enter(w.gate, seq)) {
    w.what = what;
  } else if (w.what != what && std::strcmp(w.what, what) != 0) {
    die(where(f) + " is at " + what + " while other lanes of its warp are at " + w.what +
        " (divergent warp collectives)");
  }
  w.slot[seq & 1][f.lane] = v;
  pass(w.gate, seq, 32, what);
  // the buffer of parity seq & 1 is rewritten only by collective seq + 2, which no lane can
  // open before every lane has entered seq + 1, i.e. has read this one
  return w.slot[seq & 1];
}

void sync_block() {
  const uint64_t seq = ++g_s.cur->bseq;
  enter(g_s.barrier, seq);
  pass(g_s.barrier, seq, g_s.alive, "__syncthreads");  // threads that have ended do not take part
}

void run_grid(dim3 grid, dim3 block, void (*body)(void*), void* ctx) {
  if (t_in_kernel) die("a kernel launched from inside a kernel (dynamic parallelism is not emulated)");
  if (launch_refused() != cudaSuccess) return;  // no device or driver, or a fault: nothing runs
  std::lock_guard<std::mutex> lock(g_device);
  if (grid.y != 1 || grid.z != 1 || block.y != 1 || block.z != 1)
    die("only one-dimensional grids and blocks are emulated");
  if (block.x < 1 || block.x > 1024) die("block size " + std::to_string(block.x) + " outside [1, 1024]");
  if (grid.x < 1) die("empty grid");
  const int n = static_cast<int>(block.x);
  g_s.nthreads = n;
  g_s.nwarps = (n + 31) / 32;
  if (g_s.f.size() < static_cast<size_t>(n)) g_s.f.resize(n);  // grows only: stacks are reused
  g_s.body = body;
  g_s.ctx = ctx;
  t_in_kernel = true;
#if defined(MASCOT_EMU_TSAN)
  g_s.main_tsan = __tsan_get_current_fiber();
  for (int t = 0; t < n; ++t)
    if (!g_s.f[t].tsan) g_s.f[t].tsan = __tsan_create_fiber(0);
#endif
  for (unsigned b = 0; b < grid.x; ++b) {
    // TSan: blocks are ordered one after another (a __shared__ variable is one static here,
    // shared by the blocks, while a GPU gives each block its own), so only races within a
    // block are reported -- racecheck's scope
    MASCOT_TSAN_ACQUIRE(&g_s.end_sync);
    MASCOT_TSAN_RELEASE(&g_s.launch_sync);
    g_s.warps.assign(static_cast<size_t>(g_s.nwarps), Warp{});
    g_s.barrier = Gate{};
    for (int t = 0; t < n; ++t) {
      Fiber& f = g_s.f[t];
      f.c.thread = uint3{static_cast<unsigned>(t), 0, 0};
      f.c.block = uint3{b, 0, 0};
      f.c.block_dim = block;
      f.c.grid_dim = grid;
      f.warp = t / 32;
      f.lane = t % 32;
      f.done = false;
      f.wseq = f.bseq = 0;
      f.waits = nullptr;
      start_fiber(f);
    }
    g_s.alive = n;
    g_s.idle = 0;
    g_s.cur = &g_s.f[0];
    raw_switch(nullptr, &g_s.f[0]);  // returns when the block's last thread has ended
  }
  MASCOT_TSAN_ACQUIRE(&g_s.end_sync);
  g_s.cur = nullptr;
  t_in_kernel = false;
}

}  // namespace mascot_emu

// ---------------------------------------------------------------- CUDA runtime API

namespace {

struct Device {
  std::mutex mu;
  std::map<void*, size_t> allocs;
  size_t used = 0;
  long mallocs = 0;   // cudaMalloc calls so far (MASCOT_CUDA_EMU_FAIL_ALLOC)
  long launches = 0;  // kernel launches so far (MASCOT_CUDA_EMU_FAULT_LAUNCH)
  cudaError_t last = cudaSuccess;
  cudaError_t sticky = cudaSuccess;  // a device fault: every later call fails with it
  // MASCOT_CUDA_EMU_LEAK_CHECK=1 (scripts/sanitize.sh cuda-emu): device memory still allocated
  // when the process exits is reported and the exit status becomes 99, as compute-sanitizer
  // --leak-check full --error-exitcode 99 does on a GPU
  ~Device() {
    const char* c = std::getenv("MASCOT_CUDA_EMU_LEAK_CHECK");
    if (!c || std::strcmp(c, "1") != 0 || allocs.empty()) return;
    std::fprintf(stderr, "mascot CUDA emulator: device memory leak: %zu allocation(s), %zu bytes not freed at exit\n",
                 allocs.size(), used);
    std::fflush(stderr);
    _exit(99);
  }
};
Device& dev() {
  static Device d;
  return d;
}
size_t memory_bytes() {
  static const size_t b = static_cast<size_t>(mascot_emu::env_long("MASCOT_CUDA_EMU_MEMORY_MIB", 8192, 16, 1 << 22))
                          << 20;
  return b;
}
int sms() {
  static const int s = static_cast<int>(mascot_emu::env_long("MASCOT_CUDA_EMU_SMS", 132, 1, 1024));
  return s;
}
cudaError_t fail(cudaError_t e) {
  dev().last = e;
  return e;
}
int driver_version() {
  static const int v = static_cast<int>(mascot_emu::env_long("MASCOT_CUDA_EMU_DRIVER", CUDART_VERSION, 0, 99999));
  return v;
}
/// Whether the one emulated device is visible: CUDA_VISIBLE_DEVICES as the CUDA runtime reads
/// it (unset: every device; otherwise the listed ordinals up to the first invalid one, so the
/// device is visible only when the list starts with 0; "" or "-1" hides it).  Hidden, every
/// call fails with cudaErrorNoDevice, as on a machine without a GPU: the backend's no-device
/// paths run on the emulator too.
bool visible() {
  static const bool v = [] {
    const char* s = std::getenv("CUDA_VISIBLE_DEVICES");
    if (!s) return true;
    while (*s == ' ') ++s;
    return s[0] == '0' && (s[1] == '\0' || s[1] == ',' || s[1] == ' ');
  }();
  return v;
}

}  // namespace

/// The error of a device query (count, properties): no driver, an old one, or no device.
cudaError_t query_error() {
  if (driver_version() < CUDART_VERSION) return fail(cudaErrorInsufficientDriver);
  return visible() ? cudaSuccess : fail(cudaErrorNoDevice);
}
/// The error of any other call: the query's, or a sticky fault.
cudaError_t call_error() {
  if (const cudaError_t e = query_error(); e != cudaSuccess) return e;
  return dev().sticky != cudaSuccess ? fail(dev().sticky) : cudaSuccess;
}

cudaError_t mascot_emu::launch_refused() {
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  static const long fault_at = mascot_emu::env_long("MASCOT_CUDA_EMU_FAULT_LAUNCH", 0, 0, 1L << 40);
  if (++dev().launches == fault_at) {
    dev().sticky = cudaErrorIllegalAddress;
    return fail(cudaErrorIllegalAddress);
  }
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
  *v = driver_version();
  return cudaSuccess;
}

struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

cudaError_t cudaGetDeviceCount(int* n) {
  const cudaError_t e = query_error();
  *n = e == cudaSuccess ? 1 : 0;
  return e;
}
cudaError_t cudaGetDevice(int* id) {
  if (const cudaError_t e = query_error(); e != cudaSuccess) return e;
  *id = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int id) {
  if (const cudaError_t e = query_error(); e != cudaSuccess) return e;
  if (id != 0) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "MASCOT CUDA emulator (CPU, not a GPU)");
  p->major = MASCOT_CUDA_EMU_ARCH / 100;
  p->minor = MASCOT_CUDA_EMU_ARCH / 10 % 10;
  p->multiProcessorCount = sms();
  p->totalGlobalMem = memory_bytes();
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int id) {
  if (const cudaError_t e = query_error(); e != cudaSuccess) return e;
  if (id != 0) return fail(cudaErrorInvalidDevice);
  if (attr == cudaDevAttrMultiProcessorCount) {
    *v = sms();
    return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  if (!func) return fail(cudaErrorInvalidDeviceFunction);
  std::memset(attr, 0, sizeof *attr);
  attr->maxThreadsPerBlock = 1024;  // nothing else is modelled (no registers, no module loading)
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, const void*, int block, size_t) {
  if (block < 1 || block > 1024) return fail(cudaErrorInvalidValue);
  *n = 2048 / block < 32 ? 2048 / block
                         : 32;  // thread-limited, as for kernels without a register or shared-memory limit
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* n, const void* f, int block, size_t smem,
                                                                   unsigned int) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, f, block, smem);
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total) {
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  std::lock_guard<std::mutex> l(dev().mu);
  *total = memory_bytes();
  *free_b = memory_bytes() - dev().used;
  return cudaSuccess;
}
/// MASCOT_CUDA_EMU_FAIL_ALLOC=N (fault injection): the process's N-th cudaMalloc fails with
/// cudaErrorMemoryAllocation, so that every allocation's failure path can be run in turn
/// (scripts/cuda_emu_check.sh, scripts/sanitize.sh cuda-emu).  0 (default): never.
static long fail_alloc_at() {
  static const long n = mascot_emu::env_long("MASCOT_CUDA_EMU_FAIL_ALLOC", 0, 0, 1L << 40);
  return n;
}

cudaError_t cudaMalloc(void** p, size_t n) {
  *p = nullptr;
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  std::lock_guard<std::mutex> l(dev().mu);
  if (++dev().mallocs == fail_alloc_at()) return fail(cudaErrorMemoryAllocation);
  if (n == 0) return cudaSuccess;
  if (n > memory_bytes() - dev().used) return fail(cudaErrorMemoryAllocation);
  void* m = nullptr;
  if (posix_memalign(&m, 256, n) != 0) return fail(cudaErrorMemoryAllocation);
  std::memset(m, 0xA5, n);  // device memory is uninitialised: never silently zero
  dev().allocs[m] = n;
  dev().used += n;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> l(dev().mu);
  auto it = dev().allocs.find(p);
  if (it == dev().allocs.end()) return fail(cudaErrorInvalidValue);
  dev().used -= it->second;
  dev().allocs.erase(it);
  std::free(p);
  return dev().sticky;  // freed, but the fault is still reported
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  if (const cudaError_t e = call_error(); e != cudaSuccess) return e;
  if (n) std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return call_error(); }
cudaError_t cudaGetLastError() {
  const cudaError_t e = dev().last;
  dev().last = dev().sticky;  // a sticky fault is never cleared
  return e;
}
cudaError_t cudaPeekAtLastError() { return dev().last; }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    default:
      return "unknown error (emulator)";
  }
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (const cudaError_t err = call_error(); err != cudaSuccess) return err;
  e->t = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e->recorded ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidValue);
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
