"""How the package writes files: every output goes through the core's publication mechanism,
``mascot._core.OutputSet`` (``detail::OutputSet``, cpp/include/mascot/detail/fileutil.h), which
the model directory, the LIBMF export and the rating files use from C++ as well.

One mechanism, bound rather than mirrored: the rules (symlinks followed to their target, devices
and FIFOs streamed into and never replaced, block devices refused, no output equal to an input
or to another output, directories replaced by an atomic exchange only when they hold nothing
foreign, stale temps of dead processes removed, all or none) live in one implementation, so the
Python writers cannot drift from mascot_train's.

- :func:`atomic_write`: one file, whole or not at all (the benchmark scripts, the experiment
  harness, a checkpointed fit's side file);
- :func:`staged_file`: a temp path beside the target for writers that want a path
  (matplotlib), published when the block ends without an exception;
- :class:`Outputs`: several outputs (files and directories) published together; a prepared
  dataset is a directory output filled in its staged directory;
- :func:`all_or_none`: the :func:`atomic_write` / :func:`staged_file` calls inside the block
  are published together at its end, or none of them (the experiment's tables, plots and
  report).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import _core
from ._ratings import fs_path

_BATCH: contextvars.ContextVar[Outputs | None] = contextvars.ContextVar("mascot_outputs", default=None)


class Outputs:
    """Outputs published together (``_core.OutputSet``): declare them, :meth:`prepare` (resolve,
    check and stage them; nothing the user owns is touched), fill the staged temps, and leave
    the ``with`` block: without an exception everything is published, all or none; with one
    (or when :meth:`discard` is called) everything staged is removed."""

    def __init__(self) -> None:
        self._set = _core.OutputSet()

    def input(self, path: str | bytes | os.PathLike, what: str = "") -> None:
        self._set.input(what, fs_path(path, what or "path"))

    def file(self, path: str | bytes | os.PathLike, what: str = "") -> int:
        return self._set.file(what, fs_path(path, what or "path"))

    def directory(self, path: str | bytes | os.PathLike, own: Sequence[str], *, marker: str = "",
                  replace: bool = True, content: str = "the output", what: str = "") -> int:
        """A directory replaced as a whole: an existing one must hold nothing but names in
        ``own`` (and ``marker`` when given); ``replace=False`` refuses any existing one."""
        return self._set.directory(what, fs_path(path, what or "path"), list(own), marker, replace, content)

    def model_directory(self, path: str | bytes | os.PathLike, what: str = "") -> int:
        """A model directory (the core's rules: P.npy, Q.npy, model.json and the optional files)."""
        return self._set.model_directory(what, fs_path(path, what or "path"))

    def prepare(self) -> None:
        self._set.prepare()

    def staging_path(self, handle: int) -> Path:
        return Path(self._set.staging_path(handle))

    def target_path(self, handle: int) -> Path:
        return Path(self._set.target_path(handle))

    def write(self, handle: int, data: str | bytes) -> None:
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        self._set.write(handle, data.encode("utf-8") if isinstance(data, str) else data)

    def publish(self) -> None:
        self._set.publish()

    def discard(self) -> None:
        self._set.discard()

    @property
    def notes(self) -> list[str]:
        return list(self._set.notes)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, typ, exc, tb) -> bool:
        if typ is None and not self._set.discarded:
            self.publish()
        else:
            self.discard()
        return False


def atomic_write(path: str | bytes | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` (str as UTF-8, or bytes) to ``path`` whole or not at all; inside
    :func:`all_or_none`, at the end of that block together with the others."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
    batch = _BATCH.get()
    if batch is not None:
        h = batch.file(path)
        batch.prepare()
        batch.write(h, data)
        return
    with Outputs() as out:
        h = out.file(path)
        out.prepare()
        out.write(h, data)


@contextlib.contextmanager
def staged_file(path: str | bytes | os.PathLike) -> Iterator[Path]:
    """A temp path to write ``path``'s content into; published when the block ends without an
    exception (inside :func:`all_or_none`: with the rest of that block), else removed."""
    batch = _BATCH.get()
    if batch is not None:
        h = batch.file(path)
        batch.prepare()
        yield batch.staging_path(h)
        return
    with Outputs() as out:
        h = out.file(path)
        out.prepare()
        yield out.staging_path(h)


@contextlib.contextmanager
def all_or_none() -> Iterator[Outputs]:
    """Collects the :func:`atomic_write` / :func:`staged_file` calls of the block (in this thread
    or task) and publishes them together when it ends without an exception; otherwise none of
    them is.  Nested blocks join the outermost one."""
    if _BATCH.get() is not None:
        yield _BATCH.get()
        return
    out = Outputs()
    token = _BATCH.set(out)
    try:
        with out:
            yield out
    finally:
        _BATCH.reset(token)
