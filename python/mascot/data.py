"""Rating data for MASCOT: reading, writing and generating rating sets.

A rating set is a :class:`Ratings` (structure of arrays: int32 users, int32 items, float32
ratings, plus the id ranges).  Files are ``.mrat`` (binary, DESIGN.md §5) or LIBMF-style
text (``user item rating`` per line, 0-based ids); readers live in the C++ core and report
malformed input as ``ValueError("path:line: what")``.

Real datasets (MovieLens, Netflix, Yahoo!Music) are prepared once by ``mascot data prepare NAME``
(:func:`prepare`, implemented in :mod:`mascot.datasets`) into ``data_root()/NAME``;
:func:`load` reads them back and :func:`meta` returns their ``meta.json`` (counts, checksums,
split, id maps).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np

from . import _core

PathLike = Union[str, "os.PathLike[str]"]

_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True)
class Ratings:
    """Ratings as parallel arrays; ``n_users``/``n_items`` bound the (0-based) ids."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return int(self.ratings.shape[0])

    @classmethod
    def from_arrays(cls, users: Any, items: Any, ratings: Any,
                    n_users: int | None = None, n_items: int | None = None) -> "Ratings":
        """Validates and converts array-likes (ids: non-negative integers within int32)."""
        u = _ids(users, "users")
        i = _ids(items, "items")
        r = np.ascontiguousarray(np.asarray(ratings, dtype=np.float64))
        if r.ndim != 1:
            raise ValueError(f"ratings must be one-dimensional (got shape {r.shape})")
        if not (len(u) == len(i) == len(r)):
            raise ValueError(f"users, items and ratings must have the same length "
                             f"(got {len(u)}, {len(i)}, {len(r)})")
        bad = ~np.isfinite(r)
        if bad.any():
            raise ValueError(f"rating at index {int(np.argmax(bad))} is not a finite number")
        nu = int(u.max()) + 1 if len(u) else 0
        ni = int(i.max()) + 1 if len(i) else 0
        if n_users is not None:
            if n_users < nu:
                raise ValueError(f"n_users={n_users} but a user id is {nu - 1}")
            nu = int(n_users)
        if n_items is not None:
            if n_items < ni:
                raise ValueError(f"n_items={n_items} but an item id is {ni - 1}")
            ni = int(n_items)
        return cls(u, i, np.ascontiguousarray(r, dtype=np.float32), nu, ni)


def _ids(a: Any, what: str) -> np.ndarray:
    x = np.asarray(a)
    if x.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (got shape {x.shape})")
    if x.size and x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or not np.all(x == np.floor(x)):
            raise ValueError(f"{what} must be integer ids (found a non-integer value)")
    elif x.size and x.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer ids (got dtype {x.dtype})")
    if x.size:
        lo, hi = x.min(), x.max()
        if lo < 0:
            raise ValueError(f"{what} ids must be >= 0 (found {int(lo)})")
        if hi > _INT32_MAX:
            raise ValueError(f"{what} id {int(hi)} exceeds the int32 range")
    return np.ascontiguousarray(x, dtype=np.int32)


def _from_tuple(t: tuple) -> Ratings:
    u, i, r, nu, ni = t
    return Ratings(u, i, r, int(nu), int(ni))


def read(path: PathLike) -> Ratings:
    """Reads a ``.mrat`` or text rating file (format detected from its first bytes)."""
    return _from_tuple(_core.read_ratings(os.fsdecode(os.fspath(path))))


def write_mrat(path: PathLike, r: Ratings) -> None:
    """Writes ``r`` as ``.mrat`` atomically (temp file + rename)."""
    _core.write_mrat(os.fsdecode(os.fspath(path)), r.users, r.items, r.ratings, r.n_users, r.n_items)


def write_text(path: PathLike, r: Ratings) -> None:
    """Writes ``r`` as LIBMF-style text atomically."""
    _core.write_text(os.fsdecode(os.fspath(path)), r.users, r.items, r.ratings, r.n_users, r.n_items)


class Dataset(NamedTuple):
    train: Ratings
    test: Ratings
    name: str


def synthetic_names() -> list[str]:
    return list(_core.synthetic_names())


def synthetic(name: str = "synthetic-ml10m", scale: float = 1.0, seed: int = 42,
              threads: int = 0) -> Dataset:
    """Generates a synthetic dataset shaped like the paper's (Table I), deterministically.

    ``name`` may carry its scale (``"synthetic-netflix:0.1"``); otherwise ``scale`` applies.
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a synthetic dataset name (got {name!r})")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f"scale must be a number in (0, 1] (got {scale!r})")
    for arg, v, hi in (("seed", seed, 2**64 - 1), ("threads", threads, 1024)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
            raise ValueError(f"{arg} must be an integer between 0 and {hi} (got {v!r})")
    spec = _core.parse_synthetic_spec(name)
    if spec is not None and ":" in name:
        name, scale = spec
    tr, te = _core.synthetic(name, float(scale), int(seed), int(threads))
    label = name if scale == 1.0 else f"{name}:{scale:g}"
    return Dataset(_from_tuple(tr), _from_tuple(te), label)


def data_root() -> Path:
    """``$MASCOT_DATA``, default ``~/.cache/mascot``: where prepared datasets live."""
    env = os.environ.get("MASCOT_DATA")
    return Path(env) if env else Path.home() / ".cache" / "mascot"


def load(name: str) -> Dataset:
    """A synthetic dataset by name, or a prepared one from ``data_root()/name``."""
    if _core.parse_synthetic_spec(name) is not None:
        return synthetic(name)
    d = data_root() / name
    train = d / "train.mrat"
    if not train.exists():
        raise FileNotFoundError(
            f"dataset {name!r} is not prepared: {train} does not exist (run `mascot data prepare "
            f"{name}`, write it with mascot.data.write_mrat, or use one of {synthetic_names()})")
    test = d / "test.mrat"
    empty = Ratings(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0)
    return Dataset(read(train), read(test) if test.exists() else empty, name)


def meta(name: str) -> dict:
    """The ``meta.json`` of prepared dataset ``name`` (counts, sources and SHA-256, split, rating
    scale, and the id maps ``user_ids`` / ``item_ids``: the raw id of each dense 0-based id)."""
    import json

    path = data_root() / name / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"dataset {name!r} is not prepared: {path} does not exist "
                                f"(run `mascot data prepare {name}`)")
    with open(path) as f:
        return json.load(f)


def prepare(name: str, source: PathLike | None = None, **kwargs: Any) -> Path:
    """Prepares a real dataset (ml100k, ml10m, ml25m, netflix, yahoo); see :mod:`mascot.datasets`."""
    from . import datasets

    return datasets.prepare(name, source, **kwargs)


def as_ratings(obj: Any) -> Ratings:
    """Accepts a Ratings, a ``(users, items, ratings)`` tuple, a pandas DataFrame or a file path.

    A DataFrame's columns are taken by name when it has columns named ``user`` and ``item``: the
    ratings are column ``rating``, or in a three-column frame the remaining column (any name,
    e.g. ``score``).  A three-column frame without those names is read by position (user, item,
    rating) as long as no column named user, item or rating stands elsewhere.  Anything else is
    a ValueError naming the columns expected."""
    if isinstance(obj, Ratings):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return read(obj)
    if hasattr(obj, "columns") and hasattr(obj, "to_numpy"):  # pandas DataFrame
        return Ratings.from_arrays(*(obj.iloc[:, j].to_numpy() for j in _frame_columns(list(obj.columns))))
    if isinstance(obj, tuple) and len(obj) == 3:
        return Ratings.from_arrays(*obj)
    raise TypeError("ratings must be a (users, items, ratings) tuple, a pandas DataFrame, "
                    f"a mascot.data.Ratings or a file path (got {type(obj).__name__})")


_COLUMNS = ("user", "item", "rating")


def _frame_columns(cols: list) -> tuple[int, int, int]:
    """Positions of the user, item and rating columns of a DataFrame with these column names."""
    shown = ", ".join(repr(c) for c in cols[:10]) + (", ..." if len(cols) > 10 else "")
    need = f"a DataFrame needs columns user, item, rating (got {shown})"
    for c in _COLUMNS:
        if cols.count(c) > 1:
            raise ValueError(f"{need}: column {c!r} appears more than once")
    if "user" in cols and "item" in cols:
        u, i = cols.index("user"), cols.index("item")
        if "rating" in cols:
            return u, i, cols.index("rating")
        if len(cols) == 3:
            return u, i, 3 - u - i  # the remaining column holds the ratings
        raise ValueError(f"{need}: name the ratings column 'rating'")
    if len(cols) == 3 and all(c not in cols or cols.index(c) == j for j, c in enumerate(_COLUMNS)):
        return 0, 1, 2
    raise ValueError(f"{need}: name them so, or pass exactly three columns in that order")
