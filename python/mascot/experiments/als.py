"""``mascot experiment als``: the cuMF_ALS paper's evaluation that fits these machines (issue 21).

    mascot experiment als [--quick] [--datasets ml100k,...] [--epochs N] [--threads T] [--out DIR]

Three parts, each a table (CSV), a plot (PNG) and a section of report.md in DIR (default
results/als):
  1. RMSE against time on explicit ratings (paper Fig. 6 / 8, SGD vs ALS): SGD (MF, methods fp32
     and mascot) and ALS (cholesky, cg, cg + FP16 Hermitians, cg + FP16 factors); test RMSE
     after every epoch / iteration against the cumulative training seconds.
  2. CG steps against convergence (paper Section IV-A): ALS with cg 1, 2, 3, 6 steps and the
     exact Cholesky solve, test RMSE per iteration.
  3. Implicit feedback (paper Section V-F): mascot.ALS against the `implicit` package's CPU ALS
     on MovieLens-100K ratings >= 4 as positives (benchmarks/implicit_compare.py's split and
     metrics), when `implicit` is importable; otherwise the section says so.
Runs alternate between the compared variants; the hosts are shared, which the report says.
The harness's own experiments (compare, ablation, ...) train MF cells; this one trains ALS and
calls the MF estimator directly, so it has its own small runner (run from experiments.main).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ALS_EXPLICIT = [("als cholesky", dict(solver="cholesky")), ("als cg3", dict(solver="cg", cg_steps=3)),
                ("als cg3 FP16 A", dict(solver="cg", cg_steps=3, hermitian_dtype="float16")),
                ("als cg3 FP16 factors", dict(solver="cg", cg_steps=3, dtype="float16"))]
CG_STEPS = [1, 2, 3, 6]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mascot experiment als", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="ml100k only, fewer epochs (a few minutes)")
    p.add_argument("--datasets", default=None, help="explicit datasets (default ml100k,synthetic-ml10m:0.1)")
    p.add_argument("--epochs", type=int, default=None, help="ALS iterations (default 15; SGD runs 3x as many)")
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="results/als")
    return p


def _load(name: str, seed: int):
    import mascot

    if name.startswith("synthetic-"):
        spec, _, scale = name.partition(":")
        d = mascot.data.synthetic(spec, scale=float(scale or 1.0), seed=seed)
    else:
        d = mascot.data.load(name)
    return d.train, d.test


def _als_curve(train, test, a, iterations, **kw) -> list[dict]:
    import mascot

    m = mascot.ALS(factors=a.factors, regularization=0.05, iterations=iterations, implicit=False,
                   threads=a.threads, device="cpu", random_state=a.seed, **kw)
    m.fit(train, test)
    t, out = 0.0, []
    for r in m.report_["iterations"]:
        t += r["seconds"]
        out.append({"epoch": r["iteration"] + 1, "seconds": t, "test_rmse": r["test_rmse"]})
    return out


def _sgd_curve(train, test, a, epochs, method) -> list[dict]:
    import mascot

    m = mascot.MF(k=a.factors, method=method, epochs=epochs, threads=a.threads, device="cpu", seed=a.seed)
    m.fit(train, test)
    t, out = 0.0, []
    for r in m.report_["epochs"]:
        t += r["train_seconds"]
        out.append({"epoch": r["epoch"] + 1, "seconds": t, "test_rmse": r["test_rmse"]})
    return out


def _plot(rows, x, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len({r["dataset"] for r in rows}), figsize=(6 * len({r["dataset"] for r in rows}), 4),
                             squeeze=False)
    for ax, ds in zip(axes[0], sorted({r["dataset"] for r in rows})):
        for v in dict.fromkeys(r["variant"] for r in rows if r["dataset"] == ds):
            sel = [r for r in rows if r["dataset"] == ds and r["variant"] == v]
            ax.plot([r[x] for r in sel], [r["test_rmse"] for r in sel], marker=".", label=v)
        ax.set_title(f"{title}: {ds}")
        ax.set_xlabel("training seconds" if x == "seconds" else "iteration")
        ax.set_ylabel("test RMSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _csv(rows, path, cols):
    with open(path, "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(str(r[c]) for c in cols) + "\n")


def _implicit_part(a, out: str) -> str:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return "`implicit` is not importable here (pip install implicit): part 3 was not run.\n"
    here = os.path.dirname(os.path.abspath(__file__))
    # the repository's script: beside the sources, or in the working directory (an installed package)
    found = [b for b in (os.path.join(here, "..", "..", "..", "benchmarks", "implicit_compare.py"),
                         os.path.join(os.getcwd(), "benchmarks", "implicit_compare.py")) if os.path.exists(b)]
    if not found:
        return ("benchmarks/implicit_compare.py is neither beside this package nor in the working directory "
                "(run from the repository root): part 3 was not run.\n")
    bench = os.path.normpath(found[0])
    import importlib.util

    import mascot

    try:
        mascot.data.load("ml100k")
    except (OSError, ValueError) as e:
        return f"MovieLens-100K is not prepared here ({e}; `mascot data prepare ml100k`): part 3 was not run.\n"
    spec = importlib.util.spec_from_file_location("implicit_compare", bench)
    ic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ic)
    argv = ["--datasets", "ml100k", "--factors", str(a.factors), "--iterations", "15", "--threads",
            str(a.threads), "--seeds", "42,43,44", "--out", out]
    ic.main(argv)
    with open(os.path.join(out, "implicit_compare.md")) as f:
        return f.read()


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("mascot experiment als: error: needs matplotlib (pip install 'mascot[experiments]')", file=sys.stderr)
        return 2
    datasets = a.datasets.split(",") if a.datasets else (["ml100k"] if a.quick else ["ml100k", "synthetic-ml10m:0.1"])
    iters = a.epochs or (8 if a.quick else 15)
    if iters < 1 or a.factors < 1 or a.threads < 0:
        print("mascot experiment als: error: --epochs and --factors must be >= 1, --threads >= 0", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    t_start = time.perf_counter()
    time_rows, cg_rows = [], []
    for ds in datasets:
        try:
            train, test = _load(ds, a.seed)
        except (OSError, ValueError) as e:
            print(f"mascot experiment als: error: {ds}: {e}", file=sys.stderr)
            return 2
        runs = [(f"sgd {m}", _sgd_curve, (3 * iters, m), {}) for m in ("fp32", "mascot")]
        runs += [(v, _als_curve, (iters,), kw) for v, kw in ALS_EXPLICIT]
        for v, fn, pos, kw in runs:  # one after another, alternating kinds (SGD, ALS)
            for r in fn(train, test, a, *pos, **kw):
                time_rows.append({"dataset": ds, "variant": v, **r})
            print(f"als experiment: {ds} {v}: final RMSE {time_rows[-1]['test_rmse']:.4f} "
                  f"after {time_rows[-1]['seconds']:.2f} s", file=sys.stderr, flush=True)
        for steps in CG_STEPS:
            for r in _als_curve(train, test, a, iters, solver="cg", cg_steps=steps):
                cg_rows.append({"dataset": ds, "variant": f"cg {steps}", **r})
        for r in _als_curve(train, test, a, iters, solver="cholesky"):
            cg_rows.append({"dataset": ds, "variant": "cholesky", **r})
    cols = ["dataset", "variant", "epoch", "seconds", "test_rmse"]
    _csv(time_rows, os.path.join(a.out, "rmse_time.csv"), cols)
    _csv(cg_rows, os.path.join(a.out, "cg_steps.csv"), cols)
    _plot(time_rows, "seconds", "RMSE vs time", os.path.join(a.out, "rmse_time.png"))
    _plot(cg_rows, "epoch", "CG steps", os.path.join(a.out, "cg_steps.png"))

    lines = ["# ALS experiment (issue 21; the cuMF_ALS paper)\n",
             f"`mascot experiment als {' '.join(argv or sys.argv[1:])}` — k = {a.factors}, {a.threads} threads, "
             f"seed {a.seed}, CPU; the host is shared with other work, so seconds are indicative "
             "(runs alternate between variants).\n",
             "## 1. Test RMSE against training time (explicit ratings)\n",
             "SGD runs 3x as many epochs as ALS iterations (an epoch is cheaper).  ALS: weighted "
             "lambda = 0.05.\n", "![RMSE vs time](rmse_time.png)\n",
             "| dataset | variant | epochs | seconds | final RMSE | best RMSE |", "|---|---|---|---|---|---|"]
    for ds in datasets:
        for v in dict.fromkeys(r["variant"] for r in time_rows if r["dataset"] == ds):
            sel = [r for r in time_rows if r["dataset"] == ds and r["variant"] == v]
            lines.append(f"| {ds} | {v} | {len(sel)} | {sel[-1]['seconds']:.2f} | {sel[-1]['test_rmse']:.4f} | "
                         f"{min(r['test_rmse'] for r in sel):.4f} |")
    lines += ["", "## 2. CG steps against convergence\n", "![CG steps](cg_steps.png)\n",
              "| dataset | iteration | " + " | ".join(f"cg {s}" for s in CG_STEPS) + " | cholesky |",
              "|---|---|" + "---|" * (len(CG_STEPS) + 1)]
    for ds in datasets:
        for e in range(1, iters + 1):
            vals = [next(r["test_rmse"] for r in cg_rows
                         if r["dataset"] == ds and r["variant"] == v and r["epoch"] == e)
                    for v in [f"cg {s}" for s in CG_STEPS] + ["cholesky"]]
            lines.append(f"| {ds} | {e} | " + " | ".join(f"{x:.4f}" for x in vals) + " |")
    lines += ["", "## 3. Implicit feedback: mascot.ALS against `implicit`\n",
              "MovieLens-100K, ratings >= 4 as positives, 80/20 per-user hold-out (3 seeds), 15 iterations, "
              "CG 3 steps; metrics mean ± half the seed-to-seed range.\n",
              _implicit_part(a, os.path.join(a.out, "implicit")),
              f"\n(total {time.perf_counter() - t_start:.0f} s)\n"]
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(a.out, "runs.json"), "w") as f:
        json.dump({"rmse_time": time_rows, "cg_steps": cg_rows, "args": vars(a)}, f, indent=1)
    print(f"als experiment: wrote {a.out}/report.md", file=sys.stderr)
    return 0


__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
