"""The validation hold-out (valid_fraction): the split against its NumPy reference, its
properties (seeded, per user, disjoint, never a whole user), and the validation RMSE in the
epoch records, the report, the history and the progress output of both front ends."""
import json
import subprocess

import numpy as np
import pytest

import mascot
from mascot import data
from reference import valid_split_mask


@pytest.fixture(scope="module")
def small():
    return data.synthetic("synthetic-ml10m:0.002")  # 3125 users, 477 items, ~16K ratings


def _known(tr, va):
    """The ratings of `va` whose user and item have a training rating (the ones the core evaluates)."""
    ok = np.isin(va.items, tr.items) & np.isin(va.users, tr.users)
    return data.Ratings(va.users[ok], va.items[ok], va.ratings[ok], va.n_users, va.n_items)


def _key(r):
    return set(zip(r.users.tolist(), r.items.tolist(), r.ratings.tolist()))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_split_matches_the_numpy_reference(small, fraction):
    tr = small.train
    a, b = data.valid_split(tr, fraction, seed=7)
    held = valid_split_mask(tr.users, tr.items, tr.n_users, fraction, 7)
    for part, mask in ((a, ~held), (b, held)):  # the input's order, every array
        np.testing.assert_array_equal(part.users, tr.users[mask])
        np.testing.assert_array_equal(part.items, tr.items[mask])
        np.testing.assert_array_equal(part.ratings, tr.ratings[mask])
        assert (part.n_users, part.n_items) == (tr.n_users, tr.n_items)


def test_split_is_per_user_seeded_and_disjoint(small):
    tr = small.train
    f = 0.3
    a, b = data.valid_split(tr, f, seed=1)
    assert len(a) + len(b) == len(tr) and not (_key(a) & _key(b))
    n_u = np.bincount(tr.users, minlength=tr.n_users)
    v_u = np.bincount(b.users, minlength=tr.n_users)
    np.testing.assert_array_equal(v_u, np.floor(f * n_u).astype(np.int64))  # floor(F n_u) of each user
    assert np.all(np.bincount(a.users, minlength=tr.n_users)[n_u > 0] >= 1)  # every user keeps one
    a2, b2 = data.valid_split(tr, f, seed=1)
    np.testing.assert_array_equal(b.items, b2.items)  # a function of the seed
    _, b3 = data.valid_split(tr, f, seed=2)
    assert _key(b) != _key(b3)
    # independent of the input's order: the same ratings are held out after a permutation
    p = np.random.default_rng(0).permutation(len(tr))
    _, bp = data.valid_split(data.Ratings(tr.users[p], tr.items[p], tr.ratings[p], tr.n_users, tr.n_items), f, 1)
    assert _key(bp) == _key(b)


def test_split_off_and_bad_fractions(small):
    a, b = data.valid_split(small.train, 0.0)
    assert len(b) == 0 and len(a) == len(small.train)
    for bad in (1.0, -0.1, float("nan"), 2):
        with pytest.raises(ValueError, match=r"valid_fraction must be in \[0, 1\)"):
            data.valid_split(small.train, bad)
    with pytest.raises(ValueError, match="valid_fraction must be a number"):
        data.valid_split(small.train, "0.1")
    for bad in (1.0, -0.5):
        with pytest.raises(ValueError, match=r"valid_fraction must be in \[0, 1\) \(got") as e:
            mascot.MF(valid_fraction=bad)
        assert "\n" not in str(e.value)


def test_fit_reports_validation_rmse(small):
    f = 0.2
    m = mascot.MF(k=8, epochs=3, groups=4, threads=1, deterministic=True, valid_fraction=f)
    m.fit(small.train, small.test)
    rep = m.report_
    tr, va = data.valid_split(small.train, f, seed=42)
    assert rep["dataset"]["n_train"] == len(tr)
    assert rep["dataset"]["n_valid"] + rep["dataset"]["valid_dropped"] == len(va)
    h = m.history_
    assert len(h) == 3 and all(e["valid_rmse"] is not None and e["test_rmse"] is not None for e in h)
    assert rep["totals"]["final_valid_rmse"] == h[-1]["valid_rmse"]
    # the validation RMSE is the model's RMSE on the hold-out (ratings of items with a training rating)
    assert m.rmse(_known(tr, va)) == pytest.approx(h[-1]["valid_rmse"], rel=1e-5)
    # the hold-out is not trained on: the same run on the training part alone gives the same model
    m2 = mascot.MF(k=8, epochs=3, groups=4, threads=1, deterministic=True).fit(tr, small.test)
    np.testing.assert_array_equal(m.P_, m2.P_)
    assert [e["test_rmse"] for e in m2.history_] == [e["test_rmse"] for e in h]
    assert all(e["valid_rmse"] is None for e in m2.history_) and "n_valid" not in m2.report_["dataset"]


def test_validation_without_a_test_set(small):
    m = mascot.MF(k=8, epochs=2, groups=4, threads=2, valid_fraction=0.1).fit(small.train)
    assert all(e["test_rmse"] is None and e["valid_rmse"] > 0 for e in m.history_)
    assert m.report_["totals"]["final_test_rmse"] is None


def test_validation_rmse_is_independent_of_threads(small):
    # the split and the evaluation set do not depend on the threads (the training order does)
    a = mascot.MF(k=8, epochs=1, groups=4, threads=1, valid_fraction=0.2).fit(small.train)
    b = mascot.MF(k=8, epochs=1, groups=4, threads=2, valid_fraction=0.2).fit(small.train)
    assert a.report_["dataset"] == b.report_["dataset"]


def test_als_evaluates_the_hold_out(small):
    m = mascot.MF(method="als", k=8, epochs=2, lambda_p=0.05, lambda_q=0.05, threads=1, valid_fraction=0.2)
    m.fit(small.train, small.test)
    tr, va = data.valid_split(small.train, 0.2, seed=42)
    assert m.rmse(_known(tr, va)) == pytest.approx(m.history_[-1]["valid_rmse"], rel=1e-5)


def test_verbose_line_shows_valid_rmse(small, capsys):
    mascot.MF(k=4, epochs=1, groups=2, threads=1, valid_fraction=0.1, verbose=True).fit(small.train)
    assert "valid_rmse" in capsys.readouterr().err


def test_cli_valid_fraction(trainer_exe, tmp_path):
    rep = tmp_path / "r.json"
    r = subprocess.run([trainer_exe, "--dataset", "synthetic-ml10m:0.002", "--k", "8", "--epochs", "2",
                        "--threads", "1", "--valid-fraction", "0.2", "--report", str(rep)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "valid_rmse" in r.stdout.splitlines()[0] or any("valid_rmse" in ln for ln in r.stdout.splitlines())
    assert "final validation RMSE" in r.stdout
    j = json.loads(rep.read_text())
    assert j["config"]["valid_fraction"] == 0.2 and j["dataset"]["n_valid"] > 0
    assert all(e["valid_rmse"] > 0 for e in j["epochs"])
    r = subprocess.run([trainer_exe, "--dataset", "synthetic-ml10m:0.002", "--valid-fraction", "1"],
                       capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(err) == 1 and "valid_fraction must be in [0, 1) (got 1)" in err[0], r.stderr


@pytest.mark.parametrize("method", ["fp32", "mascot"])
def test_valid_rmse_on_every_backend(small, backend, method):
    """Each backend evaluates the hold-out it was given: its validation RMSE is the returned
    model's RMSE on those ratings (CUDA: checked on the emulator, scripts/cuda_emu_check.sh)."""
    from backends import backend_k
    m = mascot.MF(method=method, k=backend_k(backend, 8), epochs=2, groups=4, device=backend, valid_fraction=0.2)
    m.fit(small.train, small.test)
    assert m.report_["device"].startswith(backend)
    tr, va = data.valid_split(small.train, 0.2, seed=42)
    h = m.history_[-1]
    assert m.rmse(_known(tr, va)) == pytest.approx(h["valid_rmse"], rel=1e-4)
    assert m.rmse(_known(tr, small.test)) == pytest.approx(h["test_rmse"], rel=1e-4)
