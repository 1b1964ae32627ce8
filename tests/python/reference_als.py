"""Slow, obviously-correct NumPy reference of one ALS half-iteration and iteration (issue 21).

The semantics every ALS backend (cpp/src/als/, cuda/als_*.cu) must match, in float64:

One iteration solves every user row with the item factors fixed, then every item row with the
new user factors fixed.  For row u with observed entries Omega_u (n_u = |Omega_u|) of the
fixed side's rows y_v:

* explicit ratings r_uv:  A_u = sum_v y_v y_v^T + lam_u I,  b_u = sum_v r_uv y_v;
* implicit feedback (Hu, Koren, Volinsky 2008): confidence c_uv = 1 + alpha r_uv, preference
  1 for every observed pair and 0 for every other pair.  The dense problem
  A_u = Y^T C_u Y + lam_u I,  b_u = Y^T C_u p_u  over ALL rows of Y is computed with the
  Y^T Y trick: A_u = Y^T Y + sum_v (c_uv - 1) y_v y_v^T + lam_u I,  b_u = sum_v c_uv y_v,
  O(n_u k^2) per row instead of O(n k^2).  A zero r_uv is no interaction (it is dropped).

Regularisation lam_u: ``weighted`` (Zhou et al. 2008, the cuMF_ALS paper's Eq. 2):
lam * n_u; ``plain``: lam.  The default (``weighted=None``) is weighted for explicit data and
plain for implicit data, as in Hu et al. and the `implicit` package.

Solvers: ``cholesky`` solves A_u x = b_u exactly; ``cg`` runs ``cg_steps`` conjugate-gradient
steps warm-started from the row's previous value (the paper's approximate CG, Algorithm 1),
stopping early when r.r < 1e-20 (as `implicit` does) or when p.Ap <= 0 (breakdown).

A row with no interactions is set to zero (never NaN, whatever the solver).

Rounding, where the kernels store FP16:
* ``hermitian_fp16`` (the paper's Solution 4): A_u is stored in FP16 and the solver reads it
  back into FP32.  To keep every entry in FP16's normal range A_u is scaled by the power of two
  s = 2^(14 - floor(log2 max_i A_ii)) before rounding and unscaled after (exact in binary
  floating point; |A_ij| <= max_i A_ii for a symmetric positive definite A).
* ``factors_fp16`` (MASCOT's m-quantization applied to ALS): the factors are stored in FP16;
  each solved row is rounded to the nearest half (ties to even) when stored.  The inputs Y and
  X0 are then the stored (half-representable) values.
"""
from __future__ import annotations

import numpy as np

CG_TOL = 1e-20


def half(x):
    """Round to the nearest half (ties to even), as float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def hermitian_scale(A):
    """The power of two that maps max_i A_ii into [2^14, 2^15) (see the module docstring)."""
    m = float(np.max(np.diag(A)))
    if not m > 0:
        return 1.0
    _, e = np.frexp(m)  # m = f 2^e, f in [0.5, 1): floor(log2 m) = e - 1
    return float(np.ldexp(1.0, 14 - (int(e) - 1)))


def round_hermitian(A):
    s = hermitian_scale(A)
    return half(A * s) / s


def csr(n_rows, rows, cols, vals):
    """(indptr, indices, data) of the triplets, rows ascending (order within a row kept)."""
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), np.asarray(cols, np.int64)[order], np.asarray(vals, np.float64)[order]


def system(indptr, indices, data, Y, u, *, lam, implicit, alpha, weighted, YtY=None):
    """(A_u, b_u, n_u) of row u (n_u = 0: no interactions)."""
    cols = indices[indptr[u]:indptr[u + 1]]
    vals = data[indptr[u]:indptr[u + 1]]
    if implicit:
        keep = vals != 0
        cols, vals = cols[keep], vals[keep]
    n = len(cols)
    k = Y.shape[1]
    G = Y[cols].astype(np.float64)
    reg = lam * n if weighted else lam
    if implicit:
        A = YtY + (G * (alpha * vals)[:, None]).T @ G + reg * np.eye(k)  # c - 1 = alpha r
        b = G.T @ (1.0 + alpha * vals)
    else:
        A = G.T @ G + reg * np.eye(k)
        b = G.T @ vals
    return A, b, n


def cg(A, b, x0, steps):
    """The paper's approximate CG: `steps` iterations from x0 (float64)."""
    x = np.array(x0, dtype=np.float64)
    r = b - A @ x
    p = r.copy()
    rs = r @ r
    if rs < CG_TOL:
        return x
    for _ in range(steps):
        Ap = A @ p
        pAp = p @ Ap
        if not pAp > 0:
            break
        a = rs / pAp
        x = x + a * p
        r = r - a * Ap
        rs_new = r @ r
        if rs_new < CG_TOL:
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def solve_side(indptr, indices, data, Y, X0, *, lam, implicit=False, alpha=1.0, solver="cholesky", cg_steps=3,
               weighted=None, hermitian_fp16=False, factors_fp16=False):
    """New factors of every row of one side (float64, or the stored halves as float64)."""
    if weighted is None:
        weighted = not implicit
    Y = np.asarray(Y, np.float64)
    X0 = np.asarray(X0, np.float64)
    rows, k = X0.shape
    YtY = Y.T @ Y if implicit else None
    X = np.zeros((rows, k))
    for u in range(rows):
        A, b, n = system(indptr, indices, data, Y, u, lam=lam, implicit=implicit, alpha=alpha, weighted=weighted,
                         YtY=YtY)
        if n == 0:
            continue
        if hermitian_fp16:
            A = round_hermitian(A)
        X[u] = np.linalg.solve(A, b) if solver == "cholesky" else cg(A, b, X0[u], cg_steps)
    return half(X) if factors_fp16 else X


def iteration(users, items, ratings, n_users, n_items, P, Q, **kw):
    """One ALS iteration (users, then items with the new users): (P', Q')."""
    up, ui, ud = csr(n_users, users, items, ratings)
    ip, ii, idata = csr(n_items, items, users, ratings)
    P1 = solve_side(up, ui, ud, Q, P, **kw)
    Q1 = solve_side(ip, ii, idata, P1, Q, **kw)
    return P1, Q1


def implicit_dense(R, Y, *, lam, alpha):
    """Brute force of the implicit solve (no Y^T Y trick): for every row u, the dense
    (Y^T C_u Y + lam I) x = Y^T C_u p_u over every column, C_u = diag(1 + alpha R[u]),
    p_u = (R[u] > 0).  Rows without a positive entry are zero."""
    R = np.asarray(R, np.float64)
    Y = np.asarray(Y, np.float64)
    k = Y.shape[1]
    X = np.zeros((R.shape[0], k))
    for u in range(R.shape[0]):
        p = (R[u] > 0).astype(np.float64)
        if not p.any():
            continue
        C = np.diag(1.0 + alpha * R[u])
        X[u] = np.linalg.solve(Y.T @ C @ Y + lam * np.eye(k), Y.T @ C @ p)
    return X
