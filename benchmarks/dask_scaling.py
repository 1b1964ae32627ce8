"""Epoch time and bytes on the wire of mascot.dask (DSGD) for p = 1, 2, 4 local worker processes,
fp32 vs mascot-n1, against the single-process MF run on the same data (docs/benchmarks.md).

    python benchmarks/dask_scaling.py [--data synthetic-netflix-heavy:0.1] [--k 64] [--epochs 3]

The data are generated on the workers (each partition a slice of the core's synthetic set), so
nothing but metadata goes through the client.  Times are the second and later epochs' medians
(the first includes Dask's warm-up); the single-process run uses one thread and all threads.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _slice(j: int, n: int, name: str) -> object:
    import pandas as pd

    import mascot

    tr = mascot.data.synthetic(name, seed=1, threads=1).train
    a, b = len(tr) * j // n, len(tr) * (j + 1) // n
    return pd.DataFrame({"user": tr.users[a:b], "item": tr.items[a:b], "rating": tr.ratings[a:b]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="synthetic-netflix-heavy:0.1")
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", default="1x1,2x1,4x1,4x4", help="worker count x rounds, comma-separated")
    ap.add_argument("--json", default=None, help="write the rows here")
    a = ap.parse_args()
    import dask.dataframe as dd
    import distributed

    import mascot
    import mascot.dask as mdask

    d = mascot.data.synthetic(a.data, seed=1)
    n = len(d.train)
    rows = []
    print(f"{a.data}: {n} ratings, {d.train.n_users} users, {d.train.n_items} items, k = {a.k}", flush=True)
    for method in ("fp32", "mascot-n1"):
        for threads in (1, 0):
            m = mascot.MF(method=method, k=a.k, epochs=a.epochs, threads=threads, seed=1).fit(d.train)
            ep = [e["train_seconds"] for e in m.report_["epochs"]][1:]
            rows.append({"method": method, "run": f"single process, threads={threads or 'all'}",
                         "epoch_s": statistics.median(ep), "bytes_epoch": 0})
            print(rows[-1], flush=True)
    del d
    runs = [tuple(int(v) for v in x.split("x")) for x in a.runs.split(",")]
    ps = [p for p, _ in runs]
    with distributed.LocalCluster(n_workers=max(ps), threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        ddf = dd.from_map(_slice, range(4), n=4, name=a.data, enforce_metadata=False).persist()
        distributed.wait(ddf)
        addrs = sorted(c.scheduler_info()["workers"])
        for method in ("fp32", "mascot-n1"):
            for p, R in runs:
                t = time.perf_counter()
                rep = mdask.fit(c, ddf, method=method, k=a.k, epochs=a.epochs, seed=1, threads=1,
                                workers=addrs[:p], rounds=R).report_
                total = time.perf_counter() - t
                ep = rep["epochs"][1:]
                comp = [max(e["compute_seconds"]) for e in ep]
                blocks = np.array(rep["dask"]["block_ratings"])
                row = {"method": method, "run": f"dask p={p} rounds={R}",
                       "epoch_s": statistics.median(e["train_seconds"] for e in ep),
                       "max_worker_compute_s": statistics.median(comp),
                       "bytes_epoch": ep[-1]["item_block_bytes_moved"],
                       "transfer_s_total": sum(w["transfer_seconds"] for w in rep["dask"]["per_worker"]),
                       "transfer_bytes_total": sum(w["transfer_bytes_in"] for w in rep["dask"]["per_worker"]),
                       "setup_s": total - sum(e["train_seconds"] for e in rep["epochs"]),
                       "block_imbalance": float(np.max(blocks) / np.mean(blocks)),
                       "bytes_to_client": rep["dask"]["bytes_to_client"]}
                rows.append(row)
                print(row, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
