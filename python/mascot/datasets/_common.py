"""What the modules of :mod:`mascot.datasets` share: the two error types and the options a
dataset recipe (``movielens.build``, ``netflix.build``, ``yahoo.build``) is given."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DatasetError(ValueError):
    """Bad input (malformed file, checksum mismatch, missing source): exit code 2 in the CLI."""


class DownloadError(OSError):
    """A source could not be fetched (network, pip): exit code 1 in the CLI."""


@dataclass
class RecipeOptions:
    """One ``prepare``'s settings, as the recipes see them."""

    root: Path  # $MASCOT_DATA (the download cache is root/.downloads)
    fold: int  # MovieLens: the test fold, 1..5
    seed: int  # MovieLens: the seed of the fold permutation
    raw_scale: bool  # Yahoo: keep the 0..100 scores
    quiet: bool  # no progress output
    pins: dict  # file name -> (hash algorithm, hex digest) that downloads and archives must match
    index_url: str | None  # ml100k: the PyPI index of the pip fallback
    work: Path  # the temporary directory that becomes the dataset (scratch files go here too)
