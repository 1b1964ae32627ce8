"""Rating data for MASCOT: reading, writing and generating rating sets (the users' facade).

A rating set is a :class:`Ratings` (structure of arrays: int32 users, int32 items, float32
ratings, plus the id ranges).  Files are ``.mrat`` (binary, docs/design.md §5) or LIBMF-style
text (``user item rating`` per line, 0-based ids); readers live in the C++ core and report
malformed input as ``ValueError("path:line: what")``.

Real datasets (MovieLens, Netflix, Yahoo!Music) are prepared once by ``mascot data prepare NAME``
(:func:`prepare`, implemented in :mod:`mascot.datasets`) into ``data_root()/NAME``;
:func:`load` reads them back and :func:`meta` returns their ``meta.json`` (counts, checksums,
split, id maps).

Who owns what: the types and file I/O are ``mascot._ratings`` (the leaf module), the prepared
datasets on disk ``mascot._store``; this module re-exports both and adds the synthetic generator
and name resolution (:func:`load`).  Imports go one way: nothing below imports this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import _core, _store
from ._ratings import Dataset, PathLike, Ratings, as_ratings, from_tuple, read, write_mrat, write_text
from ._store import data_root

__all__ = ["Dataset", "PathLike", "Ratings", "as_ratings", "data_root", "dataset_id_maps", "load", "meta", "prepare",
           "read", "synthetic", "synthetic_names", "synthetic_skews", "valid_split", "write_mrat", "write_text"]

# the ranges of the generator's seed and threads: the parameter table's (mascot/params.h)
_PARAM_RANGES = {p["name"]: (p["min"], p["max"]) for p in _core.param_table() if p["name"] in ("seed", "threads")}


def synthetic_names() -> list[str]:
    return list(_core.synthetic_names())


def synthetic_skews() -> list[str]:
    """The popularity-skew presets: ``"realistic"`` (the plain names) and ``"heavy"`` (``-heavy``)."""
    return list(_core.synthetic_skew_names())


def synthetic(name: str = "synthetic-ml10m", scale: float = 1.0, seed: int = 42,
              threads: int = 0, *, user_exponent: float | None = None,
              item_exponent: float | None = None) -> Dataset:
    """Generates a synthetic dataset shaped like the paper's (Table I), deterministically.

    ``name`` may carry a popularity-skew preset and its scale (``"synthetic-netflix-heavy:0.1"``);
    otherwise ``scale`` applies.  The plain names have realistic skew (the most-rated item holds
    ~0.4 % of the ratings, as in MovieLens-10M), the ``-heavy`` names ~10 %.  ``user_exponent``
    and ``item_exponent`` (in [0.05, 4]) override the preset's power laws (mascot/synthetic.h:
    larger is more skewed; realistic 0.5 and 1.25, heavy 0.5 and 0.85).
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a synthetic dataset name (got {name!r})")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f"scale must be a number in (0, 1] (got {scale!r})")
    for arg, v in (("seed", seed), ("threads", threads)):
        lo, hi = _PARAM_RANGES[arg]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ValueError(f"{arg} must be an integer between {lo} and {hi} (got {v!r})")
    for arg, v in (("user_exponent", user_exponent), ("item_exponent", item_exponent)):
        if v is not None and (isinstance(v, (bool, np.bool_)) or
                              not isinstance(v, (int, float, np.integer, np.floating)) or not 0.05 <= v <= 4):
            raise ValueError(f"{arg} must be a number in [0.05, 4] (got {v!r})")
    spec = _core.parse_synthetic_spec(name)
    if spec is not None and ":" in name:
        name, scale = spec
    ue = None if user_exponent is None else float(user_exponent)
    ie = None if item_exponent is None else float(item_exponent)
    tr, te = _core.synthetic(name, float(scale), int(seed), int(threads), ue, ie)
    label = name if scale == 1.0 else f"{name}:{scale:g}"
    if ue is not None or ie is not None:
        label += "".join(f" {k}={v:g}" for k, v in (("user_exponent", ue), ("item_exponent", ie)) if v is not None)
    return Dataset(from_tuple(tr), from_tuple(te), label)


def load(name: str) -> Dataset:
    """A synthetic dataset by name (``"synthetic-netflix:0.1"``), or a prepared one from
    ``data_root()/name``: the names ``mascot_train --dataset`` takes, resolved by the core."""
    if _core.resolve_dataset(name)["kind"] == "synthetic":
        return synthetic(name)
    train, test = _store.read_dataset(name)
    return Dataset(train, test, name)


def meta(name: str) -> dict:
    """The ``meta.json`` of prepared dataset ``name`` (counts, sources and SHA-256, split, rating
    scale, and the id maps ``user_ids`` / ``item_ids``: the raw id of each dense 0-based id)."""
    return _store.meta(name)


def dataset_id_maps(name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The raw ids of a prepared dataset: ``user_ids`` / ``item_ids`` of
    ``$MASCOT_DATA/<name>/meta.json`` (the raw id of each dense id), each None when absent."""
    return _store.id_maps(name)


def prepare(name: str, source: PathLike | None = None, **kwargs: Any) -> Path:
    """Prepares a real dataset (ml100k, ml10m, ml25m, netflix, yahoo); see :mod:`mascot.datasets`."""
    from . import datasets  # imported when used: ``import mascot`` does not load the download code

    return datasets.prepare(name, source, **kwargs)


def valid_split(ratings: Any, fraction: float, seed: int = 42) -> tuple[Ratings, Ratings]:
    """The validation hold-out that ``MF(valid_fraction=F, seed=S)`` and ``mascot_train
    --valid-fraction F --seed S`` carve from their training set, as ``(train, valid)``.

    Of each user's n_u ratings, floor(F x n_u) go to ``valid`` (so every user keeps at least
    one training rating): those whose seeded hash of (user, item) is smallest (the core's
    ``valid_split``; a pure function of the ratings, F and the seed, independent of threads).
    Both parts keep the input's order and id ranges.  ``fraction`` is in [0, 1); 0 holds out
    nothing."""
    r = as_ratings(ratings)
    if isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, (int, float, np.integer, np.floating)):
        raise ValueError(f"valid_fraction must be a number in [0, 1) (got {fraction!r})")
    lo, hi = _PARAM_RANGES["seed"]
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not lo <= seed <= hi:
        raise ValueError(f"seed must be an integer in [{lo}, {hi}] (got {seed!r})")
    tr, va = _core.valid_split(r.users, r.items, r.ratings, r.n_users, r.n_items, float(fraction), int(seed))
    return from_tuple(tr), from_tuple(va)
