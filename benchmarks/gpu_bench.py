"""Every CUDA method on the paper-sized synthetic datasets: the GPU table of docs/benchmarks.md.

    python benchmarks/gpu_bench.py [--datasets synthetic-ml10m,...] [--ks 64,128] [--epochs 50]
                                   [--methods fp32,mascot,...] [--naive-groups 100,500]
                                   [--naive-dataset synthetic-netflix] [--budget-seconds 540]
                                   [--out results/gpu] [--fresh] [--retry-failed]

One run per (dataset, k, method), same data and seed, on the cuda device.  Per run: seconds
per epoch (median of the SGD passes; evaluation excluded), total train seconds, updates/s,
final test RMSE, time relative to fp32 in the same invocation's results, and the fraction of
the DRAM floor (docs/design.md §6: nnz x (4 k b + 12) bytes per epoch over the device-to-device copy
bandwidth measured in this run, b = 4 or 2 bytes per element).  Plus `mascot` against
`mascot-naive` at g = 100 and 500 (--naive-groups) on --naive-dataset, k = 128.

Every argument (and the MASCOT_CUDA_WRITES / MASCOT_CUDA_OVERLAP settings) is checked before
any work: a bad one is a one-line error with exit status 2.

Resumable: every finished run is stored in OUT/runs.json at once, under a key holding every
setting that changes its result (dataset, k, method, g, --epochs, MASCOT_CUDA_WRITES,
MASCOT_CUDA_OVERLAP); a later invocation skips the runs already there with the same settings
and runs the others (--fresh starts over).  The tables show the runs of the current settings
only.  A run that raises is recorded in OUT/failed.json and the invocation exits 1 at once (a
CUDA fault poisons the process's context); the next invocation retries it after the runs not
yet tried, so one failing run cannot block the rest, and a run that has failed twice is skipped
(listed in the table; --retry-failed or --fresh retries it).  With --budget-seconds the script
stops before a run that would not finish in the budget and exits with status 3 ("run me
again"), so each invocation fits a 10-minute command limit; every invocation makes at least one
run whatever the budget, so repeating it always ends (scripts/gpu_check.sh loops over the
parts).  Ctrl-C keeps the finished runs and exits 130.
Writes OUT/gpu_bench.json, OUT/gpu_bench.md (the table) and OUT/failed.json after every run,
each atomically.

Duration estimate on an H100 (not yet measured): data generation and host-side grouping
dominate on the large sets (~0.5-1 min per run on synthetic-yahoo, mostly reordering 257 M
ratings on the host), the 50 GPU epochs take ~2-15 s per run; the whole default matrix is
~76 runs, roughly 30-45 minutes in 5-8 invocations.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

import mascot
from mascot import _core, perf

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the sibling helper module, however this script is started
    sys.path.insert(0, _HERE)
from benchutil import (  # noqa: E402,F401
    Parser,
    bytes_per_element,
    check_dataset,
    check_methods,
    check_out_dir,
    check_positive_finite,
    check_train_params,
    csv_ints,
    csv_items,
    die,
    one_line,
    write_atomic,
)

PROG = "gpu_bench"
DATASETS = ["synthetic-ml10m", "synthetic-ml25m", "synthetic-netflix", "synthetic-yahoo"]
METHODS = ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]
GUESS_SECONDS = {"synthetic-ml10m": 30, "synthetic-ml25m": 60, "synthetic-netflix": 120, "synthetic-yahoo": 300}
MAX_ATTEMPTS = 2  # a run that failed this often is skipped until --retry-failed / --fresh


def env_settings() -> dict:
    """The environment settings of the CUDA backend that change a run's result, normalised
    (cpp/include/mascot/detail/hogwild.h: unset writes is "add"; unset overlap is the write
    mode's default).  A malformed value raises ValueError (the backend would refuse it)."""
    writes = os.environ.get("MASCOT_CUDA_WRITES", "") or "add"
    if writes not in ("add", "store"):
        raise ValueError(f"MASCOT_CUDA_WRITES must be 'add' or 'store', got '{writes}'")
    overlap = os.environ.get("MASCOT_CUDA_OVERLAP", "") or "default"
    if overlap != "default" and not overlap_valid(overlap):
        raise ValueError(f"MASCOT_CUDA_OVERLAP must be a number > 0 (or inf), got '{overlap}'")
    return {"writes": writes, "overlap": overlap}


def overlap_valid(text: str) -> bool:
    """A MASCOT_CUDA_OVERLAP value other than the default: a number > 0, or inf."""
    try:
        return float(text) > 0
    except ValueError:
        return False


def run_key(dataset, k, method, groups, settings=None):
    """A run's key in runs.json / failed.json: the run and every setting that changes it."""
    key = f"{dataset}|k={k}|{method}|g={groups}"
    if settings is not None:
        key += f"|epochs={settings['epochs']}|writes={settings['writes']}|overlap={settings['overlap']}"
    return key


def run_settings(r):
    """The settings a stored run was made with (runs stored before settings were recorded:
    taken from its fields)."""
    s = r.get("settings")
    if isinstance(s, dict):
        return s
    return {"epochs": r.get("epochs"), "writes": r.get("writes") or "add", "overlap": r.get("overlap") or "default"}


def one_run(d, dataset, k, method, groups, epochs, bw):
    t0 = time.perf_counter()
    m = mascot.MF(k=k, method=method, epochs=epochs, groups=groups, device="cuda")
    rep = m.fit(d.train, d.test, name=dataset).report_
    wall = time.perf_counter() - t0
    t = rep["totals"]
    eps = sorted(e["train_seconds"] for e in rep["epochs"])
    med = eps[len(eps) // 2]
    floor = perf.epoch_floor_seconds(len(d.train), k, bytes_per_element(method), bw)
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


def _same_device(a, b):
    # relative figures only between runs on the same device: a resumed benchmark may hold runs
    # from another machine (an H200 where the earlier parts ran on an H100)
    return b is not None and a["device"] == b["device"]


def _rmse(x):
    return f"{x:.5f}" if x is not None else "n/a"


def _failure(v):
    """(message, attempts) of a failed.json entry (a plain message: one attempt)."""
    if isinstance(v, dict):
        n = v.get("attempts", 1)
        return str(v.get("error", "")), n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1
    return str(v), 1


def table(runs, meta, failed=None):
    want = meta.get("settings")
    shown = {key: r for key, r in runs.items() if want is None or run_settings(r) == want}
    lines = [f"Device: {meta['device']}; copy bandwidth {meta['copy_bandwidth_GBps']:.0f} GB/s (device-to-device, "
             f"read + write); {meta['date']}"
             + (f"; {want['epochs']} epochs, writes {want['writes']}, overlap {want['overlap']}" if want else "")
             + ".", "",
             "| dataset | k | method | warps | s / epoch | total s | M updates/s | time vs fp32 | final RMSE | "
             "RMSE vs fp32 | floor fraction | FP32 groups (u · i) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    main = [r for r in shown.values() if r["groups"] == 100]
    # the paper's datasets in their order, then any other dataset run (--datasets name:scale, ...)
    for ds in DATASETS + sorted({r["dataset"] for r in main} - set(DATASETS)):
        for k in sorted({r["k"] for r in main}):
            rows = [r for r in main if r["dataset"] == ds and r["k"] == k]
            for r in sorted(rows, key=lambda r: METHODS.index(r["method"]) if r["method"] in METHODS else 99):
                # fp32 of the same device (several devices' runs may be stored)
                base = next((b for b in rows if b["method"] == "fp32" and _same_device(r, b)), None)
                same = base is not None
                rel = f"{r['median_epoch_seconds'] / base['median_epoch_seconds']:.2f}" if same else "-"
                both = same and r["final_test_rmse"] is not None and base["final_test_rmse"] is not None
                dr = f"{(r['final_test_rmse'] / base['final_test_rmse'] - 1) * 100:+.2f} %" if both else "-"
                lines.append(
                    f"| {ds} | {k} | {r['method']} | {r.get('warps') or '-'} | {r['median_epoch_seconds']:.4f} | "
                    f"{r['train_seconds']:.2f} | "
                    f"{r['updates_per_second'] / 1e6:.0f} | {rel} | {_rmse(r['final_test_rmse'])} | {dr} | "
                    f"{r['floor_fraction']:.2f} | {r['fp32_user_groups']}/{r['user_groups']} · "
                    f"{r['fp32_item_groups']}/{r['item_groups']} |")
    naive = [r for r in shown.values() if r["groups"] != 100 or r["method"] == "mascot-naive"]
    if naive:
        lines += ["", "Group lookup: `mascot` (optimised) against `mascot-naive`, k = 128.", "",
                  "| dataset | g | mascot s / epoch | mascot-naive s / epoch | naive / optimised (time) |",
                  "|---|---:|---:|---:|---:|"]
        for r in sorted(shown.values(), key=lambda r: (r["dataset"], r["groups"])):
            if r["method"] != "mascot" or r["k"] != 128:
                continue
            o = next((o for o in shown.values() if o["method"] == "mascot-naive" and o["k"] == 128
                      and o["dataset"] == r["dataset"] and o["groups"] == r["groups"] and _same_device(r, o)), None)
            if o is not None:
                lines.append(f"| {r['dataset']} | {r['groups']} | {r['median_epoch_seconds']:.4f} | "
                             f"{o['median_epoch_seconds']:.4f} | "
                             f"{o['median_epoch_seconds'] / r['median_epoch_seconds']:.2f} |")
    devices = sorted({r["device"] for r in shown.values()})
    if len(devices) > 1:
        lines += ["", f"Runs from several devices: {'; '.join(devices)} (\"time vs fp32\" compares runs of one "
                  "device only; each run's floor fraction uses its own invocation's bandwidth, see gpu_bench.json)."]
    if len(shown) < len(runs):
        lines += ["", f"{len(runs) - len(shown)} stored run(s) made with other settings (--epochs, "
                  "MASCOT_CUDA_WRITES, MASCOT_CUDA_OVERLAP) are in gpu_bench.json, not in this table."]
    # the failed runs of the current settings (entries without settings: always listed)
    failed = {key: v for key, v in (failed or {}).items()
              if want is None or not isinstance(v, dict) or v.get("settings", want) == want}
    if failed:
        lines += ["", "Failed runs (a run is retried by the next invocation; after "
                  f"{MAX_ATTEMPTS} failures it is skipped until --retry-failed or --fresh):", ""]
        for key, v in sorted(failed.items()):
            msg, n = _failure(v)
            lines.append(f"- {key}: {msg}" + (f" (failed {n} times)" if n > 1 else ""))
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    """The arguments, every one checked before any work (one-line error, exit status 2)."""
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--ks", default="64,128")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--naive-groups", default="100,500", help="g values of the mascot vs mascot-naive comparison "
                                                              "('' to skip)")
    ap.add_argument("--naive-dataset", default="synthetic-netflix")
    ap.add_argument("--budget-seconds", type=float, default=0,
                    help="stop (exit 3) before exceeding this, after at least one run; 0: no limit")
    ap.add_argument("--out", default=os.environ.get("MASCOT_GPU_BENCH_OUT", "results/gpu"))
    ap.add_argument("--fresh", action="store_true", help="ignore the runs already in OUT/runs.json (and failed.json)")
    ap.add_argument("--retry-failed", action="store_true",
                    help=f"retry the runs that failed {MAX_ATTEMPTS} times too (the others are retried anyway)")
    a = ap.parse_args(argv)
    try:
        a.dataset_list = csv_items(a.datasets, "--datasets")
        for ds in a.dataset_list:
            check_dataset(ds, "--datasets")
        a.k_list = csv_ints(a.ks, "--ks")
        a.method_list = csv_items(a.methods, "--methods")
        check_methods(a.method_list)
        a.group_list = csv_ints(a.naive_groups, "--naive-groups", allow_empty=True)
        if a.group_list:
            check_dataset(a.naive_dataset, "--naive-dataset")
        check_positive_finite(a.budget_seconds, "--budget-seconds", allow_zero=True)
        check_out_dir(a.out)
        a.settings = dict(epochs=a.epochs, **env_settings())
        plan = []  # (dataset, k, method, groups)
        for ds in a.dataset_list:
            for k in a.k_list:
                for m in a.method_list:
                    plan.append((ds, k, m, 100))
        for g in a.group_list:
            for m in ("mascot", "mascot-naive"):
                plan.append((a.naive_dataset, 128, m, g))
        a.plan = list(dict.fromkeys(plan))  # the lookup comparison repeats two runs of the main matrix
        # the library's own rules for k, epochs, groups (its messages name the parameter)
        checked = set()
        for _, k, m, g in a.plan:
            if (k, m, g) not in checked:
                checked.add((k, m, g))
                check_train_params(k=k, method=m, epochs=a.epochs, groups=g)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def _load_state(path, what):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        die(PROG, f"cannot read {path} ({one_line(exc)}): fix or remove it, or pass --fresh")
    if not isinstance(state, dict) or (what == "runs" and not all(isinstance(r, dict) for r in state.values())):
        die(PROG, f"{path} is not a gpu_bench {what} file: fix or remove it, or pass --fresh")
    return state


def _migrate(runs, failed):
    """State written before run keys held the settings: each run re-keyed with the settings
    its record shows (its epochs, write mode and overlap); the failed entries of that time are
    dropped, so those runs are tried again under the new keys."""
    new = {}
    for key, r in runs.items():
        if "|epochs=" not in key and all(f in r for f in ("dataset", "k", "method", "groups")):
            r = dict(r, settings=run_settings(r))
            key = run_key(r["dataset"], r["k"], r["method"], r["groups"], r["settings"])
        new[key] = r
    return new, {key: v for key, v in failed.items() if isinstance(v, dict) and "|epochs=" in key}


def main(argv=None) -> int:
    a = parse_args(argv)
    start = time.perf_counter()
    if mascot.cuda_unavailable_reason():
        print(f"{PROG}: error: {mascot.cuda_unavailable_reason()}", file=sys.stderr)
        return 1
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as exc:
        die(PROG, f"--out: cannot create '{a.out}': {exc.strerror or exc}")
    runs_path = os.path.join(a.out, "runs.json")
    failed_path = os.path.join(a.out, "failed.json")
    runs, failed = {}, {}  # failed: run key -> {"error", "attempts", "settings"}
    if os.path.exists(runs_path) and not a.fresh:
        runs = _load_state(runs_path, "runs")
    if os.path.exists(failed_path) and not a.fresh:
        failed = _load_state(failed_path, "failed")
    runs, failed = _migrate(runs, failed)
    settings = a.settings
    bw = _core.cuda_copy_bandwidth(1 << 30, 20) * 1e9  # bytes/s, measured in this run
    meta = {"device": _core.cuda_device_name(), "copy_bandwidth_GBps": bw / 1e9, "date": time.strftime("%Y-%m-%d"),
            "epochs": a.epochs, "writes": settings["writes"], "overlap": settings["overlap"], "settings": settings}
    print(f"device {meta['device']}, copy bandwidth {bw / 1e9:.0f} GB/s", file=sys.stderr, flush=True)

    # the targets first (k = 128: fp32, mascot-n1, mascot, then the lookup comparison),
    # then k = 64, then the other methods; runs on one dataset stay together within a tier, so
    # a part that stops on its budget leaves the most important figures measured
    core = {"fp32", "mascot-n1", "mascot", "mascot-naive"}
    ds_rank = {d: x for x, d in enumerate(a.dataset_list)}

    def tier(p):
        ds, k, m, g = p
        if k == 128 and m in core:
            return 0 if m != "mascot-naive" and g == 100 else 1
        return 2 if m in core else 3

    plan = sorted(a.plan, key=lambda p: (tier(p), ds_rank.get(p[0], len(ds_rank)), p[1] != 128))
    key_of = {p: run_key(*p, settings) for p in plan}
    if a.retry_failed:
        for p in plan:
            failed.pop(key_of[p], None)
    untried = [p for p in plan if key_of[p] not in runs and key_of[p] not in failed]
    retry = [p for p in plan if key_of[p] not in runs and key_of[p] in failed
             and _failure(failed[key_of[p]])[1] < MAX_ATTEMPTS]
    todo = untried + retry  # failed runs last: one failing run cannot block the others
    given_up = [p for p in plan if key_of[p] not in runs and key_of[p] in failed and p not in retry]
    done = len(plan) - len(todo) - len(given_up)
    print(f"{done} of {len(plan)} runs already done"
          + (f"; {len(retry)} failed run(s) to retry" if retry else "")
          + (f"; {len(given_up)} failed {MAX_ATTEMPTS} times, skipped (--retry-failed retries)" if given_up else ""),
          file=sys.stderr, flush=True)

    def save():
        write_atomic(runs_path, json.dumps(runs, indent=1))  # an interrupted write never corrupts the resume file
        md = table(runs, meta, failed)
        for name, text in (("gpu_bench.md", md), ("failed.json", json.dumps(failed, indent=1)),
                           ("gpu_bench.json", json.dumps({"meta": meta, "runs": runs, "failed": failed}, indent=1))):
            write_atomic(os.path.join(a.out, name), text)
        return md

    data, last_cost, ran = {}, {}, 0
    try:
        for x, (ds, k, m, g) in enumerate(todo):
            key = key_of[(ds, k, m, g)]
            elapsed = time.perf_counter() - start
            # a run's cost: the last one on this dataset, else a rough guess including data generation
            est = last_cost[ds] * 1.3 if ds in last_cost else GUESS_SECONDS.get(ds, 120)
            # at least one run per invocation, whatever the budget: repeating always ends
            if a.budget_seconds and ran and elapsed + est > a.budget_seconds:
                save()
                print(f"{PROG}: budget reached after {elapsed:.0f} s; {len(todo) - x} runs left: run again to continue",
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
                n = _failure(failed[key])[1] + 1 if key in failed else 1
                failed[key] = {"error": one_line(exc), "attempts": n, "settings": settings}
                save()
                print(f"{PROG}: [{ds} k={k} {m} g={g}] failed (attempt {n}): {failed[key]['error']}; recorded in "
                      f"{failed_path}, run again to continue with the others", file=sys.stderr)
                return 1
            last_cost[ds] = time.perf_counter() - t
            r["settings"] = dict(settings)
            runs[key] = r
            failed.pop(key, None)
            ran += 1
            save()
            print(f"[{ds} k={k} {m} g={g}] {r['median_epoch_seconds'] * 1e3:.1f} ms/epoch, "
                  f"{r['updates_per_second'] / 1e6:.0f} M/s, RMSE {_rmse(r['final_test_rmse'])}, floor fraction "
                  f"{r['floor_fraction']:.2f}, wall {last_cost[ds]:.0f} s", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        save()
        print(f"{PROG}: interrupted; {ran} run(s) of this invocation saved in {runs_path}, run again to continue",
              file=sys.stderr)
        return 130
    print(save())
    mine = [key for key in failed if key in key_of.values()]
    if mine:
        print(f"{PROG}: {len(mine)} run(s) failed, listed in {failed_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # outside the runs (setup): nothing to keep
        print("gpu_bench: interrupted", file=sys.stderr)
        sys.exit(130)
