"""The CUDA backend against the CPU backend (its reference), and the build checks CI can run.

Tests marked `gpu` need a visible CUDA device and are skipped (reported as skipped) without one;
scripts/gpu_check.sh runs them on a GPU machine.  The GPU's Hogwild order differs from the
CPU's, so agreement is to a tolerance (issue 4: final test RMSE within 0.5 %, q-error of a
controlled input to 1e-4 relative, switching decisions equal on crafted data).
"""
import json
import math
import os
import shutil

import numpy as np
import pytest

import mascot
from backends import CUDA_METHODS, GPU_SKIP_REASON
from mascot import _core


def _nvcc_present():
    return shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")


# ------------------------------------------------------------------ build checks (no GPU needed)

@pytest.mark.skipif(os.environ.get("MASCOT_CUDA", "AUTO").upper() == "OFF",
                    reason="MASCOT_CUDA=OFF asks for a CPU-only build")
def test_cuda_backend_is_compiled_when_nvcc_exists():
    """CI must fail if the CUDA objects silently stopped being built."""
    if not _nvcc_present():
        pytest.skip("no nvcc on this machine: nothing to require")
    assert mascot.HAS_CUDA, "nvcc is installed but this build has no CUDA backend"


def test_cuda_tools_fail_clearly_without_a_device():
    if mascot.cuda_device_count() > 0:
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(RuntimeError, match="CUDA|cuda"):
        _core.cuda_device_name()
    with pytest.raises(RuntimeError, match="CUDA|cuda"):
        _core.cuda_copy_bandwidth()
    G = np.ones((4, 32), np.float32)
    with pytest.raises(RuntimeError, match="CUDA|cuda"):
        _core._testing.cuda_qerror(G, np.zeros(4, np.int32), 1)


def test_hogwild_worker_bound(monkeypatch):
    """The CUDA launch's worker count (detail/hogwild.h): the device's fill, capped so that the
    most-rated row expects about MASCOT_CUDA_OVERLAP concurrent updates, by default 32 with
    the default "add" writes and 1 with MASCOT_CUDA_WRITES=store."""
    monkeypatch.delenv("MASCOT_CUDA_OVERLAP", raising=False)
    monkeypatch.delenv("MASCOT_CUDA_WRITES", raising=False)
    # the test data below: 160,328 ratings, the most-rated item has 2.9 % of them
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 1102  # 32 x 160328 / 4655
    assert _core._testing.hogwild_workers(8448, 33000, 8000000) == 7757  # synthetic-ml10m-like
    monkeypatch.setenv("MASCOT_CUDA_WRITES", "add")
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 1102
    monkeypatch.setenv("MASCOT_CUDA_WRITES", "store")
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 34
    assert _core._testing.hogwild_workers(20, 4655, 160328) == 20  # the device holds fewer
    assert _core._testing.hogwild_workers(8448, 160328, 160328) == 1  # one row has every rating
    assert _core._testing.hogwild_workers(8448, 0, 0) == 8448  # nothing to bound
    assert _core._testing.hogwild_workers(0, 10, 100) == 1
    monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "2.5")
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 86
    monkeypatch.setenv("MASCOT_CUDA_WRITES", "add")  # an explicit bound wins in either mode
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 86
    monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "inf")
    assert _core._testing.hogwild_workers(8448, 4655, 160328) == 8448
    for bad in ("0", "-1", "x", "1e", "nan"):
        monkeypatch.setenv("MASCOT_CUDA_OVERLAP", bad)
        with pytest.raises(ValueError, match="MASCOT_CUDA_OVERLAP must be a number > 0"):
            _core._testing.hogwild_workers(8448, 4655, 160328)
    monkeypatch.delenv("MASCOT_CUDA_OVERLAP")
    for bad in ("Add", "atomic", "1"):
        monkeypatch.setenv("MASCOT_CUDA_WRITES", bad)
        with pytest.raises(ValueError, match="MASCOT_CUDA_WRITES must be 'add' or 'store', got '" + bad):
            _core._testing.hogwild_workers(8448, 4655, 160328)


# ------------------------------------------------------------------ agreement with the CPU

def _data(scale=0.02, seed=1):
    d = mascot.data.synthetic("synthetic-ml10m", scale, seed=seed)
    return d.train, d.test


def _fit(device, method, tr, te, **kw):
    base = dict(k=32, epochs=12, groups=20, threads=2, seed=3)
    base.update(kw)
    return mascot.MF(method=method, device=device, **base).fit(tr, te)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("method", CUDA_METHODS)
def test_final_rmse_matches_cpu(method):
    tr, te = _data()
    cpu = _fit("cpu", method, tr, te).report_["totals"]["final_test_rmse"]
    gpu = _fit("cuda", method, tr, te).report_
    assert gpu["device"].startswith("cuda")
    assert gpu["totals"]["final_test_rmse"] == pytest.approx(cpu, rel=5e-3)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_launch_respects_the_hogwild_bound(monkeypatch):
    """The report names the warps launched; on the skewed test data they are capped by the
    overlap bound (whole blocks of 8 warps), and MASCOT_CUDA_OVERLAP=inf fills the device."""
    import re
    monkeypatch.delenv("MASCOT_CUDA_OVERLAP", raising=False)
    tr, te = _data()
    top = max(np.bincount(tr.users).max(), np.bincount(tr.items).max())
    monkeypatch.delenv("MASCOT_CUDA_WRITES", raising=False)
    def warps(rep):
        return int(re.search(r"(\d+) warps, add writes\)$", rep["device"]).group(1))

    capped = warps(_fit("cuda", "fp32", tr, te, epochs=1).report_)
    # the default bound, computed before MASCOT_CUDA_OVERLAP=inf is set (with it set, the
    # hook returns the fill it is given: found by running this test on the CUDA emulator)
    bound = max(8, _core._testing.hogwild_workers(10 ** 9, int(top), len(tr.ratings)) // 8 * 8)  # 1096 warps
    monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "inf")
    full = warps(_fit("cuda", "fp32", tr, te, epochs=1).report_)
    assert capped == min(full, bound)  # an H100 holds more: capped < full there


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("method", ["fp32", "mascot-n1"])
def test_add_writes_keep_a_full_device_accurate(monkeypatch, method):
    """Every warp of the device at once (MASCOT_CUDA_OVERLAP=inf: W x f in the hundreds on this
    data): with "add" writes no update of the hot rows is lost, so the final RMSE stays near the
    CPU's (NumPy model, benchmarks/hogwild_overlap.py: +0.5 % at W x f = 245; stores: untrained)."""
    tr, te = _data()
    cpu = _fit("cpu", method, tr, te).report_["totals"]["final_test_rmse"]
    monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "inf")
    monkeypatch.setenv("MASCOT_CUDA_WRITES", "add")
    rep = _fit("cuda", method, tr, te).report_
    assert rep["device"].endswith("add writes)")
    assert rep["totals"]["final_test_rmse"] == pytest.approx(cpu, rel=0.02)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("method", ["fp32", "mascot-n1", "mascot", "fp16", "mpt", "muppet", "afp"])
def test_add_and_store_writes_agree_without_contention(monkeypatch, method):
    """Ratings that share no user and no item: no row is ever updated by two warps at once, so
    one epoch with "add" writes must leave what stores leave (the same bits wherever new - old
    is exact, i.e. nearly everywhere), and both what the CPU leaves, up to the dot product's
    summation order."""
    n = 6000
    rng = np.random.default_rng(5)
    tr = mascot.data.Ratings.from_arrays(rng.permutation(n), rng.permutation(n),
                                         rng.integers(1, 6, n).astype(np.float32), n, n)
    kw = dict(k=64, epochs=1, groups=4, threads=1, seed=2)
    cpu = mascot.MF(method=method, device="cpu", **kw).fit(tr)
    init = mascot.MF(method="fp32", device="cpu", **dict(kw, lr=1e-30)).fit(tr)  # the initial model
    got = {}
    for mode in ("add", "store"):
        monkeypatch.setenv("MASCOT_CUDA_WRITES", mode)
        monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "inf")
        m = mascot.MF(method=method, device="cuda", **kw).fit(tr)
        assert m.report_["device"].endswith(f"{mode} writes)")
        got[mode] = np.concatenate([m.P_.ravel(), m.Q_.ravel()])
    want = np.concatenate([cpu.P_.ravel(), cpu.Q_.ravel()])
    start = np.concatenate([init.P_.ravel(), init.Q_.ravel()])
    # the epoch ran, and did what the CPU's did (MuPPET and AFP: per-worker formats differ)
    assert np.abs(got["store"] - want).mean() < 0.1 * np.abs(want - start).mean()
    # where new - old is not exact (a value crossing zero), the add is off by up to half an ulp
    # of the change: for FP16 rows ~2e-6 here (method fp16 adds its half step: always exact)
    half = method in ("mascot-n1", "mascot")
    np.testing.assert_allclose(got["add"], got["store"], rtol=1e-3 if half else 1e-6, atol=4e-6 if half else 1e-7)
    assert np.mean(got["add"] == got["store"]) >= 0.95


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("method,kw", [("mascot-n1", dict(rounding="stochastic")),
                                       ("mascot", dict(rounding="stochastic", threshold=3)),
                                       ("fp32", dict(order="chunk")),
                                       ("mascot", dict(order="chunk", threshold=3)),
                                       ("fp32", dict(k=96)),
                                       ("mascot", dict(k=160, threshold=3)),
                                       ("mpt", dict(rounding="stochastic")),
                                       ("mpt", dict(method_params={"loss_scale": "dynamic"})),
                                       ("muppet", dict(rounding="stochastic")),
                                       ("afp", dict(rounding="stochastic"))])
def test_options_match_cpu(method, kw):
    tr, te = _data()
    cpu = _fit("cpu", method, tr, te, **kw).report_["totals"]["final_test_rmse"]
    gpu = _fit("cuda", method, tr, te, **kw).report_["totals"]["final_test_rmse"]
    assert gpu == pytest.approx(cpu, rel=5e-3)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("method,k", [("fp32", 20), ("fp16", 8), ("mascot-n1", 50), ("mascot", 100), ("mpt", 40),
                                      ("muppet", 24), ("afp", 20)])
def test_any_k_matches_cpu(method, k):
    """k that are not a multiple of 32: the lanes past the row's end idle (cuda/device_common.cuh,
    RowLayout), rows of k elements at any alignment, FP16 reductions of single halves."""
    tr, te = _data()
    kw = dict(k=k, epochs=4, **(dict(threshold=3) if method == "mascot" else {}))
    cpu = _fit("cpu", method, tr, te, **kw).report_["totals"]["final_test_rmse"]
    gpu = _fit("cuda", method, tr, te, **kw).report_["totals"]["final_test_rmse"]
    assert gpu == pytest.approx(cpu, rel=5e-3)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_competing_method_reports_on_device():
    """The per-warp state the competing kernels keep on the device comes back to the report:
    MPT's update counters, MuPPET's scales and recorded mini-batch, AFP's evaluations."""
    tr, te = _data()
    rep = _fit("cuda", "mpt", tr, te).report_
    for e in rep["epochs"]:
        m = e["method"]
        assert m["name"] == "mpt" and m["workers"] > 0
        assert m["updates"] == rep["dataset"]["n_train"]  # shuffle: every rating once per epoch
        assert m["skipped_updates"] == 0  # S = 1000 never overflows FP16 on ratings in [1, 5]
        assert m["loss_scale_min"] == m["loss_scale_max"] == 1000
    rep = _fit("cuda", "muppet", tr, te).report_
    assert rep["epochs"][0]["method"]["fixed_point"]
    for e in rep["epochs"]:
        m = e["method"]
        assert m["name"] == "muppet" and m["word_length"] in (8, 12, 14, 16, 32)
        if m["fixed_point"]:
            wl = m["word_length"]
            assert m["max_abs_p"] * 2.0 ** m["frac_bits_p"] <= 2 ** (wl - 1) - 0.5
            assert m["frac_bits_p_end"] <= m["frac_bits_p"] and m["frac_bits_q_end"] <= m["frac_bits_q"]
            assert 0 < m["batch_ratings"] <= 128 and m["batch_grad_norm2_p"] > 0 and m["batch_grad_norm2_q"] > 0
    rep = _fit("cuda", "afp", tr, te).report_
    for e in rep["epochs"][:1]:
        for t in e["method"]["tensors"].values():
            assert t["threads"] > 0 and t["evaluations"] > 0 and t["bits"] in (8, 16)
            assert t["interval_max"] >= 1 and t["error_mean"] >= 0


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("slots", [1, 4, 7])
def test_qerror_of_controlled_input_matches_cpu(slots):
    rng = np.random.default_rng(0)
    n, k, g = 5000, 64, 6
    G = rng.normal(size=(n, k)).astype(np.float32)
    group = rng.integers(0, g - 1, n).astype(np.int32)  # group g-1 gets no sample
    G[group == 1] += 3.0
    want = _core._testing.qerror(G, group, g)
    got = _core._testing.cuda_qerror(G, group, g, slots)
    assert got[g - 1] == -1
    np.testing.assert_allclose(got, want, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_switching_decisions_match_cpu_on_crafted_data():
    """test_mascot.py's crafted statistics, q-errors measured by the device's accumulation."""
    rng = np.random.default_rng(1)
    k, per_group, measurements = 32, 200, 6
    q_cpu = np.full((measurements, 3), -1.0)
    q_gpu = np.full((measurements, 3), -1.0)
    for m in range(measurements):
        G = rng.normal(size=(2 * per_group, k)).astype(np.float32)
        G[:per_group] += 0.35 * m * m
        group = np.repeat(np.arange(2), per_group).astype(np.int32)
        q_cpu[m, :2] = _core._testing.qerror(G, group, 3)[:2]
        q_gpu[m, :2] = _core._testing.cuda_qerror(G, group, 3)[:2]
    np.testing.assert_allclose(q_gpu, q_cpu, rtol=1e-4)
    for theta in (2.0, 20.0, 1e9):
        assert np.array_equal(_core._testing.switch_epochs(q_gpu, theta), _core._testing.switch_epochs(q_cpu, theta))
    assert _core._testing.switch_epochs(q_gpu, 20.0)[0] > 0


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_device_switches_follow_its_own_qerrors_and_convert_rows():
    """The report's switch events are the Switcher's decisions on the reported q-errors, and a
    switched group's rows hold FP32 values while the others stay FP16."""
    tr, te = _data()
    m = _fit("cuda", "mascot", tr, te, groups=10, threshold=3, sample_ratio=0.2, preset="paper")  # switches there
    rep = m.report_
    meas = [e for e in rep["epochs"] if "item_qerror" in e]
    q = np.array([e["item_qerror"] for e in meas])
    when = _core._testing.switch_epochs(q, 3.0)
    want = {(g, meas[w]["epoch"]) for g, w in enumerate(when) if w >= 0}
    got = {(s["group"], s["epoch"]) for s in rep["switches"] if s["side"] == "item"}
    assert got == want and got
    ro = _core._testing.reorder(tr.users, tr.items, tr.n_users, tr.n_items, 10, 10)
    start = ro["item_group_start"]
    when_switched = dict(got)
    last = rep["epochs"][-1]["epoch"]
    for g in range(len(start) - 1):
        rows = m.Q[ro["item_old"][start[g]:start[g + 1]]]
        half = rows.astype(np.float16).astype(np.float32)
        if g not in when_switched:
            assert np.array_equal(half, rows)  # still FP16
        elif when_switched[g] < last:  # trained in FP32 after the exact conversion
            assert not np.array_equal(half, rows)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_optimised_and_naive_lookup_agree():
    tr, te = _data()
    a = _fit("cuda", "mascot", tr, te, threshold=3, preset="paper").report_  # the paper's dynamics switch here
    b = _fit("cuda", "mascot-naive", tr, te, threshold=3, preset="paper").report_
    # Hogwild on the GPU is not bit-reproducible, so the two runs agree to a tolerance
    assert b["totals"]["final_test_rmse"] == pytest.approx(a["totals"]["final_test_rmse"], rel=2e-3)
    sa = {(s["side"], s["group"]) for s in a["switches"]}
    sb = {(s["side"], s["group"]) for s in b["switches"]}
    assert sa and sb, "threshold=3 is meant to make groups switch: nothing to compare"
    assert len(sa & sb) >= 0.8 * max(len(sa), len(sb))


# ------------------------------------------------------------------ checkpoints on the device

# Each case changes training state across the interruption after J of 6 epochs (k = 32 on
# synthetic-ml10m:0.002, checked on the emulator): mascot switches groups in epoch 2 (before)
# and 3-5 (after); MPT's per-warp clean-update counters carry over and the scales double in
# epoch 3; MuPPET's diversity window is open at J and its level moves 8 -> 12 bits in epoch 4;
# AFP's per-warp point positions move before and after J.
DEVICE_CK_CASES = {
    "fp32": dict(method="fp32"),
    "fp16": dict(method="fp16"),
    "mascot-n1": dict(method="mascot-n1", rounding="stochastic"),
    "mascot": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5),
    "mpt-dynamic": dict(method="mpt", method_params={"loss_scale": "dynamic", "loss_scale_window": 200}),
    "muppet": dict(method="muppet", method_params={"muppet_resolution": 2, "muppet_patience": 1,
                                                   "muppet_threshold_alpha": 0.01, "muppet_threshold_beta": 0.0}),
    "afp": dict(method="afp"),
}
DEVICE_J = 3


def _device_run(m, ds, ckpt=None, stop_after=None):
    tr, te = ds.train, ds.test
    ctx = m._context()
    ctx.threads = 1
    args = (m._config(), ctx, tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
            te.users, te.items, te.ratings, "")
    if ckpt is None:
        P, Q, rep = _core.train(*args, None)
    else:
        P, Q, rep = _core.train_checkpointed(*args, lambda rec: rec["epoch"] < stop_after - 1, str(ckpt), 1)
    return P, Q, json.loads(rep)


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
@pytest.mark.parametrize("case", list(DEVICE_CK_CASES))
def test_resume_on_device_continues_the_run(tmp_path, case):
    """Checkpoint and resume on the cuda device (the driver's state and the backend's: factors in
    their storage, group precisions, per-warp method state).  Where two uninterrupted runs are
    bit-identical (the CUDA emulator, whose warps race in a fixed order), the interrupted and
    resumed run must be bit-identical to them; on a GPU (Hogwild across warps) it must resume
    with the saved state and end near the uninterrupted run."""
    ds = mascot.data.synthetic("synthetic-ml10m:0.002")
    m = mascot.MF(k=32, epochs=6, device="cuda", preset="paper", **DEVICE_CK_CASES[case])  # tuned on its dynamics
    P1, Q1, full = _device_run(m, ds)
    P2, Q2, again = _device_run(m, ds)
    deterministic = P1.tobytes() == P2.tobytes() and Q1.tobytes() == Q2.tobytes()
    if "emulator" in full["device"]:
        assert deterministic, "the CUDA emulator is meant to be deterministic"
    ck = tmp_path / "ck"
    _, _, part = _device_run(m, ds, ck, DEVICE_J)
    assert part["totals"]["interrupted"] and part["totals"]["epochs_run"] == DEVICE_J
    info = _core.read_checkpoint(str(ck))
    assert info["epochs_done"] == DEVICE_J and info["device"] == "cuda"
    assert json.loads((ck / "checkpoint.json").read_text())["device"] == "cuda"
    tr, te = ds.train, ds.test
    P3, Q3, rep = _core.resume(str(ck), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                               te.users, te.items, te.ratings, None, 0)
    rep = json.loads(rep)
    assert rep["device"].startswith("cuda") and rep["totals"]["epochs_run"] == 6
    assert rep["epochs"][:DEVICE_J] == part["epochs"]
    ea, eb = full["epochs"], rep["epochs"]
    if deterministic:
        assert P1.tobytes() == P3.tobytes() and Q1.tobytes() == Q3.tobytes()
        assert [e["test_rmse"] for e in ea] == [e["test_rmse"] for e in eb]
        assert [e.get("method") for e in ea] == [e.get("method") for e in eb]
        assert [e.get("item_qerror") for e in ea] == [e.get("item_qerror") for e in eb]
        assert full["switches"] == rep["switches"]
    else:
        assert rep["totals"]["final_test_rmse"] == pytest.approx(full["totals"]["final_test_rmse"], rel=5e-3)
    # the state really changes across the interruption (otherwise the test proves little)
    if case == "mascot":
        sw = {s["epoch"] for s in full["switches"]}
        assert min(sw) < DEVICE_J <= max(sw)
    if case == "muppet":
        assert ea[DEVICE_J - 1]["method"]["word_length"] == 8 and ea[-1]["method"]["word_length"] == 12
    if case == "mpt-dynamic":
        assert ea[DEVICE_J - 1]["method"]["loss_scale_max"] == 1000 and ea[-1]["method"]["loss_scale_max"] > 1000
    if case == "afp":
        pos = [tuple(e["method"]["tensors"][t]["point_position_min"] for t in "PQG") for e in ea]
        assert len(set(pos[:DEVICE_J])) > 1 and pos[DEVICE_J] != pos[DEVICE_J - 1], pos
    # the final checkpoint holds the finished run: resuming it trains nothing more
    P4, Q4, rep4 = _core.resume(str(ck), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                                te.users, te.items, te.ratings, None, 0)
    assert P4.tobytes() == P3.tobytes() and json.loads(rep4)["totals"]["epochs_run"] == 6


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_device_checkpoint_refusals(tmp_path, monkeypatch):
    """A cuda checkpoint holds per-warp state (here MPT's loss scales): a resume that would launch
    another number of warps is refused in one line naming the file, and the checkpoint stays
    resumable."""
    ds = mascot.data.synthetic("synthetic-ml10m:0.002")
    m = mascot.MF(k=32, epochs=4, device="cuda", method="mpt")
    ck = tmp_path / "ck"
    _device_run(m, ds, ck, 2)
    tr, te = ds.train, ds.test

    def resume():
        return _core.resume(str(ck), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                            te.users, te.items, te.ratings, None, 0)
    monkeypatch.setenv("MASCOT_CUDA_OVERLAP", "0.5")  # far fewer warps than the checkpoint's
    with pytest.raises(ValueError, match=r"cuda_state\.e000002\.[0-9a-f]+\.bin: saved with \d+ warps, "
                                         r"this run launches"):
        resume()
    monkeypatch.delenv("MASCOT_CUDA_OVERLAP")
    assert json.loads(resume()[2])["totals"]["epochs_run"] == 4


# ------------------------------------------------------------------ errors and tools on a device

def test_unsupported_requests_are_clear_errors(tiny):
    # refused from the configuration alone, before any device or data work: runs without a GPU too
    with pytest.raises(ValueError, match="between 1 and 512"):
        mascot.MF(k=600, groups=4, epochs=1, device="cuda").fit(tiny[:3])
    with pytest.raises(ValueError, match="'grid' schedules CPU threads"):
        mascot.MF(k=32, groups=4, epochs=1, order="grid", device="cuda").fit(tiny[:3])
    with pytest.raises(ValueError, match="study options"):
        mascot.MF(k=32, groups=4, epochs=1, grad_stats=True, device="cuda").fit(tiny[:3])


@pytest.mark.gpu
@pytest.mark.skipif(mascot.cuda_device_count() == 0, reason=GPU_SKIP_REASON)
def test_auto_picks_cuda_and_tools_work(tiny):
    m = mascot.MF(k=32, groups=4, epochs=2, device="auto").fit(tiny[:3], tiny[:3])
    assert m.report_["device"].startswith("cuda")
    emulated = "emulator" in m.report_["device"]
    # a job the kernels do not handle (k = 600) trains on the CPU under auto, and says so
    m = mascot.MF(k=600, groups=4, epochs=2, device="auto").fit(tiny[:3], tiny[:3])
    assert m.report_["device"].startswith("cpu") and "auto" in m.report_["device"]
    assert "sm_" in _core.cuda_device_name()
    bw = _core.cuda_copy_bandwidth(1 << 26, 5)
    assert math.isfinite(bw) and bw > 0
    if not emulated:  # on the emulator it is the host's copy speed, load-dependent
        assert bw > 10.0  # GB/s: any real GPU is far above
