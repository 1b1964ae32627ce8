"""mascot.ALS against the `implicit` package's CPU ALS on implicit feedback (issue 21).

    python benchmarks/implicit_compare.py [--datasets ml100k,synthetic] [--factors 64,128]
        [--iterations 15] [--cg-steps 3] [--threads 2] [--seeds 42,43] [--alpha 1.0]
        [--regularization 0.05] [--synthetic synthetic-ml25m:0.5] [--out results/implicit_compare]

Installs nothing: `implicit` is used when importable (``pip install implicit``, its CPU build),
otherwise only MASCOT's rows are measured and the report says so.

Data (both binary: every kept pair is a positive, strength 1):
  ml100k     MovieLens-100K (``mascot data prepare ml100k``), train and test files together,
             ratings >= 4 as positives;
  synthetic  the generator's power-law data (default synthetic-ml25m:0.5, 12.5 M pairs), every
             pair a positive.
Each user's positives are split 80/20 by a seeded permutation (users with one positive keep it
in training).

The same model on both sides: factors, regularisation (plain lambda, as `implicit` has),
iterations, CG steps, threads.  Confidence: MASCOT's is Hu et al.'s c = 1 + alpha r; `implicit`
multiplies, c = alpha' r, so for 0/1 data it gets alpha' = 1 + alpha.  Initial factors differ
(MASCOT N(0, 0.01^2) from its counter-based generator, `implicit` uniform [0, 0.01)): the
ranking metrics are compared against the seed-to-seed spread of each library.

Timing: seconds of every iteration (MASCOT: ALS.run_epoch; `implicit`: its fit callback's
elapsed time, the two half-iterations without its set-up), median over the iterations of a run.
Runs of the compared variants alternate (mascot fp32, implicit, mascot fp16 storage, per seed),
so a host whose speed drifts slows them alike; these 2-core hosts are shared, which the
report says.  Metrics: mascot.metrics.ranking_evaluate (precision@10 = hits / 10, MAP@10,
NDCG@10, AUC@10 as `implicit` defines them) on the held-out pairs, training items filtered.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import scipy.sparse as sp
except ImportError:  # pragma: no cover
    sys.exit("implicit_compare.py needs scipy (pip install scipy)")

import mascot
from mascot import metrics

try:
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares as ImplicitALS
except ImportError:
    implicit = None


def holdout(users, items, n_users, n_items, seed, frac=0.2):
    """(train, test) CSR 0/1 matrices: per user, a seeded `frac` of its positives held out."""
    m = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    rng = np.random.default_rng(seed)
    key = rng.random(m.nnz)
    row = np.repeat(np.arange(n_users), np.diff(m.indptr))
    # rank of each entry within its row by a random key: the first ceil(frac n) are held out
    order = np.lexsort((key, row))
    rank = np.empty(m.nnz, np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(m.indptr[:-1], np.diff(m.indptr))
    n = np.diff(m.indptr)[row]
    held = (rank < np.floor(frac * n)) & (n > 1)
    coo = m.tocoo()
    tr = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=m.shape)
    te = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=m.shape)
    return tr, te


def load(name, synthetic_spec, seed):
    if name == "ml100k":
        d = mascot.data.load("ml100k")
        u = np.concatenate([d.train.users, d.test.users])
        i = np.concatenate([d.train.items, d.test.items])
        r = np.concatenate([d.train.ratings, d.test.ratings])
        keep = r >= 4
        return holdout(u[keep], i[keep], d.train.n_users, d.train.n_items, seed)
    spec, _, scale = synthetic_spec.partition(":")
    d = mascot.data.synthetic(spec, scale=float(scale or 1.0), seed=seed)
    u = np.concatenate([d.train.users, d.test.users])
    i = np.concatenate([d.train.items, d.test.items])
    return holdout(u, i, d.train.n_users, d.train.n_items, seed)


def run_mascot(train, test, k, args, seed, dtype):
    m = mascot.ALS(factors=k, regularization=args.regularization, alpha=args.alpha, iterations=args.iterations,
                   solver="cg", cg_steps=args.cg_steps, dtype=dtype, implicit=True, threads=args.threads,
                   device="cpu", random_state=seed)
    m.fit(train)
    secs = [r["seconds"] for r in m.report_["iterations"]]
    return secs, metrics.ranking_evaluate(m, train, test, n=10)


class _ImplicitRanker:
    """`implicit`'s model behind the recommend signature ranking_evaluate calls."""

    def __init__(self, model):
        self.model = model

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True):
        return self.model.recommend(userid, user_items, N=N, filter_already_liked_items=filter_already_liked_items)


def run_implicit(train, test, k, args, seed):
    from threadpoolctl import threadpool_limits

    secs = []
    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, BLAS single-threaded
        m = ImplicitALS(factors=k, regularization=args.regularization, alpha=1.0 + args.alpha,
                        iterations=args.iterations, use_cg=True, num_threads=args.threads, random_state=seed,
                        calculate_training_loss=False)
        m.cg_steps = args.cg_steps
        m.fit(train, show_progress=False, callback=lambda it, elapsed, loss: secs.append(elapsed))
        return secs, metrics.ranking_evaluate(_ImplicitRanker(m), train, test, n=10)


def summarise(rows):
    """Markdown table of the runs: per (dataset, k, variant) median s/iter over runs' medians,
    metrics mean +- spread (max - min over seeds)."""
    out = ["| data | k | variant | s / iteration (median) | x implicit | x mascot fp32 | precision@10 | "
           "MAP@10 | NDCG@10 | AUC@10 | seeds |", "|" + "---|" * 11]
    keys = sorted({(r["dataset"], r["k"]) for r in rows}, key=lambda x: (x[0], x[1]))
    for ds, k in keys:
        sel = [r for r in rows if r["dataset"] == ds and r["k"] == k]
        med = {v: statistics.median([statistics.median(r["seconds"]) for r in sel if r["variant"] == v])
               for v in {r["variant"] for r in sel}}
        # paired ratios: per seed (the runs alternate within a seed), then their median
        def ratio(v, base, sel=sel):
            rs = []
            for s in {r["seed"] for r in sel}:
                a = [r for r in sel if r["seed"] == s and r["variant"] == v]
                b = [r for r in sel if r["seed"] == s and r["variant"] == base]
                if a and b:
                    rs.append(statistics.median(a[0]["seconds"]) / statistics.median(b[0]["seconds"]))
            return f"{statistics.median(rs):.2f}" if rs else "-"
        for v in ("mascot fp32", "mascot fp16", "implicit"):
            vs = [r for r in sel if r["variant"] == v]
            if not vs:
                continue
            cells = []
            for key in ("precision@10", "map@10", "ndcg@10", "auc@10"):
                x = [r["metrics"][key] for r in vs]
                cells.append(f"{np.mean(x):.4f} ± {(max(x) - min(x)) / 2:.4f}")
            out.append(f"| {ds} | {k} | {v} | {med[v]:.3f} | {ratio(v, 'implicit')} | {ratio(v, 'mascot fp32')} | "
                       + " | ".join(cells) + f" | {len(vs)} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="ml100k,synthetic")
    p.add_argument("--factors", default="64,128")
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--cg-steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="42,43")
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--regularization", type=float, default=0.05)
    p.add_argument("--synthetic", default="synthetic-ml25m:0.5")
    p.add_argument("--synthetic-seeds", default=None, help="seeds of the synthetic set (default: the first of --seeds)")
    p.add_argument("--out", default="results/implicit_compare")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    if implicit is None:
        print("implicit is not importable: only MASCOT's rows are measured (pip install implicit)", file=sys.stderr)
    seeds = [int(s) for s in args.seeds.split(",")]
    for ds in args.datasets.split(","):
        ds_seeds = seeds if ds == "ml100k" or not args.synthetic_seeds else [int(s) for s in
                                                                            args.synthetic_seeds.split(",")]
        if ds != "ml100k" and not args.synthetic_seeds:
            ds_seeds = seeds[:1]
        for seed in ds_seeds:
            t0 = time.perf_counter()
            train, test = load(ds, args.synthetic, seed)
            print(f"{ds} seed {seed}: {train.shape[0]} users x {train.shape[1]} items, {train.nnz} train / "
                  f"{test.nnz} test positives ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
            for k in (int(x) for x in args.factors.split(",")):
                variants = [("mascot fp32", run_mascot, ("float32",))]
                if implicit is not None:
                    variants.append(("implicit", run_implicit, ()))
                variants.append(("mascot fp16", run_mascot, ("float16",)))
                for name, fn, extra in variants:  # alternating, as the docstring says
                    secs, m = fn(train, test, k, args, seed, *extra)
                    rows.append({"dataset": ds, "k": k, "seed": seed, "variant": name, "seconds": secs, "metrics": m})
                    print(f"  k={k} {name:12s} median {statistics.median(secs):.3f} s/it  p@10 {m['precision@10']:.4f}"
                          f"  ndcg@10 {m['ndcg@10']:.4f}", file=sys.stderr, flush=True)
    env = {"host": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "threads": args.threads, "mascot": mascot.__version__, "als_kernels": mascot._core.als_kernel_isa(),
           "implicit": getattr(implicit, "__version__", None), "shared_host": True, "args": vars(args)}
    with open(os.path.join(args.out, "implicit_compare.json"), "w") as f:
        json.dump({"env": env, "runs": rows}, f, indent=1)
    table = summarise(rows)
    with open(os.path.join(args.out, "implicit_compare.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
