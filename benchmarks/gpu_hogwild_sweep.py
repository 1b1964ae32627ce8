"""How the CUDA Hogwild workers write, and how many run: speed and accuracy on one dataset.

    python benchmarks/gpu_hogwild_sweep.py [--dataset synthetic-ml10m] [--k 128] [--epochs 20]
                                           [--methods fp32,mascot-n1,mascot]
                                           [--settings add:default,add:inf,store:default,store:inf]
                                           [--out results/gpu-hogwild]

One run per (method, setting), same data and seed; a setting is MASCOT_CUDA_WRITES:MASCOT_CUDA_OVERLAP
("default" leaves the variable unset: the write mode's own bound, cpp/include/mascot/detail/hogwild.h).
Per run the columns of benchmarks/gpu_bench.py (seconds per epoch, updates/s, final test RMSE,
fraction of the DRAM floor with a copy bandwidth measured in this run) plus the warps launched.
The question it answers (docs/cuda.md, "Hogwild workers"): do "add" writes (L2 reductions) cost
speed against stores at the same warps, and does a device-filling grid keep the accuracy that
the NumPy model (benchmarks/hogwild_overlap.py) predicts for "add" and denies to stores?
Writes OUT/hogwild_sweep.json and OUT/hogwild_sweep.md after every run (temp file + rename).
"""
from __future__ import annotations

import json
import os
import sys
import time

import mascot
from mascot import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchutil import Parser, check_dataset, check_methods, check_out_dir, check_train_params, csv_items, die  # noqa: E402
from gpu_bench import _rmse, one_run, overlap_valid, write_atomic  # noqa: E402  (the main table's per-run measurement)


def parse_settings(text):
    out = []
    for s in text.split(","):
        writes, sep, overlap = s.partition(":")
        if not sep or writes not in ("add", "store") or not overlap:
            raise ValueError(f"--settings: '{s}' is not WRITES:OVERLAP (add|store : default|inf|a number > 0)")
        if overlap != "default" and not overlap_valid(overlap):
            raise ValueError(f"--settings: the overlap of '{s}' must be default, inf or a number > 0")
        out.append((writes, overlap))
    return out


def table(rows, meta):
    lines = [f"Device: {meta['device']}; copy bandwidth {meta['copy_bandwidth_GBps']:.0f} GB/s; {meta['dataset']}, "
             f"k = {meta['k']}, {meta['epochs']} epochs; {meta['date']}.", "",
             "| method | writes | overlap | warps | s / epoch | M updates/s | time vs fp32 add:default | final RMSE | "
             "RMSE vs fp32 add:default | floor fraction |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = next((r for r in rows if r["method"] == "fp32" and r["writes"] == "add" and r["overlap"] == "default"), None)
    for r in rows:
        rel = f"{r['median_epoch_seconds'] / base['median_epoch_seconds']:.2f}" if base else "-"
        both = base is not None and r["final_test_rmse"] is not None and base["final_test_rmse"] is not None
        dr = f"{(r['final_test_rmse'] / base['final_test_rmse'] - 1) * 100:+.2f} %" if both else "-"
        lines.append(f"| {r['method']} | {r['writes']} | {r['overlap']} | {r.get('warps') or '-'} | "
                     f"{r['median_epoch_seconds']:.4f} | {r['updates_per_second'] / 1e6:.0f} | {rel} | "
                     f"{_rmse(r['final_test_rmse'])} | {dr} | {r['floor_fraction']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = Parser(prog="gpu_hogwild_sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-ml10m")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--methods", default="fp32,mascot-n1,mascot")
    ap.add_argument("--settings", default="add:default,add:inf,store:default,store:inf")
    ap.add_argument("--out", default="results/gpu-hogwild")
    a = ap.parse_args()
    try:  # every argument before any work: one line, exit status 2
        settings = parse_settings(a.settings)
        check_dataset(a.dataset)
        methods = csv_items(a.methods, "--methods")
        check_methods(methods)
        for m in methods:
            check_train_params(k=a.k, method=m, epochs=a.epochs)
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    if mascot.cuda_unavailable_reason():
        print(f"gpu_hogwild_sweep: error: {mascot.cuda_unavailable_reason()}", file=sys.stderr)
        return 1
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as exc:
        die("gpu_hogwild_sweep", f"--out: cannot create '{a.out}': {exc.strerror or exc}")
    bw = _core.cuda_copy_bandwidth(1 << 30, 20) * 1e9
    meta = {"device": _core.cuda_device_name(), "copy_bandwidth_GBps": bw / 1e9, "date": time.strftime("%Y-%m-%d"),
            "dataset": a.dataset, "k": a.k, "epochs": a.epochs}
    t = time.perf_counter()
    d = mascot.data.load(a.dataset)
    print(f"device {meta['device']}, copy bandwidth {bw / 1e9:.0f} GB/s; [{a.dataset}] loaded in "
          f"{time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    rows, saved = [], dict(os.environ)
    try:
        for writes, overlap in settings:
            os.environ["MASCOT_CUDA_WRITES"] = writes
            if overlap == "default":
                os.environ.pop("MASCOT_CUDA_OVERLAP", None)
            else:
                os.environ["MASCOT_CUDA_OVERLAP"] = overlap
            for m in methods:
                r = one_run(d, a.dataset, a.k, m, 100, a.epochs, bw)
                r.update(writes=writes, overlap=overlap)
                rows.append(r)
                write_atomic(os.path.join(a.out, "hogwild_sweep.json"),
                             json.dumps({"meta": meta, "runs": rows}, indent=1))
                write_atomic(os.path.join(a.out, "hogwild_sweep.md"), table(rows, meta))
                print(f"[{m} {writes}:{overlap}] {r.get('warps')} warps, "
                      f"{r['median_epoch_seconds'] * 1e3:.1f} ms/epoch, "
                      f"RMSE {_rmse(r['final_test_rmse'])}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print(f"gpu_hogwild_sweep: interrupted; the {len(rows)} finished runs are in {a.out}", file=sys.stderr)
        return 130
    finally:
        for v in ("MASCOT_CUDA_WRITES", "MASCOT_CUDA_OVERLAP"):
            os.environ.pop(v, None)
            if v in saved:
                os.environ[v] = saved[v]
    print(table(rows, meta))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # outside the runs (setup): nothing to keep
        print("gpu_hogwild_sweep: interrupted", file=sys.stderr)
        sys.exit(130)
