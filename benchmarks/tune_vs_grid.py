"""`mascot tune` against a hand grid (issue 20: 30 trials should find parameters within 0.5 % of
the grid's best validation RMSE, in less time than the grid).

    python benchmarks/tune_vs_grid.py [--datasets ml100k,synthetic-ml10m:0.25] [--k 128] [--epochs 50]
        [--method mascot] [--trials 30] [--threads 2] [--lrs 0.01,0.02,0.05] [--lambdas 0.01,0.03,0.05]
        [--out results/tune_vs_grid]

Per dataset: the training ratings are split into training and validation sets (mascot.tune.valid_split,
10 % per user, seed 42; the test set is not used).  The grid trains every lr x lambda pair
(lambda_p = lambda_q = lambda; the other parameters at MF's defaults) for the same epochs and
keeps the lowest validation RMSE after the last epoch; mascot.tune runs its trials (pruning on,
TPE seed 0) on the same split, then again with the grid's wall time as its time budget (Optuna's
timeout: no trial starts after it).  Wall seconds of each whole procedure.  The two alternate in
order across datasets (grid first on the first, tune first on the next), which is all the
pairing two long procedures allow on a shared host.  Writes tune_vs_grid.json and .md.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import mascot
from mascot.tune import valid_split


def grid(tr, va, lrs, lambdas, fixed):
    runs = []
    t0 = time.perf_counter()
    for lr, lam in itertools.product(lrs, lambdas):
        try:
            m = mascot.MF(lr=lr, lambda_p=lam, lambda_q=lam, **fixed).fit(tr, va)
            r = m.report_["epochs"][-1]["test_rmse"]
        except RuntimeError:  # diverged
            r = float("inf")
        runs.append({"lr": lr, "lambda": lam, "valid_rmse": r})
        print(f"  grid lr={lr:g} lambda={lam:g}: {r:.5f}", flush=True)
    secs = time.perf_counter() - t0
    best = min(runs, key=lambda x: x["valid_rmse"])
    return {"seconds": secs, "best": best, "runs": runs}


def tuned(tr, va, trials, fixed, timeout=None):
    res = mascot.tune(tr, va, n_trials=trials, timeout=timeout, seed=0, log=lambda s: print("  " + s, flush=True),
                      **fixed)
    return {"seconds": res.seconds, "valid_rmse": res.rmse, "params": res.preset(), **res.metadata()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="ml100k,synthetic-ml10m:0.25")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--method", default="mascot")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lrs", default="0.01,0.02,0.05")
    ap.add_argument("--lambdas", default="0.01,0.03,0.05")
    ap.add_argument("--out", default="results/tune_vs_grid")
    a = ap.parse_args(argv)
    lrs = [float(x) for x in a.lrs.split(",")]
    lambdas = [float(x) for x in a.lambdas.split(",")]
    fixed = {"k": a.k, "epochs": a.epochs, "method": a.method, "threads": a.threads}
    results = []
    for n, name in enumerate(a.datasets.split(",")):
        ds = mascot.data.load(name)
        tr, va = valid_split(ds.train, 0.1, 42)
        print(f"{name}: {len(tr)} training, {len(va)} validation ratings; load {os.getloadavg()[0]:.2f}", flush=True)
        order = ["grid", "tune"] if n % 2 == 0 else ["tune", "grid"]
        row = {"dataset": name, "train": len(tr), "valid": len(va), "order": order, **fixed,
               "load_before": os.getloadavg()[0]}
        for which in order:
            row[which] = grid(tr, va, lrs, lambdas, fixed) if which == "grid" else tuned(tr, va, a.trials, fixed)
        # and tune given the grid's wall time (--time-budget): what it reaches in the same time
        row["tune_budget"] = tuned(tr, va, a.trials, fixed, timeout=row["grid"]["seconds"])
        row["load_after"] = os.getloadavg()[0]
        g, t = row["grid"], row["tune"]
        row["rmse_ratio"] = t["valid_rmse"] / g["best"]["valid_rmse"]
        row["time_ratio"] = t["seconds"] / g["seconds"]
        row["budget_rmse_ratio"] = row["tune_budget"]["valid_rmse"] / g["best"]["valid_rmse"]
        print(f"{name}: grid best {g['best']['valid_rmse']:.5f} in {g['seconds']:.1f} s; tune {t['valid_rmse']:.5f} "
              f"in {t['seconds']:.1f} s (RMSE x{row['rmse_ratio']:.4f}, time x{row['time_ratio']:.2f})", flush=True)
        results.append(row)
    os.makedirs(a.out, exist_ok=True)
    from mascot._files import atomic_write
    atomic_write(os.path.join(a.out, "tune_vs_grid.json"), json.dumps(results, indent=2) + "\n")
    md = ["| dataset | grid (lr x lambda) best valid RMSE | grid s | tune trials (complete / pruned) | "
          "tune valid RMSE | tune s | RMSE tune/grid | time tune/grid | tune in the grid's time: trials, valid RMSE, "
          "RMSE / grid |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        g, t = r["grid"], r["tune"]
        md.append(f"| {r['dataset']} | {g['best']['valid_rmse']:.4f} (lr {g['best']['lr']:g}, lambda "
                  f"{g['best']['lambda']:g}) | {g['seconds']:.1f} | {t['trials']} ({t['complete']} / {t['pruned']}) | "
                  f"{t['valid_rmse']:.4f} | {t['seconds']:.1f} | {r['rmse_ratio']:.4f} | {r['time_ratio']:.2f} | "
                  f"{r['tune_budget']['trials']}, {r['tune_budget']['valid_rmse']:.4f}, {r['budget_rmse_ratio']:.4f} |")
    atomic_write(os.path.join(a.out, "tune_vs_grid.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
