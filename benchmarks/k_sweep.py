"""CPU seconds per epoch against k: does every k run at full speed (no cliff)?

    python benchmarks/k_sweep.py [--ks 8,20,50,64,100,128,200] [--methods fp32,mascot-n1,mascot]
                                 [--dataset synthetic-ml10m:0.1] [--threads 2] [--epochs 3]
                                 [--rounds 2] [--base REF] [--md FILE]

Runs mascot_train (the working tree's CPU build, scripts/_builds.py; with --base also the
build of a git ref, e.g. main, for a before/after table) for every (k, method), in rounds
whose order alternates (round 1 from the first k up, round 2 from the last down; base and new
alternate within each cell), so the host's drift does not make one k or one build look
slower.  A run's time is the median per-epoch train seconds of its report (SGD passes only).
Prints per k and method the median over rounds, seconds per epoch per unit of k (a cliff shows
as a jump in that column), and new/base where --base is given.  This host is shared: say so
next to any figure taken from it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from _builds import build, run  # noqa: E402


def epoch_seconds(exe: str, args: list[str], report: str) -> float:
    r = run([exe, "--quiet", "--report", report] + args)
    if r.returncode != 0:
        sys.exit(f"k_sweep: error: {exe} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    with open(report) as f:
        rep = json.load(f)
    return statistics.median(e["train_seconds"] for e in rep["epochs"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="k_sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="8,20,50,64,100,128,200")
    ap.add_argument("--methods", default="fp32,mascot-n1,mascot")
    ap.add_argument("--dataset", default="synthetic-ml10m:0.1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base", default="", help="git ref of a second build to compare against (e.g. main)")
    ap.add_argument("--md", default="", help="also write the table as Markdown to this file")
    a = ap.parse_args(argv)
    try:
        ks = [int(x) for x in a.ks.split(",") if x]
    except ValueError:
        ap.error("--ks must be a comma list of integers")
    if not ks or min(ks) < 1 or a.rounds < 1 or a.epochs < 1:
        ap.error("--ks, --rounds and --epochs must be >= 1")
    methods = [m for m in a.methods.split(",") if m]
    exes = {"new": build("worktree")}
    if a.base:
        exes["base"] = build(a.base)
    tmp = tempfile.mkdtemp(prefix="ksweep-")
    times: dict[tuple, list[float]] = {}
    for rnd in range(a.rounds):
        order = ks if rnd % 2 == 0 else ks[::-1]
        for k in order:
            for m in methods:
                builds = list(exes) if rnd % 2 == 0 else list(exes)[::-1]
                for b in builds:
                    args = ["--dataset", a.dataset, "--k", str(k), "--epochs", str(a.epochs), "--threads",
                            str(a.threads), "--method", m]
                    t = epoch_seconds(exes[b], args, os.path.join(tmp, "r.json"))
                    times.setdefault((b, k, m), []).append(t)
                    print(f"round {rnd + 1} k {k:4d} {m:10s} {b:4s} {t:.4f} s", flush=True)
    head = "| k | method | s / epoch | ms / epoch per k |" + (" base s / epoch | new / base |" if a.base else "")
    lines = [f"{a.dataset}, {a.threads} threads, {a.epochs} epochs a run, median of {a.rounds} alternated rounds "
             "(shared host)", "", head, "|---:|---|---:|---:|" + ("---:|---:|" if a.base else "")]
    for m in methods:
        for k in ks:
            t = statistics.median(times[("new", k, m)])
            row = f"| {k} | {m} | {t:.4f} | {1e3 * t / k:.3f} |"
            if a.base:
                tb = statistics.median(times[("base", k, m)])
                row += f" {tb:.4f} | {t / tb:.2f} |"
            lines.append(row)
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
