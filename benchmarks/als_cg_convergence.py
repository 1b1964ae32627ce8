"""Exact against approximate ALS solves (issue 21; the cuMF_ALS paper's Solution 3 claim that a
few CG steps reach the test error of the exact solve), on explicit ratings.

    python benchmarks/als_cg_convergence.py [--datasets ml100k,synthetic-ml10m:0.1] [--factors 64]
        [--iterations 15] [--regularization 0.05] [--threads 2] [--seed 42] [--out results/als_cg]

For every dataset: the test RMSE after every iteration of mascot.ALS (explicit, weighted lambda)
with the Cholesky solve and with CG of 1, 3 and 6 steps (warm-started from the previous
iteration's rows), and with CG 3 steps on FP16 Hermitians and on FP16 factors; seconds per
iteration (median) beside them.  Runs alternate per iteration count, so drift of the shared
host hits them alike.  Writes als_cg.json and als_cg.md (one table per dataset).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import mascot

VARIANTS = [("cholesky", dict(solver="cholesky")), ("cg 1", dict(solver="cg", cg_steps=1)),
            ("cg 3", dict(solver="cg", cg_steps=3)), ("cg 6", dict(solver="cg", cg_steps=6)),
            ("cg 3 FP16 A", dict(solver="cg", cg_steps=3, hermitian_dtype="float16")),
            ("cg 3 FP16 factors", dict(solver="cg", cg_steps=3, dtype="float16"))]


def load(name, seed):
    if name.startswith("synthetic-"):
        spec, _, scale = name.partition(":")
        d = mascot.data.synthetic(spec, scale=float(scale or 1.0), seed=seed)
    else:
        d = mascot.data.load(name)
    return d.train, d.test


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="ml100k,synthetic-ml10m:0.1")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--regularization", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--variants", default=",".join(v for v, _ in VARIANTS))
    p.add_argument("--out", default="results/als_cg")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    want = args.variants.split(",")
    results, md = {}, []
    for ds in args.datasets.split(","):
        train, test = load(ds, args.seed)
        print(f"{ds}: {train.n_users} users, {train.n_items} items, {len(train)} / {len(test)} ratings",
              file=sys.stderr, flush=True)
        res = {}
        for name, kw in VARIANTS:
            if name not in want:
                continue
            m = mascot.ALS(factors=args.factors, regularization=args.regularization, iterations=args.iterations,
                           implicit=False, threads=args.threads, device="cpu", random_state=args.seed, **kw)
            m.fit(train, test)
            it = m.report_["iterations"]
            res[name] = {"rmse": [r["test_rmse"] for r in it], "seconds": [r["seconds"] for r in it]}
            print(f"  {name:20s} final RMSE {it[-1]['test_rmse']:.4f}  "
                  f"{statistics.median(res[name]['seconds']):.3f} s/it", file=sys.stderr, flush=True)
        results[ds] = res
        names = list(res)
        md.append(f"**{ds}** (k = {args.factors}, weighted lambda = {args.regularization}, test RMSE after "
                  f"each iteration; last row: median seconds per iteration)\n")
        md.append("| iteration | " + " | ".join(names) + " |")
        md.append("|---|" + "---|" * len(names))
        for t in range(args.iterations):
            md.append(f"| {t + 1} | " + " | ".join(f"{res[n]['rmse'][t]:.4f}" for n in names) + " |")
        md.append("| s / it | " + " | ".join(f"{statistics.median(res[n]['seconds']):.3f}" for n in names) + " |\n")
    with open(os.path.join(args.out, "als_cg.json"), "w") as f:
        json.dump({"args": vars(args), "shared_host": True, "results": results}, f, indent=1)
    with open(os.path.join(args.out, "als_cg.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
