// The SGD update of one rating (paper Eq. 2-3) with the exact operation order every backend
// follows, written once for host and device.  The vector kernels (cpu/kernels.cc) and the
// NumPy reference (tests/python/reference.py) perform the same float32 operations in the
// same order, so results match bit for bit with one thread:
//   dot  = 16 lane partial sums (element j goes to lane j % 16, accumulated in j order,
//          acc = acc + p*q as separate multiply and add), then a tree: lanes l and l+8,
//          then l and l+4, l and l+2, l and l+1.
//   e    = r - dot
// FP32 arithmetic (fp32, mascot-n1, ...): Eq. 2-3 regrouped to three operations per element,
//   cp = 1 - lr * lambda_p,  cq = 1 - lr * lambda_q,  ce = lr * e   (scalars, float)
//   p'_j = cp * p_j + ce * q_j       q'_j = cq * q_j + ce * p_j      (old p_j, q_j)
// (mathematically Eq. 2-3; separate multiplies and add, never a fused multiply-add).
// FP16 arithmetic (method fp16): Eq. 2-3 literally, every operation rounded to half,
//   p'_j = p_j + lr * (e * q_j - lambda_p * p_j),  q'_j = q_j + lr * (e * p_j - lambda_q * q_j)
// (regrouping would be wrong there: 1 - lr * lambda rounds to 1 in half precision).
#pragma once
#include <cmath>
#include <cstdint>

#include "mascot/detail/half.h"
#include "mascot/detail/hostdev.h"

namespace mascot::detail {

constexpr int kLanes = 16;

/// Tree reduction of 16 lane partial sums, in the documented order.
template <class Round>
MASCOT_HD float reduce_lanes(float* a, Round rnd) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) a[l] = rnd(a[l] + a[l + w]);
  return a[0];
}

struct NoRound {
  MASCOT_HD float operator()(float x) const { return x; }
};
struct HalfRound {
  MASCOT_HD float operator()(float x) const { return round_half(x); }
};

/// Dot product with the documented lane structure.  Rnd = NoRound (FP32) or HalfRound (fp16 math).
template <class Rnd>
MASCOT_HD float dot_lanes(const float* p, const float* q, int k, Rnd rnd) {
  float a[kLanes];
  for (int l = 0; l < kLanes; ++l) a[l] = 0.0f;
  for (int j = 0; j < k; ++j) a[j % kLanes] = rnd(a[j % kLanes] + rnd(p[j] * q[j]));
  return reduce_lanes(a, rnd);
}

/// Scalar update of one rating on working copies p, q (k elements each), in place, with FP32
/// arithmetic.  Returns the prediction error e.
MASCOT_HD float sgd_update(float* p, float* q, int k, float r, float lr, float lp, float lq, NoRound) {
  const float dot = dot_lanes(p, q, k, NoRound{});
  const float e = r - dot;
  const float cp = 1.0f - lr * lp, cq = 1.0f - lr * lq, ce = lr * e;
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    p[j] = cp * pj + ce * qj;
    q[j] = cq * qj + ce * pj;
  }
  return e;
}

/// The same with FP16 arithmetic: Eq. 2-3 literally, every operation rounded to half.
MASCOT_HD float sgd_update(float* p, float* q, int k, float r, float lr, float lp, float lq, HalfRound rnd) {
  const float dot = dot_lanes(p, q, k, rnd);
  const float e = rnd(rnd(r) - dot);
  const float lr_ = rnd(lr), lp_ = rnd(lp), lq_ = rnd(lq);
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    const float gp = rnd(rnd(e * qj) - rnd(lp_ * pj));
    const float gq = rnd(rnd(e * pj) - rnd(lq_ * qj));
    p[j] = rnd(pj + rnd(lr_ * gp));
    q[j] = rnd(qj + rnd(lr_ * gq));
  }
  return e;
}

/// Learning-rate schedule (DESIGN.md §3): lr / (1 + decay * e^1.5), e 0-based, evaluated in
/// double and rounded once to float.
inline float lr_schedule(float lr0, float decay, int epoch) {
  const double e = static_cast<double>(epoch);
  return static_cast<float>(static_cast<double>(lr0) /
                            (1.0 + static_cast<double>(decay) * e * std::sqrt(e)));
}

}  // namespace mascot::detail
