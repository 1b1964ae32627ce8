"""Issue 24: outputs that never destroy anything.  One test group per class of defect (the
publication mechanism is mascot/detail/fileutil.h, bound as mascot._core.OutputSet and used by
mascot_train, MF.save / export_libmf, the rating writers, checkpoints, prepared datasets, the
experiment harness and the benchmark scripts):

 1  target kinds: devices and FIFOs are streamed into, never replaced; symlinks are followed to
    their target; block devices and sockets are refused
 2  an output that is an input, or another output (paths, links, `..`, hard links)
 3  a model directory holding files that are not the model's
 4  all or none: a failure between staging and publication leaves every old file as it was
 5  a kill between the steps of a directory replacement (fault-injection hook), stale temps
 6  checkpoint directories: failed writes (disk full) clean up; orphans of a dead writer
 7  checks before the data are loaded
 8  two runs on one checkpoint directory (advisory lock)
 9  Python API rough edges: non-UTF-8 paths, MF.resume's side file, masked arrays, NaN factors,
    one unknown-id policy
10  CLI rough edges of mascot_train and the mascot command

Device nodes are private ones made with mknod in a temp directory (when root), never the
system's; the disk-full cases use a small tmpfs (root only, skipped otherwise).
"""
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import mascot
from mascot import MF, _core, _files, data, metrics

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FAST = ["--method", "fp32", "--k", 4, "--epochs", 2, "--quiet"]


def run(exe, *args, timeout=300, **kw):
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def one_error(r, code, needle):
    err = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stderr)
    assert err and needle in err[-1], r.stderr
    assert len([ln for ln in err if "error:" in ln]) == 1, r.stderr


@pytest.fixture
def small(tmp_path, tiny):
    u, i, r, nu, ni = tiny
    path = tmp_path / "t.txt"
    path.write_text("".join(f"{a} {b} {c}\n" for a, b, c in zip(u, i, r)))
    return path


@pytest.fixture
def fitted(tiny):
    u, i, r, nu, ni = tiny
    return MF(k=4, epochs=2, groups=2).fit((u, i, r))


def tree(d):
    """{relative path: bytes or 'dir' or 'link->target'} of everything under d."""
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, d)
            if os.path.islink(p):
                out[rel] = "link->" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            elif stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as f:
                    out[rel] = f.read()
            else:
                out[rel] = stat.filemode(os.lstat(p).st_mode)
    return out


def private_char_device(d):
    """A character device of our own: /dev/null's numbers under mknod when root, else a FIFO
    (with a reader, so writes do not block); never the system's /dev/null."""
    p = d / "mydev"
    if IS_ROOT:
        os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return p, None
    os.mkfifo(p)
    return p, _drain(p)


def _drain(path):
    got = []

    def read():
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` at `path` (root only; skipped otherwise)."""
    if not IS_ROOT:
        pytest.skip("a small tmpfs needs root (disk-full cases)")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(fs, leave):
    """Fills the file system at `fs` until about `leave` bytes are free."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(fs / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def free_bytes(fs):
    st = os.statvfs(fs)
    return st.f_bavail * st.f_frsize


# ================================================================ 1: target kinds
def test_report_into_a_device_streams_and_keeps_the_node(trainer_exe, small, tmp_path):
    dev, reader = private_char_device(tmp_path)
    before = os.lstat(dev)
    r = run(trainer_exe, "--train", small, *FAST, "--report", dev, "--export-libmf", dev)
    assert r.returncode == 0, r.stderr
    after = os.lstat(dev)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    if reader:
        reader[0].join(10)
        assert b'mascot-run-report' in reader[1][0]
    assert sorted(os.listdir(tmp_path)) == ["mydev", "t.txt"]  # no temp left beside the node


def test_fifo_reader_gets_the_report_and_the_fifo_stays(trainer_exe, small, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t, got = _drain(fifo)
    r = run(trainer_exe, "--train", small, *FAST, "--report", fifo)
    assert r.returncode == 0, r.stderr
    t.join(10)
    assert json.loads(got[0])["format"] == "mascot-run-report"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_python_writers_stream_into_devices(fitted, tmp_path):
    dev, reader = private_char_device(tmp_path)
    fitted.export_libmf(dev)
    _files.atomic_write(dev, "x")
    assert not stat.S_ISREG(os.lstat(dev).st_mode)
    with pytest.raises(OSError, match="is a directory"):
        fitted.export_libmf(tmp_path)


def test_descriptor_targets_write_to_the_descriptor(trainer_exe, small, tmp_path):
    r = run(trainer_exe, "--train", small, *FAST, "--report", "/dev/stdout")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["format"] == "mascot-run-report"
    # a pipe handed over as /dev/fd/N (the shell's >(...))
    rd, wr = os.pipe()
    p = subprocess.Popen([trainer_exe, "--train", str(small), *map(str, FAST), "--report", f"/dev/fd/{wr}"],
                         pass_fds=(wr,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        got = f.read()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(got)["format"] == "mascot-run-report"


def test_symlinks_are_followed_to_their_target(trainer_exe, small, tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    (tmp_path / "models").mkdir()
    (tmp_path / "mlink").symlink_to("models/m")  # dangling: the model is made at the target
    (tmp_path / "dangling.libmf").symlink_to("out.libmf")
    r = run(trainer_exe, "--train", small, *FAST, "--report", tmp_path / "link.json", "--save", tmp_path / "mlink",
            "--export-libmf", tmp_path / "dangling.libmf")
    assert r.returncode == 0, r.stderr
    assert os.readlink(tmp_path / "link.json") == "real.json" and json.loads(real.read_text())["format"]
    assert os.readlink(tmp_path / "mlink") == "models/m" and (tmp_path / "models" / "m" / "model.json").is_file()
    assert os.readlink(tmp_path / "dangling.libmf") == "out.libmf" and (tmp_path / "out.libmf").is_file()
    # again: the link to a model directory stays a link, its target is replaced
    r = run(trainer_exe, "--train", small, *FAST, "--save", tmp_path / "mlink")
    assert r.returncode == 0, r.stderr
    assert os.path.islink(tmp_path / "mlink") and MF.load(tmp_path / "mlink").k == 4
    assert sorted(os.listdir(tmp_path / "models")) == ["m"]


def test_existing_file_keeps_its_permission_bits(fitted, tmp_path):
    p = tmp_path / "m.libmf"
    p.write_text("old")
    os.chmod(p, 0o640)
    fitted.export_libmf(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640 and p.read_text().startswith("f 0")


@pytest.mark.skipif(not IS_ROOT, reason="a block device node needs root (mknod)")
def test_block_device_and_socket_are_refused(trainer_exe, small, tmp_path):
    blk = tmp_path / "blk"
    os.mknod(blk, 0o600 | stat.S_IFBLK, os.makedev(7, 200))  # an unused loop device number
    one_error(run(trainer_exe, "--train", small, *FAST, "--report", blk), 1, "is a block device: refusing")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    try:
        one_error(run(trainer_exe, "--train", small, *FAST, "--report", tmp_path / "sock"), 1, "is a socket")
    finally:
        s.close()
    assert stat.S_ISBLK(os.lstat(blk).st_mode)


# ================================================================ 2: inputs and outputs alias
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_output_naming_an_input_is_refused(trainer_exe, small, tmp_path, spelling):
    (tmp_path / "sub").mkdir()
    target = {"same": small, "dotdot": tmp_path / "sub" / ".." / "t.txt", "symlink": tmp_path / "ln",
              "hardlink": tmp_path / "hard"}[spelling]
    if spelling == "symlink":
        target.symlink_to("t.txt")
    if spelling == "hardlink":
        os.link(small, target)
    before = small.read_bytes()
    for opt in ("--report", "--export-libmf"):
        one_error(run(trainer_exe, "--train", small, *FAST, opt, target), 1, "is the --train file")
        one_error(run(trainer_exe, "--train", tmp_path / "sub" / ".." / "t.txt", "--test", small, *FAST, opt, target),
                  1, "refusing to overwrite an input")
    assert small.read_bytes() == before


def test_two_outputs_on_one_file_are_refused(trainer_exe, small, tmp_path):
    r = run(trainer_exe, "--train", small, *FAST, "--report", tmp_path / "x", "--export-libmf", f"{tmp_path}/./x")
    one_error(r, 1, "name the same file")
    assert not (tmp_path / "x").exists()
    r = run(trainer_exe, "--train", small, *FAST, "--report", tmp_path / "x", "--save", tmp_path / "x")
    one_error(r, 1, "name the same path")


def test_input_inside_the_model_directory_is_refused(trainer_exe, small, tmp_path, fitted):
    fitted.save(tmp_path / "m")
    one_error(run(trainer_exe, "--train", small, "--test", tmp_path / "m" / "model.json", *FAST, "--save",
                  tmp_path / "m"), 1, "lies inside --save")


def test_python_output_set_compares_inputs_and_outputs(tmp_path):
    (tmp_path / "in.txt").write_text("data")
    with _files.Outputs() as out:
        out.input(tmp_path / "in.txt", "train")
        out.file(tmp_path / "sub" / ".." / "in.txt", "report")
        (tmp_path / "sub").mkdir()
        with pytest.raises(OSError, match="is the train file"):
            out.prepare()
        out.discard()
    assert (tmp_path / "in.txt").read_text() == "data"


# ================================================================ 3: foreign files in a model directory
def test_resaving_a_model_directory_with_foreign_files_is_refused(trainer_exe, small, tmp_path, fitted):
    d = tmp_path / "run1"
    fitted.save(d)
    (d / "notes.txt").write_text("mine")
    (d / "ck").mkdir()
    before = tree(d)
    one_error(run(trainer_exe, "--train", small, *FAST, "--save", d), 1,
              "holds files that are not part of a model (")
    with pytest.raises(OSError, match="not part of a model"):
        fitted.save(d)
    assert tree(d) == before


def test_checkpoint_inside_the_model_directory_is_refused_up_front(trainer_exe, small, tmp_path, fitted):
    fitted.save(tmp_path / "run1")
    before = tree(tmp_path)
    r = run(trainer_exe, "--train", small, *FAST, "--save", tmp_path / "run1", "--checkpoint", tmp_path / "run1" / "ck")
    one_error(r, 1, "lies inside --save")
    assert "epoch" not in r.stdout and tree(tmp_path) == before


def test_resave_replaces_exactly_the_model(trainer_exe, small, tmp_path, fitted):
    d = tmp_path / "m"
    fitted.save(d)  # with the optional files of a Python save
    assert "seen_indptr.npy" in os.listdir(d)
    r = run(trainer_exe, "--train", small, *FAST, "--save", d)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(d)) == ["P.npy", "Q.npy", "model.json"]
    assert sorted(os.listdir(tmp_path)) == ["m", "t.txt"]


# ================================================================ 4: all or none
@pytest.fixture
def fault():
    yield _core._testing.set_publish_fault
    _core._testing.set_publish_fault("")


def test_failure_between_publication_steps_restores_everything(tmp_path, fitted, fault):
    old_model = tmp_path / "m"
    fitted.save(old_model)
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    before = tree(tmp_path)
    for point in ("publish:before", "publish:between", "file:exchanged", "dir:exchanged"):
        fault(point)
        with pytest.raises(OSError, match=f"injected fault at {point}"):
            with _files.Outputs() as out:
                ha, hb = out.file(tmp_path / "a.txt"), out.file(tmp_path / "b.txt")
                hm = out.model_directory(old_model)
                hn = out.file(tmp_path / "new.txt")
                out.prepare()
                out.write(ha, "new a")
                out.write(hb, "new b")
                out.write(hn, "new")
                for f in ("P.npy", "Q.npy", "model.json"):
                    (out.staging_path(hm) / f).write_text("new")
        assert tree(tmp_path) == before, point
    fault("")
    with _files.all_or_none():
        _files.atomic_write(tmp_path / "a.txt", "new a")
        _files.atomic_write(tmp_path / "b.txt", "new b")
        assert (tmp_path / "a.txt").read_text() == "old a"  # nothing is published before the end
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "b.txt").read_text() == "new b"


def test_failure_between_steps_restores_without_exchange(tmp_path, fitted, fault):
    """The fallback where the file system has no RENAME_EXCHANGE: a hard link keeps each old file,
    the old directory is moved aside; a failure puts them back."""
    fitted.save(tmp_path / "m")
    (tmp_path / "a.txt").write_text("old a")
    before = tree(tmp_path)
    fault("no-exchange,publish:between")
    with pytest.raises(OSError, match="injected fault"):
        with _files.Outputs() as out:
            h = out.file(tmp_path / "a.txt")
            hm = out.model_directory(tmp_path / "m")
            out.prepare()
            out.write(h, "new a")
            (out.staging_path(hm) / "model.json").write_text("{}")
    assert tree(tmp_path) == before
    fault("no-exchange")
    fitted.save(tmp_path / "m")  # the fallback itself replaces and leaves nothing behind
    _files.atomic_write(tmp_path / "a.txt", "new a")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "m"] and (tmp_path / "a.txt").read_text() == "new a"


def test_all_or_none_for_a_failed_experiment_output(tmp_path):
    (tmp_path / "runs.csv").write_text("old")
    with pytest.raises(RuntimeError):
        with _files.all_or_none():
            _files.atomic_write(tmp_path / "runs.csv", "new")
            with _files.staged_file(tmp_path / "plot.png") as p:
                p.write_bytes(b"png")
            raise RuntimeError("a table failed")
    assert sorted(os.listdir(tmp_path)) == ["runs.csv"] and (tmp_path / "runs.csv").read_text() == "old"


def test_cli_outputs_are_all_or_none_when_one_target_goes_bad(trainer_exe, tmp_path, fitted):
    """A --report target replaced by a directory while training runs: the run fails at
    publication, and the model directory it would have replaced is the old one."""
    import signal

    fitted.save(tmp_path / "m")
    old = tree(tmp_path / "m")
    p = subprocess.Popen([trainer_exe, "--dataset", "synthetic-ml10m:0.02", "--method", "fp32", "--k", "16",
                          "--epochs", "300", "--save", str(tmp_path / "m"), "--report", str(tmp_path / "r.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while True:  # the first epoch: the outputs are staged, training runs
            line = p.stdout.readline()
            assert line, p.communicate()
            if line.split() and line.split()[0].isdigit():
                break
        p.send_signal(signal.SIGSTOP)
        (tmp_path / "r.json").mkdir()
        p.send_signal(signal.SIGCONT)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 1 and "--report" in err and "is now a directory" in err, err
    assert tree(tmp_path / "m") == old
    assert sorted(os.listdir(tmp_path)) == ["m", "r.json"] and not os.listdir(tmp_path / "r.json")


# ================================================================ 5: kill between the steps
KILL_SAVE = """
import sys, numpy as np, mascot
from mascot import _core
m = mascot.MF(k=4, epochs=1, groups=2).fit((np.arange(20) % 5, np.arange(20) % 4, np.ones(20)))
_core._testing.set_publish_fault(sys.argv[2])
m.save(sys.argv[1])
"""


def _killed_save(path, spec):
    r = subprocess.run([sys.executable, "-c", KILL_SAVE, str(path), spec], capture_output=True, text=True, timeout=120)
    assert r.returncode == -9, r.stderr


def test_kill_after_the_exchange_leaves_the_new_model(tmp_path, fitted):
    d = tmp_path / "m"
    fitted.save(d)
    _killed_save(d, "dir:exchanged:kill")
    assert MF.load(d).k == 4 and MF.load(d).P_.shape[0] == 5  # the new model, whole
    stale = [n for n in os.listdir(tmp_path) if n != "m"]
    assert len(stale) == 1 and stale[0].startswith(".m.tmp.")  # the old one, beside it
    fitted.save(d)  # the next save of m removes the temp of the dead process
    assert os.listdir(tmp_path) == ["m"]


def test_kill_between_the_two_renames_of_the_fallback(trainer_exe, small, tmp_path, fitted):
    d = tmp_path / "m"
    fitted.save(d)
    old = tree(d)
    _killed_save(d, "no-exchange,dir:aside:kill")
    assert not d.exists()  # the window of the fallback: the old model is aside, the new one staged
    with pytest.raises(OSError, match=r"interrupted replacement .* left its previous content in .*\.m\.old\."):
        MF.load(d)
    r = run(trainer_exe, "--train", small, *FAST, "--report", tmp_path / "r.json", "--save", d)
    assert r.returncode == 0, r.stderr
    assert "mascot_train: note: restored" in r.stderr and "was interrupted while replacing it" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["m", "r.json", "t.txt"]
    # or a Python save: the same recovery
    fitted.save(d)
    _killed_save(d, "no-exchange,dir:aside:kill")
    with _files.Outputs() as out:
        out.model_directory(d)
        out.prepare()
        assert out.notes and "restored" in out.notes[0]
        assert tree(d) == old
        out.discard()


def test_stale_file_temps_of_dead_writers_are_removed(tmp_path):
    (tmp_path / "r.json").write_text("old")
    dead = 2**22 + 12345  # above the default pid_max: never a running process
    for n in (f".r.json.tmp.{dead}.0", f".r.json.old.{dead}.3"):
        (tmp_path / n).write_text("stale")
    (tmp_path / f".r.json.tmp.{os.getppid()}.0").write_text("a live writer's")  # kept
    _files.atomic_write(tmp_path / "r.json", "new")
    assert sorted(os.listdir(tmp_path)) == [f".r.json.tmp.{os.getppid()}.0", "r.json"]


# ================================================================ 6: checkpoint leftovers, disk full
def _orphans(ck, dead=2**22 + 777):
    ck.mkdir()
    for n in ("P32.e000001.0123456789abcdef.npy", "run_state.e000001.0123456789abcdef.bin",
              f".cpu_state.e000001.0123456789abcdef.bin.tmp.{dead}.0", "python_ids.npz"):
        (ck / n).write_bytes(b"x" * 100)


def test_orphans_of_a_dead_writer_do_not_block_the_directory(trainer_exe, small, tmp_path):
    ck = tmp_path / "ck"
    _orphans(ck)
    r = run(trainer_exe, "--resume", ck, "--train", small)
    one_error(r, 1, "leftover files of an interrupted first checkpoint")
    assert "--checkpoint" in r.stderr
    r = run(trainer_exe, "--train", small, *FAST, "--checkpoint", ck)
    assert r.returncode == 0, r.stderr
    names = os.listdir(ck)
    assert "checkpoint.json" in names and "python_ids.npz" not in names and ".mascot.lock" not in names
    assert not any(n.startswith("P32.e000001.0123") for n in names)
    assert _core.read_checkpoint(str(ck))["epochs_done"] == 2
    # Python's fit reuses such a directory too, and resume refuses it with the same advice
    ck2 = tmp_path / "ck2"
    _orphans(ck2)
    u, i, r_ = np.arange(30) % 6, np.arange(30) % 5, np.ones(30)
    with pytest.raises(OSError, match="leftover files"):
        MF.resume(ck2, (u, i, r_))
    _orphans(tmp_path / "ck3")
    MF(k=4, epochs=1, groups=2).fit((u, i, r_), checkpoint=tmp_path / "ck3")
    assert "checkpoint.json" in os.listdir(tmp_path / "ck3")


def test_foreign_files_in_a_checkpoint_directory_are_still_refused(trainer_exe, small, tmp_path):
    ck = tmp_path / "ck"
    _orphans(ck)
    (ck / "notes.txt").write_text("mine")
    before = tree(ck)
    one_error(run(trainer_exe, "--train", small, *FAST, "--checkpoint", ck), 1, "exists and is not empty (notes.txt)")
    assert tree(ck) == before


def test_disk_full_checkpoint_write_cleans_up(tmp_path):
    u, i, r = np.arange(600) % 40, (np.arange(600) * 7) % 25, np.ones(600)
    with tmpfs(tmp_path / "fs", "4m") as fs:
        # the first checkpoint cannot be written: the run fails and leaves no directory behind
        fill(fs, 1500)
        free = free_bytes(fs)
        with pytest.raises(OSError, match="No space left"):
            MF(k=64, epochs=2, groups=2).fit((u, i, r), checkpoint=fs / "ck")
        assert sorted(os.listdir(fs)) == ["filler"] and free_bytes(fs) == free
        # a later checkpoint that does not fit: the previous one stays complete, and the space a
        # resume needs is not held by half a new one
        os.remove(fs / "filler")
        m = MF(k=64, epochs=3, groups=2, deterministic=True)
        with pytest.raises(KeyboardInterrupt):
            _fit_stopping_after(m, (u, i, r), fs / "ck2", 1)
        kept = tree(fs / "ck2")
        fill(fs, 1500)
        free = free_bytes(fs)
        with pytest.raises(OSError, match="No space left"):
            MF.resume(fs / "ck2", (u, i, r))
        assert tree(fs / "ck2") == kept and free_bytes(fs) == free
        assert _core.read_checkpoint(str(fs / "ck2"))["epochs_done"] == 1
        # a model directory on the full disk: the old model stays, no temp is left
        os.remove(fs / "filler")
        _save_model_of(fs / "model", 40)
        before = tree(fs / "model")
        fill(fs, 4000)
        with pytest.raises(OSError, match="No space left"):
            _save_model_of(fs / "model", 4000)
        assert tree(fs / "model") == before and sorted(os.listdir(fs)) == ["ck2", "filler", "model"]


def _fit_stopping_after(m, train, ck, n):
    """fit(checkpoint=ck) stopped (as by Ctrl-C) after epoch n."""
    import mascot.model as mm

    real = mm._interruptible.on_epoch

    def on_epoch(self, rec):
        real(self, rec)
        return rec["epoch"] + 1 < n

    mm._interruptible.on_epoch = on_epoch
    try:
        m.fit(train, checkpoint=ck)
    finally:
        mm._interruptible.on_epoch = real


def _save_model_of(path, n_users):
    m = MF(k=64)
    m.P_ = np.ones((n_users, 64), np.float32)
    m.Q_ = np.ones((25, 64), np.float32)
    m.save(path)


# ================================================================ 7: checks before the data load
@pytest.fixture
def blocking_input(tmp_path):
    """A FIFO nobody writes: a run that reads its data before checking its outputs hangs on it."""
    p = tmp_path / "never.txt"
    os.mkfifo(p)
    return p


def test_output_problems_are_found_before_the_data_load(trainer_exe, tmp_path, fitted, blocking_input):
    fitted.save(tmp_path / "m")
    cases = [
        (["--save", tmp_path / "d", "--checkpoint", tmp_path / "d"], "name the same path"),
        (["--save", tmp_path / "m", "--checkpoint", tmp_path / "m" / "ck"], "lies inside --save"),
        (["--save", tmp_path / "m", "--report", tmp_path / "m" / "r.json"], "lies inside --save"),
        (["--report", tmp_path / "nodir" / "r.json"], "does not exist"),
    ]
    for args, needle in cases:
        r = run(trainer_exe, "--train", blocking_input, *FAST, *args, timeout=30)
        one_error(r, 1, needle)
    r = subprocess.run([trainer_exe, "--train", str(blocking_input), *map(str, FAST), "--save", "."],
                       cwd=tmp_path / "m", capture_output=True, text=True, timeout=30)
    one_error(r, 1, "is the current directory or contains it")


def test_read_only_targets_are_refused_before_the_data_load(trainer_exe, small, tmp_path, blocking_input):
    """An existing empty --save directory whose parent cannot be written, and a checkpoint
    directory that cannot be written: refused up front (root: a read-only tmpfs)."""
    ck_src = tmp_path / "ck_src"
    r = run(trainer_exe, "--train", small, *FAST, "--checkpoint", ck_src)
    assert r.returncode == 0, r.stderr
    if IS_ROOT:
        ctx = tmpfs(tmp_path / "ro", "4m")
    else:
        ctx = contextlib.nullcontext(tmp_path / "ro")
        (tmp_path / "ro").mkdir()
    with ctx as ro:
        (ro / "empty").mkdir()
        subprocess.run(["cp", "-r", str(ck_src), str(ro / "ck")], check=True)
        if IS_ROOT:
            subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        else:
            os.chmod(ro / "ck", 0o555)
            os.chmod(ro, 0o555)
        try:
            r = run(trainer_exe, "--train", blocking_input, *FAST, "--save", ro / "empty", timeout=30)
            one_error(r, 1, "is not writable")
            r = run(trainer_exe, "--resume", ro / "ck", "--train", blocking_input, timeout=30)
            one_error(r, 1, "is not writable")
        finally:
            if not IS_ROOT:
                os.chmod(ro, 0o755)
                os.chmod(ro / "ck", 0o755)


# ================================================================ 8: one checkpoint directory, two runs
def test_second_run_on_a_checkpoint_directory_is_refused(trainer_exe, tmp_path):
    import signal

    ck = tmp_path / "ck"
    args = ["--dataset", "synthetic-ml10m:0.02", "--k", "16", "--epochs", "300", "--method", "fp32"]
    p = subprocess.Popen([trainer_exe, *args, "--checkpoint", str(ck)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        while True:
            line = p.stdout.readline()
            assert line, p.communicate()
            if line.split() and line.split()[0].isdigit():
                break  # an epoch is done: a checkpoint exists, the lock is held
        for second in (["--checkpoint", ck, *args], ["--resume", ck]):
            r = run(trainer_exe, *second, "--quiet", timeout=60)
            one_error(r, 1, f"is in use by process {p.pid}")
        with pytest.raises(OSError, match=f"in use by process {p.pid}"):
            MF.resume(ck, data.synthetic("synthetic-ml10m:0.02").train)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 130, err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert ".mascot.lock" not in os.listdir(ck)  # released (and removed) with the run
    r = run(trainer_exe, "--resume", ck, "--dry-run", timeout=60)  # takes the lock and gives it back
    assert r.returncode == 0 and "in use" not in r.stderr, r.stderr


def test_lock_of_a_killed_run_does_not_block(trainer_exe, small, tmp_path):
    ck = tmp_path / "ck"
    r = run(trainer_exe, "--train", small, "--method", "fp32", "--k", 4, "--epochs", 3, "--checkpoint", ck)
    assert r.returncode == 0, r.stderr
    (ck / ".mascot.lock").write_text("999999999\n")  # left by a SIGKILLed run: nobody holds it
    r = run(trainer_exe, "--resume", ck, "--train", small, "--quiet")
    assert r.returncode == 0 and "in use" not in r.stderr, r.stderr
    assert ".mascot.lock" not in os.listdir(ck)


# ================================================================ 9: the Python API
def test_non_utf8_paths_in_the_python_api(tmp_path, tiny, fitted):
    u, i, r, nu, ni = tiny
    base = os.fsencode(tmp_path)
    rat = data.Ratings.from_arrays(u, i, r)
    for name in (base + b"/r\xff.mrat", os.fsdecode(base + b"/s\xfe.mrat")):
        data.write_mrat(name, rat)
        assert len(data.read(name)) == len(rat)
    fitted.save(base + b"/m\xff")
    assert MF.load(base + b"/m\xff").k == 4
    fitted.export_libmf(base + b"/x\xff.libmf")
    MF(k=4, epochs=1, groups=2).fit((u, i, r), checkpoint=base + b"/ck\xff")
    assert MF.resume(base + b"/ck\xff", (u, i, r)).report_["totals"]["epochs_run"] == 1
    # errors are one line naming the path as the caller gave it (surrogate escapes)
    missing = os.fsdecode(base + b"/nope\xff.txt")
    with pytest.raises(OSError) as e:
        data.read(missing)
    assert missing in str(e.value) and "\n" not in str(e.value) and "incompatible" not in str(e.value)
    with pytest.raises(ValueError, match="NUL byte"):
        fitted.save(str(tmp_path / "a\0b"))
    with pytest.raises(ValueError, match="must be a str, bytes or os.PathLike"):
        data.read(42)


def test_resume_checks_its_side_file_before_training(tmp_path, tiny, monkeypatch):
    u, i, r, nu, ni = tiny
    ck = tmp_path / "ck"
    m = MF(k=4, epochs=3, groups=2)
    with pytest.raises(KeyboardInterrupt):
        _fit_stopping_after(m, (u, i, r), ck, 1)
    ids = dict(np.load(ck / "python_ids.npz"))
    ids["user_ids"] = np.zeros(ids["n_users"], np.int64)  # duplicates: not an id map
    np.savez(ck / "python_ids.npz", **ids)
    monkeypatch.setattr(_core, "resume", lambda *a, **k: pytest.fail("trained before checking python_ids.npz"))
    with pytest.raises(ValueError, match=r"python_ids\.npz: user_ids holds the raw id 0 more than once"):
        MF.resume(ck, (u, i, r))


def test_masked_arrays_are_refused_not_unmasked(tiny, fitted):
    u, i, r, nu, ni = tiny
    mr = np.ma.masked_array(r.astype(np.float64), mask=np.arange(len(r)) < 3)
    with pytest.raises(ValueError, match="ratings is a masked array with 3 masked entries"):
        MF(k=4, epochs=1, groups=2).fit((u, i, mr))
    mu = np.ma.masked_array(u, mask=np.arange(len(u)) == 5)
    with pytest.raises(ValueError, match="users is a masked array with 1 masked entries"):
        data.Ratings.from_arrays(mu, i, r)
    with pytest.raises(ValueError, match="users is a masked array"):
        fitted.predict(np.ma.masked_array([0, 1], mask=[0, 1]), [0, 0])
    # a mask that hides nothing is no problem
    assert len(data.Ratings.from_arrays(np.ma.masked_array(u), i, r)) == len(r)
    assert fitted.predict(np.ma.masked_array([0, 1]), [0, 0]).shape == (2,)


def test_non_finite_factors_are_neither_saved_nor_loaded(tmp_path, fitted):
    bad = MF(k=4)
    bad.P_ = fitted.P_.copy()
    bad.Q_ = fitted.Q_.copy()
    bad.P_[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"user 3 holds NaN or inf"):
        bad.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
    fitted.save(tmp_path / "m")
    Q = np.load(tmp_path / "m" / "Q.npy")
    Q[2, 0] = np.inf
    np.save(tmp_path / "m" / "Q.npy", Q)
    with pytest.raises(ValueError, match=r"Q\.npy: item 2 holds NaN or inf"):
        MF.load(tmp_path / "m")


def test_one_unknown_id_policy(tiny):
    """fit, rmse, evaluate, predict and recommend agree (mascot.UNKNOWN_POLICY): on the same test
    set with an item beyond the training ids (MovieLens-100K has one), rmse equals the fit's test
    RMSE and evaluate counts what fit dropped."""
    u, i, r, nu, ni = tiny
    keep = i < ni - 1  # the last item only in the test set
    train = (u[keep], i[keep], r[keep])
    test = data.Ratings.from_arrays(u, i, r)
    m = MF(k=4, epochs=2, groups=2).fit(train, test)
    dropped = m.report_["dataset"]["test_dropped"]
    assert dropped >= int((~keep).sum()) > 0
    with pytest.warns(mascot.UnknownIdWarning, match=f"left out {dropped} of {len(r)} ratings"):
        rm = m.rmse(test)
    assert rm == pytest.approx(m.report_["totals"]["final_test_rmse"], rel=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = metrics.evaluate(m, test, n=3)
    assert ev["test_ratings_unknown"] == dropped and ev["rmse"] == pytest.approx(rm)
    for fn in (lambda: m.rmse(test, unknown="raise"), lambda: metrics.evaluate(m, test, unknown="raise"),
               lambda: MF(k=4, epochs=1, groups=2).fit(train, test, unknown="raise"),
               lambda: m.predict([0], [ni - 1]), lambda: m.recommend([nu + 5])):
        with pytest.raises(ValueError, match="unknown|not in the model|without training ratings"):
            fn()
    with pytest.warns(mascot.UnknownIdWarning):
        assert np.isnan(m.predict([0], [ni - 1], unknown="skip")[0])
    assert "rmse" in mascot.UNKNOWN_POLICY and "recommend" in mascot.UNKNOWN_POLICY


# ================================================================ 10: command-line rough edges
def test_recommend_takes_negative_ids(tmp_path, fitted, capsys):
    from mascot.cli import main

    fitted.save(tmp_path / "m")
    assert main(["recommend", str(tmp_path / "m"), "--users", "-5,3", "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "user id -5 is not in the model" in err and len(err.strip().splitlines()) == 1
    assert main(["recommend", str(tmp_path / "m"), "--users", "-5,3", "--n", "2", "--skip-unknown"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "user\trank\titem\tscore" and [ln.split("\t")[0] for ln in out[1:]] == ["3", "3"]


def test_data_list_with_a_data_root_that_is_a_file(tmp_path, monkeypatch, capsys):
    from mascot.cli import main

    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "f"))
    assert main(["data", "list"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "missing"))
    assert main(["data", "list"]) == 0


def test_evaluate_refuses_to_keep_training_items_silently(trainer_exe, small, tmp_path, capsys):
    from mascot.cli import main

    assert run(trainer_exe, "--train", small, *FAST, "--save", tmp_path / "m").returncode == 0
    assert main(["evaluate", str(tmp_path / "m"), "--test", str(small)]) == 2
    assert "add --include-seen" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "m"), "--test", str(small), "--include-seen"]) == 0


def test_dataset_option_rough_edges(trainer_exe, small, tmp_path, monkeypatch):
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path))
    one_error(run(trainer_exe, "--dataset", "ml100k", "--test", small), 2, "--dataset ml100k brings its own test set")
    for name in (str(tmp_path / "x"), "../x", ".hidden", "a/b"):
        one_error(run(trainer_exe, "--dataset", name, *FAST), 2, f"invalid dataset name '{name}'")


def test_dry_run_status_says_whether_the_job_fits(trainer_exe):
    r = run(trainer_exe, "--dataset", "synthetic-ml10m:0.01", "--k", "8", "--dry-run")
    assert r.returncode == 0 and "fits" in r.stdout.lower(), r.stdout + r.stderr
    r = run(trainer_exe, "--dataset", "synthetic-yahoo", "--k", "4096", "--device", "cpu", "--dry-run")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.strip() and "error" not in r.stderr
