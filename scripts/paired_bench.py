"""Paired CPU throughput of two builds of mascot_train: is the new build as fast as the old one?

    python scripts/paired_bench.py [--base REF] [--new REF|worktree] [--dataset synthetic-ml10m:0.25]
                                   [--methods fp32,mascot-n1,mascot] [--k 128] [--epochs 5]
                                   [--threads 2] [--rounds 3] [--extra "--order grid"]

This host's speed drifts by +-30 % over minutes, so two builds are only compared in runs that
alternate: for every round and method, base then new (then new then base in the next round, so
neither always goes first).  Each run trains `--epochs` epochs without a test set; its time is
the median per-epoch train seconds of its run report (SGD passes only: no data generation,
setup or evaluation).  Prints, per method, every round's new/base ratio and their geometric mean;
a ratio below 1 means the new build is faster.  Builds: scripts/_builds.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _builds import build, run  # noqa: E402


def epoch_seconds(exe: str, args: list[str], report: str) -> float:
    r = run([exe, "--quiet", "--report", report] + args)
    if r.returncode != 0:
        sys.exit(f"paired_bench: error: {exe} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    with open(report) as f:
        rep = json.load(f)
    return statistics.median(e["train_seconds"] for e in rep["epochs"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="paired_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD")
    ap.add_argument("--new", default="worktree")
    ap.add_argument("--dataset", default="synthetic-ml10m:0.25")
    ap.add_argument("--methods", default="fp32,mascot-n1,mascot")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--extra", default="", help="more mascot_train arguments for every run (one string)")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.epochs < 1:
        ap.error("--rounds and --epochs must be >= 1")
    exes = {"base": build(a.base), "new": build(a.new)}
    tmp = tempfile.mkdtemp(prefix="paired-")
    # generating the data costs more than the epochs: a --train file would be read, but the
    # synthetic generator is seeded and fast enough at these scales
    common = ["--dataset", a.dataset, "--k", str(a.k), "--epochs", str(a.epochs), "--threads", str(a.threads)]
    common += shlex.split(a.extra)
    methods = [m for m in a.methods.split(",") if m]
    ratios = {m: [] for m in methods}
    print(f"== {a.dataset}, k {a.k}, {a.threads} threads, {a.epochs} epochs per run, {a.rounds} rounds "
          f"({a.base} vs {a.new}); median seconds per epoch", flush=True)
    for rnd in range(a.rounds):
        order = ["base", "new"] if rnd % 2 == 0 else ["new", "base"]
        for m in methods:
            t = {}
            for which in order:
                t[which] = epoch_seconds(exes[which], common + ["--method", m], os.path.join(tmp, "r.json"))
            ratios[m].append(t["new"] / t["base"])
            print(f"round {rnd + 1} {m:14s} base {t['base']:.4f} s  new {t['new']:.4f} s  new/base {ratios[m][-1]:.3f}",
                  flush=True)
    print("== new/base per method (geometric mean of the rounds; < 1: new is faster)")
    for m in methods:
        gm = math.exp(sum(math.log(x) for x in ratios[m]) / len(ratios[m]))
        print(f"{m:14s} {gm:.3f}   rounds: {', '.join(f'{x:.3f}' for x in ratios[m])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
