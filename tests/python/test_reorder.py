"""Group-based matrix reconstruction."""
import numpy as np
import pytest

import mascot
from mascot import _core


def _counts(a, n):
    return np.bincount(a, minlength=n)


@pytest.mark.parametrize("g", [1, 3, 10, 40])
def test_groups_contiguous_ordered_ties_unsplit(tiny, g):
    u, i, r, nu, ni = tiny
    d = _core._testing.reorder(u, i, nu, ni, g, min(g, ni))
    for side, n, ids in (("user", nu, u), ("item", ni, i)):
        new, old = d[f"{side}_new"], d[f"{side}_old"]
        # inverse maps exact
        assert np.array_equal(new[old], np.arange(n)) and np.array_equal(old[new], np.arange(n))
        cnt_new = _counts(new[ids], n)
        assert np.array_equal(cnt_new, d[f"{side}_count"])
        assert np.all(np.diff(cnt_new) <= 0), "relabelled ids must be ordered by count, descending"
        start = d[f"{side}_group_start"]
        assert start[0] == 0 and start[-1] == n and np.all(np.diff(start) > 0)
        assert len(start) - 1 <= (g if side == "user" else min(g, ni))
        for b in start[1:-1]:
            assert cnt_new[b - 1] != cnt_new[b], "a tie was split across groups"
        gr = d[f"{side}_group_ratings"]
        assert gr.sum() == len(ids)
        assert np.array_equal(gr, np.add.reduceat(cnt_new, start[:-1]))


def test_split_groups_about_equal():
    counts = np.arange(1000, 0, -1).astype(np.int64)  # all distinct: exact split possible
    start = _core._testing.split_groups(counts, 10)
    assert np.array_equal(np.diff(start), np.full(10, 100))
    ties = np.array([5] * 50 + [3] * 50 + [1] * 900, dtype=np.int64)
    start = _core._testing.split_groups(ties, 10)
    # ideal boundary 100 falls between the 3s and the 1s; the next ideal (200) is inside the
    # run of 900 ones, which may not be split: two groups
    assert list(start) == [0, 100, 1000]
    start = _core._testing.split_groups(ties, 40)  # ideal every 25: 25 and 75 sit inside runs -> 50, 100
    assert list(start) == [0, 50, 100, 1000]


@pytest.mark.parametrize("method", ["fp32", "mascot-n1"])
def test_relabelling_does_not_change_the_model(tiny, method):
    """Grouping only relabels ids: with one thread the trained model is identical for any g."""
    u, i, r, nu, ni = tiny
    models = []
    for g in (1, 4, 20):
        m = mascot.MF(k=16, method=method, epochs=2, groups=g, threads=1, device="cpu").fit((u, i, r))
        models.append(m)
    for m in models[1:]:
        assert np.array_equal(m.P, models[0].P) and np.array_equal(m.Q, models[0].Q)
        assert np.array_equal(m.predict(u, i), models[0].predict(u, i))
    assert models[2].report_["dataset"]["user_groups"] > 1
