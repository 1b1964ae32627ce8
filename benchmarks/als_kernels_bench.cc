// mascot_als_kernels: the ALS solver's own CPU kernels against a BLAS/LAPACK, per row, on
// rows of a fixed length n (the measurement behind the choice in cpp/src/als/als_kernels.cc).
//
//   cmake -S . -B build -DMASCOT_BUILD_BENCH=ON && cmake --build build --target mascot_als_kernels
//   build/mascot_als_kernels [--blas PATH/libscipy_openblas64_*.so] [--k 64,128] [--n 10,30,100,300]
//       [--rows 2000] [--rounds 5]
//   build/mascot_als_kernels --csr PREFIX --k 64 [--threads 1] [--iterations 3] [--half 0|1]
//
// Both sides solve the same rows (one thread, explicit ratings, weighted lambda) from the same
// panel of gathered factor rows; the BLAS side is the usual way to write it with one: gather
// the rows into a panel, ssyrk (A = G^T G, lower), add the regularisation, and either spotrf +
// spotrs (exact) or 3 CG steps with ssymv.  Own CG runs in both forms (detail/als.h CgForm).  The BLAS is loaded with
// dlopen from the path given (the OpenBLAS that NumPy's wheels ship: python -c "import numpy, glob, os;
// print(glob.glob(os.path.dirname(numpy.__file__) + '.libs/libscipy_openblas*'))"), with
// its symbols' scipy_ prefix and 64 suffix, and held to one thread.  Rounds alternate the
// variants; the medians of the per-row thread CPU times are printed (ns per row).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "als/als.h"

using namespace mascot::als;

namespace {

std::vector<int> parse_ints(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

using blasint = long long;  // the ILP64 interface of scipy_openblas64
struct Blas {
  void (*ssyrk)(int, int, int, blasint, blasint, float, const float*, blasint, float, float*, blasint) = nullptr;
  int (*spotrf)(int, char, blasint, float*, blasint) = nullptr;
  int (*spotrs)(int, char, blasint, blasint, const float*, blasint, float*, blasint) = nullptr;
  void (*ssymv)(int, int, blasint, float, const float*, blasint, const float*, blasint, float, float*,
                blasint) = nullptr;
  void (*set_threads)(int) = nullptr;
  bool load(const char* path) {
    void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      std::fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
      return false;
    }
    ssyrk = reinterpret_cast<decltype(ssyrk)>(dlsym(h, "scipy_cblas_ssyrk64_"));
    spotrf = reinterpret_cast<decltype(spotrf)>(dlsym(h, "scipy_LAPACKE_spotrf64_"));
    spotrs = reinterpret_cast<decltype(spotrs)>(dlsym(h, "scipy_LAPACKE_spotrs64_"));
    ssymv = reinterpret_cast<decltype(ssymv)>(dlsym(h, "scipy_cblas_ssymv64_"));
    set_threads = reinterpret_cast<decltype(set_threads)>(dlsym(h, "scipy_openblas_set_num_threads64_"));
    if (!ssyrk || !spotrf || !spotrs || !ssymv) {
      std::fprintf(stderr, "%s lacks the scipy_*64_ symbols\n", path);
      return false;
    }
    if (set_threads) set_threads(1);
    return true;
  }
};
constexpr int kRowMajor = 101, kLower = 122, kNoTrans = 111, kTrans = 112;

/// Rows of exactly n entries over `cols` columns (random, distinct enough), ratings 1..5.
SideCsr make_rows(int64_t rows, int64_t cols, int n, std::mt19937_64& rng) {
  SideCsr R;
  R.rows = rows;
  R.cols = cols;
  R.indptr.resize(rows + 1);
  for (int64_t r = 0; r <= rows; ++r) R.indptr[r] = r * n;
  R.indices.resize(rows * n);
  R.values.resize(rows * n);
  for (auto& c : R.indices) c = static_cast<int32_t>(rng() % cols);
  for (auto& v : R.values) v = static_cast<float>(1 + rng() % 5);
  R.max_row = n;
  return R;
}

/// CPU time of this thread (the hosts are shared: wall time would count other processes' turns).
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// The BLAS way of solving every row (see the file comment); x into X.
void blas_solve(const Blas& B, const Options& o, const SideCsr& R, const std::vector<float>& Y, std::vector<float>* X) {
  const int k = o.k;
  std::vector<float> G(static_cast<size_t>(R.max_row) * k), A(static_cast<size_t>(k) * k), b(k), r(k), p(k), Ap(k);
  for (int64_t u = 0; u < R.rows; ++u) {
    const int64_t lo = R.indptr[u], n = R.indptr[u + 1] - lo;
    std::fill(b.begin(), b.end(), 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float* y = &Y[static_cast<size_t>(R.indices[lo + t]) * k];
      std::memcpy(&G[t * k], y, sizeof(float) * k);
      for (int j = 0; j < k; ++j) b[j] += R.values[lo + t] * y[j];
    }
    B.ssyrk(kRowMajor, kLower, kTrans, k, n, 1.0f, G.data(), k, 0.0f, A.data(), k);
    for (int j = 0; j < k; ++j) A[j * k + j] += o.lambda * static_cast<float>(n);
    float* x = &(*X)[static_cast<size_t>(u) * k];
    if (o.solver == Solver::kCholesky) {
      B.spotrf(kRowMajor, 'L', k, A.data(), k);
      std::memcpy(x, b.data(), sizeof(float) * k);
      B.spotrs(kRowMajor, 'L', k, 1, A.data(), k, x, 1);
    } else {
      B.ssymv(kRowMajor, kLower, k, -1.0f, A.data(), k, x, 1, 0.0f, r.data(), 1);
      float rs = 0;
      for (int j = 0; j < k; ++j) {
        r[j] += b[j];
        p[j] = r[j];
        rs += r[j] * r[j];
      }
      for (int it = 0; it < o.cg_steps && rs >= kCgTol; ++it) {
        B.ssymv(kRowMajor, kLower, k, 1.0f, A.data(), k, p.data(), 1, 0.0f, Ap.data(), 1);
        float pap = 0;
        for (int j = 0; j < k; ++j) pap += p[j] * Ap[j];
        const float a = rs / pap;
        float rn = 0;
        for (int j = 0; j < k; ++j) {
          x[j] += a * p[j];
          r[j] -= a * Ap[j];
          rn += r[j] * r[j];
        }
        for (int j = 0; j < k; ++j) p[j] = r[j] + rn / rs * p[j];
        rs = rn;
      }
    }
  }
}

}  // namespace

/// --csr PREFIX: the CSR of PREFIX.users / PREFIX.items (int64 rows, cols, nnz; int64 indptr;
/// int32 indices; values all 1), written by a script from real data: both sides of implicit ALS
/// iterations are timed (threads, k from the flags), for profiling on real row lengths.
SideCsr read_csr(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    std::perror(path.c_str());
    std::exit(1);
  }
  int64_t h[3];
  SideCsr R;
  if (std::fread(h, 8, 3, f) != 3) std::exit(1);
  R.rows = h[0];
  R.cols = h[1];
  R.indptr.resize(R.rows + 1);
  R.indices.resize(h[2]);
  if (std::fread(R.indptr.data(), 8, R.rows + 1, f) != static_cast<size_t>(R.rows + 1) ||
      std::fread(R.indices.data(), 4, h[2], f) != static_cast<size_t>(h[2]))
    std::exit(1);
  std::fclose(f);
  R.values.assign(h[2], 1.0f);
  for (int64_t r = 0; r < R.rows; ++r) R.max_row = std::max(R.max_row, R.indptr[r + 1] - R.indptr[r]);
  return R;
}

int run_csr(const std::string& prefix, int k, int threads, int iterations, bool half) {
  const SideCsr U = read_csr(prefix + ".users"), I = read_csr(prefix + ".items");
  Factors P, Q;
  P.resize(U.rows, k, half);
  Q.resize(I.rows, k, half);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  std::vector<float> v(static_cast<size_t>(std::max(U.rows, I.rows)) * k);
  for (auto& x : v) x = nd(rng);
  P.assign(v.data());
  Q.assign(v.data());
  Options o;
  o.k = k;
  o.lambda = 0.05f;
  o.implicit = true;
  o.weighted = false;
  o.factors_half = half;
  for (int it = 0; it < iterations; ++it) {
    const double t0 = thread_seconds();
    const auto w0 = std::chrono::steady_clock::now();
    solve_side(o, U, Q, &P, threads);
    const double t1 = thread_seconds();
    solve_side(o, I, P, &Q, threads);
    const double t2 = thread_seconds();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    std::printf("iteration %d: users %.3f s, items %.3f s (main thread CPU), wall %.3f s\n", it, t1 - t0, t2 - t1,
                wall);
  }
  return 0;
}

int main(int argc, char** argv) {
  const char* blas_path = nullptr;
  std::string csr;
  int threads = 1, iterations = 3;
  bool half = false;
  std::vector<int> ks = {64, 128}, ns = {10, 30, 100, 300};
  int64_t rows = 2000;
  int rounds = 5;
  for (int a = 1; a + 1 < argc; a += 2) {
    const std::string f = argv[a];
    if (f == "--blas")
      blas_path = argv[a + 1];
    else if (f == "--k")
      ks = parse_ints(argv[a + 1]);
    else if (f == "--n")
      ns = parse_ints(argv[a + 1]);
    else if (f == "--rows")
      rows = std::atoll(argv[a + 1]);
    else if (f == "--rounds")
      rounds = std::atoi(argv[a + 1]);
    else if (f == "--csr")
      csr = argv[a + 1];
    else if (f == "--threads")
      threads = std::atoi(argv[a + 1]);
    else if (f == "--iterations")
      iterations = std::atoi(argv[a + 1]);
    else if (f == "--half")
      half = std::atoi(argv[a + 1]) != 0;
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  if (!csr.empty()) return run_csr(csr, ks.front(), threads, iterations, half);
  Blas blas;
  const bool have_blas = blas_path && blas.load(blas_path);
  std::printf("ALS kernels (%s) vs %s, one thread, ns per row (median of %d rounds)\n", kernel_isa(),
              have_blas ? "OpenBLAS" : "no BLAS", rounds);
  std::printf(
      "| k | n | own cholesky | blas cholesky | own cg3 (Hermitian) | own cg3 (matrix-free) | blas cg3 |\n"
      "|---|---|---|---|---|---|---|\n");
  std::mt19937_64 rng(42);
  for (int k : ks) {
    for (int n : ns) {
      const int64_t cols = 20000;
      const SideCsr R = make_rows(rows, cols, n, rng);
      Factors Y, X;
      Y.resize(cols, k, false);
      X.resize(rows, k, false);
      std::normal_distribution<float> nd(0.0f, 0.3f);
      for (auto& v : Y.f32) v = nd(rng);
      std::vector<float> Xb(X.f32.size());
      // variants: own cholesky, blas cholesky, own cg Hermitian, own cg matrix-free, blas cg
      std::vector<double> t[5];
      for (int round = 0; round < rounds; ++round) {
        for (int var = 0; var < 5; ++var) {
          Options o;
          o.k = k;
          o.lambda = 0.05f;
          o.solver = var < 2 ? Solver::kCholesky : Solver::kCg;
          o.cg_form = var == 3 ? Options::CgForm::kMatrixFree : Options::CgForm::kHermitian;
          const bool use_blas = var == 1 || var == 4;
          if (use_blas && !have_blas) continue;
          std::fill(X.f32.begin(), X.f32.end(), 0.0f);
          std::fill(Xb.begin(), Xb.end(), 0.0f);
          const double t0 = thread_seconds();
          if (use_blas)
            blas_solve(blas, o, R, Y.f32, &Xb);
          else
            solve_side(o, R, Y, &X, 1);
          t[var].push_back((thread_seconds() - t0) * 1e9 / static_cast<double>(rows));
        }
      }
      auto med = [](std::vector<double> v) {
        if (v.empty()) return -1.0;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      std::printf("| %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n", k, n, med(t[0]), med(t[1]), med(t[2]), med(t[3]),
                  med(t[4]));
    }
  }
  return 0;
}
