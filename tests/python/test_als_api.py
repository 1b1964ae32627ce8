"""mascot.ALS (issue 21): training end to end against the NumPy reference, the implicit-style
API (sparse input, recommend, similar_items, save / load), the ranking metrics, and bad input
(one-line errors)."""
import math

import numpy as np
import pytest

import mascot
import reference_als as ref
from mascot import _core, metrics

sp = pytest.importorskip("scipy.sparse")

F32 = np.float32


def implicit_data(nu=80, ni=120, density=0.08, seed=0):
    rng = np.random.default_rng(seed)
    M = (rng.random((nu, ni)) < density).astype(F32) * rng.integers(1, 4, (nu, ni)).astype(F32)
    M[5] = 0  # a user without interactions
    M[:, 7] = 0  # an item without interactions
    return sp.csr_matrix(M)


def explicit_data(nu=300, ni=150, density=0.1, seed=1):
    """Ratings of a rank-3 model plus noise, rounded and clipped to 1..5; user 5 has none."""
    rng = np.random.default_rng(seed)
    mask = rng.random((nu, ni)) < density
    mask[5] = False
    u, i = np.nonzero(mask)
    U, V = rng.standard_normal((nu, 3)), rng.standard_normal((ni, 3))
    r = np.clip(np.round(3 + (U[u] * V[i]).sum(1) + 0.3 * rng.standard_normal(len(u))), 1, 5).astype(F32)
    return u.astype(np.int32), i.astype(np.int32), r


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "explicit"])
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_fit_matches_the_reference_iterations(backend, implicit, solver):
    """Two iterations of ALS.fit from the core's initial factors (detail::init_row, seeded by the
    ids) against the reference's, to 1e-4 relative (two iterations of float32)."""
    if implicit:
        M = implicit_data()
        coo = M.tocoo()
        u, i, r = coo.row, coo.col, coo.data
        nu, ni = M.shape
        data = M
    else:
        u, i, r = explicit_data()
        nu, ni = 300, 150
        data = (u, i, r)
    k = 16
    m = mascot.ALS(factors=k, regularization=0.1, alpha=2.0, iterations=2, solver=solver, implicit=implicit,
                   threads=1, device=backend, init_std=0.1, random_state=7)
    m.fit(data)
    P = _core._testing.init_factors(nu, k, 0.1, 7, "P")
    Q = _core._testing.init_factors(ni, k, 0.1, 7, "Q")
    kw = dict(lam=0.1, implicit=implicit, alpha=2.0, solver=solver, cg_steps=3)
    for _ in range(2):
        P, Q = ref.iteration(u, i, r, nu, ni, P, Q, **kw)
    scale = max(np.abs(P).max(), np.abs(Q).max())
    assert np.abs(m.user_factors - P).max() / scale < 1e-4
    assert np.abs(m.item_factors - Q).max() / scale < 1e-4
    assert np.all(m.user_factors[5] == 0) and np.all(np.isfinite(m.user_factors))
    if implicit:
        assert np.all(m.item_factors[7] == 0)


def test_sparse_and_triplet_input_train_the_same_model():
    M = implicit_data()
    coo = M.tocoo()
    order = np.random.default_rng(3).permutation(coo.nnz)  # any order of the triplets
    a = mascot.ALS(factors=8, iterations=3, threads=1).fit(M)
    b = mascot.ALS(factors=8, iterations=3, threads=1).fit(
        (coo.row[order].astype(np.int32), coo.col[order].astype(np.int32), coo.data[order]))
    assert np.array_equal(a.user_factors, b.user_factors) and np.array_equal(a.item_factors, b.item_factors)


def test_mf_fit_accepts_a_sparse_matrix():
    u, i, r = explicit_data()
    M = sp.csr_matrix((r, (u, i)), shape=(300, 150))
    a = mascot.MF(k=8, epochs=2, threads=1, deterministic=True).fit(M)
    b = mascot.MF(k=8, epochs=2, threads=1, deterministic=True).fit((u, i, r))
    assert a.P_.shape == (300, 8) and a.Q_.shape == (150, 8)
    np.testing.assert_array_equal(a.P_, b.P_)
    with pytest.raises(ValueError, match="CSR matrix.*tocsr"):
        mascot.MF(k=8, epochs=1).fit(M.tocoo())


def test_explicit_reports_test_rmse_per_iteration_and_learns():
    u, i, r = explicit_data(seed=2)
    cut = len(u) * 4 // 5
    m = mascot.ALS(factors=8, regularization=0.05, iterations=5, implicit=False, threads=2)
    m.fit((u[:cut], i[:cut], r[:cut]), (u[cut:], i[cut:], r[cut:]))
    rec = m.report_["iterations"]
    assert [x["iteration"] for x in rec] == list(range(5))
    assert all(x["seconds"] >= 0 and math.isfinite(x["test_rmse"]) for x in rec)
    assert rec[-1]["test_rmse"] < 0.8 * np.std(r[cut:])  # well below predicting the mean
    assert rec[-1]["test_rmse"] < rec[0]["test_rmse"]
    assert m.report_["final_test_rmse"] == rec[-1]["test_rmse"]


def test_callback_can_stop_training():
    seen = []
    m = mascot.ALS(factors=4, iterations=10, threads=1).fit(implicit_data(), callback=lambda r: seen.append(r) or
                                                            len(seen) < 3)
    assert len(seen) == 3 and len(m.report_["iterations"]) == 3


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("hermitian_dtype", ["float32", "float16"])
def test_precisions_train(dtype, hermitian_dtype):
    M = implicit_data()
    m = mascot.ALS(factors=16, iterations=3, dtype=dtype, hermitian_dtype=hermitian_dtype, threads=1).fit(M)
    ref32 = mascot.ALS(factors=16, iterations=3, threads=1).fit(M)
    assert m.user_factors.dtype == F32
    if dtype == "float16":
        assert np.array_equal(ref.half(m.user_factors), m.user_factors)
    close = np.abs(m.item_factors - ref32.item_factors).max() / np.abs(ref32.item_factors).max()
    assert close < 0.05  # FP16 storage changes the model a little, not its nature
    if dtype == "float32" and hermitian_dtype == "float32":
        assert close == 0


def test_recommend_and_similar_items():
    M = implicit_data()
    m = mascot.ALS(factors=8, iterations=4, threads=1).fit(M)
    ids, scores = m.recommend(0, M[0], N=5)
    assert ids.shape == (5,) and scores.dtype == F32 and np.all(np.diff(scores) <= 0)
    assert not set(ids) & set(M[0].indices)  # already liked items left out
    want = np.argsort(-(m.item_factors @ m.user_factors[0]), kind="stable")
    assert list(ids) == [j for j in want if j not in set(M[0].indices)][:5]
    users = np.array([0, 1, 2, 9])
    bi, bs = m.recommend(users, M[users], N=5)
    assert bi.shape == (4, 5) and np.array_equal(bi[0], ids)
    ai, _ = m.recommend(users, None, N=5)  # the training pairs of fit
    assert np.array_equal(ai, bi)
    ui, _ = m.recommend(0, None, N=5, filter_already_liked_items=False)
    assert list(ui) == list(want[:5])
    fi, _ = m.recommend(0, M[0], N=5, filter_items=ids[:2])
    assert ids[0] not in fi and ids[1] not in fi
    si, ss = m.similar_items(3, N=4)
    assert si[0] == 3 and ss[0] == pytest.approx(1.0) and np.all(np.diff(ss) <= 1e-6)
    bsi, _ = m.similar_items(np.array([3, 4]), N=4)
    assert bsi.shape == (2, 4) and np.array_equal(bsi[0], si)
    zi, zs = m.similar_items(7, N=3)  # an item without interactions: zero vector, similarity 0
    assert np.all(zs == 0)


def test_save_load_and_export(tmp_path):
    M = implicit_data()
    m = mascot.ALS(factors=8, iterations=2, threads=1, dtype="float16").fit(M)
    m.save(tmp_path / "model")
    assert {"P.npy", "Q.npy", "model.json"} <= {p.name for p in (tmp_path / "model").iterdir()}
    back = mascot.ALS.load(tmp_path / "model")
    assert back.get_params() == m.get_params()
    assert np.array_equal(back.user_factors, m.user_factors) and np.array_equal(back.item_factors, m.item_factors)
    assert np.array_equal(back.recommend(np.arange(4), None, N=3)[0], m.recommend(np.arange(4), None, N=3)[0])
    assert np.array_equal(np.load(tmp_path / "model" / "Q.npy"), m.item_factors)
    m.export_libmf(tmp_path / "model.libmf")
    assert (tmp_path / "model.libmf").read_text().startswith("f ")


def test_ranking_metrics_hand_computed():
    rec = np.array([[1, 2, 3], [4, 5, 6]])
    rel = [{1, 3, 9}, [7]]
    # user 0: hits at ranks 1 and 3: AP = (1/1 + 2/3) / min(3, 3); user 1: 0
    assert metrics.map_at_n(rec, rel, 3) == pytest.approx(((1 + 2 / 3) / 3 + 0) / 2)
    # AUC@3 over 10 items: user 0 has 3 relevant, 7 others; in the list: miss (2) after 1 hit;
    # 6 others after the list: each after 2 hits, tied with 1 relevant outside: 2.5 each
    a0 = (1 + 6 * 2.5) / (3 * 7)
    a1 = (0 + 0 + 0 + 6 * 0.5) / (1 * 9)  # no hit: the 6 after the list tie with the relevant one
    assert metrics.auc_at_n(rec, rel, 3, 10) == pytest.approx((a0 + a1) / 2)
    assert metrics.auc_at_n(np.array([[7, 1, 2]]), [[7]], 3, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_items"):
        metrics.auc_at_n(rec, rel, 3, 0)


def test_ranking_evaluate_of_a_trained_model():
    M = implicit_data(nu=200, ni=100, density=0.1)
    rng = np.random.default_rng(4)
    coo = M.tocoo()
    held = rng.random(coo.nnz) < 0.2
    tr = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=M.shape)
    te = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=M.shape)
    m = mascot.ALS(factors=8, iterations=5, threads=1).fit(tr)
    got = metrics.ranking_evaluate(m, tr, te, n=10)
    assert set(got) == {"precision@10", "map@10", "ndcg@10", "auc@10", "recall@10", "users", "users_skipped"}
    assert got["users"] + got["users_skipped"] == 200
    assert 0 <= got["precision@10"] <= 1 and 0.4 <= got["auc@10"] <= 1
    with pytest.raises(ValueError, match="CSR"):
        metrics.ranking_evaluate(m, tr.tocoo(), te, n=10)
    with pytest.raises(ValueError, match="shape"):
        metrics.ranking_evaluate(m, tr, te[:10], n=10)


# ------------------------------------------------------------------ bad input: one-line errors

@pytest.mark.parametrize("kw,match", [
    (dict(alpha=0.0), "alpha must be a finite number > 0"), (dict(alpha=-1), "alpha"),
    (dict(alpha=float("nan")), "alpha"), (dict(regularization=0), "regularization"),
    (dict(factors=0), "factors"), (dict(factors=2.5), "factors"), (dict(iterations=-1), "iterations"),
    (dict(solver="lu"), "solver"), (dict(cg_steps=0), "cg_steps"), (dict(dtype="float64"), "dtype"),
    (dict(implicit="yes"), "implicit"), (dict(device="tpu"), "device"), (dict(threads=-1), "threads"),
    (dict(hermitian_dtype="int8"), "hermitian_dtype"), (dict(regularization_mode="l1"), "regularization_mode"),
    (dict(cg_form="dense"), "cg_form"), (dict(init_std=-1.0), "init_std"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        mascot.ALS(**kw)
    assert "\n" not in str(e.value)


def test_dtype_accepts_numpy_types():
    assert mascot.ALS(dtype=np.float16).dtype == "float16"
    assert mascot.ALS(dtype=np.dtype("float32")).dtype == "float32"


def one_line_error(fn, match, kind=ValueError):
    with pytest.raises(kind, match=match) as e:
        fn()
    assert "\n" not in str(e.value)


def test_bad_training_input():
    M = implicit_data()
    m = mascot.ALS(factors=4, iterations=1, threads=1)
    one_line_error(lambda: m.fit(M.tocoo()), r"CSR matrix \(users x items\), got format 'coo'.*tocsr")
    one_line_error(lambda: m.fit(M.tocsc()), "got format 'csc'")
    neg = M.copy()
    neg.data[3] = -2.0
    one_line_error(lambda: m.fit(neg), "implicit feedback needs confidences >= 0, got -2.*user")
    nan = M.copy()
    nan.data[0] = np.nan
    one_line_error(lambda: m.fit(nan), "non-finite value nan at")
    one_line_error(lambda: m.fit(sp.csr_matrix((5, 4), dtype=F32)), "no ratings")
    one_line_error(lambda: m.fit(sp.csr_matrix((np.ones(2, F32), ([0, 1], [0, 0])), shape=(2, 1)) * 0),
                   "no ratings")  # stored zeros are no interaction: nothing to train on
    # negative ratings are fine for explicit data
    e = mascot.ALS(factors=4, iterations=1, implicit=False, threads=1).fit(neg)
    assert np.isfinite(e.user_factors).all()


def test_empty_rows_and_columns_are_zero_not_nan():
    M = sp.csr_matrix((np.array([1.0, 2.0], F32), ([1, 3], [2, 2])), shape=(6, 5))
    for implicit in (True, False):
        for solver in ("cg", "cholesky"):
            m = mascot.ALS(factors=4, iterations=3, implicit=implicit, solver=solver, threads=1).fit(M)
            assert np.isfinite(m.user_factors).all() and np.isfinite(m.item_factors).all()
            assert np.all(m.user_factors[[0, 2, 4, 5]] == 0) and np.all(m.item_factors[[0, 1, 3, 4]] == 0)


def test_bad_recommend_input():
    M = implicit_data()
    m = mascot.ALS(factors=4, iterations=1, threads=1)
    one_line_error(lambda: m.recommend(0, M[0]), "not fitted")
    m.fit(M)
    one_line_error(lambda: m.recommend(0, M[:2]), r"shape \(2, 120\); expected \(1, 120\)")
    one_line_error(lambda: m.recommend(0, M[0][:, :5]), "expected")
    one_line_error(lambda: m.recommend(0, M[0].tocoo()), "CSR")
    one_line_error(lambda: m.recommend(10_000, None), "out of range")
    one_line_error(lambda: m.recommend(0, None, N=0), "n must be >= 1")
    one_line_error(lambda: m.recommend(0.5, None), "integer ids")
    one_line_error(lambda: m.similar_items(-1), "out of range")
    one_line_error(lambda: m.recommend(0, None, filter_items=[999]), "filter_items out of range")


def test_experiment_als_writes_its_report(tmp_path, monkeypatch):
    """mascot experiment als end to end on tiny synthetic data (part 3 needs MovieLens-100K,
    absent from the empty data root: the report says so)."""
    pytest.importorskip("matplotlib")
    from mascot.experiments import main

    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "data"))
    out = tmp_path / "als"
    rc = main(["als", "--datasets", "synthetic-ml10m:0.002", "--epochs", "2", "--factors", "8", "--threads", "1",
               "--out", str(out)])
    assert rc == 0
    report = (out / "report.md").read_text()
    for want in ("RMSE against training time", "sgd mascot", "als cg3 FP16 factors", "CG steps against convergence",
                 "part 3 was not run"):
        assert want in report
    for f in ("rmse_time.csv", "rmse_time.png", "cg_steps.csv", "cg_steps.png", "runs.json"):
        assert (out / f).stat().st_size > 0
    rows = (out / "cg_steps.csv").read_text().splitlines()
    assert rows[0] == "dataset,variant,epoch,seconds,test_rmse" and len(rows) == 1 + 5 * 2
