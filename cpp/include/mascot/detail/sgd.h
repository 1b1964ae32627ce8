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
//
// The per-element steps below are templates over the value type T, instantiated for float
// (the scalar path, the competing methods, the CUDA kernels' lane registers), for the CPU
// kernels' 16-lane vector V (cpu/kernels.cc) and for CUDA's __half (method fp16).  T needs
// +, - and *; scalars are passed as T (the vector code broadcasts them once per rating).
// Every backend calls these, so the operation order is written in one place.
//
// Adaptive learning rate (schedule = adagrad; LIBMF's per-row AdaGrad, Chin et al., PAKDD 2015):
// each user and item row owns one FP32 word G, the running sum of its mean squared gradients,
// starting at 1.  One rating's update with rows p (state Gp) and q (state Gq):
//   eta_p = eta0 / sqrt(Gp),  eta_q = eta0 / sqrt(Gq)              (float, correctly rounded)
//   gp_j = e q_j - lambda_p p_j,  gq_j = e p_j - lambda_q q_j      (old p_j, q_j: sgd_grad)
//   p'_j = p_j + eta_p gp_j,      q'_j = q_j + eta_q gq_j          (descend; FP16 arithmetic:
//                                  half_grad / half_descend with eta rounded to half)
//   Gp' = Gp + (sum_j gp_j^2) / k, Gq' likewise                    (sum: the dot product's
//                                  16 lanes and tree, FP32 in every method; then one division)
// The rates come from the state before this rating's update (the gradient of this update
// enters the state afterwards, as in LIBMF).  The decay rows (keep_factor ...) are untouched.
#pragma once
#include <cmath>
#include <cstdint>

#include "mascot/detail/half.h"
#include "mascot/detail/hostdev.h"

namespace mascot::detail {

constexpr int kLanes = 16;

/// a + b.  The default `add` policy of the steps; the CPU vector kernels pass one that issues
/// the same rounded add on the multiply-add pipes (cpu/kernels.cc, add2).
struct Plus {
  template <class T>
  MASCOT_HD T operator()(T a, T b) const {
    return a + b;
  }
};

// ---- FP32 arithmetic (fp32, mascot-n1, the mascot family)

/// One element of the dot product: acc + p q (separate multiply and add).
template <class T, class Add = Plus>
MASCOT_HD T dot_step(T acc, T p, T q, Add add = {}) {
  return add(acc, p * q);
}
/// The regrouped update of one element: x' = cx x + ce y (x = p_j, y = q_j, cx = cp, or the
/// other way round with cq), from the old values.
template <class T, class Add = Plus>
MASCOT_HD T sgd_step(T x, T y, T cx, T ce, Add add = {}) {
  return add(cx * x, ce * y);
}
/// Factor of the old value in sgd_step: 1 - lr lambda.
MASCOT_HD float keep_factor(float lr, float lambda) { return 1.0f - lr * lambda; }
/// Factor of the other row in sgd_step: lr e.
MASCOT_HD float error_factor(float lr, float e) { return lr * e; }

/// Gradient of Eq. 2-3 with its data term d given: d - lambda x (d = e y, or a quantized e y).
template <class T>
MASCOT_HD T decay_grad(T d, T lambda, T x) {
  return d - lambda * x;
}
/// Gradient of Eq. 2-3 without the learning rate: e y - lambda x (x = p_j, y = q_j, or the
/// other way round), the q-error samples' and the competing methods' gradient.
template <class T>
MASCOT_HD T sgd_grad(T e, T y, T lambda, T x) {
  return decay_grad(e * y, lambda, x);
}
/// The change of a descent step: lr g (what a merging write adds to the row).
template <class T>
MASCOT_HD T descent_change(T lr, T g) {
  return lr * g;
}
/// Eq. 2-3 as written: x + lr g (the competing methods' update of their FP32 masters).
template <class T>
MASCOT_HD T descend(T x, T lr, T g) {
  return x + descent_change(lr, g);
}

// ---- FP16 arithmetic (method fp16): every operation rounded to half by rnd (HalfRound on
// float, hround on the CPU vector, the identity on __half, whose operations round natively)

/// One element of the dot product: rnd(acc + rnd(p q)).
template <class T, class Rnd>
MASCOT_HD T half_dot_step(T acc, T p, T q, Rnd rnd) {
  return rnd(acc + rnd(p * q));
}
/// Gradient: rnd(rnd(e y) - rnd(lambda x)).
template <class T, class Rnd>
MASCOT_HD T half_grad(T e, T y, T lambda, T x, Rnd rnd) {
  return rnd(rnd(e * y) - rnd(lambda * x));
}
/// The change: rnd(lr g).
template <class T, class Rnd>
MASCOT_HD T half_change(T lr, T g, Rnd rnd) {
  return rnd(lr * g);
}
/// x + rnd(lr g), not rounded: the last rounding is the FP16 store's (or __half's own).
template <class T, class Rnd>
MASCOT_HD T half_descend(T x, T lr, T g, Rnd rnd) {
  return x + half_change(lr, g, rnd);
}

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
  for (int j = 0; j < k; ++j) a[j % kLanes] = half_dot_step(a[j % kLanes], p[j], q[j], rnd);
  return reduce_lanes(a, rnd);
}

/// Scalar update of one rating on working copies p, q (k elements each), in place, with FP32
/// arithmetic.  Returns the prediction error e.
MASCOT_HD float sgd_update(float* p, float* q, int k, float r, float lr, float lp, float lq, NoRound) {
  const float dot = dot_lanes(p, q, k, NoRound{});
  const float e = r - dot;
  const float cp = keep_factor(lr, lp), cq = keep_factor(lr, lq), ce = error_factor(lr, e);
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    p[j] = sgd_step(pj, qj, cp, ce);
    q[j] = sgd_step(qj, pj, cq, ce);
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
    p[j] = rnd(half_descend(pj, lr_, half_grad(e, qj, lp_, pj, rnd), rnd));
    q[j] = rnd(half_descend(qj, lr_, half_grad(e, pj, lq_, qj, rnd), rnd));
  }
  return e;
}

// ---- adaptive learning rate (schedule = adagrad), see the top of this file

/// Initial value of a row's state G (LIBMF's): the first step of every row is eta0.
constexpr float kAdagradInit = 1.0f;
/// The row's step: eta0 / sqrt(G).
MASCOT_HD float adagrad_rate(float eta0, float g) { return eta0 / sqrtf(g); }
/// The state after one update: G + sq / k, sq the sum of the update's squared gradient elements.
MASCOT_HD float adagrad_accumulate(float g, float sq, int k) { return g + sq / static_cast<float>(k); }

/// Scalar adagrad update of one rating on working copies p, q, FP32 arithmetic; gp, gq are the
/// rows' states, updated.  Returns e.
MASCOT_HD float adagrad_update(float* p, float* q, int k, float r, float eta0, float lp, float lq, float* gp_state,
                               float* gq_state, NoRound) {
  const float dot = dot_lanes(p, q, k, NoRound{});
  const float e = r - dot;
  const float ep = adagrad_rate(eta0, *gp_state), eq = adagrad_rate(eta0, *gq_state);
  float sp[kLanes], sq[kLanes];
  for (int l = 0; l < kLanes; ++l) sp[l] = sq[l] = 0.0f;
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    const float gp = sgd_grad(e, qj, lp, pj), gq = sgd_grad(e, pj, lq, qj);
    p[j] = descend(pj, ep, gp);
    q[j] = descend(qj, eq, gq);
    sp[j % kLanes] = dot_step(sp[j % kLanes], gp, gp);
    sq[j % kLanes] = dot_step(sq[j % kLanes], gq, gq);
  }
  *gp_state = adagrad_accumulate(*gp_state, reduce_lanes(sp, NoRound{}), k);
  *gq_state = adagrad_accumulate(*gq_state, reduce_lanes(sq, NoRound{}), k);
  return e;
}

/// The same with FP16 arithmetic (method fp16): the rates rounded to half, the gradients and
/// steps as sgd_update's half path; the state's sums stay FP32.
MASCOT_HD float adagrad_update(float* p, float* q, int k, float r, float eta0, float lp, float lq, float* gp_state,
                               float* gq_state, HalfRound rnd) {
  const float dot = dot_lanes(p, q, k, rnd);
  const float e = rnd(rnd(r) - dot);
  const float ep = rnd(adagrad_rate(eta0, *gp_state)), eq = rnd(adagrad_rate(eta0, *gq_state));
  const float lp_ = rnd(lp), lq_ = rnd(lq);
  float sp[kLanes], sq[kLanes];
  for (int l = 0; l < kLanes; ++l) sp[l] = sq[l] = 0.0f;
  for (int j = 0; j < k; ++j) {
    const float pj = p[j], qj = q[j];
    const float gp = half_grad(e, qj, lp_, pj, rnd), gq = half_grad(e, pj, lq_, qj, rnd);
    p[j] = rnd(half_descend(pj, ep, gp, rnd));
    q[j] = rnd(half_descend(qj, eq, gq, rnd));
    sp[j % kLanes] = dot_step(sp[j % kLanes], gp, gp);
    sq[j % kLanes] = dot_step(sq[j % kLanes], gq, gq);
  }
  *gp_state = adagrad_accumulate(*gp_state, reduce_lanes(sp, NoRound{}), k);
  *gq_state = adagrad_accumulate(*gq_state, reduce_lanes(sq, NoRound{}), k);
  return e;
}

/// Learning-rate schedule (docs/design.md §3): lr / (1 + decay * e^1.5), e 0-based, evaluated in
/// double and rounded once to float.
inline float lr_schedule(float lr0, float decay, int epoch) {
  const double e = static_cast<double>(epoch);
  return static_cast<float>(static_cast<double>(lr0) / (1.0 + static_cast<double>(decay) * e * std::sqrt(e)));
}

}  // namespace mascot::detail
