"""Backend parametrisation (STYLE.md habit 10): one test body runs on every backend present.

`backend` is "cpu" or "cuda"; the cuda case carries the `gpu` marker and is skipped (reported
as skipped, never as passed) when no CUDA device is visible.  The CUDA kernels need k to be a
multiple of 32 (up to 512): tests with a smaller k on the CPU use backends.backend_k.
"""
import pytest

import mascot
from backends import GPU_SKIP_REASON


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def backend(request):
    if request.param == "cuda" and mascot.cuda_device_count() == 0:
        pytest.skip(GPU_SKIP_REASON)
    return request.param
