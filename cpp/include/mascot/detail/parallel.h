// parallel_for: the core's one dynamic-schedule thread loop (synthetic data generation, the ALS
// solves).  Internal header.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace mascot::detail {

/// Runs body(worker, index) for index in [0, n) on up to `threads` threads (worker in
/// [0, threads) names the thread, for per-thread scratch), handing out indices one at a time in
/// order (dynamic scheduling: items may differ in cost by orders of magnitude).  Results must not
/// depend on which worker ran which index.  The first exception thrown by a body stops the
/// hand-out and is rethrown here after all threads have stopped.
template <class Body>
void parallel_for(int threads, int64_t n, const Body& body) {
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), n));
  if (workers <= 1) {
    for (int64_t i = 0; i < n; ++i) body(0, i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&](int worker) {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < n;) body(worker, i);
    } catch (...) {
      next.store(n);  // stop handing out work
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  for (int t = 1; t < workers; ++t) {
    try {
      pool.emplace_back(work, t);
    } catch (const std::system_error&) {
      break;  // out of threads: the ones running finish the work (results do not depend on it)
    }
  }
  work(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace mascot::detail
