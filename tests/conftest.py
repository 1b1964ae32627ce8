import os
import shutil
import sysconfig

import numpy as np
import pytest


def _find_trainer():
    # MASCOT_TRAIN names another build's executable (scripts/cuda_emu_check.sh: the emulated one)
    if os.environ.get("MASCOT_TRAIN"):
        return os.environ["MASCOT_TRAIN"]
    exe = os.path.join(sysconfig.get_path("scripts"), "mascot_train")
    return exe if os.path.exists(exe) else shutil.which("mascot_train")


@pytest.fixture(scope="session")
def trainer_exe():
    exe = _find_trainer()
    if exe is None:
        pytest.fail("mascot_train is not installed (pip install . puts it in the environment's scripts dir)")
    return exe


@pytest.fixture
def tiny():
    """A tiny random rating set with a planted rank-2 structure (users, items, ratings, nu, ni)."""
    rng = np.random.default_rng(7)
    nu, ni, n = 40, 25, 600
    pairs = rng.choice(nu * ni, size=n, replace=False)
    u = (pairs // ni).astype(np.int32)
    i = (pairs % ni).astype(np.int32)
    a, b = rng.normal(size=(nu, 2)), rng.normal(size=(ni, 2))
    r = np.clip(np.round(3 + (a[u] * b[i]).sum(1)), 1, 5).astype(np.float32)
    return u, i, r, nu, ni
