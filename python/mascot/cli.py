"""The ``mascot`` console command.  ``mascot info`` describes the build; ``mascot train ...``
runs the standalone trainer ``mascot_train`` with the same arguments; ``mascot data ...``
prepares and lists real datasets (:mod:`mascot.datasets`)."""
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
        print("usage: mascot {info | train [mascot_train options] | data {prepare,list,info} ...}")
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
    if cmd == "data":
        return data_main(rest)
    print(f"mascot: error: unknown command {cmd!r} (use info, train or data)", file=sys.stderr)
    return 2


def data_main(argv: list[str]) -> int:
    """``mascot data prepare|list|info``: exit 0 on success, 2 on usage or bad input, 1 when a
    download fails."""
    import argparse
    import json

    from . import data as _data
    from . import datasets

    ap = argparse.ArgumentParser(prog="mascot data", description="Prepare and inspect real datasets "
                                 "in $MASCOT_DATA (default ~/.cache/mascot).")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("prepare", help="download / read and prepare a dataset")
    p.add_argument("name", choices=datasets.DATASETS)
    p.add_argument("--source", metavar="PATH", help="local upstream files (required for netflix and yahoo; "
                   "for MovieLens a directory holding the GroupLens zip, or the zip)")
    p.add_argument("--fold", type=int, default=1, help="MovieLens test fold 1..5 (default 1); fold f > 1 is "
                   "prepared as NAME-foldF")
    p.add_argument("--seed", type=int, default=datasets.DEFAULT_SEED, help="seed of the MovieLens folds")
    p.add_argument("--raw-scale", action="store_true", help="yahoo: keep scores 0..100 (default r/25 + 1)")
    p.add_argument("--out", metavar="NAME", help="directory name under $MASCOT_DATA (default NAME or NAME-foldF)")
    p.add_argument("--index-url", metavar="URL", help="PyPI index for the ml100k fallback")
    p.add_argument("--force", action="store_true", help="replace an already prepared dataset")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    sub.add_parser("list", help="prepared datasets with their counts")
    p = sub.add_parser("info", help="meta.json of a prepared dataset (without the id maps)")
    p.add_argument("name")
    a = ap.parse_args(argv)  # exits 2 on usage errors
    try:
        if a.action == "prepare":
            path = datasets.prepare(a.name, a.source, fold=a.fold, seed=a.seed, force=a.force,
                                    raw_scale=a.raw_scale, out=a.out, quiet=a.quiet, index_url=a.index_url)
            print(path)
        elif a.action == "list":
            rows = datasets.prepared()
            if not rows:
                print(f"no prepared datasets in {_data.data_root()} (run `mascot data prepare NAME`)")
            for m in rows:
                if "error" in m:
                    print(f"{m['name']:<16} unreadable meta.json: {m['error']}")
                    continue
                c = m.get("counts", {})
                print(f"{m['name']:<16} {m.get('dataset', '?'):<8} users {c.get('users', 0):>10,}  items "
                      f"{c.get('items', 0):>8,}  train {c.get('train', 0):>12,}  test {c.get('test', 0):>10,}")
        else:
            print(json.dumps(datasets.summary(_data.meta(a.name)), indent=2))
    except datasets.DownloadError as e:
        print(f"mascot data: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # DatasetError, FileNotFoundError, unreadable files
        print(f"mascot data: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mascot data: interrupted (nothing was left half-prepared)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
