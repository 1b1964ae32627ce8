"""Ranking metrics of top-N recommendations, and :func:`evaluate` (them next to RMSE).

Data flow: a test rating set (dense ids, like training data) -> relevant items per user (the
user's test items, optionally only those rated >= ``threshold``) -> ``MF.recommend`` for every
user with at least one relevant item -> hits -> precision@N, recall@N, NDCG@N averaged over
those users.  Users without relevant items are skipped and counted.

Definitions (binary relevance; ``rec`` = the N recommended items, ``rel`` = relevant items):
  precision@N = |rec ∩ rel| / N
  recall@N    = |rec ∩ rel| / |rel|
  NDCG@N      = DCG / IDCG, DCG = sum over ranks j = 1..N of [rec_j in rel] / log2(j + 1),
                IDCG = sum over j = 1..min(|rel|, N) of 1 / log2(j + 1)
  MAP@N       = mean over users of AP@N = sum over ranks j of [rec_j in rel] precision@j / min(|rel|, N)
  AUC@N       = the fraction of (relevant, non-relevant) item pairs ranked in order when the N
                recommended items come first in their order and every other item after them,
                tied (a tie counts 1/2); the non-relevant items are the n_items - |rel| others
                (the definitions of the `implicit` package's evaluation, for side-by-side runs)
An empty recommendation slot (id -1) is never a hit, and an id recommended more than once counts
once (at its first rank), so recall and NDCG stay <= 1.

:func:`ranking_evaluate` scores a model with ``recommend(userid, user_items, N, ...)`` (mascot.ALS,
or an `implicit` model) on held-out pairs, as implicit-feedback evaluations do; :func:`evaluate`
scores an ``MF`` against rated test data.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _inference
from ._arrays import sorted_unique
from ._ratings import Ratings, as_ratings

__all__ = ["precision_at_n", "recall_at_n", "ndcg_at_n", "map_at_n", "auc_at_n", "ranking_metrics", "relevant_items",
           "evaluate", "ranking_evaluate"]


def _hits(recommended: Any, relevant: Sequence[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits [users, n] bool, |relevant| per user) after checking shapes."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(f"recommended must be a 2-D array [users, N] (got shape {rec.shape})")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (got {n!r})")
    if rec.shape[1] < n:
        raise ValueError(f"recommended has {rec.shape[1]} columns, fewer than n={n}")
    if len(relevant) != rec.shape[0]:
        raise ValueError(f"recommended has {rec.shape[0]} rows but relevant has {len(relevant)} users")
    rec = rec[:, :n]
    hits = np.zeros(rec.shape, bool)
    sizes = np.zeros(rec.shape[0], np.int64)
    for u, rel in enumerate(relevant):
        r = np.asarray(list(rel) if isinstance(rel, (set, frozenset)) else rel).ravel()
        sizes[u] = len(np.unique(r))
        if sizes[u]:
            hits[u] = np.isin(rec[u], r) & (rec[u] != -1)
    return hits & _first_occurrence(rec), sizes


def _first_occurrence(rec: np.ndarray) -> np.ndarray:
    """[users, n] bool: True where the id is the first of its value in its row (a relevant id
    recommended twice is one hit, at its first rank)."""
    first = np.ones(rec.shape, bool)
    if rec.shape[1] > 1:
        order = np.argsort(rec, axis=1, kind="stable")
        s = np.take_along_axis(rec, order, axis=1)
        dup = np.zeros(rec.shape, bool)
        dup[:, 1:] = s[:, 1:] == s[:, :-1]
        np.put_along_axis(first, order, ~dup, axis=1)
    return first


def _per_user(recommended: Any, relevant: Sequence[Any], n: int) -> dict[str, np.ndarray]:
    hits, sizes = _hits(recommended, relevant, n)
    ok = sizes > 0
    h = hits[ok]
    s = sizes[ok]
    nh = h.sum(axis=1)
    disc = 1.0 / np.log2(np.arange(2, n + 2))
    dcg = (h * disc).sum(axis=1)
    idcg = np.cumsum(disc)[np.minimum(s, n) - 1] if len(s) else np.zeros(0)
    return {"precision": nh / n, "recall": nh / s, "ndcg": dcg / idcg if len(s) else np.zeros(0),
            "skipped": int((~ok).sum())}


def precision_at_n(recommended: Any, relevant: Sequence[Any], n: int) -> float:
    """Mean |rec ∩ rel| / n over users with at least one relevant item (NaN if none)."""
    return _mean(_per_user(recommended, relevant, n)["precision"])


def recall_at_n(recommended: Any, relevant: Sequence[Any], n: int) -> float:
    """Mean |rec ∩ rel| / |rel| over users with at least one relevant item (NaN if none)."""
    return _mean(_per_user(recommended, relevant, n)["recall"])


def ndcg_at_n(recommended: Any, relevant: Sequence[Any], n: int) -> float:
    """Mean NDCG@n (binary gains, log2 discount) over users with relevant items (NaN if none)."""
    return _mean(_per_user(recommended, relevant, n)["ndcg"])


def map_at_n(recommended: Any, relevant: Sequence[Any], n: int) -> float:
    """Mean AP@n over users with relevant items (NaN if none): sum over the hit ranks j of
    precision@j, divided by min(|rel|, n)."""
    hits, sizes = _hits(recommended, relevant, n)
    ok = sizes > 0
    h = hits[ok].astype(np.float64)
    if not len(h):
        return float("nan")
    prec = np.cumsum(h, axis=1) / np.arange(1, n + 1)
    return float(np.mean((prec * h).sum(axis=1) / np.minimum(sizes[ok], n)))


def auc_at_n(recommended: Any, relevant: Sequence[Any], n: int, n_items: Any) -> float:
    """Mean AUC@n over users with relevant items (see the module docstring); ``n_items`` is the
    number of candidate items, or one number per row of ``recommended``."""
    hits, sizes = _hits(recommended, relevant, n)
    cand = np.broadcast_to(np.asarray(n_items), (len(sizes),))
    if cand.dtype.kind not in "iu" or (cand < 1).any():
        raise ValueError(f"n_items must be integers >= 1 (got {n_items!r})")
    ok = sizes > 0
    if not ok.any():
        return float("nan")
    h = hits[ok]
    pos = sizes[ok].astype(np.float64)
    neg = cand[ok] - pos
    if (neg <= 0).any():
        raise ValueError("auc_at_n: a user has every candidate item relevant (no non-relevant item)")
    hit_before = np.cumsum(h, axis=1)
    miss = (~h).sum(axis=1)
    nh = h.sum(axis=1)
    # a non-relevant item in the list is ordered after the hits above it; one after the list is
    # after every hit of the list and tied with the relevant items outside it
    ordered = (hit_before * ~h).sum(axis=1) + (nh + (pos - nh) / 2.0) * (neg - miss)
    return float(np.mean(ordered / (pos * neg)))


def ranking_metrics(recommended: Any, relevant: Sequence[Any], n: int) -> dict[str, Any]:
    """precision@n, recall@n, ndcg@n (means), ``users`` evaluated and ``users_skipped``
    (rows whose relevant set is empty).  ``recommended[u]`` are item ids best first (-1 =
    empty slot; a repeated id counts once, at its first rank); ``relevant[u]`` an iterable of
    item ids."""
    p = _per_user(recommended, relevant, n)
    return {f"precision@{n}": _mean(p["precision"]), f"recall@{n}": _mean(p["recall"]),
            f"ndcg@{n}": _mean(p["ndcg"]), "users": int(len(p["precision"])), "users_skipped": p["skipped"]}


def relevant_items(test: Any, threshold: float | None = None) -> tuple[np.ndarray, list[np.ndarray], int]:
    """(users, their relevant item arrays, users with test ratings but none relevant) of a test
    set in dense ids; relevant = the user's test items rated >= ``threshold`` (all if None)."""
    t = as_ratings(test)
    keep = np.ones(len(t), bool) if threshold is None else t.ratings >= float(threshold)
    all_users = sorted_unique(t.users)
    u, i = t.users[keep].astype(np.int64), t.items[keep].astype(np.int64)
    order = np.lexsort((i, u))
    u, i = u[order], i[order]
    users, starts = np.unique(u, return_index=True)
    groups = np.split(i, starts[1:]) if len(users) else []
    return users, [np.unique(g) for g in groups], int(len(all_users) - len(users))


def evaluate(model: Any, test: Any, n: int = 10, threshold: float | None = None,
             exclude_seen: bool | None = None, unknown: str = "skip") -> dict[str, Any]:
    """RMSE and precision@n / recall@n / NDCG@n of ``model`` (an ``MF``) on ``test`` (rating
    data in dense ids, like training data).

    Each test user the model knows gets its top-n recommendations (``exclude_seen``: leave out
    training items; default True when the model carries its training pairs).  Users whose test
    items are all below ``threshold`` are skipped and counted.  Test ratings whose user or item
    is unknown to the model are left out and counted (``test_ratings_unknown``), as ``fit`` and
    ``MF.rmse`` do; ``unknown="raise"`` refuses them (:data:`mascot.UNKNOWN_POLICY`).
    """
    t = as_ratings(test)
    if len(t) == 0:
        raise ValueError("evaluate needs at least one test rating")
    model._check_fitted()
    nu, ni = model.P_.shape[0], model.Q_.shape[0]
    known = model._known_ratings(t, unknown, "evaluate")
    kt = Ratings(t.users[known], t.items[known], t.ratings[known], nu, ni)
    with warnings.catch_warnings():  # counted in the result instead
        warnings.simplefilter("ignore", _inference.UnknownIdWarning)
        rmse = model.rmse(kt) if len(kt) else float("nan")
    out: dict[str, Any] = {"rmse": rmse, "test_ratings": len(t), "test_ratings_unknown": int((~known).sum())}
    users, relevant, no_relevant = relevant_items(kt, threshold)
    if exclude_seen is None:
        exclude_seen = model.seen_ is not None
    if len(users):
        ids, _ = _recommend_dense(model, users, n, exclude_seen)
        m = ranking_metrics(ids, relevant, n)
    else:
        m = {f"precision@{n}": float("nan"), f"recall@{n}": float("nan"), f"ndcg@{n}": float("nan"),
             "users": 0, "users_skipped": 0}
    m["users_skipped"] = no_relevant + m["users_skipped"]
    out.update(m)
    out["n"] = int(n)
    out["threshold"] = threshold
    out["exclude_seen"] = bool(exclude_seen)
    return out


def ranking_evaluate(model: Any, train: Any, test: Any, n: int = 10, filter_train: bool = True,
                     batch: int = 2048) -> dict[str, Any]:
    """precision@n, MAP@n, NDCG@n, AUC@n and recall@n of ``model`` on held-out pairs.

    ``model`` has ``recommend(userids, user_items, N=n, filter_already_liked_items=...)``
    (mascot.ALS, or an `implicit` model); ``train`` and ``test`` are scipy.sparse CSR matrices
    users x items (the training interactions, left out of the recommendations when
    ``filter_train``, and the held-out ones: every stored test pair is relevant).  Users without
    test pairs are skipped and counted.  Recommendations are made ``batch`` users at a time."""
    from .als import _is_sparse

    for what, m in (("train", train), ("test", test)):
        if not _is_sparse(m) or m.format != "csr":
            raise ValueError(f"ranking_evaluate: {what} must be a scipy.sparse CSR matrix (users x items)")
    if train.shape != test.shape:
        raise ValueError(f"ranking_evaluate: train has shape {train.shape} but test {test.shape}")
    n_items = int(train.shape[1])
    counts = np.diff(test.indptr)
    users = np.nonzero(counts)[0]
    relevant = [test.indices[test.indptr[u]:test.indptr[u + 1]] for u in users]
    recs = []
    for b0 in range(0, len(users), batch):
        ub = users[b0:b0 + batch]
        ids, _ = model.recommend(ub, train[ub], N=n, filter_already_liked_items=filter_train)
        recs.append(np.asarray(ids).reshape(len(ub), -1))
    rec = np.concatenate(recs) if recs else np.zeros((0, n), np.int64)
    if not len(users):
        nan = float("nan")
        return {f"precision@{n}": nan, f"map@{n}": nan, f"ndcg@{n}": nan, f"auc@{n}": nan, f"recall@{n}": nan,
                "users": 0, "users_skipped": int(train.shape[0])}
    out = ranking_metrics(rec, relevant, n)
    auc = auc_at_n(rec, relevant, n, n_items)  # non-relevant: every other item (as `implicit` counts)
    return {f"precision@{n}": out[f"precision@{n}"], f"map@{n}": map_at_n(rec, relevant, n),
            f"ndcg@{n}": out[f"ndcg@{n}"], f"auc@{n}": auc, f"recall@{n}": out[f"recall@{n}"],
            "users": int(len(users)), "users_skipped": int(train.shape[0] - len(users))}


def _recommend_dense(model: Any, users: np.ndarray, n: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
    """model.recommend on dense user ids, returning dense item ids (id maps bypassed)."""
    n = _inference.check_n(n, model.Q_.shape[0], "items")
    exclude = model.seen_.rows(users) if exclude_seen and model.seen_ is not None else None
    if exclude_seen and model.seen_ is None:
        model._seen_pairs(None)  # raises the clear "needs the training pairs" error
    return _inference.top_n(model.P_[users], model.Q_, n, exclude)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")
