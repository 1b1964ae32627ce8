import os
import pathlib
import sys

import pytest

from mascot import data, perf

# benchmarks/benchutil.py: the helpers the benchmark scripts share (bytes_per_element, ...)
BENCH_DIR = str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks")
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)


@pytest.fixture(scope="session")
def bench_data():
    """synthetic-ml10m (full size unless MASCOT_BENCH_SCALE says otherwise)."""
    scale = float(os.environ.get("MASCOT_BENCH_SCALE", "1.0"))
    return data.synthetic("synthetic-ml10m", scale=scale, seed=42)


@pytest.fixture(scope="session")
def copy_bandwidth():
    """Copy bandwidth of this machine measured now (bytes/s, read + write counted)."""
    return perf.copy_bandwidth()
