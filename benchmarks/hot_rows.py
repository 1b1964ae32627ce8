"""Why a second thread slows SGD down on heavily skewed data: hot rows, measured.

    python benchmarks/hot_rows.py [--scale 1] [--k 128] [--epochs 3] [--rounds 3]
                                  [--methods fp32,mascot-n1] [--threads 1,2] [--orders shuffle]
                                  [--out DIR]

Hypothesis (issue 23): with Hogwild threads on data whose most-rated item holds ~10 % of the
ratings, both cores write the hot item's row all the time, so its cache lines bounce between
the cores' caches, and each bounce costs a cross-core transfer.  The test: three data sets that
differ only in how hot their hottest rows are, trained with the same code:

  realistic    synthetic-ml10m           (most-rated item ~0.4 % of the ratings)
  heavy        synthetic-ml10m-heavy     (~10 %)
  heavy-split  heavy, with every item above 0.4 % of the ratings split into clones (new item
               ids) of at most 0.4 % each: the same ratings, users and update count, the same
               popularity everywhere else, but no row hotter than in the realistic set.

If hot rows are the cause, heavy is slow with 2 threads and fast with 1, and heavy-split is as
fast as realistic.  Every (data, method, threads, order) cell runs --epochs epochs without
evaluation, --rounds times in alternation (the cells of one round run back to back, so drift of
a shared host hits them alike); the table keeps each cell's fastest epoch and the median.
Writes DIR/hot_rows.json and DIR/hot_rows.md.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import numpy as np

import mascot

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from benchutil import Parser, check_methods, check_out_dir, check_train_params, csv_ints, csv_items, write_atomic  # noqa: E402

PROG = "hot_rows"
SPLIT_SHARE = 0.0042  # the realistic set's most-rated item at full size


def split_hot_items(r: mascot.data.Ratings, share: float, seed: int = 1) -> mascot.data.Ratings:
    """`r` with every item holding more than `share` of the ratings split into clones."""
    counts = np.bincount(r.items, minlength=r.n_items)
    cap = max(1, int(share * len(r)))
    items = r.items.copy()
    rng = np.random.default_rng(seed)
    next_id = r.n_items
    for i in np.flatnonzero(counts > cap):
        pos = np.flatnonzero(r.items == i)
        clones = -(-len(pos) // cap)  # ceil
        # a random clone per rating: each clone gets about len / clones ratings
        pick = rng.integers(0, clones, size=len(pos))
        new_ids = np.concatenate([[i], next_id + np.arange(clones - 1)])
        items[pos] = new_ids[pick]
        next_id += clones - 1
    return mascot.data.Ratings(r.users, items.astype(np.int32), r.ratings, r.n_users, next_id)


def top_share(r: mascot.data.Ratings) -> float:
    return float(np.bincount(r.items).max() / len(r))


def parse_args(argv=None):
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default="fp32,mascot-n1")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--orders", default="shuffle")
    ap.add_argument("--out", default="results/hot_rows")
    a = ap.parse_args(argv)
    try:
        if not 0 < a.scale <= 1:
            raise ValueError(f"--scale must be in (0, 1] (got {a.scale})")
        if a.epochs < 1 or a.rounds < 1:
            raise ValueError("--epochs and --rounds must be >= 1")
        a.method_list = csv_items(a.methods, "--methods")
        check_methods(a.method_list)
        a.thread_list = csv_ints(a.threads, "--threads")
        a.order_list = csv_items(a.orders, "--orders")
        for m in a.method_list:
            for o in a.order_list:
                for t in a.thread_list:
                    check_train_params(k=a.k, method=m, epochs=a.epochs, threads=t, order=o)
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    real = mascot.data.synthetic("synthetic-ml10m", a.scale).train
    heavy = mascot.data.synthetic("synthetic-ml10m-heavy", a.scale).train
    sets = {"realistic": real, "heavy": heavy, "heavy-split": split_hot_items(heavy, SPLIT_SHARE)}
    shares = {n: top_share(r) for n, r in sets.items()}
    for n, r in sets.items():
        print(f"{n}: {len(r)} ratings, {r.n_items} items, most-rated item {100 * shares[n]:.2f} %", file=sys.stderr)
    cells = [(d, m, t, o) for d in sets for m in a.method_list for t in a.thread_list for o in a.order_list]
    times: dict = {c: [] for c in cells}
    for rnd in range(a.rounds):
        for c in cells:
            d, m, t, o = c
            model = mascot.MF(k=a.k, method=m, epochs=a.epochs, threads=t, device="cpu", order=o)
            rep = model.fit(sets[d]).report_
            times[c].extend(e["train_seconds"] for e in rep["epochs"])
            secs = " ".join(f"{e['train_seconds']:.3f}" for e in rep["epochs"])
            print(f"round {rnd + 1}: {d} {m} threads={t} {o}: {secs}", file=sys.stderr, flush=True)
    rows = []
    for c in cells:
        d, m, t, o = c
        one = (d, m, 1, o)
        row = {"data": d, "top_item_share": shares[d], "method": m, "threads": t, "order": o,
               "best_s": min(times[c]), "median_s": statistics.median(times[c]), "epochs_timed": len(times[c])}
        if one in times and t != 1:
            row["speedup_vs_1_thread"] = statistics.median(times[one]) / row["median_s"]
        rows.append(row)
    meta = {"scale": a.scale, "k": a.k, "epochs": a.epochs, "rounds": a.rounds, "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu": platform.processor() or platform.machine(), "kernel_isa": mascot._core.kernel_isa(),
            "load_avg_end": os.getloadavg()}
    lines = [f"hot_rows: synthetic-ml10m family at scale {a.scale}, k = {a.k}, {a.rounds} rounds x {a.epochs} epochs, "
             f"{meta['date']}, load average at the end {meta['load_avg_end'][0]:.1f}", "",
             "| data | top item | method | order | threads | best s/epoch | median s/epoch | speed-up vs 1 thread |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sp = f"{r['speedup_vs_1_thread']:.2f}x" if "speedup_vs_1_thread" in r else ""
        lines.append(f"| {r['data']} | {100 * r['top_item_share']:.2f} % | {r['method']} | {r['order']} "
                     f"| {r['threads']} | {r['best_s']:.3f} | {r['median_s']:.3f} | {sp} |")
    md = "\n".join(lines) + "\n"
    write_atomic(os.path.join(a.out, "hot_rows.json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_atomic(os.path.join(a.out, "hot_rows.md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
