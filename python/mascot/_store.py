"""The prepared-dataset store: where prepared datasets live and how one looks on disk.

A prepared dataset is the directory ``data_root()/NAME`` holding ``train.mrat`` and
``test.mrat`` (dense 0-based ids) and ``meta.json`` (format tag and version, counts, sources
and their SHA-256, the split, the rating scale, and the id maps ``user_ids`` / ``item_ids``: the
raw upstream id of each dense id).  The data root and a name's train / test files are the core's
(``_core.data_root``, ``_core.resolve_dataset``: mascot_train resolves ``--dataset`` the same way);
this module is the only Python one that knows the file names, and
:func:`read_meta` is the one reader of ``meta.json``: ``mascot.data.meta``,
``mascot.dataset_id_maps``, ``mascot data list`` / ``info`` and :func:`prepared` all go through
it.  The one writer is ``mascot.datasets.prepare``: it fills the staged directory of a directory
output (``mascot._files``) with :func:`write`, which is then put in place.

Imports go one way: this module needs the core and the leaf type module ``mascot._ratings``;
``mascot.data`` (the users' facade) and ``mascot.datasets`` (preparation) import it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _core, _ratings
from ._ratings import Ratings, write_mrat

FORMAT = "mascot-dataset"
FORMAT_VERSION = 1
META_FILE = "meta.json"
TRAIN_FILE = "train.mrat"
TEST_FILE = "test.mrat"
ID_MAPS = ("user_ids", "item_ids")
DATASET_FILES = (TRAIN_FILE, TEST_FILE, META_FILE)  # all a prepared dataset's directory holds


def data_root() -> Path:
    """``$MASCOT_DATA``, default ``~/.cache/mascot``: where prepared datasets live (the core's
    rule, which mascot_train follows too)."""
    return Path(_core.data_root())


def valid_name(name: str) -> bool:
    """Whether ``name`` can name a prepared dataset: one directory directly under $MASCOT_DATA
    (not empty, no path separator, not hidden)."""
    return bool(name) and "/" not in name and os.sep not in name and not name.startswith(".") and "\0" not in name


class MetaError(ValueError):
    """A ``meta.json`` that is not a readable JSON object; ``str()`` is ``"PATH: why"``."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def read_meta(directory: str | os.PathLike) -> dict:
    """``directory/meta.json`` as a dict.  A missing file is a FileNotFoundError saying that the
    dataset (the directory's name) is not prepared; bytes that are not a UTF-8 JSON object are a
    :class:`MetaError`; other I/O problems an OSError."""
    f = Path(directory) / META_FILE
    try:
        raw = f.read_bytes()
    except FileNotFoundError:
        name = Path(directory).name
        raise FileNotFoundError(f"dataset {name!r} is not prepared: {f} does not exist "
                                f"(run `mascot data prepare {name}`)") from None
    try:
        m = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MetaError(f, f"not valid JSON (not UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise MetaError(f, f"not valid JSON ({e})") from None
    except RecursionError:
        raise MetaError(f, "not valid JSON (nested too deeply)") from None
    if not isinstance(m, dict):
        raise MetaError(f, "not a JSON object")
    return m


def meta(name: str) -> dict:
    """The ``meta.json`` of prepared dataset ``name`` (see :func:`read_meta`)."""
    return read_meta(data_root() / name)


def id_maps(name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``user_ids`` / ``item_ids`` of prepared dataset ``name`` (the raw id of each dense id),
    each None when its meta.json has none."""
    m = meta(name)

    def get(key: str) -> np.ndarray | None:
        v = m.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise MetaError(data_root() / name / META_FILE, f"{key} must be a list")
        return np.asarray(v) if v else np.zeros(0, np.int64)

    return get("user_ids"), get("item_ids")


def read_dataset(name: str) -> tuple[Ratings, Ratings]:
    """(train, test) of prepared dataset ``name``; the test set is empty when there is none.  The
    files are the ones mascot_train --dataset reads (the core resolves the name)."""
    src = _core.resolve_dataset(name)
    if src["kind"] != "prepared":
        raise ValueError(f"{name!r} names a synthetic dataset, not a prepared one")
    if src["unavailable"]:
        raise FileNotFoundError(src["unavailable"])
    return _ratings.read(src["train"]), _ratings.read(src["test"]) if src["test"] else _ratings.empty()


def write(directory: Path, train: Ratings, test: Ratings, meta: dict[str, Any]) -> None:
    """Writes the three files of a prepared dataset into ``directory`` (a staged directory that
    the caller publishes)."""
    write_mrat(directory / TRAIN_FILE, train)
    write_mrat(directory / TEST_FILE, test)
    with open(directory / META_FILE, "w") as f:
        json.dump(meta, f, separators=(",", ":"))
        f.write("\n")


def prepared(root: str | os.PathLike | None = None) -> list[dict]:
    """Summaries (meta.json without the id maps) of every prepared dataset under ``root``;
    ``name`` is the directory's.  A dataset whose meta.json cannot be read or lacks the fields
    a listing shows (an object with integer ``counts``) is ``{"name": ..., "error": why}``."""
    rootp = Path(root) if root is not None else data_root()
    out = []
    if rootp.is_dir():
        for d in sorted(rootp.iterdir()):
            if d.name.startswith(".") or not (d / META_FILE).exists():
                continue
            try:
                m = read_meta(d)
                c = m.get("counts")
                if not isinstance(c, dict) or not all(type(c.get(k)) is int
                                                      for k in ("users", "items", "train", "test")):
                    raise ValueError("no 'counts' object with integer users, items, train and test")
                if not isinstance(m.get("dataset", ""), str):
                    raise ValueError("dataset must be a string")
            except (OSError, ValueError) as e:
                out.append({"name": d.name, "error": e.why if isinstance(e, MetaError) else str(e)})
                continue
            out.append({**summary(m), "name": d.name})
    return out


def summary(meta: dict) -> dict:
    """``meta`` without the (long) id maps."""
    return {k: v for k, v in meta.items() if k not in ID_MAPS}
