"""Real datasets: download / read upstream files and prepare them for training.

``mascot data prepare NAME`` (or :func:`prepare`) writes
``$MASCOT_DATA/<out>/{train.mrat,test.mrat,meta.json}`` (docs/design.md §5); ``mascot_train --dataset
<out>`` and :func:`mascot.data.load` read them.  Datasets: ml100k, ml10m, ml25m
(:mod:`.movielens`, downloaded), netflix (:mod:`.netflix`) and yahoo (:mod:`.yahoo`), both from
local files; each module's docstring gives the exact upstream formats.

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

Data flow and the modules: :func:`prepare` checks its arguments, takes the lock and calls the
dataset's ``build`` (``movielens``, ``netflix``, ``yahoo``), which gets its sources
(``_download``: verified downloads cached in ``$MASCOT_DATA/.downloads``, the ml100k pip
fallback), reads them (``_parse``: blocks of whole lines, grammar checks on the bytes, pandas'
C parser, errors as ``path:line: what`` or ``archive.zip!member:line: what``; a line longer than
``MAX_LINE`` (1 MiB) is an error; input files must be regular files) and splits them
(``_split``: dense ids, folds, the every-pair-once check).  Everything is written into a
temporary directory beside the target (``mascot._store.write``, the store's one writer): the
staged directory of a directory output of ``mascot._files``, which puts it in place at the end
(an existing dataset, with ``force``, is exchanged with it atomically, and only when it holds
nothing but a dataset's files); on any error (checksum mismatch, malformed line, interruption)
it is removed.  One prepare of an output directory runs at a time (an ``flock`` on
``$MASCOT_DATA/.<out>.lock``; a second one fails at once) and it removes what a killed earlier
one left behind.  :func:`prepared` lists what is prepared (``mascot._store`` reads meta.json).

Network endpoints are overridable (for tests and mirrors): ``MASCOT_GROUPLENS_URL`` (base URL of
the MovieLens zips) and ``MASCOT_PYPI_INDEX_URL`` (a PEP 503 "simple" index for the fallback);
they are checked to be URLs before anything is fetched.  Tunables live in their modules (set
them there): ``_parse.MAX_LINE`` / ``BLOCK_BYTES``, ``_download.DOWNLOAD_*`` / ``PIP_TIMEOUT``,
``movielens.PINS``.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .. import _core, _files, _store
from .._store import FORMAT_VERSION, prepared, summary, valid_name
from . import movielens, netflix, yahoo
from ._common import DatasetError, DownloadError, RecipeOptions
from ._download import DOWNLOAD_MIN_BYTES, DOWNLOAD_TIMEOUT, DOWNLOAD_WINDOW, PIP_TIMEOUT, check_url
from ._parse import MAX_LINE
from ._split import DEFAULT_SEED, N_FOLDS, fold_indices
from .movielens import ARCHIVES as ML_ARCHIVES
from .movielens import FORMATS as ML_FORMATS
from .movielens import (
    GROUPLENS_URL,
    PINS,
    RECBOLE_HEADER,
    RECBOLE_MEMBER,
    RECBOLE_VERSION,
    RECBOLE_WHEEL,
    grouplens_url,
)
from .netflix import PROBE as NETFLIX_PROBE
from .netflix import RATINGS as NETFLIX_RATINGS
from .yahoo import FORMAT as YAHOO

try:  # POSIX: one `prepare` per output directory at a time (an advisory lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

DATASETS = ("ml100k", "ml10m", "ml25m", "netflix", "yahoo")

__all__ = ["DATASETS", "DEFAULT_SEED", "DOWNLOAD_MIN_BYTES", "DOWNLOAD_TIMEOUT", "DOWNLOAD_WINDOW", "DatasetError",
           "DownloadError", "FORMAT_VERSION", "GROUPLENS_URL", "MAX_LINE", "ML_ARCHIVES", "ML_FORMATS", "NETFLIX_PROBE",
           "NETFLIX_RATINGS", "N_FOLDS", "PINS", "PIP_TIMEOUT", "RECBOLE_HEADER", "RECBOLE_MEMBER", "RECBOLE_VERSION",
           "RECBOLE_WHEEL", "YAHOO", "check_url", "default_out_name", "fold_indices", "grouplens_url", "prepare",
           "prepared", "summary", "valid_name"]


def default_out_name(name: str, fold: int = 1) -> str:
    """Directory name of a prepared dataset: ``name`` for fold 1, ``name-fold<f>`` otherwise."""
    return name if fold == 1 or name not in ML_ARCHIVES else f"{name}-fold{fold}"


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
    fold, seed = _check_arguments(name, source, fold, seed, raw_scale, index_url)
    rootp = Path(root) if root is not None else _store.data_root()
    out = out or default_out_name(name, fold)
    if not valid_name(out) or _core.parse_synthetic_spec(out) is not None:
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
        t0 = time.monotonic()
        # the dataset is a directory output (mascot._files): built in a staged directory beside
        # the target, exchanged with an existing one atomically (--force), removed on any error
        try:
            with _files.Outputs() as outputs:
                h = outputs.directory(target, _store.DATASET_FILES, marker=_store.META_FILE, replace=force,
                                      content="a prepared dataset", what="dataset directory")
                try:
                    outputs.prepare()
                except OSError as e:  # e.g. --force over a directory holding files of the user's
                    raise DatasetError(str(e)) from None
                for note in outputs.notes:
                    print(f"mascot data: note: {note}", file=sys.stderr)
                work = outputs.staging_path(h)
                o = RecipeOptions(rootp, fold, seed, raw_scale, quiet,
                                  dict(movielens.PINS if _pins is None else _pins), index_url, work)
                counts = _prepare_into(work, name, out, src, o, t0)
        except OSError:
            if not force and target.exists():  # made meanwhile (by hand, or by a prepare that took no lock)
                raise _exists_error(target) from None
            raise
    if not quiet:
        c = counts
        print(f"prepared {target}: {c['users']:,} users, {c['items']:,} items, {c['train']:,} train, "
              f"{c['test']:,} test ({c['test_dropped']:,} dropped) in {time.monotonic() - t0:.1f} s",
              file=sys.stderr)
    return target


def _check_arguments(name: str, source: str | os.PathLike | None, fold: object, seed: object, raw_scale: bool,
                     index_url: str | None) -> tuple[int, int]:
    """The checks of :func:`prepare`'s arguments that need no file system; returns (fold, seed)."""
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
    return fold, seed


def _prepare_into(work: Path, name: str, out: str, src: Path | None, o: RecipeOptions, t0: float) -> dict:
    """Builds dataset ``name`` and writes it into ``work`` (to be published as ``out``); returns
    its meta.json counts."""
    if name in ML_ARCHIVES:
        prep, fields = movielens.build(name, src, o)
    elif name == "netflix":
        prep, fields = netflix.build(src, o)
    else:
        prep, fields = yahoo.build(src, o)
    for f in work.iterdir():  # downloads and intermediates are not part of the dataset
        if f.is_dir():
            shutil.rmtree(f)
        else:
            f.unlink()
    if not o.quiet:
        print(f"writing {len(prep.train):,} train and {len(prep.test):,} test ratings", file=sys.stderr)
    counts = {"users": prep.train.n_users, "items": prep.train.n_items, "train": len(prep.train),
              "test": len(prep.test), "test_dropped": prep.dropped}
    meta = {
        "format": _store.FORMAT, "format_version": FORMAT_VERSION, "name": out, "dataset": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mascot_version": _core.__version__,
        "counts": counts,
        **fields,
        "prepare_seconds": round(time.monotonic() - t0, 2),
        "user_ids": prep.user_ids.tolist(), "item_ids": prep.item_ids.tolist(),
    }
    _store.write(work, prep.train, prep.test, meta)
    return counts


def _exists_error(target: Path) -> DatasetError:
    what = "is already prepared" if (target / _store.META_FILE).exists() else "exists"
    return DatasetError(f"{target} {what} (use --force to replace it)")


class _PrepareLock:
    """An exclusive ``flock`` on ``root/.<out>.lock`` for the whole of one ``prepare``: a second
    prepare of the same output directory fails at once instead of racing for it.  The file is
    removed on release (a holder re-checks, after locking, that the path is still its file)."""

    def __init__(self, root: Path, out: str) -> None:
        self.path, self.out, self.fd = root / f".{out}.lock", out, -1

    def __enter__(self) -> _PrepareLock:
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
    """Removes the temporary directories that prepares of ``out`` by earlier versions of this
    package (``.<out>.tmp-XXXXXXXX``, ``.<out>.old-XXXXXXXX``) left when they were killed; called
    under the lock.  One killed between moving the old dataset aside and moving the new one in
    gets the old one back.  (The temps of this version are the output mechanism's: it removes
    those of dead processes itself.)"""
    pat = re.compile(rf"\.{re.escape(out)}\.(tmp|old)-[A-Za-z0-9_]{{8}}")
    target = root / out
    for d in sorted(root.iterdir()):
        m = pat.fullmatch(d.name)
        if not m or d.is_symlink() or not d.is_dir():
            continue
        if m.group(1) == "old" and not os.path.lexists(target) and (d / "d" / _store.META_FILE).is_file():
            os.replace(d / "d", target)
        shutil.rmtree(d, ignore_errors=True)
