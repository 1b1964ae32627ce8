"""Helpers shared by the benchmark scripts of this folder and tests/bench.

The scripts import it as a sibling module (``sys.path`` gets this folder), so that they keep
running as ``python benchmarks/NAME.py`` from any directory.

- :func:`bytes_per_element`: the element size b of the DRAM floor (docs/design.md §6) by method,
  re-exported from ``mascot.perf`` (next to ``epoch_floor_seconds``).
- :class:`Parser`: an ``argparse`` parser whose errors are one line (``PROG: error: ...``) with
  exit status 2, and :func:`die` for the checks made after parsing.
- checks of the arguments every script takes (comma lists, dataset names, output folders,
  training parameters through the library's own rules), made before any work;
- :func:`write_atomic`: temporary file in the target's folder, fsync, rename (the package's
  ``mascot._files.atomic_write``).
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import mascot
from mascot import _core
from mascot._files import atomic_write
from mascot.perf import bytes_per_element  # noqa: F401  (the scripts import it from here)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``PROG: error: MESSAGE`` on stderr, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        die(self.prog, message)


def die(prog: str, message: str, status: int = 2):
    """Prints ``PROG: error: MESSAGE`` (its first line) on stderr and exits with `status`."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "error"
    print(f"{prog}: error: {first}", file=sys.stderr, flush=True)
    sys.exit(status)


def one_line(exc: BaseException) -> str:
    """``Type: message``, first line only (a run's error in a table or a log line)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def csv_items(text: str, opt: str, allow_empty: bool = False) -> list[str]:
    """The items of a comma list, in order, without repeats; an empty item is an error."""
    if text == "" and allow_empty:
        return []
    items = [x.strip() for x in text.split(",")]
    if any(not x for x in items):
        raise ValueError(f"{opt}: '{text}' has an empty item (a comma list, e.g. a,b)")
    return list(dict.fromkeys(items))


def csv_ints(text: str, opt: str, lo: int = 1, allow_empty: bool = False) -> list[int]:
    """A comma list of integers >= lo, in order, without repeats."""
    out = []
    for x in csv_items(text, opt, allow_empty):
        try:
            v = int(x, 10)
        except ValueError:
            raise ValueError(f"{opt}: '{x}' is not an integer") from None
        if v < lo:
            raise ValueError(f"{opt}: {v} must be >= {lo}")
        out.append(v)
    return list(dict.fromkeys(out))


def check_methods(names: list[str], opt: str = "--methods") -> None:
    valid = list(_core.method_names())
    for m in names:
        if m not in valid:
            raise ValueError(f"{opt}: unknown method '{m}' (valid: {', '.join(valid)})")


def check_dataset(name: str, opt: str = "--dataset", synthetic_only: bool = False) -> None:
    """A synthetic name (optionally NAME:SCALE) or, unless synthetic_only, a prepared dataset
    (``mascot.data.data_root()/NAME/train.mrat`` exists)."""
    try:
        spec = _core.parse_synthetic_spec(name)
    except ValueError as exc:
        raise ValueError(f"{opt}: {exc}") from None
    if spec is not None:
        return
    synth = ", ".join(mascot.data.synthetic_names())
    if synthetic_only:
        raise ValueError(f"{opt}: '{name}' is not a synthetic dataset name ({synth})")
    root = mascot.data.data_root()
    if not name or name in (".", "..") or "/" in name or "\\" in name or not (root / name / "train.mrat").is_file():
        raise ValueError(f"{opt}: dataset '{name}' is neither synthetic ({synth}, optionally NAME:SCALE) "
                         f"nor prepared in {root} (no {name}/train.mrat there)")


def check_out_dir(path: str, opt: str = "--out") -> None:
    """`path` is a folder, or can be made one: no part of it is an existing non-folder."""
    if not path:
        raise ValueError(f"{opt}: empty path")
    p = os.path.abspath(path)
    if os.path.exists(p):
        if not os.path.isdir(p):
            raise ValueError(f"{opt}: '{path}' exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{opt}: folder '{path}' is not writable")
        return
    parent = os.path.dirname(p)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{opt}: '{path}' cannot be a folder: '{parent}' is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{opt}: cannot create '{path}': '{parent}' is not writable")


def check_train_params(**params) -> None:
    """The library's own checks of MF parameters (types and ranges, method, order), without
    training: raises ValueError with its message."""
    params.setdefault("device", "cpu")
    mascot.MF(**params)._config()


def check_positive_finite(v: float, opt: str, allow_zero: bool = False) -> None:
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{opt} must be a finite number {'>=' if allow_zero else '>'} 0 (got {v:g})")


def write_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same folder, fsync and a rename:
    a reader (or a resumed run) sees the old file or the new one, never a part."""
    atomic_write(path, text)
