"""Progress output (mascot._progress): a tqdm bar when the stream is a terminal and tqdm is
installed, plain lines otherwise (a file, a pipe, or no tqdm), silence when quiet."""
import io
import re
import sys

import numpy as np
import pytest

import mascot
from mascot import _progress
from mascot.experiments import harness


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError


@pytest.fixture
def with_tqdm():
    pytest.importorskip("tqdm")


def _epoch(k, rmse=0.9):
    return {"epoch": k, "lr": 0.01, "train_seconds": 0.25, "eval_seconds": 0.0, "test_rmse": rmse}


def _bytes(stream, quiet=False):
    p = _progress.ByteProgress("parsing f.txt", 3_000_000, quiet, stream=stream)
    p.add(1_000_000)
    p.add(2_000_000)
    p.close()
    p.close()  # a second close prints nothing
    return stream.getvalue()


PLAIN_BYTES = re.compile(r"parsing f\.txt: 3\.0/3\.0 MB \(100\.0%\) +\d+\.\d s\n")


def test_bytes_on_a_terminal_are_a_tqdm_bar(with_tqdm):
    out = _bytes(Terminal())
    assert "\r" in out and "parsing f.txt: 100%|" in out and "3.00M/3.00M" in out
    assert not PLAIN_BYTES.search(out)


def test_bytes_elsewhere_or_without_tqdm_are_one_line(no_tqdm):
    assert PLAIN_BYTES.fullmatch(_bytes(Terminal()))


def test_bytes_in_a_file_are_one_line_even_with_tqdm():
    assert PLAIN_BYTES.fullmatch(_bytes(io.StringIO()))
    assert _bytes(Terminal(), quiet=True) == "" and _bytes(io.StringIO(), quiet=True) == ""


def test_epochs_on_a_terminal_log_lines_above_a_bar(with_tqdm):
    s = Terminal()
    with _progress.EpochProgress(True, 4, done=1, stream=s) as log:  # resumed after epoch 1
        for k in (1, 2, 3):
            log.epoch(_epoch(k, None if k == 2 else 0.9))
    out = s.getvalue()
    lines = re.findall(r"epoch +\d+ .*\n", out)
    assert [ln.split()[1] for ln in lines] == ["2", "3", "4"]
    assert "test_rmse -" in lines[1] and "test_rmse 0.900000" in lines[2]
    assert "fit: 100%|" in out and "4/4" in out


def test_epochs_without_tqdm_or_a_terminal_are_plain_lines(no_tqdm):
    for s in (Terminal(), io.StringIO()):
        with _progress.EpochProgress(True, 2, stream=s) as log:
            log.epoch(_epoch(0))
            log.epoch(_epoch(1))
        assert s.getvalue() == (f"{_progress.epoch_line(_epoch(0))}\n{_progress.epoch_line(_epoch(1))}\n")
        assert s.getvalue().startswith("epoch    1  lr 0.010000  train 0.250s  eval 0.000s  test_rmse 0.900000\n")
    s = Terminal()
    with _progress.EpochProgress(False, 2, stream=s) as log:
        log.epoch(_epoch(0))
    assert s.getvalue() == ""


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    return rng.integers(0, 30, 400), rng.integers(0, 20, 400), rng.uniform(1, 5, 400)


def test_fit_verbose_on_a_terminal(tiny, monkeypatch, with_tqdm):
    monkeypatch.setattr(sys, "stderr", Terminal())
    mascot.MF(k=4, groups=2, epochs=3, threads=1, verbose=True).fit(tiny, tiny)
    out = sys.stderr.getvalue()
    assert len(re.findall(r"epoch +\d+ .*test_rmse \d", out)) == 3 and "fit: 100%|" in out and "3/3" in out


def test_fit_verbose_without_tqdm(tiny, monkeypatch, no_tqdm):
    monkeypatch.setattr(sys, "stderr", Terminal())
    mascot.MF(k=4, groups=2, epochs=3, threads=1, verbose=True).fit(tiny, tiny)
    lines = sys.stderr.getvalue().splitlines()
    assert len(lines) == 3 and all(ln.startswith("epoch ") and "\r" not in ln for ln in lines)


def test_experiment_progress_on_a_terminal(with_tqdm):
    p = harness.Progress(10, stream=Terminal(), done=8)  # 8 runs found finished
    p.show("cell-9")
    p.step()
    p.show("cell-10")
    p.step()
    p.finish()
    out = p.stream.getvalue()
    assert "8/10" in out and "10/10" in out and "cell-10" in out and "run" in out


def test_experiment_progress_without_tqdm_is_one_line_per_run(no_tqdm):
    p = harness.Progress(10, stream=Terminal(), done=8)
    p.show("cell-9")
    p.step()
    p.finish()
    assert p.stream.getvalue() == "[################....] 8/10  80%  eta ?  cell-9\n"
    q = harness.Progress(10, quiet=True, stream=Terminal())
    q.show("x")
    q.finish()
    assert q.stream.getvalue() == ""
