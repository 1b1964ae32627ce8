"""The bad-input corpus (issue 6, hardening): every malformed input we know of, each run through
Python and through mascot_train.  Each must give ONE clear line naming the problem (and the
file, and the line for text), never a crash, and leave no partial output behind.

Rating files (text and .mrat) go through ``mascot.data.read`` / ``MF.fit(path)`` and
``mascot_train --train FILE --save OUT/model --report OUT/r.json``; model directories go
through ``MF.load`` (mascot_train has no model-loading option yet).  The regression inputs of
the fuzzing findings (fuzz/) are here too, marked "fuzz:".
"""
import json
import struct
import subprocess

import numpy as np
import pytest

import mascot
from mascot import data


# ----------------------------------------------------------------------------- rating files
def _mrat(nu=3, ni=2, users=(0, 2), items=(1, 0), ratings=(4.0, 3.0), magic=b"MASCOTR\0", version=1, flags=0,
          nnz=None):
    n = len(users) if nnz is None else nnz
    return (magic + struct.pack("<IIQQQ", version, flags, nu, ni, n) + struct.pack(f"<{len(users)}i", *users)
            + struct.pack(f"<{len(items)}i", *items) + struct.pack(f"<{len(ratings)}f", *ratings))


# (id, file name, bytes, Python exception, message fragment)
RATING_FILES = [
    ("text-empty", "bad.txt", b"", ValueError, "bad.txt: no ratings found"),
    ("text-only-comments", "bad.txt", b"# nothing\n\n  \n", ValueError, "bad.txt: no ratings found"),
    ("text-missing-field", "bad.txt", b"0 1 3\n1 2\n", ValueError,
     "bad.txt:2: expected 3 fields (user item rating), got 2"),
    ("text-extra-field", "bad.txt", b"0 1 3 7\n", ValueError, "bad.txt:1: expected 3 fields (user item rating), got 4"),
    ("text-rating-word", "bad.txt", b"0 1 abc\n", ValueError, "bad.txt:1: rating 'abc' is not a number"),
    ("text-rating-nan", "bad.txt", b"0 1 nan\n", ValueError, "bad.txt:1: rating 'nan' is not a finite number"),
    ("text-rating-inf", "bad.txt", b"0 1 inf\n", ValueError, "bad.txt:1: rating 'inf' is not a finite number"),
    ("text-rating-range", "bad.txt", b"0 1 1e39\n", ValueError, "bad.txt:1: rating '1e39' is out of the float32 range"),
    ("text-negative-user", "bad.txt", b"-1 1 3\n", ValueError, "bad.txt:1: user id '-1' is not a non-negative integer"),
    ("text-negative-item", "bad.txt", b"0 -4 3\n", ValueError, "bad.txt:1: item id '-4' is not a non-negative integer"),
    ("text-fractional-id", "bad.txt", b"1.5 1 3\n", ValueError, "bad.txt:1: user id '1.5'"),
    ("text-word-id", "bad.txt", b"x 1 3\n", ValueError, "bad.txt:1: user id 'x'"),
    ("text-id-range", "bad.txt", b"3000000000 1 3\n", ValueError,
     "bad.txt:1: user id '3000000000' exceeds the int32 range"),
    ("text-comma-separated", "bad.txt", b"0,1,3\n", ValueError, "bad.txt:1: expected 3 fields"),
    ("text-bom-then-bad", "bad.txt", b"\xef\xbb\xbf0 1 3\n0 1\n", ValueError, "bad.txt:2: expected 3 fields"),
    # fuzz: raw bytes used to reach the message (Python raised UnicodeDecodeError)
    ("fuzz:text-binary-id", "bad.txt", b"0 1 3\n\xff\xfe 1 2\n", ValueError, "bad.txt:2: user id '\\xff\\xfe'"),
    ("text-nul-byte", "bad.txt", b"0 1 3\n0\x00 1 2\n", ValueError, "bad.txt:2: user id '0\\x00'"),
    ("text-long-garbage-token", "bad.txt", b"0 1 " + b"9" * 100000 + b"x\n", ValueError, "bad.txt:1: rating '9999"),
    ("mrat-truncated-header", "bad.mrat", _mrat()[:20], ValueError, "bad.mrat: truncated header (20 bytes"),
    ("mrat-truncated-arrays", "bad.mrat", _mrat()[:-3], ValueError, "but the file has 61 bytes"),
    ("mrat-trailing-bytes", "bad.mrat", _mrat() + b"xx", ValueError, "but the file has 66 bytes"),
    ("mrat-nnz-overflow", "bad.mrat", _mrat(nnz=2 ** 62), ValueError, "header says nnz = 4611686018427387904"),
    ("mrat-version", "bad.mrat", _mrat(version=2), ValueError, "bad.mrat: unsupported .mrat version 2"),
    ("mrat-flags", "bad.mrat", _mrat(flags=4), ValueError, "bad.mrat: unsupported .mrat flags 4"),
    ("mrat-n-users-range", "bad.mrat", _mrat(nu=2 ** 33), ValueError,
     "n_users = 8589934592 exceeds the int32 id range"),
    ("mrat-user-out-of-range", "bad.mrat", _mrat(users=(0, 5)), ValueError, "bad.mrat: user id 5 at index 1"),
    ("mrat-negative-item", "bad.mrat", _mrat(items=(1, -1)), ValueError, "bad.mrat: item id -1 at index 1"),
    ("mrat-nan-rating", "bad.mrat", _mrat(ratings=(float("nan"), 1.0)), ValueError, "rating at index 0 is not finite"),
    # a .mrat name is always read as .mrat: a damaged magic is named, not parsed as text
    ("mrat-wrong-magic", "bad.mrat", _mrat(magic=b"MASCOTX\0"), ValueError,
     "bad.mrat: not a .mrat file (wrong magic bytes)"),
]


def _check_message(msg, fragment):
    assert fragment in msg, msg
    assert "\n" not in msg and msg.isprintable(), msg
    assert len(msg) < 400, msg


def _listing(d):
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*"))


@pytest.mark.parametrize("name,blob,exc,fragment", [c[1:] for c in RATING_FILES], ids=[c[0] for c in RATING_FILES])
def test_bad_rating_file_python(tmp_path, name, blob, exc, fragment):
    p = tmp_path / name
    p.write_bytes(blob)
    with pytest.raises(exc) as e:
        data.read(p)
    _check_message(str(e.value), fragment)
    with pytest.raises(exc) as e:
        mascot.MF(k=4, epochs=1, groups=1).fit(p)
    _check_message(str(e.value), fragment)
    assert _listing(tmp_path) == [name]


def _cli_rejects(trainer_exe, tmp_path, train, fragment):
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([trainer_exe, "--train", str(train), "--k", "4", "--epochs", "1", "--groups", "1",
                        "--save", str(out / "model"), "--report", str(out / "r.json")],
                       capture_output=True, text=True, timeout=120)
    err = r.stderr.strip().splitlines()
    assert r.returncode in (1, 2), r.stderr  # 2: invalid input, 1: I/O; never a signal
    assert len(err) == 1 and err[0].startswith("mascot_train: error: "), r.stderr
    _check_message(err[0], fragment)
    assert _listing(out) == []  # no model, no report, no temp files


@pytest.mark.parametrize("name,blob,exc,fragment", [c[1:] for c in RATING_FILES], ids=[c[0] for c in RATING_FILES])
def test_bad_rating_file_cli(trainer_exe, tmp_path, name, blob, exc, fragment):
    p = tmp_path / name
    p.write_bytes(blob)
    _cli_rejects(trainer_exe, tmp_path, p, fragment)


def test_missing_and_directory_inputs(trainer_exe, tmp_path):
    with pytest.raises(OSError) as e:
        data.read(tmp_path / "nope.txt")
    _check_message(str(e.value), "nope.txt: cannot open")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError) as e:
        data.read(tmp_path / "adir")
    _check_message(str(e.value), "adir")
    _cli_rejects(trainer_exe, tmp_path, tmp_path / "nope.txt", "nope.txt: cannot open")


# ------------------------------------------------------------- a bad line after 10^6 good ones
N_LINES = 10 ** 6
BAD_LAST_LINES = [
    (b"5 7\n", "expected 3 fields"),
    (b"5 7 nan\n", "rating 'nan' is not a finite number"),
    (b"5 -7 1\n", "item id '-7'"),
    (b"5 7 1\xff\n", "rating '1\\xff' is not a number"),
    (b"5 7 1 1", "expected 3 fields"),  # no final newline
]


@pytest.fixture(scope="module")
def million_good_lines():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 50000, N_LINES)
    i = rng.integers(0, 5000, N_LINES)
    r = rng.integers(1, 11, N_LINES) / 2
    return "".join(f"{a} {b} {c}\n" for a, b, c in zip(u.tolist(), i.tolist(), r.tolist())).encode()


@pytest.mark.parametrize("last,fragment", BAD_LAST_LINES, ids=["fields", "nan", "neg-id", "binary", "no-newline"])
def test_bad_line_after_a_million_good_ones(trainer_exe, tmp_path, million_good_lines, last, fragment):
    p = tmp_path / "long.txt"
    p.write_bytes(million_good_lines + last)
    where = f"long.txt:{N_LINES + 1}: "
    with pytest.raises(ValueError) as e:
        data.read(p)
    _check_message(str(e.value), where + fragment)
    _cli_rejects(trainer_exe, tmp_path, p, where + fragment)


# ----------------------------------------------------------------------------- model directories
def _npy_header(shape, descr="<f4", fortran=False, version=1):
    h = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h.encode()


@pytest.fixture
def saved_model(tmp_path, tiny):
    u, i, r, nu, ni = tiny
    d = tmp_path / "model"
    mascot.MF(k=4, epochs=1, groups=2, threads=1).fit((u, i, r)).save(d)
    return d


def _meta(d):
    return json.loads((d / "model.json").read_text())


def _set_meta(d, **kw):
    m = _meta(d)
    m.update(kw)
    (d / "model.json").write_text(json.dumps(m))


def _set_params(d, **kw):
    m = _meta(d)
    m["params"].update(kw)
    (d / "model.json").write_text(json.dumps(m))


# (id, corruption applied to a valid saved model dir, exception, message fragment)
MODEL_DIRS = [
    ("P-missing", lambda d: (d / "P.npy").unlink(), OSError, "P.npy: cannot open"),
    ("Q-k-mismatch", lambda d: np.save(d / "Q.npy", np.zeros((25, 5), np.float32)), ValueError,
     "P.npy has k=4 but Q.npy has k=5"),
    ("P-rows-vs-json", lambda d: np.save(d / "P.npy", np.zeros((7, 4), np.float32)), ValueError,
     "model.json shapes do not match P.npy/Q.npy (n_users is 40 in model.json, 7 in the .npy files)"),
    ("P-float64", lambda d: np.save(d / "P.npy", np.load(d / "P.npy").astype(np.float64)), ValueError,
     "P.npy: dtype '<f8' is not float32 ('<f4')"),
    ("P-float16", lambda d: np.save(d / "P.npy", np.load(d / "P.npy").astype(np.float16)), ValueError,
     "P.npy: dtype '<f2' is not float32"),
    ("P-int32", lambda d: np.save(d / "P.npy", np.zeros((40, 4), np.int32)), ValueError, "dtype '<i4'"),
    ("P-big-endian", lambda d: np.save(d / "P.npy", np.load(d / "P.npy").astype(">f4")), ValueError, "dtype '>f4'"),
    ("P-fortran", lambda d: np.save(d / "P.npy", np.asfortranarray(np.load(d / "P.npy"))), ValueError,
     "P.npy: Fortran-order data is not supported"),
    ("P-1d", lambda d: np.save(d / "P.npy", np.zeros(8, np.float32)), ValueError,
     "P.npy: expected a 2-D array, got shape (8,)"),
    ("P-3d", lambda d: np.save(d / "P.npy", np.zeros((2, 2, 2), np.float32)), ValueError, "got shape (2, 2, 2)"),
    ("P-truncated-data", lambda d: (d / "P.npy").write_bytes((d / "P.npy").read_bytes()[:-6]), ValueError,
     "P.npy: data length 634 bytes does not match shape (40, 4)"),
    ("P-truncated-header", lambda d: (d / "P.npy").write_bytes((d / "P.npy").read_bytes()[:50]), ValueError,
     "P.npy: truncated .npy header"),
    ("P-empty-file", lambda d: (d / "P.npy").write_bytes(b""), ValueError, "P.npy: not a .npy file"),
    ("P-not-npy", lambda d: (d / "P.npy").write_text("hello"), ValueError, "P.npy: not a .npy file (bad magic)"),
    ("P-npy-version-9", lambda d: (d / "P.npy").write_bytes(b"\x93NUMPY\x09\x00" + b"\0" * 10), ValueError,
     "unsupported .npy version 9"),
    ("P-garbled-header", lambda d: (d / "P.npy").write_bytes(_npy_header("(40, 4)").replace(b"'shape'", b"'shaep'")),
     ValueError, "P.npy: bad .npy header: unexpected key 'shaep'"),
    # fuzz: stoll threw std::out_of_range (Python: IndexError 'stoll')
    ("fuzz:P-dim-overflow", lambda d: (d / "P.npy").write_bytes(_npy_header("(99999999999999999999, 4)")),
     ValueError, "a 'shape' dimension overflows 64 bits"),
    # fuzz: rows*cols*4 wrapped to 0, so an empty file "loaded" as a 2^62-row P
    ("fuzz:P-size-wraps", lambda d: (d / "P.npy").write_bytes(_npy_header("(4611686018427387904, 4)")),
     ValueError, "shape (4611686018427387904, 4) is too large"),
    # fuzz: k > INT_MAX was truncated to int (k=2^32+1 loaded as k=1)
    ("fuzz:P-k-truncated", lambda d: [(d / f).write_bytes(_npy_header("(0, 4294967297)")) for f in ("P.npy", "Q.npy")],
     ValueError, "shape (0, 4294967297) is too large"),
    ("json-missing", lambda d: (d / "model.json").unlink(), FileNotFoundError, "model.json is missing"),
    ("json-truncated", lambda d: (d / "model.json").write_text((d / "model.json").read_text()[:40]), ValueError,
     "model.json: not valid JSON"),
    ("json-empty", lambda d: (d / "model.json").write_text(""), ValueError, "model.json: not valid JSON"),
    ("json-not-object", lambda d: (d / "model.json").write_text("[1, 2]"), ValueError,
     "model.json: not a MASCOT model (format tag missing)"),
    ("json-wrong-format", lambda d: _set_meta(d, format="libmf"), ValueError, "not a MASCOT model"),
    ("json-k-mismatch", lambda d: _set_meta(d, k=8), ValueError, "(k is 8 in model.json, 4 in the .npy files)"),
    ("json-k-bool", lambda d: _set_meta(d, k=True), ValueError, "(k is true in model.json"),
    # fuzz: each of these escaped MF.load as RecursionError / UnicodeDecodeError / TypeError
    ("fuzz:json-deep-nesting", lambda d: (d / "model.json").write_text("[" * 100000 + "]" * 100000), ValueError,
     "model.json: not valid JSON (nested too deeply)"),
    ("fuzz:json-not-utf8", lambda d: (d / "model.json").write_bytes(b'{"format": "\xff"}'), ValueError,
     "model.json: not valid JSON (not UTF-8 at byte 12)"),
    ("fuzz:json-params-not-object", lambda d: _set_meta(d, params=5), ValueError,
     "model.json: invalid 'params' or 'method'"),
    ("fuzz:json-method-not-string", lambda d: _set_params(d, method=5), ValueError, "model.json: invalid 'params'"),
    ("fuzz:json-params-bad-value", lambda d: _set_params(d, lr="fast"), ValueError, "model.json: invalid 'params'"),
    ("fuzz:json-params-k-mismatch", lambda d: _set_params(d, k=9), ValueError,
     "model.json: params.k = 9 but P.npy has k=4"),
]


@pytest.mark.parametrize("corrupt,exc,fragment", [c[1:] for c in MODEL_DIRS], ids=[c[0] for c in MODEL_DIRS])
def test_bad_model_directory(saved_model, corrupt, exc, fragment):
    corrupt(saved_model)
    before = _listing(saved_model.parent)
    with pytest.raises(exc) as e:
        mascot.MF.load(saved_model)
    _check_message(str(e.value), fragment)
    assert _listing(saved_model.parent) == before  # loading writes nothing


def test_missing_model_directory(tmp_path):
    with pytest.raises(OSError) as e:
        mascot.MF.load(tmp_path / "nope")
    _check_message(str(e.value), "nope: not a model directory")


def test_npy_v2_header_and_valid_variants_still_load(saved_model):
    """The strict header parser still reads what numpy writes (v1 and v2 headers, odd spacing)."""
    P = np.load(saved_model / "P.npy")
    (saved_model / "P.npy").write_bytes(_npy_header("(40, 4)", version=2) + P.tobytes())
    m = mascot.MF.load(saved_model)
    assert np.array_equal(m.P, P)
    h = b"{\"descr\":'<f4',\"fortran_order\":False,'shape':( 40 ,4 )}"
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    (saved_model / "P.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + P.tobytes())
    assert np.array_equal(mascot.MF.load(saved_model).P, P)


# ----------------------------------------------------------------------------- checkpoints
# Truncated and corrupted checkpoint files, state files from a run with another k or method,
# and other data, each through MF.resume and `mascot_train --resume`.  A refused resume must
# leave the checkpoint directory byte for byte as it was (the last complete checkpoint stays
# resumable) and write no model or report.  test_checkpoint.py covers the happy paths, the
# CLI's --k/--method expectations and the crafted state files that pass the checksum.
def _write_text(path, u, i, r):
    path.write_text("".join(f"{a} {b} {c:g}\n" for a, b, c in zip(u, i, r)))
    return path


def _stopped_run(d, tr, te, **params):
    """A deterministic 3-epoch run stopped after 2 epochs: a checkpoint with work left."""
    m = mascot.MF(epochs=3, deterministic=True, **params)
    mascot._core.train_checkpointed(
        m._config(), m._context(), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
        te.users, te.items, te.ratings, "", lambda rec: rec["epoch"] < 1, str(d), 1)
    return d


@pytest.fixture(scope="module")
def ck_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("ck")
    rng = np.random.default_rng(11)
    pairs = rng.choice(30 * 20, size=240, replace=False)
    u, i = (pairs // 20).astype(np.int32), (pairs % 20).astype(np.int32)
    r = rng.integers(1, 6, size=240).astype(np.float32)
    train = _write_text(base / "train.txt", u[:200], i[:200], r[:200])
    test = _write_text(base / "test.txt", u[200:], i[200:], r[200:])
    tr, te = data.read(train), data.read(test)
    mascot_k4 = dict(method="mascot", groups=2, warmup=0, period=1, threshold=1.1)
    return dict(train=train, test=test, base=_stopped_run(base / "mascot_k4", tr, te, k=4, **mascot_k4),
                k8=_stopped_run(base / "mascot_k8", tr, te, k=8, **mascot_k4),
                fp32=_stopped_run(base / "fp32_k4", tr, te, k=4, method="fp32", groups=2))


def _manifest(d):
    return json.loads((d / "checkpoint.json").read_text())


def _state(d, name):
    return d / _manifest(d)["file." + name]


def _cut(name, keep):
    def f(ck, env):
        p = _state(ck, name)
        p.write_bytes(p.read_bytes()[: keep(p.stat().st_size)])
    return f


def _flip_last_byte(ck, env):
    p = _state(ck, "Q16")
    b = bytearray(p.read_bytes())
    b[-1] ^= 1
    p.write_bytes(bytes(b))


def _manifest_bytes(fn):
    def f(ck, env):
        p = ck / "checkpoint.json"
        p.write_bytes(fn(p.read_bytes()))
    return f


def _graft(src, name):
    """Replaces state file `name` with the one of checkpoint env[src] (intact, so its size and
    checksum in the manifest are right: only the loader's checks against the run catch it)."""
    def f(ck, env):
        other, man = env[src], _manifest(ck)
        om = _manifest(other)
        assert name in {k[5:] for k in om if k.startswith("file.")}
        (ck / man["file." + name]).unlink()
        man["file." + name] = om["file." + name]
        man["bytes." + name], man["hash." + name] = om["bytes." + name], om["hash." + name]
        (ck / om["file." + name]).write_bytes((other / om["file." + name]).read_bytes())
        (ck / "checkpoint.json").write_text(json.dumps(man))
    return f


def _other_data(which, edit):
    """Resume on edited copies of the training or test file (ratings, or lines dropped)."""
    def f(ck, env):
        lines = env[which].read_text().splitlines(keepends=True)
        p = ck.parent / f"{ck.name}-{which}.txt"
        p.write_text("".join(edit(lines)))
        return {which: p}
    return f


def _bump_first_rating(lines):
    u, i, r = lines[0].split()
    return [f"{u} {i} {float(r) % 5 + 1:g}\n"] + lines[1:]


def _unlink(name):
    return lambda ck, env: _state(ck, name).unlink()


# (id, corrupt(ck, env) -> optional {"train"/"test": path}, Python exception, message fragments)
CHECKPOINTS = [
    ("ck-truncated-factors", _cut("P16", lambda n: n - 100), ValueError, ["P16.e000002", "truncated"]),
    ("ck-truncated-factor-header", _cut("Q16", lambda n: 40), ValueError, ["Q16.e000002", "truncated"]),
    ("ck-truncated-run-state", _cut("run_state", lambda n: n // 2), ValueError, ["run_state.e000002", "truncated"]),
    ("ck-truncated-cpu-state", _cut("cpu_state", lambda n: n - 1), ValueError, ["cpu_state.e000002", "truncated"]),
    ("ck-empty-state-file", _cut("cpu_state", lambda n: 0), ValueError, ["cpu_state.e000002", "truncated (0 of"]),
    ("ck-truncated-manifest", _manifest_bytes(lambda b: b[: len(b) // 2]), ValueError,
     ["checkpoint.json", "corrupted manifest"]),
    ("ck-empty-manifest", _manifest_bytes(lambda b: b""), ValueError, ["checkpoint.json", "corrupted manifest"]),
    ("ck-binary-manifest", _manifest_bytes(lambda b: b"\x00\xff" * 50), ValueError,
     ["checkpoint.json", "corrupted manifest"]),
    # fuzz: a manifest key with non-ASCII bytes was echoed into the "field missing" message
    ("fuzz:ck-non-ascii-key", _manifest_bytes(lambda b: b.replace(b'"file.run_state"',
                                                                  b'"file.ru\xef\xbb\xbfn_state"')),
     ValueError, ["checkpoint.json", "corrupted manifest (invalid character in a key"]),
    ("ck-missing-state-file", _unlink("Q16"), OSError, ["Q16.e000002", "missing"]),
    ("ck-flipped-byte", _flip_last_byte, ValueError, ["Q16.e000002", "checksum mismatch"]),
    ("ck-other-k-factors", _graft("k8", "P16"), ValueError, ["P16.e000002", "different shape", "wrong k"]),
    ("ck-other-k-state", _graft("k8", "cpu_state"), ValueError, ["cpu_state", "saved with k=8, this run has k=4"]),
    ("ck-other-method-state", _graft("fp32", "cpu_state"), ValueError, ["cpu_state"]),
    ("ck-other-method-run-state", _graft("fp32", "run_state"), ValueError, ["run_state", "do not match"]),
    ("ck-other-train-ratings", _other_data("train", _bump_first_rating), ValueError,
     ["written for other data", "same shape, different content"]),
    ("ck-other-train-shape", _other_data("train", lambda ls: ls[:-1]), ValueError,
     ["written for other data", "200 ratings (this one: ", "199)"]),
    ("ck-other-test-set", _other_data("test", _bump_first_rating), ValueError, ["another test set"]),
    ("ck-no-test-set", lambda ck, env: {"test": None}, ValueError, ["another test set (40 ratings, this one: none)"]),
]


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("corrupt,exc,fragments", [c[1:] for c in CHECKPOINTS], ids=[c[0] for c in CHECKPOINTS])
def test_bad_checkpoint(trainer_exe, ck_env, tmp_path, corrupt, exc, fragments):
    import shutil
    ck = tmp_path / "ck"
    shutil.copytree(ck_env["base"], ck)
    paths = {"train": ck_env["train"], "test": ck_env["test"]}
    paths.update(corrupt(ck, ck_env) or {})
    before = _snapshot(ck)
    with pytest.raises(exc) as e:
        mascot.MF.resume(ck, paths["train"], paths["test"])
    for f in fragments:
        _check_message(str(e.value), f)
    assert _snapshot(ck) == before
    out = tmp_path / "out"
    out.mkdir()
    args = [trainer_exe, "--resume", str(ck), "--train", str(paths["train"]), "--quiet",
            "--save", str(out / "model"), "--report", str(out / "r.json")]
    if paths["test"] is not None:
        args += ["--test", str(paths["test"])]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    err = r.stderr.strip().splitlines()
    assert r.returncode in (1, 2), r.stderr
    assert len(err) == 1 and err[0].startswith("mascot_train: error: "), r.stderr
    for f in fragments:
        _check_message(err[0], f)
    assert _listing(out) == [] and _snapshot(ck) == before


def test_intact_checkpoint_copy_resumes(trainer_exe, ck_env, tmp_path):
    """The corpus's base checkpoint is good: both paths resume it (so the refusals above are
    about the damage, not the set-up)."""
    import shutil
    for how in ("python", "cli"):
        ck = tmp_path / how
        shutil.copytree(ck_env["base"], ck)
        if how == "python":
            m = mascot.MF.resume(ck, ck_env["train"], ck_env["test"])
            assert m.report_["totals"]["epochs_run"] == 3 and m.P.shape[1] == 4
        else:
            r = subprocess.run([trainer_exe, "--resume", str(ck), "--train", str(ck_env["train"]), "--test",
                                str(ck_env["test"]), "--quiet"], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
        assert _manifest(ck)["epochs_done"] == 3


def _tiny_fuzz_data():
    """The data the checkpoint fuzz seeds were written for (fuzz/targets/checkpoint.cc)."""
    i, j = np.arange(60), np.arange(15)
    train = ((i % 12).astype(np.int32), ((i * 7 + i // 12) % 9).astype(np.int32),
             (1.0 + 0.5 * ((i * 37) % 9)).astype(np.float32))
    test = (((j * 5) % 12).astype(np.int32), ((j * 4 + 1) % 9).astype(np.int32),
            (3.0 + 0.5 * (j % 3)).astype(np.float32))
    return train, test


def _unpack_fuzz_checkpoint(blob, d):
    """Writes a checkpoint fuzz input as the target does: manifest, "\\n==> FILE <==\\n" parts,
    sizes and checksums re-stamped."""
    from test_checkpoint import _file_hash
    parts = blob.split(b"\n==> ")
    man = json.loads(parts[0])
    d.mkdir()
    for part in parts[1:]:
        name, body = part.split(b" <==\n", 1)
        name = name.decode()
        (d / name).write_bytes(body)
        key = name.split(".e")[0]
        man["bytes." + key], man["hash." + key] = len(body), f"{_file_hash(body):016x}"
    (d / "checkpoint.json").write_text(json.dumps(man))


# Checkpoint findings of fuzz/targets/checkpoint.cc, replayed through MF.resume:
#  afp_bool_byte  an AFP state whose has_avg bool byte was 5 (UBSan: invalid bool load while
#                 resuming; the MPT loss-scale and MUPPET policy bools had the same gap)
#  epoch_count    a backend state saying 1 epoch done under a run state with 2: the resumed
#                 run repeated epoch 1 and reported 4 epochs of a 3-epoch run
FUZZ_CHECKPOINTS = [("bad_fuzz_afp_bool_byte", ["cpu_state", "tensor state out of range"]),
                    ("bad_fuzz_epoch_count", ["cpu_state", "corrupted (epoch count 1, the run state has 2)"])]


@pytest.mark.parametrize("name,fragments", FUZZ_CHECKPOINTS, ids=[c[0] for c in FUZZ_CHECKPOINTS])
def test_fuzz_checkpoint_findings(tmp_path, name, fragments):
    from pathlib import Path
    corpus = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "checkpoint"
    train, test = _tiny_fuzz_data()
    ck = tmp_path / "ck"
    _unpack_fuzz_checkpoint((corpus / name).read_bytes(), ck)
    before = _snapshot(ck)
    with pytest.raises(ValueError) as e:
        mascot.MF.resume(ck, train, test)
    for f in fragments:
        _check_message(str(e.value), f)
    assert _snapshot(ck) == before
    ok = tmp_path / "ok"  # the intact seed they came from resumes
    _unpack_fuzz_checkpoint((corpus / "valid_afp").read_bytes(), ok)
    assert mascot.MF.resume(ok, train, test).report_["totals"]["epochs_run"] == 3
