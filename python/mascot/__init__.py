"""MASCOT: matrix-factorization training with low-precision latent vectors.

Data flow: ``mascot.data`` (read / generate ratings) -> ``mascot.MF.fit`` (the C++ core:
group-based reconstruction, CPU or CUDA backend) -> ``MF.predict`` / ``MF.save`` and the run
report (``MF.report_``).  The extension ``mascot._core`` only converts and forwards.
"""
from __future__ import annotations

from . import _core, data, metrics
from ._inference import UNKNOWN_POLICY, UnknownIdWarning
from ._progress import RmseRiseWarning
from .als import ALS
from .data import dataset_id_maps
from .model import MF
from .tune import tune  # Optuna is imported when tune() runs (the extra mascot[tune])

__version__: str = _core.__version__
HAS_CUDA: bool = bool(_core.HAS_CUDA)


def cuda_device_count() -> int:
    """Number of visible CUDA devices (0 in CPU-only builds or without a driver/GPU)."""
    return int(_core.cuda_device_count())


def cuda_unavailable_reason() -> str:
    """Why the GPU cannot be used, in one line ("" when it can): no CUDA backend in this build,
    no device or driver, a driver older than the build's CUDA runtime, or a device fault earlier
    in this process (after which CUDA stays unusable until the process restarts)."""
    return str(_core.cuda_unavailable_reason())


__all__ = ["MF", "data", "HAS_CUDA", "cuda_device_count", "cuda_unavailable_reason", "__version__"]
__all__ += ["metrics", "dataset_id_maps", "UnknownIdWarning", "UNKNOWN_POLICY", "ALS", "tune", "RmseRiseWarning"]
