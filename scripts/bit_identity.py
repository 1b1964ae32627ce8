"""Bit-identity of deterministic models between two builds of mascot_train.

    python scripts/bit_identity.py [--base REF] [--new REF|worktree] [--cases NAME,...] [--keep DIR]

A refactoring promises "no behaviour change": this checks it.  Both builds (a git ref, built
from `git archive` in a temporary folder, and the working tree or another ref) train the same
matrix of runs with `--deterministic` (one thread, fixed order): every method, both roundings
where they apply, the visiting orders, a k that is not a multiple of the vector width, the study
options and the competing methods' variants.  For every run the saved P.npy and Q.npy must be
equal byte for byte and the run reports equal in every field that is not a wall-clock time
(per-epoch test RMSE, q-errors, switches, method state, totals).  Prints one line per run and
exits 1 when any differs (2 on bad usage, 1 when a build fails).

Builds are cached under build-bitid/<commit> (gitignored); the working tree is built into
build-bitid/worktree.  Only mascot_train is built (CPU backend; MASCOT_CUDA=OFF).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _builds import build, run  # noqa: E402

DATA = "synthetic-ml10m:0.003"  # ~30 K ratings: every case runs in well under a second
EPOCHS = 10
# switching that happens on this small set: measure from epoch 1, every epoch, low threshold
SWITCHY = ["--warmup", "1", "--period", "1", "--threshold", "1.5", "--groups", "20"]


def cases():
    """(name, extra mascot_train arguments) of every run of the matrix."""
    out = []
    for m in ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]:
        roundings = ["nearest"] if m in ("fp32", "fp16") else ["nearest", "stochastic"]
        for r in roundings:
            extra = SWITCHY if m in ("mascot", "mascot-n2", "mascot-naive") else []
            out.append((f"{m}-{r}", ["--method", m, "--rounding", r] + extra))
    for order in ("grid", "chunk"):  # grid: one thread, deterministic (before issue 23: blocked)
        for m in ("fp32", "mascot-n1", "mascot"):
            extra = SWITCHY if m == "mascot" else []
            out.append((f"{m}-{order}", ["--method", m, "--order", order] + extra))
    for k in (20, 64):  # 20: the element-wise path (k not a multiple of 16)
        for m in ("fp32", "fp16", "mascot-n1", "mascot", "mpt", "afp"):
            extra = SWITCHY if m == "mascot" else []
            out.append((f"{m}-k{k}", ["--method", m, "--k", str(k)] + extra))
    out.append(("mascot-k20-stochastic", ["--method", "mascot", "--k", "20", "--rounding", "stochastic"] + SWITCHY))
    out.append(("mascot-grad-stats", ["--method", "mascot", "--grad-stats"] + SWITCHY))
    out.append(("fp32-grad-stats", ["--method", "fp32", "--grad-stats", "--groups", "10"]))
    out.append(("mascot-random-fp16", ["--method", "mascot", "--random-fp16", "0.5"]))
    out.append(("mascot-n1-random-fp16", ["--method", "mascot-n1", "--random-fp16", "0.3"]))
    out.append(("mpt-dynamic", ["--method", "mpt", "--loss-scale", "dynamic", "--loss-scale-window", "50"]))
    out.append(("mpt-dynamic-stochastic", ["--method", "mpt", "--loss-scale", "dynamic", "--rounding", "stochastic"]))
    out.append(("muppet-short", ["--method", "muppet", "--muppet-resolution", "1", "--muppet-patience", "1"]))
    out.append(("afp-bits", ["--method", "afp", "--afp-bits", "6,12", "--afp-error-threshold", "0.001"]))
    out.append(("fp32-hyper", ["--method", "fp32", "--lr", "0.03", "--decay", "0.3", "--lambda-p", "0.05",
                               "--lambda-q", "0.02", "--init-std", "0.1", "--seed", "7"]))
    return out


TIMING = {"train_seconds", "eval_seconds", "setup_seconds", "updates_per_second", "mascot_version"}


def drop_new_config(new: dict, base: dict) -> dict:
    """`new`'s report without the config rows that `base` does not have: a parameter added since
    the base (at its default, which must reproduce the behaviour from before it existed) is not
    a difference; its effect on the model and the rest of the report still is."""
    if isinstance(new.get("config"), dict) and isinstance(base.get("config"), dict):
        new = dict(new, config={k: v for k, v in new["config"].items() if k in base["config"]})
    return new


def strip_times(x):
    """The report without wall-clock fields (they differ between any two runs)."""
    if isinstance(x, dict):
        return {k: strip_times(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [strip_times(v) for v in x]
    return x


def train(exe: str, args: list[str], out: str):
    os.makedirs(out, exist_ok=True)
    model, report = os.path.join(out, "model"), os.path.join(out, "report.json")
    cmd = [exe, "--dataset", DATA, "--k", "32", "--epochs", str(EPOCHS), "--lr", "0.03", "--deterministic", "--quiet",
           "--save", model, "--report", report] + args  # a later --k wins over the default 32
    r = run(cmd)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    digest = {}
    for f in ("P.npy", "Q.npy"):
        with open(os.path.join(model, f), "rb") as fh:
            digest[f] = hashlib.sha256(fh.read()).hexdigest()
    with open(report) as fh:
        digest["report"] = strip_times(json.load(fh))
    return digest, ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bit_identity", description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="git ref of the reference build (default HEAD)")
    ap.add_argument("--new", default="worktree", help="git ref of the build under test, or 'worktree' (default)")
    ap.add_argument("--cases", default="", help="comma list of case names (default: all)")
    ap.add_argument("--keep", default="", help="keep the models and reports in this folder")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    a = ap.parse_args(argv)
    all_cases = cases()
    if a.list:
        print("\n".join(n for n, _ in all_cases))
        return 0
    if a.cases:
        want = a.cases.split(",")
        unknown = sorted(set(want) - {n for n, _ in all_cases})
        if unknown:
            ap.error(f"unknown case(s): {', '.join(unknown)} (see --list)")
        all_cases = [c for c in all_cases if c[0] in want]
    base, new = build(a.base), build(a.new)
    work = a.keep or tempfile.mkdtemp(prefix="bitid-")
    bad = 0
    for name, args in all_cases:
        da, ea = train(base, args, os.path.join(work, "base", name))
        db, eb = train(new, args, os.path.join(work, "new", name))
        if da is None or db is None:
            same = da is None and db is None and ea == eb
            what = f"both refused: {ea}" if same else f"base: {ea or 'ok'} | new: {eb or 'ok'}"
        else:
            db["report"] = drop_new_config(db["report"], da["report"])
            diff = [f for f in ("P.npy", "Q.npy", "report") if da[f] != db[f]]
            same = not diff
            rmse = da["report"]["totals"]["final_test_rmse"]
            what = f"identical (test RMSE {rmse:.6f})" if same else "DIFFERENT: " + ", ".join(diff)
        bad += not same
        print(f"{'ok  ' if same else 'FAIL'} {name:28s} {what}", flush=True)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"== {len(all_cases) - bad} of {len(all_cases)} runs identical ({a.base} vs {a.new})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
