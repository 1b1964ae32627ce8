"""Every CUDA method on the paper-sized synthetic datasets: the GPU table of docs/benchmarks.md.

    python benchmarks/gpu_bench.py [--datasets synthetic-ml10m,...] [--ks 64,128] [--epochs 50]
                                   [--methods fp32,mascot,...] [--naive-groups 100,500]
                                   [--naive-dataset synthetic-netflix] [--budget-seconds 540]
                                   [--out results/gpu]

One run per (dataset, k, method), same data and seed, on the cuda device.  Per run: seconds
per epoch (median of the SGD passes; evaluation excluded), total train seconds, updates/s,
final test RMSE, time relative to fp32 in the same invocation's results, and the fraction of
the DRAM floor (DESIGN.md §6: nnz x (4 k b + 12) bytes per epoch over the device-to-device copy
bandwidth measured in this run, b = 4 or 2 bytes per element).  Plus `mascot` against
`mascot-naive` at g = 100 and 500 (--naive-groups) on --naive-dataset, k = 128.

Resumable: every finished run is stored in OUT/runs.json at once; a later invocation skips
the runs already there (--fresh starts over).  A run that raises is recorded in
OUT/failed.json and the invocation exits 1 at once (a CUDA fault poisons the process's
context); later invocations skip it (--fresh retries), so one failing run cannot block the
rest.  With --budget-seconds the script stops before a run that would not finish in the
budget and exits with status 3 ("run me again"), so each invocation fits a 10-minute command
limit; scripts/gpu_check.sh loops over the parts.
Writes OUT/gpu_bench.json, OUT/gpu_bench.md (the table) and OUT/failed.json after every run.

Duration estimate on an H100 (not yet measured): data generation and host-side grouping
dominate on the large sets (~0.5-1 min per run on synthetic-yahoo, mostly reordering 257 M
ratings on the host), the 50 GPU epochs take ~2-15 s per run; the whole default matrix is
~76 runs, roughly 30-45 minutes in 5-8 invocations.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import mascot
from mascot import _core, perf

DATASETS = ["synthetic-ml10m", "synthetic-ml25m", "synthetic-netflix", "synthetic-yahoo"]
METHODS = ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]
GUESS_SECONDS = {"synthetic-ml10m": 30, "synthetic-ml25m": 60, "synthetic-netflix": 120, "synthetic-yahoo": 300}
FP32_STORAGE = {"fp32", "mpt", "muppet", "afp"}


def run_key(dataset, k, method, groups):
    return f"{dataset}|k={k}|{method}|g={groups}"


def one_run(d, dataset, k, method, groups, epochs, bw):
    t0 = time.perf_counter()
    m = mascot.MF(k=k, method=method, epochs=epochs, groups=groups, device="cuda")
    rep = m.fit(d.train, d.test, name=dataset).report_
    wall = time.perf_counter() - t0
    t = rep["totals"]
    eps = sorted(e["train_seconds"] for e in rep["epochs"])
    med = eps[len(eps) // 2]
    elem = 4 if method in FP32_STORAGE else 2
    floor = perf.epoch_floor_seconds(len(d.train), k, elem, bw)
    last = rep["epochs"][-1]
    return {"dataset": dataset, "k": k, "method": method, "groups": groups, "epochs": len(rep["epochs"]),
            # the report's device line ends with the warps launched and the write mode (the
            # Hogwild bound, docs/cuda.md): kept apart, so that runs of one device compare
            # whatever their warps
            "n_train": len(d.train), "device": re.sub(r", \d+ warps, \w+ writes\)$", ")", rep["device"]),
            "warps": int(w.group(1)) if (w := re.search(r"(\d+) warps, \w+ writes\)$", rep["device"])) else None,
            "writes": w.group(1) if (w := re.search(r"(\w+) writes\)$", rep["device"])) else None,
            "overlap": os.environ.get("MASCOT_CUDA_OVERLAP", "default"),
            "median_epoch_seconds": med, "train_seconds": t["train_seconds"],
            "updates_per_second": t["updates_per_second"], "final_test_rmse": t["final_test_rmse"],
            "floor_epoch_seconds": floor, "floor_fraction": floor / med,
            # the bandwidth this run's floor used: runs.json may hold runs of earlier invocations
            "copy_bandwidth_GBps": bw / 1e9,
            "fp32_user_groups": last["fp32_user_groups"], "fp32_item_groups": last["fp32_item_groups"],
            "user_groups": rep["dataset"]["user_groups"], "item_groups": rep["dataset"]["item_groups"],
            "switches": len(rep["switches"]), "wall_seconds": wall}


def write_atomic(path, text):
    """Writes text to path through a temporary file and a rename."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _same_device(a, b):
    # relative figures only between runs on the same device: a resumed benchmark may hold runs
    # from another machine (an H200 where the earlier parts ran on an H100)
    return b is not None and a["device"] == b["device"]


def table(runs, meta, failed=None):
    lines = [f"Device: {meta['device']}; copy bandwidth {meta['copy_bandwidth_GBps']:.0f} GB/s (device-to-device, "
             f"read + write); {meta['date']}.", "",
             "| dataset | k | method | warps | s / epoch | total s | M updates/s | vs fp32 | final RMSE | RMSE vs fp32 | "
             "floor fraction | FP32 groups (u · i) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    main = [r for r in runs.values() if r["groups"] == 100]
    # the paper's datasets in their order, then any other dataset run (--datasets name:scale, ...)
    for ds in DATASETS + sorted({r["dataset"] for r in main} - set(DATASETS)):
        for k in sorted({r["k"] for r in main}):
            rows = [r for r in main if r["dataset"] == ds and r["k"] == k]
            base = next((r for r in rows if r["method"] == "fp32"), None)
            for r in sorted(rows, key=lambda r: METHODS.index(r["method"]) if r["method"] in METHODS else 99):
                same = _same_device(r, base)
                rel = f"{r['median_epoch_seconds'] / base['median_epoch_seconds']:.2f}" if same else "-"
                dr = f"{(r['final_test_rmse'] / base['final_test_rmse'] - 1) * 100:+.2f} %" if same else "-"
                lines.append(
                    f"| {ds} | {k} | {r['method']} | {r.get('warps') or '-'} | {r['median_epoch_seconds']:.4f} | "
                    f"{r['train_seconds']:.2f} | "
                    f"{r['updates_per_second'] / 1e6:.0f} | {rel} | {r['final_test_rmse']:.5f} | {dr} | "
                    f"{r['floor_fraction']:.2f} | {r['fp32_user_groups']}/{r['user_groups']} · "
                    f"{r['fp32_item_groups']}/{r['item_groups']} |")
    naive = [r for r in runs.values() if r["groups"] != 100 or r["method"] == "mascot-naive"]
    if naive:
        lines += ["", "Group lookup: `mascot` (optimised) against `mascot-naive`, k = 128.", "",
                  "| dataset | g | mascot s / epoch | mascot-naive s / epoch | naive / optimised |",
                  "|---|---:|---:|---:|---:|"]
        for r in sorted(runs.values(), key=lambda r: (r["dataset"], r["groups"])):
            if r["method"] != "mascot" or r["k"] != 128:
                continue
            o = runs.get(run_key(r["dataset"], 128, "mascot-naive", r["groups"]))
            if _same_device(r, o):
                lines.append(f"| {r['dataset']} | {r['groups']} | {r['median_epoch_seconds']:.4f} | "
                             f"{o['median_epoch_seconds']:.4f} | {o['median_epoch_seconds'] / r['median_epoch_seconds']:.2f} |")
    devices = sorted({r["device"] for r in runs.values()})
    if len(devices) > 1:
        lines += ["", f"Runs from several devices: {'; '.join(devices)} (\"vs fp32\" compares runs of one device "
                  "only; each run's floor fraction uses its own invocation's bandwidth, see gpu_bench.json)."]
    if failed:
        lines += ["", "Failed runs (skipped by later invocations; --fresh retries):", ""]
        lines += [f"- {key}: {msg}" for key, msg in sorted(failed.items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--ks", default="64,128")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--naive-groups", default="100,500", help="g values of the mascot vs mascot-naive comparison "
                                                              "('' to skip)")
    ap.add_argument("--naive-dataset", default="synthetic-netflix")
    ap.add_argument("--budget-seconds", type=float, default=0, help="stop (exit 3) before exceeding this; 0: no limit")
    ap.add_argument("--out", default=os.environ.get("MASCOT_GPU_BENCH_OUT", "results/gpu"))
    ap.add_argument("--fresh", action="store_true", help="ignore the runs already in OUT/runs.json (and failed.json)")
    a = ap.parse_args()
    start = time.perf_counter()
    if mascot.cuda_device_count() == 0:
        print("gpu_bench: error: no CUDA device is visible", file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    runs_path = os.path.join(a.out, "runs.json")
    failed_path = os.path.join(a.out, "failed.json")
    runs, failed = {}, {}  # failed: run key -> error message
    if os.path.exists(runs_path) and not a.fresh:
        with open(runs_path) as f:
            runs = json.load(f)
    if os.path.exists(failed_path) and not a.fresh:
        with open(failed_path) as f:
            failed = json.load(f)
    bw = _core.cuda_copy_bandwidth(1 << 30, 20) * 1e9  # bytes/s, measured in this run
    meta = {"device": _core.cuda_device_name(), "copy_bandwidth_GBps": bw / 1e9, "date": time.strftime("%Y-%m-%d"),
            "epochs": a.epochs}
    print(f"device {meta['device']}, copy bandwidth {bw / 1e9:.0f} GB/s", file=sys.stderr, flush=True)

    plan = []  # (dataset, k, method, groups)
    for ds in a.datasets.split(","):
        for k in (int(x) for x in a.ks.split(",")):
            for m in a.methods.split(","):
                plan.append((ds, k, m, 100))
    for g in (int(x) for x in a.naive_groups.split(",") if x):
        for m in ("mascot", "mascot-naive"):
            plan.append((a.naive_dataset, 128, m, g))
    plan = list(dict.fromkeys(plan))  # the lookup comparison repeats two runs of the main matrix

    # the targets first (k = 128: fp32, mascot-n1, mascot, then the lookup comparison),
    # then k = 64, then the other methods; runs on one dataset stay together within a tier, so
    # a part that stops on its budget leaves the most important figures measured
    core = {"fp32", "mascot-n1", "mascot", "mascot-naive"}
    ds_rank = {d: x for x, d in enumerate(a.datasets.split(","))}

    def tier(p):
        ds, k, m, g = p
        if k == 128 and m in core:
            return 0 if m != "mascot-naive" and g == 100 else 1
        return 2 if m in core else 3

    plan.sort(key=lambda p: (tier(p), ds_rank.get(p[0], len(ds_rank)), p[1] != 128))
    todo = [p for p in plan if run_key(*p) not in runs and run_key(*p) not in failed]
    print(f"{len(plan) - len(todo)} of {len(plan)} runs already done or failed", file=sys.stderr, flush=True)

    def save():
        write_atomic(runs_path, json.dumps(runs, indent=1))  # an interrupted write never corrupts the resume file
        md = table(runs, meta, failed)
        for name, text in (("gpu_bench.md", md), ("failed.json", json.dumps(failed, indent=1)),
                           ("gpu_bench.json", json.dumps({"meta": meta, "runs": runs, "failed": failed}, indent=1))):
            write_atomic(os.path.join(a.out, name), text)
        return md

    data, last_cost = {}, {}
    for ds, k, m, g in todo:
        elapsed = time.perf_counter() - start
        # a run's cost: the last one on this dataset, else a rough guess including data generation
        est = last_cost[ds] * 1.3 if ds in last_cost else GUESS_SECONDS.get(ds, 120)
        if a.budget_seconds and elapsed + est > a.budget_seconds:
            save()
            left = len([p for p in plan if run_key(*p) not in runs and run_key(*p) not in failed])
            print(f"gpu_bench: budget reached after {elapsed:.0f} s; {left} runs left: run again to continue",
                  file=sys.stderr)
            return 3
        t = time.perf_counter()
        try:
            if ds not in data:
                data.clear()  # one dataset in memory at a time
                data[ds] = mascot.data.load(ds)
                print(f"[{ds}] generated/loaded in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
                t = time.perf_counter()
            r = one_run(data[ds], ds, k, m, g, a.epochs, bw)
        except Exception as exc:  # noqa: BLE001 - recorded, then this process stops (see the docstring)
            failed[run_key(ds, k, m, g)] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            save()
            print(f"gpu_bench: [{ds} k={k} {m} g={g}] failed: {failed[run_key(ds, k, m, g)]}; recorded in "
                  f"{failed_path}, run again to continue with the others", file=sys.stderr)
            return 1
        last_cost[ds] = time.perf_counter() - t
        runs[run_key(ds, k, m, g)] = r
        save()
        print(f"[{ds} k={k} {m} g={g}] {r['median_epoch_seconds'] * 1e3:.1f} ms/epoch, "
              f"{r['updates_per_second'] / 1e6:.0f} M/s, RMSE {r['final_test_rmse']:.5f}, floor fraction "
              f"{r['floor_fraction']:.2f}, wall {last_cost[ds]:.0f} s", file=sys.stderr, flush=True)
    print(save())
    if failed:
        print(f"gpu_bench: {len(failed)} run(s) failed, listed in {failed_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
