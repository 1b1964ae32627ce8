"""The two study options of the core: random_fp16 (paper Fig. 4, the potential of
m-quantization) and grad_stats (paper Fig. 5, gradient scale per rating-count group)."""
import numpy as np
import pytest

import mascot
from mascot import _core
from reference import dot_lanes, lr_at

F32 = np.float32


@pytest.fixture(scope="module")
def small():
    return mascot.data.synthetic("synthetic-ml10m:0.001", seed=3)


def fit(d, **kw):
    kw.setdefault("k", 32)
    kw.setdefault("epochs", 3)
    kw.setdefault("threads", 1)
    return mascot.MF(**kw).fit(d.train, d.test)


# ---------------------------------------------------------------- random_fp16
def test_random_split_draws_the_requested_share_and_keeps_count_order(small):
    t = small.train
    for f in (0.2, 0.6):
        ro = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 1, 1, random_fp16=f, seed=7)
        for side, n in (("user", t.n_users), ("item", t.n_items)):
            start = ro[f"{side}_group_start"]
            assert list(ro[f"{side}_group_fp32"]) == [0, 1]  # group 0 FP16, group 1 FP32
            share = start[1] / n
            assert abs(share - f) < 4 * np.sqrt(f * (1 - f) / n) + 1e-9, (side, f, share)
            cnt = ro[f"{side}_count"]
            for g in range(2):  # within a group, still sorted by rating count
                c = cnt[start[g]:start[g + 1]]
                assert np.all(c[:-1] >= c[1:])
    # seeded: same seed same split, other seed another split
    a = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 1, 1, random_fp16=0.5, seed=7)
    b = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 1, 1, random_fp16=0.5, seed=7)
    c = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 1, 1, random_fp16=0.5, seed=8)
    np.testing.assert_array_equal(a["user_new"], b["user_new"])
    assert not np.array_equal(a["user_new"], c["user_new"])


def test_random_fp16_extremes_equal_the_pure_methods_bitwise(small):
    """All rows FP32 (f = 0) is exactly fp32; all rows FP16 (f = 1) is exactly mascot-n1."""
    m0 = fit(small, method="mascot-n1", random_fp16=0.0)
    ref32 = fit(small, method="fp32")
    np.testing.assert_array_equal(m0.P, ref32.P)
    np.testing.assert_array_equal(m0.Q, ref32.Q)
    m1 = fit(small, method="mascot", random_fp16=1.0)
    ref16 = fit(small, method="mascot-n1")
    np.testing.assert_array_equal(m1.P, ref16.P)
    np.testing.assert_array_equal(m1.Q, ref16.Q)


def test_random_fp16_half_split_stores_each_group_in_its_precision(small):
    m = fit(small, method="mascot", random_fp16=0.5, epochs=8, warmup=0, period=1, threshold=1e-9)
    rep = m.report_
    assert rep["config"]["random_fp16"] == 0.5
    assert rep["dataset"]["user_groups"] == 2 and rep["dataset"]["item_groups"] == 2
    assert rep["switches"] == []  # no switching although the threshold would switch everything
    for e in rep["epochs"]:
        assert e["fp32_user_groups"] == 1 and e["fp32_item_groups"] == 1
        assert "user_qerror" not in e
    # rows of the FP16 group hold half values, the FP32 group's rows (almost all) do not
    t = small.train
    ro = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 1, 1, random_fp16=0.5, seed=42)
    start = ro["user_group_start"]
    old = ro["user_old"]
    P = m.P
    is_half = np.all(P.astype(np.float16).astype(F32) == P, axis=1)
    assert is_half[old[:start[1]]].all()
    assert is_half[old[start[1]:]].mean() < 0.05


def test_random_fp16_validation():
    for kw, msg in ((dict(method="fp32", random_fp16=0.5), "random_fp16 applies"),
                    (dict(method="mascot", random_fp16=1.5), "random_fp16 must be in"),
                    (dict(method="mascot", random_fp16=float("nan")), "random_fp16 must be in"),
                    (dict(method="mascot", random_fp16="half"), "random_fp16 must be a number")):
        with pytest.raises(ValueError, match=msg):
            mascot.MF(**kw)


# ---------------------------------------------------------------- grad_stats
def grad_norm_reference(d, *, k, epochs, groups, seed=42, lambda_p=0.01, lambda_q=0.015):
    """Serial fp32 SGD (one thread's order) recording, per user group and epoch, the mean
    norm of grad_p = e*q - lambda_p*p from the values before each update."""
    t = d.train
    ro = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, groups, groups)
    gstart = ro["user_group_start"]
    group_of = np.searchsorted(gstart, ro["user_new"], side="right") - 1
    P = _core._testing.init_factors(t.n_users, k, 0.01, seed, "P")
    Q = _core._testing.init_factors(t.n_items, k, 0.01, seed, "Q")
    visit = _core._testing.visit_order(t.users, t.items, t.n_users, t.n_items, "shuffle", epochs, 1, k, False, seed)
    nnz = len(t.ratings)
    out = []
    for e in range(epochs):
        lr = lr_at(0.01, 0.1, e)
        s = np.zeros(len(gstart) - 1)
        n = np.zeros(len(gstart) - 1)
        for x in visit[e * nnz:(e + 1) * nnz]:
            u, i = t.users[x], t.items[x]
            p, q = P[u].copy(), Q[i].copy()
            err = F32(t.ratings[x]) - dot_lanes(p, q)
            gp = err * q - F32(lambda_p) * p
            s[group_of[u]] += np.linalg.norm(gp.astype(np.float64))
            n[group_of[u]] += 1
            cp, cq, ce = F32(1) - lr * F32(lambda_p), F32(1) - lr * F32(lambda_q), lr * err
            P[u], Q[i] = cp * p + ce * q, cq * q + ce * p
        out.append(np.where(n > 0, s / np.maximum(n, 1), -1.0))
    return np.array(out), P, Q


def test_grad_stats_match_a_numpy_reference():
    d = mascot.data.synthetic("synthetic-ml10m:0.0003", seed=5)
    k, epochs, g = 16, 2, 4
    m = fit(d, method="fp32", k=k, epochs=epochs, groups=g, grad_stats=True, sample_ratio=1.0, preset="paper")
    want, P, Q = grad_norm_reference(d, k=k, epochs=epochs, groups=g)  # the paper's settings
    got = np.array([e["user_grad_norm"] for e in m.report_["epochs"]])
    realised = m.report_["dataset"]["user_groups"]  # ties are never split: may be < g
    assert 2 <= realised <= g
    assert got.shape == want.shape == (epochs, realised)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # grad_stats observes: the model is the plain fp32 model
    np.testing.assert_array_equal(m.P, P)
    np.testing.assert_array_equal(m.Q, Q)


def test_grad_stats_leave_the_model_unchanged_and_report_every_epoch(small):
    plain = fit(small, method="mascot-n1", epochs=4)
    stats = fit(small, method="mascot-n1", epochs=4, groups=4, grad_stats=True, sample_ratio=0.5)
    np.testing.assert_array_equal(plain.P, stats.P)
    np.testing.assert_array_equal(plain.Q, stats.Q)
    t = small.train
    ro = _core._testing.reorder(t.users, t.items, t.n_users, t.n_items, 4, 4)
    for e in stats.report_["epochs"]:
        for side in ("user", "item"):
            norms = np.array(e[f"{side}_grad_norm"])
            rated = ro[f"{side}_group_ratings"] > 0  # a group of entities without ratings has no samples
            assert len(norms) == stats.report_["dataset"][f"{side}_groups"] == len(rated)
            assert np.all(norms[rated] > 0) and np.all(norms[~rated] == -1)
    assert "user_grad_norm" not in plain.report_["epochs"][0]
    # with g-switching, grad_stats is recorded every epoch, q-errors only on measured ones
    sw = fit(small, method="mascot", epochs=4, groups=4, grad_stats=True, warmup=1, period=2)
    measured = [e["epoch"] for e in sw.report_["epochs"] if "user_qerror" in e]
    assert measured == [1, 3]
    assert all("user_grad_norm" in e for e in sw.report_["epochs"])


def test_grad_stats_validation():
    for method in ("fp16", "mpt", "muppet", "afp"):
        with pytest.raises(ValueError, match="grad_stats applies"):
            mascot.MF(method=method, grad_stats=True)
    with pytest.raises(ValueError, match="grad_stats must be True or False"):
        mascot.MF(grad_stats="yes")


def test_cli_study_flags(tmp_path):
    import json
    import subprocess
    rep = tmp_path / "r.json"
    subprocess.run(["mascot_train", "--dataset", "synthetic-ml10m:0.0005", "--k", "32", "--epochs", "2",
                    "--method", "mascot-n1", "--random-fp16", "0.3", "--grad-stats", "--groups", "4",
                    "--quiet", "--report", str(rep)], check=True)
    r = json.loads(rep.read_text())
    assert r["config"]["random_fp16"] == 0.3 and r["config"]["grad_stats"] is True
    assert r["dataset"]["user_groups"] == 2
    assert len(r["epochs"][0]["user_grad_norm"]) == 2
    bad = subprocess.run(["mascot_train", "--dataset", "synthetic-ml10m:0.0005", "--method", "fp32",
                          "--random-fp16", "0.3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "random_fp16 applies" in bad.stderr


def test_random_fp16_control_shares_run_through_the_mixed_kernel(small):
    """The potential experiment's controls: mascot-n1 with every row FP32 (0.0) or FP16 (1.0)."""
    for f, fp32_groups in ((0.0, 1), (1.0, 0)):
        m = fit(small, method="mascot-n1", random_fp16=f, epochs=2)
        rep = m.report_
        assert rep["config"]["random_fp16"] == f and rep["switches"] == []
        assert [e["fp32_user_groups"] for e in rep["epochs"]] == [fp32_groups] * 2
    np.testing.assert_array_equal(fit(small, method="mascot-n1", random_fp16=1.0).P,
                                  fit(small, method="mascot-n1").P)
