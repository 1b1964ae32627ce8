"""Inference on a trained model, behind ``MF.predict`` / ``recommend`` / ``similar_items`` and
``mascot.metrics``: id maps, the training pairs of a model, and a blocked top-N search.

Data flow: public ids (raw ids when the model carries id maps, else dense 0-based ids) ->
:class:`IdMap` -> dense row indices of P / Q -> :func:`top_n` (scores of one block of queries
against one block of candidates at a time, so memory stays bounded by the block sizes for any
number of items) -> dense ids -> public ids.  Nothing here owns model data: arrays are borrowed
from the ``MF`` that calls in.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._arrays import sorted_unique, unmasked

UNKNOWN_CHOICES = ("raise", "skip")
UNKNOWN_POLICY = """Unknown ids: one policy for fit, rmse, metrics.evaluate, predict, recommend and similar_items.

An id is unknown to a model when the model has no row for it: a dense id outside 0..n-1, or a
raw id missing from the model's id maps.  A measure over rating data (fit's test set, rmse,
evaluate) also leaves out the ratings of users or items that had no training rating, when the
model carries its training pairs (a model of MF.fit, or saved by MF.save): their factors are
the random initialisation, not something learnt, and fit's test RMSE has always left them out,
so rmse(test) and evaluate(test) measure the same ratings as the fit did.

Every one of these functions takes unknown="raise" or unknown="skip".  "raise": a ValueError
naming the first unknown id (or rating).  "skip": they are left out and counted:
  fit(train, test)        dropped from the test set; counted in the report's
                          dataset.test_dropped                         (default "skip")
  rmse(ratings)           left out; an UnknownIdWarning gives the count (default "skip")
  metrics.evaluate(...)   left out; counted as test_ratings_unknown    (default "skip")
  predict(users, items)   NaN for the pair, and an UnknownIdWarning    (default "raise")
  recommend(users)        a row of id -1 ("" for string ids) and score -inf, and an
                          UnknownIdWarning; similar_items alike         (default "raise")
The defaults follow what is asked: a measure over a test set skips (test sets hold ratings of
users or items the training set lacks), an answer about given ids raises.
"""


class UnknownIdWarning(UserWarning):
    """Issued by ``unknown="skip"``: names the ids that were not in the model."""


class IdMap:
    """Maps public ids to dense row indices 0..n-1.

    ``raw`` is None (public ids are the dense ids) or a 1-D array of distinct raw ids, one per
    dense id (integers, stored as int64, or strings).  Lookups are vectorised: a sorted copy of
    ``raw`` and ``np.searchsorted``.
    """

    def __init__(self, raw: Any, n: int, what: str):
        self.what, self.n = what, int(n)  # what: "user" or "item"
        self.raw: np.ndarray | None = None
        if raw is None:
            return
        r = np.asarray(unmasked(raw, f"{what}_ids"))
        if r.ndim != 1:
            raise ValueError(f"{what}_ids must be one-dimensional (got shape {r.shape})")
        if len(r) != self.n:
            raise ValueError(f"{what}_ids has {len(r)} ids but the model has {self.n} {what}s")
        if r.dtype.kind == "O":  # e.g. from JSON: all ints or all strings
            if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in r):
                r = r.astype(np.int64)
            else:
                r = r.astype(str)
        if len(r) and ((r.dtype.kind == "u" and r.max() > np.iinfo(np.int64).max) or
                       (r.dtype.kind == "f" and np.all(np.isfinite(r)) and np.abs(r).max() >= 2.0**63)):
            bad = r[np.argmax(r)] if r.dtype.kind == "u" else r[np.argmax(np.abs(r))]
            raise ValueError(f"{what}_ids holds the raw id {_py(bad)!r}, outside the int64 range")
        if r.dtype.kind in "iu":
            r = r.astype(np.int64)
        elif r.dtype.kind == "f" and len(r) and np.all(np.isfinite(r)) and np.all(r == np.floor(r)):
            r = r.astype(np.int64)
        elif r.dtype.kind not in "US" and len(r):
            raise ValueError(f"{what}_ids must be integers or strings (got dtype {r.dtype})")
        elif r.dtype.kind == "S":
            r = r.astype(str)
        order = np.argsort(r, kind="stable")
        s = r[order]
        dup = np.nonzero(s[1:] == s[:-1])[0]
        if len(dup):
            raise ValueError(f"{what}_ids holds the raw id {_py(s[dup[0]])!r} more than once")
        self.raw, self._order, self._sorted = r, order, s

    @property
    def is_identity(self) -> bool:
        return self.raw is None

    def _query(self, ids: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query as given, as int64 or str, representable mask): an integer id outside the
        int64 range (a huge unsigned or float value) is in no model; it is never wrapped around."""
        q = np.atleast_1d(np.asarray(unmasked(ids, name)))
        if q.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (got shape {q.shape})")
        ok = np.ones(len(q), bool)
        if self.raw is not None and self.raw.dtype.kind == "U":
            return q, q.astype(str), ok
        if q.size == 0:
            return q, q.astype(np.int64), ok
        if q.dtype.kind == "O" and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in q):
            ok = np.array([-2**63 <= int(x) < 2**63 for x in q])  # Python ints beyond int64
            return q, np.array([int(x) if k else 0 for x, k in zip(q, ok)], np.int64), ok
        if q.dtype.kind == "f":
            if not np.all(np.isfinite(q)) or not np.all(q == np.floor(q)):
                raise ValueError(f"{name} must be integer ids (found a non-integer value)")
            ok = (q >= -2.0**63) & (q < 2.0**63)
        elif q.dtype.kind not in "iu" or q.dtype == np.bool_:
            raise ValueError(f"{name} must be integer ids (got dtype {q.dtype})")
        elif q.dtype.kind == "u" and q.dtype.itemsize == 8:
            ok = q <= np.uint64(np.iinfo(np.int64).max)
        return q, np.where(ok, q, 0).astype(np.int64), ok

    def to_dense(self, ids: Any, name: str, unknown: str = "raise") -> tuple[np.ndarray, np.ndarray]:
        """(dense ids, known mask); unknown ids (:data:`UNKNOWN_POLICY`) get dense id 0 and
        known=False.  With ``unknown="raise"`` the first unknown id is a ValueError naming it;
        with "skip" an UnknownIdWarning lists them."""
        if unknown not in UNKNOWN_CHOICES:
            raise ValueError(f"unknown must be one of {UNKNOWN_CHOICES} (got {unknown!r})")
        given, q, ok = self._query(ids, name)
        if self.raw is None:
            known = ok & (q >= 0) & (q < self.n)
            dense = np.where(known, q, 0)
        else:
            pos = np.searchsorted(self._sorted, q)
            pos_c = np.minimum(pos, max(self.n - 1, 0))
            known = ok & (pos < self.n) & (self._sorted[pos_c] == q) if self.n else np.zeros(len(q), bool)
            dense = np.where(known, self._order[pos_c] if self.n else 0, 0).astype(np.int64)
        if not known.all():
            where = np.nonzero(~known)[0]
            # an id outside the int64 range is named as it was given, never as its wrapped value
            bad = [_py(q[j]) if ok[j] else _py(given[j]) for j in where[:10]]
            if unknown == "raise":
                extra = f" ({len(where)} unknown ids in all)" if len(where) > 1 else ""
                span = f"n_{self.what}s={self.n}" if self.raw is None else f"{self.n} {self.what}s with raw ids"
                if self.raw is None and bad[0] < 0:
                    span = f"ids must be >= 0, n_{self.what}s={self.n}"
                raise ValueError(f"{self.what} id {bad[0]!r} is not in the model ({span}){extra}")
            shown = ", ".join(repr(b) for b in bad) + (", ..." if len(where) > 10 else "")
            warnings.warn(f"skipped {len(where)} {self.what} id(s) not in the model: {shown}",
                          UnknownIdWarning, stacklevel=3)
        return dense.astype(np.int64), known

    def to_public(self, dense: np.ndarray) -> np.ndarray:
        """Dense ids -> public ids; dense -1 (no item) stays -1 (int ids) or "" (string ids)."""
        if self.raw is None:
            return dense
        valid = dense >= 0
        out = self.raw[np.where(valid, dense, 0)]
        if self.raw.dtype.kind == "U":
            return np.where(valid, out, "")
        return np.where(valid, out, -1)


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


class SeenPairs:
    """Training (user, item) pairs as CSR per user: ``indptr`` (n_users + 1, int64) and sorted,
    duplicate-free ``indices`` (int32 dense item ids)."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_users: int, n_items: int, where: str = "seen pairs",
                 names: tuple[str, str] = ("indptr", "indices")):
        indptr = np.asarray(indptr)
        indices = np.asarray(indices)
        ptr, idx = names  # how the messages name the two arrays (e.g. their files)
        for name, a in ((ptr, indptr), (idx, indices)):
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise ValueError(f"{where}: {name}: must be a 1-D integer array (got {a.ndim}-D {a.dtype})")
        if len(indptr) != n_users + 1 or (len(indptr) and (indptr[0] != 0 or indptr[-1] != len(indices))):
            raise ValueError(f"{where}: {ptr}: does not match {n_users} users and {len(indices)} pairs ({idx})")
        if np.any(np.diff(indptr) < 0):
            raise ValueError(f"{where}: {ptr}: is not non-decreasing")
        if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
            raise ValueError(f"{where}: {idx}: an item index is outside 0..{n_items - 1}")
        self.indptr = indptr.astype(np.int64)
        self.indices = indices.astype(np.int32)

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> SeenPairs:
        u = np.asarray(users, np.int64)
        i = np.asarray(items, np.int64)
        if len(u):
            key = sorted_unique(u * max(n_items, 1) + i)  # sorted by user, then item; duplicates dropped
            u, i = key // max(n_items, 1), key % max(n_items, 1)
        indptr = np.zeros(n_users + 1, np.int64)
        np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
        return cls(indptr, i.astype(np.int32), n_users, n_items)

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, item ids) of every seen pair of ``users`` (positions 0..len-1)."""
        start = self.indptr[users]
        lens = self.indptr[users + 1] - start
        total = int(lens.sum())
        rr = np.repeat(np.arange(len(users)), lens)
        offs = np.repeat(start - (np.cumsum(lens) - lens), lens) + np.arange(total)
        return rr, self.indices[offs].astype(np.int64)





def top_n(A: np.ndarray, B: np.ndarray, n: int, exclude: tuple[np.ndarray, np.ndarray] | None = None,
          block_rows: int = 512, block_cols: int = 16384, col_scale: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """For each row a of ``A``, the ``n`` rows b of ``B`` with the largest a . b (times
    ``col_scale[b]`` when given: cosine similarity without a normalised copy of ``B``).

    Returns (ids [len(A), n] int64, scores [len(A), n] float32), best first; equal scores are
    ordered by smaller id, so the result does not depend on the block sizes.  ``exclude`` =
    (row positions, B ids) pairs that must not be returned; NaN scores are treated as excluded.
    Slots with no eligible candidate hold id -1 and score -inf.  Peak memory is about
    ``block_rows * block_cols * 5`` bytes plus the output, for any number of B rows.
    """
    nq, m = A.shape[0], B.shape[0]
    ids = np.full((nq, n), -1, np.int64)
    scores = np.full((nq, n), -np.inf, np.float32)
    if exclude is not None:
        ex_r, ex_c = exclude
        order = np.argsort(ex_r, kind="stable")
        ex_r, ex_c = ex_r[order], ex_c[order]
    for r0 in range(0, nq, block_rows):
        r1 = min(nq, r0 + block_rows)
        rows = r1 - r0
        best_i = np.full((rows, n), -1, np.int64)
        best_s = np.full((rows, n), -np.inf, np.float32)
        if exclude is not None:
            lo, hi = np.searchsorted(ex_r, r0), np.searchsorted(ex_r, r1)
            blk_r, blk_c = ex_r[lo:hi] - r0, ex_c[lo:hi]
        for c0 in range(0, m, block_cols):
            c1 = min(m, c0 + block_cols)
            S = A[r0:r1] @ B[c0:c1].T
            if col_scale is not None:
                S *= col_scale[c0:c1]
            if exclude is not None and len(blk_r):
                sel = (blk_c >= c0) & (blk_c < c1)
                S[blk_r[sel], blk_c[sel] - c0] = -np.inf
            # Blocks come in increasing id order, so a score equal to a row's current n-th best
            # loses the tie: only scores strictly above it are candidates (NaN never is).
            cand = S > best_s[:, n - 1][:, None]
            big = np.nonzero(cand.sum(axis=1) > n)[0]
            if len(big):  # keep scores >= the row's n-th largest (ties included, resolved below)
                Sb = S[big]
                np.putmask(Sb, np.isnan(Sb), -np.inf)
                w = c1 - c0
                kth = np.partition(Sb, w - n, axis=1)[:, w - n]
                cand[big] &= Sb >= kth[:, None]
            cr, cc = np.nonzero(cand)
            br, bc = np.nonzero(best_i >= 0)
            all_r = np.concatenate([cr, br])
            all_i = np.concatenate([cc + c0, best_i[br, bc]])
            all_s = np.concatenate([S[cr, cc], best_s[br, bc]]).astype(np.float32)
            order = np.lexsort((all_i, -all_s, all_r))
            all_r, all_i, all_s = all_r[order], all_i[order], all_s[order]
            rank = np.arange(len(all_r)) - np.searchsorted(all_r, all_r)
            keep = rank < n
            best_i.fill(-1)
            best_s.fill(-np.inf)
            best_i[all_r[keep], rank[keep]] = all_i[keep]
            best_s[all_r[keep], rank[keep]] = all_s[keep]
        ids[r0:r1], scores[r0:r1] = best_i, best_s
    return ids, scores


def check_n(n: Any, limit: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"n must be an integer (got {n!r})")
    if n <= 0:
        raise ValueError(f"n must be >= 1 (got {n})")
    if n > limit:
        raise ValueError(f"n={n} exceeds the number of {what} ({limit})")
    return int(n)


def check_block(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1 (got {v!r})")
    return int(v)
