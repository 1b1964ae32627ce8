#include "mascot/detail/switching.h"

namespace mascot::detail {

std::vector<double> qerror_from_sums(const double* sum, const double* sq, const int64_t* n, int groups, int k) {
  std::vector<double> q(static_cast<size_t>(groups), -1.0);
  for (int g = 0; g < groups; ++g) {
    if (n[g] == 0 || !(sq[g] > 0)) continue;
    double s2 = 0;
    const double* v = sum + static_cast<size_t>(g) * k;
    for (int j = 0; j < k; ++j) s2 += v[j] * v[j];
    q[g] = s2 / sq[g];
  }
  return q;
}

std::vector<int> Switcher::update(const std::vector<double>& qerror, GroupTable* table) {
  std::vector<int> switched;
  for (size_t g = 0; g < qerror.size(); ++g) {
    if (qerror[g] < 0) continue;  // no samples: no decision
    if (baseline_[g] < 0) {
      baseline_[g] = qerror[g];  // first measurement is the baseline
      continue;
    }
    if (table->precision[g] == Precision::kFp16 && baseline_[g] > 0 && qerror[g] / baseline_[g] > threshold_) {
      table->precision[g] = Precision::kFp32;
      switched.push_back(static_cast<int>(g));
    }
  }
  return switched;
}

}  // namespace mascot::detail
