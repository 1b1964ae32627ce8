"""Stochastic against nearest FP16 stores, trained: accuracy, stability and cost (issue 23 part 4).

    python benchmarks/sr_compare.py [--datasets synthetic-ml10m,synthetic-ml10m-heavy,ml100k]
                                    [--methods mascot-n1] [--k 128] [--epochs 50] [--threads 2]
                                    [--order auto] [--rounds 2] [--out DIR]

For every data set and method, nearest and stochastic rounding run back to back, --rounds times
(a shared host's drift hits both alike).  Per cell: final and best test RMSE (means over the
rounds), the worst rise of an epoch's test RMSE over the best of the epochs before it (the
issue's "never more than 1 % above the best so far"), and the median seconds per epoch with the
stochastic / nearest ratio of the medians (the issue's "at most 1.2x").  Writes DIR/sr_compare.json
and DIR/sr_compare.md after every run.  A data set that cannot be loaded (ml100k not prepared:
`mascot data prepare ml100k`) is reported and skipped.
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
from benchutil import Parser, check_methods, check_out_dir, check_train_params, csv_items, one_line, write_atomic  # noqa: E402
from order_compare import worst_rise  # noqa: E402

PROG = "sr_compare"


def main(argv=None) -> int:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="synthetic-ml10m,synthetic-ml10m-heavy,ml100k")
    ap.add_argument("--methods", default="mascot-n1")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--order", default="auto")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="results/sr_compare")
    a = ap.parse_args(argv)
    try:
        names = csv_items(a.datasets, "--datasets")
        methods = csv_items(a.methods, "--methods")
        check_methods(methods)
        if a.rounds < 1:
            raise ValueError("--rounds must be >= 1")
        for m in methods:
            check_train_params(k=a.k, method=m, epochs=a.epochs, threads=a.threads, order=a.order,
                               rounding="stochastic")
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    os.makedirs(a.out, exist_ok=True)
    data, skipped = {}, {}
    for n in names:
        try:
            data[n] = mascot.data.load(n)
        except Exception as exc:  # noqa: BLE001 - e.g. ml100k not prepared: say so, go on
            skipped[n] = one_line(exc)
            print(f"{PROG}: skipping {n}: {skipped[n]}", file=sys.stderr)
    runs = []

    def write(status):
        rows = []
        for n in data:
            for m in methods:
                row = {"dataset": n, "method": m}
                for r in ("nearest", "stochastic"):
                    rs = [x for x in runs if x["dataset"] == n and x["method"] == m and x["rounding"] == r]
                    if not rs:
                        continue
                    row[r] = {"final": statistics.mean(x["rmse"][-1] for x in rs),
                              "best": statistics.mean(min(x["rmse"]) for x in rs),
                              "worst_rise": max(worst_rise(x["rmse"]) for x in rs),
                              "median_s": statistics.median(s for x in rs for s in x["seconds"]), "runs": len(rs)}
                if "nearest" in row and "stochastic" in row:
                    row["final_vs_nearest"] = row["stochastic"]["final"] / row["nearest"]["final"] - 1
                    row["time_ratio"] = row["stochastic"]["median_s"] / row["nearest"]["median_s"]
                rows.append(row)
        meta = {"datasets": names, "skipped": skipped, "methods": methods, "k": a.k, "epochs": a.epochs,
                "threads": a.threads, "order": a.order, "rounds": a.rounds, "date": time.strftime("%Y-%m-%d %H:%M"),
                "cpu": platform.processor() or platform.machine(), "kernel_isa": mascot._core.kernel_isa(),
                "load_avg": os.getloadavg(), "status": status}
        write_atomic(os.path.join(a.out, "sr_compare.json"), json.dumps({"meta": meta, "rows": rows, "runs": runs},
                                                                       indent=1))
        lines = [f"sr_compare: k = {a.k}, {a.epochs} epochs, {a.threads} threads, order {a.order}, {a.rounds} "
                 f"alternating round(s), {meta['date']} ({status}; load average {meta['load_avg'][0]:.1f})", "",
                 "| data | method | rounding | final test RMSE | best | worst rise over best so far | median s/epoch |"
                 " stochastic vs nearest |", "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            for r in ("nearest", "stochastic"):
                if r not in row:
                    continue
                c = row[r]
                extra = ""
                if r == "stochastic" and "time_ratio" in row:
                    extra = f"final {100 * row['final_vs_nearest']:+.2f} %, time {row['time_ratio']:.2f}x"
                lines.append(f"| {row['dataset']} | {row['method']} | {r} | {c['final']:.5f} | {c['best']:.5f} | "
                             f"{100 * (c['worst_rise'] - 1):+.2f} % | {c['median_s']:.3f} | {extra} |")
        for n, why in skipped.items():
            lines.append(f"\n{n}: not run ({why})")
        md = "\n".join(lines) + "\n"
        write_atomic(os.path.join(a.out, "sr_compare.md"), md)
        return md

    for rnd in range(a.rounds):
        for n, d in data.items():
            for m in methods:
                pair = ("nearest", "stochastic") if rnd % 2 == 0 else ("stochastic", "nearest")
                for r in pair:
                    rep = mascot.MF(k=a.k, method=m, epochs=a.epochs, threads=a.threads, order=a.order, rounding=r,
                                    device="cpu").fit(d.train, d.test, name=n).report_
                    rm = [e["test_rmse"] for e in rep["epochs"]]
                    runs.append({"round": rnd, "dataset": n, "method": m, "rounding": r, "rmse": rm,
                                 "seconds": [e["train_seconds"] for e in rep["epochs"]],
                                 "order_ran": rep["config"]["order"]})
                    print(f"[{rnd + 1}/{a.rounds}] {n} {m} {r}: final {rm[-1]:.5f}, worst rise "
                          f"{100 * (worst_rise(rm) - 1):+.2f} %, {statistics.median(runs[-1]['seconds']):.3f} s/epoch",
                          file=sys.stderr, flush=True)
                    write("partial")
    print(write("done"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
