"""Every method on the CPU backend: the table of docs/benchmarks.md.

    python benchmarks/cpu_methods.py [--dataset synthetic-ml10m] [--k 128] [--epochs 50]
                                     [--threads 2] [--methods fp32,mascot,...] [--rounds 1] [--out DIR]

Trains each method on the same data (same seed) and writes DIR/cpu_methods.json and
DIR/cpu_methods.md: train seconds (SGD passes + switching, no evaluation), updates/s, time
relative to fp32 in the same run, final test RMSE and its change against fp32 (n/a when the
dataset has no test set), FP32 groups at the end, and the fraction of the memory-bandwidth
floor (docs/design.md §6: nnz x (4 k b + 12) bytes / copy bandwidth measured in this run, b = 4 or
2 bytes per element).
With --rounds N the whole method list runs N times, interleaved, and the table keeps each
method's fastest round (best-of-N) and lists every round's time relative to the fp32 run of the
same round (paired ratios): on a shared host whose speed drifts, neighbouring runs compare fairly.

Every argument is checked before any training (a bad one: one-line error, exit status 2).  Both
files are written atomically after every finished run, so an interrupted or failed invocation
leaves the runs it finished (the table says how many of the planned runs those are); Ctrl-C
exits 130, a failed run 1.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import mascot
from mascot import perf

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the sibling helper module, however this script is started
    sys.path.insert(0, _HERE)
from benchutil import (  # noqa: E402
    Parser,
    bytes_per_element,
    check_dataset,
    check_methods,
    check_out_dir,
    check_train_params,
    csv_items,
    die,
    one_line,
    write_atomic,
)

PROG = "cpu_methods"
ALL = ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]


def parse_args(argv=None):
    """The arguments, every one checked before any work (one-line error, exit status 2)."""
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-ml10m")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--order", default="shuffle")
    ap.add_argument("--methods", default=",".join(ALL))
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of the method list")
    ap.add_argument("--out", default="results/bench")
    a = ap.parse_args(argv)
    try:
        a.method_list = csv_items(a.methods, "--methods")
        check_methods(a.method_list)
        if a.rounds < 1:
            raise ValueError(f"--rounds must be >= 1 (got {a.rounds})")
        check_dataset(a.dataset)
        for m in a.method_list:  # the library's own rules for k, epochs, threads, order
            check_train_params(k=a.k, method=m, epochs=a.epochs, threads=a.threads, order=a.order)
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    methods = a.method_list
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as exc:
        die(PROG, f"--out: cannot create '{a.out}': {exc.strerror or exc}")
    try:
        try:
            d = mascot.data.load(a.dataset)
        except Exception as exc:  # noqa: BLE001 - a broken prepared dataset: one line
            die(PROG, f"cannot load dataset '{a.dataset}': {one_line(exc)}", 1)
        bw = perf.copy_bandwidth()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before any run; nothing written", file=sys.stderr)
        return 130
    planned = a.rounds * len(methods)
    runs = []  # (round, row)

    def write(status: str) -> str:
        meta = {"dataset": a.dataset, "n_train": len(d.train), "n_test": len(d.test), "k": a.k, "epochs": a.epochs,
                "rounds": a.rounds, "threads": a.threads, "order": a.order, "methods": methods,
                "kernel_isa": mascot._core.kernel_isa(), "cpu": platform.processor() or platform.machine(),
                "copy_bandwidth_GBps": bw / 1e9, "date": time.strftime("%Y-%m-%d"),
                "status": status, "runs_done": len(runs), "runs_planned": planned}
        rows = summary_rows(methods, runs)
        md = table(rows, meta)
        write_atomic(os.path.join(a.out, "cpu_methods.json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
        write_atomic(os.path.join(a.out, "cpu_methods.md"), md)
        return md

    rnd, m = 0, methods[0]
    try:
        for rnd in range(a.rounds):
            for m in methods:
                print(f"[{m}] round {rnd + 1}/{a.rounds} training ...", file=sys.stderr, flush=True)
                model = mascot.MF(k=a.k, method=m, epochs=a.epochs, threads=a.threads, device="cpu", order=a.order)
                rep = model.fit(d.train, d.test, name=a.dataset).report_
                runs.append((rnd, _row(m, rep, d, a, bw)))
                t = rep["totals"]
                print(f"[{m}] {t['train_seconds']:.1f} s, {t['updates_per_second'] / 1e6:.1f} M/s, "
                      f"RMSE {_rmse(t['final_test_rmse'])}", file=sys.stderr, flush=True)
                if len(runs) < planned:
                    write("partial")
    except KeyboardInterrupt:
        if runs:
            write("interrupted")
        print(f"{PROG}: interrupted after {len(runs)} of {planned} runs; "
              + (f"those are in {os.path.join(a.out, 'cpu_methods.md')}" if runs else "nothing written"),
              file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a run's error: one line, the finished runs kept
        if runs:
            write("failed")
        print(f"{PROG}: error: [{m} round {rnd + 1}] {one_line(exc)}; "
              + (f"the {len(runs)} finished runs are in {os.path.join(a.out, 'cpu_methods.md')}" if runs
                 else "nothing written"), file=sys.stderr)
        return 1
    print(write("complete"))
    return 0


def summary_rows(methods, runs):
    """One row per method with a finished run: its fastest round, every round's time, and
    the time relative to the fp32 run of the same round where that one finished."""
    fp32_by_round = {rnd: r["train_seconds"] for rnd, r in runs if r["method"] == "fp32"}
    rows = []
    for m in methods:
        mine = [(rnd, r) for rnd, r in runs if r["method"] == m]
        if not mine:
            continue
        best = dict(min(mine, key=lambda x: x[1]["train_seconds"])[1])
        best["round_seconds"] = [r["train_seconds"] for _, r in mine]
        best["paired_ratios"] = [r["train_seconds"] / fp32_by_round[rnd] for rnd, r in mine if rnd in fp32_by_round]
        rows.append(best)
    return rows


def _rmse(x):
    return f"{x:.5f}" if x is not None else "n/a"


def table(rows, meta):
    base = next((r for r in rows if r["method"] == "fp32"), None)
    status = meta.get("status", "complete")
    note = "" if status == "complete" else \
        f"; {status.upper()}: {meta['runs_done']} of {meta['runs_planned']} planned runs finished"
    lines = [f"{meta['dataset']} ({meta['n_train']:,} train / {meta['n_test']:,} test), k={meta['k']}, "
             f"{meta['epochs']} epochs, {meta['threads']} threads, order {meta['order']}, "
             f"kernels {meta['kernel_isa']}, "
             f"copy bandwidth {meta['copy_bandwidth_GBps']:.1f} GB/s, {meta['date']}"
             + (f"; best of {meta['rounds']} interleaved rounds" if meta["rounds"] > 1 else "") + note, "",
             "| method | train s | M updates/s | time vs fp32 | paired time vs fp32 (each round) | "
             "median epoch M updates/s | median epoch time vs fp32 | final test RMSE | RMSE vs fp32 | "
             "FP32 groups (u · i) | floor fraction |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        rel = f"{r['train_seconds'] / base['train_seconds']:.2f}" if base else "-"
        rel_med = f"{r['median_epoch_seconds'] / base['median_epoch_seconds']:.2f}" if base else "-"
        if base is None:
            drmse = "-"
        elif r["final_test_rmse"] is None or base["final_test_rmse"] is None:
            drmse = "n/a"
        else:
            drmse = f"{(r['final_test_rmse'] / base['final_test_rmse'] - 1) * 100:+.2f} %"
        paired = ", ".join(f"{x:.2f}" for x in r["paired_ratios"]) or "-"
        lines.append(f"| {r['method']} | {r['train_seconds']:.1f} | {r['updates_per_second'] / 1e6:.1f} | {rel} | "
                     f"{paired} | {r['median_epoch_ups'] / 1e6:.1f} | {rel_med} | "
                     f"{_rmse(r['final_test_rmse'])} | {drmse} | {r['fp32_user_groups']}/{r['user_groups']} · "
                     f"{r['fp32_item_groups']}/{r['item_groups']} | {r['floor_fraction']:.2f} |")
    return "\n".join(lines) + "\n"


def _row(m: str, rep: dict, d, a, bw: float) -> dict:
    t = rep["totals"]
    last = rep["epochs"][-1]
    floor = perf.epoch_floor_seconds(len(d.train), a.k, bytes_per_element(m), bw) * len(rep["epochs"])
    ep = sorted(e["train_seconds"] for e in rep["epochs"])
    median_epoch = ep[len(ep) // 2]
    return {"method": m, "train_seconds": t["train_seconds"], "updates_per_second": t["updates_per_second"],
            "median_epoch_seconds": median_epoch, "median_epoch_ups": len(d.train) / median_epoch,
            "final_test_rmse": t["final_test_rmse"],
            "fp32_user_groups": last["fp32_user_groups"], "fp32_item_groups": last["fp32_item_groups"],
            "user_groups": rep["dataset"]["user_groups"], "item_groups": rep["dataset"]["item_groups"],
            "floor_fraction": floor / t["train_seconds"], "switches": len(rep["switches"])}


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # outside the runs (setup): nothing to keep
        print("cpu_methods: interrupted", file=sys.stderr)
        sys.exit(130)
