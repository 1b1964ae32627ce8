"""The built-in synthetic datasets: shapes, determinism, heavy tails."""
import numpy as np
import pytest

from mascot import _core, data


def test_determinism_same_seed_same_bytes():
    a = data.synthetic("synthetic-ml10m", 0.02, seed=5, threads=1)
    b = data.synthetic("synthetic-ml10m", 0.02, seed=5, threads=2)
    for x, y in ((a.train, b.train), (a.test, b.test)):
        for f in ("users", "items", "ratings"):
            assert getattr(x, f).tobytes() == getattr(y, f).tobytes()
    c = data.synthetic("synthetic-ml10m", 0.02, seed=6)
    assert c.train.ratings.tobytes() != a.train.ratings.tobytes()


def test_full_size_ml10m_matches_table_one():
    d = data.synthetic("synthetic-ml10m", 1.0, seed=42)
    n = len(d.train) + len(d.test)
    assert n == 10000035
    assert d.train.n_users == 69878 and d.train.n_items == 10677
    assert len(d.test) / n == pytest.approx(0.2, abs=0.01)
    u = np.concatenate([d.train.users, d.test.users])
    i = np.concatenate([d.train.items, d.test.items])
    # distinct pairs
    key = u.astype(np.int64) * d.train.n_items + i
    assert len(np.unique(key)) == n
    du = np.bincount(u, minlength=d.train.n_users)
    di = np.bincount(i, minlength=d.train.n_items)
    assert du.min() >= 20
    # heavy tails: the top 10% of users hold far more than 10% of ratings, max >> median
    top = np.sort(du)[::-1][: len(du) // 10].sum() / n
    assert top > 0.3
    assert du.max() > 10 * np.median(du) and di.max() > 10 * np.median(di)
    r = d.train.ratings
    assert r.min() >= 1 and r.max() <= 5 and np.all(r * 2 == np.round(r * 2))
    assert 0.5 < r.std() < 1.5


@pytest.mark.parametrize("name", ["synthetic-ml25m", "synthetic-netflix", "synthetic-yahoo"])
def test_other_shapes_scaled(name):
    d = data.synthetic(name, 0.001, seed=1)
    assert len(d.train) > 1000 and d.train.n_users > 10 and d.train.n_items > 10


@pytest.mark.parametrize("spec", ["synthetic-ml10m:0", "synthetic-ml10m:1.5", "synthetic-ml10m:abc", "synthetic-x"])
def test_bad_specs(spec):
    with pytest.raises(ValueError):
        data.synthetic(spec)


def test_parse_spec():
    assert _core.parse_synthetic_spec("synthetic-netflix:0.1") == ("synthetic-netflix", 0.1)
    assert _core.parse_synthetic_spec("ml10m") is None
