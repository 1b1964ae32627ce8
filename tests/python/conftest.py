"""Backend parametrisation (STYLE.md habit 10): one test body runs on every backend present.

`backend` is "cpu" or "cuda"; the cuda case carries the `gpu` marker and is skipped (reported
as skipped, never as passed) when no CUDA device is visible.  The CUDA kernels take any k up to
512; tests with a small k on the CPU run a multiple of 32 there (backends.backend_k).
"""
import functools

import pytest

import mascot
from backends import GPU_SKIP_REASON


@pytest.fixture(autouse=True)
def _cpu_unless_a_device_is_named(monkeypatch):
    """Test bodies that name no device were written as CPU tests (several compare with the
    NumPy reference bit for bit): on a GPU machine `auto` would send them to the cuda device,
    so they run on the CPU unless they pass `device` (the backend-parametrised ones do)."""
    init = mascot.MF.__init__

    @functools.wraps(init)
    def cpu_default(self, *args, device="cpu", **kw):
        init(self, *args, device=device, **kw)

    monkeypatch.setattr(mascot.MF, "__init__", cpu_default)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def backend(request):
    if request.param == "cuda" and mascot.cuda_device_count() == 0:
        pytest.skip(GPU_SKIP_REASON)
    return request.param
