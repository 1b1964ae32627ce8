"""Reading upstream rating files: whole-line blocks, the grammar checks, the two parsers.

Data flow: a :class:`Source` (a local file or a zip member, named in errors as ``file`` or
``archive.zip!member``) is read in blocks of whole lines (:func:`blocks`; a line longer than
``MAX_LINE`` is an error, so memory is the output arrays plus one block).  Each block is parsed
by pandas' C parser after NumPy passes that classify the header lines of the block formats and
check the grammar on the bytes (:func:`_fields_ok`: digits only where upstream has digits, no
empty field); on any anomaly the block is re-scanned line by line (:func:`_scan` with a
per-format line checker) to name the first bad line as ``label:line: what``.

Two format families: :class:`FlatFormat` (one rating per line: MovieLens; :func:`parse_flat`)
and :class:`BlockFormat` (a header line naming one id, then lines carrying the other: Netflix,
Yahoo; :func:`parse_blocked`).  The formats themselves are declared by the dataset modules.
Raw ids are int64 (parsed exactly, never through float64); :class:`RatingColumns` narrows them
to int32 where they fit.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._progress import ByteProgress
from ._common import DatasetError

BLOCK_BYTES = 64 << 20  # bytes per parse block
MAX_LINE = 1 << 20  # longest accepted input line in bytes (upstream lines are < 100 bytes)


# ----------------------------------------------------------------------------------------------
# block reading


@dataclass
class Source:
    """One input stream: ``label`` names it in errors (``file`` or ``archive.zip!member``)."""

    label: str
    open: Callable[[], Any]  # a context manager with read() / readline(): a file or a _ZipStream
    size: int | None
    sha256: str = ""
    origin: str = ""


def file_source(path: Path) -> Source:
    return Source(str(path), lambda: open(path, "rb"), path.stat().st_size, origin=str(path))


class _ZipStream:
    """A zip member opened for reading that also closes its archive (no leaked handles)."""

    def __init__(self, zpath: Path, member: str) -> None:
        self._zf = zipfile.ZipFile(zpath)
        try:
            self._f = self._zf.open(member)
        except BaseException:
            self._zf.close()
            raise

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(limit)

    def __enter__(self) -> _ZipStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()
        self._zf.close()


def zip_source(zpath: Path, member: str) -> Source:
    try:
        with zipfile.ZipFile(zpath) as zf:
            size = zf.getinfo(member).file_size
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{zpath}: not a valid zip archive ({e})") from None
    except KeyError:
        raise DatasetError(f"{zpath}: archive has no member {member}") from None
    return Source(f"{zpath.name}!{member}", lambda: _ZipStream(zpath, member), size, origin=str(zpath))


def _too_long(label: str, line: int) -> DatasetError:
    return DatasetError(f"{label}:{line}: line longer than {MAX_LINE:,} bytes (not a ratings file?)")


def _check_line_lengths(label: str, blk: bytes, line: int) -> None:
    """Raises naming the first line of ``blk`` longer than MAX_LINE bytes (its LF not counted).

    A line that long covers a whole aligned window of MAX_LINE // 2 bytes: only windows without
    a LF are looked at, so this costs a few ``find`` calls per block."""
    half = max(MAX_LINE // 2, 1)
    pos = 0
    while pos < len(blk):
        if blk.find(b"\n", pos, pos + half) >= 0:
            pos += half
            continue
        start = blk.rfind(b"\n", 0, pos) + 1
        end = blk.find(b"\n", pos)
        end = len(blk) if end < 0 else end
        if end - start > MAX_LINE:
            raise _too_long(label, line + blk.count(b"\n", 0, start))
        pos = end + 1


def blocks(src: Source, quiet: bool, skip_lines: int = 0) -> Iterator[tuple[bytes, int]]:
    """Yields ``(block, first_line_number)``; blocks end at a line end (the last may not).
    A line longer than MAX_LINE bytes is an error (memory stays bounded without any LF)."""
    prog = ByteProgress(f"parsing {src.label}", src.size, quiet)
    line = 1
    rest = b""
    try:
        with src.open() as f:
            for _ in range(skip_lines):
                first = f.readline(MAX_LINE + 2)
                if len(first) > MAX_LINE and not first.endswith(b"\n"):
                    raise _too_long(src.label, line)
                prog.add(len(first))
                line += 1
            while True:
                try:
                    buf = f.read(BLOCK_BYTES)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise DatasetError(f"{src.label}: cannot read ({e})") from None
                prog.add(len(buf))
                if not buf:
                    if rest:
                        _check_line_lengths(src.label, rest, line)
                        yield rest, line
                    break
                buf = rest + buf
                cut = buf.rfind(b"\n") + 1
                if cut:
                    blk, rest = buf[:cut], buf[cut:]
                    _check_line_lengths(src.label, blk, line)
                    yield blk, line
                    line += blk.count(b"\n")
                else:
                    rest = buf
                if len(rest) > MAX_LINE:  # an unfinished line, already too long: stop buffering
                    raise _too_long(src.label, line)
    finally:
        prog.close()


def split_lines(blk: bytes) -> list[bytes]:
    """The lines of a block without their line ends (LF, or CR LF)."""
    out = blk.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in out]


# ----------------------------------------------------------------------------------------------
# parsers (each returns raw ids as int64 and ratings as float32, in file order)


@dataclass
class RatingColumns:
    """Parsed (user, item, rating) columns, collected block by block; ids narrowed to int32 where
    they fit."""

    users: list = field(default_factory=list)
    items: list = field(default_factory=list)
    ratings: list = field(default_factory=list)

    def add(self, u: np.ndarray, i: np.ndarray, r: np.ndarray) -> None:
        self.users.append(_narrow(u))
        self.items.append(_narrow(i))
        self.ratings.append(np.asarray(r, np.float32))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list, dt) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dt)
        u, i, r = cat(self.users, np.int32), cat(self.items, np.int32), cat(self.ratings, np.float32)
        self.users, self.items, self.ratings = [], [], []
        return u, i, r


def _narrow(a: np.ndarray) -> np.ndarray:
    """int32 when the ids fit (halves the memory of Netflix / Yahoo), else int64."""
    a = np.asarray(a)
    if a.size == 0 or (a.min() >= 0 and a.max() <= np.iinfo(np.int32).max):
        return a.astype(np.int32, copy=False)
    return a.astype(np.int64, copy=False)


# The accepted grammar (the fast path and the line checkers agree on it): ids, Yahoo's counts,
# MovieLens timestamps and Netflix / Yahoo ratings are plain ASCII digits (no sign, blank,
# exponent or empty field); MovieLens ratings may carry one decimal part ("3.5"); free fields
# (Netflix and Yahoo dates / times) are any non-empty text; a CR only right before the LF.  Raw
# ids must be in 0..2^63-1: they are kept as int64 (parsed as integers, never through float64).
INT = rb"[0-9]+"
_NUM = rb"[0-9]+(?:\.[0-9]+)?"
ID_MAX = int(np.iinfo(np.int64).max)
_ID_RANGE = "raw ids must be integers in 0..2^63-1"


def _too_big(digits: bytes) -> bool:
    """Whether a string of ASCII digits exceeds int64 (without int() on a huge string)."""
    d = digits.lstrip(b"0")
    return len(d) > 19 or (len(d) == 19 and int(d) > ID_MAX)


def _out_of_range(what: str, digits: bytes, why: str = _ID_RANGE) -> str:
    shown = digits[:30].decode() + ("..." if len(digits) > 30 else "")
    return f"{what} {shown} out of range ({why})"


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a listed dependency of this module
        raise DatasetError("preparing datasets needs pandas (pip install pandas)") from None
    return pd


def _read_numeric(buf: bytes, sep: str, ncols: int, dtypes: dict[int, str]) -> list[np.ndarray] | None:
    """The C parser on whole lines of ``ncols`` fields, columns ``dtypes`` ("int64": ids, exact;
    "float64": ratings); None on any anomaly (an id beyond int64 included)."""
    pd = _pandas()
    try:
        df = pd.read_csv(io.BytesIO(buf), sep=sep, header=None, names=list(range(ncols)), usecols=list(dtypes),
                         dtype=dtypes, skip_blank_lines=False, quoting=csv.QUOTE_NONE, engine="c",
                         na_filter=True)
    except (ValueError, OverflowError, pd.errors.ParserError):
        return None
    cols = [df[c].to_numpy() for c in dtypes]
    if not all(c.dtype == np.dtype(t) for c, t in zip(cols, dtypes.values())):
        return None
    if not all(np.isfinite(c).all() for c in cols if c.dtype.kind == "f"):  # empty fields (NaN), "inf"
        return None
    return cols


def _fields_ok(buf: bytes, sep: int, nsep: int, nnum: int, dot_field: int = -1) -> bool:
    """Vectorised grammar check of a block of lines: each holds exactly ``nsep`` ``sep`` bytes and
    no empty field, its first ``nnum`` fields are ASCII digits (field ``dot_field`` may hold one
    '.' between digits), a CR only right before the LF.  The C parser alone would take what the
    line checkers refuse (" 10", "+3", "1e1", "3.", "10,3,", TABs in a "::" file)."""
    n = len(buf)
    if n == 0:
        return True
    a = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(a == 10)
    if a[-1] != 10:
        ends = np.append(ends, n)
    starts = np.concatenate(([0], ends[:-1] + 1))
    cr = (ends > starts) & (a[np.maximum(ends - 1, 0)] == 13)
    cend = ends - cr  # content end: a CR before the LF belongs to the line end
    if buf.count(b"\r") != int(np.count_nonzero(cr)):
        return False  # a CR elsewhere (the C parser would end a line there)
    seps = np.flatnonzero(a == sep)
    if len(seps) != len(ends) * nsep:
        return False
    seps = seps.reshape(len(ends), nsep)
    for k in range(nsep + 1):  # no empty field (with the count: nsep separators on every line)
        if np.any((seps[:, k] if k < nsep else cend) <= (starts if k == 0 else seps[:, k - 1] + 1)):
            return False
    allowed = b"0123456789" + bytes([sep]) + (b"." if dot_field >= 0 else b"")
    if nnum > nsep:  # every field numeric
        if buf.translate(None, allowed + b"\r\n"):
            return False
    else:  # the leading nnum fields: from each line start to the separator after them
        table = bytes(0 if b in allowed else 1 for b in range(256))
        idx = np.column_stack((starts, seps[:, nnum - 1])).ravel()
        if np.maximum.reduceat(np.frombuffer(buf.translate(table), np.uint8), idx)[0::2].any():
            return False
    if dot_field >= 0:  # at most one dot per line, inside field dot_field, not at its edges
        dots = np.flatnonzero(a == 46)
        line = np.searchsorted(ends, dots)
        if nnum <= nsep:  # dots in the free fields are free
            keep = dots < seps[line, nnum - 1]
            dots, line = dots[keep], line[keep]
        lo = starts[line] if dot_field == 0 else seps[line, dot_field - 1] + 1
        hi = seps[line, dot_field] if dot_field < nsep else cend[line]
        if not np.all((dots > lo) & (dots < hi - 1)) or np.any(np.diff(line) == 0):
            return False
    return True


def _scan(label: str, blk: bytes, first: int, check: Callable[[bytes], str | None]) -> None:
    """Slow path: names the first line of ``blk`` that ``check`` rejects."""
    for n, ln in enumerate(split_lines(blk)):
        what = check(ln)
        if what:
            raise DatasetError(f"{label}:{first + n}: {what}")


def line_checker(regex: bytes, expected: str, lo: float, hi: float, rating_group: int,
                  id_groups: tuple[tuple[int, str], ...] = ()):
    pat = re.compile(regex)

    def check(ln: bytes) -> str | None:
        m = pat.fullmatch(ln)
        if not m:
            shown = ln[:60].decode("utf-8", "replace")
            return f"expected '{expected}', got {shown!r}" if ln else f"empty line (expected '{expected}')"
        for g, what in id_groups:
            if _too_big(m.group(g)):
                return _out_of_range(what, m.group(g))
        r = float(m.group(rating_group))
        if not lo <= r <= hi:
            return f"rating {r:g} outside [{lo:g}, {hi:g}]"
        return None
    return check


@dataclass(frozen=True)
class FlatFormat:
    """A one-rating-per-line format (MovieLens)."""

    sep: bytes
    expected: str
    lo: float
    hi: float
    header: bytes | None = None  # exact first line, when the format has one

    def regex(self) -> bytes:
        s = re.escape(self.sep)
        return rb"(" + INT + rb")" + s + rb"(" + INT + rb")" + s + rb"(" + _NUM + rb")" + s + INT


def parse_flat(src: Source, fmt: FlatFormat, cols: RatingColumns, quiet: bool, first_line: int = 1) -> None:
    check = line_checker(fmt.regex(), fmt.expected, fmt.lo, fmt.hi, 3, ((1, "user id"), (2, "item id")))
    skip = 0
    if fmt.header is not None:
        with src.open() as f:
            head = f.readline(MAX_LINE + 2).rstrip(b"\r\n")
        if head != fmt.header:
            raise DatasetError(f"{src.label}:{first_line}: expected the header "
                               f"{fmt.header.decode()!r}, got {head[:60].decode('utf-8', 'replace')!r}")
        skip = 1
    for blk, line in blocks(src, quiet, skip):
        # a TAB in a "::" or "," file is no separator (the line checker refuses it)
        ok = fmt.sep == b"\t" or b"\t" not in blk
        buf = blk.replace(fmt.sep, b"\t") if fmt.sep != b"\t" else blk
        # exactly three separators on every line (pandas would silently turn extra leading
        # fields into an index) and the rest of the grammar, checked on the bytes; then the C
        # parser for the numbers (ids as int64, exactly; the timestamp is only checked)
        n_lines = buf.count(b"\n") + (0 if blk.endswith(b"\n") else 1)
        ok = ok and _fields_ok(buf, 9, 3, 4, 2)
        got = _read_numeric(buf, "\t", 4, {0: "int64", 1: "int64", 2: "float64"}) if ok else None
        ok = got is not None and len(got[0]) == n_lines
        if ok:
            u, i, r = got
            ok = bool(np.all((r >= fmt.lo) & (r <= fmt.hi)))
        if not ok:
            _scan(src.label, blk, line + first_line - 1, check)
            raise DatasetError(f"{src.label}:{line + first_line - 1}: malformed data in this block "
                               "(the C parser rejected it but no single line could be blamed)")
        cols.add(u, i, r)


@dataclass(frozen=True)
class BlockFormat:
    """A block format: a header line naming one id, then lines that carry the other id.

    ``marker`` is the byte that only header lines contain; ``nsep`` the number of ``sep`` bytes
    in each data line; ``rating`` whether data lines carry a rating (field 1).
    """

    marker: bytes
    sep: bytes
    nsep: int
    rating: bool
    header_re: bytes
    data_re: bytes
    header_expected: str
    data_expected: str
    lo: float = 0.0
    hi: float = 0.0
    counted: bool = False  # header's group 2 = number of data lines that follow (Yahoo)
    header_id: str = "id"  # what the ids are called in errors
    data_id: str = "id"



class BlockState:
    def __init__(self) -> None:
        self.cur: int | None = None   # id of the current header
        self.declared = 0             # Yahoo: ratings the header announced
        self.seen = 0                 # data lines seen since the header
        self.header_line = 0


def blocked_checker(fmt: BlockFormat, st: BlockState):
    hre, dre = re.compile(fmt.header_re), re.compile(fmt.data_re)

    def check(ln: bytes) -> str | None:
        shown = ln[:60].decode("utf-8", "replace")
        if fmt.marker in ln:
            m = hre.fullmatch(ln)
            if not m:
                return f"expected a header '{fmt.header_expected}', got {shown!r}"
            if _too_big(m.group(1)):
                return _out_of_range(fmt.header_id, m.group(1))
            if fmt.counted and _too_big(m.group(2)):
                return _out_of_range("rating count", m.group(2), "at most 2^63-1")
            st.cur = 1
            return None
        m = dre.fullmatch(ln)
        if not m:
            return f"expected '{fmt.data_expected}' (or a header '{fmt.header_expected}'), got {shown!r}"
        if st.cur is None:
            return f"a '{fmt.data_expected}' line before any '{fmt.header_expected}' header"
        if _too_big(m.group(1)):
            return _out_of_range(fmt.data_id, m.group(1))
        if fmt.rating and not fmt.lo <= float(m.group(2)) <= fmt.hi:
            return f"rating {m.group(2).decode()} outside [{fmt.lo:g}, {fmt.hi:g}]"
        return None
    return check


def _close_block(label: str, fmt: BlockFormat, st: BlockState) -> None:
    if fmt.counted and st.cur is not None and st.seen != st.declared:
        raise DatasetError(f"{label}:{st.header_line}: header announces {st.declared} ratings "
                           f"but {st.seen} follow")


def parse_blocked(src: Source, fmt: BlockFormat, quiet: bool,
                   out: Callable[[np.ndarray, np.ndarray, np.ndarray | None], None],
                   expect_header: int | None = None) -> None:
    """Calls ``out(header_ids, data_ids, ratings)`` per block (one entry per data line).
    ``expect_header``: every header must carry this id (Netflix's mv_NNNNNNN.txt: N)."""
    st = BlockState()
    hre = re.compile(fmt.header_re)
    marker, sep = ord(fmt.marker), ord(fmt.sep)
    for blk, line in blocks(src, quiet):
        a = np.frombuffer(blk, np.uint8)
        ends = np.flatnonzero(a == 10)
        if len(ends) == 0 or ends[-1] != len(a) - 1:
            ends = np.append(ends, len(a))
        starts = np.concatenate(([0], ends[:-1] + 1))
        n = len(ends)
        # per-line counts of the marker and separator bytes: classify lines and check field counts
        is_hdr = np.bincount(np.searchsorted(ends, np.flatnonzero(a == marker)), minlength=n)[:n] > 0
        data = ~is_hdr
        bad = bool(np.any(ends[data] == starts[data]))  # separator counts: _fields_ok on the data lines
        hdr_idx = np.flatnonzero(is_hdr)
        hdr_ids = np.empty(len(hdr_idx), np.int64)
        hdr_cnt = [0] * len(hdr_idx)
        if not bad:
            for j, k in enumerate(hdr_idx):
                hl = blk[starts[k]:ends[k]]
                m = hre.fullmatch(hl[:-1] if hl.endswith(b"\r") else hl)  # as split_lines strips it
                if m is None or _too_big(m.group(1)) or (fmt.counted and _too_big(m.group(2))):
                    bad = True
                    break
                hdr_ids[j] = int(m.group(1))
                hdr_cnt[j] = int(m.group(2)) if fmt.counted else 0
        if not bad and len(hdr_idx) < n and st.cur is None and (len(hdr_idx) == 0 or hdr_idx[0] > 0):
            bad = True  # data before the first header
        vals = None
        if not bad and data.any():
            keep = np.repeat(data, ends - starts + (ends < len(a)))
            body = a[keep].tobytes()
            bad = not _fields_ok(body, sep, fmt.nsep, 2 if fmt.rating else 1)  # the grammar, on the bytes
            if not bad:
                vals = _read_numeric(body, chr(sep), fmt.nsep + 1,
                                     {0: "int64", 1: "float64"} if fmt.rating else {0: "int64"})
                bad = vals is None or len(vals[0]) != int(data.sum())
            if not bad and fmt.rating:  # ids and ratings are digits: only the rating range is left
                bad = not bool(np.all((vals[1] >= fmt.lo) & (vals[1] <= fmt.hi)))
        if bad:
            st2 = BlockState()
            st2.cur = st.cur
            _scan(src.label, blk, line, blocked_checker(fmt, st2))
            raise DatasetError(f"{src.label}:{line}: malformed data in this block "
                               "(the C parser rejected it but no single line could be blamed)")
        if expect_header is not None and np.any(hdr_ids != expect_header):
            j = int(np.argmax(hdr_ids != expect_header))
            raise DatasetError(f"{src.label}:{line + int(hdr_idx[j])}: {fmt.header_id} {int(hdr_ids[j])} does not "
                               f"match the file name (expected {expect_header})")
        # which header each data line belongs to: index 0 = the one carried from the previous block
        carried = st.cur if st.cur is not None else -1
        if fmt.counted:
            st.seen += int(hdr_idx[0]) if len(hdr_idx) else n
            for j, k in enumerate(hdr_idx):
                nxt = int(hdr_idx[j + 1]) if j + 1 < len(hdr_idx) else n
                _close_block(src.label, fmt, st)
                st.cur, st.declared, st.header_line = int(hdr_ids[j]), int(hdr_cnt[j]), line + int(k)
                st.seen = nxt - int(k) - 1
        elif len(hdr_idx):
            st.cur = int(hdr_ids[-1])
        if vals is not None:
            ids = np.concatenate(([carried], hdr_ids))
            owner = np.cumsum(is_hdr)[data]
            out(ids[owner], vals[0], vals[1] if fmt.rating else None)
    if fmt.counted:
        _close_block(src.label, fmt, st)


def data_line(src: Source, fmt: BlockFormat, k: int) -> int:
    """Line number of the ``k``-th (0-based) data line of a parsed block-format file (error
    messages only: one more pass over the file)."""
    for blk, line in blocks(src, True):
        a = np.frombuffer(blk, np.uint8)
        ends = np.flatnonzero(a == 10)
        if len(ends) == 0 or ends[-1] != len(a) - 1:
            ends = np.append(ends, len(a))
        is_hdr = np.bincount(np.searchsorted(ends, np.flatnonzero(a == ord(fmt.marker))),
                             minlength=len(ends))[:len(ends)] > 0
        data = np.flatnonzero(~is_hdr)
        if k < len(data):
            return line + int(data[k])
        k -= len(data)
    raise AssertionError("data line beyond the end of the file")  # pragma: no cover
