"""mascot.dask: DSGD on a local multi-process Dask cluster (127.0.0.1), against the
single-process MF run.  One 4-worker cluster serves the module (p = 1, 2 use subsets of its
workers); the worker-kill test has its own 2-worker cluster.  Tiny skewed data: the whole file
runs in well under a minute on a 2-core host."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

import mascot  # noqa: E402
import mascot.dask as mdask  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")

PARAMS = dict(k=16, epochs=8, lr=0.05, threads=1, seed=7)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=4, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, memory_limit="1GiB") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    d = mascot.data.synthetic("synthetic-ml10m-heavy:0.004", seed=3)
    tr, te = d.train, d.test
    df = pd.DataFrame({"user": tr.users, "item": tr.items, "rating": tr.ratings})
    tf = pd.DataFrame({"user": te.users, "item": te.items, "rating": te.ratings})
    return tr, te, dd.from_pandas(df, npartitions=3), dd.from_pandas(tf, npartitions=2)


def _workers(client, p):
    return sorted(client.scheduler_info()["workers"])[:p]


@pytest.fixture(scope="module")
def single(data):
    tr, te, _, _ = data
    out = {}
    for method in ("fp32", "mascot-n1", "mascot"):
        m = mascot.MF(method=method, **PARAMS).fit(tr, te)
        out[method] = m.report_["totals"]["final_test_rmse"]
    return out


# (p, rounds): one stratum per 1/p of an epoch biases SGD towards the last strata (measured on
# this data at 8 epochs: p = 2 +1.8 %, p = 4 +6.7 % test RMSE with rounds = 1); rounds = R
# interleaves the strata R times per epoch and brings the run within 0.5 % (docs/benchmarks.md)
CASES = [(1, 1, m) for m in ("fp32", "mascot-n1", "mascot")] + [(2, 4, m) for m in ("fp32", "mascot-n1", "mascot")] \
    + [(4, 8, "mascot-n1")]


@pytest.mark.parametrize(("p", "rounds", "method"), CASES)
def test_rmse_matches_single_process(client, data, single, p, rounds, method):
    tr, te, ddf, tdf = data
    m = mdask.fit(client, ddf, tdf, method=method, workers=_workers(client, p), rounds=rounds,
                  eval_every_epoch=False, **PARAMS)
    rep = m.report_
    assert rep["dask"]["workers"] == p and rep["dataset"]["n_train"] == len(tr)
    assert len(rep["epochs"]) == PARAMS["epochs"] and rep["epochs"][-1]["updates"] == len(tr)
    got, ref = rep["totals"]["final_test_rmse"], single[method]
    assert abs(got - ref) <= 0.005 * ref, (got, ref)
    # the model is an ordinary MF: its own RMSE on the kept test ratings (both ids trained) is the reported one
    keep = (np.bincount(tr.users, minlength=tr.n_users)[te.users] > 0) & \
        (np.bincount(tr.items, minlength=tr.n_items)[te.items] > 0)
    pred = m.predict(te.users[keep], te.items[keep])
    assert np.sqrt(np.mean((pred.astype(np.float64) - te.ratings[keep]) ** 2)) == pytest.approx(got, rel=1e-5)


def test_schedule_instrumented(client, data):
    tr, _, ddf, _ = data
    p = 4
    rep = mdask.fit(client, ddf, method="mascot-n1", workers=_workers(client, p), **dict(PARAMS, epochs=2)).report_
    blocks = np.array(rep["dask"]["block_ratings"])
    assert blocks.sum() == len(tr) and blocks.shape == (p, p)
    # balanced by rating count: every block within a factor 2 of the mean on skewed data
    assert blocks.max() < 2 * blocks.mean()
    sched = rep["dask"]["schedule"]
    for e in range(2):
        ep = [x for x in sched if x["epoch"] == e]
        assert all(x["round"] == 0 for x in ep)
        for s in range(p):
            held = [x["item_block"] for x in ep if x["sub"] == s]
            assert sorted(held) == list(range(p))  # no two workers hold the same item block
            assert all(x["item_block"] == (x["worker"] + s) % p for x in ep if x["sub"] == s)
        # every block (w, b) trained once, all its ratings: every rating visited exactly once
        assert sorted((x["worker"], x["item_block"]) for x in ep) == [(w, b) for w in range(p) for b in range(p)]
        assert all(x["updates"] == blocks[x["worker"], x["item_block"]] for x in ep)
        assert rep["epochs"][e]["updates"] == len(tr)
        # an item block's sub-epochs never overlap in time (one holder at a time)
        for b in range(p):
            spans = sorted((x["start"], x["stop"]) for x in ep if x["item_block"] == b)
            assert all(a[1] <= c[0] for a, c in zip(spans, spans[1:]))
        # a worker's sub-epochs run in order
        for w in range(p):
            subs = [x for x in sorted(ep, key=lambda x: x["start"]) if x["worker"] == w]
            assert [x["sub"] for x in subs] == list(range(p))


def test_deterministic_bit_identical(client, data):
    _, _, ddf, _ = data
    kw = dict(PARAMS, epochs=3, method="mascot-n1", rounding="stochastic")
    a = mdask.fit(client, ddf, workers=_workers(client, 4), **kw)
    b = mdask.fit(client, ddf, workers=_workers(client, 4), **kw)
    assert a.P.tobytes() == b.P.tobytes() and a.Q.tobytes() == b.Q.tobytes()
    c = mdask.fit(client, ddf, workers=_workers(client, 4), **dict(kw, seed=8, epochs=1))
    assert a.P.tobytes() != c.P.tobytes()  # another seed (and run) differs: the comparison can fail


def test_fp16_blocks_halve_bytes_and_data_stay_off_the_client(client, data):
    tr, _, ddf, _ = data
    kw = dict(PARAMS, epochs=2, workers=_workers(client, 4))
    r32 = mdask.fit(client, ddf, method="fp32", **kw).report_
    r16 = mdask.fit(client, ddf, method="mascot-n1", **kw).report_
    for e in range(2):
        assert r32["epochs"][e]["item_block_bytes_moved"] == 2 * r16["epochs"][e]["item_block_bytes_moved"] > 0
    # steady epoch: every item block moves before each of the p sub-epochs
    assert r32["epochs"][1]["item_block_bytes_moved"] == 4 * r32["dataset"]["n_items"] * PARAMS["k"] * 4
    # Dask's own transfer log saw the moves
    assert sum(w["transfer_bytes_in"] for w in r16["dask"]["per_worker"]) >= r16["epochs"][1]["item_block_bytes_moved"]
    # what reached the client: the model (P, Q float32) and small metadata, never the ratings
    model_bytes = (r32["dataset"]["n_users"] + r32["dataset"]["n_items"]) * PARAMS["k"] * 4
    counts_bytes = 8 * (r32["dataset"]["n_users"] + r32["dataset"]["n_items"])  # the relabelling's counts
    ratings_bytes = 12 * len(tr)
    other = r32["dask"]["bytes_to_client"] - model_bytes
    assert 0 < other < counts_bytes + 50_000 and other < ratings_bytes / 4


def test_mascot_switches_groups_globally(client, data):
    _, _, ddf, tdf = data
    kw = dict(PARAMS, method="mascot", warmup=0, period=1, threshold=1.05, groups=8, workers=_workers(client, 2))
    rep = mdask.fit(client, ddf, tdf, rounds=2, **kw).report_
    assert all(e["measured"] for e in rep["epochs"])
    sw = rep["switches"]
    assert sw and all(x["epoch"] >= 1 for x in sw)  # the first measurement is the baseline
    # one decision for the whole cluster: the count of FP32 groups only grows, as the switches say
    n = [e["fp32_user_groups"] + e["fp32_item_groups"] for e in rep["epochs"]]
    assert n == sorted(n) and n[-1] == len(sw)
    # FP32 rows of switched groups travel as float32: more bytes than an all-FP16 epoch
    moved = [e["item_block_bytes_moved"] for e in rep["epochs"]]
    assert rep["epochs"][0]["fp32_item_groups"] == 0 and rep["epochs"][-2]["fp32_item_groups"] > 0
    assert moved[-1] > moved[1]
    assert rep["totals"]["final_test_rmse"] < rep["epochs"][0]["test_rmse"]


def test_memory_refused_up_front(client, data):
    _, _, ddf, _ = data
    with pytest.raises(MemoryError, match=r"dask worker tcp://127\.0\.0\.1:\d+ \(block \d of 4\) needs about"):
        mdask.fit(client, ddf, workers=_workers(client, 4), n_users=200_000, **dict(PARAMS, k=4096))


def test_api_shapes(client, data):
    tr, te, ddf, tdf = data
    with pytest.raises(ValueError, match="mascot.dask trains methods fp32, mascot-n1, mascot "):
        mdask.fit(client, ddf, method="mascot-naive")
    with pytest.raises(ValueError, match="must be a dask.dataframe.DataFrame"):
        mdask.fit(client, (tr.users, tr.items, tr.ratings))
    with pytest.raises(ValueError, match="missing column"):
        mdask.fit(client, ddf.rename(columns={"rating": "r"}), **PARAMS)
    est = mdask.DaskMF(client=client, method="fp32", **dict(PARAMS, epochs=2))
    m = est.fit(ddf, tdf, workers=_workers(client, 2), n_users=tr.n_users, n_items=tr.n_items)
    assert isinstance(m, mascot.MF) and m.P.shape == (tr.n_users, PARAMS["k"])
    s = mdask.predict(client, m, tdf)
    got = s.compute().to_numpy()
    assert np.allclose(got, m.predict(te.users, te.items), equal_nan=True)


def test_killed_worker_is_a_clear_error(client, data):
    # LAST in this module: it kills one of the module cluster's workers (its nanny restarts it
    # under a new address)
    _, _, ddf, _ = data
    victim = _workers(client, 2)[1]
    pid = client.run(os.getpid, workers=[victim])[victim]
    model = mdask.DaskMF(client=client, method="fp32", k=16, epochs=10_000, threads=1)
    box = {}

    def go():
        try:
            model.fit(ddf, workers=_workers(client, 2))
        except BaseException as e:  # noqa: B036 - the test inspects it
            box["error"] = e

    t = threading.Thread(target=go)
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not any("train_block" in str(k) for k in client.who_has()):
        time.sleep(0.1)  # until the epochs run
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    t.join(60)
    assert not t.is_alive()
    err = box.get("error")
    assert isinstance(err, mdask.WorkerLostError), repr(err)
    assert victim in str(err) and "no model is returned" in str(err)
    assert model.P_ is None  # nothing half-trained was kept
