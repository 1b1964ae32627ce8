"""Every method on the CPU backend: the table of docs/benchmarks.md.

    python benchmarks/cpu_methods.py [--dataset synthetic-ml10m] [--k 128] [--epochs 50]
                                     [--threads 2] [--methods fp32,mascot,...] [--rounds 1] [--out DIR]

Trains each method on the same data (same seed) and writes DIR/cpu_methods.json and
DIR/cpu_methods.md: train seconds (SGD passes + switching, no evaluation), updates/s, time
relative to fp32 in the same run, final test RMSE and its change against fp32, FP32 groups at
the end, and the fraction of the memory-bandwidth floor (DESIGN.md §6: nnz x (4 k b + 12)
bytes / copy bandwidth measured in this run, b = 4 or 2 bytes per element).
With --rounds N the whole method list runs N times, interleaved, and the table keeps each
method's fastest round (best-of-N) and lists every round's time relative to the fp32 run of the
same round (paired ratios): on a shared host whose speed drifts, neighbouring runs compare fairly.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import mascot
from mascot import perf

ALL = ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-ml10m")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--order", default="shuffle")
    ap.add_argument("--methods", default=",".join(ALL))
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of the method list")
    ap.add_argument("--out", default="results/bench")
    a = ap.parse_args()
    methods = a.methods.split(",")
    os.makedirs(a.out, exist_ok=True)
    d = mascot.data.load(a.dataset)
    bw = perf.copy_bandwidth()
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    runs = []  # (round, row)
    for rnd in range(a.rounds):
        for m in methods:
            print(f"[{m}] round {rnd + 1}/{a.rounds} training ...", file=sys.stderr, flush=True)
            model = mascot.MF(k=a.k, method=m, epochs=a.epochs, threads=a.threads, device="cpu", order=a.order)
            rep = model.fit(d.train, d.test, name=a.dataset).report_
            runs.append((rnd, _row(m, rep, d, a, bw)))
            t = rep["totals"]
            print(f"[{m}] {t['train_seconds']:.1f} s, {t['updates_per_second'] / 1e6:.1f} M/s, "
                  f"RMSE {t['final_test_rmse']:.5f}", file=sys.stderr, flush=True)
    fp32_by_round = {rnd: r["train_seconds"] for rnd, r in runs if r["method"] == "fp32"}
    rows = []
    for m in methods:
        mine = [(rnd, r) for rnd, r in runs if r["method"] == m]
        best = dict(min(mine, key=lambda x: x[1]["train_seconds"])[1])
        best["round_seconds"] = [r["train_seconds"] for _, r in mine]
        best["paired_ratios"] = [r["train_seconds"] / fp32_by_round[rnd] for rnd, r in mine if rnd in fp32_by_round]
        rows.append(best)
    base = next((r for r in rows if r["method"] == "fp32"), None)
    meta = {"dataset": a.dataset, "n_train": len(d.train), "n_test": len(d.test), "k": a.k, "epochs": a.epochs,
            "rounds": a.rounds,
            "threads": a.threads, "order": a.order, "kernel_isa": mascot._core.kernel_isa(),
            "cpu": platform.processor() or platform.machine(), "copy_bandwidth_GBps": bw / 1e9,
            "date": time.strftime("%Y-%m-%d")}
    with open(os.path.join(a.out, "cpu_methods.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    lines = [f"{a.dataset} ({len(d.train):,} train / {len(d.test):,} test), k={a.k}, {a.epochs} epochs, "
             f"{a.threads} threads, order {a.order}, kernels {meta['kernel_isa']}, copy bandwidth "
             f"{bw / 1e9:.1f} GB/s, {meta['date']}"
             + (f"; best of {a.rounds} interleaved rounds" if a.rounds > 1 else ""), "",
             "| method | train s | M updates/s | time vs fp32 | paired vs fp32 (each round) | median epoch M updates/s | median epoch vs fp32 | final test RMSE | RMSE vs fp32 | FP32 groups (u · i) | floor fraction |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        rel = f"{r['train_seconds'] / base['train_seconds']:.2f}" if base else "-"
        rel_med = f"{r['median_epoch_seconds'] / base['median_epoch_seconds']:.2f}" if base else "-"
        drmse = f"{(r['final_test_rmse'] / base['final_test_rmse'] - 1) * 100:+.2f} %" if base else "-"
        paired = ", ".join(f"{x:.2f}" for x in r["paired_ratios"]) or "-"
        lines.append(f"| {r['method']} | {r['train_seconds']:.1f} | {r['updates_per_second'] / 1e6:.1f} | {rel} | {paired} | "
                     f"{r['median_epoch_ups'] / 1e6:.1f} | {rel_med} | "
                     f"{r['final_test_rmse']:.5f} | {drmse} | {r['fp32_user_groups']}/{r['user_groups']} · "
                     f"{r['fp32_item_groups']}/{r['item_groups']} | {r['floor_fraction']:.2f} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "cpu_methods.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


def _row(m: str, rep: dict, d, a, bw: float) -> dict:
    t = rep["totals"]
    last = rep["epochs"][-1]
    elem = 4 if m in ("fp32", "mpt", "muppet", "afp") else 2
    floor = perf.epoch_floor_seconds(len(d.train), a.k, elem, bw) * len(rep["epochs"])
    ep = sorted(e["train_seconds"] for e in rep["epochs"])
    median_epoch = ep[len(ep) // 2]
    return {"method": m, "train_seconds": t["train_seconds"], "updates_per_second": t["updates_per_second"],
            "median_epoch_seconds": median_epoch, "median_epoch_ups": len(d.train) / median_epoch,
            "final_test_rmse": t["final_test_rmse"],
            "fp32_user_groups": last["fp32_user_groups"], "fp32_item_groups": last["fp32_item_groups"],
            "user_groups": rep["dataset"]["user_groups"], "item_groups": rep["dataset"]["item_groups"],
            "floor_fraction": floor / t["train_seconds"], "switches": len(rep["switches"])}


if __name__ == "__main__":
    sys.exit(main())
