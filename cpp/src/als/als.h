// The ALS solver's CPU side (issue 21; formulas and options in mascot/detail/als.h).
//
// Data flow of one side's solve (users, or items): the ratings of the side as CSR (SideCsr:
// row -> the columns it interacts with and their values), the fixed side's factors Y and the
// solved side's factors X (Factors: rows x k, FP32 or FP16 storage) -> every row of X
// replaced, from its own row of the CSR and Y, independently of the other rows.  An ALS
// iteration is solve_side(users) then solve_side(items) with the new users.  The caller owns
// all of these; solve_side allocates only per-thread workspaces.
//
// The k x k work (the Hermitian build A_u = sum w y y^T, the Cholesky and the CG
// matrix-vector products) runs in own micro-kernels (als_kernels.cc, compiled per instruction
// set like the SGD kernels) rather than a BLAS/LAPACK from PyPI: see als_kernels.cc for the
// measurement behind that choice.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mascot/detail/als.h"

namespace mascot::als {

/// The CSR of `n` triplets (row ids in [0, rows), column ids in [0, cols)), columns ascending
/// within each row (ties keep the input order).  drop_zeros: entries whose value is 0 are left
/// out (implicit feedback: a zero strength is no interaction).
SideCsr build_csr(int64_t rows, int64_t cols, const int32_t* row_ids, const int32_t* col_ids, const float* values,
                  int64_t n, bool drop_zeros);

/// Rows x k factors, one row after the other (no padding), in FP32 or FP16 (half bits).
struct Factors {
  int64_t rows = 0;
  int k = 0;
  bool half = false;
  std::vector<float> f32;
  std::vector<uint16_t> f16;

  void resize(int64_t r, int kk, bool h);
  void* data() { return half ? static_cast<void*>(f16.data()) : static_cast<void*>(f32.data()); }
  const void* data() const {
    return half ? static_cast<const void*>(f16.data()) : static_cast<const void*>(f32.data());
  }
  /// Row r as float32 (k values).
  void row(int64_t r, float* out) const;
  /// The whole matrix as float32 (rows x k).
  std::vector<float> to_f32() const;
  /// Stores float32 values (rows x k), rounded to nearest half when half.
  void assign(const float* v);
};

/// Checks the options (one-line InvalidArgument naming the field).
void validate(const Options& o);

/// Solves every row of X from Y (see the file comment), with `threads` workers (rows are
/// independent, so the result does not depend on the thread count).  R.rows == X.rows,
/// R.cols == Y.rows, both of o.k columns and of the storage o.factors_half.
void solve_side(const Options& o, const SideCsr& R, const Factors& Y, Factors* X, int threads);

/// Test hook: every row's (A_u, b_u) as the solver reads them (see KernelTable::hermitian_rows),
/// A: rows x k x k, b: rows x k; one thread.
void hermitian(const Options& o, const SideCsr& R, const Factors& Y, std::vector<float>* A, std::vector<float>* b);

/// Y^T Y (k x k, row-major, float32) of the factors as stored, summed in fixed blocks of rows
/// reduced in double in block order: the same bits for every thread count.
std::vector<float> gram(const Factors& Y, int threads);

/// Instruction set of the ALS kernels picked for this host ("avx512", "avx2", "generic").
const char* kernel_isa();

// ------------------------------------------------------------------ kernels (als_kernels.cc)

/// k rounded up to the kernels' tile width (every variant uses the same, 32).
inline int padded_k(int k) { return (k + 31) / 32 * 32; }

/// Per-thread scratch of the row kernels (sizes from padded_k).
struct Workspace {
  std::vector<float> panel;     ///< kChunk x kp gathered rows y_v (zero-padded)
  std::vector<float> wpanel;    ///< kChunk x kp weighted rows w_v y_v (implicit)
  std::vector<float> resident;  ///< the matrix-free CG's gathered rows of one row (grown on demand)
  std::vector<float> coef;      ///< kChunk: b's coefficient of each gathered row
  std::vector<float> A;         ///< kp x kp
  std::vector<uint16_t> A16;    ///< kp x kp (hermitian_half)
  std::vector<float> vec;       ///< 6 x kp: b, x, r, p, Ap, spare
  void reserve(int kp);
};
constexpr int kChunk = 128;  ///< rows gathered at a time (a bounded panel whatever n_u)

struct RowArgs {
  const Options* opt;
  int kp;
  const SideCsr* R;
  const void* Y;     ///< fixed side (FP32 or FP16 by opt->factors_half)
  void* X;           ///< solved side, read (CG warm start) and written row by row
  const float* yty;  ///< implicit: kp x kp Y^T Y, zero-padded; else null
  /// The matrix-free CG keeps a row's gathered rows (Workspace::resident, grown to the longest
  /// row met) across its passes up to this many bytes per thread; a longer row is gathered
  /// again, kChunk rows at a time, in every pass (the same arithmetic in the same order).
  /// Why so large (kResidentBytes): the long rows are the popular items, whose rows are
  /// scattered over the whole other side, in DRAM at these sizes; streaming a kept panel
  /// (steps + 1) times costs far less than as many random gathers of it.
  size_t resident_bytes;
};
constexpr size_t kResidentBytes = size_t(64) << 20;

struct KernelTable {
  const char* isa;
  /// Solves rows [begin, end); returns -1, or the first row whose Cholesky failed (A not
  /// positive definite in float32).
  int64_t (*solve_rows)(const RowArgs& a, int64_t begin, int64_t end, Workspace& ws);
  /// out (kp x kp, lower triangle and diagonal tiles) += sum of y y^T over rows [begin, end)
  /// of Y (rows of k values, FP32 or FP16).
  void (*gram_rows)(const void* Y, bool half, int k, int kp, int64_t begin, int64_t end, float* out, Workspace& ws);
  /// Test hook: the systems of rows [begin, end) as the solver reads them (A: k x k per row,
  /// after the FP16 round trip when hermitian_half; b: k per row; zeros for an empty row).
  void (*hermitian_rows)(const RowArgs& a, int64_t begin, int64_t end, Workspace& ws, float* A, float* b);
};
const KernelTable& kernels();

}  // namespace mascot::als
