"""The ``mascot`` console command.  ``mascot info`` describes the build; ``mascot train ...``
runs the standalone trainer ``mascot_train`` with the same arguments; ``mascot data ...``
prepares and lists real datasets (:mod:`mascot.datasets`); ``mascot experiment NAME ...`` runs the
experiment harness (``python -m mascot.experiments``); ``mascot tune`` searches hyper-parameters
(:mod:`mascot.tune`); ``mascot recommend`` and ``mascot evaluate``
use a saved model directory (top-N lists; RMSE and ranking metrics)."""
from __future__ import annotations

import math
import os
import re
import shutil
import sys
import sysconfig

import numpy as np

from . import _core


def _trainer() -> str | None:
    exe = "mascot_train.exe" if os.name == "nt" else "mascot_train"
    here = os.path.join(sysconfig.get_path("scripts"), exe)
    return here if os.path.exists(here) else shutil.which(exe)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: mascot {info | train [mascot_train options] | data {prepare,list,info} ..."
              " | experiment NAME [options] | tune --dataset NAME [options] | recommend MODEL_DIR --users IDS [--n N]"
              " | evaluate MODEL_DIR --test PATH [--n N]}  (see mascot COMMAND --help)")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "info":
        print(f"mascot {_core.__version__}")
        print(f"cpu kernels: {_core.kernel_isa()}")
        why = _core.cuda_unavailable_reason()
        print(f"cuda backend compiled: {bool(_core.HAS_CUDA)}; visible devices: {_core.cuda_device_count()}"
              + (f" ({why})" if why and _core.HAS_CUDA else ""))
        print(f"methods: {', '.join(_core.method_names())}")
        return 0
    if cmd == "train":
        exe = _trainer()
        if exe is None:
            print("mascot: error: mascot_train is not installed next to this package", file=sys.stderr)
            return 1
        os.execv(exe, [exe, *rest])
    if cmd == "recommend":
        return _use_command(_recommend, "recommend", rest)
    if cmd == "evaluate":
        return _use_command(_evaluate, "evaluate", rest)
    if cmd == "data":
        return data_main(rest)
    if cmd == "tune":  # hyper-parameter search (mascot.tune; Optuna, the extra mascot[tune])
        from .tune import main as tune_main
        return tune_main(rest)
    if cmd == "experiment":  # the experiment harness (mascot.experiments), in-process
        from .experiments import main as experiment_main
        return experiment_main(rest)
    print(f"mascot: error: unknown command {cmd!r} (use info, train, data, experiment, tune, recommend or evaluate)",
          file=sys.stderr)
    return 2


# ---------------------------------------------------------------- recommend / evaluate
class _ArgError(Exception):
    pass


def _parser(prog: str, desc: str):
    import argparse

    class P(argparse.ArgumentParser):
        def error(self, message: str):  # one line, exit 2 (not argparse's usage dump)
            raise _ArgError(message)

    return P(prog=f"mascot {prog}", description=desc)


def _use_command(fn, name: str, args: list[str]) -> int:
    try:
        return fn(args)
    except _ArgError as e:
        print(f"mascot {name}: error: {e} (see mascot {name} --help)", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"mascot {name}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1


_INT_ID = re.compile(r"[+-]?[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]")


def _attach_negative_values(args: list[str], options: tuple[str, ...]) -> list[str]:
    """``--users -5,3`` as ``--users=-5,3``: argparse takes a value that starts with "-" (and is
    not one plain negative number) for an option of its own."""
    out, k = [], 0
    while k < len(args):
        if args[k] in options and k + 1 < len(args) and _NEGATIVE.match(args[k + 1]):
            out.append(f"{args[k]}={args[k + 1]}")
            k += 2
        else:
            out.append(args[k])
            k += 1
    return out


def _split_ids(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise _ArgError(f"--users expects a comma-separated list of ids (got {text!r})")
    return parts


def _parse_ids(parts: list[str], raw) -> list:
    """``--users`` tokens as the model's user ids: strings when its raw ids are strings ("007"
    stays "007"), else integers written as an optional sign and ASCII digits (not "1_0", "1e3")."""
    if raw is not None and raw.dtype.kind in "US":
        return parts
    out = []
    for p in parts:
        if not _INT_ID.fullmatch(p):
            raise _ArgError(f"--users: {p!r} is not an integer id (this model's user ids are integers)")
        v = int(p)
        if not -2**63 <= v < 2**63:
            raise _ArgError(f"--users: {p} is out of range (integer ids are 64-bit)")
        out.append(v)
    return out


def _finite_float(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number (got {text!r})") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return v


def _recommend(args: list[str]) -> int:
    import warnings

    from . import MF

    p = _parser("recommend", "Top-N items for users of a saved model (MF.recommend). Output: tab-separated "
                "user, rank, item, score, one line per recommendation.")
    p.add_argument("model_dir")
    p.add_argument("--users", required=True, help="comma-separated user ids (raw ids if the model has id maps)")
    p.add_argument("--n", type=int, default=10, help="items per user (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not leave out the users' training items")
    p.add_argument("--skip-unknown", action="store_true", help="skip (and report) users not in the model")
    p.add_argument("--dataset", help="use the raw ids of prepared dataset NAME ($MASCOT_DATA/NAME/meta.json) "
                   "for a model saved without id maps (e.g. by mascot_train --dataset NAME)")
    a = p.parse_args(_attach_negative_values(args, ("--users",)))
    tokens = _split_ids(a.users)
    m = MF.load(a.model_dir)
    if a.dataset:
        from .data import dataset_id_maps

        if m.user_ids_ is not None or m.item_ids_ is not None:
            raise ValueError(f"{a.model_dir} already carries id maps; --dataset is for models without them")
        m.set_id_maps(*dataset_id_maps(a.dataset))
    users = _parse_ids(tokens, m._map("user").raw)
    if not a.include_seen and m.seen_ is None:
        raise ValueError(f"{a.model_dir} holds no training pairs (e.g. saved by mascot_train --save), so the "
                         "users' training items cannot be left out: add --include-seen")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, scores = m.recommend(users, n=a.n, exclude_seen=not a.include_seen,
                                  unknown="skip" if a.skip_unknown else "raise")
    for w in caught:
        print(f"mascot recommend: note: {w.message}", file=sys.stderr)
    out = ["user\trank\titem\tscore"]
    for r, u in enumerate(users):
        for j in range(ids.shape[1]):
            if np.isfinite(scores[r, j]):
                out.append(f"{u}\t{j + 1}\t{ids[r, j]}\t{scores[r, j]:.6g}")
    print("\n".join(out))
    return 0


def _evaluate(args: list[str]) -> int:
    import json

    from . import MF
    from .metrics import evaluate

    p = _parser("evaluate", "RMSE, precision@N, recall@N and NDCG@N of a saved model on a test set "
                "(.mrat or text, dense ids).")
    p.add_argument("model_dir")
    p.add_argument("--test", required=True, help="test ratings (.mrat or text)")
    p.add_argument("--n", type=int, default=10, help="N of the ranking metrics (default 10)")
    p.add_argument("--threshold", type=_finite_float, default=None,
                   help="relevant = test rating >= X (default: all)")
    p.add_argument("--include-seen", action="store_true", help="do not leave out the users' training items")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(args)
    m = MF.load(a.model_dir)
    if not a.include_seen and m.seen_ is None:  # the same rule as recommend: never left in silently
        raise ValueError(f"{a.model_dir} holds no training pairs (e.g. saved by mascot_train --save), so the "
                         "users' training items cannot be left out of the rankings: add --include-seen")
    r = evaluate(m, a.test, n=a.n, threshold=a.threshold, exclude_seen=not a.include_seen)
    if a.json:  # valid JSON: an undefined metric (NaN, e.g. no relevant items) is null
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()},
                         allow_nan=False))
    else:
        for k, v in r.items():
            print(f"{k:22s} {v:.6f}" if isinstance(v, float) else f"{k:22s} {v}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM / SIGHUP during ``mascot data``: unwinds like Ctrl-C (the same cleanup runs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame) -> None:
    import signal

    for s in (signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut the cleanup short
        signal.signal(s, signal.SIG_IGN)
    raise _Terminated(signum)


def _catch_termination():
    """Installs SIGTERM / SIGHUP handlers that raise _Terminated; returns the old handlers (None
    off the main thread or where there are no such signals)."""
    import signal
    import threading

    sigs = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread() or not sigs:
        return None
    return {s: signal.signal(s, _raise_terminated) for s in sigs}


def _restore_handlers(old) -> None:
    import signal

    for s, h in (old or {}).items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)


def data_main(argv: list[str]) -> int:
    """``mascot data prepare|list|info``: exit 0 on success, 2 on usage or bad input, 1 when a
    download fails or memory runs out, 130 on Ctrl-C and 128 + the signal number on SIGTERM (143)
    or SIGHUP (129); an interrupted prepare leaves nothing half-written behind."""
    import argparse
    import json

    from . import _store, datasets

    ap = argparse.ArgumentParser(prog="mascot data", description="Prepare and inspect real datasets "
                                 "in $MASCOT_DATA (default ~/.cache/mascot).",
                                 epilog="Exit status: 0 ok, 2 bad input or usage, 1 download failure or out of "
                                 "memory, 130 interrupted (Ctrl-C), 128+N killed by signal N (SIGTERM 143, "
                                 "SIGHUP 129); an interrupted prepare leaves nothing half-written behind.")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("prepare", help="download / read and prepare a dataset",
                       epilog="Exit status: 0 ok, 2 bad input, 1 download failure or out of memory, 130 on Ctrl-C, "
                       "128+N on signal N (SIGTERM 143, SIGHUP 129); nothing half-written is left behind.")
    p.add_argument("name", choices=datasets.DATASETS)
    p.add_argument("--source", metavar="PATH", help="local upstream files (required for netflix and yahoo; "
                   "for MovieLens a directory holding the GroupLens zip, or the zip)")
    p.add_argument("--fold", type=int, default=1, help="MovieLens test fold 1..5 (default 1); fold f > 1 is "
                   "prepared as NAME-foldF")
    p.add_argument("--seed", type=int, default=None, help="seed of the MovieLens folds, an integer >= 0 "
                   f"(default {datasets.DEFAULT_SEED})")
    p.add_argument("--raw-scale", action="store_true", help="yahoo: keep scores 0..100 (default r/25 + 1)")
    p.add_argument("--out", metavar="NAME", help="directory name under $MASCOT_DATA (default NAME or NAME-foldF)")
    p.add_argument("--index-url", metavar="URL", help="ml100k: PyPI index for the fallback")
    p.add_argument("--force", action="store_true", help="replace an already prepared dataset")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    sub.add_parser("list", help="prepared datasets with their counts")
    p = sub.add_parser("info", help="meta.json of a prepared dataset (without the id maps)")
    p.add_argument("name")
    a = ap.parse_args(argv)  # exits 2 on usage errors
    old_handlers = _catch_termination()
    try:
        if a.action == "prepare":
            path = datasets.prepare(a.name, a.source, fold=a.fold, seed=a.seed, force=a.force,
                                    raw_scale=a.raw_scale, out=a.out, quiet=a.quiet, index_url=a.index_url)
            print(path)
        elif a.action == "list":
            root = _store.data_root()
            if root.exists() and not root.is_dir():
                raise datasets.DatasetError(f"{root} is not a directory (MASCOT_DATA must name the directory "
                                            "that holds the prepared datasets)")
            rows = datasets.prepared()
            if not rows:
                print(f"no prepared datasets in {_store.data_root()} (run `mascot data prepare NAME`)")
            for m in rows:  # prepared() checked the fields shown; a broken meta.json is one line
                if "error" in m:
                    print(f"{m['name']:<16} unreadable meta.json: {m['error']}")
                    continue
                c = m.get("counts", {})
                print(f"{m['name']:<16} {m.get('dataset', '?'):<8} users {c.get('users', 0):>10,}  items "
                      f"{c.get('items', 0):>8,}  train {c.get('train', 0):>12,}  test {c.get('test', 0):>10,}")
        else:
            if not datasets.valid_name(a.name):  # a name, not a path: nothing outside $MASCOT_DATA
                raise datasets.DatasetError(f"invalid dataset name {a.name!r} (a directory name under "
                                            f"{_store.data_root()}, as listed by `mascot data list`)")
            try:
                m = _store.meta(a.name)  # a missing one: FileNotFoundError naming `mascot data prepare`
            except _store.MetaError as e:  # not JSON, not UTF-8, not an object
                raise datasets.DatasetError(f"{e.path}: unreadable meta.json ({e.why})") from None
            print(json.dumps(datasets.summary(m), indent=2))
    except datasets.DownloadError as e:
        print(f"mascot data: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # DatasetError, FileNotFoundError, unreadable files
        print(f"mascot data: error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print("mascot data: error: out of memory (nothing was left half-prepared)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        if isinstance(e, _Terminated):
            import signal

            print(f"mascot data: terminated by {signal.Signals(e.signum).name} (nothing was left half-prepared)",
                  file=sys.stderr)
            return 128 + e.signum
        print("mascot data: interrupted (nothing was left half-prepared)", file=sys.stderr)
        return 130
    finally:
        _restore_handlers(old_handlers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
