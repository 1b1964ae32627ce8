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


# ---- popularity skew (issue 23): presets, parameters, spelling --------------------------------

def _top_item_share(r):
    return np.bincount(r.items, minlength=r.n_items).max() / len(r)


def test_skew_presets_and_names():
    assert data.synthetic_skews() == ["realistic", "heavy"]
    names = data.synthetic_names()
    assert "synthetic-ml10m" in names and "synthetic-ml10m-heavy" in names
    assert _core.parse_synthetic_spec("synthetic-ml10m-heavy:0.25") == ("synthetic-ml10m-heavy", 0.25)
    sh = _core.synthetic_shape("synthetic-netflix-heavy")
    assert sh["skew"] == "heavy" and sh["repeats"] and sh["n_users"] == 480189
    assert _core.synthetic_shape("synthetic-netflix")["skew"] == "realistic"
    for bad in ("synthetic-ml10m-huge", "synthetic-ml10m-realistic", "synthetic-ml10m-heavy-heavy"):
        with pytest.raises(ValueError, match="unknown synthetic dataset"):
            data.synthetic(bad)


def test_heavy_skew_has_a_hot_item_and_keeps_pairs_on_one_side():
    real = data.synthetic("synthetic-ml10m", 0.1, seed=3)
    heavy = data.synthetic("synthetic-ml10m-heavy:0.1", seed=3)
    assert heavy.name == "synthetic-ml10m-heavy:0.1"
    # same shape (users, items, about the ratings), different skew
    assert (heavy.train.n_users, heavy.train.n_items) == (real.train.n_users, real.train.n_items)
    n_real, n_heavy = len(real.train) + len(real.test), len(heavy.train) + len(heavy.test)
    assert n_heavy == n_real
    assert _top_item_share(real.train) < 0.02
    assert 0.08 < _top_item_share(heavy.train) < 0.16
    # repeated pairs exist, and none crosses the split
    k_tr = heavy.train.users.astype(np.int64) * heavy.train.n_items + heavy.train.items
    k_te = heavy.test.users.astype(np.int64) * heavy.train.n_items + heavy.test.items
    assert len(np.unique(k_tr)) < len(k_tr)
    assert not np.isin(k_te, k_tr).any()
    assert len(heavy.test) / n_heavy == pytest.approx(0.2, abs=0.02)


def test_skew_exponents_override_and_are_checked():
    base = data.synthetic("synthetic-ml10m", 0.02, seed=1)
    same = data.synthetic("synthetic-ml10m", 0.02, seed=1, user_exponent=0.5, item_exponent=1.25)
    assert same.train.items.tobytes() == base.train.items.tobytes()  # the realistic preset's values
    steep = data.synthetic("synthetic-ml10m", 0.02, seed=1, item_exponent=2.0)
    assert "item_exponent=2" in steep.name
    assert _top_item_share(steep.train) > _top_item_share(base.train)
    flat_users = data.synthetic("synthetic-ml10m", 0.02, seed=1, user_exponent=0.1)
    heavy_users = data.synthetic("synthetic-ml10m", 0.02, seed=1, user_exponent=1.0)
    du = [np.bincount(d.train.users).max() for d in (flat_users, heavy_users)]
    assert du[0] < du[1]
    for bad in (0.0, 5.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="item_exponent"):
            data.synthetic("synthetic-ml10m", 0.02, item_exponent=bad)
