"""Performance-model helpers shared by the benchmarks (DESIGN.md §6)."""
from __future__ import annotations

import time

import numpy as np

# methods whose rows live in FP32 (the competing methods keep FP32 masters); every other method
# stores the rows in FP16 (mascot's switched FP32 groups are a small share of the rows)
FP32_STORAGE = frozenset({"fp32", "mpt", "muppet", "afp"})


def bytes_per_element(method: str) -> int:
    """Bytes per factor element that an epoch of `method` moves (b of DESIGN.md §6)."""
    from . import _core

    if method not in _core.method_names():
        raise ValueError(f"unknown method {method!r}")
    return 4 if method in FP32_STORAGE else 2


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
