import os
import time

import numpy as np
import pytest

from mascot import data


@pytest.fixture(scope="session")
def bench_data():
    """synthetic-ml10m (full size unless MASCOT_BENCH_SCALE says otherwise)."""
    scale = float(os.environ.get("MASCOT_BENCH_SCALE", "1.0"))
    return data.synthetic("synthetic-ml10m", scale=scale, seed=42)


@pytest.fixture(scope="session")
def copy_bandwidth():
    """Copy bandwidth of this machine measured now (bytes/s, read + write counted)."""
    a = np.ones(64 << 20, dtype=np.float32)  # 256 MiB
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best
