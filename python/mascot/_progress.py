"""Progress output of the Python front end: tqdm bars on a terminal, plain lines elsewhere.

Three users, one policy (:func:`terminal_bar`):

- ``mascot data prepare`` (:class:`ByteProgress`: bytes downloaded or parsed, per phase);
- ``MF.fit(verbose=True)`` / ``MF.resume(verbose=True)`` (:class:`EpochProgress`: one line per
  epoch);
- ``mascot experiment`` (``mascot.experiments.harness.Progress``: runs done, ETA, current run).

When the stream (stderr unless given) is a terminal and tqdm is installed, progress is a tqdm
bar redrawn in place (lines such as the epoch log go above it through ``tqdm.write``).  Otherwise
(stderr is a file or a pipe, or tqdm is not installed) progress is plain lines without carriage
returns, so logs stay readable and greppable: a byte counter prints one summary line when its
phase ends, the epoch log one line per epoch, the experiment harness one line per run.  tqdm is
optional: the ``data`` and ``experiments`` extras install it; the core needs only NumPy.
"""
from __future__ import annotations

import sys
import time
import warnings
from typing import Any, TextIO


def is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def terminal_bar(stream: TextIO, **kwargs: Any):
    """A tqdm bar writing to ``stream`` (tqdm's keyword arguments), or None when ``stream`` is no
    terminal or tqdm is not installed: the caller then prints plain lines."""
    if not is_terminal(stream):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(file=stream, leave=True, dynamic_ncols=True, **kwargs)


class ByteProgress:
    """Bytes of one phase (a download, a file parsed): a tqdm bar on a terminal, else one line
    ``LABEL: 12.3/45.6 MB ( 27.0%)   1.2 s`` when the phase ends.  Silent when ``quiet``."""

    def __init__(self, label: str, total: int | None, quiet: bool, stream: TextIO | None = None) -> None:
        self.label, self.total, self.quiet = label, total, quiet
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self._t0 = time.monotonic()
        self._bar = None if quiet else terminal_bar(self.stream, desc=label, total=total, unit="B",
                                                    unit_scale=True, unit_divisor=1000, mininterval=0.5)

    def add(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.quiet:
            mb = self.done / 1e6
            if self.total:
                msg = f"{self.label}: {mb:,.1f}/{self.total / 1e6:,.1f} MB ({100.0 * self.done / self.total:5.1f}%)"
            else:
                msg = f"{self.label}: {mb:,.1f} MB"
            self.stream.write(f"{msg} {time.monotonic() - self._t0:6.1f} s\n")
            self.stream.flush()
        self.quiet = True  # closed: a second close prints nothing


class RmseRiseWarning(UserWarning):
    """An evaluated RMSE rose more than 1 % (the core's kRmseRiseMargin) above its best so far:
    the model has begun to overfit or to diverge (lower lr, raise lambda_p / lambda_q, or use
    early_stop).  Raised once per rise, again only after a new best."""


RISE_MARGIN = 0.01  # mascot/report.h kRmseRiseMargin


def rise_text(x: dict) -> str:
    what = "validation" if x["set"] == "valid" else "test"
    return (f"{what} RMSE {x['now']:.6f} after epoch {x['epoch'] + 1} is more than {RISE_MARGIN:.0%} above its "
            f"best {x['best']:.6f} (epoch {x['best_epoch'] + 1})")


def warn_rise(x: dict) -> None:
    warnings.warn(rise_text(x), RmseRiseWarning, stacklevel=2)


def epoch_line(rec: dict) -> str:
    """One epoch of a training run as the verbose log shows it."""
    rmse = "-" if rec["test_rmse"] is None else f"{rec['test_rmse']:.6f}"
    line = (f"epoch {rec['epoch'] + 1:4d}  lr {rec['lr']:.6f}  train {rec['train_seconds']:.3f}s  "
            f"eval {rec['eval_seconds']:.3f}s  test_rmse {rmse}")
    if rec.get("valid_rmse") is not None:  # a run with a validation hold-out (valid_fraction)
        line += f"  valid_rmse {rec['valid_rmse']:.6f}"
    return line


class EpochProgress:
    """The verbose log of a training run: one :func:`epoch_line` per epoch, and on a terminal
    with tqdm a bar below them (epochs done of ``total``, time left).  Does nothing unless
    ``verbose``.  ``done``: epochs finished before this run (a resumed checkpoint)."""

    def __init__(self, verbose: bool, total: int | None = None, done: int = 0, stream: TextIO | None = None) -> None:
        self.verbose = verbose
        self.stream = sys.stderr if stream is None else stream
        self._bar = terminal_bar(self.stream, desc="fit", total=total, initial=done, unit="epoch") if verbose else None

    def epoch(self, rec: dict) -> None:
        for x in rec.get("rises", ()):  # the guard: always, verbose or not
            warn_rise(x)
        if not self.verbose:
            return
        if self._bar is None:
            print(epoch_line(rec), file=self.stream, flush=True)
            return
        self._bar.write(epoch_line(rec), file=self.stream)
        self._bar.update(rec["epoch"] + 1 - self._bar.n)  # the record's epoch is absolute (resume)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
