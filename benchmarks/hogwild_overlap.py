"""What a device-filling Hogwild grid does to SGD on skewed data: a NumPy model.

    python benchmarks/hogwild_overlap.py [--scale 0.02] [--workers 1,2,64,1024,8448] [--epochs 12]
                                         [--writes store,add]

W workers update the model at once.  Modelled as waves of W ratings that all read the rows as
they were at the start of the wave.  `store` writes the new rows back in order, so the last
writer of a row wins: the most-rated row (a share f of the ratings) loses all but one of its
~W x f updates per wave.  `add` adds every worker's change to the row (the CUDA backend's
default, PTX red.add; cpp/include/mascot/detail/hogwild.h): nothing is lost, the workers only
read rows up to one wave stale.  fp32, k = 32, 12 epochs, the defaults' learning rate and
regularisation, a fresh permutation every epoch.  Prints the final test RMSE per W and write
mode with W x f.  Figures (2026-11-22, this machine, CPU only; docs/cuda.md):
  store  synthetic-ml10m:0.02  f = 2.9 %   W = 1: 0.97809  2: 0.97815  64: 0.98405  1024: 1.09021  8448: 3.70540
  store  synthetic-ml10m       f = 0.42 %  W = 64: 0.64366  356: 0.64572  2048: 0.66335  8448: 0.79500
  store  synthetic-ml10m:0.02, --epochs 50   W = 1: 0.91377  32: 0.91593  256: 0.92449  2048: 1.01538  8448: 3.61983
  add    synthetic-ml10m:0.02  W = 1: 0.97809  64: 0.97813  1024: 0.97868  1096: 0.97871  2192: 0.97935  8448: 0.98294
  add    synthetic-ml10m       W = 2048: 0.64339  8448: 0.64343
  add    synthetic-ml10m:0.02, --half   W = 1: 0.97804  1096: 0.97873  8448: 0.98293
"""
import math
import os
import sys

import numpy as np

import mascot

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the sibling helper module, however this script is started
    sys.path.insert(0, _HERE)
from benchutil import Parser, check_dataset, csv_ints, csv_items  # noqa: E402

PROG = "hogwild_overlap"


def run(tr, te, W, k=32, epochs=12, lr0=0.01, decay=0.1, lp=0.01, lq=0.015, seed=3, writes="store", half=False):
    """Final test RMSE.  half: rows stored in FP16 (mascot-n1), the update in FP32 and rounded to
    nearest on the write; "add" then adds the half change new_half - old (as the CUDA kernel
    does), each add rounded to half in turn (ufunc.at on a float16 array)."""
    rng = np.random.default_rng(seed)
    dt = np.float16 if half else np.float32
    P = (rng.standard_normal((tr.n_users, k)) * 0.01).astype(dt)
    Q = (rng.standard_normal((tr.n_items, k)) * 0.01).astype(dt)
    u, i, r = tr.users, tr.items, tr.ratings.astype(np.float32)
    n = len(r)
    for e in range(epochs):
        lr = np.float32(lr0 / (1 + decay * e ** 1.5))
        perm = rng.permutation(n)
        for s in range(0, n, W):
            b = perm[s:s + W]
            pu, qi = P[u[b]].astype(np.float32), Q[i[b]].astype(np.float32)
            err = r[b] - np.einsum("ij,ij->i", pu, qi)
            if half:  # cp p + ce q as the kernels compute it, rounded on the write
                np_ = (pu * (1 - lr * lp) + lr * err[:, None] * qi).astype(dt).astype(np.float32)
                nq = (qi * (1 - lr * lq) + lr * err[:, None] * pu).astype(dt).astype(np.float32)
            else:
                np_ = pu + lr * (err[:, None] * qi - lp * pu)
                nq = qi + lr * (err[:, None] * pu - lq * qi)
            if writes == "store":
                P[u[b]] = np_.astype(dt)  # fancy assignment: the last writer wins
                Q[i[b]] = nq.astype(dt)
            else:
                np.add.at(P, u[b], (np_ - pu).astype(dt))  # every change lands
                np.add.at(Q, i[b], (nq - qi).astype(dt))
    pred = np.einsum("ij,ij->i", P[te.users].astype(np.float32), Q[te.items].astype(np.float32))
    return float(np.sqrt(np.mean((te.ratings - pred) ** 2)))


def parse_args(argv=None):
    """The arguments, every one checked before any work (one-line error, exit status 2)."""
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-ml10m")
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--workers", default="1,2,64,1024,8448")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--writes", default="store,add", help="comma-separated: store, add")
    ap.add_argument("--half", action="store_true", help="FP16 rows (mascot-n1) instead of FP32")
    a = ap.parse_args(argv)
    try:
        check_dataset(a.dataset, synthetic_only=True)
        if not (math.isfinite(a.scale) and 0 < a.scale <= 1):
            raise ValueError(f"--scale must be a number in (0, 1] (got {a.scale:g})")
        a.worker_list = csv_ints(a.workers, "--workers")
        if a.epochs < 1:
            raise ValueError(f"--epochs must be >= 1 (got {a.epochs})")
        a.modes = csv_items(a.writes, "--writes")
        if any(m not in ("store", "add") for m in a.modes):
            raise ValueError(f"--writes takes store and/or add, got '{a.writes}'")
    except ValueError as exc:
        ap.error(str(exc))
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        d = mascot.data.synthetic(a.dataset, a.scale, seed=1)
        f = max(np.bincount(d.train.items).max(), np.bincount(d.train.users).max()) / len(d.train.ratings)
        print(f"{a.dataset}:{a.scale}: {len(d.train.ratings)} ratings, most-rated row f = {f:.4f}")
        for w in a.worker_list:
            for m in a.modes:
                rmse = run(d.train, d.test, w, epochs=a.epochs, writes=m, half=a.half)
                print(f"{m:5s}  W = {w:5d}  W x f = {w * f:7.2f}  final test RMSE {rmse:.5f}", flush=True)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
