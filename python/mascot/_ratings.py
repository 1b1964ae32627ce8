"""Rating sets in memory and in files: the leaf type module of the Python layer.

A rating set is a :class:`Ratings` (structure of arrays: int32 users, int32 items, float32
ratings, plus the id ranges); :class:`Dataset` pairs a train and a test set.  Files are
``.mrat`` (binary) or LIBMF-style text (``user item rating`` per line, 0-based ids); readers and
writers live in the C++ core and report malformed input as ``ValueError("path:line: what")``.

Imports only NumPy and the core: every other module may import this one (``mascot.data``
re-exports it for users), and it imports none of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

import numpy as np

from . import _core
from ._arrays import unmasked

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
                    n_users: int | None = None, n_items: int | None = None) -> Ratings:
        """Validates and converts array-likes (ids: non-negative integers within int32)."""
        u = check_ids(users, "users")
        i = check_ids(items, "items")
        r = np.ascontiguousarray(np.asarray(unmasked(ratings, "ratings"), dtype=np.float64))
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


def check_ids(a: Any, what: str) -> np.ndarray:
    """``a`` as contiguous int32 ids: one-dimensional, integers (or integral floats), in 0..2^31-1
    (a masked array only without masked entries)."""
    x = np.asarray(unmasked(a, what))
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


def from_tuple(t: tuple) -> Ratings:
    """A Ratings from the core's ``(users, items, ratings, n_users, n_items)`` tuples."""
    u, i, r, nu, ni = t
    return Ratings(u, i, r, int(nu), int(ni))


def fs_path(path: Any, name: str = "path") -> str | bytes:
    """A path for the core (str, bytes or os.PathLike, given to it as they are: a name that is not
    UTF-8 keeps its bytes); anything else, an empty path or a NUL byte is a one-line ValueError
    naming ``name``.  Every path of the package goes through this (``mascot._files`` too)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(f"{name} must be a str, bytes or os.PathLike path (got {type(path).__name__})")
    p = os.fspath(path)
    if not isinstance(p, (str, bytes)):
        raise ValueError(f"{name} must be a str, bytes or os.PathLike path (its __fspath__ gave {type(p).__name__})")
    if (b"\0" if isinstance(p, bytes) else "\0") in p:
        raise ValueError(f"{name} holds a NUL byte")
    if not p:
        raise ValueError(f"{name} is empty")
    return p


def read(path: PathLike) -> Ratings:
    """Reads a ``.mrat`` or text rating file (format detected from its first bytes)."""
    return from_tuple(_core.read_ratings(fs_path(path)))


def write_mrat(path: PathLike, r: Ratings) -> None:
    """Writes ``r`` as ``.mrat`` atomically (the core's publication: temp file beside it, then put
    in place; see mascot._files)."""
    _core.write_mrat(fs_path(path), r.users, r.items, r.ratings, r.n_users, r.n_items)


def write_text(path: PathLike, r: Ratings) -> None:
    """Writes ``r`` as LIBMF-style text atomically."""
    _core.write_text(fs_path(path), r.users, r.items, r.ratings, r.n_users, r.n_items)


def empty() -> Ratings:
    """A rating set without ratings (the test set of a dataset prepared without one)."""
    return Ratings(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), 0, 0)


class Dataset(NamedTuple):
    """A train and a test set under the name they were loaded or generated by."""

    train: Ratings
    test: Ratings
    name: str


def as_ratings(obj: Any) -> Ratings:
    """Accepts a Ratings, a ``(users, items, ratings)`` tuple, a pandas DataFrame, a scipy.sparse
    CSR matrix (users x items; its shape gives n_users / n_items) or a file path.

    A DataFrame's columns are taken by name when it has columns named ``user`` and ``item``: the
    ratings are column ``rating``, or in a three-column frame the remaining column (any name,
    e.g. ``score``).  A three-column frame without those names is read by position (user, item,
    rating) as long as no column named user, item or rating stands elsewhere.  Anything else is
    a ValueError naming the columns expected."""
    if isinstance(obj, Ratings):
        return obj
    if isinstance(obj, (str, bytes, os.PathLike)):
        return read(obj)
    if type(obj).__module__.startswith("scipy.sparse"):  # a CSR matrix users x items (issue 21)
        from .als import sparse_to_ratings

        return sparse_to_ratings(obj, "ratings")
    if hasattr(obj, "columns") and hasattr(obj, "to_numpy"):  # pandas DataFrame
        return Ratings.from_arrays(*(obj.iloc[:, j].to_numpy() for j in _frame_columns(list(obj.columns))))
    if isinstance(obj, tuple) and len(obj) == 3:
        return Ratings.from_arrays(*obj)
    raise TypeError("ratings must be a (users, items, ratings) tuple, a pandas DataFrame, a scipy.sparse "
                    f"CSR matrix, a mascot.data.Ratings or a file path (got {type(obj).__name__})")


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
