"""Netflix Prize: local files only (``--source DIR``); the test set is the probe set.

Sources (the exact upstream formats): ``training_set/mv_NNNNNNN.txt`` (7 digits; the file's one
header must be ``N:``) or ``combined_data_[1-4].txt`` (blocks of ``MovieID:`` then
``CustomerID,Rating,Date``; other names are not read), and ``probe.txt`` (blocks of ``MovieID:``
then ``CustomerID``).  Test = the probe ratings (looked up in the training files), train = the
rest.  A probe pair without a rating in the training files is ignored and counted.
"""
from __future__ import annotations

import glob
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from .._arrays import sorted_unique
from .._progress import ByteProgress
from ._common import DatasetError, RecipeOptions
from ._download import file_digest
from ._parse import ID_MAX, INT, BlockFormat, RatingColumns, data_line, file_source, parse_blocked
from ._split import Prepared, check_unique_pairs, dense_ids, finish

# The date / time fields are only counted, not parsed (nothing downstream uses them).
RATINGS = BlockFormat(b":", b",", 2, True, rb"(" + INT + rb"):",
                      rb"(" + INT + rb"),([0-9]+),[^,\r]+",
                      "MovieID:", "CustomerID,Rating,Date", 1, 5, header_id="MovieID", data_id="CustomerID")
PROBE = BlockFormat(b":", b",", 0, False, rb"(" + INT + rb"):", rb"(" + INT + rb")",
                    "MovieID:", "CustomerID", header_id="MovieID", data_id="CustomerID")
MANY_FILES = 8  # more training files than this (the 17,770 mv_ files): one progress line, one digest


def build(source: Path | None, o: RecipeOptions) -> tuple[Prepared, dict]:
    """Reads the training files and probe.txt of ``source``: (the split, meta fields)."""
    files, mv_ids, probe = _inputs(source)
    u, i, r, sources = _read_training(source, files, mv_ids, o)
    pu, pi = _read_probe(probe, o.quiet)
    sources.append({"file": "probe.txt", "sha256": file_digest(probe, "sha256"), "origin": str(probe)})
    is_test, n_probe = _probe_ratings(u, i, pu, pi)
    missing = int(n_probe - np.count_nonzero(is_test))  # training pairs are unique (checked): one each
    if missing and not o.quiet:
        print(f"warning: {missing} probe pairs have no rating in the training files (ignored)", file=sys.stderr)
    train = ~is_test
    if not train.any():
        raise DatasetError(f"{probe}: every rating of the training files is a probe pair: "
                           "no training ratings left")
    prep = finish(u[train], i[train], r[train], u[is_test], i[is_test], r[is_test])
    meta = {"sources": sources, "rating_scale": [1, 5], "total_ratings": int(len(r)),
            "split": {"kind": "provided", "test": "probe.txt pairs, rated in the training files",
                      "probe_pairs": int(n_probe), "probe_pairs_missing": missing}}
    return prep, meta


def _inputs(source: Path | None) -> tuple[list[str], list[int | None], Path]:
    """The training files (combined_data_*, else training_set/mv_*), the movie id each mv_ file
    must hold (None for combined files), and probe.txt; all checked to be regular files."""
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
    return files, mv_ids, probe


def _read_training(source: Path, files: list[str], mv_ids: list[int | None],
                   o: RecipeOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """(customers, movies, ratings) of all training files in file order, checked for repeated
    pairs, and their sources for meta.json."""
    cols = RatingColumns()
    sources = []
    counts = []  # ratings per training file (to name the line of a duplicate)
    many = len(files) > MANY_FILES
    file_quiet = o.quiet or many  # one line per mv_ file would flood the terminal
    total = ByteProgress("parsing training_set", sum(os.path.getsize(f) for f in files), o.quiet or not many)
    for fp, mv in zip(files, mv_ids):
        p = Path(fp)
        n0 = sum(len(x) for x in cols.ratings)
        parse_blocked(file_source(p), RATINGS, file_quiet, lambda m, c, r: cols.add(c, m, r), expect_header=mv)
        counts.append(sum(len(x) for x in cols.ratings) - n0)
        total.add(p.stat().st_size)
        if not many:
            sources.append({"file": p.name, "sha256": file_digest(p, "sha256"), "origin": str(p)})
    total.close()
    if many:  # 17,770 mv_ files: one digest over their concatenation in name order
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
        src = file_source(Path(files[f]))
        return src.label, data_line(src, RATINGS, k - int(offsets[f]))

    check_unique_pairs([(u, i)], where, ("CustomerID", "MovieID"), "the training files")
    return u, i, r, sources


def _read_probe(probe: Path, quiet: bool) -> tuple[np.ndarray, np.ndarray]:
    """(customers, movies) of probe.txt, checked for repeated pairs."""
    pcols: list[tuple[np.ndarray, np.ndarray]] = []
    psrc = file_source(probe)
    parse_blocked(psrc, PROBE, quiet, lambda m, c, _r: pcols.append((c, m)))
    pu = np.concatenate([c for c, _ in pcols]) if pcols else np.zeros(0, np.int64)
    pi = np.concatenate([m for _, m in pcols]) if pcols else np.zeros(0, np.int64)
    check_unique_pairs([(pu, pi)], lambda k: (psrc.label, data_line(psrc, PROBE, k)),
                       ("CustomerID", "MovieID"), "probe.txt")
    return pu, pi


def _probe_ratings(u: np.ndarray, i: np.ndarray, pu: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, int]:
    """Which training ratings are probe pairs (a mask), and the number of distinct probe pairs."""
    # pair key = item * (max user + 1) + user: probe pairs are looked up among the training ratings
    ku, ki, kpu, kpi = u, i, pu, pi
    span = int(max(u.max(initial=0), pu.max(initial=0))) + 1
    if span * (int(max(i.max(initial=0), pi.max(initial=0))) + 1) > ID_MAX:  # huge raw ids: dense ones
        _, d = dense_ids(np.concatenate([u, pu]).astype(np.int64))
        ku, kpu = d[:len(u)], d[len(u):]
        _, d = dense_ids(np.concatenate([i, pi]).astype(np.int64))
        ki, kpi = d[:len(i)], d[len(i):]
        span = int(max(ku.max(initial=0), kpu.max(initial=0))) + 1
        del d
    tkey = ki.astype(np.int64) * span + ku
    pkey = sorted_unique(kpi.astype(np.int64) * span + kpu)
    pos = np.minimum(np.searchsorted(pkey, tkey), max(len(pkey) - 1, 0))
    is_test = (pkey[pos] == tkey) if len(pkey) else np.zeros(len(tkey), bool)
    return is_test, len(pkey)
