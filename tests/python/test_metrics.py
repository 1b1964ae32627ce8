"""Ranking metrics against hand-computed examples, and evaluate() on a hand-built model."""
import math

import numpy as np
import pytest

from mascot import MF, metrics
from mascot._inference import SeenPairs
from mascot.data import Ratings

L3 = 1 / math.log2(3)  # discount of rank 2


def test_metrics_hand_computed():
    rec = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    rel = [{1, 3, 9}, [7], set()]  # user 2 has nothing relevant: skipped and counted
    # user 0: hits at ranks 1 and 3; user 1: no hit
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + L3 + 1 / math.log2(4))
    got = metrics.ranking_metrics(rec, rel, 3)
    assert got == pytest.approx({"precision@3": (2 / 3 + 0) / 2, "recall@3": (2 / 3 + 0) / 2,
                                 "ndcg@3": (ndcg0 + 0) / 2, "users": 2, "users_skipped": 1})
    # N = 2 uses the first two columns; IDCG over min(|rel|, N) = 2 ranks
    assert metrics.precision_at_n(rec, rel, 2) == pytest.approx((1 / 2 + 0) / 2)
    assert metrics.recall_at_n(rec, rel, 2) == pytest.approx((1 / 3 + 0) / 2)
    assert metrics.ndcg_at_n(rec, rel, 2) == pytest.approx((1 / (1 + L3) + 0) / 2)
    # a perfect list scores 1; empty slots (-1) are never hits
    assert metrics.ndcg_at_n(np.array([[5, -1]]), [{5}], 2) == 1.0
    assert metrics.precision_at_n(np.array([[-1, -1]]), [{-1}], 2) == 0.0
    assert math.isnan(metrics.recall_at_n(np.array([[1]]), [set()], 1))


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="2-D array"):
        metrics.precision_at_n(np.array([1, 2]), [{1}], 1)
    with pytest.raises(ValueError, match="fewer than n=3"):
        metrics.recall_at_n(np.zeros((1, 2), int), [{1}], 3)
    with pytest.raises(ValueError, match="2 rows but relevant has 1 users"):
        metrics.ndcg_at_n(np.zeros((2, 2), int), [{1}], 2)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        metrics.ranking_metrics(np.zeros((1, 2), int), [{1}], 0)


def hand_model():
    # scores p_u . q_i: user 0 -> [3, 2, 0, 0], user 1 -> [0, 0, 3, 1], user 2 -> [3, 2, 3, 1]
    m = MF(k=2)
    m.P_ = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    m.Q_ = np.array([[3, 0], [2, 0], [0, 3], [0, 1]], np.float32)
    # training pairs: user 0 saw 0, user 1 saw 1 and 2, user 2 saw 3 (every user and item was trained)
    m.seen_ = SeenPairs.from_pairs(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 3]), 3, 4)
    return m


TEST = Ratings(np.array([0, 0, 1, 2, 5], np.int32), np.array([1, 3, 0, 3, 0], np.int32),
               np.array([5, 2, 4, 1, 3], np.float32), 6, 4)  # user 5 is unknown to the model


def test_evaluate_hand_computed():
    m = hand_model()
    # top-2 with training items left out (ties by smaller id): u0 [1, 2], u1 [3, 0], u2 [0, 2]
    assert m.recommend([0, 1, 2], n=2)[0].tolist() == [[1, 2], [3, 0], [0, 2]]
    r = metrics.evaluate(m, TEST, n=2)
    # relevant: u0 {1, 3}, u1 {0}, u2 {3}
    assert r["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert r["recall@2"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert r["ndcg@2"] == pytest.approx((1 / (1 + L3) + L3 + 0) / 3)
    assert (r["users"], r["users_skipped"], r["test_ratings"], r["test_ratings_unknown"]) == (3, 0, 5, 1)
    # errors on the known ratings: 5-2, 2-0, 4-0, 1-1
    assert r["rmse"] == pytest.approx(math.sqrt((9 + 4 + 16 + 0) / 4))
    assert r["exclude_seen"] is True

    t = metrics.evaluate(m, TEST, n=2, threshold=4)  # relevant: u0 {1}, u1 {0}; u2 skipped
    assert (t["users"], t["users_skipped"]) == (2, 1)
    assert t["precision@2"] == pytest.approx(1 / 2)
    assert t["recall@2"] == pytest.approx(1.0)
    assert t["ndcg@2"] == pytest.approx((1 + L3) / 2)

    # without leaving training items out: u0 [0, 1], u1 [2, 3], u2 [0, 2]
    s = metrics.evaluate(m, TEST, n=2, exclude_seen=False)
    assert s["precision@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert s["ndcg@2"] == pytest.approx((L3 / (1 + L3)) / 3)


def test_evaluate_bad_input():
    m = hand_model()
    with pytest.raises(ValueError, match="at least one test rating"):
        metrics.evaluate(m, Ratings(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0))
    with pytest.raises(ValueError, match="n must be >= 1"):
        metrics.evaluate(m, TEST, n=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        metrics.evaluate(MF(k=2), TEST)
    m.seen_ = None
    with pytest.raises(ValueError, match="training pairs"):
        metrics.evaluate(m, TEST, n=2, exclude_seen=True)
    assert metrics.evaluate(m, TEST, n=2)["exclude_seen"] is False  # default follows the model


def test_sorted_unique_matches_numpy():
    from mascot._arrays import sorted_unique
    rng = np.random.default_rng(3)
    for a in (np.zeros(0, np.int64), np.array([5]), rng.integers(0, 50, 1000), rng.integers(-2**40, 2**40, 5000),
              np.repeat(np.arange(7, dtype=np.int32), 3)):
        got = sorted_unique(a)
        np.testing.assert_array_equal(got, np.unique(a))
        assert got.dtype == a.dtype


def test_repeated_recommended_id_counts_once():
    """audit 7: an id recommended twice is one hit (at its first rank); recall and NDCG <= 1;
    -1 padding slots may repeat and are never hits."""
    got = metrics.ranking_metrics(np.array([[1, 1, 1]]), [[1]], 3)
    assert got["precision@3"] == pytest.approx(1 / 3)
    assert got["recall@3"] == pytest.approx(1.0) and got["ndcg@3"] == pytest.approx(1.0)
    # [2, 1, 1]: the hit is at rank 2 only once
    got = metrics.ranking_metrics(np.array([[2, 1, 1], [5, -1, -1]]), [[1, 3], [5]], 3)
    assert got["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert got["ndcg@3"] == pytest.approx(((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + 1) / 2)
    assert metrics.recall_at_n(np.array([["a", "a", "b"]]), [["a", "b"]], 3) == pytest.approx(1.0)
    assert metrics.ndcg_at_n(np.array([[7, 7, 7, 7]]), [[7, 8]], 4) <= 1.0
