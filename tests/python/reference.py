"""Slow, obviously-correct NumPy reference of serial SGD (docs/design.md §3, detail/sgd.h).

It performs the same float32 operations in the same order as the C++ kernels:
dot product over 16 lanes (element j -> lane j % 16, accumulated in j order, then a tree
l + l+8, l + l+4, l + l+2, l + l+1), e = r - dot; with FP32 arithmetic (fp32, mascot-n1) the
update is Eq. 2-3 regrouped, p' = (1 - lr*lp)*p + (lr*e)*q, q' = (1 - lr*lq)*q + (lr*e)*p;
method ``fp16`` does Eq. 2-3 literally with every operation rounded to half.  ``mascot-n1``
rounds each store to half (nearest even); ``fp32`` never rounds.
With ``schedule="adagrad"`` (LIBMF's per-row AdaGrad, detail/sgd.h) each row has a float32
state G = 1 at the start; a rating's rows step by eta0 / sqrt(G) along their gradients
g = e y - lambda x (p' = p + eta_p gp), and G += (sum of g^2 in the 16-lane order) / k afterwards.
The visiting order and the initial factors come from the core (``visit_order``,
``init_factors``), so with one thread the results must agree bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

from mascot import _core

# The product's defaults, from the parameter table (params.h): a test that trains with MF()'s
# defaults compares against the reference with the same values.
DEFAULTS = {row["name"]: row["default"] for row in _core.param_table()}

F32 = np.float32
LANES = 16


def half(x):
    """Round float32 values to the nearest half (ties to even) and back."""
    return np.asarray(x, dtype=F32).astype(np.float16).astype(F32)


def trunc_half(y):
    """Round float32 values toward zero to half precision (as float32)."""
    y = np.asarray(y, dtype=F32)
    with np.errstate(over="ignore"):
        h = y.astype(np.float16)
    toward = np.abs(h.astype(np.float64)) > np.abs(y.astype(np.float64))
    h = np.where(toward, np.nextafter(h, np.float16(0)), h)
    return h.astype(F32)


def sr_half(x, words):
    """Stochastic rounding to half with the given random words (detail/half.h float_to_half_sr):
    d = word & 0x1FFF is added to the float32 bits just below the half mantissa and the sum is
    truncated toward zero; below 2^-14 the value is first lifted by copysign(2^-14, x) (a float32
    add), rounded there the same way, and 2^-14 is taken back."""
    x = np.asarray(x, dtype=F32)
    d = np.asarray(words, dtype=np.uint32) & np.uint32(0x1FFF)
    small = (x.view(np.uint32) & np.uint32(0x7FFFFFFF)) < np.uint32(0x38800000)
    lift = np.where(small, np.copysign(F32(2.0 ** -14), x), F32(0)).astype(F32)
    with np.errstate(invalid="ignore"):
        y = np.where(small, x + lift, x).astype(F32)
        t = trunc_half((y.view(np.uint32) + d).astype(np.uint32).view(F32))
        return np.where(small, np.copysign(np.abs(t) - np.abs(lift), x), t).astype(F32)


_M64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """SplitMix64's finaliser (detail/rng.h), the core's counter-based hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def hash3(seed: int, stream: int, counter: int) -> int:
    """detail::hash3: a 64-bit value keyed by (seed, stream, counter), no generator state."""
    return mix64((mix64(seed ^ mix64(stream)) + counter) & _M64)


def _ident(x):
    return np.asarray(x, dtype=F32)


def lr_at(lr0: float, decay: float, epoch: int) -> np.float32:
    e = float(epoch)
    return F32(float(F32(lr0)) / (1.0 + float(F32(decay)) * e * math.sqrt(e)))


def dot_lanes(p: np.ndarray, q: np.ndarray, rnd=_ident) -> np.float32:
    k = p.shape[0]
    prod = rnd(p * q)
    a = np.zeros(LANES, F32)
    for c in range(0, k, LANES):
        w = min(LANES, k - c)
        a[:w] = rnd(a[:w] + prod[c:c + w])
    w = LANES // 2
    while w >= 1:
        a[:w] = rnd(a[:w] + a[w:2 * w])
        w //= 2
    return a[0]


def sgd_update(p, q, r, lr, lp, lq, rnd=_ident):
    """One rating's update on float32 working copies; returns (p', q')."""
    if rnd is _ident:
        dot = dot_lanes(p, q)
        e = F32(r) - dot
        lr = F32(lr)
        cp, cq, ce = F32(1) - lr * F32(lp), F32(1) - lr * F32(lq), lr * e
        return cp * p + ce * q, cq * q + ce * p
    dot = dot_lanes(p, q, rnd)
    e = rnd(rnd(F32(r)) - dot)
    lr_, lp_, lq_ = rnd(F32(lr)), rnd(F32(lp)), rnd(F32(lq))
    gp = rnd(rnd(e * q) - rnd(lp_ * p))
    gq = rnd(rnd(e * p) - rnd(lq_ * q))
    return rnd(p + rnd(lr_ * gp)), rnd(q + rnd(lr_ * gq))


def sum_sq_lanes(g: np.ndarray) -> np.float32:
    """Sum of squares of float32 g in the dot product's lane order (no rounding to half)."""
    return dot_lanes(np.asarray(g, F32), np.asarray(g, F32))


def adagrad_rate(eta0, g) -> np.float32:
    return F32(eta0) / np.sqrt(F32(g))


def adagrad_update(p, q, r, eta0, lp, lq, gp_state, gq_state, rnd=_ident):
    """One rating's adagrad update on float32 working copies; returns (p', q', Gp', Gq')."""
    k = p.shape[0]
    ep, eq = adagrad_rate(eta0, gp_state), adagrad_rate(eta0, gq_state)
    if rnd is _ident:
        e = F32(r) - dot_lanes(p, q)
        gp = e * q - F32(lp) * p
        gq = e * p - F32(lq) * q
        np_, nq_ = p + ep * gp, q + eq * gq
    else:
        e = rnd(rnd(F32(r)) - dot_lanes(p, q, rnd))
        lp_, lq_, ep, eq = rnd(F32(lp)), rnd(F32(lq)), rnd(ep), rnd(eq)
        gp = rnd(rnd(e * q) - rnd(lp_ * p))
        gq = rnd(rnd(e * p) - rnd(lq_ * q))
        np_, nq_ = rnd(p + rnd(ep * gp)), rnd(q + rnd(eq * gq))
    gp_state = F32(gp_state) + sum_sq_lanes(gp) / F32(k)
    gq_state = F32(gq_state) + sum_sq_lanes(gq) / F32(k)
    return np_, nq_, F32(gp_state), F32(gq_state)


def train_reference(users, items, ratings, n_users, n_items, *, k, epochs, method="fp32",
                    lr=DEFAULTS["lr"], decay=DEFAULTS["decay"], lambda_p=DEFAULTS["lambda_p"],
                    lambda_q=DEFAULTS["lambda_q"], init_std=DEFAULTS["init_std"], seed=42,
                    order="shuffle", rounding="nearest", groups=1, schedule="decay", states=False):
    """Serial SGD in the CPU backend's single-thread visiting order.  Returns (P, Q) float32,
    and the adagrad states (GU, GI) after them when ``states``.
    With rounding="stochastic" (mascot-n1) the stores use the core's counter-based words, which
    are keyed on the relabelled ids of `groups`-group reconstruction."""
    users = np.ascontiguousarray(users, np.int32)
    items = np.ascontiguousarray(items, np.int32)
    ratings = np.ascontiguousarray(ratings, F32)
    is_half = method != "fp32"
    arith = half if method == "fp16" else _ident
    store = half if is_half else _ident
    P = store(_core._testing.init_factors(n_users, k, init_std, seed, "P"))
    Q = store(_core._testing.init_factors(n_items, k, init_std, seed, "Q"))
    visit = _core._testing.visit_order(users, items, n_users, n_items, order, epochs, 1, k, is_half, seed)
    nnz = len(ratings)
    assert len(visit) == epochs * nnz
    if rounding == "stochastic":
        ro = _core._testing.reorder(users, items, n_users, n_items, groups, groups)
    ada = schedule == "adagrad"
    GU = np.ones(n_users, F32)
    GI = np.ones(n_items, F32)
    for e in range(epochs):
        lr_e = F32(lr) if ada else lr_at(lr, decay, e)
        for t in visit[e * nnz:(e + 1) * nnz]:
            u, i = users[t], items[t]
            if ada:
                p, q, GU[u], GI[i] = adagrad_update(P[u], Q[i], ratings[t], lr_e, lambda_p, lambda_q, GU[u], GI[i],
                                                    arith)
            else:
                p, q = sgd_update(P[u], Q[i], ratings[t], lr_e, lambda_p, lambda_q, arith)
            if rounding == "stochastic":
                wp, wq = _core._testing.sr_words(seed, e, int(ro["user_new"][u]), int(ro["item_new"][i]), k)
                P[u], Q[i] = sr_half(p, wp), sr_half(q, wq)
            else:
                P[u], Q[i] = store(p), store(q)
    return (P, Q, GU, GI) if states else (P, Q)


def _mix64_np(x: np.ndarray) -> np.ndarray:
    """mix64 over a uint64 array (wrapping arithmetic, as in C++)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


STREAM_VALID = 7  # detail/rng.h kStreamValid


def valid_split_mask(users, items, n_users: int, fraction: float, seed: int) -> np.ndarray:
    """The core's valid_split (trainer.cc) as a mask of the held-out positions: of each user's
    n_u ratings the floor(fraction * n_u) with the smallest hash3(seed, kStreamValid,
    (u << 32) | i), ties by position."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    key = (users.astype(np.uint64) << np.uint64(32)) | items.astype(np.uint64)
    base = np.uint64(mix64(seed ^ mix64(STREAM_VALID)))
    with np.errstate(over="ignore"):
        h = _mix64_np(base + key)
    pos = np.arange(len(users))
    order = np.lexsort((pos, h, users))  # by user, then hash, then position
    n_u = np.bincount(users, minlength=n_users)
    m = np.floor(fraction * n_u.astype(np.float64)).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(n_u)[:-1]])
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = pos - start[users[order]]
    return rank < m[users]
