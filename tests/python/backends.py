"""Helpers for backend-parametrised tests (the `backend` fixture lives in conftest.py)."""

GPU_SKIP_REASON = "no CUDA device visible"
# Methods the cuda device implements (all of docs/design.md §4).
CUDA_METHODS = ("fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp")


def backend_k(backend, k):
    """k on the CPU; on the cuda device the next multiple of 32 (>= 32): every k in [1, 512] runs
    there, but the whole-row layouts (k = 32, 64, 128, ...) are the ones these tests cover."""
    return k if backend == "cpu" else max(32, (k + 31) // 32 * 32)


def host_has_avx2():
    """Whether this x86 host can run the AVX2 kernels (avx2, f16c and fma in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx2", "f16c", "fma"} <= flags
    except OSError:
        pass
    return False
