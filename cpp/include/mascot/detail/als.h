// ALS (the cuMF_ALS paper, issue 21): the options of one solve and the per-row formulas that
// the CPU solver (cpp/src/als/) and the CUDA kernels (cuda/als_kernels.cu) share.  The
// semantics are pinned by tests/python/reference_als.py; in short, for row u with the observed
// entries Omega_u (n_u of them) of the fixed side's rows y_v:
//   explicit:  A_u = sum y_v y_v^T + reg_u I,              b_u = sum r_uv y_v
//   implicit:  A_u = Y^T Y + sum (c_uv - 1) y_v y_v^T + reg_u I,  b_u = sum c_uv y_v,
//              c_uv = 1 + alpha r_uv (Hu, Koren, Volinsky 2008; the Y^T Y trick)
//   reg_u = lambda n_u (weighted, Zhou et al. 2008 and the paper's Eq. 2) or lambda (plain).
// A row without entries is zero.  Solvers: Cholesky (exact) or `cg_steps` conjugate-gradient
// steps warm-started from the row's previous value (the paper's approximate CG).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "mascot/detail/hostdev.h"

namespace mascot::als {

enum class Solver { kCholesky, kCg };

/// One side's solve (the same for users and items).
struct Options {
  int k = 64;
  float lambda = 0.1f;    ///< > 0
  bool implicit = false;  ///< Hu-Koren-Volinsky confidences instead of ratings
  float alpha = 1.0f;     ///< c = 1 + alpha r (implicit only; > 0)
  bool weighted = true;   ///< reg_u = lambda n_u (true) or lambda (false)
  Solver solver = Solver::kCg;
  int cg_steps = 3;             ///< >= 1
  bool hermitian_half = false;  ///< store A_u in FP16 (scaled, see hermitian_scale), compute in FP32
  bool factors_half = false;    ///< factors stored in FP16 (round to nearest even)
  /// How CG forms its products A p: kHermitian builds A_u (the paper: O(n_u k^2) per row, then
  /// O(k^2) per step; what hermitian_half stores in FP16); kMatrixFree never forms A_u and
  /// computes A p = [Y^T Y p] + sum w (y.p) y + reg p (Takacs et al. 2011, as `implicit` does:
  /// O(n_u k) per step).  Same mathematics, different rounding.  kAuto: matrix-free where it
  /// does fewer operations (cg_form_of), except under hermitian_half.
  enum class CgForm { kAuto, kHermitian, kMatrixFree } cg_form = CgForm::kAuto;
};

/// The form CG uses under `o` (never kAuto): matrix-free unless the options ask for the
/// Hermitian (hermitian_half, kHermitian) or k is so small for the steps that building A_u
/// (n k^2 / 2 multiply-adds) costs less than (steps + 1) products with the rows (2 n k each,
/// and a horizontal sum per row: counted 1.5 times; measured with benchmarks/als_kernels_bench.cc).
MASCOT_HD Options::CgForm cg_form_of(const Options& o) {
  if (o.solver != Solver::kCg || o.hermitian_half || o.cg_form == Options::CgForm::kHermitian)
    return Options::CgForm::kHermitian;
  if (o.cg_form == Options::CgForm::kMatrixFree) return Options::CgForm::kMatrixFree;
  return o.k > 6 * (o.cg_steps + 1) ? Options::CgForm::kMatrixFree : Options::CgForm::kHermitian;
}

/// One side of the ratings in compressed rows: row r interacts with columns
/// indices[indptr[r] .. indptr[r+1]) with values values[...] (ratings, or implicit strengths).
struct SideCsr {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int64_t> indptr;   ///< rows + 1
  std::vector<int32_t> indices;  ///< column ids, ascending within a row
  std::vector<float> values;
  int64_t max_row = 0;  ///< the longest row's length
};

/// CG stops early when r.r falls below this (absolute, as the `implicit` package does).
constexpr float kCgTol = 1e-20f;

MASCOT_HD float confidence(float alpha, float r) { return 1.0f + alpha * r; }

MASCOT_HD float row_regularisation(const Options& o, int64_t n) {
  return o.weighted ? o.lambda * static_cast<float>(n) : o.lambda;
}

/// The power of two s that maps the largest diagonal entry m of an SPD A into [2^14, 2^15),
/// so that s A is in FP16's normal range (|A_ij| <= max_i A_ii): FP16 A is stored as s A and
/// read back as (s A) / s.  Scaling by a power of two is exact, so it changes no rounding
/// other than keeping entries away from overflow (A grows with n_u and alpha) and from the
/// subnormals.  m <= 0 or not finite: 1.
MASCOT_HD float hermitian_scale(float m) {
  if (!(m > 0.0f) || !(m < 3.0e38f)) return 1.0f;
  int e = 0;
  frexpf(m, &e);  // m = f 2^e, f in [0.5, 1): floor(log2 m) = e - 1
  const int x = 14 - (e - 1);
  return ldexpf(1.0f, x < 126 ? x : 126);  // a tiny m (far below FP16's range anyway): no overflow
}

/// The CUDA kernels' solve of one side (cuda/als_kernels.cu): the same as the CPU's
/// solve_side (cpp/src/als/als.h) on the current device, from host arrays: Y (R.cols x k) and X
/// (R.rows x k, the warm start) as float32 values (rounded to FP16 on the device when
/// o.factors_half); returns the new X as float32.  Throws CudaError in builds without CUDA.
std::vector<float> cuda_solve_side(const Options& o, const SideCsr& R, const std::vector<float>& Y,
                                   const std::vector<float>& X);
/// Test hook: the CUDA kernels' (A_u, b_u) of every row as the solver reads them (the CPU's
/// als::hermitian): A rows x k x k, b rows x k.
void cuda_hermitian(const Options& o, const SideCsr& R, const std::vector<float>& Y, std::vector<float>* A,
                    std::vector<float>* b);

}  // namespace mascot::als
