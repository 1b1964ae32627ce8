"""MovieLens (ml100k, ml10m, ml25m): GroupLens' zips, read as they are, split into 5 seeded folds.

Sources (the exact upstream formats):

=========  =====================================================================================
ml100k     GroupLens ``ml-100k.zip`` -> ``ml-100k/u.data`` (``user<TAB>item<TAB>rating<TAB>time``).
           When GroupLens cannot be reached: PyPI's ``recbole==1.2.1`` wheel (downloaded alone by
           pip, not installed) -> ``recbole/dataset_example/ml-100k/ml-100k.inter`` (the same lines
           after a header).  The zip is checked against GroupLens' MD5, the wheel and its ratings
           against pinned SHA-256s; either way it must hold 943 users, 1,682 items and 100,000
           ratings.
ml10m      GroupLens ``ml-10m.zip`` -> ``ml-10M100K/ratings.dat`` (``UserID::MovieID::Rating::Timestamp``).
ml25m      GroupLens ``ml-25m.zip`` -> ``ml-25m/ratings.csv`` (header ``userId,movieId,rating,timestamp``).
=========  =====================================================================================

``source`` may name a directory holding the zip, or the zip itself (no download).  Otherwise
the zip comes from ``$MASCOT_GROUPLENS_URL`` (default GroupLens) through the verified download
cache.  Split: a seeded permutation of all ratings cut into five equal parts; fold f is the
test set, the rest train (80/20).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from .._arrays import sorted_unique
from . import _download, _parse
from ._common import DatasetError, DownloadError, RecipeOptions
from ._parse import FlatFormat, RatingColumns, Source, parse_flat, zip_source
from ._split import N_FOLDS, Prepared, check_unique_pairs, split_folds

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
RECBOLE_VERSION = "1.2.1"
RECBOLE_WHEEL = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
RECBOLE_HEADER = b"user_id:token\titem_id:token\trating:float\ttimestamp:float"

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

FORMATS = {
    "ml100k": FlatFormat(b"\t", "user<TAB>item<TAB>rating<TAB>timestamp", 1, 5),
    "ml10m": FlatFormat(b"::", "UserID::MovieID::Rating::Timestamp", 0.5, 5),
    "ml25m": FlatFormat(b",", "userId,movieId,rating,timestamp", 0.5, 5, b"userId,movieId,rating,timestamp"),
}
ARCHIVES = {"ml100k": ("ml-100k.zip", "ml-100k/u.data"),
            "ml10m": ("ml-10m.zip", "ml-10M100K/ratings.dat"),
            "ml25m": ("ml-25m.zip", "ml-25m/ratings.csv")}


def grouplens_url() -> str:
    """Base URL of the MovieLens zips: ``$MASCOT_GROUPLENS_URL`` or GroupLens' own."""
    return os.environ.get("MASCOT_GROUPLENS_URL") or GROUPLENS_URL


def pip_download_recbole(dest: Path, index_url: str | None, quiet: bool) -> Path:
    """``pip download recbole==1.2.1`` alone (no dependencies, wheel only) into ``dest``."""
    return _download.pip_download(f"recbole=={RECBOLE_VERSION}", RECBOLE_WHEEL, dest, index_url, quiet)


def build(name: str, source: Path | None, o: RecipeOptions) -> tuple[Prepared, dict]:
    """Reads MovieLens set ``name`` and splits off fold ``o.fold``: (the split, meta fields)."""
    fmt = FORMATS[name]
    cols = RatingColumns()
    if source is not None:
        label, sources, first_data = _read_local(name, source, fmt, cols, o)
    else:
        label, sources, first_data = _read_downloaded(name, fmt, cols, o)
    u, i, r = cols.arrays()
    if len(r) == 0:
        raise DatasetError(f"{label}: holds no ratings")
    check_unique_pairs([(u, i)], lambda k: (label, k + first_data), ("user", "item"), name)
    if name == "ml100k" and o.pins.get("u.data") == PINS["u.data"]:  # real data: known counts
        counts = (len(sorted_unique(u)), len(sorted_unique(i)), len(r))
        if counts != ML100K_COUNTS:
            raise DatasetError(f"ml100k: expected {ML100K_COUNTS} users/items/ratings, got {counts}")
    prep = split_folds(u, i, r, o.fold, o.seed)
    if len(prep.train) == 0:
        raise DatasetError(f"{label}: its {len(r)} rating(s) leave no training ratings outside fold {o.fold}")
    meta = {"sources": sources, "rating_scale": [fmt.lo, fmt.hi],
            "total_ratings": int(len(r)),
            "split": {"kind": "folds", "folds": N_FOLDS, "fold": o.fold, "seed": o.seed,
                      "method": "numpy default_rng(seed).permutation(n), cut into 5 equal parts"}}
    return prep, meta


def _read_local(name: str, source: Path, fmt: FlatFormat, cols: RatingColumns,
                o: RecipeOptions) -> tuple[str, list[dict], int]:
    """The zip given by ``--source`` (a directory holding it, or the file): (the ratings' label
    in errors, the sources for meta.json, the line number of the first rating)."""
    zname, member = ARCHIVES[name]
    zpath = source / zname if source.is_dir() else source
    if not zpath.exists():
        raise DatasetError(f"{zpath} does not exist (expected GroupLens' {zname})")
    if not zpath.is_file():  # a FIFO or device would block or never end
        raise DatasetError(f"{zpath}: not a regular file")
    sha = _download.verify(zpath, zname, o.pins)
    src = zip_source(zpath, member)
    sources = [{"file": zname, "sha256": sha, "origin": str(zpath), "member": member}]
    parse_flat(src, fmt, cols, o.quiet)
    return src.label, sources, 2 if fmt.header is not None else 1


def _read_downloaded(name: str, fmt: FlatFormat, cols: RatingColumns,
                     o: RecipeOptions) -> tuple[str, list[dict], int]:
    """The zip from GroupLens (or its mirror) through the download cache; ml100k falls back to
    the recbole wheel when the download fails.  Returns what :func:`_read_local` does."""
    zname, member = ARCHIVES[name]
    url = f"{grouplens_url().rstrip('/')}/{zname}"
    try:
        zpath, sha = _download.fetch_verified(zname, url, o.root, o.pins, o.quiet)
    except DownloadError as e:
        if name != "ml100k":
            raise
        if not o.quiet:
            print(f"{e}; falling back to PyPI's recbole=={RECBOLE_VERSION} wheel", file=sys.stderr)
        return _read_recbole(fmt, cols, o)
    sources = [{"file": zname, "sha256": sha, "origin": url, "member": member}]
    src = zip_source(zpath, member)
    if name == "ml100k":
        with src.open() as f:
            h = hashlib.sha256()
            for blk in iter(lambda: f.read(1 << 20), b""):
                h.update(blk)
        sources[-1]["ratings_sha256"] = h.hexdigest()
    parse_flat(src, fmt, cols, o.quiet)
    return src.label, sources, 2 if fmt.header is not None else 1


def _read_recbole(fmt: FlatFormat, cols: RatingColumns, o: RecipeOptions) -> tuple[str, list[dict], int]:
    """ml100k from the recbole wheel: its ``.inter`` file after the header is u.data's lines."""
    whl = pip_download_recbole(o.work, o.index_url, o.quiet)
    sha = _download.verify(whl, RECBOLE_WHEEL, o.pins)
    sources = [{"file": RECBOLE_WHEEL, "sha256": sha, "origin": "pypi", "member": RECBOLE_MEMBER}]
    src = zip_source(whl, RECBOLE_MEMBER)
    with src.open() as f:
        head = f.readline(_parse.MAX_LINE + 2).rstrip(b"\r\n")
    if head != RECBOLE_HEADER:
        raise DatasetError(f"{src.label}:1: expected the header {RECBOLE_HEADER.decode()!r}")
    udata = o.work / "u.data"
    with src.open() as f, open(udata, "wb") as g:
        f.readline(_parse.MAX_LINE + 2)  # the header checked above
        shutil.copyfileobj(f, g)
    sources[-1]["ratings_sha256"] = _download.verify(udata, "u.data", o.pins)
    if o.index_url or os.environ.get("MASCOT_PYPI_INDEX_URL"):
        sources[-1]["origin"] = o.index_url or os.environ["MASCOT_PYPI_INDEX_URL"]
    body = Source(src.label, lambda: open(udata, "rb"), udata.stat().st_size)
    parse_flat(body, fmt, cols, o.quiet, first_line=2)
    return src.label, sources, 2
