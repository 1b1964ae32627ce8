"""Real datasets: download / read upstream files and prepare them for training.

``mascot data prepare NAME`` (or :func:`prepare`) writes
``$MASCOT_DATA/<out>/{train.mrat,test.mrat,meta.json}`` (DESIGN.md §5); ``mascot_train --dataset
<out>`` and :func:`mascot.data.load` read them.

Datasets and sources (the exact upstream formats):

=========  =====================================================================================
ml100k     GroupLens ``ml-100k.zip`` -> ``ml-100k/u.data`` (``user<TAB>item<TAB>rating<TAB>time``).
           When GroupLens cannot be reached: PyPI's ``recbole==1.2.1`` wheel (downloaded alone by
           pip, not installed) -> ``recbole/dataset_example/ml-100k/ml-100k.inter`` (the same lines
           after a header).  The zip is checked against GroupLens' MD5, the wheel and its ratings
           against pinned SHA-256s; either way it must hold 943 users, 1,682 items and 100,000
           ratings.
ml10m      GroupLens ``ml-10m.zip`` -> ``ml-10M100K/ratings.dat`` (``UserID::MovieID::Rating::Timestamp``).
ml25m      GroupLens ``ml-25m.zip`` -> ``ml-25m/ratings.csv`` (header ``userId,movieId,rating,timestamp``).
netflix    ``--source DIR``: ``training_set/mv_NNNNNNN.txt`` (7 digits; the file's one header
           must be ``N:``) or ``combined_data_[1-4].txt`` (blocks of ``MovieID:`` then
           ``CustomerID,Rating,Date``; other names are not read) and ``probe.txt`` (blocks of
           ``MovieID:`` then ``CustomerID``).  Test = the probe ratings (looked up in the
           training files), train = the rest.
yahoo      ``--source DIR``: KDD Cup 2011 Track 1 ``trainIdx1.txt`` / ``validationIdx1.txt`` (blocks
           of ``UserId|NumRatings`` then ``ItemId<TAB>Score<TAB>Date<TAB>Time``).  Scores 0..100 are
           mapped to ``r/25 + 1`` (1..5) unless ``raw_scale`` (``--raw-scale``) keeps them.
=========  =====================================================================================

Splits: MovieLens sets get 5 seeded folds (a seeded permutation of all ratings cut into five
equal parts; fold f is the test set, the rest train: 80/20).  Fold 1 is prepared as ``<name>``,
fold f > 1 as ``<name>-fold<f>`` (``ml10m``, ``ml10m-fold2``, ...), unless ``out`` names it.
Netflix and Yahoo use the provided split.  Test ratings whose user or item never occurs in
train are dropped and counted (``meta.json`` ``counts.test_dropped``).

Every (user, item) pair must be rated once: a repeated pair (a file read twice, a corrupt file;
in Yahoo's train and validation files together; in probe.txt) is an error naming its line.  The
upstream files hold no repeats.

Ids: dense 0-based, assigned in increasing raw-id order over the *training* ratings;
``meta.json`` keeps ``user_ids[d]`` / ``item_ids[d]`` = the raw upstream id of dense id ``d``.
Raw ids are plain digits in 0..2^63-1 (int64, parsed exactly); a larger one is an error.  A set
without training ratings (an empty file, every Netflix rating in probe.txt) is an error.

Data flow: source bytes (downloaded archive, zip member or local file) are read in blocks of
whole lines; each block is parsed by pandas' C parser (after numpy passes that classify the
header lines of the block formats and check the grammar on the bytes: digits only where upstream
has digits, no empty field), so memory is the output arrays plus one block.  On any
anomaly the block is re-scanned line by line to name the first bad line as ``path:line: what``
(``archive.zip!member:line: what`` inside archives); a line longer than ``MAX_LINE`` (1 MiB) is an
error.  Input files must be regular files (a FIFO or device is refused).  Everything is written
into a temporary directory beside the target that is renamed into place at the end; on any error
(checksum mismatch, malformed line, interruption) it is removed.  One prepare of an output
directory runs at a time (an ``flock`` on ``$MASCOT_DATA/.<out>.lock``; a second one fails at
once) and it removes what a killed earlier one left behind.  Verified downloads are cached in
``$MASCOT_DATA/.downloads``; a download that stalls (less than ``DOWNLOAD_MIN_BYTES`` in
``DOWNLOAD_WINDOW`` seconds) or gets a broken HTTP response fails (ml100k then falls back to pip,
which gets ``PIP_TIMEOUT`` seconds and never prompts).

Network endpoints are overridable (for tests and mirrors): ``MASCOT_GROUPLENS_URL`` (base URL of
the MovieLens zips) and ``MASCOT_PYPI_INDEX_URL`` (a PEP 503 "simple" index for the fallback);
they are checked to be URLs before anything is fetched.
"""
from __future__ import annotations

import csv
import datetime as _dt
import glob
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

try:  # POSIX: one `prepare` per output directory at a time (an advisory lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

from . import _files
from . import data as _data
from ._arrays import sorted_unique

FORMAT_VERSION = 1
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
RECBOLE_HEADER = b"user_id:token\titem_id:token\trating:float\ttimestamp:float"
DEFAULT_SEED = 42
N_FOLDS = 5

# Pinned checksums.  GroupLens publishes MD5 sums of its zips (ml-100k.zip.md5 etc.; no SHA-256);
# the SHA-256 of the recbole wheel and of its ratings content ("u.data": the .inter file's
# 1,979,173 bytes after its 57-byte header, 100,000 lines `user item rating timestamp`) were
# computed from the PyPI wheel.  The u.data pin guards the fallback only: the GroupLens zip is
# pinned by its MD5, and its u.data's SHA-256 is recorded, not compared (GroupLens could not be
# reached to confirm the two files are byte-identical).
PINS: dict[str, tuple[str, str]] = {
    "ml-100k.zip": ("md5", "0e33842e24a9c977be4e0107933c0723"),
    "ml-10m.zip": ("md5", "ce571fd55effeba0271552578f2648bd"),
    "ml-25m.zip": ("md5", "6b51fb2759a8657d3bfcbfc42b592ada"),
    RECBOLE_WHEEL: ("sha256", "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"),
    "u.data": ("sha256", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
}
ML100K_COUNTS = (943, 1682, 100_000)

_BLOCK = 64 << 20  # bytes per parse block
MAX_LINE = 1 << 20  # longest accepted input line in bytes (upstream lines are < 100 bytes)

# Downloads: the socket timeout bounds each read; a transfer slower than DOWNLOAD_MIN_BYTES per
# DOWNLOAD_WINDOW seconds (a server dripping bytes) is aborted.  pip (the ml100k fallback) gets
# PIP_TIMEOUT seconds in all.  Module constants, so tests can shrink them.
DOWNLOAD_TIMEOUT = 30.0
DOWNLOAD_WINDOW = 60.0
DOWNLOAD_MIN_BYTES = 16 << 10
PIP_TIMEOUT = 600.0


class DatasetError(ValueError):
    """Bad input (malformed file, checksum mismatch, missing source): exit code 2 in the CLI."""


class DownloadError(OSError):
    """A source could not be fetched (network, pip): exit code 1 in the CLI."""


# ----------------------------------------------------------------------------------------------
# progress and hashing


class _Progress:
    """A self-overwriting progress line on stderr (throttled; silent when ``quiet``)."""

    def __init__(self, label: str, total: int | None, quiet: bool, unit: str = "MB") -> None:
        self.label, self.total, self.quiet, self.unit = label, total, quiet, unit
        self.done = 0
        self._last = 0.0
        self._t0 = time.monotonic()
        # redrawn in place on a terminal; one final line only when stderr is a file or pipe
        self._tty = sys.stderr.isatty()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if not self.quiet and self._tty and now - self._last >= 0.5:
            self._last = now
            self._print("\r")

    def _print(self, end: str) -> None:
        mb = self.done / 1e6
        if self.total:
            pct = 100.0 * self.done / self.total
            msg = f"{self.label}: {mb:,.1f}/{self.total / 1e6:,.1f} MB ({pct:5.1f}%)"
        else:
            msg = f"{self.label}: {mb:,.1f} MB"
        lead = "\r" if self._tty else ""
        sys.stderr.write(f"{lead}{msg} {time.monotonic() - self._t0:6.1f} s" + ("\n" if end == "\n" else ""))
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet:
            self._print("\n")


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def _verify(path: Path, key: str, pins: dict[str, tuple[str, str]]) -> str:
    """Checks ``path`` against ``pins[key]``; returns its SHA-256 (recorded in meta.json)."""
    sha = _file_digest(path, "sha256")
    if key in pins:
        algo, want = pins[key]
        got = sha if algo == "sha256" else _file_digest(path, algo)
        if got != want:
            raise DatasetError(f"{path.name}: checksum mismatch ({algo} {got}, expected {want}); "
                               "the file is corrupt or not the expected release")
    return sha


# ----------------------------------------------------------------------------------------------
# block reading


@dataclass
class _Source:
    """One input stream: ``label`` names it in errors (``file`` or ``archive.zip!member``)."""

    label: str
    open: Callable[[], Any]  # a context manager with read() / readline(): a file or a _ZipStream
    size: int | None
    sha256: str = ""
    origin: str = ""


def _file_source(path: Path) -> _Source:
    return _Source(str(path), lambda: open(path, "rb"), path.stat().st_size, origin=str(path))


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

    def __enter__(self) -> "_ZipStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()
        self._zf.close()


def _zip_source(zpath: Path, member: str) -> _Source:
    try:
        with zipfile.ZipFile(zpath) as zf:
            size = zf.getinfo(member).file_size
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{zpath}: not a valid zip archive ({e})") from None
    except KeyError:
        raise DatasetError(f"{zpath}: archive has no member {member}") from None
    return _Source(f"{zpath.name}!{member}", lambda: _ZipStream(zpath, member), size, origin=str(zpath))


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


def _blocks(src: _Source, quiet: bool, skip_lines: int = 0) -> Iterator[tuple[bytes, int]]:
    """Yields ``(block, first_line_number)``; blocks end at a line end (the last may not).
    A line longer than MAX_LINE bytes is an error (memory stays bounded without any LF)."""
    prog = _Progress(f"parsing {src.label}", src.size, quiet)
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
                    buf = f.read(_BLOCK)
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


def _lines(blk: bytes) -> list[bytes]:
    out = blk.split(b"\n")
    if out and out[-1] == b"":
        out.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in out]


# ----------------------------------------------------------------------------------------------
# parsers (each returns raw ids as int64 and ratings as float32, in file order)


@dataclass
class _Cols:
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
_INT = rb"[0-9]+"
_NUM = rb"[0-9]+(?:\.[0-9]+)?"
_ID_MAX = int(np.iinfo(np.int64).max)
_ID_RANGE = "raw ids must be integers in 0..2^63-1"


def _too_big(digits: bytes) -> bool:
    """Whether a string of ASCII digits exceeds int64 (without int() on a huge string)."""
    d = digits.lstrip(b"0")
    return len(d) > 19 or (len(d) == 19 and int(d) > _ID_MAX)


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
    for n, ln in enumerate(_lines(blk)):
        what = check(ln)
        if what:
            raise DatasetError(f"{label}:{first + n}: {what}")


def _line_checker(regex: bytes, expected: str, lo: float, hi: float, rating_group: int,
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
class _Flat:
    """A one-rating-per-line format (MovieLens)."""

    sep: bytes
    expected: str
    lo: float
    hi: float
    header: bytes | None = None  # exact first line, when the format has one

    def regex(self) -> bytes:
        s = re.escape(self.sep)
        return rb"(" + _INT + rb")" + s + rb"(" + _INT + rb")" + s + rb"(" + _NUM + rb")" + s + _INT


def _parse_flat(src: _Source, fmt: _Flat, cols: _Cols, quiet: bool, first_line: int = 1) -> None:
    check = _line_checker(fmt.regex(), fmt.expected, fmt.lo, fmt.hi, 3, ((1, "user id"), (2, "item id")))
    skip = 0
    if fmt.header is not None:
        with src.open() as f:
            head = f.readline(MAX_LINE + 2).rstrip(b"\r\n")
        if head != fmt.header:
            raise DatasetError(f"{src.label}:{first_line}: expected the header "
                               f"{fmt.header.decode()!r}, got {head[:60].decode('utf-8', 'replace')!r}")
        skip = 1
    for blk, line in _blocks(src, quiet, skip):
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
class _Blocked:
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


# The date / time fields are only counted, not parsed (nothing downstream uses them).
NETFLIX_RATINGS = _Blocked(b":", b",", 2, True, rb"(" + _INT + rb"):",
                           rb"(" + _INT + rb"),([0-9]+),[^,\r]+",
                           "MovieID:", "CustomerID,Rating,Date", 1, 5, header_id="MovieID", data_id="CustomerID")
NETFLIX_PROBE = _Blocked(b":", b",", 0, False, rb"(" + _INT + rb"):", rb"(" + _INT + rb")",
                         "MovieID:", "CustomerID", header_id="MovieID", data_id="CustomerID")
YAHOO = _Blocked(b"|", b"\t", 3, True, rb"(" + _INT + rb")\|(" + _INT + rb")",
                 rb"(" + _INT + rb")\t([0-9]+)\t[^\t\r]+\t[^\t\r]+",
                 "UserId|NumRatings", "ItemId<TAB>Score<TAB>Date<TAB>Time", 0, 100, counted=True,
                 header_id="UserId", data_id="ItemId")


class _BlockState:
    def __init__(self) -> None:
        self.cur: int | None = None   # id of the current header
        self.declared = 0             # Yahoo: ratings the header announced
        self.seen = 0                 # data lines seen since the header
        self.header_line = 0


def _blocked_checker(fmt: _Blocked, st: _BlockState):
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


def _close_block(label: str, fmt: _Blocked, st: _BlockState) -> None:
    if fmt.counted and st.cur is not None and st.seen != st.declared:
        raise DatasetError(f"{label}:{st.header_line}: header announces {st.declared} ratings "
                           f"but {st.seen} follow")


def _parse_blocked(src: _Source, fmt: _Blocked, quiet: bool,
                   out: Callable[[np.ndarray, np.ndarray, np.ndarray | None], None],
                   expect_header: int | None = None) -> None:
    """Calls ``out(header_ids, data_ids, ratings)`` per block (one entry per data line).
    ``expect_header``: every header must carry this id (Netflix's mv_NNNNNNN.txt: N)."""
    st = _BlockState()
    hre = re.compile(fmt.header_re)
    marker, sep = ord(fmt.marker), ord(fmt.sep)
    for blk, line in _blocks(src, quiet):
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
                m = hre.fullmatch(hl[:-1] if hl.endswith(b"\r") else hl)  # as _lines strips it
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
            st2 = _BlockState()
            st2.cur = st.cur
            _scan(src.label, blk, line, _blocked_checker(fmt, st2))
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


def _data_line(src: _Source, fmt: _Blocked, k: int) -> int:
    """Line number of the ``k``-th (0-based) data line of a parsed block-format file (error
    messages only: one more pass over the file)."""
    for blk, line in _blocks(src, True):
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


def _pair_keys(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """One int64 key per (user, item) pair of all ``parts``, equal exactly for equal pairs."""
    umax = max((int(u.max(initial=0)) for u, _ in parts), default=0)
    imax = max((int(i.max(initial=0)) for _, i in parts), default=0)
    if (umax + 1) * (imax + 1) > _ID_MAX:  # huge raw ids: dense ones (not the real data sets)
        cut = np.cumsum([len(u) for u, _ in parts])[:-1]
        _, du = _dense(np.concatenate([u for u, _ in parts]).astype(np.int64))
        _, di = _dense(np.concatenate([i for _, i in parts]).astype(np.int64))
        parts = list(zip(np.split(du, cut), np.split(di, cut)))
        umax = int(du.max(initial=0))
    span = umax + 1
    key = np.empty(sum(len(u) for u, _ in parts), np.int64)
    off = 0
    for u, i in parts:
        seg = key[off:off + len(u)]
        seg[:] = i
        seg *= span
        seg += u
        off += len(u)
    return key


def _check_unique_pairs(parts: list[tuple[np.ndarray, np.ndarray]], where: Callable[[int], tuple[str, int]],
                        names: tuple[str, str], what: str) -> None:
    """DatasetError when a (user, item) pair occurs twice among ``parts`` (concatenated): names
    the first repeated rating by ``where(k) = (file, line)`` (k: its index in the concatenation),
    where the pair occurred first, and the number of repeats.  Upstream files rate each pair
    once; a repeat means a file read twice or a corrupt file.  Costs one sort of int64 keys."""
    key = _pair_keys(parts)
    key.sort()
    n = int(np.count_nonzero(key[1:] == key[:-1]))
    if n == 0:
        return
    key = _pair_keys(parts)  # the error path: which rating repeats which
    order = np.argsort(key, kind="stable")
    sk = key[order]
    rep = np.flatnonzero(sk[1:] == sk[:-1]) + 1
    k = int(order[rep].min())  # the first rating that repeats an earlier one
    first = int(np.argmax(key == key[k]))
    off = np.cumsum([0] + [len(u) for u, _ in parts])
    p = int(np.searchsorted(off, k, side="right")) - 1
    u, i = int(parts[p][0][k - off[p]]), int(parts[p][1][k - off[p]])
    (lab, line), (lab0, line0) = where(k), where(first)
    at = f"line {line0}" if lab0 == lab else f"{lab0}:{line0}"
    raise DatasetError(f"{lab}:{line}: duplicate rating of {names[0]} {u}, {names[1]} {i} (first rated at {at}); "
                       f"{n:,} repeated (user, item) pair(s) in {what} (every pair must be rated once)")


# ----------------------------------------------------------------------------------------------
# id remapping and splits


def _dense(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(raw_ids_sorted, dense)``: dense 0-based ids in increasing raw-id order.

    Bounded ids (all MovieLens / Netflix / Yahoo ids) use an O(n) lookup table; others np.unique.
    """
    if ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < max(4 * ids.size, 1 << 20):
        present = np.zeros(hi + 1, bool)
        present[ids] = True
        raw = np.flatnonzero(present)
        lut = np.cumsum(present, dtype=np.int64).astype(np.int32) - 1
        return raw.astype(np.int64), lut[ids]
    raw, inv = np.unique(ids, return_inverse=True)
    return raw.astype(np.int64), inv.astype(np.int32)


def _lookup(raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Dense id of each of ``ids`` in the sorted ``raw``, or -1 when absent."""
    if raw.size == 0:
        return np.full(ids.shape, -1, np.int32)
    pos = np.searchsorted(raw, ids)
    pos_c = np.minimum(pos, raw.size - 1)
    return np.where(raw[pos_c] == ids, pos_c, -1).astype(np.int32)


@dataclass
class _Prepared:
    train: _data.Ratings
    test: _data.Ratings
    user_ids: np.ndarray
    item_ids: np.ndarray
    dropped: int


def _finish(tr_u, tr_i, tr_r, te_u, te_i, te_r) -> _Prepared:
    """Dense ids from the training ratings; drops test ratings of unseen users / items."""
    user_ids, du = _dense(tr_u)
    del tr_u
    item_ids, di = _dense(tr_i)
    del tr_i
    tu, ti = _lookup(user_ids, te_u), _lookup(item_ids, te_i)
    keep = (tu >= 0) & (ti >= 0)
    nu, ni = len(user_ids), len(item_ids)
    train = _data.Ratings(du, di, np.ascontiguousarray(tr_r, np.float32), nu, ni)
    test = _data.Ratings(np.ascontiguousarray(tu[keep]), np.ascontiguousarray(ti[keep]),
                         np.ascontiguousarray(te_r[keep], np.float32), nu, ni)
    return _Prepared(train, test, user_ids, item_ids, int((~keep).sum()))


def fold_indices(n: int, fold: int, seed: int = DEFAULT_SEED, folds: int = N_FOLDS) -> np.ndarray:
    """Boolean mask of the test ratings of ``fold`` (1-based) in a seeded ``folds``-way split.

    A seeded permutation of ``range(n)`` cut into ``folds`` near-equal parts: the folds are
    disjoint, cover every rating, and depend only on ``(n, seed)``.
    """
    if not 1 <= fold <= folds:
        raise DatasetError(f"fold must be in 1..{folds} (got {fold})")
    perm = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, bool)
    mask[perm[(fold - 1) * n // folds: fold * n // folds]] = True
    return mask


def _split_folds(u, i, r, fold: int, seed: int) -> _Prepared:
    test = fold_indices(len(r), fold, seed)
    train = ~test
    return _finish(u[train], i[train], r[train], u[test], i[test], r[test])


# ----------------------------------------------------------------------------------------------
# downloads


def grouplens_url() -> str:
    """Base URL of the MovieLens zips: ``$MASCOT_GROUPLENS_URL`` or GroupLens' own."""
    return os.environ.get("MASCOT_GROUPLENS_URL") or GROUPLENS_URL


def check_url(url: str, what: str) -> str:
    """``url`` when it is a usable http(s), ftp or file URL, else a DatasetError naming ``what``
    (a mirror URL is checked once, up front, not deep inside a download)."""
    why = None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        parts, why = None, str(e)
    if why is None:
        if not url:
            why = "empty"
        elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            why = "contains whitespace or control characters"
        elif parts.scheme not in ("http", "https", "ftp", "file"):
            why = "expected an http://, https://, ftp:// or file:// URL"
        elif parts.scheme != "file" and not parts.hostname:
            why = "no host name"
        else:
            try:
                parts.port  # a port that is no number: ValueError
            except ValueError as e:
                why = str(e)
    if why:
        raise DatasetError(f"{what}: invalid URL {url!r} ({why})")
    return url


def _download(url: str, dest: Path, quiet: bool, timeout: float | None = None) -> None:
    """Fetches ``url`` into ``dest`` (written as ``dest.part`` then renamed).  Each read waits at
    most ``timeout`` (DOWNLOAD_TIMEOUT) seconds; fewer than DOWNLOAD_MIN_BYTES bytes in
    DOWNLOAD_WINDOW seconds abort the transfer."""
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT if timeout is None else timeout) as resp:
            total = resp.headers.get("Content-Length")
            prog = _Progress(f"downloading {url}", int(total) if total else None, quiet)
            read = getattr(resp, "read1", resp.read)  # read1: returns what has arrived (progress checks)
            window, t_win = 0, time.monotonic()
            try:
                with open(part, "wb") as f:
                    for blk in iter(lambda: read(1 << 16), b""):
                        f.write(blk)
                        prog.add(len(blk))
                        window += len(blk)
                        now = time.monotonic()
                        if now - t_win >= DOWNLOAD_WINDOW:
                            if window < DOWNLOAD_MIN_BYTES:
                                raise DownloadError(f"cannot download {url}: too slow (less than "
                                                    f"{DOWNLOAD_MIN_BYTES:,} bytes in {DOWNLOAD_WINDOW:g} s)")
                            window, t_win = 0, now
            finally:
                prog.close()
            if total and part.stat().st_size != int(total):
                raise DownloadError(f"{url}: download truncated ({part.stat().st_size} of {total} bytes)")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        if isinstance(e, DownloadError):
            raise
        why = getattr(e, "reason", None) or str(e) or type(e).__name__
        if isinstance(e, http.client.HTTPException):
            name, text = type(e).__name__, str(e)
            why = f"bad HTTP response ({text if text.startswith(name) else name + (': ' + text if text else '')})"
        why = " ".join(str(why).split())  # one line, whatever the server sent
        raise DownloadError(f"cannot download {url}: {why[:300]}") from None
    os.replace(part, dest)


def _cache_dir(root: Path) -> Path:
    d = root / ".downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _fetch_verified(name: str, url: str, root: Path, pins: dict, quiet: bool) -> tuple[Path, str]:
    """A verified copy of ``name`` in the download cache (re-verified when already there)."""
    cached = _cache_dir(root) / name
    if cached.exists():
        try:
            return cached, _verify(cached, name, pins)
        except DatasetError:
            cached.unlink()  # a stale or corrupt copy: fetch again
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=cached.parent))
    try:
        got = tmp / name
        _download(url, got, quiet)
        sha = _verify(got, name, pins)
        os.replace(got, cached)
        return cached, sha
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_download_recbole(dest: Path, index_url: str | None, quiet: bool) -> Path:
    """``pip download recbole==1.2.1`` alone (no dependencies, wheel only) into ``dest``."""
    # --no-input and no stdin: pip never waits at a (hidden) credentials prompt; bounded retries
    cmd = [sys.executable, "-m", "pip", "download", f"recbole=={RECBOLE_VERSION}", "--no-deps",
           "--only-binary=:all:", "--no-cache-dir", "--no-input", "--timeout", "30", "--retries", "2",
           "-d", str(dest)]
    env = dict(os.environ)
    index_url = index_url or os.environ.get("MASCOT_PYPI_INDEX_URL")
    if index_url:
        # an explicit index is the only source: pip's config files and PIP_* settings are ignored
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        cmd += ["--index-url", index_url, "--disable-pip-version-check"]
    if not quiet:
        print(f"fetching {RECBOLE_WHEEL} from {index_url or 'PyPI'} with pip", file=sys.stderr)
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                             env=env, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download recbole=={RECBOLE_VERSION} did not finish in {PIP_TIMEOUT:g} s "
                            f"(index {index_url or 'PyPI'} unreachable or too slow)") from None
    except OSError as e:
        raise DownloadError(f"pip download recbole=={RECBOLE_VERSION} could not run: {e}") from None
    whl = dest / RECBOLE_WHEEL
    if res.returncode != 0 or not whl.exists():
        last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no output"])[-1]
        raise DownloadError(f"pip download recbole=={RECBOLE_VERSION} failed: {last}")
    return whl


# ----------------------------------------------------------------------------------------------
# per-dataset preparation (each returns a _Prepared plus meta fields)

ML_FORMATS = {
    "ml100k": _Flat(b"\t", "user<TAB>item<TAB>rating<TAB>timestamp", 1, 5),
    "ml10m": _Flat(b"::", "UserID::MovieID::Rating::Timestamp", 0.5, 5),
    "ml25m": _Flat(b",", "userId,movieId,rating,timestamp", 0.5, 5, b"userId,movieId,rating,timestamp"),
}
ML_ARCHIVES = {"ml100k": ("ml-100k.zip", "ml-100k/u.data"),
               "ml10m": ("ml-10m.zip", "ml-10M100K/ratings.dat"),
               "ml25m": ("ml-25m.zip", "ml-25m/ratings.csv")}
DATASETS = ("ml100k", "ml10m", "ml25m", "netflix", "yahoo")


@dataclass
class _Options:
    root: Path
    fold: int
    seed: int
    raw_scale: bool
    quiet: bool
    pins: dict
    index_url: str | None
    work: Path


def _movielens(name: str, source: Path | None, o: _Options) -> tuple[_Prepared, dict]:
    fmt = ML_FORMATS[name]
    zname, member = ML_ARCHIVES[name]
    sources: list[dict] = []
    cols = _Cols()
    first_data = 2 if fmt.header is not None else 1  # line number of the first rating
    if source is not None:
        zpath = source / zname if source.is_dir() else source
        if not zpath.exists():
            raise DatasetError(f"{zpath} does not exist (expected GroupLens' {zname})")
        if not zpath.is_file():  # a FIFO or device would block or never end
            raise DatasetError(f"{zpath}: not a regular file")
        sha = _verify(zpath, zname, o.pins)
        src = _zip_source(zpath, member)
        sources.append({"file": zname, "sha256": sha, "origin": str(zpath), "member": member})
        _parse_flat(src, fmt, cols, o.quiet)
    else:
        url = f"{grouplens_url().rstrip('/')}/{zname}"
        try:
            zpath, sha = _fetch_verified(zname, url, o.root, o.pins, o.quiet)
        except DownloadError as e:
            if name != "ml100k":
                raise
            if not o.quiet:
                print(f"{e}; falling back to PyPI's recbole=={RECBOLE_VERSION} wheel", file=sys.stderr)
            whl = _pip_download_recbole(o.work, o.index_url, o.quiet)
            sha = _verify(whl, RECBOLE_WHEEL, o.pins)
            sources.append({"file": RECBOLE_WHEEL, "sha256": sha, "origin": "pypi", "member": RECBOLE_MEMBER})
            src = _zip_source(whl, RECBOLE_MEMBER)
            with src.open() as f:
                head = f.readline(MAX_LINE + 2).rstrip(b"\r\n")
            if head != RECBOLE_HEADER:
                raise DatasetError(f"{src.label}:1: expected the header {RECBOLE_HEADER.decode()!r}")
            udata = o.work / "u.data"
            with src.open() as f, open(udata, "wb") as g:
                f.readline(MAX_LINE + 2)  # the header checked above
                shutil.copyfileobj(f, g)
            sources[-1]["ratings_sha256"] = _verify(udata, "u.data", o.pins)
            if o.index_url or os.environ.get("MASCOT_PYPI_INDEX_URL"):
                sources[-1]["origin"] = o.index_url or os.environ["MASCOT_PYPI_INDEX_URL"]
            body = _Source(src.label, lambda: open(udata, "rb"), udata.stat().st_size)
            _parse_flat(body, fmt, cols, o.quiet, first_line=2)
            first_data = 2
        else:
            sources.append({"file": zname, "sha256": sha, "origin": url, "member": member})
            src = _zip_source(zpath, member)
            if name == "ml100k":
                with src.open() as f:
                    h = hashlib.sha256()
                    for blk in iter(lambda: f.read(1 << 20), b""):
                        h.update(blk)
                sources[-1]["ratings_sha256"] = h.hexdigest()
            _parse_flat(src, fmt, cols, o.quiet)
    u, i, r = cols.arrays()
    if len(r) == 0:
        raise DatasetError(f"{src.label}: holds no ratings")
    _check_unique_pairs([(u, i)], lambda k: (src.label, k + first_data), ("user", "item"), name)
    if name == "ml100k" and o.pins.get("u.data") == PINS["u.data"]:  # real data: known counts
        counts = (len(sorted_unique(u)), len(sorted_unique(i)), len(r))
        if counts != ML100K_COUNTS:
            raise DatasetError(f"ml100k: expected {ML100K_COUNTS} users/items/ratings, got {counts}")
    prep = _split_folds(u, i, r, o.fold, o.seed)
    if len(prep.train) == 0:
        raise DatasetError(f"{src.label}: its {len(r)} rating(s) leave no training ratings outside fold {o.fold}")
    meta = {"sources": sources, "rating_scale": [fmt.lo, fmt.hi],
            "total_ratings": int(len(r)),
            "split": {"kind": "folds", "folds": N_FOLDS, "fold": o.fold, "seed": o.seed,
                      "method": "numpy default_rng(seed).permutation(n), cut into 5 equal parts"}}
    return prep, meta


def _netflix(source: Path | None, o: _Options) -> tuple[_Prepared, dict]:
    if source is None:
        raise DatasetError("netflix: the Netflix Prize files are not downloadable; give --source DIR "
                           "(holding training_set/mv_*.txt or combined_data_*.txt, and probe.txt)")
    if not source.is_dir():
        raise DatasetError(f"{source}: not a directory")
    # exactly the upstream names: a stray copy ("combined_data_1 - Copy.txt") is not read
    files = sorted(glob.glob(os.path.join(glob.escape(str(source)), "combined_data_[1-4].txt")))
    mv_ids: list[int | None] = [None] * len(files)
    if not files:
        files = sorted(glob.glob(os.path.join(glob.escape(str(source / "training_set")), f"mv_{'[0-9]' * 7}.txt")))
        mv_ids = [int(Path(f).name[3:10]) for f in files]  # mv_0000042.txt holds movie 42 only
    if not files:
        raise DatasetError(f"{source}: holds neither combined_data_[1-4].txt nor training_set/mv_NNNNNNN.txt")
    probe = source / "probe.txt"
    if not probe.exists():
        raise DatasetError(f"{probe} does not exist")
    for f in [*files, probe]:  # a directory (or a FIFO, a device) with a data file's name: say which
        if not os.path.isfile(f):
            raise DatasetError(f"{f}: not a regular file")
    cols = _Cols()
    sources = []
    counts = []  # ratings per training file (to name the line of a duplicate)
    prog_quiet = o.quiet or len(files) > 8  # one line per mv_ file would flood the terminal
    total = _Progress("parsing training_set", sum(os.path.getsize(f) for f in files), o.quiet or not prog_quiet)
    for fp, mv in zip(files, mv_ids):
        p = Path(fp)
        src = _file_source(p)
        n0 = sum(len(x) for x in cols.ratings)
        _parse_blocked(src, NETFLIX_RATINGS, prog_quiet, lambda m, c, r: cols.add(c, m, r), expect_header=mv)
        counts.append(sum(len(x) for x in cols.ratings) - n0)
        total.add(p.stat().st_size)
        if len(files) <= 8:
            sources.append({"file": p.name, "sha256": _file_digest(p, "sha256"), "origin": str(p)})
    total.close()
    if len(files) > 8:  # 17,770 mv_ files: one digest over their concatenation in name order
        h = hashlib.sha256()
        for fp in files:
            with open(fp, "rb") as f:
                for blk in iter(lambda: f.read(1 << 20), b""):
                    h.update(blk)
        sources.append({"file": "training_set/mv_*.txt", "n_files": len(files), "origin": str(source),
                        "sha256": h.hexdigest(), "sha256_of": "the files concatenated in name order"})
    u, i, r = cols.arrays()
    if len(r) == 0:
        raise DatasetError(f"{source}: the training files hold no ratings")
    offsets = np.cumsum([0] + counts)

    def where(k: int) -> tuple[str, int]:
        f = int(np.searchsorted(offsets, k, side="right")) - 1
        src = _file_source(Path(files[f]))
        return src.label, _data_line(src, NETFLIX_RATINGS, k - int(offsets[f]))

    _check_unique_pairs([(u, i)], where, ("CustomerID", "MovieID"), "the training files")
    pcols: list[tuple[np.ndarray, np.ndarray]] = []
    psrc = _file_source(probe)
    _parse_blocked(psrc, NETFLIX_PROBE, o.quiet, lambda m, c, _r: pcols.append((c, m)))
    sources.append({"file": "probe.txt", "sha256": _file_digest(probe, "sha256"), "origin": str(probe)})
    pu = np.concatenate([c for c, _ in pcols]) if pcols else np.zeros(0, np.int64)
    pi = np.concatenate([m for _, m in pcols]) if pcols else np.zeros(0, np.int64)
    _check_unique_pairs([(pu, pi)], lambda k: (psrc.label, _data_line(psrc, NETFLIX_PROBE, k)),
                        ("CustomerID", "MovieID"), "probe.txt")
    # pair key = item * (max user + 1) + user: probe pairs are looked up among the training ratings
    ku, ki, kpu, kpi = u, i, pu, pi
    span = int(max(u.max(initial=0), pu.max(initial=0))) + 1
    if span * (int(max(i.max(initial=0), pi.max(initial=0))) + 1) > _ID_MAX:  # huge raw ids: dense ones
        _, d = _dense(np.concatenate([u, pu]).astype(np.int64))
        ku, kpu = d[:len(u)], d[len(u):]
        _, d = _dense(np.concatenate([i, pi]).astype(np.int64))
        ki, kpi = d[:len(i)], d[len(i):]
        span = int(max(ku.max(initial=0), kpu.max(initial=0))) + 1
        del d
    tkey = ki.astype(np.int64) * span + ku
    pkey = sorted_unique(kpi.astype(np.int64) * span + kpu)
    pos = np.minimum(np.searchsorted(pkey, tkey), max(len(pkey) - 1, 0))
    is_test = (pkey[pos] == tkey) if len(pkey) else np.zeros(len(tkey), bool)
    del tkey, pos
    found = sorted_unique(ki[is_test].astype(np.int64) * span + ku[is_test]).size
    del ku, ki, kpu, kpi
    missing = int(len(pkey) - found)
    if missing and not o.quiet:
        print(f"warning: {missing} probe pairs have no rating in the training files (ignored)", file=sys.stderr)
    train = ~is_test
    if not train.any():
        raise DatasetError(f"{probe}: every rating of the training files is a probe pair: "
                           "no training ratings left")
    prep = _finish(u[train], i[train], r[train], u[is_test], i[is_test], r[is_test])
    meta = {"sources": sources, "rating_scale": [1, 5], "total_ratings": int(len(r)),
            "split": {"kind": "provided", "test": "probe.txt pairs, rated in the training files",
                      "probe_pairs": int(len(pkey)), "probe_pairs_missing": missing}}
    return prep, meta


def _yahoo(source: Path | None, o: _Options) -> tuple[_Prepared, dict]:
    if source is None:
        raise DatasetError("yahoo: the KDD Cup 2011 files are not downloadable; give --source DIR "
                           "(holding trainIdx1.txt and validationIdx1.txt)")
    parts = []
    sources = []
    for fname in ("trainIdx1.txt", "validationIdx1.txt"):
        p = source / fname
        if not p.exists():
            raise DatasetError(f"{p} does not exist")
        if not p.is_file():  # a FIFO or device would block or never end
            raise DatasetError(f"{p}: not a regular file")
    for fname in ("trainIdx1.txt", "validationIdx1.txt"):
        p = source / fname
        cols = _Cols()
        _parse_blocked(_file_source(p), YAHOO, o.quiet, lambda uu, ii, rr: cols.add(uu, ii, rr))
        u, i, r = cols.arrays()
        if fname == "trainIdx1.txt" and len(r) == 0:
            raise DatasetError(f"{p}: holds no ratings")
        if not o.raw_scale:
            r = (r.astype(np.float64) / 25.0 + 1.0).astype(np.float32)  # one rounding
        parts.append((u, i, r))
        sources.append({"file": fname, "sha256": _file_digest(p, "sha256"), "origin": str(p)})
    (u, i, r), (tu, ti, tr) = parts
    del parts

    def where(k: int) -> tuple[str, int]:  # a pair rated twice in a file, or in both (a leak)
        src = _file_source(source / ("trainIdx1.txt" if k < len(u) else "validationIdx1.txt"))
        return src.label, _data_line(src, YAHOO, k if k < len(u) else k - len(u))

    _check_unique_pairs([(u, i), (tu, ti)], where, ("UserId", "ItemId"), "trainIdx1.txt and validationIdx1.txt")
    prep = _finish(u, i, r, tu, ti, tr)
    scale = [0, 100] if o.raw_scale else [1, 5]
    meta = {"sources": sources, "rating_scale": scale,
            "score_mapping": "raw 0..100" if o.raw_scale else "r / 25 + 1",
            "total_ratings": int(len(r) + len(tr)),
            "split": {"kind": "provided", "train": "trainIdx1.txt", "test": "validationIdx1.txt"}}
    return prep, meta


# ----------------------------------------------------------------------------------------------
# public API


def default_out_name(name: str, fold: int = 1) -> str:
    """Directory name of a prepared dataset: ``name`` for fold 1, ``name-fold<f>`` otherwise."""
    return name if fold == 1 or name not in ML_ARCHIVES else f"{name}-fold{fold}"


def valid_name(name: str) -> bool:
    """Whether ``name`` can name a prepared dataset: one directory directly under $MASCOT_DATA
    (not empty, no path separator, not hidden)."""
    return bool(name) and "/" not in name and os.sep not in name and not name.startswith(".") and "\0" not in name


def _exists_error(target: Path) -> DatasetError:
    what = "is already prepared" if (target / "meta.json").exists() else "exists"
    return DatasetError(f"{target} {what} (use --force to replace it)")


class _PrepareLock:
    """An exclusive ``flock`` on ``root/.<out>.lock`` for the whole of one ``prepare``: a second
    prepare of the same output directory fails at once instead of racing for it.  The file is
    removed on release (a holder re-checks, after locking, that the path is still its file)."""

    def __init__(self, root: Path, out: str) -> None:
        self.path, self.out, self.fd = root / f".{out}.lock", out, -1

    def __enter__(self) -> "_PrepareLock":
        if fcntl is None:  # pragma: no cover - no advisory locks (Windows)
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DatasetError(f"another `mascot data prepare` of {self.out} is running "
                                   f"(it holds {self.path})") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)  # its holder removed it as we opened it: take the new one

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1


def _remove_stale(root: Path, out: str) -> None:
    """Removes the temporary directories of earlier prepares of ``out`` that were killed (SIGKILL,
    power loss) before they could clean up; called under the lock, so none of them still runs.
    One killed between moving the old dataset aside and moving the new one in gets the old one
    back."""
    pat = re.compile(rf"\.{re.escape(out)}\.(tmp|old)-[A-Za-z0-9_]{{8}}")
    target = root / out
    for d in sorted(root.iterdir()):
        m = pat.fullmatch(d.name)
        if not m or d.is_symlink() or not d.is_dir():
            continue
        if m.group(1) == "old" and not os.path.lexists(target) and (d / "d" / "meta.json").is_file():
            os.replace(d / "d", target)
        shutil.rmtree(d, ignore_errors=True)


def prepare(name: str, source: str | os.PathLike | None = None, *, fold: int = 1, seed: int | None = None,
            force: bool = False, raw_scale: bool = False, out: str | None = None,
            root: str | os.PathLike | None = None, quiet: bool = False, index_url: str | None = None,
            _pins: dict[str, tuple[str, str]] | None = None) -> Path:
    """Prepares dataset ``name`` into ``root/out`` (default ``$MASCOT_DATA/<default_out_name>``).

    ``source``: a local directory (netflix, yahoo; for MovieLens a directory holding the zip or
    the zip itself, skipping the download).  ``fold`` (1..5) and ``seed`` (an integer >= 0,
    default DEFAULT_SEED) choose the MovieLens split; ``raw_scale`` keeps Yahoo's 0..100 scores.
    ``index_url`` overrides the PyPI index of the ml100k fallback.  Raises DatasetError (bad
    input, or another prepare of the same output running) or DownloadError (network).
    ``_pins`` replaces the pinned checksums: for tests with fixture archives only.
    Returns the prepared directory.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= N_FOLDS:
        raise DatasetError(f"--fold must be in 1..{N_FOLDS} (got {fold!r})")
    fold = int(fold)
    if fold != 1 and name not in ML_ARCHIVES:
        raise DatasetError(f"{name} has a provided split; --fold applies to the MovieLens sets only")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DatasetError(f"--seed must be an integer >= 0 (got {seed!r})")
        if name not in ML_ARCHIVES:
            raise DatasetError(f"{name} has a provided split; --seed applies to the MovieLens sets only")
    seed = DEFAULT_SEED if seed is None else int(seed)
    if raw_scale and name != "yahoo":
        raise DatasetError("--raw-scale applies to yahoo only")
    if index_url is not None:
        if name != "ml100k":
            raise DatasetError("--index-url applies to ml100k only (the index of its PyPI fallback)")
        check_url(index_url, "--index-url")
    if source is not None and os.fspath(source) == "":
        raise DatasetError("--source is empty (give a directory or file)")
    if source is None and name in ML_ARCHIVES:  # mirrors: checked once, before anything is fetched
        if os.environ.get("MASCOT_GROUPLENS_URL"):
            check_url(os.environ["MASCOT_GROUPLENS_URL"], "MASCOT_GROUPLENS_URL")
        if name == "ml100k" and index_url is None and os.environ.get("MASCOT_PYPI_INDEX_URL"):
            check_url(os.environ["MASCOT_PYPI_INDEX_URL"], "MASCOT_PYPI_INDEX_URL")
    rootp = Path(root) if root is not None else _data.data_root()
    out = out or default_out_name(name, fold)
    if not valid_name(out) or _data._core.parse_synthetic_spec(out) is not None:
        raise DatasetError(f"invalid output name {out!r}")
    target = rootp / out
    if target.exists() and not force:
        raise _exists_error(target)
    src = Path(source).expanduser() if source is not None else None
    if src is not None and not src.exists():
        raise DatasetError(f"--source {src} does not exist")
    rootp.mkdir(parents=True, exist_ok=True)
    with _PrepareLock(rootp, out):
        _remove_stale(rootp, out)
        if target.exists() and not force:  # prepared meanwhile, or restored by _remove_stale
            raise _exists_error(target)
        return _prepare_locked(name, src, rootp, out, target, fold, seed, force, raw_scale, quiet, index_url, _pins)


def _prepare_locked(name: str, src: Path | None, rootp: Path, out: str, target: Path, fold: int, seed: int,
                    force: bool, raw_scale: bool, quiet: bool, index_url: str | None,
                    _pins: dict[str, tuple[str, str]] | None) -> Path:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".{out}.tmp-", dir=rootp))
    old = None
    try:
        o = _Options(rootp, fold, seed, raw_scale, quiet, dict(PINS if _pins is None else _pins), index_url, work)
        if name in ML_ARCHIVES:
            prep, meta = _movielens(name, src, o)
        elif name == "netflix":
            prep, meta = _netflix(src, o)
        else:
            prep, meta = _yahoo(src, o)
        for f in work.iterdir():  # downloads and intermediates are not part of the dataset
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink()
        if not quiet:
            print(f"writing {len(prep.train):,} train and {len(prep.test):,} test ratings", file=sys.stderr)
        _data.write_mrat(work / "train.mrat", prep.train)
        _data.write_mrat(work / "test.mrat", prep.test)
        from . import _core
        full = {
            "format": "mascot-dataset", "format_version": FORMAT_VERSION, "name": out, "dataset": name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "mascot_version": _core.__version__,
            "counts": {"users": prep.train.n_users, "items": prep.train.n_items, "train": len(prep.train),
                       "test": len(prep.test), "test_dropped": prep.dropped},
            **meta,
            "prepare_seconds": round(time.monotonic() - t0, 2),
            "user_ids": prep.user_ids.tolist(), "item_ids": prep.item_ids.tolist(),
        }
        with open(work / "meta.json", "w") as f:
            json.dump(full, f, separators=(",", ":"))
            f.write("\n")
        os.chmod(work, 0o777 & ~_files.umask())  # mkdtemp made it private; a dataset is an ordinary directory
        if target.exists():
            if not force:  # appeared meanwhile (made by hand, or by a prepare that took no lock)
                raise _exists_error(target)
            old = Path(tempfile.mkdtemp(prefix=f".{out}.old-", dir=rootp))
            os.replace(target, old / "d")
        os.replace(work, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if old is not None:  # interrupted between the two renames: the old dataset goes back
            try:
                if not os.path.lexists(target) and (old / "d").is_dir():
                    os.replace(old / "d", target)
            except OSError:
                pass  # left in .<out>.old-*: the next prepare of <out> restores it
            else:
                shutil.rmtree(old, ignore_errors=True)
        raise
    if not quiet:
        c = full["counts"]
        print(f"prepared {target}: {c['users']:,} users, {c['items']:,} items, {c['train']:,} train, "
              f"{c['test']:,} test ({c['test_dropped']:,} dropped) in {time.monotonic() - t0:.1f} s",
              file=sys.stderr)
    return target


def prepared(root: str | os.PathLike | None = None) -> list[dict]:
    """Summaries (meta.json without the id maps) of every prepared dataset under ``root``;
    ``name`` is the directory's.  A dataset whose meta.json cannot be read or lacks the fields
    a listing shows (an object with integer ``counts``) is ``{"name": ..., "error": why}``."""
    rootp = Path(root) if root is not None else _data.data_root()
    out = []
    if rootp.is_dir():
        for d in sorted(rootp.iterdir()):
            if d.name.startswith(".") or not (d / "meta.json").exists():
                continue
            try:
                m = _read_meta(d)
                c = m.get("counts")
                if not isinstance(c, dict) or not all(type(c.get(k)) is int
                                                      for k in ("users", "items", "train", "test")):
                    raise ValueError("no 'counts' object with integer users, items, train and test")
                if not isinstance(m.get("dataset", ""), str):
                    raise ValueError("dataset must be a string")
            except (OSError, ValueError) as e:
                out.append({"name": d.name, "error": str(e)})
                continue
            out.append({**summary(m), "name": d.name})
    return out


def _read_meta(d: Path) -> dict:
    """``d/meta.json`` as a dict; ValueError (a JSON, UTF-8 or shape error) or OSError."""
    with open(d / "meta.json", encoding="utf-8") as f:
        m = json.load(f)
    if not isinstance(m, dict):
        raise ValueError("not a JSON object")
    return m


def summary(meta: dict) -> dict:
    """``meta`` without the (long) id maps."""
    return {k: v for k, v in meta.items() if k not in ("user_ids", "item_ids")}
