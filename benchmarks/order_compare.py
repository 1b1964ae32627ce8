"""Visiting orders side by side: final test RMSE and seconds per epoch, per data set and method.

    python benchmarks/order_compare.py [--datasets synthetic-ml10m,synthetic-ml10m-heavy]
                                       [--methods fp32,mascot-n1,mascot] [--orders shuffle,grid]
                                       [--k 128] [--epochs 50] [--threads 2] [--rounds 1]
                                       [--seeds 42] [--rounding nearest] [--lr LR] [--lambda L] [--out DIR]

For every (data set, method, seed) the orders run back to back, and the whole list --rounds
times, so that a shared host's drift hits the orders alike.  Each run evaluates the test RMSE
after every epoch (outside the timed SGD pass).  The table gives, per cell, the final test RMSE
(mean over seeds and rounds), its change against the first order of --orders in the same
(data set, method), the worst epoch-over-best-so-far rise (an instability measure: the largest
test RMSE of an epoch divided by the best of the epochs before it), and the best and median
seconds per epoch with the median's ratio to the first order's.  Writes DIR/order_compare.json
and DIR/order_compare.md after every run (atomically), so an interrupted run keeps its rows.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

import mascot

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from benchutil import (  # noqa: E402
    Parser,
    check_dataset,
    check_methods,
    check_out_dir,
    check_train_params,
    csv_ints,
    csv_items,
    die,
    one_line,
    write_atomic,
)

PROG = "order_compare"


def parse_args(argv=None):
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="synthetic-ml10m,synthetic-ml10m-heavy")
    ap.add_argument("--methods", default="fp32,mascot-n1,mascot")
    ap.add_argument("--orders", default="shuffle,grid")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seeds", default="42")
    ap.add_argument("--rounding", default="nearest")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--lambda", dest="lam", type=float, default=None, help="lambda_p = lambda_q")
    ap.add_argument("--out", default="results/order_compare")
    a = ap.parse_args(argv)
    try:
        a.dataset_list = csv_items(a.datasets, "--datasets")
        for d in a.dataset_list:
            check_dataset(d)
        a.method_list = csv_items(a.methods, "--methods")
        check_methods(a.method_list)
        a.order_list = csv_items(a.orders, "--orders")
        a.seed_list = csv_ints(a.seeds, "--seeds", lo=0)
        if a.rounds < 1:
            raise ValueError(f"--rounds must be >= 1 (got {a.rounds})")
        for m in a.method_list:
            for o in a.order_list:
                check_train_params(k=a.k, method=m, epochs=a.epochs, threads=a.threads, order=o,
                                   rounding=a.rounding if m not in ("fp32", "fp16") else "nearest")
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def worst_rise(rmses: list[float]) -> float:
    """max over epochs e >= 1 of rmse[e] / min(rmse[:e]) (1.0: never above the best so far)."""
    best, worst = rmses[0], 1.0
    for r in rmses[1:]:
        worst = max(worst, r / best)
        best = min(best, r)
    return worst


def main(argv=None) -> int:
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    data = {}
    for d in a.dataset_list:
        try:
            data[d] = mascot.data.load(d)
        except Exception as exc:  # noqa: BLE001
            die(PROG, f"cannot load dataset '{d}': {one_line(exc)}", 1)
    runs = []

    def write(status):
        rows = summarise(runs, a)
        meta = {"datasets": a.dataset_list, "methods": a.method_list, "orders": a.order_list, "k": a.k,
                "epochs": a.epochs, "threads": a.threads, "rounds": a.rounds, "seeds": a.seed_list,
                "rounding": a.rounding, "lr": a.lr, "lambda": a.lam, "date": time.strftime("%Y-%m-%d %H:%M"),
                "cpu": platform.processor() or platform.machine(), "kernel_isa": mascot._core.kernel_isa(),
                "status": status, "load_avg": os.getloadavg()}
        write_atomic(os.path.join(a.out, "order_compare.json"), json.dumps({"meta": meta, "runs": runs, "rows": rows},
                                                                          indent=1))
        md = table(rows, meta)
        write_atomic(os.path.join(a.out, "order_compare.md"), md)
        return md

    for rnd in range(a.rounds):
        for d in a.dataset_list:
            for m in a.method_list:
                for seed in a.seed_list:
                    for o in a.order_list:
                        kw = {} if a.lr is None else {"lr": a.lr}
                        if a.lam is not None:
                            kw.update(lambda_p=a.lam, lambda_q=a.lam)
                        rounding = a.rounding if m not in ("fp32", "fp16") else "nearest"
                        model = mascot.MF(k=a.k, method=m, epochs=a.epochs, threads=a.threads, device="cpu", order=o,
                                          seed=seed, rounding=rounding, **kw)
                        rep = model.fit(data[d].train, data[d].test, name=d).report_
                        ep = rep["epochs"]
                        rm = [e["test_rmse"] for e in ep]
                        secs = [e["train_seconds"] for e in ep]
                        runs.append({"round": rnd, "dataset": d, "method": m, "seed": seed, "order": o,
                                     "rmse": rm, "seconds": secs})
                        print(f"[{rnd + 1}/{a.rounds}] {d} {m} seed {seed} {o}: RMSE {rm[-1]:.5f} "
                              f"(worst rise {worst_rise(rm):.4f}), {statistics.median(secs):.3f} s/epoch median",
                              file=sys.stderr, flush=True)
                        write("partial")
    print(write("done"))
    return 0


def summarise(runs, a):
    rows = []
    for d in a.dataset_list:
        for m in a.method_list:
            base = None
            for o in a.order_list:
                rs = [r for r in runs if r["dataset"] == d and r["method"] == m and r["order"] == o]
                if not rs:
                    continue
                final = statistics.mean(r["rmse"][-1] for r in rs)
                secs = [s for r in rs for s in r["seconds"]]
                row = {"dataset": d, "method": m, "order": o, "runs": len(rs), "final_rmse": final,
                       "worst_rise": max(worst_rise(r["rmse"]) for r in rs),
                       "best_s": min(secs), "median_s": statistics.median(secs)}
                if base is None:
                    base = row
                else:
                    row["rmse_vs_first"] = final / base["final_rmse"] - 1
                    row["time_vs_first"] = row["median_s"] / base["median_s"]
                rows.append(row)
    return rows


def table(rows, meta):
    hyper = "".join(f", {n} {meta[n]}" for n in ("lr", "lambda") if meta.get(n) is not None)
    lines = [f"order_compare: k = {meta['k']}, {meta['epochs']} epochs, {meta['threads']} threads{hyper}, rounding "
             f"{meta['rounding']}, seeds {meta['seeds']}, {meta['rounds']} round(s), {meta['date']} ({meta['status']}; "
             f"load average {meta['load_avg'][0]:.1f})", "",
             "| data | method | order | final test RMSE | vs first order | worst rise | best s/epoch "
             "| median s/epoch | time vs first order |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dr = f"{100 * r['rmse_vs_first']:+.3f} %" if "rmse_vs_first" in r else ""
        dt = f"{r['time_vs_first']:.2f}x" if "time_vs_first" in r else ""
        lines.append(f"| {r['dataset']} | {r['method']} | {r['order']} | {r['final_rmse']:.5f} | {dr} | "
                     f"{r['worst_rise']:.4f} | {r['best_s']:.3f} | {r['median_s']:.3f} | {dt} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
