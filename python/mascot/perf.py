"""Performance-model helpers shared by the benchmarks (DESIGN.md §6)."""
from __future__ import annotations

import time

import numpy as np


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Best-of-`repeats` single-thread copy bandwidth of this machine, bytes/s (read + write)."""
    a = np.ones((mib << 20) // 4, dtype=np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best


def epoch_floor_seconds(nnz: int, k: int, bytes_per_element: int, bandwidth: float) -> float:
    """DESIGN.md §6: one update reads and writes p_u and q_i (4 k b bytes) plus its 12-byte
    record; the epoch floor is nnz times that over the bandwidth (no cache reuse)."""
    return nnz * (4 * k * bytes_per_element + 12) / bandwidth
