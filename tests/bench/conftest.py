import os
import pathlib
import sys

import pytest

from mascot import data, perf

# benchmarks/benchutil.py: the helpers the benchmark scripts share (bytes_per_element, ...)
BENCH_DIR = str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks")
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)


# Both popularity skews (issue 23): realistic (the most-rated item holds ~0.4 % of the ratings,
# as in MovieLens-10M) and heavy (~10 %, as in music and implicit-feedback data).
SKEWS = ["synthetic-ml10m", "synthetic-ml10m-heavy"]


@pytest.fixture(scope="session", params=SKEWS)
def bench_data(request):
    """synthetic-ml10m and synthetic-ml10m-heavy (full size unless MASCOT_BENCH_SCALE says otherwise)."""
    scale = float(os.environ.get("MASCOT_BENCH_SCALE", "1.0"))
    return data.synthetic(request.param, scale=scale, seed=42)


@pytest.fixture(scope="session")
def copy_bandwidth():
    """Copy bandwidth of this machine measured now (bytes/s, read + write counted)."""
    return perf.copy_bandwidth()
