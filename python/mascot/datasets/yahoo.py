"""Yahoo! Music (KDD Cup 2011 Track 1): local files only (``--source DIR``), the provided split.

Sources (the exact upstream formats): ``trainIdx1.txt`` / ``validationIdx1.txt`` (blocks of
``UserId|NumRatings`` then ``ItemId<TAB>Score<TAB>Date<TAB>Time``).  Scores 0..100 are mapped
to ``r/25 + 1`` (1..5) unless ``raw_scale`` (``--raw-scale``) keeps them.  Train =
trainIdx1.txt, test = validationIdx1.txt; a pair rated in both is an error (a leak).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import DatasetError, RecipeOptions
from ._download import file_digest
from ._parse import INT, BlockFormat, RatingColumns, data_line, file_source, parse_blocked
from ._split import Prepared, check_unique_pairs, finish

# The date / time fields are only counted, not parsed (nothing downstream uses them).
FORMAT = BlockFormat(b"|", b"\t", 3, True, rb"(" + INT + rb")\|(" + INT + rb")",
                     rb"(" + INT + rb")\t([0-9]+)\t[^\t\r]+\t[^\t\r]+",
                     "UserId|NumRatings", "ItemId<TAB>Score<TAB>Date<TAB>Time", 0, 100, counted=True,
                     header_id="UserId", data_id="ItemId")
FILES = ("trainIdx1.txt", "validationIdx1.txt")


def build(source: Path | None, o: RecipeOptions) -> tuple[Prepared, dict]:
    """Reads both files of ``source``: (the split, meta fields)."""
    if source is None:
        raise DatasetError("yahoo: the KDD Cup 2011 files are not downloadable; give --source DIR "
                           "(holding trainIdx1.txt and validationIdx1.txt)")
    parts = []
    sources = []
    for fname in FILES:
        p = source / fname
        if not p.exists():
            raise DatasetError(f"{p} does not exist")
        if not p.is_file():  # a FIFO or device would block or never end
            raise DatasetError(f"{p}: not a regular file")
    for fname in FILES:
        p = source / fname
        cols = RatingColumns()
        parse_blocked(file_source(p), FORMAT, o.quiet, cols.add)
        u, i, r = cols.arrays()
        if fname == "trainIdx1.txt" and len(r) == 0:
            raise DatasetError(f"{p}: holds no ratings")
        if not o.raw_scale:
            r = (r.astype(np.float64) / 25.0 + 1.0).astype(np.float32)  # one rounding
        parts.append((u, i, r))
        sources.append({"file": fname, "sha256": file_digest(p, "sha256"), "origin": str(p)})
    (u, i, r), (tu, ti, tr) = parts
    del parts

    def where(k: int) -> tuple[str, int]:  # a pair rated twice in a file, or in both (a leak)
        src = file_source(source / ("trainIdx1.txt" if k < len(u) else "validationIdx1.txt"))
        return src.label, data_line(src, FORMAT, k if k < len(u) else k - len(u))

    check_unique_pairs([(u, i), (tu, ti)], where, ("UserId", "ItemId"), "trainIdx1.txt and validationIdx1.txt")
    prep = finish(u, i, r, tu, ti, tr)
    scale = [0, 100] if o.raw_scale else [1, 5]
    meta = {"sources": sources, "rating_scale": scale,
            "score_mapping": "raw 0..100" if o.raw_scale else "r / 25 + 1",
            "total_ratings": int(len(r) + len(tr)),
            "split": {"kind": "provided", "train": "trainIdx1.txt", "test": "validationIdx1.txt"}}
    return prep, meta
