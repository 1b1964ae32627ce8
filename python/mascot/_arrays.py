"""Array helpers shared by the Python layer."""
from __future__ import annotations

import numpy as np


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` for large 1-D integer arrays, by sorting.  NumPy 2.3+ answers a plain
    ``np.unique`` of integers with a hash table that is 10-50x slower than a sort on our keys
    (measured, NumPy 2.4.6: 8 M (user, item) keys of synthetic-ml10m took 36.7 s against 0.79 s)."""
    s = np.sort(np.asarray(a).ravel())
    if len(s) < 2:
        return s
    keep = np.empty(len(s), bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]
