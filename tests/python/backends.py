"""Helpers for backend-parametrised tests (the `backend` fixture lives in conftest.py)."""

GPU_SKIP_REASON = "no CUDA device visible"
# Methods the cuda device implements; muppet and afp fail there with a clear
# "not implemented on the cuda device yet" error (test_gpu.py checks it).
CUDA_METHODS = ("fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt")


def backend_k(backend, k):
    """k on the CPU; the nearest supported k (a multiple of 32, >= 32) on the cuda device."""
    return k if backend == "cpu" else max(32, (k + 31) // 32 * 32)
