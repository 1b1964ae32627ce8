"""Using a trained model: predict / recommend / similar_items with and without id maps, the
training pairs kept for exclude_seen, save/load of both, LIBMF export (Python and
mascot_train), the `mascot recommend` / `mascot evaluate` commands, and bad input."""
import json
import os
import subprocess

import numpy as np
import pytest

import mascot
from mascot import MF
from mascot._inference import SeenPairs, top_n


def hand_model(P, Q, seen=None):
    """An MF with the given factors (and training pairs as (users, items)), without training."""
    m = MF(k=P.shape[1])
    m.P_, m.Q_ = np.asarray(P, np.float32), np.asarray(Q, np.float32)
    if seen is not None:
        m.seen_ = SeenPairs.from_pairs(np.asarray(seen[0]), np.asarray(seen[1]), len(P), len(Q))
    return m


def brute_top_n(P, Q, users, n, seen_sets=None, exclude_self=False):
    """Obviously-correct reference: full scores, excluded items removed, sort by (-score, id)."""
    ids = np.full((len(users), n), -1, np.int64)
    sc = np.full((len(users), n), -np.inf, np.float32)
    for r, u in enumerate(users):
        s = (Q.astype(np.float64) @ P[u].astype(np.float64)).astype(np.float32)
        cand = [j for j in range(len(Q))
                if not (seen_sets and j in seen_sets[u]) and not (exclude_self and j == u)]
        cand.sort(key=lambda j: (-s[j], j))
        for c, j in enumerate(cand[:n]):
            ids[r, c], sc[r, c] = j, s[j]
    return ids, sc


@pytest.fixture
def int_model():
    """Integer-valued factors: every dot product is exact in float32 and ties are common."""
    rng = np.random.default_rng(3)
    nu, ni = 37, 211
    P = rng.integers(-2, 3, size=(nu, 3)).astype(np.float32)
    Q = rng.integers(-2, 3, size=(ni, 3)).astype(np.float32)
    su = rng.integers(0, nu, 900)
    si = rng.integers(0, ni, 900)
    return P, Q, (su, si)


# ---------------------------------------------------------------- recommend
@pytest.mark.parametrize("blocks", [(512, 16384), (7, 13), (1, 1), (5, 211)])
def test_recommend_blocked_equals_brute_force(int_model, blocks):
    P, Q, seen = int_model
    m = hand_model(P, Q, seen)
    sets = [set(seen[1][seen[0] == u].tolist()) for u in range(len(P))]
    users = np.arange(len(P))
    ids, sc = m.recommend(users, n=12, block_users=blocks[0], block_items=blocks[1])
    ref_ids, ref_sc = brute_top_n(P, Q, users, 12, sets)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(sc, ref_sc)
    # without exclusion, and with repeated users
    ids2, sc2 = m.recommend([5, 5, 0], n=30, exclude_seen=False, block_users=blocks[0], block_items=blocks[1])
    ref2, refsc2 = brute_top_n(P, Q, [5, 5, 0], 30)
    np.testing.assert_array_equal(ids2, ref2)
    np.testing.assert_array_equal(sc2, refsc2)


def test_recommend_float_model_matches_numpy(tiny):
    u, i, r, nu, ni = tiny
    m = MF(k=8, epochs=3, threads=1, groups=2).fit((u, i, r))
    ids, sc = m.recommend(np.arange(nu), n=5, block_users=6, block_items=4)
    seen = [set(i[u == x].tolist()) for x in range(nu)]
    for x in range(nu):
        assert not (set(ids[x].tolist()) & seen[x])  # training items are left out
        s = m.Q @ m.P[x]
        order = [j for j in np.argsort(-s, kind="stable") if j not in seen[x]][:5]
        k = len(order)  # a user who rated 21+ of the 25 items has fewer than 5 left
        assert ids[x].tolist() == order + [-1] * (5 - k)
        np.testing.assert_allclose(sc[x, :k], s[order], rtol=1e-5, atol=1e-6)
        assert np.isneginf(sc[x, k:]).all()


def test_recommend_fills_slots_when_few_items_remain():
    P = np.ones((2, 2), np.float32)
    Q = np.arange(10, dtype=np.float32).reshape(5, 2)
    m = hand_model(P, Q, ([0, 0, 0, 1], [0, 1, 4, 0]))
    ids, sc = m.recommend([0, 1], n=4)
    assert ids[0].tolist() == [3, 2, -1, -1] and np.isneginf(sc[0, 2:]).all()
    assert ids[1].tolist() == [4, 3, 2, 1]


def test_recommend_needs_seen_pairs_or_seen_argument():
    P = np.eye(2, dtype=np.float32)
    Q = np.array([[3, 0], [2, 0], [1, 0]], np.float32)
    m = hand_model(P, Q)
    with pytest.raises(ValueError, match="training pairs"):
        m.recommend([0], n=2)
    assert m.recommend([0], n=2, exclude_seen=False)[0].tolist() == [[0, 1]]
    assert m.recommend([0], n=2, seen=([0, 7], [0, 1]))[0].tolist() == [[1, 2]]  # unknown user 7 ignored
    with pytest.raises(ValueError, match="seen= is only used"):
        m.recommend([0], n=2, seen=([0], [0]), exclude_seen=False)


def test_top_n_nan_scores_are_never_returned():
    A = np.array([[1.0, 0.0]], np.float32)
    B = np.array([[np.nan, 0], [1, 0], [2, 0]], np.float32)
    ids, sc = top_n(A, B, 3, None, 1, 2)
    assert ids.tolist() == [[2, 1, -1]] and np.isneginf(sc[0, 2])


# ---------------------------------------------------------------- similar items
@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_similar_items_matches_brute_force(int_model, metric):
    P, Q, _ = int_model
    Q = Q.copy()
    Q[4] = 0  # a zero vector: cosine 0 against everything
    m = hand_model(P, Q)
    items = np.arange(len(Q))
    ids, sc = m.similar_items(items, n=9, metric=metric, block_items=17)
    ties = 0
    if metric == "cosine":
        norm = np.linalg.norm(Q, axis=1)
        Qn = Q / np.where(norm > 0, norm, 1)[:, None]
    else:
        Qn = Q
    for x in items:
        s = (Qn @ Qn[x]).astype(np.float32)
        s[x] = -np.inf  # itself excluded
        assert x not in ids[x]
        np.testing.assert_allclose(sc[x], np.sort(s)[::-1][:9], rtol=1e-6, atol=1e-6)
        # ids: best first; equal scores by smaller id
        assert np.all(np.diff(sc[x]) <= 1e-6)
        np.testing.assert_allclose(s[ids[x]], sc[x], rtol=1e-6, atol=1e-6)
        tie = sc[x][1:] == sc[x][:-1]
        assert np.all(ids[x][1:][tie] > ids[x][:-1][tie])
        ties += int(tie.sum())
    assert np.all(sc[4] == 0)  # the zero vector: cosine 0 with every item
    assert ids[4].tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert ties >= 8  # the tie rule was exercised (the zero vector's row alone has 8)


# ---------------------------------------------------------------- id maps
def test_fit_with_id_maps_predict_recommend_similar_use_raw_ids(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    uids = np.array([f"user-{x}" for x in range(nu)])
    iids = np.arange(ni) * 10 + 1000
    m = MF(k=4, epochs=2, threads=1, groups=2).fit((u, i, r), user_ids=uids, item_ids=iids)
    dense = MF(k=4, epochs=2, threads=1, groups=2).fit((u, i, r))
    assert np.array_equal(m.P, dense.P)  # maps change naming only
    got = m.predict(["user-3", "user-0"], [1000 + 10 * 5, 1000])
    np.testing.assert_array_equal(got, dense.predict([3, 0], [5, 0]))
    ids, sc = m.recommend(["user-2"], n=3)
    dids, dsc = dense.recommend([2], n=3)
    assert ids.tolist() == (dids * 10 + 1000).tolist() and np.array_equal(sc, dsc)
    sids, _ = m.similar_items([1010], n=2)
    assert sids.tolist() == (dense.similar_items([1], n=2)[0] * 10 + 1000).tolist()
    with pytest.raises(ValueError, match=r"user id 'nobody' is not in the model"):
        m.predict(["nobody"], [1000])
    with pytest.raises(ValueError, match=r"item id 5 is not in the model"):
        m.predict(["user-1"], [5])
    with pytest.warns(mascot.UnknownIdWarning, match="skipped 1 user"):
        p = m.predict(["user-1", "nobody"], [1000, 1000], unknown="skip")
    assert np.isfinite(p[0]) and np.isnan(p[1])
    with pytest.warns(mascot.UnknownIdWarning, match="'nobody'"):
        ids, sc = m.recommend(["nobody", "user-1"], n=2, unknown="skip")
    assert ids[0].tolist() == [-1, -1] and np.isneginf(sc[0]).all() and (ids[1] != "").all()
    # round trip: maps and training pairs are saved, numpy.load reads every file
    m.save(tmp_path / "m")
    assert np.array_equal(np.load(tmp_path / "m" / "user_ids.npy"), uids)
    assert np.array_equal(np.load(tmp_path / "m" / "item_ids.npy"), iids)
    m2 = MF.load(tmp_path / "m")
    assert m2.recommend(["user-2"], n=3)[0].tolist() == m.recommend(["user-2"], n=3)[0].tolist()
    assert m2.train_mean_ == pytest.approx(float(np.mean(r)))


def test_id_maps_fix_the_id_space_and_are_checked(tiny):
    u, i, r, nu, ni = tiny
    m = MF(k=2, epochs=1, threads=1, groups=2).fit((u, i, r), user_ids=np.arange(nu + 3) + 500)
    assert m.P.shape[0] == nu + 3  # users without training ratings still get a row
    with pytest.raises(ValueError, match="user_ids has 3 ids but the training data has 40 users"):
        MF(k=2, epochs=1, groups=2).fit((u, i, r), user_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="raw id 7 more than once"):
        MF(k=2, epochs=1, groups=2).fit((u, i, r), item_ids=[7] * ni)
    with pytest.raises(ValueError, match="item_ids has 3 ids but the model has 25 items"):
        m.set_id_maps(item_ids=[1, 2, 3])


def test_dataset_id_maps(tmp_path, monkeypatch):
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path))
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "meta.json").write_text(json.dumps({"user_ids": [10, 20], "item_ids": ["a", "b", "c"]}))
    um, im = mascot.dataset_id_maps("ds")
    assert um.tolist() == [10, 20] and im.tolist() == ["a", "b", "c"]
    m = hand_model(np.ones((2, 1)), np.arange(3, dtype=np.float32)[:, None]).set_id_maps(um, im)
    assert m.predict([20], ["c"]).tolist() == [2.0]
    with pytest.raises(FileNotFoundError, match="not prepared"):
        mascot.dataset_id_maps("missing")


# ---------------------------------------------------------------- persistence of the extras
def test_load_rejects_inconsistent_extra_files(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    m = MF(k=2, epochs=1, threads=1, groups=2).fit((u, i, r), item_ids=np.arange(ni) + 1)
    d = tmp_path / "m"
    m.save(d)
    assert sorted(os.listdir(d)) == ["P.npy", "Q.npy", "item_ids.npy", "model.json", "seen_indices.npy",
                                     "seen_indptr.npy"]
    np.save(d / "item_ids.npy", np.arange(ni - 1))
    with pytest.raises(ValueError, match=r"m: item_ids has 24 ids but the model has 25 items"):
        MF.load(d)
    np.save(d / "item_ids.npy", np.arange(ni))
    (d / "seen_indices.npy").unlink()
    with pytest.raises(ValueError, match="training pairs .* missing"):
        MF.load(d)
    np.save(d / "seen_indices.npy", np.full(len(u), 99, np.int32))
    with pytest.raises(ValueError, match="item index is outside"):
        MF.load(d)
    (d / "seen_indices.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="seen_indices.npy: not a readable .npy"):
        MF.load(d)


def test_model_from_mascot_train_has_no_pairs(trainer_exe, tiny, tmp_path):
    u, i, r, nu, ni = tiny
    mascot.data.write_text(tmp_path / "tr.txt", mascot.data.Ratings(u, i, r, nu, ni))
    res = subprocess.run([trainer_exe, "--train", tmp_path / "tr.txt", "--k", "4", "--epochs", "2", "--quiet",
                          "--groups", "2", "--save", tmp_path / "m", "--export-libmf", tmp_path / "m.libmf"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    m = MF.load(tmp_path / "m")
    assert m.seen_ is None
    with pytest.raises(ValueError, match="training pairs"):
        m.recommend([0])
    assert m.recommend([0], n=3, seen=(u, i))[0].shape == (1, 3)
    # the trainer's LIBMF export: b = mean training rating; predictions reproduce P . Q
    lm = parse_libmf(tmp_path / "m.libmf")
    assert lm["b"] == pytest.approx(float(np.mean(r)), rel=1e-6)
    np.testing.assert_array_equal(lm["P"], m.P)
    np.testing.assert_array_equal(lm["Q"], m.Q)


# ---------------------------------------------------------------- bad input
def test_bad_arguments_give_clear_errors(int_model):
    P, Q, seen = int_model
    m = hand_model(P, Q, seen)
    for n, msg in [(0, "n must be >= 1"), (-3, "n must be >= 1"), (1.5, "n must be an integer"),
                   (True, "n must be an integer"), (212, "exceeds the number of items")]:
        with pytest.raises(ValueError, match=msg):
            m.recommend([0], n=n)
    with pytest.raises(ValueError, match="exceeds the number of other items"):
        m.similar_items([0], n=211)
    with pytest.raises(ValueError, match="users must be one-dimensional"):
        m.recommend([[0, 1]])
    with pytest.raises(ValueError, match="users must be integer ids"):
        m.recommend([0.5])
    with pytest.raises(ValueError, match="users must be integer ids"):
        m.recommend(["a"])
    with pytest.raises(ValueError, match=r"user id 37 is not in the model \(n_users=37\)"):
        m.recommend([1, 37, 99])
    with pytest.raises(ValueError, match="user id -1 is not in the model"):
        m.predict([-1], [0])
    with pytest.raises(ValueError, match="same length"):
        m.predict([0, 1], [0])
    with pytest.raises(ValueError, match="unknown must be one of"):
        m.recommend([0], unknown="ignore")
    with pytest.raises(ValueError, match="metric must be"):
        m.similar_items([0], metric="euclid")
    with pytest.raises(ValueError, match="block_items must be an integer >= 1"):
        m.recommend([0], block_items=0)
    for call in (lambda x: x.recommend([0]), lambda x: x.similar_items([0]), lambda x: x.predict([0], [0]),
                 lambda x: x.export_libmf("x")):
        with pytest.raises(RuntimeError, match="not fitted"):
            call(MF(k=2))


# ---------------------------------------------------------------- LIBMF export
EXPECTED_LIBMF = """\
f 0
m 3
n 2
k 2
b 3.25
p0 T 1 -0.5 
p1 F 0 0 
p2 T 0.100000001 1.00000001e-10 
q0 T 2 0.333333343 
q1 T -1.25 16777216 
"""  # noqa: W291 (LIBMF writes a space after the last value of each row)


def parse_libmf(path):
    """A reader of LIBMF's text model that follows mf_load_model: header tokens, then one
    line per row, "F" rows read as missing (NaN)."""
    with open(path) as f:
        tok = f.read().split("\n")
    head = {}
    for line in tok[:5]:
        key, val = line.split(" ")
        head[key] = val
    assert list(head) == ["f", "m", "n", "k", "b"]
    m_, n_, k = int(head["m"]), int(head["n"]), int(head["k"])
    rows = tok[5:5 + m_ + n_]
    assert tok[5 + m_ + n_:] == [""]  # nothing after the last row's newline
    out = {"f": int(head["f"]), "b": float(head["b"]), "P": np.zeros((m_, k), np.float32),
           "Q": np.zeros((n_, k), np.float32)}
    for idx, line in enumerate(rows):
        assert line.endswith(" ")  # LIBMF writes a space after every value
        parts = line.split()
        name, flag, vals = parts[0], parts[1], parts[2:]
        which, j = ("P", idx) if idx < m_ else ("Q", idx - m_)
        assert name == ("p" if which == "P" else "q") + str(j) and flag in "TF" and len(vals) == k
        out[which][j] = np.nan if flag == "F" else np.array([float(v) for v in vals], np.float32)
    return out


def libmf_predict(lm, u, i):
    """What mf-predict answers for real-valued MF: p . q, or b for an F row / unknown id."""
    if u >= len(lm["P"]) or i >= len(lm["Q"]) or np.isnan(lm["P"][u][0]) or np.isnan(lm["Q"][i][0]):
        return lm["b"]
    return float(np.dot(lm["P"][u], lm["Q"][i]))


def test_export_libmf_matches_hand_written_file(tmp_path):
    P = np.array([[1, -0.5], [7, 7], [0.1, 1e-10]], np.float32)
    Q = np.array([[2, 1 / 3], [-1.25, 2 ** 24]], np.float32)
    m = hand_model(P, Q, ([0, 0, 2, 2], [0, 1, 0, 1]))  # user 1 has no training rating
    m.train_mean_ = 3.25
    out = tmp_path / "model.libmf"
    m.export_libmf(out)
    assert out.read_text() == EXPECTED_LIBMF
    assert sorted(os.listdir(tmp_path)) == ["model.libmf"]  # no temp file left
    lm = parse_libmf(out)
    np.testing.assert_array_equal(lm["P"][[0, 2]], P[[0, 2]])  # %.9g reads back bit-exactly
    np.testing.assert_array_equal(lm["Q"], Q)
    for u in (0, 2):
        for i in (0, 1):
            assert libmf_predict(lm, u, i) == pytest.approx(float(m.predict([u], [i])[0]), rel=1e-6)
    assert libmf_predict(lm, 1, 0) == 3.25


def test_export_libmf_random_model_round_trips(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    m = MF(k=5, epochs=2, threads=1, groups=2).fit((u, i, r))
    m.export_libmf(tmp_path / "x")
    lm = parse_libmf(tmp_path / "x")
    assert (lm["f"], lm["b"]) == (0, pytest.approx(float(np.mean(r))))
    np.testing.assert_array_equal(lm["P"], m.P)
    np.testing.assert_array_equal(lm["Q"], m.Q)


def test_export_libmf_bad_targets(tmp_path):
    m = hand_model(np.ones((1, 1)), np.ones((1, 1)))
    with pytest.raises(OSError):
        m.export_libmf(tmp_path / "missing" / "x")
    m.P_ = np.array([[np.inf]], np.float32)
    with pytest.raises(ValueError, match="user 0 has a non-finite factor"):
        m.export_libmf(tmp_path / "x")
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_trainer_export_libmf_flag_errors(trainer_exe, tmp_path):
    r = subprocess.run([trainer_exe, "--dataset", "synthetic-ml10m:0.001", "--epochs", "1", "--quiet",
                        "--export-libmf", tmp_path / "no" / "x"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.startswith("mascot_train: error: --export-libmf")
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([trainer_exe, "--dataset", "synthetic-ml10m:0.001", "--epochs", "1", "--quiet",
                        "--export-libmf", tmp_path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().endswith("is a directory") and "epoch" not in r.stdout
    r = subprocess.run([trainer_exe, "--help"], capture_output=True, text=True, timeout=60)
    assert "--export-libmf" in r.stdout


# ---------------------------------------------------------------- command line
def test_cli_recommend_and_evaluate(tiny, tmp_path, capsys):
    from mascot.cli import main

    u, i, r, nu, ni = tiny
    m = MF(k=4, epochs=3, threads=1, groups=2).fit((u, i, r))
    m.save(tmp_path / "m")
    assert main(["recommend", str(tmp_path / "m"), "--users", "3,1", "--n", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "user\trank\titem\tscore" and len(lines) == 9
    ids, sc = m.recommend([3, 1], n=4)
    assert [ln.split("\t")[2] for ln in lines[1:5]] == [str(x) for x in ids[0]]
    assert [float(ln.split("\t")[3]) for ln in lines[5:]] == pytest.approx(sc[1].tolist(), rel=1e-5)

    test = mascot.data.Ratings(u[:50], i[:50], r[:50], nu, ni)
    mascot.data.write_text(tmp_path / "te.txt", test)
    assert main(["evaluate", str(tmp_path / "m"), "--test", str(tmp_path / "te.txt"), "--n", "5", "--json",
                 "--include-seen"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = mascot.metrics.evaluate(m, test, n=5, exclude_seen=False)
    assert got == pytest.approx(want, nan_ok=True)
    assert got["rmse"] == pytest.approx(m.rmse(test))

    assert main(["recommend", str(tmp_path / "m"), "--users", "1,999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mascot recommend: error: user id 999 is not in the model (n_users=40)"
    assert main(["recommend", str(tmp_path / "m"), "--users", "1,999", "--skip-unknown", "--n", "2"]) == 0
    cap = capsys.readouterr()
    assert "skipped 1 user id(s) not in the model: 999" in cap.err and len(cap.out.strip().splitlines()) == 3
    assert main(["recommend", str(tmp_path / "m"), "--users", "1", "--n", "0"]) == 2
    assert "n must be >= 1" in capsys.readouterr().err
    assert main(["recommend", str(tmp_path / "m")]) == 2
    assert "--users" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope"), "--test", str(tmp_path / "te.txt")]) != 0
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_recommend_with_dataset_ids_and_text_evaluate(tmp_path, capsys, monkeypatch):
    from mascot.cli import main

    monkeypatch.setenv("MASCOT_DATA", str(tmp_path))
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "meta.json").write_text(json.dumps({"user_ids": ["ann", "bob"], "item_ids": ["x", "y", "z"]}))
    m = hand_model(np.array([[1.0], [-1.0]]), np.array([[1.0], [2.0], [3.0]]), ([0, 1], [0, 2]))
    m.save(tmp_path / "m")
    assert main(["recommend", str(tmp_path / "m"), "--users", "ann,bob", "--n", "3", "--dataset", "ds"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    # ann saw x: z, y, then an empty slot (not printed); bob saw z: x, y
    assert [ln.split("\t")[:3] for ln in lines] == [["ann", "1", "z"], ["ann", "2", "y"], ["bob", "1", "x"],
                                                 ["bob", "2", "y"]]
    with pytest.warns(mascot.UnknownIdWarning):
        ids, sc = MF.load(tmp_path / "m").set_id_maps(["ann", "bob"], ["x", "y", "z"]).recommend(
            ["eve", "ann"], n=3, unknown="skip")
    assert ids.tolist() == [["", "", ""], ["z", "y", ""]] and np.isneginf(sc[1, 2])
    mascot.data.write_text(tmp_path / "te.txt", mascot.data.Ratings(np.array([1], np.int32), np.array([0], np.int32),
                                                                     np.array([2.0], np.float32), 2, 3))
    assert main(["evaluate", str(tmp_path / "m"), "--test", str(tmp_path / "te.txt"), "--n", "1"]) == 0
    out = dict(ln.split(None, 1) for ln in capsys.readouterr().out.strip().splitlines())
    assert float(out["rmse"]) == pytest.approx(3.0) and float(out["precision@1"]) == 1.0
    assert out["users"].strip() == "1"



# ---------------------------------------------------------------- audit regressions
def test_huge_query_ids_are_unknown_not_wrapped(tiny):
    """audit 6: an unsigned or float id outside int64 is not cast around to another id; the
    error names the id as given."""
    u, i, r, nu, ni = tiny
    m = MF(k=4, epochs=1, groups=2).fit((u, i, r), item_ids=np.arange(ni) - 1)  # raw ids -1 .. ni-2
    assert np.isfinite(m.predict([0], [-1])).all()
    with pytest.raises(ValueError, match=r"item id 18446744073709551615 is not in the model"):
        m.predict([0], np.array([2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match=r"item id 1180591620717411303424 is not in the model"):
        m.predict([0], [2**70])
    with pytest.warns(mascot.UnknownIdWarning, match="18446744073709551615"):
        out = m.predict([0, 0], np.array([2**64 - 1, 0], np.uint64), unknown="skip")
    assert np.isnan(out[0]) and np.isfinite(out[1])
    d = MF(k=4, epochs=1, groups=2).fit((u, i, r))
    with pytest.raises(ValueError, match=r"user id 1e\+30 is not in the model"):
        d.predict([1e30], [0])
    with pytest.raises(ValueError, match=r"user id 9223372036854775808 is not in the model"):
        d.recommend(np.array([2**63], np.uint64), n=2)
    with pytest.warns(mascot.UnknownIdWarning):
        ids, sc = d.recommend(np.array([2**64 - 1, 1], np.uint64), n=2, unknown="skip")
    assert ids[0].tolist() == [-1, -1] and (ids[1] >= 0).all()
    # nor are raw ids beyond int64 wrapped when a map is attached
    with pytest.raises(ValueError, match="raw id 18446744073709551615, outside the int64 range"):
        d.set_id_maps(None, np.concatenate([np.arange(ni - 1, dtype=np.uint64), np.array([2**64 - 1], np.uint64)]))


def test_bad_seen_files_are_named(tiny, tmp_path):
    """audit 16: a bad seen_indices.npy is named as such, not blamed on seen_indptr.npy."""
    u, i, r, nu, ni = tiny
    d = tmp_path / "m"
    MF(k=2, epochs=1, groups=2).fit((u, i, r)).save(d)
    good = np.load(d / "seen_indices.npy")
    np.save(d / "seen_indices.npy", good.astype(np.float64))
    with pytest.raises(ValueError, match=r"seen_indices\.npy: must be a 1-D integer array") as e:
        MF.load(d)
    assert "seen_indptr" not in str(e.value)
    np.save(d / "seen_indices.npy", good.reshape(-1, 1))
    with pytest.raises(ValueError, match=r"seen_indices\.npy: must be a 1-D integer array"):
        MF.load(d)
    np.save(d / "seen_indices.npy", good)
    np.save(d / "seen_indptr.npy", np.load(d / "seen_indptr.npy").astype(np.float32))
    with pytest.raises(ValueError, match=r"seen_indptr\.npy: must be a 1-D integer array"):
        MF.load(d)


def test_load_of_mascot_train_model_has_its_parameters(trainer_exe, tiny, tmp_path):
    """audit 4: model.json of mascot_train --save has no "params": they come from the run
    report's config, threads and seed, not the MF defaults."""
    u, i, r, nu, ni = tiny
    mascot.data.write_text(tmp_path / "tr.txt", mascot.data.Ratings(u, i, r, nu, ni))
    res = subprocess.run([trainer_exe, "--train", tmp_path / "tr.txt", "--k", "8", "--epochs", "3", "--quiet",
                          "--groups", "3", "--lr", "0.03", "--method", "mpt", "--threads", "2", "--seed", "7",
                          "--order", "grid", "--save", tmp_path / "m"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "params" not in json.loads((tmp_path / "m" / "model.json").read_text())
    p = MF.load(tmp_path / "m").get_params()
    assert (p["k"], p["method"], p["epochs"], p["user_groups"], p["item_groups"]) == (8, "mpt", 3, 3, 3)
    assert p["lr"] == pytest.approx(0.03) and p["order"] == "grid" and p["seed"] == 7 and p["threads"] == 2
    assert set(p["method_params"]) <= {"loss_scale", "dynamic_loss_scale", "loss_scale_window"}
    # a hand-written report config: checked like params, one line naming model.json
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["report"]["config"]["lr"] = "fast"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model\.json: invalid 'report' \(lr must be a number") as e:
        MF.load(tmp_path / "m")
    assert "\n" not in str(e.value)


def test_unknown_method_params_in_model_json(tiny, tmp_path, capsys):
    """audit 11: a model.json whose method_params names a CompetingParams method (validate) is a
    one-line ValueError for MF.load and for `mascot recommend`, not an AttributeError."""
    from mascot.cli import main
    u, i, r, nu, ni = tiny
    MF(k=2, epochs=1, groups=2).fit((u, i, r)).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["params"]["method_params"] = {"validate": 1}
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model\.json: invalid 'params' \(unknown method parameter 'validate'"):
        MF.load(tmp_path / "m")
    assert main(["recommend", str(tmp_path / "m"), "--users", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown method parameter 'validate'" in err, err


def test_readme_python_snippets_name_preparable_datasets():
    """audit 19: the README's Python examples load datasets under the names `mascot data prepare`
    writes ($MASCOT_DATA/ml10m, not ml-10m)."""
    import pathlib
    import re

    from mascot import datasets
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    names = re.findall(r"(?:mascot\.data\.load|dataset_id_maps|data\.meta)\(\"([^\"]+)\"\)", readme)
    assert names
    for n in names:
        assert n in datasets.DATASETS or mascot._core.parse_synthetic_spec(n) is not None, n
    assert "$MASCOT_DATA/ml-10m" not in readme
