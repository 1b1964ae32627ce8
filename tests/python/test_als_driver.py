"""Method als in the core's training driver (issue 21 / issue 26): ALS trained through the one
epoch loop (mascot_train --method als, MF(method="als"), mascot.ALS) against the NumPy reference,
checkpoint / resume bit for bit, its settings as rows of the parameter table (bad values are
one-line errors naming the field; refused with other methods) and what the SGD-only rows do with
als (lr, decay, order, groups: ignored; rounding=stochastic: refused)."""
import json
import subprocess

import numpy as np
import pytest

import mascot
import reference_als as ref
from mascot import _core

F32 = np.float32


def explicit_data(nu=120, ni=70, density=0.12, seed=3):
    """Ratings of a rank-3 model plus noise, 1..5; user 5 and item 7 have none (zero rows)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((nu, ni)) < density
    mask[5] = False
    mask[:, 7] = False
    u, i = np.nonzero(mask)
    U, V = rng.standard_normal((nu, 3)), rng.standard_normal((ni, 3))
    r = np.clip(np.round(3 + (U[u] * V[i]).sum(1) + 0.3 * rng.standard_normal(len(u))), 1, 5).astype(F32)
    perm = rng.permutation(len(u))  # not sorted by user: the driver's relabelling must not matter
    return u[perm].astype(np.int32), i[perm].astype(np.int32), r[perm], nu, ni


def split(data, share=0.2, seed=4):
    u, i, r, nu, ni = data
    test = np.random.default_rng(seed).random(len(u)) < share
    return (u[~test], i[~test], r[~test]), (u[test], i[test], r[test])


def write_text(path, u, i, r):
    path.write_text("".join(f"{a} {b} {c:g}\n" for a, b, c in zip(u, i, r)))
    return path


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_driver_matches_the_reference(backend, implicit, solver):
    """Three epochs of MF(method="als") (the driver, the ALS backend on the CPU or the CUDA
    device, relabelled ids) against three reference iterations from the core's initial factors,
    to 1e-4 relative."""
    u, i, r, nu, ni = explicit_data()
    k, lam = 8, 0.1
    m = mascot.MF(method="als", k=k, epochs=3, lambda_p=lam, lambda_q=lam, init_std=0.1, seed=11, threads=1,
                  device=backend, method_params={"als_solver": solver, "implicit": implicit, "alpha": 2.0})
    m.fit((u, i, r))
    P = _core._testing.init_factors(nu, k, 0.1, 11, "P")
    Q = _core._testing.init_factors(ni, k, 0.1, 11, "Q")
    kw = dict(lam=lam, implicit=implicit, alpha=2.0, solver=solver, cg_steps=3)
    for _ in range(3):
        P, Q = ref.iteration(u, i, r, nu, ni, P, Q, **kw)
    scale = max(np.abs(P).max(), np.abs(Q).max())
    assert np.abs(m.P_ - P).max() / scale < 1e-4
    assert np.abs(m.Q_ - Q).max() / scale < 1e-4
    assert np.all(m.P_[5] == 0) and np.all(m.Q_[7] == 0)
    rep = m.report_
    assert rep["config"]["method"] == "als" and rep["config"]["als"]["als_solver"] == solver
    assert all(e["lr"] == 0 for e in rep["epochs"])  # no learning rate
    assert rep["totals"]["updates_per_second"] > 0
    assert rep["device"].startswith(backend)


def test_als_class_is_the_driver_run():
    """mascot.ALS.fit and MF(method="als") are the same run of the driver (bit for bit)."""
    u, i, r, nu, ni = explicit_data()
    a = mascot.ALS(factors=8, regularization=0.05, iterations=4, implicit=False, threads=1, random_state=3,
                   regularization_mode="weighted").fit((u, i, r))
    b = mascot.MF(method="als", k=8, epochs=4, lambda_p=0.05, lambda_q=0.05, seed=3, threads=1,
                  method_params={"als_regularization": "weighted"}).fit((u, i, r))
    assert a.user_factors.tobytes() == b.P_.tobytes() and a.item_factors.tobytes() == b.Q_.tobytes()
    assert [x["iteration"] for x in a.report_["iterations"]] == [0, 1, 2, 3]
    assert a.report_["run"]["config"]["method"] == "als"


def test_mascot_train_method_als(trainer_exe, tmp_path):
    """mascot_train --method als on tiny data: report, model; the model is MF(method="als")'s."""
    data = explicit_data()
    (tu, ti, tr), (su, si, sr) = split(data)
    train, test = write_text(tmp_path / "train.txt", tu, ti, tr), write_text(tmp_path / "test.txt", su, si, sr)
    args = ["--train", train, "--test", test, "--method", "als", "--k", 8, "--epochs", 4, "--lambda-p", 0.05,
            "--lambda-q", 0.05, "--als-solver", "cholesky", "--deterministic", "--quiet"]
    r = subprocess.run([trainer_exe, *map(str, args), "--save", str(tmp_path / "m"), "--report",
                        str(tmp_path / "rep.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "rep.json").read_text())
    rmse = [e["test_rmse"] for e in rep["epochs"]]
    assert len(rmse) == 4 and all(b < a for a, b in zip(rmse, rmse[1:])), rmse  # learns
    assert rep["config"]["method"] == "als" and rep["config"]["als"]["als_solver"] == "cholesky"
    P = np.load(tmp_path / "m" / "P.npy")
    m = mascot.MF(method="als", k=8, epochs=4, lambda_p=0.05, lambda_q=0.05, deterministic=True,
                  method_params={"als_solver": "cholesky"})
    m.fit((tu, ti, tr))
    assert P.shape == m.P_.shape and np.array_equal(P, m.P_)


def _stopped(m, tr, te, ckpt, stop_after):
    P, Q, rep = _core.train_checkpointed(
        m._config(), m._context(), *tr, int(tr[0].max()) + 1, int(tr[1].max()) + 1, *te, "",
        lambda rec: rec["epoch"] < stop_after - 1, str(ckpt), 1)
    return json.loads(rep)


@pytest.mark.parametrize("factors", ["fp32", "fp16"])
def test_interrupt_and_resume_is_bit_exact(tmp_path, factors):
    data = explicit_data()
    tr, te = split(data)
    params = dict(method="als", k=8, epochs=6, lambda_p=0.05, lambda_q=0.05, deterministic=True,
                  method_params={"als_factors": factors, "cg_steps": 2})
    full = mascot.MF(**params).fit(tr, te)
    rep = _stopped(mascot.MF(**params), tr, te, tmp_path / "ck", 3)
    assert rep["totals"]["interrupted"] and rep["totals"]["epochs_run"] == 3
    assert _core.read_checkpoint(str(tmp_path / "ck"))["epochs_done"] == 3
    resumed = mascot.MF.resume(tmp_path / "ck", tr, te)
    assert resumed.P_.tobytes() == full.P_.tobytes() and resumed.Q_.tobytes() == full.Q_.tobytes()
    assert [e["test_rmse"] for e in resumed.report_["epochs"]] == [e["test_rmse"] for e in full.report_["epochs"]]
    ep = full.report_["epochs"]
    assert ep[2]["test_rmse"] != ep[3]["test_rmse"]  # the factors move across the interruption
    assert all(e["fp32_user_groups"] == (0 if factors == "fp16" else e["fp32_user_groups"]) for e in ep)


def _cli(trainer_exe, tmp_path, *extra):
    data = explicit_data()
    (tu, ti, tr), _ = split(data)
    train = write_text(tmp_path / "train.txt", tu, ti, tr)
    return subprocess.run([trainer_exe, "--train", str(train), "--method", "als", "--k", "4", "--epochs", "2",
                           "--deterministic", "--quiet", *map(str, extra)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args,field", [
    (["--cg-steps", "0"], "cg_steps"), (["--als-solver", "lu"], "als_solver"), (["--alpha", "-1"], "alpha"),
    (["--als-factors", "fp8"], "precision"), (["--cg-form", "dense"], "cg_form"),
    (["--lambda-p", "0"], "lambda_p"), (["--als-regularization", "x"], "als_regularization"),
])
def test_bad_als_option_is_a_one_line_error(trainer_exe, tmp_path, args, field):
    r = _cli(trainer_exe, tmp_path, *args, "--save", tmp_path / "m")
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and field in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()


def test_als_options_are_refused_with_another_method(trainer_exe, tmp_path):
    r = _cli(trainer_exe, tmp_path, "--method", "fp32", "--cg-steps", "2")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "--cg-steps" in r.stderr and "als" in r.stderr, r.stderr
    with pytest.raises(ValueError, match="applies to method als"):
        mascot.MF(method="mpt", method_params={"implicit": True})


@pytest.mark.parametrize("extra", [["--lr", "0.5", "--decay", "2"], ["--order", "grid"], ["--order", "chunk"],
                                   ["--groups", "3"], ["--user-groups", "1", "--item-groups", "7"]])
def test_sgd_only_options_are_ignored_by_als(trainer_exe, tmp_path, extra):
    """lr, decay, order and the groups are the SGD methods' (their methods column): als trains the
    same model with or without them."""
    a = _cli(trainer_exe, tmp_path, "--save", tmp_path / "a")
    b = _cli(trainer_exe, tmp_path, *extra, "--save", tmp_path / "b")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for f in ("P.npy", "Q.npy"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), extra


def test_stochastic_rounding_is_refused_for_als(trainer_exe, tmp_path):
    r = _cli(trainer_exe, tmp_path, "--rounding", "stochastic")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "rounding" in r.stderr, r.stderr
    with pytest.raises(ValueError, match="grad_stats"):
        mascot.MF(method="als", grad_stats=True)


def test_resume_of_an_sgd_checkpoint_as_als_is_refused(trainer_exe, tmp_path):
    r = _cli(trainer_exe, tmp_path, "--method", "fp32", "--groups", "2", "--checkpoint", tmp_path / "ck")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([trainer_exe, "--resume", str(tmp_path / "ck"), "--method", "als", "--train",
                        str(tmp_path / "train.txt")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "fp32" in r.stderr and "als" in r.stderr, r.stderr


def test_mascot_train_resumes_an_interrupted_als_run_bit_exact(trainer_exe, tmp_path):
    """An ALS run stopped after 2 of 5 epochs (the core's checkpointed training, as mascot_train's
    Ctrl-C stops it) and continued by `mascot_train --resume` gives the uninterrupted run's model."""
    data = explicit_data()
    (tu, ti, tr), (su, si, sr) = split(data)
    train, test = write_text(tmp_path / "train.txt", tu, ti, tr), write_text(tmp_path / "test.txt", su, si, sr)
    args = ["--method", "als", "--k", "6", "--epochs", "5", "--lambda-p", "0.05", "--lambda-q", "0.05",
            "--cg-steps", "2", "--deterministic", "--quiet"]
    full = subprocess.run([trainer_exe, "--train", str(train), "--test", str(test), *args, "--save",
                           str(tmp_path / "full")], capture_output=True, text=True, timeout=120)
    assert full.returncode == 0, full.stderr
    m = mascot.MF(method="als", k=6, epochs=5, lambda_p=0.05, lambda_q=0.05, deterministic=True,
                  method_params={"cg_steps": 2})
    a, b = mascot.data.as_ratings(str(train)), mascot.data.as_ratings(str(test))
    P, Q, rep = _core.train_checkpointed(m._config(), m._context(), a.users, a.items, a.ratings, a.n_users,
                                         a.n_items, b.users, b.items, b.ratings, "", lambda rec: rec["epoch"] < 1,
                                         str(tmp_path / "ck"), 1)
    assert json.loads(rep)["totals"]["epochs_run"] == 2
    r = subprocess.run([trainer_exe, "--resume", str(tmp_path / "ck"), "--train", str(train), "--test", str(test),
                        "--quiet", "--save", str(tmp_path / "res")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for f in ("P.npy", "Q.npy"):
        assert (tmp_path / "res" / f).read_bytes() == (tmp_path / "full" / f).read_bytes()
