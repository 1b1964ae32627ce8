"""Early stopping, the RMSE-rise guard, and resume that extends a run (issue 20 items 1 and 5).

The crafted run: the test set holds the training pairs with HALF their ratings.  The model starts
near zero and learns the full ratings, so its test error falls while the predictions are below
half the ratings, then rises again: a best epoch in the middle of the run, then a rise."""
import json
import subprocess
import warnings

import numpy as np
import pytest

import mascot
from mascot import data


def _crafted(n_users=60, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users, dtype=np.int32), 12)
    i = rng.integers(0, n_items, len(u)).astype(np.int32)
    r = rng.uniform(1, 5, len(u)).astype(np.float32)
    train = data.Ratings(u, i, r, n_users, n_items)
    test = data.Ratings(u, i, (r * 0.5).astype(np.float32), n_users, n_items)
    return train, test


KW = dict(k=8, groups=1, lr=0.05, init_std=0.1, lambda_p=0.0, lambda_q=0.0, deterministic=True)


def test_crafted_run_falls_then_rises():
    tr, te = _crafted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mascot.MF(epochs=40, **KW).fit(tr, te)
    rm = [e["test_rmse"] for e in m.history_]
    best = int(np.argmin(rm))
    assert 0 < best < 30 and rm[-1] > rm[best] * 1.05, rm


def test_early_stop_keeps_the_best_factors():
    tr, te = _crafted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mascot.MF(epochs=40, early_stop=3, **KW).fit(tr, te)
        full = mascot.MF(epochs=40, **KW).fit(tr, te)
    rm = [e["test_rmse"] for e in full.history_]
    best = int(np.argmin(rm[:len(m.history_)]))
    assert m.best_epoch_ == best == m.report_["totals"]["best_epoch"]
    assert len(m.history_) == best + 4  # stopped 3 epochs after its best
    assert m.report_["totals"]["stopped_early"] is True and m.report_["totals"]["interrupted"] is False
    # the model is the best epoch's, bit for bit: the run of best + 1 epochs
    ref = mascot.MF(epochs=best + 1, **KW).fit(tr, te)
    np.testing.assert_array_equal(m.P_, ref.P_)
    np.testing.assert_array_equal(m.Q_, ref.Q_)
    assert m.report_["totals"]["final_test_rmse"] == rm[best]  # the totals describe the model kept


def test_early_stop_monitors_the_validation_set_first():
    ds = data.synthetic("synthetic-ml10m:0.002")
    m = mascot.MF(k=8, epochs=6, groups=4, threads=1, valid_fraction=0.2, early_stop=2).fit(ds.train, ds.test)
    v = [e["valid_rmse"] for e in m.history_]
    assert m.best_epoch_ == int(np.argmin(v))
    assert m.report_["totals"]["best_rmse"] == min(v) and m.report_["totals"]["monitor"] == "valid"


def test_early_stop_needs_an_evaluation_set(trainer_exe):
    tr, _ = _crafted()
    with pytest.raises(ValueError) as e:
        mascot.MF(k=4, epochs=3, early_stop=2).fit(tr)
    msg = str(e.value)
    assert "\n" not in msg and "early_stop" in msg and "valid_fraction" in msg and "test set" in msg, msg
    r = subprocess.run([trainer_exe, "--dataset", "synthetic-ml10m:0.002", "--k", "4", "--epochs", "2",
                        "--early-stop", "-1"], capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "early_stop must be >= 0 (got -1)" in err[0], r.stderr
    with pytest.raises(ValueError, match=r"early_stop must be >= 0 \(got -1\)"):
        mascot.MF(early_stop=-1)
    with pytest.raises(ValueError, match="early_stop must be an integer"):
        mascot.MF(early_stop=1.5)


def test_guard_warns_once_per_rise():
    tr, te = _crafted()
    with pytest.warns(mascot.RmseRiseWarning) as w:
        m = mascot.MF(epochs=40, **KW).fit(tr, te)
    rises = m.report_["warnings"]
    assert len(rises) == len([x for x in w if issubclass(x.category, mascot.RmseRiseWarning)]) >= 1
    first = rises[0]
    rm = [e["test_rmse"] for e in m.history_]
    e = first["epoch"]
    assert first["set"] == "test" and first["now"] == rm[e] and first["best"] == min(rm[:e + 1])
    assert first["best_epoch"] == int(np.argmin(rm[:e + 1]))
    # the first epoch more than 1 % above the best since that best
    assert rm[e] > first["best"] * 1.01 and all(x <= first["best"] * 1.01 for x in rm[first["best_epoch"]:e])
    assert str(e + 1) in str(w[0].message)
    # once per rise: a second warning needs a new best in between
    for a, b in zip(rises, rises[1:]):
        assert min(rm[a["epoch"]:b["epoch"]]) < a["best"]


def test_guard_is_quiet_on_a_converging_run():
    ds = data.synthetic("synthetic-ml10m:0.002")
    with warnings.catch_warnings():
        warnings.simplefilter("error", mascot.RmseRiseWarning)
        m = mascot.MF(k=8, epochs=3, groups=4, threads=1).fit(ds.train, ds.test)
    assert "warnings" not in m.report_


def test_cli_early_stop_and_guard(trainer_exe, tmp_path):
    tr, te = _crafted()
    ftr, fte, rep = tmp_path / "tr.txt", tmp_path / "te.txt", tmp_path / "r.json"
    data.write_text(ftr, tr)
    data.write_text(fte, te)
    args = [trainer_exe, "--train", ftr, "--test", fte, "--k", 8, "--groups", 1, "--lr", 0.05, "--init-std", 0.1,
            "--lambda-p", 0, "--lambda-q", 0, "--deterministic", "--epochs", 40]
    r = subprocess.run(list(map(str, args + ["--early-stop", 3, "--report", rep])), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    j = json.loads(rep.read_text())
    best = j["totals"]["best_epoch"]
    assert len(j["epochs"]) == best + 4 and f"best epoch {best + 1}" in r.stdout
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warn) == len(j["warnings"]) >= 1 and "test RMSE" in warn[0], r.stderr


# ---------------------------------------------------------------- resume that extends a run
def _cli(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def test_cli_resume_extends_a_finished_run(trainer_exe, tmp_path):
    ds = data.synthetic("synthetic-ml10m:0.002")
    ftr, fte = tmp_path / "tr.mrat", tmp_path / "te.mrat"
    data.write_mrat(ftr, ds.train)
    data.write_mrat(fte, ds.test)
    common = ["--k", 8, "--groups", 4, "--method", "mascot", "--warmup", 1, "--period", 1, "--threshold", 1.5,
              "--deterministic", "--quiet"]
    _cli(trainer_exe, "--train", ftr, "--test", fte, *common, "--epochs", 6, "--save", tmp_path / "six")
    ck = tmp_path / "ck"
    _cli(trainer_exe, "--train", ftr, "--test", fte, *common, "--epochs", 3, "--checkpoint", ck)
    # no data flags: the checkpoint's files; --epochs: 6 in total, the schedule continues
    r = _cli(trainer_exe, "--resume", ck, "--epochs", 6, "--save", tmp_path / "ext", "--report", tmp_path / "r.json")
    for f in ("P.npy", "Q.npy"):
        assert (tmp_path / "six" / f).read_bytes() == (tmp_path / "ext" / f).read_bytes()
    j = json.loads((tmp_path / "r.json").read_text())
    assert [e["epoch"] for e in j["epochs"]] == list(range(6)) and j["config"]["epochs"] == 6
    six = json.loads((tmp_path / "six" / "model.json").read_text())["report"]
    assert [e["test_rmse"] for e in j["epochs"]] == [e["test_rmse"] for e in six["epochs"]]
    assert "resuming" in r.stderr
    # fewer epochs than done: refused in one line naming the option
    r = subprocess.run([trainer_exe, "--resume", str(ck), "--epochs", "2"], capture_output=True, text=True, timeout=300)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "epochs" in err[0] and "6" in err[0], r.stderr
    # other training options are still refused with --resume
    r = subprocess.run([trainer_exe, "--resume", str(ck), "--lr", "0.1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--lr cannot be combined with --resume" in r.stderr


def test_cli_help_says_what_resume_reads(trainer_exe):
    r = _cli(trainer_exe, "--help")
    assert "--train/--test files it read" in " ".join(r.stdout.split())


def test_python_resume_and_warm_start_extend_a_run(tmp_path):
    ds = data.synthetic("synthetic-ml10m:0.002")
    kw = dict(k=8, groups=4, method="mascot", warmup=1, period=1, threshold=1.5, deterministic=True)
    six = mascot.MF(epochs=6, **kw).fit(ds.train, ds.test)
    mascot.MF(epochs=3, **kw).fit(ds.train, ds.test, checkpoint=tmp_path / "a")
    ext = mascot.MF.resume(tmp_path / "a", ds.train, ds.test, epochs=6)
    np.testing.assert_array_equal(ext.P_, six.P_)
    np.testing.assert_array_equal(ext.Q_, six.Q_)
    assert ext.epochs == 6 and len(ext.history_) == 6
    # warm_start: the previous checkpointed fit continues to `epochs` in total
    m = mascot.MF(epochs=3, **kw).fit(ds.train, ds.test, checkpoint=tmp_path / "b")
    m.epochs = 6
    assert m.fit(ds.train, ds.test, warm_start=True) is m
    np.testing.assert_array_equal(m.P_, six.P_)
    np.testing.assert_array_equal(m.Q_, six.Q_)
    assert [e["test_rmse"] for e in m.history_] == [e["test_rmse"] for e in six.history_]
    with pytest.raises(ValueError, match="warm_start continues a checkpointed fit"):
        mascot.MF(epochs=3, k=4).fit(ds.train, warm_start=True)
    with pytest.raises(ValueError, match="epochs must be >= 6"):
        mascot.MF.resume(tmp_path / "a", ds.train, ds.test, epochs=5)


def test_early_stopping_across_a_resume_keeps_the_best(tmp_path):
    """A checkpoint taken after the best epoch holds that epoch's factors (best_P32 / best_Q32):
    resumed and extended, the run stops where the uninterrupted one does, with its model."""
    tr, te = _crafted()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = mascot.MF(epochs=40, early_stop=3, **KW).fit(tr, te)
        b = full.best_epoch_
        part = mascot.MF(epochs=b + 2, early_stop=3, **KW).fit(tr, te, checkpoint=tmp_path / "ck")
        assert part.best_epoch_ == b and not part.report_["totals"]["stopped_early"]
        assert any(f.name.startswith("best_P32.") for f in (tmp_path / "ck").iterdir())
        ext = mascot.MF.resume(tmp_path / "ck", tr, te, epochs=40)
    assert ext.best_epoch_ == b and ext.report_["totals"]["stopped_early"] and len(ext.history_) == b + 4
    np.testing.assert_array_equal(ext.P_, full.P_)
    np.testing.assert_array_equal(ext.Q_, full.Q_)
    assert ext.report_["warnings"] == full.report_["warnings"]


def test_new_options_name_themselves():
    tr, te = _crafted()
    for kw, words in ((dict(warm_start="yes"), "warm_start"),):
        with pytest.raises(ValueError, match=words):
            mascot.MF(k=4, epochs=1).fit(tr, te, **kw)
    with pytest.raises(ValueError, match="epochs must be"):
        mascot.MF.resume("/nonexistent-mascot-ck", tr, te, epochs=0)


@pytest.mark.parametrize("method", ["fp32", "mascot"])
def test_early_stop_on_every_backend(backend, method):
    """The best epoch's factors come from the backend mid-run (factors() after an improving
    epoch): the early-stopped model scores that epoch's recorded RMSE (CUDA: on the emulator)."""
    from backends import backend_k
    tr, te = _crafted()
    kw = dict(KW, k=backend_k(backend, 8), method=method, deterministic=backend == "cpu", device=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mascot.MF(epochs=40, early_stop=3, **kw).fit(tr, te)
    b = m.best_epoch_
    assert m.report_["device"].startswith(backend) and m.report_["totals"]["stopped_early"]
    assert len(m.history_) == b + 4 and b == int(np.argmin([e["test_rmse"] for e in m.history_]))
    assert m.rmse(te) == pytest.approx(m.history_[b]["test_rmse"], rel=1e-4)
