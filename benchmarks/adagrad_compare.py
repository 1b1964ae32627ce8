"""Learning-rate schedules side by side: decay (the paper's) and adagrad (LIBMF's per-row AdaGrad),
each at its best eta of a small grid (issue 20 item 2).

    python benchmarks/adagrad_compare.py [--datasets ml100k,synthetic-ml10m:0.25,...] [--method fp32]
        [--k 128] [--threads 2] [--epochs 50] [--lambda 0.05] [--decay-etas 0.01,0.05]
        [--adagrad-etas 0.05,0.1,0.2] [--out DIR]

For every data set, every (schedule, eta) of the grid trains once with mascot_train (--k, --threads,
--epochs, lambda_p = lambda_q = --lambda, test RMSE after every epoch); the runs alternate between
the schedules (decay, adagrad, decay, ... in grid order), so a shared host's drift hits both.  Per
run: final and best test RMSE (and its epoch) and the median seconds per epoch (train_seconds of the
report: the SGD pass, no evaluation).  Per schedule the best eta is the one with the lowest best
test RMSE.  Writes DIR/adagrad_compare.json and DIR/adagrad_compare.md (atomically, after every run).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from benchutil import Parser, check_dataset, check_out_dir, csv_items, die, write_atomic  # noqa: E402

PROG = "adagrad_compare"


def run_one(exe, dataset, schedule, eta, a, work):
    report = os.path.join(work, "report.json")
    cmd = [exe, "--dataset", dataset, "--method", a.method, "--k", str(a.k), "--threads", str(a.threads),
           "--epochs", str(a.epochs), "--lr", str(eta), "--lambda-p", str(a.lam), "--lambda-q", str(a.lam),
           "--schedule", schedule, "--quiet", "--report", report]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die(PROG, f"{' '.join(cmd)}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}", 1)
    with open(report) as fh:
        rep = json.load(fh)
    rmse = [e["test_rmse"] for e in rep["epochs"]]
    best = min(range(len(rmse)), key=lambda x: rmse[x])
    return {"dataset": dataset, "schedule": schedule, "eta": eta, "final_rmse": rmse[-1], "best_rmse": rmse[best],
            "best_epoch": best + 1, "seconds_per_epoch": statistics.median(e["train_seconds"] for e in rep["epochs"]),
            "rmse": rmse, "device": rep.get("device", "")}


def markdown(rows, a):
    out = [f"k = {a.k}, {a.threads} threads, {a.epochs} epochs, method {a.method}, lambda_p = lambda_q = {a.lam}",
           "", "| data set | schedule | eta | final test RMSE | best (epoch) | s / epoch |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['dataset']} | {r['schedule']} | {r['eta']:g} | {r['final_rmse']:.4f} | "
                   f"{r['best_rmse']:.4f} ({r['best_epoch']}) | {r['seconds_per_epoch']:.3f} |")
    out += ["", "Best eta per data set and schedule (lowest best test RMSE):", ""]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        for s in ("decay", "adagrad"):
            cand = [r for r in rows if r["dataset"] == ds and r["schedule"] == s]
            if cand:
                b = min(cand, key=lambda r: r["best_rmse"])
                out.append(f"- {ds}, {s}: eta {b['eta']:g}: final {b['final_rmse']:.4f}, best {b['best_rmse']:.4f} "
                           f"(epoch {b['best_epoch']}), {b['seconds_per_epoch']:.3f} s / epoch")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="ml100k,synthetic-ml10m:0.25,synthetic-ml10m-heavy:0.25")
    ap.add_argument("--method", default="fp32")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--lambda", dest="lam", type=float, default=0.05)
    ap.add_argument("--decay-etas", default="0.01,0.05")
    ap.add_argument("--adagrad-etas", default="0.05,0.1,0.2")
    ap.add_argument("--out", default="results/adagrad_compare")
    a = ap.parse_args(argv)
    datasets = csv_items(a.datasets, "--datasets")
    for d in datasets:
        check_dataset(d, "--datasets")
    check_out_dir(a.out)
    grids = {s: [float(x) for x in csv_items(v, f"--{s}-etas")] for s, v in
             (("decay", a.decay_etas), ("adagrad", a.adagrad_etas))}
    exe = shutil.which("mascot_train")
    if exe is None:
        die(PROG, "mascot_train is not on PATH (pip install . puts it in the environment's scripts folder)", 1)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    work = tempfile.mkdtemp(prefix=PROG)
    try:
        for ds in datasets:
            # alternate the schedules: decay eta 1, adagrad eta 1, decay eta 2, ...
            order = []
            for x in range(max(len(g) for g in grids.values())):
                order += [(s, g[x]) for s, g in grids.items() if x < len(g)]
            for s, eta in order:
                rows.append(run_one(exe, ds, s, eta, a, work))
                r = rows[-1]
                print(f"{ds} {s} eta {eta:g}: final {r['final_rmse']:.4f} best {r['best_rmse']:.4f} "
                      f"(epoch {r['best_epoch']}) {r['seconds_per_epoch']:.3f} s/epoch", flush=True)
                write_atomic(os.path.join(a.out, "adagrad_compare.json"), json.dumps(rows, indent=1))
                write_atomic(os.path.join(a.out, "adagrad_compare.md"), markdown(rows, a))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(rows, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
