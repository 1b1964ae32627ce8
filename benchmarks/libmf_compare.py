"""LIBMF and MASCOT side by side: same data, k, threads and machine (issues 20 and 23).

    python benchmarks/libmf_compare.py [--dataset synthetic-ml10m-heavy] [--k 128] [--epochs 50]
        [--threads 2] [--etas 0.01,0.05,0.1] [--lambdas 0.01,0.05] [--rounds 3]
        [--mascot "--method fp32"] [--mascot "--method mascot --lr 0.05"] ... [--mascot-common FLAGS]
        [--libmf-src DIR] [--cache DIR] [--out DIR]

LIBMF (github.com/cjlin1/libmf, BSD; the snapshot in ../shared/anchors/libmf, or --libmf-src,
or $MASCOT_LIBMF_SRC) is built once with its own Makefile, AVX flags (SSE where the CPU lacks
AVX), in --cache (default ~/.cache/mascot/libmf_compare), never in this repository.  The data set
is written there once as LIBMF text (`user item rating` lines) and as .mrat, the same ratings.

1. LIBMF's grid: `mf-train -k K -t EPOCHS -s THREADS -r ETA -l2 LAMBDA -p test train` for every
   eta in --etas and lambda in --lambdas; its best = the lowest test RMSE of any epoch of any
   setting ("the best test RMSE LIBMF reaches in EPOCHS epochs with its best parameters").
2. --rounds rounds, each running LIBMF's best setting and every --mascot configuration once, in
   alternating order (LIBMF first in even rounds, last in odd ones), so a shared host's drift hits
   both.  LIBMF's seconds per epoch: the median interval between its per-iteration lines
   (line-buffered through stdbuf, no -p, so no evaluation inside the interval); MASCOT's: the
   median `train_seconds` of its run report (the SGD pass, no evaluation).  Peak memory:
   /usr/bin/time -f %M of each run (the peak resident set).
3. Per MASCOT configuration (mascot_train FLAGS --train/--test the .mrat files -k -epochs
   -threads; FLAGS are any mascot_train flags, shell-quoted): seconds per epoch and its ratio to
   LIBMF's (medians over rounds), final and best test RMSE, the wall time of SGD passes until the
   test RMSE first reaches LIBMF's best (LIBMF's own: epochs to its best x its seconds per epoch),
   and peak memory with its ratio to LIBMF's.

Writes DIR/libmf_compare.json and DIR/libmf_compare.md (atomically, after every run).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import mascot

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from benchutil import Parser, check_dataset, check_out_dir, csv_items, die, one_line, write_atomic  # noqa: E402

PROG = "libmf_compare"
TIME = "/usr/bin/time"  # GNU time: -f %M, the peak resident set of the command in KiB
# ../shared/anchors/libmf beside the checkout (or beside its parent, for a worktree in a subfolder)
DEFAULT_SRC = next((p for p in (os.path.normpath(os.path.join(_HERE, *[".."] * n, "shared", "anchors", "libmf"))
                                for n in (2, 3)) if os.path.isdir(p)),
                   os.path.normpath(os.path.join(_HERE, "..", "..", "shared", "anchors", "libmf")))
DEFAULT_MASCOT = ["--method fp32", "--method mascot", "--method mascot-n1"]


# ------------------------------------------------------------------------------------ helpers
def run_child(cmd: list[str], stdout_lines: bool = False):
    """Runs cmd; returns (wall seconds, peak RSS in KiB, stdout text, [(seconds since start, line)]).
    The peak is /usr/bin/time's %M: the child's own ru_maxrss would include the pages of this
    Python process it was forked from."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak_file:
        p = subprocess.Popen([TIME, "-f", "%M", "-o", peak_file.name] + cmd, stdout=subprocess.PIPE, stderr=err,
                             text=True, bufsize=1)
        lines, out = [], []
        assert p.stdout is not None
        for line in p.stdout:
            out.append(line)
            if stdout_lines:
                lines.append((time.perf_counter() - t0, line))
        p.wait()
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{os.path.basename(cmd[0])} exited {p.returncode}: {tail[0]}")
        peak = int(peak_file.read().strip().splitlines()[-1])
    return wall, peak, "".join(out), lines


def build_libmf(src: str, cache: str) -> str:
    """mf-train built from `src` with AVX flags in a cache folder keyed on the sources; its path."""
    need = ["Makefile", "mf.cpp", "mf.h", "mf-train.cpp"]
    for f in need:
        if not os.path.isfile(os.path.join(src, f)):
            raise RuntimeError(f"--libmf-src: '{src}' has no {f} (a LIBMF source folder is needed)")
    avx = "avx" in open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else False
    h = hashlib.sha256(b"avx" if avx else b"sse")
    for f in need:
        with open(os.path.join(src, f), "rb") as fh:
            h.update(fh.read())
    folder = os.path.join(cache, f"libmf-{h.hexdigest()[:16]}")
    exe = os.path.join(folder, "mf-train")
    if os.path.isfile(exe):
        return exe
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="libmf-build-", dir=cache)
    try:
        for f in os.listdir(src):
            if os.path.isfile(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), tmp)
        mk = open(os.path.join(tmp, "Makefile")).read()
        if avx:  # the anchors README: the AVX lines are there, commented
            mk, n1 = re.subn(r"(?m)^DFLAG = -DUSESSE", "#DFLAG = -DUSESSE", mk)
            mk, n2 = re.subn(r"(?m)^#\s*DFLAG = -DUSEAVX", "DFLAG = -DUSEAVX", mk)
            mk, n3 = re.subn(r"(?m)^#\s*CXXFLAGS \+= -mavx", "CXXFLAGS += -mavx", mk)
            if not (n1 and n2 and n3):
                raise RuntimeError("LIBMF's Makefile lacks the expected SSE/AVX flag lines; build it by hand")
        with open(os.path.join(tmp, "Makefile"), "w") as fh:
            fh.write(mk)
        r = subprocess.run(["make", "-j2", "mf-train"], cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("building LIBMF failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    print(f"{PROG}: built LIBMF ({'AVX' if avx else 'SSE'}) in {folder}", file=sys.stderr)
    return exe


def write_data(dataset: str, cache: str) -> dict:
    """The data set's train/test as LIBMF text and .mrat in the cache (written once); paths and counts."""
    folder = os.path.join(cache, "data", dataset.replace("/", "_"))
    stamp = os.path.join(folder, "done.json")
    if os.path.isfile(stamp):
        return json.load(open(stamp))
    os.makedirs(folder, exist_ok=True)
    d = mascot.data.load(dataset)
    info = {"dataset": dataset, "n_users": d.train.n_users, "n_items": d.train.n_items, "n_train": len(d.train),
            "n_test": len(d.test)}
    for part, r in (("train", d.train), ("test", d.test)):
        mascot.data.write_text(os.path.join(folder, f"{part}.txt"), r)
        mascot.data.write_mrat(os.path.join(folder, f"{part}.mrat"), r)
        info[f"{part}_txt"] = os.path.join(folder, f"{part}.txt")
        info[f"{part}_mrat"] = os.path.join(folder, f"{part}.mrat")
    write_atomic(stamp, json.dumps(info))
    return info


_ITER = re.compile(r"^\s*(\d+)\s+([0-9.]+)(?:\s+([0-9.]+))?\s+[-+0-9.e]+\s*$")


def parse_libmf(text: str) -> list[tuple[int, float, float | None]]:
    """(iteration, train RMSE, test RMSE or None) of every iteration line of mf-train's output."""
    out = []
    for line in text.splitlines():
        m = _ITER.match(line)
        if m:
            out.append((int(m.group(1)), float(m.group(2)), float(m.group(3)) if m.group(3) else None))
    return out


def libmf_cmd(exe, a, eta, lam, files, test: bool, model: str):
    cmd = [exe, "-k", str(a.k), "-t", str(a.epochs), "-s", str(a.threads), "-r", str(eta), "-l2", str(lam)]
    if test:
        cmd += ["-p", files["test_txt"]]
    return cmd + [files["train_txt"], model]


# --------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = Parser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic-ml10m-heavy")
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--etas", default="0.01,0.05,0.1")
    ap.add_argument("--lambdas", default="0.01,0.05")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mascot", action="append", default=None, metavar="FLAGS",
                    help="mascot_train flags of one configuration (repeatable; default: fp32, mascot, mascot-n1)")
    ap.add_argument("--mascot-common", default="", metavar="FLAGS", help="flags added to every configuration")
    ap.add_argument("--mascot-train", default=None, help="the mascot_train to run (default: the one on PATH)")
    ap.add_argument("--libmf-src", default=os.environ.get("MASCOT_LIBMF_SRC", DEFAULT_SRC))
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "mascot", "libmf_compare"))
    ap.add_argument("--out", default="results/libmf_compare")
    a = ap.parse_args(argv)
    try:
        check_dataset(a.dataset)
        for name, v, lo in (("--k", a.k, 1), ("--epochs", a.epochs, 2), ("--threads", a.threads, 1),
                            ("--rounds", a.rounds, 1)):
            if v < lo:
                raise ValueError(f"{name} must be >= {lo} (got {v})")
        a.eta_list = [float(x) for x in csv_items(a.etas, "--etas")]
        a.lambda_list = [float(x) for x in csv_items(a.lambdas, "--lambdas")]
        if any(not (x > 0) for x in a.eta_list) or any(not (x >= 0) for x in a.lambda_list):
            raise ValueError("--etas must be > 0 and --lambdas >= 0")
        a.configs = a.mascot or DEFAULT_MASCOT
        a.common = shlex.split(a.mascot_common)
        for c in a.configs:
            flags = shlex.split(c)
            for f in ("--train", "--test", "--dataset", "--k", "--epochs", "--threads", "--report"):
                if f in flags:
                    raise ValueError(f"--mascot '{c}': {f} is set by the script")
        a.exe = a.mascot_train or shutil.which("mascot_train")
        if not a.exe or not os.access(a.exe, os.X_OK):
            raise ValueError("no mascot_train found (install the package or pass --mascot-train)")
        if not os.access(TIME, os.X_OK):
            raise ValueError(f"{TIME} (GNU time) is needed to measure peak memory")
        if not shutil.which("stdbuf"):
            raise ValueError("stdbuf (coreutils) is needed to time LIBMF's iterations")
        check_out_dir(a.out)
    except ValueError as exc:
        ap.error(str(exc))
    return a


def mascot_run(a, flags: list[str], files: dict, report: str):
    cmd = [a.exe, "--train", files["train_mrat"], "--test", files["test_mrat"], "--k", str(a.k), "--epochs",
           str(a.epochs), "--threads", str(a.threads), "--report", report, "--quiet"] + flags
    wall, peak, _, _ = run_child(cmd)
    rep = json.load(open(report))
    return wall, peak, rep


def main(argv=None) -> int:
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    try:
        exe = build_libmf(a.libmf_src, a.cache)
        files = write_data(a.dataset, a.cache)
    except (RuntimeError, OSError) as exc:
        die(PROG, one_line(exc), 1)
    work = tempfile.mkdtemp(prefix="libmf_compare-")
    model = os.path.join(work, "model")
    state = {"grid": [], "libmf_runs": [], "mascot_runs": []}

    def write(status):
        rows, best = summarise(state, a)
        meta = {"dataset": a.dataset, "n_train": files["n_train"], "n_test": files["n_test"], "k": a.k,
                "epochs": a.epochs, "threads": a.threads, "rounds": a.rounds, "etas": a.eta_list,
                "lambdas": a.lambda_list, "mascot_common": a.mascot_common, "date": time.strftime("%Y-%m-%d %H:%M"),
                "cpu": platform.processor() or platform.machine(), "kernel_isa": mascot._core.kernel_isa(),
                "mascot_version": mascot.__version__ if hasattr(mascot, "__version__") else "",
                "load_avg": os.getloadavg(), "status": status}
        doc = {"meta": meta, "libmf_best": best, "rows": rows, **state}
        write_atomic(os.path.join(a.out, "libmf_compare.json"), json.dumps(doc, indent=1))
        md = table(doc)
        write_atomic(os.path.join(a.out, "libmf_compare.md"), md)
        return md

    try:
        # 1. LIBMF's grid
        for eta in a.eta_list:
            for lam in a.lambda_list:
                wall, peak, text, _ = run_child(libmf_cmd(exe, a, eta, lam, files, True, model))
                its = parse_libmf(text)
                va = [v for _, _, v in its if v is not None]
                if len(va) != a.epochs:
                    raise RuntimeError(f"LIBMF printed {len(va)} test RMSEs for {a.epochs} iterations")
                state["grid"].append({"eta": eta, "lambda": lam, "test_rmse": va, "wall_s": wall, "peak_kib": peak})
                print(f"LIBMF eta={eta} lambda={lam}: best test RMSE {min(va):.5f} (epoch {va.index(min(va)) + 1}), "
                      f"final {va[-1]:.5f}, {wall:.1f} s", file=sys.stderr, flush=True)
                write("partial")
        g = min(state["grid"], key=lambda r: min(r["test_rmse"]))
        # 2. alternating timing rounds
        for rnd in range(a.rounds):
            jobs = [("libmf", None)] + [("mascot", c) for c in a.configs]
            if rnd % 2:
                jobs = jobs[1:] + jobs[:1]
            for kind, c in jobs:
                if kind == "libmf":
                    cmd = ["stdbuf", "-oL"] + libmf_cmd(exe, a, g["eta"], g["lambda"], files, False, model)
                    wall, peak, _, lines = run_child(cmd, stdout_lines=True)
                    stamps = [t for t, line in lines if _ITER.match(line)]
                    gaps = [y - x for x, y in zip(stamps, stamps[1:])]
                    if len(gaps) < 1:
                        raise RuntimeError("LIBMF printed no iteration lines")
                    state["libmf_runs"].append({"round": rnd, "epoch_s": gaps, "wall_s": wall, "peak_kib": peak})
                    print(f"[{rnd + 1}/{a.rounds}] LIBMF: {statistics.median(gaps):.3f} s/epoch, peak "
                          f"{peak / 1024:.0f} MiB", file=sys.stderr, flush=True)
                else:
                    flags = shlex.split(c) + a.common
                    wall, peak, rep = mascot_run(a, flags, files, os.path.join(work, "report.json"))
                    ep = rep["epochs"]
                    state["mascot_runs"].append({"round": rnd, "config": c, "flags": flags,
                                                 "epoch_s": [e["train_seconds"] for e in ep],
                                                 "test_rmse": [e["test_rmse"] for e in ep], "wall_s": wall,
                                                 "peak_kib": peak, "setup_s": rep["totals"].get("setup_seconds")})
                    print(f"[{rnd + 1}/{a.rounds}] mascot_train {c}: "
                          f"{statistics.median(e['train_seconds'] for e in ep):.3f} s/epoch, RMSE "
                          f"{ep[-1]['test_rmse']:.5f}, peak {peak / 1024:.0f} MiB", file=sys.stderr, flush=True)
                write("partial")
    except KeyboardInterrupt:
        write("interrupted")
        print(f"{PROG}: interrupted; the finished runs are in {a.out}", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        write("failed")
        die(PROG, one_line(exc), 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(write("done"))
    return 0


def summarise(state, a):
    if not state["grid"]:
        return [], None
    g = min(state["grid"], key=lambda r: min(r["test_rmse"]))
    target = min(g["test_rmse"])
    best = {"eta": g["eta"], "lambda": g["lambda"], "best_rmse": target, "best_epoch": g["test_rmse"].index(target) + 1,
            "final_rmse": g["test_rmse"][-1]}
    rows = []
    lib = state["libmf_runs"]
    lib_s = statistics.median(statistics.median(r["epoch_s"]) for r in lib) if lib else None
    lib_peak = max((r["peak_kib"] for r in lib), default=g["peak_kib"])
    if lib_s is not None:
        rows.append({"tool": "LIBMF", "config": f"-r {g['eta']} -l2 {g['lambda']}", "epoch_s": lib_s,
                     "epoch_ratio": 1.0, "final_rmse": best["final_rmse"], "best_rmse": target,
                     "time_to_target_s": best["best_epoch"] * lib_s, "target_ratio": 1.0, "peak_mib": lib_peak / 1024,
                     "peak_ratio": 1.0, "runs": len(lib)})
    for c in a.configs:
        rs = [r for r in state["mascot_runs"] if r["config"] == c]
        if not rs:
            continue
        s = statistics.median(statistics.median(r["epoch_s"]) for r in rs)
        row = {"tool": "MASCOT", "config": c, "epoch_s": s, "runs": len(rs),
               "final_rmse": statistics.mean(r["test_rmse"][-1] for r in rs),
               "best_rmse": statistics.mean(min(r["test_rmse"]) for r in rs),
               "peak_mib": max(r["peak_kib"] for r in rs) / 1024}
        # wall time of the SGD passes until the test RMSE first reaches LIBMF's best (median over runs)
        reach = []
        for r in rs:
            t = 0.0
            for secs, rm in zip(r["epoch_s"], r["test_rmse"]):
                t += secs
                if rm <= target:
                    reach.append(t)
                    break
        row["reached_in"] = f"{len(reach)}/{len(rs)}"
        row["time_to_target_s"] = statistics.median(reach) if len(reach) == len(rs) else None
        if lib_s is not None:
            row["epoch_ratio"] = s / lib_s
            row["peak_ratio"] = row["peak_mib"] / (lib_peak / 1024)
            if row["time_to_target_s"] is not None:
                row["target_ratio"] = row["time_to_target_s"] / (best["best_epoch"] * lib_s)
        rows.append(row)
    return rows, best


def table(doc):
    m, best = doc["meta"], doc["libmf_best"]
    lines = [f"libmf_compare: {m['dataset']} ({m['n_train']:,} train / {m['n_test']:,} test ratings), k = {m['k']}, "
             f"{m['epochs']} epochs, {m['threads']} threads, {m['rounds']} alternating rounds, {m['date']}, "
             f"{m['cpu']} ({m['kernel_isa']}); load average {m['load_avg'][0]:.1f} at the end ({m['status']})", ""]
    if best:
        lines += [f"LIBMF's grid (eta x lambda): best test RMSE {best['best_rmse']:.5f} at epoch {best['best_epoch']} "
                  f"with -r {best['eta']} -l2 {best['lambda']} (final {best['final_rmse']:.5f}).", "",
                  "| eta | lambda | best test RMSE | at epoch | final |", "|---|---|---|---|---|"]
        for g in doc["grid"]:
            v = g["test_rmse"]
            lines.append(f"| {g['eta']} | {g['lambda']} | {min(v):.5f} | {v.index(min(v)) + 1} | {v[-1]:.5f} |")
        lines.append("")
    lines += ["| tool | configuration | s / epoch | vs LIBMF | final test RMSE | best | time to LIBMF's best (s) "
              "| vs LIBMF | peak MiB | vs LIBMF |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        ttt = f"{r['time_to_target_s']:.2f}" if r.get("time_to_target_s") is not None else \
            f"not reached ({r.get('reached_in', '')})"
        lines.append(f"| {r['tool']} | `{r['config']}` | {r['epoch_s']:.3f} "
                     f"| {r.get('epoch_ratio', float('nan')):.2f}x | {r['final_rmse']:.5f} "
                     f"| {r['best_rmse']:.5f} | {ttt} | "
                     f"{(str(round(r['target_ratio'], 2)) + 'x') if 'target_ratio' in r else ''} | "
                     f"{r['peak_mib']:.0f} | {r.get('peak_ratio', float('nan')):.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
