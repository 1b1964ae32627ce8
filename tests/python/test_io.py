"""Rating files (.mrat, text) and model directories: round trips and bad input."""
import os
import struct

import numpy as np
import pytest

import mascot
from mascot import data


def _ratings(tiny):
    u, i, r, nu, ni = tiny
    return data.Ratings.from_arrays(u, i, r)


def test_mrat_round_trip(tiny, tmp_path):
    rs = _ratings(tiny)
    p = tmp_path / "a.mrat"
    data.write_mrat(p, rs)
    back = data.read(p)
    assert (back.n_users, back.n_items) == (rs.n_users, rs.n_items)
    assert np.array_equal(back.users, rs.users) and np.array_equal(back.items, rs.items)
    assert np.array_equal(back.ratings, rs.ratings)
    # exact layout of docs/design.md §5
    raw = p.read_bytes()
    assert raw[:8] == b"MASCOTR\0"
    assert struct.unpack("<IIQQQ", raw[8:40]) == (1, 0, rs.n_users, rs.n_items, len(rs))
    assert len(raw) == 40 + 12 * len(rs)
    assert [f for f in os.listdir(tmp_path)] == ["a.mrat"]  # no temp files left


def test_text_round_trip(tiny, tmp_path):
    rs = data.Ratings.from_arrays(tiny[0], tiny[1], tiny[2] + np.float32(0.123456789))
    p = tmp_path / "a.txt"
    data.write_text(p, rs)
    back = data.read(p)
    assert np.array_equal(back.users, rs.users) and np.array_equal(back.items, rs.items)
    assert np.array_equal(back.ratings, rs.ratings)
    assert (back.n_users, back.n_items) == (rs.n_users, rs.n_items)


def test_text_tolerates_comments_blank_lines_tabs_crlf(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"# header\n0 1 4.5\r\n\n2\t0\t3\n")
    r = data.read(p)
    assert list(r.users) == [0, 2] and list(r.items) == [1, 0] and list(r.ratings) == [4.5, 3.0]
    assert (r.n_users, r.n_items) == (3, 2)


# Malformed rating files, model directories and long files with a bad last line: the
# bad-input corpus, tests/python/test_bad_input_corpus.py (through Python and mascot_train).


def test_unwritable_target_leaves_nothing(tmp_path, tiny):
    with pytest.raises(OSError):
        data.write_mrat(tmp_path / "no" / "such" / "dir" / "a.mrat", _ratings(tiny))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [
    ([0, -1], [0, 1], [1.0, 2.0], ">= 0"),
    ([0, 2 ** 31], [0, 1], [1.0, 2.0], "int32"),
    ([0, 1.5], [0, 1], [1.0, 2.0], "integer"),
    ([0, 1], [0, 1], [1.0, float("nan")], "finite"),
    ([0, 1], [0], [1.0, 2.0], "same length"),
])
def test_bad_arrays(bad):
    u, i, r, msg = bad
    with pytest.raises(ValueError, match=msg):
        mascot.MF(groups=4, k=4, epochs=1).fit((np.array(u), np.array(i), np.array(r)))


def test_model_directory_round_trip(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    m = mascot.MF(k=8, epochs=2, threads=1, groups=2).fit((u, i, r))
    d = tmp_path / "model"
    m.save(d)  # a fitted model also keeps its training pairs (for recommend's exclude_seen)
    assert sorted(os.listdir(d)) == ["P.npy", "Q.npy", "model.json", "seen_indices.npy", "seen_indptr.npy"]
    assert np.array_equal(np.load(d / "P.npy"), m.P) and np.array_equal(np.load(d / "Q.npy"), m.Q)
    back = mascot.MF.load(d)
    assert np.array_equal(back.predict(u, i), m.predict(u, i))
    assert back.k == 8 and back.report_["config"]["k"] == 8
    m.save(d)  # replacing an existing model is allowed
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_model_save_refuses_foreign_directory(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    m = mascot.MF(groups=4, k=4, epochs=1).fit((u, i, r))
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "precious.txt").write_text("keep me")
    with pytest.raises(OSError, match="refusing"):
        m.save(d)
    assert os.listdir(d) == ["precious.txt"]
    with pytest.raises(OSError):
        m.save(tmp_path / "missing-parent" / "model")
    assert sorted(os.listdir(tmp_path)) == ["stuff"]
