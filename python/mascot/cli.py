"""The ``mascot`` console command.  ``mascot info`` describes the build; ``mascot train ...``
runs the standalone trainer ``mascot_train`` with the same arguments; ``mascot experiment NAME ...``
runs the experiment harness (``python -m mascot.experiments``)."""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from . import _core


def _trainer() -> str | None:
    exe = "mascot_train.exe" if os.name == "nt" else "mascot_train"
    here = os.path.join(sysconfig.get_path("scripts"), exe)
    return here if os.path.exists(here) else shutil.which(exe)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: mascot {info | train [mascot_train options] | experiment NAME [options]}")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "info":
        print(f"mascot {_core.__version__}")
        print(f"cpu kernels: {_core.kernel_isa()}")
        print(f"cuda backend compiled: {bool(_core.HAS_CUDA)}; visible devices: {_core.cuda_device_count()}")
        print(f"methods: {', '.join(_core.method_names())}")
        return 0
    if cmd == "train":
        exe = _trainer()
        if exe is None:
            print("mascot: error: mascot_train is not installed next to this package", file=sys.stderr)
            return 1
        os.execv(exe, [exe, *rest])
    if cmd == "experiment":  # the experiment harness (mascot.experiments), in-process
        from .experiments import main as experiment_main
        return experiment_main(rest)
    print(f"mascot: error: unknown command {cmd!r} (use info, train or experiment)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
