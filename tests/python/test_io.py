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
    # exact layout of DESIGN.md §5
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
    assert np.array_equal(back.users, rs.users) and np.array_equal(back.ratings, rs.ratings)


def test_text_tolerates_comments_blank_lines_tabs_crlf(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"# header\n0 1 4.5\r\n\n2\t0\t3\n")
    r = data.read(p)
    assert list(r.users) == [0, 2] and list(r.items) == [1, 0] and list(r.ratings) == [4.5, 3.0]
    assert (r.n_users, r.n_items) == (3, 2)


BAD_TEXT = [
    (b"", "no ratings"),
    (b"0 1 3\n1 2\n", ":2: expected 3 fields"),
    (b"0 1 3 7\n", ":1: expected 3 fields"),
    (b"0 1 abc\n", ":1: rating"),
    (b"0 1 nan\n", ":1: rating"),
    (b"0 1 inf\n", ":1: rating"),
    (b"-1 1 3\n", ":1: user id"),
    (b"0 -4 3\n", ":1: item id"),
    (b"1.5 1 3\n", ":1: user id"),
    (b"x 1 3\n", ":1: user id"),
    (b"3000000000 1 3\n", ":1: user id '3000000000' exceeds"),
]


@pytest.mark.parametrize("content,msg", BAD_TEXT)
def test_bad_text_files(tmp_path, content, msg):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError) as e:
        data.read(p)
    assert msg in str(e.value) and "bad.txt" in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_line_at_the_end_of_a_long_file(tmp_path):
    p = tmp_path / "long.txt"
    with open(p, "w") as f:
        f.write("0 0 1\n" * 100000)
        f.write("0 0\n")
    with pytest.raises(ValueError, match=r"long.txt:100001: expected 3 fields"):
        data.read(p)


def _mrat_bytes(nu=3, ni=2, users=(0, 2), items=(1, 0), ratings=(4.0, 3.0), magic=b"MASCOTR\0", version=1):
    n = len(users)
    return (magic + struct.pack("<IIQQQ", version, 0, nu, ni, n) + struct.pack(f"<{n}i", *users)
            + struct.pack(f"<{n}i", *items) + struct.pack(f"<{n}f", *ratings))


@pytest.mark.parametrize("blob,msg", [
    (_mrat_bytes()[:20], "truncated"),
    (_mrat_bytes()[:-3], "but the file has 61 bytes"),
    (_mrat_bytes() + b"xx", "but the file has 66 bytes"),
    (_mrat_bytes(magic=b"MASCOTX\0"), None),  # not mrat magic -> parsed as text -> error
    (_mrat_bytes(version=2), "version"),
    (_mrat_bytes(users=(0, 5)), "user"),
    (_mrat_bytes(ratings=(float("nan"), 1.0)), "finite"),
])
def test_bad_mrat_files(tmp_path, blob, msg):
    p = tmp_path / "bad.mrat"
    p.write_bytes(blob)
    with pytest.raises(ValueError) as e:
        data.read(p)
    assert "bad.mrat" in str(e.value)
    if msg:
        assert msg in str(e.value)


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(OSError, match="nope.mrat"):
        data.read(tmp_path / "nope.mrat")


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
    m.save(d)
    assert sorted(os.listdir(d)) == ["P.npy", "Q.npy", "model.json"]
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


def test_model_load_mismatched_shapes(tiny, tmp_path):
    u, i, r, nu, ni = tiny
    m = mascot.MF(groups=4, k=4, epochs=1).fit((u, i, r))
    d = tmp_path / "m"
    m.save(d)
    np.save(d / "Q.npy", np.zeros((ni, 5), np.float32))
    with pytest.raises(ValueError, match="k="):
        mascot.MF.load(d)
