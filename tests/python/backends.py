"""Helpers for backend-parametrised tests (the `backend` fixture lives in conftest.py)."""

GPU_SKIP_REASON = "no CUDA device visible"
# Methods the cuda device implements (all of DESIGN.md §4).
CUDA_METHODS = ("fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp")


def backend_k(backend, k):
    """k on the CPU; the nearest supported k (a multiple of 32, >= 32) on the cuda device."""
    return k if backend == "cpu" else max(32, (k + 31) // 32 * 32)
