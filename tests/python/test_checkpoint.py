"""Checkpoint / resume (docs/checkpoint.md): exactness of deterministic resume for every kind of
training state, SIGINT and SIGKILL behaviour of mascot_train, and clear errors for bad checkpoints."""
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from mascot import MF, _core, data

EPOCHS = 8


@pytest.fixture(scope="module")
def ds():
    return data.synthetic("synthetic-ml10m:0.002")  # 3125 users, 477 items, 15.9K ratings


# Each case changes training state across the interruption after epoch J (0-based epochs < J done):
#  mascot      groups switch in epochs 2 (before) and 3, 4, 7 (after); baselines and precisions carry
#  muppet      the gradient-diversity window is open at J and the policy switches 8 -> 12 bits at epoch 3
#  mpt         dynamic loss scale: halvings and doublings on both sides
#  afp         per-worker point positions, intervals and iteration counts
CASES = {
    "fp32": dict(method="fp32"),
    "fp16": dict(method="fp16"),
    "mascot": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5),
    "mascot-stochastic": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5, rounding="stochastic"),
    "mpt-dynamic": dict(method="mpt", method_params={"loss_scale": "dynamic", "loss_scale_window": 200}),
    "mpt-stochastic": dict(method="mpt", rounding="stochastic",
                           method_params={"loss_scale": "dynamic", "loss_scale_window": 200}),
    "muppet": dict(method="muppet", method_params={"muppet_resolution": 2, "muppet_patience": 1,
                                                   "muppet_threshold_alpha": 0.01, "muppet_threshold_beta": 0.0}),
    "afp": dict(method="afp"),
    "afp-stochastic": dict(method="afp", rounding="stochastic"),
    "fp32-grid": dict(method="fp32", order="grid"),  # the replayed in-place chunk shuffles, blocks by epoch
    "mascot-chunk": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5, order="chunk"),
    "mascot-grad-stats": dict(method="mascot", groups=8, warmup=1, period=1, threshold=1.5, grad_stats=True),
    "random-fp16": dict(method="mascot-n1", random_fp16=0.5),  # FP16 and FP32 rows from the start
}
J = 3


def _interrupted_run(m, ds, ckpt, stop_after, every=1):
    """fit(checkpoint=...) stopped by the epoch callback after `stop_after` epochs."""
    tr, te = ds.train, ds.test
    P, Q, rep = _core.train_checkpointed(
        m._config(), m._context(), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
        te.users, te.items, te.ratings, "", lambda rec: rec["epoch"] < stop_after - 1, str(ckpt), every)
    return json.loads(rep)


def _same_run(a, b):
    assert a.P_.tobytes() == b.P_.tobytes() and a.Q_.tobytes() == b.Q_.tobytes()
    ea, eb = a.report_["epochs"], b.report_["epochs"]
    assert [e["test_rmse"] for e in ea] == [e["test_rmse"] for e in eb]
    assert [e.get("method") for e in ea] == [e.get("method") for e in eb]
    assert [(e["fp32_user_groups"], e["fp32_item_groups"]) for e in ea] == \
           [(e["fp32_user_groups"], e["fp32_item_groups"]) for e in eb]
    assert a.report_["switches"] == b.report_["switches"]
    assert [e.get("user_grad_norm") for e in ea] == [e.get("user_grad_norm") for e in eb]


@pytest.mark.parametrize("case", list(CASES))
def test_resume_is_bit_exact(ds, tmp_path, case):
    params = dict(k=16, epochs=EPOCHS, deterministic=True, preset="paper", **CASES[case])  # tuned on its dynamics
    full = MF(**params).fit(ds.train, ds.test)
    rep = _interrupted_run(MF(**params), ds, tmp_path / "ck", J)
    assert rep["totals"]["interrupted"] and rep["totals"]["epochs_run"] == J
    assert _core.read_checkpoint(str(tmp_path / "ck"))["epochs_done"] == J
    resumed = MF.resume(tmp_path / "ck", ds.train, ds.test)
    assert resumed.report_["config"] == full.report_["config"]
    assert resumed.deterministic and resumed.threads == 1 and resumed.k == 16 and resumed.method == params["method"]
    _same_run(full, resumed)
    # the state really changes across the interruption (otherwise the test proves little)
    ep = full.report_["epochs"]
    if case.startswith("mascot"):
        sw = {s["epoch"] for s in full.report_["switches"]}
        assert min(sw) < J <= max(sw)
    if case == "mascot-grad-stats":
        assert all(len(e["user_grad_norm"]) > 1 for e in ep)
    if case == "random-fp16":
        assert all(e["fp32_user_groups"] == 1 for e in ep) and full.report_["dataset"]["user_groups"] == 2
    if case == "muppet":
        assert ep[J - 1]["method"]["word_length"] == 8 and ep[-1]["method"]["word_length"] == 12
    if case.startswith("afp"):  # point positions move before J and again right after it
        pos = [tuple(e["method"]["tensors"][t]["point_position_min"] for t in "PQG") for e in ep]
        assert len(set(pos[:J])) > 1 and pos[J] != pos[J - 1], pos
    if case.startswith("mpt"):
        scales = [e["method"]["loss_scales"][0] for e in ep]
        assert scales[J - 1] != 1000 and len(set(scales[J - 1:])) > 1  # moved from S0 before J, and after
    # the final checkpoint holds the finished run; resuming it again trains nothing more
    again = MF.resume(tmp_path / "ck", ds.train, ds.test)
    _same_run(full, again)


def test_checkpoint_every_and_final_on_stop(ds, tmp_path):
    params = dict(k=8, epochs=EPOCHS, deterministic=True, method="mascot", groups=8, warmup=1, period=1)
    ck = tmp_path / "ck"
    rep = _interrupted_run(MF(**params), ds, ck, 5, every=2)
    assert rep["totals"]["epochs_run"] == 5
    assert _core.read_checkpoint(str(ck))["epochs_done"] == 5  # the stop wrote a checkpoint off the 2-epoch grid
    files = sorted(os.listdir(ck))
    assert "checkpoint.json" in files and all(".e000005." in f for f in files if f != "checkpoint.json"), files
    # MF.fit(checkpoint=...) runs to the end and leaves the final state
    m = MF(**params).fit(ds.train, ds.test, checkpoint=tmp_path / "ck2", checkpoint_every=3)
    assert _core.read_checkpoint(str(tmp_path / "ck2"))["epochs_done"] == EPOCHS
    _same_run(m, MF(**params).fit(ds.train, ds.test))


# ------------------------------------------------------------------ bad checkpoints

def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.fixture
def saved(ds, tmp_path):
    ck = tmp_path / "ck"
    _interrupted_run(MF(k=8, epochs=4, deterministic=True, method="mascot", groups=4), ds, ck, 2)
    return ck


def _file(ck, prefix):
    return ck / next(f for f in os.listdir(ck) if f.startswith(prefix))


def test_bad_checkpoints(ds, saved, tmp_path):
    tr, te = ds.train, ds.test
    with pytest.raises(OSError) as e:
        MF.resume(tmp_path / "nowhere", tr, te)
    _one_line(e, "does not exist")
    # a fresh run into a directory that holds a checkpoint
    with pytest.raises(ValueError) as e:
        MF(k=8, epochs=2).fit(tr, te, checkpoint=saved)
    _one_line(e, "already holds a checkpoint")

    # truncated / missing / corrupted state files, files of another k or method, other data:
    # the bad-input corpus (test_bad_input_corpus.py, CHECKPOINTS), through MF.resume and the CLI
    state = _file(saved, "P16").read_bytes()
    _file(saved, "P16").write_bytes(state[:-1] + bytes([state[-1] ^ 1]))  # read_checkpoint's own check
    with pytest.raises(ValueError) as e:
        _core.read_checkpoint(str(saved))
    _one_line(e, "P16.e000002", "corrupted")
    _file(saved, "P16").write_bytes(state)
    MF.resume(saved, tr, te)  # intact again
    # manifest: another version, and missing
    man = saved / "checkpoint.json"
    text = man.read_text()
    assert '"version":4,' in text
    man.write_text(text.replace('"version":4,', '"version":99,'))
    with pytest.raises(ValueError) as e:
        MF.resume(saved, tr, te)
    _one_line(e, "unsupported version 99 (this build reads versions 3 to 4): written by a newer MASCOT")
    # 1: before the driver's own state; 2: before the config record tagged by name
    for version in (1, 2):
        man.write_text(text.replace('"version":4,', f'"version":{version},'))
        with pytest.raises(ValueError) as e:
            MF.resume(saved, tr, te)
        _one_line(e, f"checkpoint.json: written by an older MASCOT (checkpoint format version {version}",
                  "cannot be resumed")
    man.unlink()
    with pytest.raises(OSError) as e:
        MF.resume(saved, tr, te)
    _one_line(e, "checkpoint.json is missing")


# ------------------------------------------------------------------ mascot_train

def _run(exe, *args, **kw):
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def _err_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1
    return lines[-1]


def test_cli_wrong_k_method_and_conflicting_flags(trainer_exe, tmp_path):
    ck = tmp_path / "ck"
    base = ["--dataset", "synthetic-ml10m:0.002", "--quiet", "--deterministic"]
    r = _run(trainer_exe, *base, "--k", 8, "--epochs", 2, "--method", "fp32", "--checkpoint", ck)
    assert r.returncode == 0, r.stderr
    r = _run(trainer_exe, "--resume", ck, "--k", 16, "--quiet")
    assert r.returncode == 2 and "has k=8, not k=16" in _err_line(r), r.stderr
    r = _run(trainer_exe, "--resume", ck, "--method", "mascot", "--quiet")
    assert r.returncode == 2 and "written by method fp32, not mascot" in _err_line(r), r.stderr
    r = _run(trainer_exe, "--resume", ck, "--lr", 0.1, "--quiet")
    assert r.returncode == 2 and "--lr cannot be combined with --resume" in _err_line(r), r.stderr
    r = _run(trainer_exe, "--resume", ck, "--dataset", "synthetic-ml10m:0.003", "--quiet")
    assert r.returncode == 2 and "other data" in _err_line(r), r.stderr
    r = _run(trainer_exe, *base, "--k", 8, "--epochs", 2, "--checkpoint", ck)
    assert r.returncode == 2 and "already holds a checkpoint" in _err_line(r), r.stderr
    r = _run(trainer_exe, *base, "--threads", 2)
    assert r.returncode == 2 and "--deterministic runs one thread" in _err_line(r), r.stderr
    r = _run(trainer_exe, "--resume", ck, "--k", 8, "--method", "fp32", "--quiet")  # repeating them is fine
    assert r.returncode == 0, r.stderr


def _wait_for_epoch(proc, n):
    """Reads progress lines until epoch n is reported."""
    while True:
        line = proc.stdout.readline()
        assert line, "mascot_train ended early"
        parts = line.split()
        if parts and parts[0].isdigit() and int(parts[0]) >= n:
            return


def test_sigint_writes_final_checkpoint_and_resume_is_exact(trainer_exe, tmp_path):
    args = ["--dataset", "synthetic-ml10m:0.02", "--k", 16, "--epochs", 12, "--method", "mascot", "--groups", 8,
            "--warmup", 1, "--period", 1, "--deterministic"]
    ref = _run(trainer_exe, *args, "--quiet", "--save", tmp_path / "ref", "--report", tmp_path / "ref.json")
    assert ref.returncode == 0, ref.stderr
    ck = tmp_path / "ck"
    p = subprocess.Popen([trainer_exe, *map(str, [*args, "--checkpoint", ck, "--checkpoint-every", 5,
                                                  "--save", tmp_path / "res", "--report", tmp_path / "res.json"])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_epoch(p, 2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert "interrupted after epoch" in line and f"checkpoint saved in {ck}" in line, err
    how = line.split("resume with: ")[1].split()
    assert how[:3] == ["mascot_train", "--resume", str(ck)]
    done = _core.read_checkpoint(str(ck))["epochs_done"]
    assert 2 <= done < 12
    assert not (tmp_path / "res").exists()  # nothing saved by the interrupted run
    r = _run(trainer_exe, *how[1:], "--quiet")
    assert r.returncode == 0, r.stderr
    for f in ("P.npy", "Q.npy"):
        assert (tmp_path / "res" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes()
    a = json.loads((tmp_path / "ref.json").read_text())["epochs"]
    b = json.loads((tmp_path / "res.json").read_text())["epochs"]
    assert [e["test_rmse"] for e in a] == [e["test_rmse"] for e in b]


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def test_sigkill_leaves_last_checkpoint_loadable(trainer_exe, tmp_path):
    """Kills a run writing a checkpoint every epoch at random moments; after every kill the
    directory's checkpoint loads (all sizes and checksums), never goes backwards, and resuming
    it to the end gives exactly the uninterrupted model."""
    # 4.6 MB of FP32 factors per checkpoint (written every epoch, fsync'ed: most of the run's time)
    # 60 epochs: 8 kills advance the run by up to ~3 epochs each on an idle machine, and all 8 must land
    args = ["--dataset", "synthetic-ml10m:0.05", "--k", 64, "--epochs", 60, "--method", "fp32", "--deterministic",
            "--quiet"]
    ck = tmp_path / "ck"
    rng = random.Random(1234)
    last = kills = torn = 0
    for _ in range(8):
        resuming = (ck / "checkpoint.json").exists()
        cmd = [trainer_exe, "--resume", str(ck), "--quiet"] if resuming else \
              [trainer_exe, *map(str, args), "--checkpoint", str(ck)]
        before = _mtime(ck / "checkpoint.json")
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # once this process has written a checkpoint, kill it at a random moment of the next
        # epochs (each ~70 % writing): mid-write, between writes, or between manifest and cleanup
        deadline = time.monotonic() + 30
        while _mtime(ck / "checkpoint.json") == before and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.08))
        p.kill()
        p.wait()
        if p.returncode == 0:
            break  # finished before the kill
        kills += 1
        if (ck / "checkpoint.json").exists():
            info = _core.read_checkpoint(str(ck))  # validates every file's size and checksum
            assert info["epochs_done"] >= last
            last = info["epochs_done"]
            named = {v for key, v in json.loads((ck / "checkpoint.json").read_text()).items()
                     if key.startswith("file.")}
            torn += any(f not in named for f in os.listdir(ck) if f != "checkpoint.json")
    assert kills == 8 and last > 0
    print(f"SIGKILL: {kills} kills, {torn} left a half-written or superseded file, last checkpoint {last}")
    r = _run(trainer_exe, "--resume", ck, "--save", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    assert not any(".tmp." in n for n in os.listdir(ck))
    ref = _run(trainer_exe, *args, "--save", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    for f in ("P.npy", "Q.npy"):
        assert (tmp_path / "res" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes()


def test_python_ctrl_c_writes_final_checkpoint(tmp_path):
    """Ctrl-C during MF.fit(checkpoint=DIR): the epoch ends, the final checkpoint is written and
    KeyboardInterrupt says how to continue; MF.resume then gives the uninterrupted model."""
    import sys
    ck = tmp_path / "ck"
    script = ("import sys\n"
              "from mascot import MF, data\n"
              "ds = data.synthetic('synthetic-ml10m:0.01')\n"
              "MF(k=16, epochs=40, deterministic=True, method='mascot', groups=8, warmup=1, period=1)"
              ".fit(ds.train, ds.test, checkpoint=sys.argv[1])\n")
    p = subprocess.Popen([sys.executable, "-c", script, str(ck)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 60
    while not (ck / "checkpoint.json").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("KeyboardInterrupt: training interrupted after epoch") and \
        f"checkpoint saved in {ck}; continue with MF.resume(" in last, err
    done = _core.read_checkpoint(str(ck))["epochs_done"]
    assert 1 <= done < 40
    ds = data.synthetic("synthetic-ml10m:0.01")
    resumed = MF.resume(ck, ds.train, ds.test)
    full = MF(k=16, epochs=40, deterministic=True, method="mascot", groups=8, warmup=1, period=1).fit(ds.train, ds.test)
    _same_run(full, resumed)


def test_multithreaded_resume(ds, tmp_path):
    """Hogwild runs are not reproducible, but a 2-thread checkpoint resumes with its per-worker
    state (here MPT's per-worker loss scales) and finishes with the thread count it was saved with."""
    params = dict(k=16, epochs=6, threads=2, method="mpt", method_params={"loss_scale": "dynamic",
                                                                          "loss_scale_window": 200})
    m = MF(**params)
    tr, te = ds.train, ds.test
    _core.train_checkpointed(m._config(), m._context(), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                             te.users, te.items, te.ratings, "", lambda rec: rec["epoch"] < 2, str(tmp_path / "ck"), 1)
    info = _core.read_checkpoint(str(tmp_path / "ck"))
    assert info["threads"] == 2 and not info["deterministic"] and info["epochs_done"] == 3
    assert len(json.loads(info["report"])["epochs"][-1]["method"]["loss_scales"]) == 2
    r = MF.resume(tmp_path / "ck", tr, te)
    assert r.threads == 2 and r.report_["totals"]["epochs_run"] == 6
    full = MF(**params).fit(tr, te)
    assert abs(r.report_["totals"]["final_test_rmse"] - full.report_["totals"]["final_test_rmse"]) < 0.02


# Files from another checkpoint (other k or method) are refused: test_bad_input_corpus.py
# (ck-other-k-factors, ck-other-k-state, ck-other-method-*).


# The checkpoint checksum (cpp/src/checkpoint.cc), to craft files that pass it: the parsers
# behind it must still give one clear line for hostile content.
_M = 2**64 - 1


def _mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M
    return x ^ (x >> 31)


def _checksum(b):
    n, full = len(b), len(b) // 8 * 8
    h = _mix64(0x6D6173636F74 ^ n)
    for w in np.frombuffer(b[:full], "<u8"):
        h = _mix64(h ^ int(w))
    return _mix64(h ^ int.from_bytes(b[full:], "little") ^ ((n - full) << 56))


def _file_hash(b):
    head = 10 + b[8] + (b[9] << 8) if b[:6] == b"\x93NUMPY" else 0
    return _mix64(_checksum(b[:head]) ^ _checksum(b[head:]))


@pytest.mark.parametrize("method", ["mascot", "afp"])
def test_crafted_state_files_give_clear_errors(ds, tmp_path, method):
    import shutil
    import struct
    base = tmp_path / "base"
    _interrupted_run(MF(k=8, epochs=4, deterministic=True, method=method, groups=4, warmup=0, period=1,
                        threshold=1.1), ds, base, 2)
    man = json.loads((base / "checkpoint.json").read_text())
    assert _file_hash((base / man["file.P16" if method == "mascot" else "file.P32"]).read_bytes()) == \
        int(man["hash.P16" if method == "mascot" else "hash.P32"], 16)
    rng = random.Random(7)
    errors = 0
    for it in range(40):
        d = tmp_path / f"m{it}"
        shutil.copytree(base, d)
        name = rng.choice(["run_state", "cpu_state"])
        b = bytearray((d / man["file." + name]).read_bytes())
        op = rng.random()
        if op < 0.3:
            b = b[: rng.randrange(len(b))]
        elif op < 0.6:
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        else:
            pos = rng.randrange(len(b) - 8)
            b[pos:pos + 8] = struct.pack("<q", rng.choice([-1, 2**31, 2**62, -2**62, 0, 7]))
        (d / man["file." + name]).write_bytes(bytes(b))
        m = dict(man, **{"bytes." + name: len(b), "hash." + name: f"{_file_hash(bytes(b)):016x}"})
        (d / "checkpoint.json").write_text(json.dumps(m))
        try:
            MF.resume(d, ds.train, ds.test)  # some mutations are harmless (a q-error value, a timing)
        except (ValueError, OSError) as e:
            msg = str(e)
            assert "\n" not in msg and type(e) is not UnicodeDecodeError, msg
            assert f"checkpoint {d}/{man['file.' + name]}" in msg, msg
            errors += 1
    assert errors >= 20


def _config_record(run_state):
    """The run state's configuration record (params::write_config): (header, [(name, type tag,
    value bytes)], rest of the file)."""
    import struct
    p = 8 + struct.unpack_from("<Q", run_state, 0)[0]  # "run_state"
    head, (count,), p = run_state[:p], struct.unpack_from("<I", run_state, p), p + 4
    fields = []
    for _ in range(count):
        n = struct.unpack_from("<Q", run_state, p)[0]
        name, tag, p = run_state[p + 8:p + 8 + n].decode(), run_state[p + 8 + n], p + 9 + n
        size = {0: 4, 1: 8, 2: 4, 3: 8, 4: 1}.get(tag)
        if size is None:  # a list (4 bytes each) or a name: a length first
            size = 8 + struct.unpack_from("<Q", run_state, p)[0] * (4 if tag == 5 else 1)
        fields.append((name, tag, run_state[p:p + size]))
        p += size
    return head, fields, run_state[p:]


def _with_record(base, d, fields):
    """A copy of checkpoint `base` in `d` whose configuration record holds `fields`, re-stamped."""
    import shutil
    import struct
    shutil.copytree(base, d)
    man = json.loads((d / "checkpoint.json").read_text())
    f = d / man["file.run_state"]
    head, _, rest = _config_record(f.read_bytes())
    b = head + struct.pack("<I", len(fields)) + b"".join(
        struct.pack("<Q", len(n)) + n.encode() + bytes([t]) + v for n, t, v in fields) + rest
    f.write_bytes(b)
    man.update({"bytes.run_state": len(b), "hash.run_state": f"{_file_hash(b):016x}"})
    (d / "checkpoint.json").write_text(json.dumps(man))
    return d


def test_config_record_is_tagged_by_name(ds, tmp_path):
    """The checkpoint keeps the configuration field by field under the parameter table's names:
    a record without a field (a checkpoint from before the parameter existed) resumes with its
    default; an unknown, repeated or mistyped field is one line naming it."""
    import struct
    base = tmp_path / "base"
    _interrupted_run(MF(k=8, epochs=3, deterministic=True, method="mascot", groups=4), ds, base, 2)
    man = json.loads((base / "checkpoint.json").read_text())
    _, fields, _ = _config_record((base / man["file.run_state"]).read_bytes())
    table = [p["name"] for p in _core.param_table() if p["scope"] != "context"]
    assert [n for n, _, _ in fields] == table
    full = MF.resume(_with_record(base, tmp_path / "same", fields), ds.train, ds.test)
    older = [f for f in fields if f[0] not in ("grad_stats", "random_fp16")]  # both at their defaults
    old = MF.resume(_with_record(base, tmp_path / "older", older), ds.train, ds.test)
    _same_run(full, old)
    k = next(f for f in fields if f[0] == "k")
    for name, record, words in [
            ("unknown", fields + [("nope", 0, b"\0" * 4)], ["unknown field 'nope'"]),
            ("twice", fields + [k], ["field 'k' appears twice"]),
            ("mistyped", [("k", 3, b"\0" * 8) if f[0] == "k" else f for f in fields], ["field 'k' has the wrong type"]),
            ("enum", [("order", 6, struct.pack("<Q", 4) + b"zigz") if f[0] == "order" else f for f in fields],
             ["field 'order' holds an unknown name"]),
            ("removed", [("order", 6, struct.pack("<Q", 7) + b"blocked") if f[0] == "order" else f for f in fields],
             ["field 'order': order 'blocked' was removed: use 'grid'"]),
            ("value", [("k", 0, struct.pack("<i", 0)) if f[0] == "k" else f for f in fields],
             ["invalid configuration: k must be between 1 and 4096 (got 0)"])]:
        d = _with_record(base, tmp_path / name, record)
        with pytest.raises(ValueError) as e:
            MF.resume(d, ds.train, ds.test)
        _one_line(e, f"checkpoint {d}/{man['file.run_state']}", *words)


# ------------------------------------------------------------------ audit regressions
def _stop_after(monkeypatch, epochs):
    """fit(checkpoint=...) stops (as after a Ctrl-C) at the end of epoch `epochs`."""
    from mascot import model
    monkeypatch.setattr(model._interruptible, "on_epoch", lambda self, rec: rec["epoch"] < epochs - 1)


def test_interrupted_checkpointed_fit_leaves_a_consistent_model(ds, tmp_path, monkeypatch):
    """audit 3: after a Ctrl-C in fit(checkpoint=...) the model is the partial run as a whole
    (factors, report, id maps, training pairs), so recommend / save / load work."""
    small = data.Ratings.from_arrays(ds.train.users[:500], ds.train.items[:500], ds.train.ratings[:500])
    m = MF(k=8, epochs=1, groups=2).fit(small, user_ids=np.arange(small.n_users) + 10**6)
    m.epochs = 4
    _stop_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt, match="continue with MF.resume"):
        m.fit(ds.train, checkpoint=tmp_path / "ck")
    n = ds.train.n_users
    assert m.P_.shape[0] == n and m.user_ids_ is None and len(m.seen_.indptr) == n + 1
    assert m.report_["totals"]["interrupted"] and m.report_["totals"]["epochs_run"] == 2
    assert m.recommend([n - 1], n=3)[0].shape == (1, 3)
    m.save(tmp_path / "m")
    back = MF.load(tmp_path / "m")
    assert back.P_.shape == m.P_.shape and back.user_ids_ is None and back.recommend([0], n=2)[0].shape == (1, 2)


def test_resume_keeps_id_maps_and_padded_counts(ds, tmp_path, monkeypatch):
    """audit 9: fit(checkpoint=DIR) keeps its id maps and user / item counts next to the
    checkpoint (DIR/python_ids.npz, which the core's writer never removes); the
    MF.resume(DIR, train) the interruption suggests gives them back, also when user_ids padded
    the users beyond the data."""
    tr = ds.train
    uids = np.arange(tr.n_users + 3) + 10**6
    iids = np.array([f"i{j}" for j in range(tr.n_items)])
    params = dict(k=8, epochs=3, groups=2, deterministic=True)
    full = MF(**params).fit(tr, user_ids=uids, item_ids=iids)
    _stop_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt) as e:
        MF(**params).fit(tr, user_ids=uids, item_ids=iids, checkpoint=tmp_path / "ck")
    assert f"MF.resume({str(tmp_path / 'ck')!r}, train, test)" in str(e.value)
    monkeypatch.undo()
    assert "python_ids.npz" in os.listdir(tmp_path / "ck")
    m = MF.resume(tmp_path / "ck", tr)  # the suggested call, with the data as given to fit
    assert m.report_["totals"]["epochs_run"] == 3 and "python_ids.npz" in os.listdir(tmp_path / "ck")
    assert np.array_equal(m.user_ids_, uids) and np.array_equal(m.item_ids_, iids)
    assert m.P_.tobytes() == full.P_.tobytes()
    assert np.array_equal(m.recommend([10**6], n=3)[0], full.recommend([10**6], n=3)[0])
    assert np.isnan(m.predict([uids[-1]], ["i0"], unknown="raise")).sum() == 0  # a padded user is known
    # without padding or id maps: the maps stay None, the model is complete
    MF(**params).fit(tr, checkpoint=tmp_path / "plain")
    r = MF.resume(tmp_path / "plain", tr)
    assert r.user_ids_ is None and r.item_ids_ is None and r.P_.shape[0] == tr.n_users
    # a python_ids.npz of another run is refused, not attached
    os.replace(tmp_path / "ck" / "python_ids.npz", tmp_path / "plain" / "python_ids.npz")
    small = data.Ratings.from_arrays(tr.users[:300], tr.items[:300], tr.ratings[:300])
    MF(**params).fit(small, checkpoint=tmp_path / "small")
    os.replace(tmp_path / "small" / "python_ids.npz", tmp_path / "plain" / "python_ids.npz")
    with pytest.raises(ValueError, match="python_ids.npz does not belong to this checkpoint"):
        MF.resume(tmp_path / "plain", tr)


def test_refused_checkpoint_fit_leaves_no_ids_file(ds, tmp_path):
    """A checkpointed fit the core refuses writes nothing next to an existing checkpoint."""
    MF(k=8, epochs=1, groups=2).fit(ds.train, checkpoint=tmp_path / "ck")
    before = sorted(os.listdir(tmp_path / "ck"))
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        MF(k=8, epochs=1, groups=2).fit(ds.train, user_ids=np.arange(ds.train.n_users) + 5, checkpoint=tmp_path / "ck")
    assert sorted(os.listdir(tmp_path / "ck")) == before
    assert MF.resume(tmp_path / "ck", ds.train).user_ids_ is None
