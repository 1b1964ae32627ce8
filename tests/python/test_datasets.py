"""Real-dataset preparation (mascot.datasets) on small fixtures in the exact upstream layouts.

Downloads go to a local HTTP server on 127.0.0.1 (GroupLens zips and a tiny PEP 503 index with a
fake recbole wheel); Netflix and Yahoo files are written to tmp directories.  Every prepared set
is checked against a slow reference: the raw (user, item, rating) triples recovered through the
id maps in meta.json must equal the input split exactly.
"""
import collections
import contextlib
import hashlib
import http.server
import io
import json
import os
import subprocess
import threading
import time
import zipfile

import numpy as np
import pytest

# preparing datasets needs the data extra (pandas); absent e.g. on an offline GPU machine
pytest.importorskip("pandas")

from mascot import _store, cli, data, datasets
from mascot.datasets import DatasetError, DownloadError, _download, _parse, movielens

# ---------------------------------------------------------------------------------------------
# fixtures: upstream-format files


def ml_ratings(seed=3, n_users=30, n_items=25, n=400, half=False):
    """Raw MovieLens-like triples (1-based ids with gaps), unique (user, item) pairs."""
    rng = np.random.default_rng(seed)
    uids = np.sort(rng.choice(np.arange(1, 4 * n_users), n_users, replace=False))
    iids = np.sort(rng.choice(np.arange(1, 4 * n_items), n_items, replace=False))
    pairs = rng.choice(n_users * n_items, n, replace=False)
    u, i = uids[pairs // n_items], iids[pairs % n_items]
    r = rng.integers(1, 11, n) / 2.0 if half else rng.integers(1, 6, n).astype(float)
    t = rng.integers(874_724_710, 893_286_638, n)
    return u, i, r, t


def ml_text(name, u, i, r, t):
    if name == "ml100k":
        return "".join(f"{a}\t{b}\t{int(c)}\t{d}\n" for a, b, c, d in zip(u, i, r, t))
    if name == "ml10m":
        return "".join(f"{a}::{b}::{c:g}::{d}\n" for a, b, c, d in zip(u, i, r, t))
    return "userId,movieId,rating,timestamp\n" + "".join(f"{a},{b},{c:.1f},{d}\n" for a, b, c, d in zip(u, i, r, t))


def make_zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.getvalue()


def ml_zip(name, text):
    zname, member = datasets.ML_ARCHIVES[name]
    return zname, make_zip({member: text, member.split("/")[0] + "/README.txt": "fixture\n"})


def fake_wheel(inter_text):
    dist = f"recbole-{datasets.RECBOLE_VERSION}.dist-info"
    return make_zip({
        datasets.RECBOLE_MEMBER: inter_text,
        "recbole/__init__.py": "",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: recbole\nVersion: {datasets.RECBOLE_VERSION}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fixture\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/RECORD": "",
    })


def md5(b):
    return hashlib.md5(b).hexdigest()


@contextlib.contextmanager
def serving(handler):
    """Serves ``handler`` (a BaseHTTPRequestHandler class) on 127.0.0.1; yields the base URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        th.join()


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def server():
    """A local HTTP server: assign ``files[path] = bytes``; yields (base_url, files, hits)."""
    files, hits = {}, []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/html" if self.path.endswith("/") else "application/octet-stream")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    with serving(H) as url:
        yield url, files, hits


@pytest.fixture
def root(tmp_path, monkeypatch):
    r = tmp_path / "data"
    monkeypatch.setenv("MASCOT_DATA", str(r))
    return r


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


def leftovers(root):
    """Anything under root except prepared datasets and the verified download cache."""
    return sorted(p.name for p in root.iterdir() if p.name != ".downloads" and not (p / "meta.json").exists())


def triples(name, root=None):
    """The prepared train / test sets as Counters of raw (user, item, rating) triples."""
    d = data.load(name)
    m = data.meta(name)
    uids, iids = np.array(m["user_ids"]), np.array(m["item_ids"])
    out = []
    for rs in (d.train, d.test):
        assert rs.n_users == len(uids) and rs.n_items == len(iids)
        out.append(collections.Counter(zip(uids[rs.users].tolist(), iids[rs.items].tolist(),
                                           rs.ratings.astype(float).tolist())))
    return tuple(out), m


def reference_split(tr, te):
    """Slow reference: drop test triples whose user or item has no training rating."""
    tu = {a for a, _, _ in tr}
    ti = {b for _, b, _ in tr}
    kept = [x for x in te if x[0] in tu and x[1] in ti]
    return collections.Counter(tr), collections.Counter(kept), len(te) - len(kept)


# ---------------------------------------------------------------------------------------------
# MovieLens over HTTP


@pytest.mark.parametrize("name", ["ml100k", "ml10m", "ml25m"])
def test_movielens_download_prepare(name, server, root, monkeypatch):
    url, files, hits = server
    u, i, r, t = ml_ratings(half=name != "ml100k")
    zname, blob = ml_zip(name, ml_text(name, u, i, r, t))
    files[f"/ml/{zname}"] = blob
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", f"{url}/ml")
    text = ml_text(name, u, i, r, t).encode()
    pins = {zname: ("md5", md5(blob)), "u.data": ("sha256", sha(text))}
    path = datasets.prepare(name, quiet=True, _pins=pins)
    assert path == root / name
    (tr, te), m = triples(name)
    # reference: the seeded fold of the input rows, unseen users / items dropped
    mask = datasets.fold_indices(len(r), 1, datasets.DEFAULT_SEED)
    rows = list(zip(u.tolist(), i.tolist(), r.tolist()))
    ref_tr, ref_te, ref_drop = reference_split([x for x, s in zip(rows, mask) if not s],
                                               [x for x, s in zip(rows, mask) if s])
    assert tr == ref_tr and te == ref_te
    c = m["counts"]
    assert c["test_dropped"] == ref_drop and c["train"] + c["test"] + c["test_dropped"] == len(r) == m["total_ratings"]
    assert c["users"] == len(m["user_ids"]) and m["user_ids"] == sorted(m["user_ids"])
    assert m["format_version"] == datasets.FORMAT_VERSION and m["dataset"] == name
    assert m["split"] == {"kind": "folds", "folds": 5, "fold": 1, "seed": datasets.DEFAULT_SEED,
                          "method": m["split"]["method"]}
    assert m["sources"][0]["sha256"] == sha(blob) and m["sources"][0]["file"] == zname
    assert m["rating_scale"] == ([1, 5] if name == "ml100k" else [0.5, 5])
    assert leftovers(root) == [] and (path.stat().st_mode & 0o777) == 0o777 & ~current_umask()
    if name == "ml100k":
        assert m["sources"][0]["ratings_sha256"] == sha(text)
    # fold 2 goes to NAME-fold2 and reuses the verified cached zip (no second download)
    n_hits = len(hits)
    datasets.prepare(name, fold=2, quiet=True, _pins=pins)
    assert len(hits) == n_hits
    (tr2, te2), m2 = triples(f"{name}-fold2")
    assert m2["split"]["fold"] == 2 and not (set(te) & set(te2))
    # already prepared: refused without --force, replaced with it
    with pytest.raises(DatasetError, match="already prepared"):
        datasets.prepare(name, quiet=True, _pins=pins)
    datasets.prepare(name, force=True, quiet=True, _pins=pins)
    assert triples(name)[0] == (tr, te)


def test_fold_indices_disjoint_and_deterministic():
    n = 1003
    masks = [datasets.fold_indices(n, f, 7) for f in range(1, 6)]
    assert np.array_equal(np.sum(masks, axis=0), np.ones(n))  # disjoint and covering
    assert all(abs(m.sum() - n / 5) <= 1 for m in masks)
    assert np.array_equal(masks[2], datasets.fold_indices(n, 3, 7))
    assert not np.array_equal(masks[2], datasets.fold_indices(n, 3, 8))
    with pytest.raises(DatasetError, match="fold"):
        datasets.fold_indices(n, 6)


def test_corrupt_archive_is_rejected_and_leaves_nothing(server, root, monkeypatch):
    url, files, _ = server
    u, i, r, t = ml_ratings()
    zname, blob = ml_zip("ml10m", ml_text("ml10m", u, i, r, t))
    files[f"/{zname}"] = blob[:-100] + b"x" * 100  # damaged in transit
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", url)
    with pytest.raises(DatasetError, match="ml-10m.zip: checksum mismatch"):
        datasets.prepare("ml10m", quiet=True, _pins={zname: ("md5", md5(blob))})
    assert leftovers(root) == [] and list((root / ".downloads").iterdir()) == []
    # the real pins stay in force when no override is given
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.prepare("ml10m", quiet=True)
    assert not (root / "ml10m").exists()


def test_ml100k_falls_back_to_pypi_wheel(server, root, monkeypatch):
    url, files, hits = server
    u, i, r, t = ml_ratings()
    text = ml_text("ml100k", u, i, r, t)
    wheel = fake_wheel(datasets.RECBOLE_HEADER.decode() + "\n" + text)
    files[f"/files/{datasets.RECBOLE_WHEEL}"] = wheel
    files["/simple/recbole/"] = (f'<html><body><a href="{url}/files/{datasets.RECBOLE_WHEEL}#sha256={sha(wheel)}">'
                                 f"{datasets.RECBOLE_WHEEL}</a></body></html>").encode()
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", f"{url}/nowhere")  # 404: GroupLens "unreachable"
    pins = {datasets.RECBOLE_WHEEL: ("sha256", sha(wheel)), "u.data": ("sha256", sha(text.encode()))}
    datasets.prepare("ml100k", quiet=True, index_url=f"{url}/simple", _pins=pins)
    assert "/nowhere/ml-100k.zip" in hits and f"/files/{datasets.RECBOLE_WHEEL}" in hits
    (tr, te), m = triples("ml100k")
    assert sum(tr.values()) + sum(te.values()) + m["counts"]["test_dropped"] == len(r)
    assert m["sources"][0]["file"] == datasets.RECBOLE_WHEEL and m["sources"][0]["sha256"] == sha(wheel)
    assert m["sources"][0]["ratings_sha256"] == sha(text.encode())
    assert collections.Counter(tr) + collections.Counter(te) <= collections.Counter(
        zip(u.tolist(), i.tolist(), r.tolist()))
    assert leftovers(root) == []
    # a wheel whose ratings differ from the pinned u.data content is refused
    bad = dict(pins)
    bad["u.data"] = ("sha256", "0" * 64)
    with pytest.raises(DatasetError, match="u.data: checksum mismatch"):
        datasets.prepare("ml100k", quiet=True, force=True, index_url=f"{url}/simple", _pins=bad)
    assert leftovers(root) == [] and triples("ml100k")[0] == (tr, te)  # the old set is intact
    # no index serves the wheel: a download error
    with pytest.raises(DownloadError, match="pip download"):
        datasets.prepare("ml100k", quiet=True, out="x", index_url=f"{url}/empty", _pins=pins)
    assert leftovers(root) == []


def test_real_pins_are_the_published_ones():
    assert datasets.PINS["ml-100k.zip"] == ("md5", "0e33842e24a9c977be4e0107933c0723")
    assert datasets.PINS["u.data"][0] == "sha256" and len(datasets.PINS["u.data"][1]) == 64
    assert datasets.PINS[datasets.RECBOLE_WHEEL][0] == "sha256"


# ---------------------------------------------------------------------------------------------
# MovieLens parsers: malformed input


@pytest.mark.parametrize("name,bad,line,what", [
    ("ml100k", "1\t2\t3\n", 3, "expected 'user<TAB>item"),
    ("ml100k", "1\t2\t9\t5\n", 3, "rating 9 outside"),
    ("ml100k", "1\tx\t3\t5\n", 3, "expected"),
    ("ml10m", "1::2::3.5::4::5\n", 3, "expected 'UserID::MovieID::Rating::Timestamp'"),
    ("ml10m", "1:2::3::4\n", 3, "expected"),
    ("ml10m", "\n", 3, "empty line"),
    ("ml25m", "1,2,,4\n", 4, "expected 'userId,movieId,rating,timestamp'"),
    ("ml25m", "-1,2,3.0,4\n", 4, "expected"),
])
def test_movielens_malformed_line(name, bad, line, what, tmp_path, root):
    u, i, r, t = ml_ratings(n=6)
    text = ml_text(name, u, i, r, t)
    lines = text.splitlines(keepends=True)
    lines.insert(line - 1, bad)
    zname, blob = ml_zip(name, "".join(lines))
    (tmp_path / zname).write_bytes(blob)
    member = datasets.ML_ARCHIVES[name][1]
    with pytest.raises(DatasetError) as e:
        datasets.prepare(name, tmp_path, quiet=True, _pins={})
    msg = str(e.value)
    assert msg.startswith(f"{zname}!{member}:{line}: ") and what in msg and "\n" not in msg
    assert not root.exists() or leftovers(root) == []


def test_ml25m_header_and_bad_zip(tmp_path, root):
    zname, blob = ml_zip("ml25m", "user,movie,rating,timestamp\n1,2,3.0,4\n")
    (tmp_path / zname).write_bytes(blob)
    with pytest.raises(DatasetError, match=r"ratings.csv:1: expected the header"):
        datasets.prepare("ml25m", tmp_path, quiet=True, _pins={})
    (tmp_path / zname).write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a valid zip"):
        datasets.prepare("ml25m", tmp_path, quiet=True, _pins={})
    assert leftovers(root) == []


def test_block_boundaries_do_not_change_the_result(tmp_path, root, monkeypatch):
    u, i, r, t = ml_ratings(n=300, half=True)
    zname, blob = ml_zip("ml10m", ml_text("ml10m", u, i, r, t))
    (tmp_path / zname).write_bytes(blob)
    datasets.prepare("ml10m", tmp_path, quiet=True, _pins={})
    ref = triples("ml10m")[0]
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 37)
    datasets.prepare("ml10m", tmp_path, quiet=True, out="small-blocks", _pins={})
    assert triples("small-blocks")[0] == ref


# ---------------------------------------------------------------------------------------------
# Netflix


def netflix_fixture(seed=5, n_movies=12, n_cust=40, n=300):
    rng = np.random.default_rng(seed)
    cust = np.sort(rng.choice(np.arange(6, 2_649_430), n_cust, replace=False))
    pairs = rng.choice(n_movies * n_cust, n, replace=False)
    m, c = pairs // n_cust + 1, cust[pairs % n_cust]
    r = rng.integers(1, 6, n)
    probe = rng.random(n) < 0.2
    # one customer rated only probe movies: their probe ratings must be dropped
    lone = 2_649_999
    m = np.append(m, [3, 7])
    c = np.append(c, [lone, lone])
    r = np.append(r, [4, 2])
    probe = np.append(probe, [True, True])
    return m, c, r, probe


def netflix_blocks(m, c, r, with_rating=True):
    out = []
    for mv in np.unique(m):
        out.append(f"{mv}:\n")
        for k in np.flatnonzero(m == mv):
            out.append(f"{c[k]},{r[k]},2005-09-06\n" if with_rating else f"{c[k]}\n")
    return out


@pytest.mark.parametrize("layout", ["training_set", "combined"])
def test_netflix(layout, tmp_path, root, monkeypatch):
    m, c, r, probe = netflix_fixture()
    src = tmp_path / "nf"
    if layout == "training_set":
        (src / "training_set").mkdir(parents=True)
        for mv in np.unique(m):
            k = m == mv
            (src / "training_set" / f"mv_{mv:07d}.txt").write_text("".join(netflix_blocks(m[k], c[k], r[k])))
    else:
        src.mkdir()
        lines = netflix_blocks(m, c, r)
        cut = len(lines) // 2
        while not lines[cut].endswith(":\n"):
            cut += 1
        (src / "combined_data_1.txt").write_text("".join(lines[:cut]))
        (src / "combined_data_2.txt").write_text("".join(lines[cut:]))
        monkeypatch.setattr(_parse, "BLOCK_BYTES", 53)  # many block boundaries inside a movie's block
    (src / "probe.txt").write_text("".join(netflix_blocks(m[probe], c[probe], r[probe], with_rating=False)))
    datasets.prepare("netflix", src, quiet=True)
    (tr, te), meta = triples("netflix")
    rows = list(zip(c.tolist(), m.tolist(), r.astype(float).tolist()))
    ref_tr, ref_te, drop = reference_split([x for x, p in zip(rows, probe) if not p],
                                           [x for x, p in zip(rows, probe) if p])
    assert tr == ref_tr and te == ref_te and drop >= 2
    assert meta["counts"]["test_dropped"] == drop and meta["split"]["kind"] == "provided"
    assert meta["split"]["probe_pairs"] == int(probe.sum()) and meta["split"]["probe_pairs_missing"] == 0
    assert {s["file"] for s in meta["sources"]} >= {"probe.txt"}
    assert leftovers(root) == []


@pytest.mark.parametrize("fname,content,line,what", [
    ("mv_0000002.txt", "2:\n10,3,2005-01-01\n11,3\n", 3, "expected 'CustomerID,Rating,Date'"),
    ("mv_0000002.txt", "2:\n10,3,2005-01-01\n11,7,2005-01-01\n", 3, "rating 7 outside"),
    ("mv_0000002.txt", "10,3,2005-01-01\n", 1, "before any 'MovieID:' header"),
    ("mv_0000002.txt", "2x:\n10,3,2005-01-01\n", 1, "expected a header 'MovieID:'"),
    ("probe.txt", "1:\n10\n12,3\n", 3, "expected 'CustomerID'"),
])
def test_netflix_malformed(fname, content, line, what, tmp_path, root):
    src = tmp_path / "nf"
    (src / "training_set").mkdir(parents=True)
    (src / "training_set" / "mv_0000001.txt").write_text("1:\n10,3,2005-01-01\n12,4,2005-01-02\n")
    (src / "probe.txt").write_text("1:\n10\n")
    (src / ("training_set" if fname.startswith("mv_") else "") / fname).write_text(content)
    with pytest.raises(DatasetError) as e:
        datasets.prepare("netflix", src, quiet=True)
    assert str(e.value).startswith(f"{src / ('training_set' if fname.startswith('mv_') else '') / fname}:{line}: ")
    assert what in str(e.value)
    assert leftovers(root) == []


def test_netflix_needs_source(root):
    with pytest.raises(DatasetError, match="--source"):
        datasets.prepare("netflix", quiet=True)
    with pytest.raises(DatasetError, match="fold applies to the MovieLens"):
        datasets.prepare("netflix", "/nonexistent", fold=2, quiet=True)


# ---------------------------------------------------------------------------------------------
# Yahoo! Music (KDD Cup 2011 track 1)


def yahoo_blocks(u, i, s):
    out = []
    for uu in np.unique(u):
        k = np.flatnonzero(u == uu)
        out.append(f"{uu}|{len(k)}\n")
        out += [f"{i[j]}\t{s[j]}\t{3000 + j}\t{j % 24:02d}:13:00\n" for j in k]
    return out


def yahoo_fixture(tmp_path, seed=9):
    rng = np.random.default_rng(seed)
    n = 500
    pairs = rng.choice(40 * 60, n, replace=False)
    u, i = pairs // 60, (pairs % 60) * 1000 + 7
    s = rng.integers(0, 101, n)
    te = rng.random(n) < 0.15
    te[u == u.max()] = False
    u = np.append(u, [1000, 1000])  # a user only in validation
    i = np.append(i, [7, 1007])
    s = np.append(s, [90, 30])
    te = np.append(te, [True, True])
    src = tmp_path / "yahoo"
    src.mkdir()
    (src / "trainIdx1.txt").write_text("".join(yahoo_blocks(u[~te], i[~te], s[~te])))
    (src / "validationIdx1.txt").write_text("".join(yahoo_blocks(u[te], i[te], s[te])))
    return src, u, i, s, te


@pytest.mark.parametrize("raw", [False, True])
def test_yahoo(raw, tmp_path, root, monkeypatch):
    src, u, i, s, te = yahoo_fixture(tmp_path)
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 61)
    datasets.prepare("yahoo", src, quiet=True, raw_scale=raw)
    (tr, tst), meta = triples("yahoo")
    val = s.astype(float) if raw else (s / 25 + 1).astype(np.float32).astype(float)
    rows = list(zip(u.tolist(), i.tolist(), val.tolist()))
    ref_tr, ref_te, drop = reference_split([x for x, p in zip(rows, te) if not p], [x for x, p in zip(rows, te) if p])
    assert tr == ref_tr and tst == ref_te and drop >= 2
    assert meta["counts"]["test_dropped"] == drop
    assert meta["rating_scale"] == ([0, 100] if raw else [1, 5])
    assert min(x[2] for x in tr) >= (0 if raw else 1) and max(x[2] for x in tr) <= (100 if raw else 5)


@pytest.mark.parametrize("content,line,what", [
    ("5|2\n1\t50\t3000\t10:00:00\n", 1, "announces 2 ratings but 1 follow"),
    ("5|1\n1\t50\t3000\t10:00:00\n6|1\n2\t150\t3000\t10:00:00\n", 4, "rating 150 outside"),
    ("5|1\n1\t50\t3000\n", 2, "expected 'ItemId<TAB>Score<TAB>Date<TAB>Time'"),
    ("5|1|3\n1\t50\t3000\t10:00:00\n", 1, "expected a header 'UserId|NumRatings'"),
])
def test_yahoo_malformed(content, line, what, tmp_path, root):
    src, *_ = yahoo_fixture(tmp_path)
    (src / "validationIdx1.txt").write_text(content)
    with pytest.raises(DatasetError) as e:
        datasets.prepare("yahoo", src, quiet=True)
    assert str(e.value).startswith(f"{src / 'validationIdx1.txt'}:{line}: ") and what in str(e.value)
    assert leftovers(root) == []


# ---------------------------------------------------------------------------------------------
# the console command and mascot_train


def test_cli_data_commands(tmp_path, root, capsys):
    u, i, r, t = ml_ratings()
    zname, blob = ml_zip("ml10m", ml_text("ml10m", u, i, r, t))
    (tmp_path / zname).write_bytes(blob)
    assert cli.main(["data", "list"]) == 0
    assert "no prepared datasets" in capsys.readouterr().out
    # the real pin rejects the fixture zip: input error, exit 2, one line
    assert cli.main(["data", "prepare", "ml10m", "--source", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and err.count("\n") == 1
    assert cli.main(["data", "prepare", "netflix", "--quiet"]) == 2
    assert "--source" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "prepare", "nope"])
    assert e.value.code == 2
    assert cli.main(["data", "info", "ml10m"]) == 2
    assert "mascot data prepare ml10m" in capsys.readouterr().err
    datasets.prepare("ml10m", tmp_path, quiet=True, out="ml10m", _pins={})
    capsys.readouterr()
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ml10m" in out and f"{data.meta('ml10m')['counts']['train']:,}" in out
    assert cli.main(["data", "info", "ml10m"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"] == data.meta("ml10m")["counts"] and "user_ids" not in info


def test_mascot_train_on_prepared_dataset(trainer_exe, tmp_path, root):
    u, i, r, t = ml_ratings(n=500, n_users=40, n_items=30)
    zname, blob = ml_zip("ml100k", ml_text("ml100k", u, i, r, t))
    (tmp_path / zname).write_bytes(blob)
    datasets.prepare("ml100k", tmp_path, quiet=True, _pins={})
    rep = tmp_path / "rep.json"
    env = dict(os.environ, MASCOT_DATA=str(root))
    res = subprocess.run([trainer_exe, "--dataset", "ml100k", "--k", "8", "--epochs", "2", "--threads", "1",
                          "--groups", "4", "--report", str(rep)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    c = data.meta("ml100k")["counts"]
    st = json.loads(rep.read_text())["dataset"]
    assert st["n_users"] == c["users"] and st["n_items"] == c["items"]
    res = subprocess.run([trainer_exe, "--dataset", "ml25m", "--epochs", "1"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode != 0 and "mascot data prepare ml25m" in res.stderr
    with pytest.raises(FileNotFoundError, match="mascot data prepare ml25m"):
        data.load("ml25m")


def test_interrupted_or_occupied_target_leaves_data_intact(tmp_path, root, monkeypatch):
    u, i, r, t = ml_ratings()
    zname, blob = ml_zip("ml10m", ml_text("ml10m", u, i, r, t))
    (tmp_path / zname).write_bytes(blob)
    # a directory the user made by hand is never replaced without --force, nor with it while it
    # holds anything but a dataset's files (issue 24: never delete what the tool did not write)
    (root / "ml10m").mkdir(parents=True)
    (root / "ml10m" / "mine.txt").write_text("keep")
    with pytest.raises(DatasetError, match="exists .use --force"):
        datasets.prepare("ml10m", tmp_path, quiet=True, _pins={})
    with pytest.raises(DatasetError, match=r"ml10m: exists, is not empty and holds no meta\.json; refusing"):
        datasets.prepare("ml10m", tmp_path, quiet=True, force=True, _pins={})
    assert (root / "ml10m" / "mine.txt").read_text() == "keep" and leftovers(root) == ["ml10m"]
    (root / "ml10m" / "mine.txt").unlink()
    datasets.prepare("ml10m", tmp_path, quiet=True, force=True, _pins={})
    before = triples("ml10m")
    # interrupted while writing: the prepared set stays as it was, no temporary directory remains
    calls = []

    def interrupted(path, rs):
        calls.append(path)
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(_store, "write_mrat", interrupted)
        with pytest.raises(KeyboardInterrupt):
            datasets.prepare("ml10m", tmp_path, quiet=True, force=True, _pins={})
    assert calls and leftovers(root) == []
    assert triples("ml10m") == before


def test_progress_on_stderr(server, root, monkeypatch, capsys):
    url, files, _ = server
    u, i, r, t = ml_ratings()
    zname, blob = ml_zip("ml10m", ml_text("ml10m", u, i, r, t))
    files[f"/{zname}"] = blob
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", url)
    datasets.prepare("ml10m", _pins={zname: ("md5", md5(blob))})
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert any(ln.startswith(f"downloading {url}/{zname}: ") and "(100.0%)" in ln for ln in lines)
    assert any(ln.startswith(f"parsing {zname}!ml-10M100K/ratings.dat: ") and "(100.0%)" in ln for ln in lines)
    counts = data.meta("ml10m")["counts"]
    assert lines[-1].startswith(f"prepared {root / 'ml10m'}: ")
    assert f"{len(r) - counts['test_dropped'] - counts['test']:,} train" in lines[-1]


def test_ml100k_known_counts_are_enforced_for_the_real_data(tmp_path, root):
    u, i, r, t = ml_ratings()
    zname, blob = ml_zip("ml100k", ml_text("ml100k", u, i, r, t))
    (tmp_path / zname).write_bytes(blob)
    with pytest.raises(DatasetError, match=r"ml100k: expected \(943, 1682, 100000\) users/items/ratings, got "
                                           rf"\({len(set(u))}, {len(set(i))}, {len(r)}\)"):
        datasets.prepare("ml100k", tmp_path, quiet=True, _pins={"u.data": datasets.PINS["u.data"]})
    assert leftovers(root) == []


# ---------------------------------------------------------------------------------------------
# audit regressions: id range, empty training sets, broken meta.json, fast path = line checker


def netflix_src(tmp_path, train, probe="1:\n10\n"):
    src = tmp_path / "nf"
    (src / "training_set").mkdir(parents=True)
    (src / "training_set" / "mv_0000001.txt").write_text(train)
    (src / "probe.txt").write_text(probe)
    return src


def yahoo_src(tmp_path, train, valid="5|1\n1\t50\t3000\t10:00:00\n"):
    src = tmp_path / "yahoo"
    src.mkdir()
    (src / "trainIdx1.txt").write_text(train)
    (src / "validationIdx1.txt").write_text(valid)
    return src


def ml_src(tmp_path, name, text):
    zname, blob = ml_zip(name, text)
    (tmp_path / zname).write_bytes(blob)
    return tmp_path, f"{zname}!{datasets.ML_ARCHIVES[name][1]}"


BIG = "99999999999999999999"


@pytest.mark.parametrize("name,files,where,what", [
    ("netflix", {"mv": f"{BIG}:\n10,3,2005\n"}, "mv:1", f"MovieID {BIG} out of range"),
    ("netflix", {"mv": f"1:\n{BIG},3,2005\n12,4,2005\n"}, "mv:2", f"CustomerID {BIG} out of range"),
    ("netflix", {"mv": "1:\n12,4,2005\n", "probe": f"1:\n{BIG}\n"}, "probe:2", "CustomerID"),
    ("yahoo", {"train": f"{BIG}|1\n1\t50\t3000\t10:00:00\n"}, "train:1", f"UserId {BIG} out of range"),
    ("yahoo", {"train": f"5|1\n{BIG}\t50\t3000\t10:00:00\n"}, "train:2", f"ItemId {BIG} out of range"),
    ("yahoo", {"train": f"5|{BIG}\n1\t50\t3000\t10:00:00\n"}, "train:1", "rating count 9999"),
    ("ml10m", {"ml": f"1::2::3::5\n{BIG}::1::3::5\n"}, "ml:2", f"user id {BIG} out of range"),
    ("ml25m", {"ml": "userId,movieId,rating,timestamp\n1,2,3.0,5\n1,9223372036854775808,3.0,5\n"}, "ml:3",
     "item id 9223372036854775808 out of range"),
])
def test_oversized_ids_are_rejected_with_file_line(name, files, where, what, tmp_path, root, capsys, monkeypatch):
    monkeypatch.setattr(movielens, "PINS", {})  # the command verifies no fixture zip
    if name == "netflix":
        src = netflix_src(tmp_path, files["mv"], files.get("probe", "1:\n10\n"))
        label = {"mv": src / "training_set" / "mv_0000001.txt", "probe": src / "probe.txt"}
    elif name == "yahoo":
        src = yahoo_src(tmp_path, files["train"])
        label = {"train": src / "trainIdx1.txt"}
    else:
        src, lab = ml_src(tmp_path, name, files["ml"])
        label = {"ml": lab}
    key, line = where.split(":")
    with pytest.raises(DatasetError) as e:
        datasets.prepare(name, src, quiet=True, _pins={})
    msg = str(e.value)
    assert msg.startswith(f"{label[key]}:{line}: ") and what in msg and "2^63-1" in msg and "\n" not in msg
    assert not root.exists() or leftovers(root) == []
    # the command: one line naming file:line, exit 2 (no OverflowError traceback)
    assert cli.main(["data", "prepare", name, "--source", str(src), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mascot data: error: ") and f"{label[key]}:{line}: " in err and err.count("\n") == 1


def test_netflix_huge_ids_split_exactly(tmp_path, root):
    # pair keys item * (max user + 1) + user would overflow int64: the split must stay exact
    a, b, mv = 2**62, 2**63 - 1, 2**40
    src = netflix_src(tmp_path, f"5:\n{a},3,x\n{b},4,x\n7,1,x\n{mv}:\n{a},5,x\n{b},2,x\n7,2,x\n",
                      f"5:\n{b}\n{mv}:\n{a}\n7\n")
    # two movies in one file: the combined_data layout (an mv_ file holds its own movie only)
    (src / "training_set" / "mv_0000001.txt").rename(src / "combined_data_1.txt")
    datasets.prepare("netflix", src, quiet=True)
    (tr, te), m = triples("netflix")
    assert tr == collections.Counter([(a, 5, 3.0), (7, 5, 1.0), (b, mv, 2.0)])
    assert te == collections.Counter([(b, 5, 4.0), (a, mv, 5.0), (7, mv, 2.0)])
    assert m["split"]["probe_pairs"] == 3 and m["split"]["probe_pairs_missing"] == 0


def test_ids_are_parsed_exactly(tmp_path, root):
    # above 2^53 float64 would merge these; 2^63-1 is the largest id accepted
    big = [9007199254740992, 9007199254740993, 2**63 - 1]
    text = "".join(f"{u}::{i}::{1 + (u + i) % 5}::5\n" for u in big for i in range(1, 7))
    src, _ = ml_src(tmp_path, "ml10m", text)
    datasets.prepare("ml10m", src, quiet=True, _pins={})
    assert data.meta("ml10m")["user_ids"] == big
    (tr, te), _ = triples("ml10m")
    assert {x[0] for x in tr} | {x[0] for x in te} == set(big)


@pytest.mark.parametrize("name,content,what", [
    ("ml10m", "", "ratings.dat: holds no ratings"),
    ("ml25m", "userId,movieId,rating,timestamp\n", "ratings.csv: holds no ratings"),
    ("yahoo", "", "trainIdx1.txt: holds no ratings"),
    ("netflix", "1:\n10,3,2005-01-01\n", "probe.txt: every rating of the training files is a probe pair"),
    ("netflix", "", "the training files hold no ratings"),
])
def test_no_training_ratings_is_an_error(name, content, what, tmp_path, root, capsys, monkeypatch):
    monkeypatch.setattr(movielens, "PINS", {})  # the command verifies no fixture zip
    if name == "netflix":
        src = netflix_src(tmp_path, content)
    elif name == "yahoo":
        src = yahoo_src(tmp_path, content)
    else:
        src, _ = ml_src(tmp_path, name, content)
    with pytest.raises(DatasetError, match=what):
        datasets.prepare(name, src, quiet=True, _pins={})
    assert not root.exists() or leftovers(root) == []
    assert not (root / name).exists()
    assert cli.main(["data", "prepare", name, "--source", str(src), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert what in err and err.count("\n") == 1
    assert leftovers(root) == [] and not (root / name).exists()


def test_ml_single_rating_in_the_test_fold(tmp_path, root):
    src, label = ml_src(tmp_path, "ml10m", "1::2::3::5\n")
    with pytest.raises(DatasetError, match="no training ratings outside fold 5"):
        datasets.prepare("ml10m", src, fold=5, quiet=True, _pins={})
    assert leftovers(root) == []


def test_data_list_and_info_survive_a_broken_meta_json(tmp_path, root, capsys):
    u, i, r, t = ml_ratings()
    src, _ = ml_src(tmp_path, "ml10m", ml_text("ml10m", u, i, r, t))
    datasets.prepare("ml10m", src, quiet=True, _pins={})
    broken = {"a-list": b"[1,2]", "b-empty": b"{}", "c-strcounts": b'{"name":"x","counts":{"users":"many"}}',
              "d-badjson": b'{"counts": ', "e-latin1": b'{"name": "\xff"}', "f-dataset": b'{"dataset": [1]}'}
    for name, body in broken.items():
        (root / name).mkdir()
        (root / name / "meta.json").write_bytes(body)
    capsys.readouterr()
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: ln for ln in out}
    assert set(rows) == {"a-list", "b-empty", "c-strcounts", "d-badjson", "e-latin1", "f-dataset", "ml10m"}
    assert "users" in rows["ml10m"] and "unreadable" not in rows["ml10m"]
    for name in ("a-list", "b-empty", "c-strcounts", "d-badjson", "e-latin1", "f-dataset"):
        assert "unreadable meta.json: " in rows[name], rows[name]
    assert "not a JSON object" in rows["a-list"]
    assert "counts" in rows["b-empty"] and "counts" in rows["c-strcounts"]
    for name in ("a-list", "d-badjson", "e-latin1"):
        assert cli.main(["data", "info", name]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mascot data: error: {root / name / 'meta.json'}: ") and err.count("\n") == 1


@pytest.mark.parametrize("name,bad,what", [
    ("netflix", "1e1,3,2005", "expected 'CustomerID,Rating,Date'"),
    ("netflix", "10,3,", "expected 'CustomerID,Rating,Date'"),
    ("netflix", " 10,3,2005", "expected"),
    ("netflix", "10,+3,2005", "expected"),
    ("netflix", "10,3.0,2005", "expected"),
    ("netflix", "10,3,2005\r\r", "expected"),
    ("probe", "+10", "expected 'CustomerID'"),
    ("probe", "10.0", "expected 'CustomerID'"),
    ("yahoo", "1\t1e1\t3000\t10:00:00", "expected 'ItemId<TAB>Score<TAB>Date<TAB>Time'"),
    ("yahoo", "1\t50\t\t10:00:00", "expected"),
    ("yahoo", "-1\t50\t3000\t10:00:00", "expected"),
    ("ml10m", "1\t3\t4\t5", "expected 'UserID::MovieID::Rating::Timestamp'"),
    ("ml10m", "1::3::4.::5", "expected"),
    ("ml10m", "1::3::.5::5", "expected"),
    ("ml10m", "1::3::1e0::5", "expected"),
    ("ml10m", "1::3::4::1e3", "expected"),
    ("ml10m", "1::3::4:: 5", "expected"),
    ("ml10m", "1::3::3.5.5::5", "expected"),
    ("ml25m", "1,3,4.0,", "expected 'userId,movieId,rating,timestamp'"),
    ("ml25m", "1,3\t,4.0,5", "expected"),
    ("ml100k", "1\t3\t+4\t5", "expected 'user<TAB>item"),
])
def test_fast_path_accepts_only_what_the_line_checker_accepts(name, bad, what, tmp_path, root):
    if name in ("netflix", "probe"):
        train = "1:\n10,3,2005-01-01\n12,4,2005-01-02\n" + (f"{bad}\n" if name == "netflix" else "")
        src = netflix_src(tmp_path, train, "1:\n10\n" + (f"{bad}\n" if name == "probe" else ""))
        label = src / ("probe.txt" if name == "probe" else "training_set/mv_0000001.txt")
        line = 3 if name == "probe" else 4
        name = "netflix"
    elif name == "yahoo":
        src = yahoo_src(tmp_path, f"5|2\n7\t90\t3000\t10:00:00\n{bad}\n")
        label, line = src / "trainIdx1.txt", 3
    else:
        good = {"ml10m": "2::3::4::5\n", "ml25m": "2,3,4.0,5\n", "ml100k": "2\t3\t4\t5\n"}[name]
        head = "userId,movieId,rating,timestamp\n" if name == "ml25m" else ""
        src, label = ml_src(tmp_path, name, head + good + f"{bad}\n" + good)
        line = 3 if head else 2
    with pytest.raises(DatasetError) as e:
        datasets.prepare(name, src, quiet=True, _pins={})
    assert str(e.value).startswith(f"{label}:{line}: ") and what in str(e.value), str(e.value)
    assert leftovers(root) == []


def test_fast_path_and_line_checker_agree_on_mutated_lines():
    """Differential check: random byte edits of small valid files; whatever the block parser
    accepts, every line passes the line checker with the same values, and whatever it refuses is
    blamed on a line (never "no single line could be blamed")."""
    import random
    import re

    def source(b):
        return _parse.Source("f", lambda: io.BytesIO(b), len(b))

    def mutate(b, rng):
        b = bytearray(b)
        for _ in range(rng.randint(1, 3)):
            p = rng.randrange(len(b) + 1)
            ins = rng.choice([b"0", b"7", b".", b"+", b"-", b" ", b"e", b"\r", b"\n", b":", b"|", b"\t", b",",
                              b"::", b"", BIG.encode(), b"9223372036854775808"])
            if rng.random() < 0.5:
                b[p:p] = ins
            else:
                b[p:p + rng.randint(1, 2)] = ins
        return bytes(b)

    def line_of(e):
        head = str(e).split(": ")[0]
        assert "no single line" not in str(e)
        return int(head.rsplit(":", 1)[1])

    rng = random.Random(11)
    for name in ("ml100k", "ml10m", "ml25m"):
        f = datasets.ML_FORMATS[name]
        fmt = _parse.FlatFormat(f.sep, f.expected, f.lo, f.hi)  # without the ml25m header line
        s = f.sep.decode()
        base = f"1{s}2{s}3.5{s}88\n10{s}20{s}4{s}99\n3{s}7{s}5{s}1\n".encode()
        check = _parse.line_checker(fmt.regex(), fmt.expected, fmt.lo, fmt.hi, 3, ((1, "u"), (2, "i")))
        pat = re.compile(fmt.regex())
        for _ in range(150):
            b = mutate(base, rng)
            lines = _parse.split_lines(b)
            first_bad = next((n + 1 for n, ln in enumerate(lines) if check(ln)), None)
            cols = _parse.RatingColumns()
            try:
                _parse.parse_flat(source(b), fmt, cols, True)
            except DatasetError as e:
                assert line_of(e) == first_bad, (name, b, str(e))
                continue
            assert first_bad is None, (name, b)
            u, i, r = cols.arrays()
            want = [(int(m[1]), int(m[2]), float(np.float32(float(m[3])))) for m in map(pat.fullmatch, lines)]
            assert list(zip(u.tolist(), i.tolist(), r.astype(float).tolist())) == want, (name, b)
    for fmt, base in ((datasets.NETFLIX_RATINGS, b"1:\n10,3,2005-01-01\n12,4,x\n2:\n10,5,y\n"),
                      (datasets.NETFLIX_PROBE, b"1:\n10\n12\n2:\n10\n"),
                      (datasets.YAHOO, b"5|2\n1\t50\t3000\t10:00:00\n2\t0\t3000\t10:00:00\n6|1\n7\t100\t1\t2\n")):
        for _ in range(150):
            b = mutate(base, rng)
            check = _parse.blocked_checker(fmt, _parse.BlockState())
            first_bad = next((n + 1 for n, ln in enumerate(_parse.split_lines(b)) if check(ln)), None)
            try:
                _parse.parse_blocked(source(b), fmt, True, lambda *a: None)
            except DatasetError as e:
                if "announces" not in str(e):  # Yahoo's counts: checked per block, not per line
                    assert line_of(e) == first_bad, (fmt.header_expected, b, str(e))
                continue
            assert first_bad is None, (fmt.header_expected, b)


def test_netflix_data_file_that_is_a_directory(tmp_path, root):
    src = tmp_path / "nf"
    (src / "training_set").mkdir(parents=True)
    (src / "training_set" / "mv_0000001.txt").write_text("1:\n10,3,2005-01-01\n12,4,2005-01-02\n")
    (src / "training_set" / "mv_0000002.txt").mkdir()
    (src / "probe.txt").write_text("1:\n10\n")
    with pytest.raises(DatasetError, match=r"mv_0000002\.txt: not a regular file"):
        datasets.prepare("netflix", src, quiet=True)
    assert leftovers(root) == []


# ---------------------------------------------------------------------------------------------
# audit regressions (2): broken servers, endless lines, FIFOs, signals, concurrent prepares,
# pip, slow downloads, repeated pairs, argument checks


@pytest.fixture
def bad_server():
    """A local HTTP server whose endpoints misbehave: /chunkcut (a chunked body cut short),
    /badstatus (no HTTP status line), /manyhdr (200 headers), /drip (1 byte every 20 ms),
    /stall (a few bytes, then nothing until the test ends); yields the base URL."""
    done = threading.Event()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            mode = self.path.split("/")[1]
            try:
                if mode == "chunkcut":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"186a0\r\n" + b"x" * 1000)
                elif mode == "badstatus":
                    self.wfile.write(b"garbage\r\n\r\n")
                elif mode == "manyhdr":
                    self.send_response(200)
                    for k in range(200):
                        self.send_header(f"X-{k}", "a")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode in ("drip", "stall"):
                    self.send_response(200)
                    self.send_header("Content-Length", "200")
                    self.end_headers()
                    for _ in range(200 if mode == "drip" else 10):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        if done.wait(0.02):
                            break
                    if mode == "stall":
                        done.wait(30)
                else:
                    self.send_error(404)
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True

        def log_message(self, *a):
            pass

    with serving(H) as url:
        try:
            yield url
        finally:
            done.set()  # release stalled handlers before the server shuts down


@pytest.mark.parametrize("mode", ["chunkcut", "badstatus", "manyhdr"])
def test_broken_http_responses_are_download_errors(mode, bad_server, root, monkeypatch, capsys):
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", f"{bad_server}/{mode}")
    with pytest.raises(DownloadError, match=f"cannot download {bad_server}/{mode}/ml-10m.zip: bad HTTP response"):
        datasets.prepare("ml10m", quiet=True)
    assert leftovers(root) == [] and list((root / ".downloads").iterdir()) == []
    # ml100k still falls back to PyPI
    called = []

    def no_pip(dest, index_url, quiet):
        called.append(dest)
        raise DownloadError("pip download recbole==1.2.1 failed: fixture")

    monkeypatch.setattr(movielens, "pip_download_recbole", no_pip)
    with pytest.raises(DownloadError, match="fixture"):
        datasets.prepare("ml100k", quiet=True)
    assert called and leftovers(root) == []
    capsys.readouterr()
    assert cli.main(["data", "prepare", "ml10m", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mascot data: error: cannot download") and err.count("\n") == 1


@pytest.mark.parametrize("env,value,what", [
    ("MASCOT_GROUPLENS_URL", "http://127.0.0.1:1/a b", "whitespace"),
    ("MASCOT_GROUPLENS_URL", "files.grouplens.org/datasets", "expected an http"),
    ("MASCOT_GROUPLENS_URL", "http:///x", "no host name"),
    ("MASCOT_GROUPLENS_URL", "http://127.0.0.1:port/x", "Port"),
    ("MASCOT_PYPI_INDEX_URL", "http://127.0.0.1:1/si mple", "whitespace"),
    ("--index-url", "", "empty"),
])
def test_mirror_urls_are_checked_up_front(env, value, what, root, monkeypatch, capsys):
    def no_fetch(*a, **k):
        raise AssertionError("nothing may be fetched from an invalid URL")

    monkeypatch.setattr(_download, "fetch_verified", no_fetch)
    monkeypatch.setattr(movielens, "pip_download_recbole", no_fetch)
    kw = {}
    if env == "--index-url":
        kw["index_url"] = value
    else:
        monkeypatch.setenv(env, value)
    with pytest.raises(DatasetError, match=f"{env}: invalid URL {value!r} .*{what}"):
        datasets.prepare("ml100k", quiet=True, **kw)
    assert not root.exists() or leftovers(root) == []
    args = ["--index-url", value] if env == "--index-url" else []
    assert cli.main(["data", "prepare", "ml100k", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mascot data: error: {env}: invalid URL") and err.count("\n") == 1


def test_stalled_download_is_aborted(bad_server, root, monkeypatch):
    monkeypatch.setattr(_download, "DOWNLOAD_WINDOW", 0.3)
    monkeypatch.setattr(_download, "DOWNLOAD_MIN_BYTES", 100)
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", f"{bad_server}/drip")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"ml-10m.zip: too slow \(less than 100 bytes in 0.3 s\)"):
        datasets.prepare("ml10m", quiet=True)
    assert time.monotonic() - t0 < 3  # the drip would last 4 s
    assert leftovers(root) == [] and list((root / ".downloads").iterdir()) == []


def test_overlong_lines_are_rejected(tmp_path, root, monkeypatch, capsys):
    monkeypatch.setattr(_parse, "MAX_LINE", 1000)
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 300)  # lines longer than a block, and longer than the cap
    good = "1::2::3::5\n2::3::4::5\n"
    for text, line in ((good + "9" * 5000, 3),                    # no LF at the end
                       (good + "1::2::3::" + "5" * 3000 + "\n" + good, 3),  # a whole line
                       (good * 40 + "x" * 1001, 81)):            # just over the cap
        src, label = ml_src(tmp_path, "ml10m", text)
        with pytest.raises(DatasetError) as e:
            datasets.prepare("ml10m", src, quiet=True, _pins={})
        assert str(e.value) == f"{label}:{line}: line longer than 1,000 bytes (not a ratings file?)"
        assert leftovers(root) == []
    # exactly at the cap: an ordinary malformed line
    src, label = ml_src(tmp_path, "ml10m", good + "x" * 1000)
    with pytest.raises(DatasetError, match=f"{label}:3: expected"):
        datasets.prepare("ml10m", src, quiet=True, _pins={})
    # a block format and a header line
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 64 << 20)
    src = netflix_src(tmp_path, "1:\n10,3,2005-01-01\n" + "1" * 3000)
    with pytest.raises(DatasetError, match=r"mv_0000001.txt:3: line longer than 1,000 bytes"):
        datasets.prepare("netflix", src, quiet=True)
    src, label = ml_src(tmp_path, "ml25m", "u" * 5000)
    with pytest.raises(DatasetError, match=f"{label}:1: expected the header"):
        datasets.prepare("ml25m", src, quiet=True, _pins={})
    assert leftovers(root) == []


def test_overlong_line_default_cap_and_out_of_memory(tmp_path, root, monkeypatch, capsys):
    src = netflix_src(tmp_path, "1:\n10,3,2005-01-01\n")
    (src / "probe.txt").write_bytes(b"1:\n" + b"\0" * (3 << 20))  # 3 MiB without a LF
    with pytest.raises(DatasetError, match=r"probe.txt:2: line longer than 1,048,576 bytes"):
        datasets.prepare("netflix", src, quiet=True)

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(datasets, "prepare", oom)
    assert cli.main(["data", "prepare", "netflix", "--source", str(src), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == "mascot data: error: out of memory (nothing was left half-prepared)\n"


@pytest.mark.parametrize("name,fname", [("netflix", "probe.txt"), ("yahoo", "trainIdx1.txt"),
                                        ("yahoo", "validationIdx1.txt"), ("ml10m", "ml-10m.zip")])
def test_fifo_inputs_are_refused(name, fname, tmp_path, root):
    if name == "netflix":
        src = netflix_src(tmp_path, "1:\n10,3,2005-01-01\n12,4,2005-01-02\n")
    elif name == "yahoo":
        src = yahoo_src(tmp_path, "5|1\n1\t50\t3000\t10:00:00\n")
    else:
        src = tmp_path
    fifo = src / fname
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    stop = threading.Event()

    def unblock():  # a reader that opened the FIFO (the old behaviour) gets EOF instead of hanging
        while not stop.wait(0.05):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue

    th = threading.Thread(target=unblock, daemon=True)
    th.start()
    try:
        with pytest.raises(DatasetError, match=f"{fifo}: not a regular file"):
            datasets.prepare(name, src, quiet=True, _pins={})
    finally:
        stop.set()
        th.join()
    assert leftovers(root) == []


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_clean_up(sig, bad_server, root, tmp_path):
    import signal
    import sys

    signum = getattr(signal, sig)
    env = dict(os.environ, MASCOT_DATA=str(root), MASCOT_GROUPLENS_URL=f"{bad_server}/stall")
    p = subprocess.Popen([sys.executable, "-m", "mascot.cli", "data", "prepare", "ml10m", "--quiet"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not list(root.glob(".downloads/.ml-10m.zip.tmp.*")):  # downloading: temporaries exist
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.02)
        assert [x for x in leftovers(root) if x.startswith(".ml10m.tmp.")]
        p.send_signal(signum)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 128 + signum, err
    assert err == f"mascot data: terminated by {sig} (nothing was left half-prepared)\n" and out == ""
    assert leftovers(root) == [] and list((root / ".downloads").iterdir()) == []


def test_data_main_restores_signal_handlers(root):
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    assert cli.main(["data", "list"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_concurrent_prepare_of_the_same_output_is_refused(tmp_path, root, capsys):
    import fcntl

    u, i, r, t = ml_ratings()
    src, _ = ml_src(tmp_path, "ml10m", ml_text("ml10m", u, i, r, t))
    root.mkdir()
    with open(root / ".ml10m.lock", "w") as f:  # another prepare of ml10m holds the lock
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DatasetError, match="another `mascot data prepare` of ml10m is running"):
            datasets.prepare("ml10m", src, quiet=True, _pins={})
        assert not (root / "ml10m").exists()
        datasets.prepare("ml10m", src, quiet=True, out="other", _pins={})  # another output: fine
        assert cli.main(["data", "prepare", "ml10m", "--source", str(src), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "another `mascot data prepare` of ml10m is running" in err and err.count("\n") == 1
    datasets.prepare("ml10m", src, quiet=True, _pins={})
    assert leftovers(root) == []  # the lock file is gone with its holder


def test_target_appearing_during_prepare_is_not_overwritten(tmp_path, root, monkeypatch):
    u, i, r, t = ml_ratings()
    src, _ = ml_src(tmp_path, "ml10m", ml_text("ml10m", u, i, r, t))
    write = data.write_mrat

    def racing(path, rs):  # a run that took no lock finishes first
        if not (root / "ml10m").exists():
            (root / "ml10m").mkdir()
            (root / "ml10m" / "meta.json").write_text('{"theirs": 1}')
        write(path, rs)

    monkeypatch.setattr(_store, "write_mrat", racing)
    with pytest.raises(DatasetError, match="ml10m is already prepared .use --force"):
        datasets.prepare("ml10m", src, quiet=True, _pins={})
    assert (root / "ml10m" / "meta.json").read_text() == '{"theirs": 1}' and leftovers(root) == []
    datasets.prepare("ml10m", src, quiet=True, force=True, _pins={})
    assert "user_ids" in data.meta("ml10m")


def test_stale_temporaries_of_killed_prepares_are_removed(tmp_path, root):
    u, i, r, t = ml_ratings()
    src, _ = ml_src(tmp_path, "ml10m", ml_text("ml10m", u, i, r, t))
    datasets.prepare("ml10m", src, quiet=True, _pins={})
    good = data.meta("ml10m")
    (root / ".ml10m.tmp-abcd_123" / "x").mkdir(parents=True)  # SIGKILLed while preparing
    (root / ".ml10m-fold2.tmp-abcd_123").mkdir()               # another output's: kept
    # SIGKILLed between moving the old set aside and moving the new one in
    (root / ".ml10m.old-zz99_abc").mkdir()
    os.replace(root / "ml10m", root / ".ml10m.old-zz99_abc" / "d")
    with pytest.raises(DatasetError, match="already prepared"):
        datasets.prepare("ml10m", src, quiet=True, _pins={})
    assert data.meta("ml10m") == good  # restored
    assert leftovers(root) == [".ml10m-fold2.tmp-abcd_123"]


def test_pip_fallback_never_prompts_and_times_out(server, root, monkeypatch, capsys):
    url, _, _ = server
    monkeypatch.setenv("MASCOT_GROUPLENS_URL", f"{url}/nowhere")
    seen = {}

    def run(cmd, **kw):
        seen.update(kw, cmd=cmd)
        raise subprocess.TimeoutExpired(cmd, kw.get("timeout"))

    monkeypatch.setattr(_download.subprocess, "run", run)
    with pytest.raises(DownloadError, match=r"pip download recbole==1.2.1 did not finish in \d+ s"):
        datasets.prepare("ml100k", quiet=True)
    assert seen["stdin"] is subprocess.DEVNULL and "--no-input" in seen["cmd"]
    assert seen["cmd"][seen["cmd"].index("--timeout") + 1] == "30" and "--retries" in seen["cmd"]
    assert seen["timeout"] == datasets.PIP_TIMEOUT and leftovers(root) == []
    assert cli.main(["data", "prepare", "ml100k", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mascot data: error: pip download") and err.count("\n") == 1


@pytest.mark.parametrize("name", ["ml10m", "ml25m"])
def test_repeated_pairs_movielens(name, tmp_path, root, monkeypatch):
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 29)
    sep = {"ml10m": "::", "ml25m": ","}[name]
    head = "userId,movieId,rating,timestamp\n" if name == "ml25m" else ""
    rows = ["1{0}2{0}3.0{0}5", "1{0}3{0}3.0{0}5", "2{0}2{0}4.0{0}5", "7{0}9{0}1.0{0}5", "2{0}2{0}5.0{0}6",
            "1{0}3{0}2.0{0}7"]
    src, label = ml_src(tmp_path, name, head + "".join(x.format(sep) + "\n" for x in rows))
    off = 1 if head else 0
    with pytest.raises(DatasetError) as e:
        datasets.prepare(name, src, quiet=True, _pins={})
    assert str(e.value) == (f"{label}:{5 + off}: duplicate rating of user 2, item 2 (first rated at line {3 + off}); "
                            f"2 repeated (user, item) pair(s) in {name} (every pair must be rated once)")
    assert leftovers(root) == []


def test_repeated_pairs_netflix(tmp_path, root, monkeypatch):
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 23)
    src = tmp_path / "nf"
    src.mkdir()
    (src / "combined_data_1.txt").write_text("1:\n10,3,x\n12,4,x\n2:\n10,5,x\n")
    (src / "combined_data_2.txt").write_text("3:\n10,1,x\n2:\n11,2,x\n10,5,x\n")
    (src / "probe.txt").write_text("1:\n10\n")
    with pytest.raises(DatasetError) as e:
        datasets.prepare("netflix", src, quiet=True)
    assert str(e.value).startswith(f"{src / 'combined_data_2.txt'}:5: duplicate rating of CustomerID 10, MovieID 2 "
                                   f"(first rated at {src / 'combined_data_1.txt'}:5); 1 repeated")
    # a stray copy is not read: the exact upstream names only
    (src / "combined_data_2.txt").write_text("3:\n10,1,x\n")
    (src / "combined_data_1 - Copy.txt").write_text("1:\n10,3,x\n12,4,x\n2:\n10,5,x\n")
    (src / "combined_data_5.txt").write_text("1:\n10,3,x\n")
    datasets.prepare("netflix", src, quiet=True)
    assert data.meta("netflix")["total_ratings"] == 4
    # repeated probe pairs
    (src / "probe.txt").write_text("1:\n10\n2:\n10\n1:\n12\n10\n")
    with pytest.raises(DatasetError, match=r"probe.txt:7: duplicate rating of CustomerID 10, MovieID 1 "
                                           r"\(first rated at line 2\); 1 repeated .* in probe.txt"):
        datasets.prepare("netflix", src, quiet=True, force=True)
    assert leftovers(root) == []


def test_netflix_mv_files_must_match_their_names(tmp_path, root):
    src = netflix_src(tmp_path, "1:\n10,3,2005-01-01\n12,4,2005-01-02\n")
    ts = src / "training_set"
    (ts / "mv_0000002.txt").write_text("2:\n10,3,x\n1:\n11,4,x\n")
    with pytest.raises(DatasetError, match=r"mv_0000002.txt:3: MovieID 1 does not match the file name \(expected 2\)"):
        datasets.prepare("netflix", src, quiet=True)
    (ts / "mv_0000002.txt").write_text("2:\n10,3,x\n")
    (ts / "mv_0000001 - Copy.txt").write_text("1:\n10,3,2005-01-01\n")
    (ts / "mv_1.txt").write_text("1:\n10,3,2005-01-01\n")
    datasets.prepare("netflix", src, quiet=True)
    assert data.meta("netflix")["total_ratings"] == 3
    # every rating of movie 1, again, under movie 2's name (and header): a repeat of nothing, but
    # the header must match the name
    (ts / "mv_0000002.txt").write_text("1:\n10,3,2005-01-01\n12,4,2005-01-02\n")
    with pytest.raises(DatasetError, match=r"mv_0000002.txt:1: MovieID 1 does not match"):
        datasets.prepare("netflix", src, quiet=True, force=True)
    assert leftovers(root) == []


def test_repeated_pairs_yahoo(tmp_path, root, monkeypatch):
    monkeypatch.setattr(_parse, "BLOCK_BYTES", 31)
    train = "5|2\n1\t50\t3000\t10:00:00\n2\t60\t3000\t10:00:00\n6|1\n1\t70\t3000\t10:00:00\n"
    src = yahoo_src(tmp_path, train, "6|1\n2\t50\t3000\t10:00:00\n5|1\n2\t10\t3001\t10:00:00\n")
    with pytest.raises(DatasetError) as e:
        datasets.prepare("yahoo", src, quiet=True)
    assert str(e.value) == (f"{src / 'validationIdx1.txt'}:4: duplicate rating of UserId 5, ItemId 2 (first rated at "
                            f"{src / 'trainIdx1.txt'}:3); 1 repeated (user, item) pair(s) in trainIdx1.txt and "
                            "validationIdx1.txt (every pair must be rated once)")
    (src / "trainIdx1.txt").write_text(train + "5|1\n1\t40\t3000\t10:00:00\n")
    (src / "validationIdx1.txt").write_text("6|1\n2\t50\t3000\t10:00:00\n")
    with pytest.raises(DatasetError, match=r"trainIdx1.txt:7: duplicate rating of UserId 5, ItemId 1 \(first rated "
                                           r"at line 2\)"):
        datasets.prepare("yahoo", src, quiet=True)
    assert leftovers(root) == []


def test_seed_and_dataset_specific_options_are_checked_up_front(tmp_path, root, capsys):
    for seed in (-1, True, 1.5, "3"):
        with pytest.raises(DatasetError, match=r"--seed must be an integer >= 0 \(got "):
            datasets.prepare("ml10m", "/nonexistent", seed=seed, quiet=True)
    with pytest.raises(DatasetError, match="--seed applies to the MovieLens sets only"):
        datasets.prepare("netflix", "/nonexistent", seed=7, quiet=True)
    with pytest.raises(DatasetError, match="--index-url applies to ml100k only"):
        datasets.prepare("ml10m", "/nonexistent", index_url="http://127.0.0.1:1/simple", quiet=True)
    for args, what in ((["ml10m", "--seed", "-5"], "--seed must be an integer >= 0 (got -5)"),
                       (["yahoo", "--seed", "1"], "--seed applies to the MovieLens sets only"),
                       (["netflix", "--index-url", "http://x/simple"], "--index-url applies to ml100k only")):
        assert cli.main(["data", "prepare", *args, "--source", "/nonexistent", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mascot data: error: ") and what in err and err.count("\n") == 1
    assert not root.exists()
    # a big seed is fine (numpy takes any integer >= 0) and recorded
    u, i, r, t = ml_ratings()
    src, _ = ml_src(tmp_path, "ml10m", ml_text("ml10m", u, i, r, t))
    datasets.prepare("ml10m", src, seed=2**70, quiet=True, _pins={})
    assert data.meta("ml10m")["split"]["seed"] == 2**70


def test_info_names_and_empty_source_are_checked(tmp_path, root, capsys):
    (tmp_path / "x" / "yahoo").mkdir(parents=True)
    (tmp_path / "x" / "yahoo" / "meta.json").write_text('{"secret": 1}')
    root.mkdir()
    for name in ("../x/yahoo", "..", ".", "", ".downloads"):
        assert cli.main(["data", "info", name]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        assert err.startswith(f"mascot data: error: invalid dataset name {name!r}")
    with pytest.raises(DatasetError, match="--source is empty"):
        datasets.prepare("ml10m", "", quiet=True)
    assert cli.main(["data", "prepare", "yahoo", "--source", "", "--quiet"]) == 2
    assert capsys.readouterr().err == "mascot data: error: --source is empty (give a directory or file)\n"
