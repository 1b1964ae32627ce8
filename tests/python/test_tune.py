"""mascot.tune and `mascot tune` (python/mascot/tune.py): a handful of trials end to end on tiny
data, the preset they write read back by MF and mascot_train, pruning on a crafted case, the
seeded validation split, and bad arguments (one-line errors, no preset file left behind)."""
import json
import subprocess
import sys

import numpy as np
import optuna  # noqa: F401  (the test extra installs it: without it this module fails, never skips)
import pytest

import mascot
from mascot import _core, presets
from mascot import tune as tune_fn
from mascot.tune import SPACE, search_names, valid_split
from mascot.tune import main as tune_main

DATA = "synthetic-ml10m:0.002"
FIXED = {"k": 8, "epochs": 4, "deterministic": True}


@pytest.fixture(scope="module")
def split():
    ds = mascot.data.synthetic(DATA)
    return valid_split(ds.train, 0.2, 3)


def test_python_end_to_end_and_the_preset_reproduces_the_result(split, tmp_path):
    tr, va = split
    lines = []
    res = tune_fn(tr, va, n_trials=5, seed=1, log=lines.append, **FIXED)
    assert res.n_trials == 5 and res.n_complete + res.n_pruned == 5 and res.n_complete >= 1
    assert len(lines) == 5 and lines[0].startswith("trial 1/5: ")
    adaptive = res.params.get("schedule", "decay") != "decay"  # decay is searched for the decayed schedule only
    assert set(res.params) == {"method", *FIXED, *search_names(FIXED)} - ({"decay"} if adaptive else set())
    assert np.isfinite(res.rmse) and res.rmse == min(t.value for t in res.study.trials if t.value is not None)
    path = tmp_path / "best.json"
    res.write_preset(path, source="test")
    p = presets.read_preset(path)
    assert p["valid_rmse"] == res.rmse and p["source"] == "test"
    assert p["params"] == res.preset() and "deterministic" not in p["params"]  # run settings are not kept
    m = mascot.MF(preset=path, deterministic=True).fit(tr, va)  # the same training: the same RMSE, bit for bit
    assert m.report_["epochs"][-1]["test_rmse"] == res.rmse


def test_seeded_search_is_reproducible(split):
    tr, va = split
    a = tune_fn(tr, va, n_trials=4, seed=5, **FIXED)
    b = tune_fn(tr, va, n_trials=4, seed=5, **FIXED)
    assert a.params == b.params and a.rmse == b.rmse
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]


def test_first_trial_is_the_defaults(split):
    tr, va = split
    res = tune_fn(tr, va, n_trials=1, **FIXED)
    d = mascot.MF()
    assert res.study.trials[0].params == {n: getattr(d, n) for n in res.searched
                                          if n != "decay" or getattr(d, "schedule", "decay") == "decay"}


def test_pruning_stops_poor_trials_early(split):
    """Five good trials (above the default lr, which the first trial runs), then three whose
    learning rate barely moves the model: the median rule
    stops each after its warm-up epoch instead of running all 10 epochs."""
    tr, va = split
    fixed = {"k": 8, "epochs": 10, "deterministic": True, "lambda_p": 0.01, "lambda_q": 0.01, "init_std": 0.01,
             "decay": 0.1}
    if "schedule" in {p["name"] for p in _core.param_table()}:
        fixed["schedule"] = "decay"
    good, poor = [{"lr": x} for x in (0.035, 0.04, 0.045, 0.05, 0.055)], [{"lr": x} for x in (0.0011, 0.0012, 0.0013)]
    res = tune_fn(tr, va, n_trials=9, start=good + poor, **fixed)  # the defaults' trial, then these
    trials = res.study.trials
    assert [t.params["lr"] for t in trials[1:9]] == [g["lr"] for g in good + poor]
    assert all(t.state.name == "COMPLETE" for t in trials[:6])
    for t in trials[6:9]:
        assert t.state.name == "PRUNED" and len(t.user_attrs["curve"]) < 10, (t.params, t.user_attrs)
    assert res.n_pruned >= 3 and res.params["lr"] in [g["lr"] for g in good]
    # without pruning the same trials run to the end
    res = tune_fn(tr, va, n_trials=9, start=good + poor, prune=False, **fixed)
    assert res.n_pruned == 0 and all(len(t.user_attrs["curve"]) == 10 for t in res.study.trials)


def test_diverging_trials_are_pruned_and_no_result_is_an_error(split):
    tr, va = split
    with pytest.raises(RuntimeError, match="no trial completed"):
        tune_fn(tr, va, n_trials=2, k=8, epochs=2, lr=1e4, deterministic=True)


@pytest.mark.parametrize("kw, msg", [
    ({"n_trials": 0}, "n_trials must be an integer >= 1"),
    ({"timeout": -1}, "timeout must be a finite number"),
    ({"k": 0}, "k must be between 1 and 4096"),
    ({"preset": "paper"}, "preset is not a parameter tune fixes"),
    ({"lr": 0.1, "lambda_p": 0.1, "lambda_q": 0.1, "init_std": 0.1, "decay": 0.1, "schedule": "decay"}
     if "schedule" in {p["name"] for p in _core.param_table()} else
     {"lr": 0.1, "lambda_p": 0.1, "lambda_q": 0.1, "init_std": 0.1, "decay": 0.1}, "nothing to search"),
    ({"start": [{"nope": 1}]}, "start must be a list of dicts"),
])
def test_bad_python_arguments(split, kw, msg):
    tr, va = split
    with pytest.raises(ValueError, match=msg):
        tune_fn(tr, va, **{"n_trials": 1, **kw})


def test_empty_validation_set_is_refused(split):
    tr, _ = split
    with pytest.raises(ValueError, match="validation ratings"):
        tune_fn(tr, (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)), n_trials=1)


def test_search_space_follows_the_table():
    names = search_names()
    assert names[:5] == list(SPACE)
    assert ("schedule" in names) == ("schedule" in {p["name"] for p in _core.param_table()})
    assert "lr" not in search_names({"lr": 0.01})


def test_valid_split_is_seeded_per_user_and_disjoint():
    ds = mascot.data.synthetic(DATA)
    tr, va = valid_split(ds.train, 0.25, 7)
    tr2, va2 = valid_split(ds.train, 0.25, 7)
    assert np.array_equal(va.users, va2.users) and np.array_equal(va.items, va2.items)
    _, va3 = valid_split(ds.train, 0.25, 8)
    assert not (np.array_equal(va.users, va3.users) and np.array_equal(va.items, va3.items))
    assert len(tr) + len(va) == len(ds.train)
    pairs = lambda r: set(zip(r.users.tolist(), r.items.tolist()))  # noqa: E731
    assert not pairs(tr) & pairs(va) and pairs(tr) | pairs(va) == pairs(ds.train)
    n = np.bincount(ds.train.users, minlength=ds.train.n_users)
    held = np.bincount(va.users, minlength=ds.train.n_users)
    assert np.array_equal(held, np.floor(0.25 * n).astype(held.dtype))  # per user
    with pytest.raises(ValueError, match="fraction"):
        valid_split(ds.train, 1.5, 1)


# ---------------------------------------------------------------- the command
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mascot.cli", "tune", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_cli_end_to_end(tmp_path, trainer_exe):
    out = tmp_path / "p.json"
    r = _cli("--dataset", DATA, "--trials", "3", "--k", "8", "--epochs", "3", "--deterministic", "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [x.split(":")[0] for x in lines if x.startswith("trial ")] == ["trial 1/3", "trial 2/3", "trial 3/3"]
    assert any(x.startswith("best: valid RMSE ") for x in lines) and f"preset written: {out}" in r.stdout
    p = presets.read_preset(out)
    assert p["params"]["method"] == "mascot" and p["params"]["k"] == 8 and "lr" in p["params"]
    assert p["source"].startswith("mascot tune --dataset")
    rep = tmp_path / "r.json"
    r = subprocess.run([trainer_exe, "--preset", str(out), "--dataset", DATA, "--report", str(rep), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    c = json.loads(rep.read_text())["config"]
    assert c["k"] == 8 and c["epochs"] == 3 and c["lr"] == p["params"]["lr"]


def test_cli_default_out_name(tmp_path):
    r = _cli("--dataset", DATA, "--trials", "1", "--k", "4", "--epochs", "2", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tuned-synthetic-ml10m_0.002.json").exists() and "trial 1/1" not in r.stdout


@pytest.mark.parametrize("args, msg, rc", [
    (["--trials", "0"], "--trials: expects an integer >= 1", 2),
    (["--valid-fraction", "1.5"], "--valid-fraction: expects a number in (0, 1)", 2),
    (["--time-budget", "-3"], "--time-budget: expects a number of seconds > 0", 2),
    (["--k", "0"], "k must be between 1 and 4096 (got 0)", 2),
    (["--method", "nope"], "argument --method: invalid choice", 2),
    (["--valid", "x.txt"], "--valid goes with --train", 2),
    (["--bogus"], "unrecognized arguments: --bogus", 2),
    (["--lr", "1e4", "--trials", "2", "--epochs", "2", "--k", "4"], "no trial completed", 1),
])
def test_cli_bad_arguments_one_line_and_no_file(tmp_path, args, msg, rc):
    out = tmp_path / "p.json"
    r = _cli("--dataset", DATA, "--out", str(out), *args)
    assert r.returncode == rc and msg in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("mascot tune: error: "), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_out_fails_before_the_search(tmp_path):
    r = _cli("--dataset", DATA, "--out", str(tmp_path / "no" / "p.json"), "--trials", "50")
    assert r.returncode == 1 and "does not exist" in r.stderr and "trial 1" not in r.stdout


def test_failed_search_leaves_no_file_and_keeps_an_old_one(tmp_path, monkeypatch, capsys):
    t = sys.modules["mascot.tune"]  # the module: mascot.tune is the function
    out = tmp_path / "p.json"
    presets.write_preset(out, {"k": 4})

    def boom(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(t, "tune", boom)
    assert tune_main(["--dataset", DATA, "--out", str(out)]) == 130
    assert "interrupted; no preset written" in capsys.readouterr().err
    assert presets.read_preset(out)["params"] == {"k": 4} and [p.name for p in tmp_path.iterdir()] == ["p.json"]
