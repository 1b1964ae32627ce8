"""From parsed raw ids to a prepared split: dense ids, the every-pair-once check, the folds.

Dense ids are 0-based and assigned in increasing raw-id order over the *training* ratings
(:func:`finish`); test ratings whose user or item never occurs in train are dropped and
counted.  MovieLens sets are cut into ``N_FOLDS`` seeded folds (:func:`fold_indices`); Netflix
and Yahoo come with their split.  :func:`check_unique_pairs` names the first (user, item) pair
rated twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._ratings import Ratings
from ._common import DatasetError
from ._parse import ID_MAX

DEFAULT_SEED = 42
N_FOLDS = 5


def pair_keys(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """One int64 key per (user, item) pair of all ``parts``, equal exactly for equal pairs."""
    umax = max((int(u.max(initial=0)) for u, _ in parts), default=0)
    imax = max((int(i.max(initial=0)) for _, i in parts), default=0)
    if (umax + 1) * (imax + 1) > ID_MAX:  # huge raw ids: dense ones (not the real data sets)
        cut = np.cumsum([len(u) for u, _ in parts])[:-1]
        _, du = dense_ids(np.concatenate([u for u, _ in parts]).astype(np.int64))
        _, di = dense_ids(np.concatenate([i for _, i in parts]).astype(np.int64))
        parts = list(zip(np.split(du, cut), np.split(di, cut)))
        umax = int(du.max(initial=0))
    span = umax + 1
    key = np.empty(sum(len(u) for u, _ in parts), np.int64)
    off = 0
    for u, i in parts:
        seg = key[off:off + len(u)]
        seg[:] = i
        seg *= span
        seg += u
        off += len(u)
    return key


def check_unique_pairs(parts: list[tuple[np.ndarray, np.ndarray]], where: Callable[[int], tuple[str, int]],
                        names: tuple[str, str], what: str) -> None:
    """DatasetError when a (user, item) pair occurs twice among ``parts`` (concatenated): names
    the first repeated rating by ``where(k) = (file, line)`` (k: its index in the concatenation),
    where the pair occurred first, and the number of repeats.  Upstream files rate each pair
    once; a repeat means a file read twice or a corrupt file.  Costs one sort of int64 keys."""
    key = pair_keys(parts)
    key.sort()
    n = int(np.count_nonzero(key[1:] == key[:-1]))
    if n == 0:
        return
    key = pair_keys(parts)  # the error path: which rating repeats which
    order = np.argsort(key, kind="stable")
    sk = key[order]
    rep = np.flatnonzero(sk[1:] == sk[:-1]) + 1
    k = int(order[rep].min())  # the first rating that repeats an earlier one
    first = int(np.argmax(key == key[k]))
    off = np.cumsum([0] + [len(u) for u, _ in parts])
    p = int(np.searchsorted(off, k, side="right")) - 1
    u, i = int(parts[p][0][k - off[p]]), int(parts[p][1][k - off[p]])
    (lab, line), (lab0, line0) = where(k), where(first)
    at = f"line {line0}" if lab0 == lab else f"{lab0}:{line0}"
    raise DatasetError(f"{lab}:{line}: duplicate rating of {names[0]} {u}, {names[1]} {i} (first rated at {at}); "
                       f"{n:,} repeated (user, item) pair(s) in {what} (every pair must be rated once)")


def dense_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(raw_ids_sorted, dense)``: dense 0-based ids in increasing raw-id order.

    Bounded ids (all MovieLens / Netflix / Yahoo ids) use an O(n) lookup table; others np.unique.
    """
    if ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < max(4 * ids.size, 1 << 20):
        present = np.zeros(hi + 1, bool)
        present[ids] = True
        raw = np.flatnonzero(present)
        lut = np.cumsum(present, dtype=np.int64).astype(np.int32) - 1
        return raw.astype(np.int64), lut[ids]
    raw, inv = np.unique(ids, return_inverse=True)
    return raw.astype(np.int64), inv.astype(np.int32)


def lookup_ids(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Dense id of each of ``ids`` in the sorted ``raw``, or -1 when absent."""
    if raw.size == 0:
        return np.full(ids.shape, -1, np.int32)
    pos = np.searchsorted(raw, ids)
    pos_c = np.minimum(pos, raw.size - 1)
    return np.where(raw[pos_c] == ids, pos_c, -1).astype(np.int32)


@dataclass
class Prepared:
    """A prepared split in dense ids, with the raw id of each dense id."""

    train: Ratings
    test: Ratings
    user_ids: np.ndarray
    item_ids: np.ndarray
    dropped: int


def finish(tr_u, tr_i, tr_r, te_u, te_i, te_r) -> Prepared:
    """Dense ids from the training ratings; drops test ratings of unseen users / items."""
    user_ids, du = dense_ids(tr_u)
    del tr_u
    item_ids, di = dense_ids(tr_i)
    del tr_i
    tu, ti = lookup_ids(user_ids, te_u), lookup_ids(item_ids, te_i)
    keep = (tu >= 0) & (ti >= 0)
    nu, ni = len(user_ids), len(item_ids)
    train = Ratings(du, di, np.ascontiguousarray(tr_r, np.float32), nu, ni)
    test = Ratings(np.ascontiguousarray(tu[keep]), np.ascontiguousarray(ti[keep]),
                         np.ascontiguousarray(te_r[keep], np.float32), nu, ni)
    return Prepared(train, test, user_ids, item_ids, int((~keep).sum()))


def fold_indices(n: int, fold: int, seed: int = DEFAULT_SEED, folds: int = N_FOLDS) -> np.ndarray:
    """Boolean mask of the test ratings of ``fold`` (1-based) in a seeded ``folds``-way split.

    A seeded permutation of ``range(n)`` cut into ``folds`` near-equal parts: the folds are
    disjoint, cover every rating, and depend only on ``(n, seed)``.
    """
    if not 1 <= fold <= folds:
        raise DatasetError(f"fold must be in 1..{folds} (got {fold})")
    perm = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, bool)
    mask[perm[(fold - 1) * n // folds: fold * n // folds]] = True
    return mask


def split_folds(u, i, r, fold: int, seed: int) -> Prepared:
    test = fold_indices(len(r), fold, seed)
    train = ~test
    return finish(u[train], i[train], r[train], u[test], i[test], r[test])

