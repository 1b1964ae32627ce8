// The ALS solver's bindings (issue 21), part of mascot._core: bind_als, what mascot.ALS uses
// (AlsRun: one run, cpp/src/als/als_run.h; the kernels' ISA; the CG form of given options),
// and bind_als_testing, the test hooks (one side's solve on the CPU or the CUDA device, the
// Hermitians, Y^T Y, the CSR builder), registered on mascot._core._testing with the others
// (module.cc).  The binding converts and forwards; the logic
// is the solver's (cpp/src/als/, cuda/als_kernels.cu).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "als/als.h"
#include "als/als_run.h"
#include "mascot/context.h"
#include "mascot/error.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using mascot::als::Factors;
using mascot::als::Options;
using mascot::als::SideCsr;
template <class T>
using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using InF2 = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

template <class T>
nb::object to_numpy(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, T>(heap->data(), shape.size(), shape.begin(), owner));
}

mascot::als::Solver parse_solver(const std::string& s) {
  if (s == "cholesky") return mascot::als::Solver::kCholesky;
  if (s == "cg") return mascot::als::Solver::kCg;
  throw mascot::InvalidArgument("solver must be 'cg' or 'cholesky' (got '" + s + "')");
}

SideCsr csr_from(const In1<int64_t>& indptr, const In1<int32_t>& indices, const In1<float>& values, int64_t cols) {
  SideCsr R;
  MASCOT_CHECK_ARG(indptr.shape(0) >= 1, "indptr must not be empty");
  R.rows = static_cast<int64_t>(indptr.shape(0)) - 1;
  R.cols = cols;
  R.indptr.assign(indptr.data(), indptr.data() + indptr.shape(0));
  R.indices.assign(indices.data(), indices.data() + indices.shape(0));
  R.values.assign(values.data(), values.data() + values.shape(0));
  MASCOT_CHECK_ARG(R.indptr[0] == 0 && R.indptr.back() == static_cast<int64_t>(R.indices.size()) &&
                       R.indices.size() == R.values.size(),
                   "indptr, indices and values do not form a CSR matrix");
  for (int64_t r = 0; r < R.rows; ++r) {
    MASCOT_CHECK_ARG(R.indptr[r] <= R.indptr[r + 1], "indptr must not decrease");
    R.max_row = std::max(R.max_row, R.indptr[r + 1] - R.indptr[r]);
  }
  for (int32_t c : R.indices) MASCOT_CHECK_ARG(c >= 0 && c < cols, "column index out of range");
  return R;
}

Options::CgForm parse_cg_form(const std::string& s) {
  if (s == "auto") return Options::CgForm::kAuto;
  if (s == "hermitian") return Options::CgForm::kHermitian;
  if (s == "matrix_free") return Options::CgForm::kMatrixFree;
  throw mascot::InvalidArgument("cg_form must be 'auto', 'hermitian' or 'matrix_free' (got '" + s + "')");
}

Options options(int k, float lam, bool implicit, float alpha, const std::string& solver, int cg_steps, bool weighted,
                bool hermitian_half, bool factors_half, const std::string& cg_form = "auto") {
  Options o;
  o.cg_form = parse_cg_form(cg_form);
  o.k = k;
  o.lambda = lam;
  o.implicit = implicit;
  o.alpha = alpha;
  o.solver = parse_solver(solver);
  o.cg_steps = cg_steps;
  o.weighted = weighted;
  o.hermitian_half = hermitian_half;
  o.factors_half = factors_half;
  mascot::als::validate(o);
  return o;
}

}  // namespace

// The test hooks (one side's solve, the Hermitians, Y^T Y, the CSR): module.cc registers them on
// mascot._core._testing with the others.
void bind_als_testing(nb::module_& m) {
  m.def(
      "als_solve_side",
      [](const In1<int64_t>& indptr, const In1<int32_t>& indices, const In1<float>& values, const InF2& Y,
         const InF2& X, float lam, bool implicit, float alpha, const std::string& solver, int cg_steps, bool weighted,
         bool hermitian_half, bool factors_half, int threads, const std::string& device, const std::string& cg_form) {
        const Options o = options(static_cast<int>(Y.shape(1)), lam, implicit, alpha, solver, cg_steps, weighted,
                                  hermitian_half, factors_half, cg_form);
        MASCOT_CHECK_ARG(X.shape(1) == Y.shape(1), "X and Y must have the same number of columns");
        const SideCsr R = csr_from(indptr, indices, values, static_cast<int64_t>(Y.shape(0)));
        MASCOT_CHECK_ARG(static_cast<int64_t>(X.shape(0)) == R.rows, "X must have one row per CSR row");
        const size_t k = Y.shape(1);
        std::vector<float> out;
        if (device == "cpu") {
          Factors fy, fx;
          fy.resize(static_cast<int64_t>(Y.shape(0)), o.k, factors_half);
          fx.resize(R.rows, o.k, factors_half);
          fy.assign(Y.data());
          fx.assign(X.data());
          {
            nb::gil_scoped_release nogil;
            mascot::als::solve_side(o, R, fy, &fx, threads);
          }
          out = fx.to_f32();
        } else if (device == "cuda") {
          std::vector<float> y(Y.data(), Y.data() + Y.size()), x(X.data(), X.data() + X.size());
          nb::gil_scoped_release nogil;
          out = mascot::als::cuda_solve_side(o, R, y, x);
        } else {
          throw mascot::InvalidArgument("device must be 'cpu' or 'cuda' (got '" + device + "')");
        }
        return to_numpy(std::move(out), {static_cast<size_t>(R.rows), k});
      },
      "indptr"_a, "indices"_a, "values"_a, "Y"_a, "X"_a, "lam"_a, "implicit"_a = false, "alpha"_a = 1.0f,
      "solver"_a = "cg", "cg_steps"_a = 3, "weighted"_a = true, "hermitian_half"_a = false, "factors_half"_a = false,
      "threads"_a = 1, "device"_a = "cpu", "cg_form"_a = "auto",
      "Test hook: one ALS side's solve (new X from Y and the CSR rows of X's side); see "
      "tests/python/reference_als.py.");
  m.def(
      "als_hermitian",
      [](const In1<int64_t>& indptr, const In1<int32_t>& indices, const In1<float>& values, const InF2& Y, float lam,
         bool implicit, float alpha, bool weighted, bool hermitian_half, bool factors_half, const std::string& device) {
        const Options o = options(static_cast<int>(Y.shape(1)), lam, implicit, alpha, "cg", 1, weighted, hermitian_half,
                                  factors_half);
        const SideCsr R = csr_from(indptr, indices, values, static_cast<int64_t>(Y.shape(0)));
        std::vector<float> A, b;
        if (device == "cpu") {
          Factors fy;
          fy.resize(static_cast<int64_t>(Y.shape(0)), o.k, factors_half);
          fy.assign(Y.data());
          mascot::als::hermitian(o, R, fy, &A, &b);
        } else if (device == "cuda") {
          std::vector<float> y(Y.data(), Y.data() + Y.size());
          mascot::als::cuda_hermitian(o, R, y, &A, &b);
        } else {
          throw mascot::InvalidArgument("device must be 'cpu' or 'cuda' (got '" + device + "')");
        }
        const size_t rows = static_cast<size_t>(R.rows), k = static_cast<size_t>(o.k);
        return nb::make_tuple(to_numpy(std::move(A), {rows, k, k}), to_numpy(std::move(b), {rows, k}));
      },
      "indptr"_a, "indices"_a, "values"_a, "Y"_a, "lam"_a, "implicit"_a = false, "alpha"_a = 1.0f, "weighted"_a = true,
      "hermitian_half"_a = false, "factors_half"_a = false, "device"_a = "cpu",
      "Test hook: every row's (A_u, b_u) as the ALS solver reads them (get_hermitian and get_bias).");
  m.def(
      "als_gram",
      [](const InF2& Y, bool half, int threads) {
        Factors f;
        f.resize(static_cast<int64_t>(Y.shape(0)), static_cast<int>(Y.shape(1)), half);
        f.assign(Y.data());
        std::vector<float> g = mascot::als::gram(f, threads);
        const size_t k = Y.shape(1);
        return to_numpy(std::move(g), {k, k});
      },
      "Y"_a, "half"_a = false, "threads"_a = 1, "Test hook: Y^T Y as the implicit solver computes it.");
  m.def(
      "als_csr",
      [](int64_t rows, int64_t cols, const In1<int32_t>& r, const In1<int32_t>& c, const In1<float>& v,
         bool drop_zeros) {
        MASCOT_CHECK_ARG(r.shape(0) == c.shape(0) && r.shape(0) == v.shape(0),
                         "rows, cols and values differ in length");
        SideCsr R = mascot::als::build_csr(rows, cols, r.data(), c.data(), v.data(), static_cast<int64_t>(r.shape(0)),
                                           drop_zeros);
        const size_t n = R.indices.size();
        return nb::make_tuple(to_numpy(std::move(R.indptr), {static_cast<size_t>(rows) + 1}),
                              to_numpy(std::move(R.indices), {n}), to_numpy(std::move(R.values), {n}));
      },
      "rows"_a, "cols"_a, "row_ids"_a, "col_ids"_a, "values"_a, "drop_zeros"_a = false,
      "Test hook: the ALS solver's CSR of triplets.");
}

// What mascot.ALS uses: one ALS run, and the kernels' instruction set.
void bind_als(nb::module_& m) {
  nb::class_<mascot::als::AlsRun>(m, "AlsRun", "One ALS run (cpp/src/als/als_run.h): prepare, run_epoch, factors.")
      .def(nb::init<>())
      .def(
          "prepare",
          [](mascot::als::AlsRun& run, const In1<int32_t>& u, const In1<int32_t>& i, const In1<float>& r,
             int64_t n_users, int64_t n_items, std::optional<In1<int32_t>> tu, std::optional<In1<int32_t>> ti,
             std::optional<In1<float>> tr, int k, float lambda_p, float lambda_q, bool implicit, float alpha,
             bool weighted, const std::string& solver, int cg_steps, bool hermitian_half, bool factors_half,
             const std::string& cg_form, float init_std, const std::string& device, int threads, uint64_t seed) {
            mascot::als::RunConfig c;
            c.k = k;
            c.lambda_p = lambda_p;
            c.lambda_q = lambda_q;
            c.implicit = implicit;
            c.alpha = alpha;
            c.weighted = weighted;
            c.solver = parse_solver(solver);
            c.cg_steps = cg_steps;
            c.hermitian_half = hermitian_half;
            c.factors_half = factors_half;
            c.cg_form = parse_cg_form(cg_form);
            c.init_std = init_std;
            mascot::Context ctx;
            ctx.device = mascot::parse_device(device);
            ctx.threads = threads;
            ctx.seed = seed;
            const auto set = [](const In1<int32_t>& a, const In1<int32_t>& b, const In1<float>& v, int64_t nu,
                                int64_t ni, const char* what) {
              MASCOT_CHECK_ARG(a.shape(0) == b.shape(0) && a.shape(0) == v.shape(0),
                               std::string(what) + ": users, items and values must have the same length");
              mascot::RatingSet s;
              s.n_users = nu;
              s.n_items = ni;
              s.users.assign(a.data(), a.data() + a.shape(0));
              s.items.assign(b.data(), b.data() + b.shape(0));
              s.ratings.assign(v.data(), v.data() + v.shape(0));
              return s;
            };
            const mascot::RatingSet train = set(u, i, r, n_users, n_items, "training set");
            mascot::RatingSet test;
            const bool has_test = tu.has_value();
            if (has_test) {
              MASCOT_CHECK_ARG(ti.has_value() && tr.has_value(), "test set needs users, items and values");
              int64_t mu = 0, mi = 0;
              for (size_t x = 0; x < tu->shape(0); ++x) mu = std::max<int64_t>(mu, int64_t((*tu)(x)) + 1);
              for (size_t x = 0; x < ti->shape(0); ++x) mi = std::max<int64_t>(mi, int64_t((*ti)(x)) + 1);
              test = set(*tu, *ti, *tr, mu, mi, "test set");
            }
            nb::gil_scoped_release nogil;
            run.prepare(c, ctx, train, has_test ? &test : nullptr);
          },
          "users"_a, "items"_a, "values"_a, "n_users"_a, "n_items"_a, "test_users"_a = nb::none(),
          "test_items"_a = nb::none(), "test_values"_a = nb::none(), "k"_a = 64, "lambda_p"_a = 0.1f,
          "lambda_q"_a = 0.1f, "implicit"_a = false, "alpha"_a = 1.0f, "weighted"_a = true, "solver"_a = "cg",
          "cg_steps"_a = 3, "hermitian_half"_a = false, "factors_half"_a = false, "cg_form"_a = "auto",
          "init_std"_a = 0.01f, "device"_a = "auto", "threads"_a = 0, "seed"_a = uint64_t(42))
      .def(
          "run_epoch",
          [](mascot::als::AlsRun& run) {
            nb::gil_scoped_release nogil;
            return run.run_epoch();
          },
          "One ALS iteration (users, then items); returns the ratings touched.")
      .def("test_sse", &mascot::als::AlsRun::test_sse)
      .def("test_size", &mascot::als::AlsRun::test_size)
      .def("describe", &mascot::als::AlsRun::describe)
      .def(
          "factors",
          [](const mascot::als::AlsRun& run) {
            std::vector<float> P, Q;
            run.factors(&P, &Q);
            const size_t k = static_cast<size_t>(run.k());
            return nb::make_tuple(to_numpy(std::move(P), {static_cast<size_t>(run.n_users()), k}),
                                  to_numpy(std::move(Q), {static_cast<size_t>(run.n_items()), k}));
          },
          "(P, Q) as float32 arrays.")
      .def("set_factors", [](mascot::als::AlsRun& run, const InF2& P, const InF2& Q) {
        run.set_factors(std::vector<float>(P.data(), P.data() + P.size()),
                        std::vector<float>(Q.data(), Q.data() + Q.size()));
      });

  m.def("als_kernel_isa", &mascot::als::kernel_isa, "Instruction set of the ALS kernels picked for this host.");
  m.def(
      "als_cg_form",
      [](int k, const std::string& solver, int cg_steps, bool hermitian_half, const std::string& cg_form) {
        const Options o = options(k, 1.0f, false, 1.0f, solver, cg_steps, true, hermitian_half, false, cg_form);
        return mascot::als::cg_form_of(o) == Options::CgForm::kMatrixFree ? "matrix_free" : "hermitian";
      },
      "k"_a, "solver"_a = "cg", "cg_steps"_a = 3, "hermitian_half"_a = false, "cg_form"_a = "auto",
      "The form the CG solver takes under these options ('hermitian' or 'matrix_free').");
}
