"""mascot_train against a demanding user: pipes, odd file names, divergence, output targets that
cannot be written, checkpoint directories holding other files, and option spellings that used to
be accepted silently.  Every failure must be one error line, a non-zero exit, and no output."""
import json
import os
import subprocess

import numpy as np
import pytest

import mascot
from mascot import _core


def run(exe, *args, **kw):
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def one_error(r, code, needle):
    err = r.stderr.strip().splitlines()
    assert r.returncode == code, r.stderr
    assert err and err[-1].startswith("mascot_train: error:") and needle in err[-1], r.stderr
    assert not any(ln.startswith("mascot_train: error:") for ln in err[:-1]), r.stderr


@pytest.fixture
def small(tmp_path, tiny):
    u, i, r, nu, ni = tiny
    path = tmp_path / "t.txt"
    path.write_text("".join(f"{a} {b} {c}\n" for a, b, c in zip(u, i, r)))
    return path, len(r)


FAST = ["--k", 8, "--epochs", 2, "--groups", 2, "--quiet"]


def test_training_data_from_a_pipe(trainer_exe, small, tmp_path):
    path, n = small
    rep = tmp_path / "r.json"
    d = mascot.data.read(str(path))
    mascot.data.write_mrat(str(tmp_path / "t.mrat"), d)
    for src in (path, tmp_path / "t.mrat"):  # a real pipe: nothing lost to the format check
        r = subprocess.run([trainer_exe, "--train", "/dev/stdin", *map(str, FAST), "--report", str(rep)],
                           input=src.read_bytes(), capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert json.loads(rep.read_text())["dataset"]["n_train"] == n


def test_damaged_mrat_is_named_as_such(trainer_exe, tmp_path):
    bad = tmp_path / "bad.mrat"
    bad.write_bytes(b"X" * 64)
    one_error(run(trainer_exe, "--train", bad, *FAST), 2, "bad.mrat: not a .mrat file (wrong magic bytes)")


def test_diverged_run_fails_and_writes_nothing(trainer_exe, small, tmp_path):
    path, _ = small
    out = ["--save", tmp_path / "m", "--report", tmp_path / "r.json", "--export-libmf", tmp_path / "m.libmf"]
    r = run(trainer_exe, "--train", path, "--test", path, "--method", "fp32", "--k", 8, "--epochs", 5,
            "--lr", 1000, "--init-std", 10, *out)
    one_error(r, 1, "training diverged: the test RMSE is not finite after epoch 1")
    r = run(trainer_exe, "--train", path, "--method", "fp32", "--k", 8, "--epochs", 3, "--lr", 1000,
            "--init-std", 10, *out)
    one_error(r, 1, "training diverged: the factors are not finite")
    assert sorted(os.listdir(tmp_path)) == ["t.txt"]


@pytest.mark.parametrize("target, make, needle", [
    ("--save", "file", "--save {p}: exists and is not a directory"),
    ("--save", "foreign", "--save {p}: exists, is not empty and holds no model.json"),
    ("--report", "dir", "--report {p}: is a directory"),
    ("--export-libmf", "dir", "--export-libmf {p}: is a directory"),
    ("--checkpoint", "foreign", "checkpoint directory {p} exists and is not empty"),
    ("--checkpoint", "file", "checkpoint directory {p}: exists and is not a directory"),
    ("--checkpoint", "noparent", "checkpoint directory {p}: directory"),
])
def test_unwritable_targets_fail_before_training(trainer_exe, small, tmp_path, target, make, needle):
    path, _ = small
    p = tmp_path / "target"
    if make == "file":
        p.write_text("mine\n")
    elif make == "dir":
        p.mkdir()
    elif make == "foreign":
        p.mkdir()
        (p / "notes.e1.npy").write_text("mine\n")
    else:
        p = tmp_path / "missing" / "target"
    before = sorted(os.listdir(tmp_path))
    others = [a for a in ["--report", tmp_path / "r.json", "--save", tmp_path / "m"] if a != target]
    if target in ("--report", "--save"):
        others = ["--export-libmf", tmp_path / "m.libmf"]
    r = run(trainer_exe, "--train", path, *FAST, target, p, *others)
    one_error(r, 1, needle.format(p=p))
    assert "epoch" not in r.stdout and sorted(os.listdir(tmp_path)) == before
    if make == "foreign":
        assert (p / "notes.e1.npy").read_text() == "mine\n"  # never deleted


def _interrupt_after_first_epoch(args):
    import signal
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = p.stdout.readline()
        assert line, "mascot_train ended early"
        if line.split() and line.split()[0].isdigit():
            break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    return err


def test_checkpoint_cleanup_keeps_files_it_did_not_write(trainer_exe, tmp_path):
    ck = tmp_path / "ck"
    _interrupt_after_first_epoch([trainer_exe, "--dataset", "synthetic-ml10m:0.02", "--k", "16", "--epochs", "300",
                                  "--method", "fp32", "--checkpoint", str(ck)])
    # files a user dropped in later, some shaped almost like ours: none of them is removed when
    # the resumed run replaces the checkpoint
    mine = ["my.e1.npy", "P.e2024.npy", "P.e000002.zzzz.npy", "x.json.tmp.k", "checkpoint.json.tmp.keep",
            "checkpoint.json.bak"]
    for f in mine:
        (ck / f).write_text("mine\n")
    ours = set(os.listdir(ck)) - set(mine) - {"checkpoint.json"}
    assert ours and all(f.split(".")[1].startswith("e0") for f in ours), ours
    r = run(trainer_exe, "--resume", ck, "--quiet")
    assert r.returncode == 0, r.stderr
    assert _core.read_checkpoint(str(ck))["epochs_done"] == 300
    assert all((ck / f).read_text() == "mine\n" for f in mine)
    assert not ours & set(os.listdir(ck))  # the old checkpoint's files are gone


def test_refused_checkpoint_run_leaves_no_directory(trainer_exe, small, tmp_path):
    path, _ = small
    r = run(trainer_exe, "--train", path, "--k", 8, "--epochs", 1, "--method", "mascot", "--checkpoint",
            tmp_path / "ck")
    one_error(r, 2, "user_groups must be <= the number of users")
    assert not (tmp_path / "ck").exists()


def test_odd_file_names_round_trip(trainer_exe, small, tmp_path):
    path, _ = small
    tab = tmp_path / "tab\there.txt"
    tab.write_bytes(path.read_bytes())
    ck = tmp_path / "ck"
    assert run(trainer_exe, "--train", tab, *FAST, "--checkpoint", ck).returncode == 0
    r = run(trainer_exe, "--resume", ck, "--train", tab, "--quiet", "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["dataset"]["name"] == str(tab)
    # a name that is not UTF-8: the report and model.json stay valid JSON (U+FFFD for the byte)
    raw = os.fsencode(tmp_path) + b"/x\xff.txt"
    with open(raw, "wb") as f:
        f.write(path.read_bytes())
    r = subprocess.run([trainer_exe, "--train", raw, *map(str, FAST), "--report", str(tmp_path / "ff.json"),
                        "--save", str(tmp_path / "ffm")], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ff.json").read_bytes())["dataset"]["name"].endswith("x\ufffd.txt")
    assert mascot.MF.load(str(tmp_path / "ffm")).k == 8


def test_trailing_slash_names_the_directory(trainer_exe, small, tmp_path):
    path, _ = small
    for _ in range(2):  # create, then replace
        r = run(trainer_exe, "--train", path, *FAST, "--save", f"{tmp_path}/m/")
        assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["m", "t.txt"]
    assert sorted(os.listdir(tmp_path / "m")) == ["P.npy", "Q.npy", "model.json"]


def test_model_json_has_the_training_mean(trainer_exe, small, tmp_path):
    path, _ = small
    d = mascot.data.read(str(path))
    assert run(trainer_exe, "--train", path, *FAST, "--save", tmp_path / "m").returncode == 0
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["train_mean"] == pytest.approx(float(np.mean(d.ratings, dtype=np.float64)), rel=1e-12)


@pytest.mark.parametrize("args, needle", [
    (["--grad-stats=no"], "--grad-stats takes no value"),
    (["--quiet=false"], "--quiet takes no value"),
    (["--deterministic=0"], "--deterministic takes no value"),
    (["--dataset", ""], "--dataset needs a non-empty value"),
    (["--save="], "--save needs a non-empty value"),
    (["--report", ""], "--report needs a non-empty value"),
    (["--export-libmf", ""], "--export-libmf needs a non-empty value"),
    (["--lr", "1e-50"], "--lr is outside the float32 range"),
    (["--lr", "1e40"], "--lr is outside the float32 range"),
    (["--lr", "1e-400"], "--lr is outside the double range"),
])
def test_option_spellings_that_used_to_pass(trainer_exe, args, needle):
    one_error(run(trainer_exe, *args), 2, needle)


@pytest.mark.parametrize("var, value, needle", [
    ("MASCOT_ISA", "bogus", "MASCOT_ISA='bogus' is not a kernel variant"),
    ("MASCOT_MEMORY_LIMIT", "1e9", "MASCOT_MEMORY_LIMIT='1e9' is not a byte count"),
    ("MASCOT_MEMORY_LIMIT", "-1", "MASCOT_MEMORY_LIMIT='-1' is not a byte count"),
])
def test_bad_environment_settings(trainer_exe, small, var, value, needle):
    path, _ = small
    one_error(run(trainer_exe, "--train", path, *FAST, env={**os.environ, var: value}), 2, needle)


def test_last_loss_scale_wins(trainer_exe, small, tmp_path):
    path, _ = small
    rep = tmp_path / "r.json"
    r = run(trainer_exe, "--train", path, *FAST, "--method", "mpt", "--loss-scale", "dynamic", "--loss-scale", 500,
            "--report", rep)
    assert r.returncode == 0, r.stderr
    c = json.loads(rep.read_text())["config"]["competing"]
    assert c["dynamic_loss_scale"] is False and c["loss_scale"] == 500


def test_resume_refuses_deterministic_for_a_parallel_run(trainer_exe, small, tmp_path):
    path, _ = small
    ck = tmp_path / "ck"
    assert run(trainer_exe, "--train", path, *FAST, "--threads", 2, "--checkpoint", ck).returncode == 0
    one_error(run(trainer_exe, "--resume", ck, "--train", path, "--deterministic"), 2,
              "--deterministic cannot be combined with --resume")


def test_methods_without_groups_take_small_data(trainer_exe, small, tmp_path):
    path, _ = small  # 40 users: the default 100 groups only matter to g-switching
    rep = tmp_path / "r.json"
    r = run(trainer_exe, "--train", path, "--k", 8, "--epochs", 1, "--method", "fp32", "--quiet", "--report", rep)
    assert r.returncode == 0, r.stderr
    assert json.loads(rep.read_text())["dataset"]["user_groups"] <= 40
    one_error(run(trainer_exe, "--train", path, "--k", 8, "--epochs", 1, "--method", "mascot"), 2,
              "user_groups must be <= the number of users (40, got 100); lower user_groups (--groups")


def test_resume_hint_is_quoted_for_the_shell(trainer_exe, tmp_path):
    import shlex
    ck = tmp_path / "my ck"
    err = _interrupt_after_first_epoch([trainer_exe, "--dataset", "synthetic-ml10m:0.02", "--k", "16", "--epochs",
                                        "300", "--checkpoint", str(ck), "--save", str(tmp_path / "my model")])
    how = shlex.split(err.strip().splitlines()[-1].split("resume with: ")[1])
    assert how[1:5] == ["--resume", str(ck), "--save", str(tmp_path / "my model")]
    assert _core.read_checkpoint(str(ck))["epochs_done"] >= 1
