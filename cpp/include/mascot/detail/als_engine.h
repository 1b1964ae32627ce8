// The ALS solver's per-device factor stores (issue 21): where P and Q live during a run and
// who solves them.  The CPU store (cpp/src/als/als_run.cc) keeps them in host memory and solves
// with als::solve_side; the CUDA store (cuda/als_kernels.cu) keeps the CSR views and the
// factors on the device and solves with the device kernels.  The run itself (data checks, CSR
// views, initial factors, test error) is device-neutral: cpp/src/als/als_run.h.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "mascot/detail/als.h"

namespace mascot::als {

/// The settings of an ALS run (the per-side Options derive from them).
struct RunConfig {
  int k = 64;
  float lambda_p = 0.1f;  ///< users' regularisation (> 0)
  float lambda_q = 0.1f;  ///< items' regularisation (> 0)
  bool implicit = false;  ///< Hu-Koren-Volinsky confidences c = 1 + alpha r
  float alpha = 1.0f;     ///< > 0
  bool weighted = true;   ///< reg = lambda n_u (weighted) or lambda (plain)
  Solver solver = Solver::kCg;
  int cg_steps = 3;
  bool hermitian_half = false;  ///< the paper's FP16 A
  bool factors_half = false;    ///< FP16 storage of P and Q
  Options::CgForm cg_form = Options::CgForm::kAuto;
  float init_std = 0.01f;  ///< P, Q ~ N(0, init_std^2) (detail::init_row)

  Options side(bool users) const {
    Options o;
    o.k = k;
    o.lambda = users ? lambda_p : lambda_q;
    o.implicit = implicit;
    o.alpha = alpha;
    o.weighted = weighted;
    o.solver = solver;
    o.cg_steps = cg_steps;
    o.hermitian_half = hermitian_half;
    o.factors_half = factors_half;
    o.cg_form = cg_form;
    return o;
  }
};

/// P and Q on one device, and the solves that replace them.
class Store {
 public:
  virtual ~Store() = default;
  virtual const char* name() const = 0;
  /// Takes the two CSR views (users -> items, items -> users) and the initial factors
  /// (float32, rounded to the storage).
  virtual void load(const RunConfig& cfg, SideCsr users, SideCsr items, const std::vector<float>& P,
                    const std::vector<float>& Q) = 0;
  /// One ALS iteration: every user row from Q, then every item row from the new P.
  virtual void iterate() = 0;
  virtual void get(std::vector<float>* P, std::vector<float>* Q) const = 0;
  virtual void set(const std::vector<float>& P, const std::vector<float>& Q) = 0;
};

std::unique_ptr<Store> make_cpu_store(int threads);  ///< cpp/src/als/als_run.cc
std::unique_ptr<Store> make_cuda_store();            ///< cuda/als_kernels.cu; throws CudaError without CUDA

}  // namespace mascot::als
