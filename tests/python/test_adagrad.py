"""Schedule adagrad (LIBMF's per-row AdaGrad step, detail/sgd.h) against its NumPy reference,
its parameter row and its checkpointed state."""
import numpy as np
import pytest

import mascot
from mascot import _core
from reference import adagrad_update, half, sr_half, train_reference


def _fit(data, method, k, epochs, **kw):
    u, i, r, nu, ni = data
    m = mascot.MF(k=k, method=method, epochs=epochs, threads=1, device="cpu", groups=3, schedule="adagrad", **kw)
    return m.fit((u, i, r))


@pytest.mark.parametrize("k", [32, 20, 128, 48])  # exact vector shapes and the run-time path
@pytest.mark.parametrize("method", ["fp32", "fp16", "mascot-n1"])
def test_single_storage_methods_match_reference_bitwise(tiny, method, k):
    u, i, r, nu, ni = tiny
    m = _fit(tiny, method, k, 3, lr=0.05)
    P, Q = train_reference(u, i, r, nu, ni, k=k, epochs=3, method=method, lr=0.05, schedule="adagrad")
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)
    # the schedule is not the decay one: the same run with schedule decay differs
    Pd, _ = train_reference(u, i, r, nu, ni, k=k, epochs=3, method=method, lr=0.05)
    assert not np.array_equal(P, Pd)
    assert np.abs(m.P - _core._testing.init_factors(nu, k, 0.01, 42, "P")).max() > 1e-3  # it trained


@pytest.mark.parametrize("method", ["mascot", "mascot-n2", "mascot-naive"])
def test_mascot_family_without_switches_is_n1(tiny, method):
    """No group switches in 2 epochs (warm-up 5): the per-group kernel trains every row in FP16
    storage with FP32 arithmetic, as mascot-n1, states included."""
    u, i, r, nu, ni = tiny
    m = _fit(tiny, method, 32, 2, lr=0.05)
    P, Q = train_reference(u, i, r, nu, ni, k=32, epochs=2, method="mascot-n1", lr=0.05, schedule="adagrad")
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)


def test_stochastic_rounding_with_adagrad_matches_reference(tiny):
    u, i, r, nu, ni = tiny
    m = _fit(tiny, "mascot-n1", 32, 2, lr=0.05, rounding="stochastic")
    P, Q = train_reference(u, i, r, nu, ni, k=32, epochs=2, method="mascot-n1", lr=0.05, rounding="stochastic",
                           groups=3, schedule="adagrad")
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)


@pytest.mark.parametrize("k", [32, 64, 128, 48])
@pytest.mark.parametrize("stochastic", [False, True])
def test_mixed_kernel_with_adagrad_matches_reference_bitwise(k, stochastic):
    """One pass of the per-group kernel with FP32 and FP16 groups (test_mascot's
    test_mixed_kernel_matches_reference_bitwise) with the adagrad states: factors and states."""
    rng = np.random.default_rng(11)
    nu, ni, n = 60, 40, 3000
    users = rng.integers(0, nu, n).astype(np.int32)
    items = rng.integers(0, ni, n).astype(np.int32)
    ratings = rng.uniform(1, 5, n).astype(np.float32)
    P = (rng.normal(size=(nu, k)) * 0.1).astype(np.float32)
    Q = (rng.normal(size=(ni, k)) * 0.1).astype(np.float32)
    GU = rng.uniform(1, 3, nu).astype(np.float32)
    GI = rng.uniform(1, 3, ni).astype(np.float32)
    ustart, ufp32 = np.array([0, 10, 25, 60], np.int32), np.array([0, 1, 0], np.uint8)
    istart, ifp32 = np.array([0, 5, 40], np.int32), np.array([1, 0], np.uint8)
    lr, lp, lq, seed, epoch = 0.05, 0.01, 0.015, 99, 3
    gotP, gotQ, gotGU, gotGI = _core._testing.mixed_sgd_pass(users, items, ratings, P, Q, ustart, ufp32, istart, ifp32,
                                                             lr, lp, lq, stochastic, seed, epoch, GU, GI)
    fu = np.repeat(ufp32, np.diff(ustart)).astype(bool)
    fi = np.repeat(ifp32, np.diff(istart)).astype(bool)
    RP = np.where(fu[:, None], P, half(P))
    RQ = np.where(fi[:, None], Q, half(Q))
    RGU, RGI = GU.copy(), GI.copy()
    cls = fu[users].astype(int) * 2 + fi[items].astype(int)
    for t in np.argsort(cls, kind="stable"):
        u, i = users[t], items[t]
        p, q, RGU[u], RGI[i] = adagrad_update(RP[u], RQ[i], ratings[t], lr, lp, lq, RGU[u], RGI[i])
        if stochastic:
            wp, wq = _core._testing.sr_words(seed, epoch, int(u), int(i), k)
            p16, q16 = sr_half(p, wp), sr_half(q, wq)
        else:
            p16, q16 = half(p), half(q)
        RP[u] = p if fu[u] else p16
        RQ[i] = q if fi[i] else q16
    assert np.array_equal(gotP, RP) and np.array_equal(gotQ, RQ)
    assert np.array_equal(gotGU, RGU) and np.array_equal(gotGI, RGI)
    assert (RGU > GU).any() and (RGI >= GI).all()  # the states grew


def test_reference_rule_is_libmf_adagrad():
    """The reference's rule written out once more in float64: G starts at 1, the step is
    eta0 / sqrt(G) with the state before the update, G grows by the mean squared gradient."""
    rng = np.random.default_rng(3)
    k = 16
    p = rng.normal(size=k).astype(np.float32)
    q = rng.normal(size=k).astype(np.float32)
    r, eta0, lp, lq = 4.0, 0.1, 0.05, 0.05
    p1, q1, gp, gq = adagrad_update(p, q, r, eta0, lp, lq, np.float32(1), np.float32(1))
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    e = r - p64 @ q64
    dp, dq = e * q64 - lp * p64, e * p64 - lq * q64
    np.testing.assert_allclose(p1, p64 + eta0 * dp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q1, q64 + eta0 * dq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gp, 1 + (dp ** 2).mean(), rtol=1e-5)
    np.testing.assert_allclose(gq, 1 + (dq ** 2).mean(), rtol=1e-5)
    # the second step uses the grown state: a smaller rate
    p2, _, _, _ = adagrad_update(p1, q1, r, eta0, lp, lq, gp, gq)
    e2 = r - p1.astype(np.float64) @ q1.astype(np.float64)
    d2 = e2 * q1.astype(np.float64) - lp * p1.astype(np.float64)
    np.testing.assert_allclose(p2, p1 + eta0 / np.sqrt(float(gp)) * d2, rtol=1e-5, atol=1e-6)


def test_parameter_row_and_validation():
    rows = {row["name"]: row for row in _core.param_table()}
    assert "schedule" in rows
    assert mascot.MF().schedule == "decay"
    with pytest.raises(ValueError, match="schedule"):
        mascot.MF(schedule="cosine")
    with pytest.raises(ValueError, match="schedule=adagrad"):
        mascot.MF(method="als", schedule="adagrad")
    cfg = _core.TrainConfig()
    cfg.lr, cfg.decay = 0.05, 0.3
    assert cfg.lr_at(4) < np.float32(0.05)
    cfg.schedule = "adagrad"
    assert cfg.lr_at(4) == np.float32(0.05)


def test_report_names_the_schedule(tiny):
    m = _fit(tiny, "fp32", 16, 1)
    assert m.report_["config"]["schedule"] == "adagrad"


def test_adagrad_learns(tiny):
    """Test RMSE falls on tiny data with adagrad (eta0 = 0.1, LIBMF's default)."""
    u, i, r, nu, ni = tiny
    m = mascot.MF(k=16, epochs=20, threads=1, schedule="adagrad", lr=0.1, lambda_p=0.05, lambda_q=0.05)
    m.fit((u, i, r), test=(u, i, r))
    rmse = [e["test_rmse"] for e in m.report_["epochs"]]
    assert rmse[-1] < 0.8 * rmse[0]


# ---- the competing methods: adagrad on their FP32 masters (cpu/competing_common.h adagrad_masters)

@pytest.fixture(scope="module")
def tiny_synth():
    return mascot.data.synthetic("synthetic-ml10m:0.002").train  # 15,903 ratings, 3 chunks


def _serial_competing(data, method, k, epochs, rounding, params, lr):
    return mascot.MF(method=method, k=k, epochs=epochs, lr=lr, groups=4, threads=1, deterministic=True,
                     rounding=rounding, method_params=params, schedule="adagrad").fit(data)


@pytest.mark.parametrize("rounding,k,params", [
    ("nearest", 16, {}),
    ("stochastic", 20, {}),
    ("nearest", 32, {"loss_scale": 65536.0, "dynamic_loss_scale": True, "loss_scale_window": 50}),
])
def test_mpt_with_adagrad_matches_reference(tiny_synth, rounding, k, params):
    from reference_competing import mpt_reference
    m = _serial_competing(tiny_synth, "mpt", k, 2, rounding, params, 0.05)
    P, Q, stats = mpt_reference(tiny_synth, k=k, epochs=2, rounding=rounding, lr=0.05, schedule="adagrad",
                                loss_scale=params.get("loss_scale", 1000.0),
                                dynamic=params.get("dynamic_loss_scale", False),
                                window=params.get("loss_scale_window", 2000))
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)
    Pd, _, _ = mpt_reference(tiny_synth, k=k, epochs=2, rounding=rounding, lr=0.05,
                             loss_scale=params.get("loss_scale", 1000.0),
                             dynamic=params.get("dynamic_loss_scale", False),
                             window=params.get("loss_scale_window", 2000))
    assert not np.array_equal(P, Pd)


@pytest.mark.parametrize("rounding,k,params", [
    ("nearest", 16, {}),
    ("stochastic", 20, {}),
])
def test_muppet_with_adagrad_matches_reference(tiny_synth, rounding, k, params):
    from reference_competing import muppet_reference
    m = _serial_competing(tiny_synth, "muppet", k, 2, rounding, params, 0.05)
    P, Q, facts = muppet_reference(tiny_synth, k=k, epochs=2, rounding=rounding, lr=0.05, method_params=params,
                                   schedule="adagrad")
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)


@pytest.mark.parametrize("rounding,k", [("nearest", 16), ("stochastic", 20)])
def test_afp_with_adagrad_matches_reference(tiny_synth, rounding, k):
    from reference_competing import afp_reference
    m = _serial_competing(tiny_synth, "afp", k, 2, rounding, {}, 0.05)
    P, Q, _, _ = afp_reference(tiny_synth, k=k, epochs=2, lr=0.05, rounding=rounding, schedule="adagrad")
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)


# ---- checkpoint / resume: the states are saved and restored (CPU backend, "GU" / "GI")

RESUME_CASES = {
    "fp32": dict(method="fp32"),
    "fp16": dict(method="fp16"),
    "mascot": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5),
    "mpt": dict(method="mpt"),
    "afp": dict(method="afp", rounding="stochastic"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_with_adagrad_is_bit_exact(tmp_path, case):
    import json
    ds = mascot.data.synthetic("synthetic-ml10m:0.002")
    params = dict(k=16, epochs=6, deterministic=True, schedule="adagrad", lr=0.05, **RESUME_CASES[case])
    full = mascot.MF(**params).fit(ds.train, ds.test)
    m = mascot.MF(**params)
    tr, te = ds.train, ds.test
    rep = json.loads(_core.train_checkpointed(
        m._config(), m._context(), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
        te.users, te.items, te.ratings, "", lambda rec: rec["epoch"] < 2, str(tmp_path / "ck"), 1)[2])
    assert rep["totals"]["epochs_run"] == 3
    resumed = mascot.MF.resume(tmp_path / "ck", ds.train, ds.test)
    assert resumed.schedule == "adagrad"
    assert resumed.P_.tobytes() == full.P_.tobytes() and resumed.Q_.tobytes() == full.Q_.tobytes()
    assert [e["test_rmse"] for e in resumed.report_["epochs"]] == [e["test_rmse"] for e in full.report_["epochs"]]
    assert _core.read_checkpoint(str(tmp_path / "ck"))["epochs_done"] == 6



def test_cuda_refuses_adagrad_by_name_and_auto_trains_on_the_cpu(tiny):
    """The CUDA kernels have no adagrad states yet: --device cuda is refused with a message naming
    the schedule, and auto sends the job to the CPU (detail/cuda_tools.h)."""
    cfg = _core.TrainConfig()
    cfg.schedule = "adagrad"
    assert "schedule 'adagrad'" in _core.cuda_unsupported_reason(cfg)
    cfg.schedule = "decay"
    assert _core.cuda_unsupported_reason(cfg) == ""
    u, i, r, nu, ni = tiny
    m = mascot.MF(k=16, epochs=1, schedule="adagrad", device="auto").fit((u, i, r))
    assert m.report_["device"].startswith("cpu")


def test_cli_schedule_option(trainer_exe, tmp_path):
    import json
    import subprocess
    base = [trainer_exe, "--dataset", "synthetic-ml10m:0.002", "--k", "16", "--epochs", "2", "--quiet"]
    r = subprocess.run(base + ["--schedule", "cosine"], capture_output=True, text=True)
    assert r.returncode != 0 and "schedule" in r.stderr and "adagrad" in r.stderr  # names the valid values
    assert len(r.stderr.strip().splitlines()) == 1
    rep = tmp_path / "r.json"
    r = subprocess.run(base + ["--schedule", "adagrad", "--lr", "0.05", "--report", str(rep)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(rep.read_text())["config"]["schedule"] == "adagrad"
    r = subprocess.run([trainer_exe, "--help"], capture_output=True, text=True)
    assert "--schedule" in r.stdout
