"""Stochastic rounding of FP16 rows: the random-walk explanation, tested on one hot row.

    python benchmarks/sr_random_walk.py [--k 128] [--rows 16] [--steps 1000000] [--out DIR]

Issue 23 saw `--rounding stochastic` blow up on heavily skewed data.  The explanation to test:
stochastic rounding (SR) is unbiased, but every store adds a zero-mean error, so a row stored N
times drifts like a random walk away from where exact arithmetic would have put it, while
round-to-nearest (RN) only drops updates smaller than half a unit in the last place (ULP).

Experiment 1, no learning ("one hot row, many tiny updates"): `rows` rows of k values
(N(0, 0.3^2), about a trained factor's size) stored in FP16 receive N zero-mean updates
delta ~ N(0, (f ULP)^2) each (f = 0.05: updates far below one ULP, as late in training).
Printed at N = 10^2 .. 10^6: the RMS distance, in ULPs, of the stored row from the exactly
accumulated one (float64) for RN and SR, and SR's predicted distance sqrt(N E|delta| / ULP)
(a store of x + delta, x on the grid, rounds up with probability delta / ULP: error variance
delta (ULP - delta)).  RN's distance is the lost signal itself, sqrt(N) f.

Experiment 2, the same row with repeated random words: the core keys the words of a store on
(epoch seed, user, item); a (user, item) pair that occurs c times in an epoch (repeated ratings,
as in the heavy-skew sets) reuses the same words c times.  Modelled as updates that repeat
in runs of c with the same words; printed: the distance for c = 1, 4, 16.

Both use the core's own rounding (`mascot._core.half_round_words`, detail/half.h) and write
DIR/sr_random_walk.json and .md.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

from mascot import _core

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from benchutil import Parser, check_out_dir, write_atomic  # noqa: E402

PROG = "sr_random_walk"


def ulp_of(x: np.ndarray) -> np.ndarray:
    """FP16 spacing at |x| (normal range; subnormal spacing 2^-24 below 2^-14)."""
    ax = np.maximum(np.abs(x).astype(np.float64), 2.0 ** -14)
    return 2.0 ** (np.floor(np.log2(ax)) - 10)


def walk(k, rows, steps, f, repeat, seed, checkpoints):
    """Distances (in ULPs, RMS over all elements) of RN and SR stored rows from the exact sum."""
    rng = np.random.default_rng(seed)
    n = k * rows
    x0 = rng.normal(0.0, 0.3, n).astype(np.float32)
    x0 = x0.astype(np.float16).astype(np.float32)  # start on the FP16 grid
    ulp = ulp_of(x0)
    exact = x0.astype(np.float64)
    rn = x0.copy()
    sr = x0.copy()
    abs_delta = 0.0
    out = {}
    words = None
    for t in range(1, steps + 1):
        delta = (rng.normal(0.0, 1.0, n) * f * ulp).astype(np.float32)
        abs_delta += float(np.mean(np.abs(delta) / ulp))
        exact += delta
        rn = (rn + delta).astype(np.float16).astype(np.float32)
        if words is None or (t - 1) % repeat == 0:
            words = rng.integers(0, 2 ** 32, n, dtype=np.uint32)
        sr = _core.half_round_words((sr + delta).astype(np.float32), words)
        if t in checkpoints:
            d_rn = math.sqrt(float(np.mean(((rn - exact) / ulp) ** 2)))
            d_sr = math.sqrt(float(np.mean(((sr - exact) / ulp) ** 2)))
            out[t] = {"rn_ulps": d_rn, "sr_ulps": d_sr, "sr_predicted_ulps": math.sqrt(abs_delta),
                      "signal_ulps": math.sqrt(float(np.mean(((exact - x0) / ulp) ** 2)))}
    return out


def main(argv=None) -> int:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000000)
    ap.add_argument("--fraction", type=float, default=0.05, help="update size in ULPs (std)")
    ap.add_argument("--out", default="results/sr_random_walk")
    a = ap.parse_args(argv)
    try:
        if a.k < 1 or a.rows < 1 or a.steps < 100:
            raise ValueError("--k and --rows must be >= 1, --steps >= 100")
        if not 0 < a.fraction < 1:
            raise ValueError("--fraction must be in (0, 1)")
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    os.makedirs(a.out, exist_ok=True)
    cps = sorted({10 ** e for e in range(2, 8) if 10 ** e <= a.steps} | {a.steps})
    res = {"walk": walk(a.k, a.rows, a.steps, a.fraction, 1, 1, set(cps))}
    rep_steps = min(a.steps, 100000)
    rep_cps = sorted({c for c in cps if c <= rep_steps} | {rep_steps})
    for c in (4, 16):
        res[f"repeat{c}"] = walk(a.k, a.rows, rep_steps, a.fraction, c, 2, set(rep_cps))
    lines = [f"sr_random_walk: k = {a.k}, {a.rows} rows, updates ~ N(0, ({a.fraction} ULP)^2), "
             f"{time.strftime('%Y-%m-%d %H:%M')}", "",
             "Distance from the exactly accumulated row (RMS, in ULPs of each value):", "",
             "| stores N | RN | SR | SR predicted sqrt(N E|d|/ULP) | exact row's own movement |",
             "|---|---|---|---|---|"]
    for n, v in sorted(res["walk"].items()):
        lines.append(f"| {n:,} | {v['rn_ulps']:.2f} | {v['sr_ulps']:.2f} | {v['sr_predicted_ulps']:.2f} "
                     f"| {v['signal_ulps']:.2f} |")
    lines += ["", "SR with each word reused for c consecutive stores (a pair repeated c times in an epoch):", "",
              "| stores N | c = 1 | c = 4 | c = 16 |", "|---|---|---|---|"]
    for n in rep_cps:
        c1 = res["walk"].get(n)
        lines.append(f"| {n:,} | {c1['sr_ulps']:.2f} | {res['repeat4'][n]['sr_ulps']:.2f} "
                     f"| {res['repeat16'][n]['sr_ulps']:.2f} |" if c1 else f"| {n:,} | | "
                     f"{res['repeat4'][n]['sr_ulps']:.2f} | {res['repeat16'][n]['sr_ulps']:.2f} |")
    md = "\n".join(lines) + "\n"
    write_atomic(os.path.join(a.out, "sr_random_walk.json"),
                 json.dumps({"args": vars(a),
                             "results": {k: {str(n): v for n, v in r.items()} for k, r in res.items()}}, indent=1))
    write_atomic(os.path.join(a.out, "sr_random_walk.md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
