"""Performance-model helpers shared by the benchmarks (docs/design.md §6)."""
from __future__ import annotations

import time

import numpy as np


def bytes_per_element(method: str) -> int:
    """Bytes per factor element that an epoch of `method` moves (b of docs/design.md §6): the core's
    method-traits table (FP32 rows and the competing methods' FP32 masters: 4; FP16 rows: 2,
    mascot's switched FP32 groups being a small share of the rows)."""
    from . import _core

    traits = _core.method_traits()
    if method not in traits:
        raise ValueError(f"unknown method {method!r}")
    return traits[method]["bytes_per_element"]


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
    """docs/design.md §6: one update reads and writes p_u and q_i (4 k b bytes) plus its 12-byte
    record; the epoch floor is nnz times that over the bandwidth (no cache reuse)."""
    return nnz * (4 * k * bytes_per_element + 12) / bandwidth
