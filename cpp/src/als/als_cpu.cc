// The ALS solver's CPU driver of one side (als.h): CSR building, factor storage, the thread
// pool over rows, Y^T Y, and the kernel table of this host's instruction set (cpu/host_isa.h).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <numeric>
#include <system_error>
#include <thread>

#include "als/als.h"
#include "cpu/host_isa.h"
#include "mascot/detail/parallel.h"
#include "mascot/detail/half.h"
#include "mascot/error.h"

namespace mascot::als {

namespace generic {
extern const KernelTable kTable;
}
#if defined(MASCOT_X86_DISPATCH)
namespace avx2 {
extern const KernelTable kTable;
}
namespace avx512 {
extern const KernelTable kTable;
}
#endif

namespace {

/// The table of this host's instruction set, as the SGD kernels decide it (cpu/host_isa.h).
const KernelTable& pick() {
#if defined(MASCOT_X86_DISPATCH)
  switch (cpu::host_isa()) {
    case cpu::Isa::kAvx512:
      return avx512::kTable;
    case cpu::Isa::kAvx2:
      return avx2::kTable;
    case cpu::Isa::kGeneric:
      break;
  }
#endif
  return generic::kTable;
}

/// Y^T Y summed in blocks of this many rows, the blocks reduced in double in block order.
constexpr int64_t kGramBlock = 8192;
/// Rows handed to a worker at a time.
constexpr int64_t kRowBlock = 32;

/// RowArgs::resident_bytes: kResidentBytes, or MASCOT_ALS_RESIDENT_BYTES (tests: the path of
/// rows too long to keep, on small data).
size_t resident_bytes() {
  static const size_t v = [] {
    const char* e = std::getenv("MASCOT_ALS_RESIDENT_BYTES");
    return e && *e ? static_cast<size_t>(std::strtoull(e, nullptr, 10)) : kResidentBytes;
  }();
  return v;
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& t = pick();
  return t;
}
const char* kernel_isa() { return kernels().isa; }

void Workspace::reserve(int kp) {
  const size_t p = static_cast<size_t>(kp);
  panel.assign(kChunk * p, 0.0f);
  wpanel.assign(kChunk * p, 0.0f);
  resident.assign(1024 * p, 0.0f);  // grown to the longest row met (als_kernels.cc, kResidentBytes)
  coef.assign(kChunk, 0.0f);
  A.assign(p * p, 0.0f);
  A16.assign(p * p, 0);
  vec.assign(6 * p, 0.0f);
}

void Factors::resize(int64_t r, int kk, bool h) {
  rows = r;
  k = kk;
  half = h;
  const size_t n = static_cast<size_t>(r) * static_cast<size_t>(kk);
  if (h) {
    f16.assign(n, 0);
    f32.clear();
  } else {
    f32.assign(n, 0.0f);
    f16.clear();
  }
}

void Factors::row(int64_t r, float* out) const {
  const size_t o = static_cast<size_t>(r) * static_cast<size_t>(k);
  for (int j = 0; j < k; ++j) out[j] = half ? detail::half_to_float(f16[o + j]) : f32[o + j];
}

std::vector<float> Factors::to_f32() const {
  if (!half) return f32;
  std::vector<float> v(f16.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = detail::half_to_float(f16[i]);
  return v;
}

void Factors::assign(const float* v) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(k);
  if (half)
    for (size_t i = 0; i < n; ++i) f16[i] = detail::float_to_half_rn(v[i]);
  else
    std::copy(v, v + n, f32.begin());
}

void validate(const Options& o) {
  MASCOT_CHECK_ARG(o.k >= 1 && o.k <= 4096, "k must be between 1 and 4096 (got " + std::to_string(o.k) + ")");
  MASCOT_CHECK_ARG(std::isfinite(o.lambda) && o.lambda > 0.0f,
                   "lambda (ALS regularization) must be > 0 (got " + std::to_string(o.lambda) + ")");
  MASCOT_CHECK_ARG(std::isfinite(o.alpha) && o.alpha > 0.0f, "alpha must be > 0 (got " + std::to_string(o.alpha) + ")");
  MASCOT_CHECK_ARG(o.cg_steps >= 1 && o.cg_steps <= 1024,
                   "cg_steps must be between 1 and 1024 (got " + std::to_string(o.cg_steps) + ")");
}

SideCsr build_csr(int64_t rows, int64_t cols, const int32_t* row_ids, const int32_t* col_ids, const float* values,
                  int64_t n, bool drop_zeros) {
  SideCsr c;
  c.rows = rows;
  c.cols = cols;
  c.indptr.assign(static_cast<size_t>(rows) + 1, 0);
  for (int64_t t = 0; t < n; ++t)
    MASCOT_CHECK_ARG(row_ids[t] >= 0 && row_ids[t] < rows && col_ids[t] >= 0 && col_ids[t] < cols,
                     "ALS: an id is out of range at entry " + std::to_string(t));
  for (int64_t t = 0; t < n; ++t)
    if (!(drop_zeros && values[t] == 0.0f)) ++c.indptr[static_cast<size_t>(row_ids[t]) + 1];
  for (int64_t r = 0; r < rows; ++r) {
    c.max_row = std::max(c.max_row, c.indptr[r + 1]);
    c.indptr[r + 1] += c.indptr[r];
  }
  const int64_t nnz = c.indptr[rows];
  c.indices.resize(static_cast<size_t>(nnz));
  c.values.resize(static_cast<size_t>(nnz));
  std::vector<int64_t> at(c.indptr.begin(), c.indptr.end() - 1);
  for (int64_t t = 0; t < n; ++t) {
    if (drop_zeros && values[t] == 0.0f) continue;
    const int64_t pos = at[row_ids[t]]++;
    c.indices[pos] = col_ids[t];
    c.values[pos] = values[t];
  }
  // columns ascending within a row (a stable order: ties keep the input order), so the
  // gathers walk the fixed side forwards and the sums do not depend on the input's order
  std::vector<std::pair<int32_t, float>> tmp;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t lo = c.indptr[r], hi = c.indptr[r + 1];
    if (std::is_sorted(c.indices.begin() + lo, c.indices.begin() + hi)) continue;
    tmp.clear();
    for (int64_t t = lo; t < hi; ++t) tmp.emplace_back(c.indices[t], c.values[t]);
    std::stable_sort(tmp.begin(), tmp.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (int64_t t = lo; t < hi; ++t) {
      c.indices[t] = tmp[t - lo].first;
      c.values[t] = tmp[t - lo].second;
    }
  }
  return c;
}

std::vector<float> gram(const Factors& Y, int threads) {
  const int k = Y.k, kp = padded_k(k);
  const size_t kk = static_cast<size_t>(kp) * kp;
  const int64_t blocks = (Y.rows + kGramBlock - 1) / kGramBlock;
  std::vector<float> part(static_cast<size_t>(blocks) * kk, 0.0f);
  std::vector<Workspace> ws(static_cast<size_t>(std::max(threads, 1)));
  const KernelTable& kt = kernels();
  detail::parallel_for(threads, blocks, [&](int w, int64_t bl) {
    if (ws[w].panel.empty()) ws[w].reserve(kp);
    kt.gram_rows(Y.data(), Y.half, k, kp, bl * kGramBlock, std::min(Y.rows, (bl + 1) * kGramBlock),
                 part.data() + static_cast<size_t>(bl) * kk, ws[w]);
  });
  std::vector<double> sum(kk, 0.0);
  for (int64_t bl = 0; bl < blocks; ++bl)
    for (size_t e = 0; e < kk; ++e) sum[e] += part[static_cast<size_t>(bl) * kk + e];
  std::vector<float> out(static_cast<size_t>(k) * k);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j)  // the lower triangle is the one computed (mirror it)
      out[static_cast<size_t>(i) * k + j] =
          static_cast<float>(i >= j ? sum[static_cast<size_t>(i) * kp + j] : sum[static_cast<size_t>(j) * kp + i]);
  return out;
}

namespace {
/// Y^T Y zero-padded to kp x kp (implicit), or empty.
std::vector<float> padded_gram(const Options& o, const Factors& Y, int threads) {
  if (!o.implicit) return {};
  const int kp = padded_k(o.k);
  const std::vector<float> g = gram(Y, threads);
  std::vector<float> yty(static_cast<size_t>(kp) * kp, 0.0f);
  for (int i = 0; i < o.k; ++i)
    std::copy(g.begin() + static_cast<size_t>(i) * o.k, g.begin() + static_cast<size_t>(i + 1) * o.k,
              yty.begin() + static_cast<size_t>(i) * kp);
  return yty;
}
void check_shapes(const Options& o, const SideCsr& R, const Factors& Y, const Factors& X) {
  validate(o);
  MASCOT_CHECK_ARG(R.rows == X.rows && R.cols == Y.rows, "ALS: the ratings' shape does not match the factors");
  MASCOT_CHECK_ARG(X.k == o.k && Y.k == o.k, "ALS: the factors' k does not match the options");
  MASCOT_CHECK_ARG(X.half == o.factors_half && Y.half == o.factors_half,
                   "ALS: the factors' storage does not match the options");
}
}  // namespace

void hermitian(const Options& o, const SideCsr& R, const Factors& Y, std::vector<float>* A, std::vector<float>* b) {
  Factors none;
  none.resize(R.rows, o.k, o.factors_half);
  check_shapes(o, R, Y, none);
  const int kp = padded_k(o.k);
  const std::vector<float> yty = padded_gram(o, Y, 1);
  RowArgs a{&o, kp, &R, Y.data(), nullptr, o.implicit ? yty.data() : nullptr, resident_bytes()};
  Workspace ws;
  ws.reserve(kp);
  A->assign(static_cast<size_t>(R.rows) * o.k * o.k, 0.0f);
  b->assign(static_cast<size_t>(R.rows) * o.k, 0.0f);
  kernels().hermitian_rows(a, 0, R.rows, ws, A->data(), b->data());
}

void solve_side(const Options& o, const SideCsr& R, const Factors& Y, Factors* X, int threads) {
  check_shapes(o, R, Y, *X);
  const int kp = padded_k(o.k);
  const std::vector<float> yty = padded_gram(o, Y, threads);
  RowArgs a{&o, kp, &R, Y.data(), X->data(), o.implicit ? yty.data() : nullptr, resident_bytes()};
  const int workers = std::max(threads, 1);
  std::vector<Workspace> ws(static_cast<size_t>(workers));
  std::vector<int64_t> failed(static_cast<size_t>(workers), -1);
  const KernelTable& kt = kernels();
  const int64_t blocks = (R.rows + kRowBlock - 1) / kRowBlock;
  detail::parallel_for(threads, blocks, [&](int w, int64_t bl) {
    if (ws[w].A.empty()) ws[w].reserve(kp);
    const int64_t f = kt.solve_rows(a, bl * kRowBlock, std::min(R.rows, (bl + 1) * kRowBlock), ws[w]);
    if (f >= 0 && (failed[w] < 0 || f < failed[w])) failed[w] = f;
  });
  int64_t first = -1;
  for (int64_t f : failed)
    if (f >= 0 && (first < 0 || f < first)) first = f;
  if (first >= 0)
    throw InvalidArgument("ALS: the Cholesky factorisation failed on row " + std::to_string(first) +
                          " (its system is not positive definite in float32): increase the regularization");
}

}  // namespace mascot::als
