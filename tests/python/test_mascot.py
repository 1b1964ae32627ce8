"""MASCOT on the CPU backend: q-error (Eq. 4), g-switching, N1/N2/naive, stochastic rounding."""
import numpy as np
import pytest

import mascot
from backends import backend_k
from mascot import _core
from reference import dot_lanes, half, hash3, lr_at, mix64, sgd_update, sr_half, train_reference


def qerror_numpy(G, group, g):
    out = np.full(g, -1.0)
    for j in range(g):
        X = G[group == j].astype(np.float64)
        if len(X) and (X * X).sum() > 0:
            out[j] = (X.sum(0) ** 2).sum() / (X * X).sum()
    return out


def test_qerror_matches_equation_4():
    rng = np.random.default_rng(0)
    n, k, g = 3000, 32, 5
    G = rng.normal(size=(n, k)).astype(np.float32)
    group = rng.integers(0, g - 1, n).astype(np.int32)  # group g-1 gets no sample
    G[group == 1] += 3.0  # group 1's gradients share a direction: high q-error
    got = _core._testing.qerror(G, group, g)
    want = qerror_numpy(G, group, g)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert got[g - 1] == -1  # no samples: no decision
    assert got[1] > 50 * got[0]
    # bounds of Eq. 4: between 0 and the number of samples
    assert np.all(got[:-1] > 0) and got[1] <= (group == 1).sum()


def test_reported_qerrors_are_equation_4_of_the_sampled_gradients_of_training():
    """End to end: the q-errors a training run reports are Eq. 4 of exactly the gradients the
    serial NumPy reference samples (γ by the counter-based hash of the relabelled (u, i) pair,
    stream 4, keyed by the epoch), ∇p = e·q − λ_P·p and ∇q = e·p − λ_Q·q from the stored
    (pre-update, FP16) rows, summed per group; and training itself is the reference's mascot-n1
    (θ too high to switch).  A wrong λ, side, group or sample shows here, not in the q-error
    formula's own test."""
    ds = mascot.data.synthetic("synthetic-ml10m:0.002")
    tr = ds.train
    k, seed, epochs, gamma, g, w, pi = 32, 42, 8, 0.05, 100, 5, 2
    m = mascot.MF(k=k, method="mascot", epochs=epochs, threads=1, seed=seed, threshold=1e9, preset="paper",
                  groups=g, warmup=w, period=pi, sample_ratio=gamma).fit(tr, ds.test)  # the paper's lr and lambdas
    ro = _core._testing.reorder(tr.users, tr.items, tr.n_users, tr.n_items, g, g)
    unew, inew, ust, ist = ro["user_new"], ro["item_new"], ro["user_group_start"], ro["item_group_start"]
    u, i, r = tr.users, tr.items, tr.ratings
    P = half(_core._testing.init_factors(tr.n_users, k, 0.01, seed, "P"))
    Q = half(_core._testing.init_factors(tr.n_items, k, 0.01, seed, "Q"))
    n = len(r)
    visit = _core._testing.visit_order(u, i, tr.n_users, tr.n_items, "shuffle", epochs, 1, k, True, seed)
    below = int(np.ldexp(gamma, 64))
    measured = []
    for e in range(epochs):
        lr = lr_at(0.01, 0.1, e)
        meas = e >= w and (e - w) % pi == 0
        if meas:
            ss = hash3(seed, 4, e)
            su, squ = np.zeros((len(ust) - 1, k)), np.zeros(len(ust) - 1)
            si, sqi = np.zeros((len(ist) - 1, k)), np.zeros(len(ist) - 1)
        for t in visit[e * n:(e + 1) * n]:
            p, q = P[u[t]], Q[i[t]]
            if meas:
                nu, ni = int(unew[u[t]]), int(inew[i[t]])
                if mix64(ss ^ ((nu << 32) | ni)) < below:
                    err = np.float32(r[t]) - dot_lanes(p, q)
                    gp = err * q.astype(np.float64) - 0.01 * p.astype(np.float64)
                    gq = err * p.astype(np.float64) - 0.015 * q.astype(np.float64)
                    gu = np.searchsorted(ust, nu, side="right") - 1
                    gi = np.searchsorted(ist, ni, side="right") - 1
                    su[gu] += gp
                    squ[gu] += gp @ gp
                    si[gi] += gq
                    sqi[gi] += gq @ gq
            p2, q2 = sgd_update(p, q, r[t], lr, 0.01, 0.015)
            P[u[t]], Q[i[t]] = half(p2), half(q2)
        if meas:
            measured.append(e)
            for side, s, sq in (("user", su, squ), ("item", si, sqi)):
                want = np.where(sq > 0, (s ** 2).sum(1) / np.where(sq > 0, sq, 1), -1.0)
                got = np.array(m.report_["epochs"][e][f"{side}_qerror"])
                assert (want >= 0).sum() > 10, side  # enough sampled groups to mean something
                np.testing.assert_array_equal(got < 0, want < 0)
                np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=f"{side} q-error, epoch {e}")
        else:
            assert "user_qerror" not in m.report_["epochs"][e]
    assert measured == [5, 7]
    assert np.array_equal(P, m.P_) and np.array_equal(Q, m.Q_)


def test_switching_rule_on_crafted_statistics():
    """Group 0's gradients align over time (q-error rises), group 1's stay diverse."""
    rng = np.random.default_rng(1)
    k, per_group, measurements = 16, 200, 6
    q = np.zeros((measurements, 3))
    for m in range(measurements):
        G = rng.normal(size=(2 * per_group, k)).astype(np.float32)
        G[:per_group] += 0.35 * m * m  # group 0: a growing shared component
        group = np.repeat(np.arange(2), per_group).astype(np.int32)
        q[m, :2] = _core._testing.qerror(G, group, 3)[:2]
        q[m, 2] = -1  # group 2: never sampled
    when = _core._testing.switch_epochs(q, 20.0)
    assert when[0] > 0 and when[1] == -1 and when[2] == -1
    # exactly at the first measurement whose ratio to the baseline exceeds theta
    ratio = q[:, 0] / q[0, 0]
    assert when[0] == int(np.argmax(ratio > 20.0))
    # one-way: nothing more happens after the switch, and theta matters
    assert _core._testing.switch_epochs(q, 1e9)[0] == -1


def _data(scale=0.02, seed=1):
    d = mascot.data.synthetic("synthetic-ml10m", scale, seed=seed)
    return d.train, d.test


def test_mascot_switches_some_groups_and_reports_them(backend):
    tr, te = _data()
    m = mascot.MF(k=32, method="mascot", epochs=20, groups=20, threads=2, lr=0.02,
                  threshold=5, device=backend).fit(tr, te)
    rep = m.report_
    meas = [e for e in rep["epochs"] if "user_qerror" in e]
    # measured epochs: e >= warmup and (e - warmup) % period == 0
    assert [e["epoch"] for e in meas] == list(range(5, 20, 2))
    assert all(len(e["user_qerror"]) == rep["dataset"]["user_groups"] for e in meas)
    sw = rep["switches"]
    assert sw, "threshold 5 should switch something on this data"
    last = rep["epochs"][-1]
    assert last["fp32_user_groups"] == sum(s["side"] == "user" for s in sw)
    assert last["fp32_item_groups"] == sum(s["side"] == "item" for s in sw)
    assert all(s["epoch"] in [e["epoch"] for e in meas] for s in sw)
    assert 0 < last["fp32_user_groups"] + last["fp32_item_groups"] < \
        rep["dataset"]["user_groups"] + rep["dataset"]["item_groups"]
    # one-way: the FP32 group counts never decrease
    ug = [e["fp32_user_groups"] for e in rep["epochs"]]
    assert ug == sorted(ug)


def test_switched_rows_train_in_fp32_and_the_rest_in_fp16():
    tr, te = _data()
    m = mascot.MF(k=32, method="mascot", epochs=12, groups=10, threads=1, threshold=3, preset="paper").fit(tr)
    ro = _core._testing.reorder(tr.users, tr.items, tr.n_users, tr.n_items, 10, 10)
    switched = {s["group"] for s in m.report_["switches"] if s["side"] == "item"}
    assert switched
    start = ro["item_group_start"]
    for g in range(len(start) - 1):
        rows = m.Q[ro["item_old"][start[g]:start[g + 1]]]
        if g in switched:
            assert not np.array_equal(half(rows), rows)  # FP32 values
        else:
            assert np.array_equal(half(rows), rows)  # still FP16


def test_n1_never_switches_and_n2_uses_one_global_group(backend):
    tr, te = _data()
    k = backend_k(backend, 16)
    n1 = mascot.MF(k=k, method="mascot-n1", epochs=12, groups=10, threads=2, device=backend).fit(tr, te).report_
    assert not n1["switches"] and all("user_qerror" not in e for e in n1["epochs"])
    # on this data the q-error falls from its baseline (ratios below 1): theta = 0.5 makes the
    # second measurement switch, so the switching of the one global group is exercised
    n2 = mascot.MF(k=k, method="mascot-n2", epochs=12, groups=10, threads=2, threshold=0.5,
                   device=backend).fit(tr, te).report_
    assert n2["dataset"]["user_groups"] == 1 and n2["dataset"]["item_groups"] == 1
    measured = [e for e in n2["epochs"] if "user_qerror" in e]
    assert len(measured) >= 2  # a baseline and at least one decision
    assert all(len(e["user_qerror"]) == 1 and len(e["item_qerror"]) == 1 for e in measured)
    # the whole side switches at once: one event per side, group 0, and then all rows are FP32
    assert sorted((s["side"], s["group"]) for s in n2["switches"]) == [("item", 0), ("user", 0)]
    last = n2["epochs"][-1]
    assert last["fp32_user_groups"] == 1 and last["fp32_item_groups"] == 1


def test_group_lookups_agree_with_searchsorted():
    """The optimised (branchless) and naive (branching) group lookups both find the group whose
    id range holds the id, also next to empty groups and at every boundary."""
    rng = np.random.default_rng(3)
    for groups in (1, 2, 3, 7, 100, 101, 500):
        sizes = rng.integers(0, 40, groups)
        sizes[rng.integers(0, groups)] += 1  # at least one id
        start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        ids = np.arange(start[-1], dtype=np.int32)
        want = np.searchsorted(start, ids, side="right") - 1  # last group with start <= id
        for naive in (False, True):
            got = _core._testing.lookup_groups(start, ids, naive)
            # an empty group never holds an id; the non-empty one found owns the id
            assert np.all(start[got] <= ids) and np.all(ids < start[got + 1])
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="start\\[0\\]"):
        _core._testing.lookup_groups(np.array([1, 2], np.int32), np.array([1], np.int32), False)


@pytest.mark.parametrize("order", ["shuffle", "grid"])
def test_mascot_and_naive_lookup_agree_with_one_thread(order):
    tr, te = _data()
    kw = dict(k=32, epochs=15, groups=25, threads=1, threshold=3, order=order)
    a = mascot.MF(method="mascot", **kw).fit(tr, te)
    b = mascot.MF(method="mascot-naive", **kw).fit(tr, te)
    assert a.report_["switches"] == b.report_["switches"] and a.report_["switches"]
    assert np.array_equal(a.P, b.P) and np.array_equal(a.Q, b.Q)


def test_mascot_stays_close_to_fp32(backend):
    tr, te = _data(0.05)
    kw = dict(k=32, epochs=30, groups=20, threads=2, device=backend)
    r32 = mascot.MF(method="fp32", **kw).fit(tr, te).report_["totals"]["final_test_rmse"]
    rm = mascot.MF(method="mascot", **kw).fit(tr, te).report_["totals"]["final_test_rmse"]
    assert rm < r32 * 1.01


def test_stochastic_rounding_matches_reference_bitwise(tiny):
    u, i, r, nu, ni = tiny
    m = mascot.MF(k=32, method="mascot-n1", epochs=2, threads=1, groups=1, lr=0.05,
                  rounding="stochastic").fit((u, i, r))
    P, Q = train_reference(u, i, r, nu, ni, k=32, epochs=2, method="mascot-n1", lr=0.05,
                           rounding="stochastic", groups=1)
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)
    rn = mascot.MF(k=32, method="mascot-n1", epochs=2, threads=1, groups=1, lr=0.05).fit((u, i, r))
    assert not np.array_equal(rn.P, m.P)


def test_vector_stochastic_rounding_matches_scalar_rule():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(scale=0.01, size=4000), rng.uniform(-6e-5, 6e-5, 4000)]).astype(np.float32)
    w = rng.integers(0, 2 ** 32, size=x.size, dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(_core._testing.half_round_words(x, w), sr_half(x, w))


@pytest.mark.parametrize("k", [128, 40])
def test_kernel_stochastic_stores_are_unbiased(k):
    """The kernels' stochastic FP16 stores (this host's vector path, its tail at k = 40, the
    core's per-element dithers) keep E[stored] = value, for a normal half and a subnormal one.
    One rating per user and item, q = 0: the stored values are exactly p' = cp v (normal) and
    q' = ce v (subnormal, below 2^-14) in FP32, so the mean of n k stores must be within 5
    standard errors of them.  A rounding that truncates subnormals (the earlier dithered
    truncation) or any fixed rounding misses by hundreds of standard errors."""
    n = 4000
    v = np.float32(0.0999755859375)  # 819 * 2^-13, a half
    sign = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.float32)
    P = (sign[:, None] * np.full((n, k), v, np.float32)).astype(np.float32)
    Q = np.zeros((n, k), np.float32)
    ids = np.arange(n, dtype=np.int32)
    r = np.full(n, 3 * 2.0 ** -13, np.float32)  # e = r, ce = lr r = 3 * 2^-15
    st, f16 = np.array([0, n], np.int32), np.array([0], np.uint8)
    lr, lp = 0.25, 0.25  # cp = 1 - 1/16: cp v and ce v are exact in FP32
    gotP, gotQ = _core._testing.mixed_sgd_pass(ids, ids, r, P, Q, st, f16, st, f16, lr, lp, 0.0, True, 5, 2)
    xp = np.float64(0.9375) * np.float64(v)  # 0.09373: between halves 2^-14 apart
    xq = np.float64(2457) * 2.0 ** -28  # 153.5625 units of 2^-24
    for got, x, spacing in [(gotP, xp, 2.0 ** -14), (gotQ, xq, 2.0 ** -24)]:
        got = got.astype(np.float64) * sign[:, None]  # both signs, folded
        lo = np.floor(x / spacing) * spacing
        assert np.all((got == lo) | (got == lo + spacing))  # one of the two neighbours
        frac = (x - lo) / spacing
        se = spacing * np.sqrt(frac * (1 - frac) / got.size)
        assert abs(got.mean() - x) < 5 * se, (got.mean() - x) / se
        assert abs((got == lo + spacing).mean() - frac) < 0.01


def test_stochastic_rounding_keeps_late_small_updates():
    """Round-to-nearest drops updates below half an FP16 ulp; stochastic rounding keeps them
    on average, so mascot-n1 with SR ends closer to fp32."""
    tr, te = _data(0.05)
    kw = dict(k=32, epochs=40, threads=2, groups=4)
    r = {}
    for name, meth, rnd in [("fp32", "fp32", "nearest"), ("rn", "mascot-n1", "nearest"),
                            ("sr", "mascot-n1", "stochastic")]:
        r[name] = mascot.MF(method=meth, rounding=rnd, **kw).fit(tr, te).report_["totals"]["final_test_rmse"]
    assert abs(r["sr"] - r["fp32"]) < abs(r["rn"] - r["fp32"])


@pytest.mark.parametrize("kw,field", [
    ({"sample_ratio": 0.0}, "sample_ratio"), ({"sample_ratio": 1.5}, "sample_ratio"),
    ({"period": 0}, "period"), ({"threshold": 0.0}, "threshold"), ({"threshold": -1.0}, "threshold"),
    ({"warmup": -1}, "warmup"), ({"rounding": "up"}, "rounding"),
    ({"method": "fp32", "rounding": "stochastic"}, "stochastic"),
    ({"method": "fp16", "rounding": "stochastic"}, "stochastic"),
])
def test_parameter_validation(kw, field):
    with pytest.raises(ValueError, match=field):
        mascot.MF(**kw)


@pytest.mark.parametrize("k", [32, 64, 128, 48])
@pytest.mark.parametrize("stochastic", [False, True])
def test_mixed_kernel_matches_reference_bitwise(k, stochastic):
    """One pass of the per-group kernel with some groups FP32, against serial NumPy SGD: the
    kernel partitions the ratings by the precision of their two rows (stable, when any group is
    FP32) and runs each of the four combinations with its own storage types (vector paths at
    k = 32, 64, 128, the scalar one at 48); every stored bit must match, FP32 rows as floats
    and FP16 rows rounded to nearest or stochastically with the core's words."""
    rng = np.random.default_rng(7)
    nu, ni, n = 60, 40, 3000
    users = rng.integers(0, nu, n).astype(np.int32)
    items = rng.integers(0, ni, n).astype(np.int32)
    ratings = rng.uniform(1, 5, n).astype(np.float32)
    P = (rng.normal(size=(nu, k)) * 0.1).astype(np.float32)
    Q = (rng.normal(size=(ni, k)) * 0.1).astype(np.float32)
    ustart, ufp32 = np.array([0, 10, 25, 60], np.int32), np.array([0, 1, 0], np.uint8)
    istart, ifp32 = np.array([0, 5, 40], np.int32), np.array([1, 0], np.uint8)
    lr, lp, lq, seed, epoch = 0.05, 0.01, 0.015, 99, 3
    gotP, gotQ = _core._testing.mixed_sgd_pass(users, items, ratings, P, Q, ustart, ufp32, istart, ifp32, lr, lp, lq,
                                      stochastic, seed, epoch)
    fu = np.repeat(ufp32, np.diff(ustart)).astype(bool)
    fi = np.repeat(ifp32, np.diff(istart)).astype(bool)
    RP = np.where(fu[:, None], P, half(P))
    RQ = np.where(fi[:, None], Q, half(Q))
    cls = fu[users].astype(int) * 2 + fi[items].astype(int)
    assert len(set(cls)) == 4  # every precision combination occurs
    for t in np.argsort(cls, kind="stable"):
        u, i = users[t], items[t]
        p, q = sgd_update(RP[u], RQ[i], ratings[t], lr, lp, lq)
        if stochastic:
            wp, wq = _core._testing.sr_words(seed, epoch, int(u), int(i), k)
            p16, q16 = sr_half(p, wp), sr_half(q, wq)
        else:
            p16, q16 = half(p), half(q)
        RP[u] = p if fu[u] else p16
        RQ[i] = q if fi[i] else q16
    assert np.array_equal(gotP, RP) and np.array_equal(gotQ, RQ)
    assert np.abs(gotQ - np.where(fi[:, None], Q, half(Q))).max() > 1e-2  # the pass trained


def test_mixed_sgd_pass_refuses_bad_tables():
    u = np.array([0, 1], np.int32)
    r = np.array([3.0, 4.0], np.float32)
    P = np.zeros((2, 16), np.float32)
    st, f = np.array([0, 2], np.int32), np.array([0], np.uint8)
    with pytest.raises(ValueError, match="groups \\+ 1 entries"):
        _core._testing.mixed_sgd_pass(u, u, r, P, P, np.array([0, 1], np.int32), f, st, f, 0.01, 0.01, 0.01)
    with pytest.raises(ValueError, match="non-decreasing"):
        _core._testing.mixed_sgd_pass(u, u, r, P, P, np.array([0, 3, 2], np.int32), np.array([0, 1], np.uint8), st, f,
                             0.01, 0.01, 0.01)
    with pytest.raises(ValueError, match="out of range"):
        _core._testing.mixed_sgd_pass(np.array([0, 2], np.int32), u, r, P, P, st, f, st, f, 0.01, 0.01, 0.01)
    with pytest.raises(ValueError, match="one length"):
        _core._testing.mixed_sgd_pass(u, u, r[:1], P, P, st, f, st, f, 0.01, 0.01, 0.01)
