"""Analysis of MASCOT run reports: loaders, the experiments' tables and plots, the paper's values.

Data flow: run reports (JSON files written by ``mascot_train --report``, ``mascot.experiments``
or ``MF.report_`` dicts) -> :func:`load_reports` (list of dicts, each tagged with its source)
-> :func:`runs_frame` (one row per run) / :func:`epochs_frame` (one row per run and epoch) /
:func:`grad_norms_frame` -> table functions (plain DataFrames) and plot functions (PNG files,
matplotlib's Agg backend, written atomically) -> :func:`paper_comparison`, which puts this
project's figures next to the numbers the paper publishes (``PAPER``, each with its source).

Nothing here trains; the only state is the module-level ``PAPER`` constant.  pandas,
matplotlib and SciPy (Welch's t-test, :func:`welch_ttest`) come with the ``experiments`` extra
and are imported lazily, so that ``import mascot`` never needs them.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _files

# --------------------------------------------------------------------------- paper values
# Every number the ICDM 2021 paper states that the experiments can be compared with.  Datasets
# are the paper's names; "source" says where in the paper the number is printed.

_TABLE_II_TEXT = {
    # dataset: {pi: [(RMSE, time) for gamma in 1, 5, 10, 20, 50, 100 %]}
    "ML10M": {
        1: [(0.7861, 0.71), (0.7847, 0.69), (0.7846, 0.70), (0.7845, 0.71), (0.7846, 0.78), (0.7844, 0.93)],
        2: [(0.7858, 0.68), (0.7853, 0.68), (0.7850, 0.67), (0.7846, 0.68), (0.7846, 0.72), (0.7845, 0.79)],
        4: [(0.7865, 0.66), (0.7852, 0.67), (0.7847, 0.67), (0.7846, 0.67), (0.7848, 0.68), (0.7846, 0.73)],
        8: [(0.7873, 0.66), (0.7852, 0.67), (0.7851, 0.66), (0.7851, 0.66), (0.7848, 0.67), (0.7850, 0.69)],
    },
    "ML25M": {
        1: [(0.7667, 1.91), (0.7663, 1.19), (0.7662, 1.98), (0.7662, 2.15), (0.7661, 2.62), (0.7660, 3.47)],
        2: [(0.7663, 1.89), (0.7661, 1.91), (0.7662, 1.94), (0.7661, 2.01), (0.7663, 2.27), (0.7663, 2.70)],
        4: [(0.7669, 1.86), (0.7667, 1.87), (0.7666, 1.90), (0.7662, 1.94), (0.7665, 2.08), (0.7663, 2.34)],
        8: [(0.7672, 1.84), (0.7665, 1.86), (0.7666, 1.87), (0.7667, 1.89), (0.7664, 1.96), (0.7663, 2.13)],
    },
    "Netflix": {
        1: [(0.9169, 10.04), (0.9153, 10.23), (0.9153, 10.43), (0.9151, 11.11), (0.9150, 12.87), (0.9150, 15.97)],
        2: [(0.9175, 9.94), (0.9156, 10.06), (0.9152, 10.23), (0.9152, 10.54), (0.9151, 11.56), (0.9151, 13.18)],
        4: [(0.9177, 9.83), (0.9156, 10.00), (0.9153, 10.06), (0.9152, 10.32), (0.9151, 10.84), (0.9151, 11.69)],
        8: [(0.9188, 9.86), (0.9161, 10.04), (0.9155, 10.03), (0.9154, 10.13), (0.9153, 10.42), (0.9153, 10.95)],
    },
    "Yahoo!Music": {
        1: [(0.9013, 34.08), (0.9011, 35.18), (0.9009, 37.04), (0.9010, 40.05), (0.9009, 48.89), (0.9009, 65.92)],
        2: [(0.9015, 33.63), (0.9011, 35.27), (0.9009, 36.00), (0.9008, 37.67), (0.9008, 42.31), (0.9010, 51.01)],
        4: [(0.9018, 33.24), (0.9010, 35.04), (0.9007, 35.15), (0.9007, 36.22), (0.9007, 38.80), (0.9005, 43.89)],
        8: [(0.9018, 33.25), (0.9010, 34.13), (0.9011, 34.45), (0.9011, 35.04), (0.9007, 36.62), (0.9008, 39.68)],
    },
}
GAMMAS_PERCENT = (1, 5, 10, 20, 50, 100)
PERIODS = (1, 2, 4, 8)

PAPER: dict[str, Any] = {
    "citation": ("Y. Ko, J.-S. Yu, H.-K. Bae, Y. Park, D. Lee, S.-W. Kim. MASCOT: A Quantization "
                 "Framework for Efficient Matrix Factorization in Recommender Systems. ICDM 2021."),
    "device": "NVIDIA RTX 2070 GPU, Intel i9-9900k, 64 GB (paper §IV-A, System configuration)",
    "table2": {  # Table II: RMSE and training time (s) of MASCOT, k=128, g=100, 50 epochs
        ds: {(pi, g): rows[i] for pi, rows in per.items() for i, g in enumerate(GAMMAS_PERCENT)}
        for ds, per in _TABLE_II_TEXT.items()},
    "table2_source": "Table II (§IV-D); chosen setting pi=2, gamma=5 % highlighted in the text",
    # Relative times stated in the text (the figures themselves carry no printed numbers).
    "relative_time": [
        {"experiment": "compare", "method": "mascot", "k": 128, "dataset": "average of 4",
         "value": 0.55, "source": "§IV-B (Fig. 7): 'about 45% performance improvement on average "
                                   "when ... k is 128' -> time relative to fp32 ~ 1 - 0.45"},
        {"experiment": "compare", "method": "fp16", "k": None, "dataset": "ideal",
         "value": 0.5, "source": "Fig. 7 caption: 'relative time of ... 0.5 ... ideal performance (FP16)'"},
        {"experiment": "compare", "method": "muppet", "k": 64, "dataset": "average of 4",
         "value": 1.5964, "source": "§IV-B: MuPPET '59.64% worse on average ... when ... k is 64'"},
        {"experiment": "ablation", "method": "mascot", "k": 128, "dataset": "average of 4",
         "value": 0.55, "source": "§IV-C (Fig. 9): 'MASCOT provides a performance improvement of "
                                   "about 45% on average, compared to FP32'"},
        {"experiment": "ablation", "method": "mascot-n2 / mascot-n1", "k": 128, "dataset": "average of 4",
         "value": 1.34, "source": "§IV-C (Fig. 9): MASCOT-N2 'spends more training time by 34% on "
                                   "average, compared to MASCOT-N1'"},
        {"experiment": "lookup", "method": "mascot / mascot-naive", "k": 128, "dataset": "ML10M",
         "value": 0.86, "source": "§IV-C (Fig. 10): at g=100 'MASCOT-opt outperforms MASCOT-naive "
                                   "by up to 14% on the ML10M' (read as 14 % less time)"},
        {"experiment": "lookup", "method": "mascot / mascot-naive", "k": 128, "dataset": "average of 4",
         "value": 0.90, "source": "§IV-C (Fig. 10): '(10% on average)' at g=100"},
    ],
    # Statements about figures without printed numbers (shown in the reports as the paper's claim).
    "claims": {
        "compare": "Fig. 1/7: MPT gives no speed-up, MuPPET and AFP are slower than FP32; MASCOT "
                   "comes close to the FP16 ideal of 0.5 (§I, §IV-B). Fig. 8: MASCOT's RMSE per "
                   "epoch tracks FP32's ('comparable to that of FP32', §IV-B); the text says "
                   "nothing about the other methods' curves.",
        "ablation": "Fig. 9: MASCOT-N1 is fastest but its RMSE is worse; MASCOT-N2 keeps FP32's RMSE "
                    "at +34 % time over N1; MASCOT keeps the RMSE at ~0.55x FP32's time (§IV-C).",
        "lookup": "Fig. 10: MASCOT-opt is faster than MASCOT-naive for every g, the gap growing "
                  "with g (§IV-C).",
        "sensitivity": "Table II: larger pi and smaller gamma cost less time; pi=2, gamma=5 % is "
                       "the chosen setting, faster than pi=1, gamma=100 % with p < 0.05 (t-test, "
                       "§IV-D).",
        "groups": "Fig. 11: time decreases with g until about g=300, then increases; RMSE is "
                  "insensitive to g (§IV-D).",
        "potential": "Fig. 4: the more latent vectors are stored in FP16 (20, 40, 60 %), the "
                     "shorter the training time relative to FP32 (§III-B).",
        "observations": "Fig. 3: compute-to-memory ratio of a CNN layer is 7.84 (32x32 image, 3x3 "
                        "filter) or 24.10 (224x224, 5x5), of MF 0.5 (§III-B). Fig. 5: ratings "
                        "follow a power law; the gradient scale of the top-25 % user group G1 "
                        "falls faster than that of the bottom group G4 (§III-C).",
    },
}

# Paper dataset name for each of this project's dataset names (synthetic sets only share the
# shape of the real one: their figures are not comparable in RMSE).
_PAPER_NAME = {"ml10m": "ML10M", "ml25m": "ML25M", "netflix": "Netflix", "yahoo": "Yahoo!Music",
               "synthetic-ml10m": "ML10M", "synthetic-ml25m": "ML25M",
               "synthetic-netflix": "Netflix", "synthetic-yahoo": "Yahoo!Music"}


_FOLD = re.compile(r"^(?P<base>.+)-fold(?P<fold>[1-9][0-9]*)$")


def fold_of(name: str) -> tuple[str, int]:
    """(dataset, fold) of a dataset name: ``"ml10m-fold2"`` -> ``("ml10m", 2)``; a name without a
    ``-foldN`` suffix is fold 1 of itself (``mascot data prepare`` names fold 1 ``ml10m``, fold f > 1
    ``ml10m-fold<f>``; the sets with a provided split have only that one)."""
    m = _FOLD.match(name)
    return (m["base"], int(m["fold"])) if m else (name, 1)


def paper_dataset(name: str) -> str | None:
    """The paper's dataset matching ``name`` (``"synthetic-ml10m:0.1"`` -> ``"ML10M"``, a fold
    ``"ml10m-fold2"`` -> ``"ML10M"``), or None."""
    base = fold_of(name.split(":")[0].split("/")[-1])[0]
    return _PAPER_NAME.get(base)


def merge_folds(frame):
    """``frame`` (:func:`runs_frame`, :func:`epochs_frame` or :func:`grad_norms_frame`) with the
    folds of a dataset merged: ``dataset`` becomes the name without its ``-foldN`` suffix and a
    ``fold`` column (1 for a name without one) is added, so the tables average the runs of every
    fold of a setting as its repeats -- the paper's 5-fold cross-validation on ML10M / ML25M
    (§IV-A).  Returns a copy; a frame without a ``dataset`` column is returned as it is."""
    if "dataset" not in frame.columns:
        return frame
    out = frame.copy()
    pairs = [fold_of(str(d)) if isinstance(d, str) else (d, 1) for d in out["dataset"]]
    out["dataset"] = [p[0] for p in pairs]
    if "fold" in out.columns:
        out["fold"] = [p[1] for p in pairs]
    else:
        out.insert(list(out.columns).index("dataset") + 1, "fold", [p[1] for p in pairs])
    return out


def cnn_compute_memory_ratio(n: int, d: int, b: int = 1) -> float:
    """Paper §III-B (Fig. 3a): b*d^2*(n-d+1)^2 / (b*n^2 + d^2) for a stride-1 convolution."""
    return b * d * d * (n - d + 1) ** 2 / (b * n * n + d * d)


def mf_compute_memory_ratio(k: int, b: int = 1) -> float:
    """Paper §III-B (Fig. 3b): b*k multiply-adds per b*2k values read = 0.5 for every k, b."""
    return (b * k) / (b * 2 * k)


# --------------------------------------------------------------------------- statistics
def welch_ttest(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's two-sample t-test (unequal variances), two-sided: SciPy's
    ``ttest_ind(a, b, equal_var=False)``.

    Returns ``{"t", "df", "p", "mean_a", "mean_b", "n_a", "n_b"}``; t > 0 when mean(a) > mean(b).
    Needs at least 2 values per sample; ``t``, ``df`` and ``p`` are NaN when both samples have
    zero variance (the test is undefined then)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the t-test needs at least 2 values per sample (got {len(a)} and {len(b)})")
    out = {"mean_a": sum(a) / len(a), "mean_b": sum(b) / len(b), "n_a": len(a), "n_b": len(b)}
    if len(set(a)) == 1 and len(set(b)) == 1:  # SciPy warns and returns NaN; say it without the warning
        return {**out, "t": math.nan, "df": math.nan, "p": math.nan}
    try:
        from scipy import stats
    except ImportError:
        raise ImportError("the t-test needs SciPy (pip install 'mascot[experiments]')") from None
    with warnings.catch_warnings():  # one constant sample is fine (its variance is 0), though SciPy warns
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        r = stats.ttest_ind(a, b, equal_var=False)
    return {**out, "t": float(r.statistic), "df": float(r.df), "p": float(r.pvalue)}


# --------------------------------------------------------------------------- loading
def load_reports(sources: Any) -> list[dict]:
    """Run reports from files, directories (every ``*.json`` below, sorted), dicts, or an
    iterable of those.  Each returned dict is a shallow copy with ``"_source"`` added.  A file
    that is not a run report raises ``ValueError("path: why")``."""
    if isinstance(sources, (str, os.PathLike, dict)):
        sources = [sources]
    out: list[dict] = []
    for s in sources:
        if isinstance(s, dict):
            out.append(_check_report({**s, "_source": s.get("_source", "<dict>")}, "<dict>"))
            continue
        p = Path(s)
        files = sorted(p.rglob("*.json")) if p.is_dir() else [p]
        for f in files:
            try:
                rep = json.loads(f.read_text())
            except FileNotFoundError:
                raise FileNotFoundError(f"{f}: no such run report") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{f}: not valid JSON ({e})") from None
            if not isinstance(rep, dict):
                raise ValueError(f"{f}: not a MASCOT run report (not a JSON object)")
            out.append(_check_report({**rep, "_source": str(f)}, str(f)))
    return out


def _check_report(rep: dict, where: str) -> dict:
    if rep.get("format") != "mascot-run-report":
        raise ValueError(f"{where}: not a MASCOT run report (format tag missing)")
    for key in ("config", "dataset", "epochs", "totals"):
        if key not in rep:
            raise ValueError(f"{where}: run report has no {key!r}")
    return rep


def _run_keys(rep: dict) -> dict[str, Any]:
    """Identifying columns of one run: the experiment cell when there is one, else the config."""
    cfg, ds, cell = rep["config"], rep["dataset"], rep.get("cell") or {}
    params = cell.get("params", {})
    row = {
        "experiment": cell.get("experiment"), "cell_id": cell.get("cell_id"),
        "dataset": cell.get("dataset", ds.get("name")), "method": cfg.get("method"),
        "k": cfg.get("k"), "repeat": cell.get("repeat", 0), "seed": rep.get("seed"),
        "device": rep.get("device"), "threads": rep.get("threads"),
        "epochs": cfg.get("epochs"), "groups": cfg.get("user_groups"),
        "item_groups": cfg.get("item_groups"), "period": cfg.get("period"),
        "sample_ratio": cfg.get("sample_ratio"), "warmup": cfg.get("warmup"),
        # null in the report (and -1 in the config) when off
        "random_fp16": _first_given(cfg.get("random_fp16"), params.get("random_fp16"), -1.0),
        "grad_stats": bool(cfg.get("grad_stats", params.get("grad_stats", False))),
    }
    row["gamma_percent"] = None if row["sample_ratio"] is None else round(100 * row["sample_ratio"], 6)
    return row


def _first_given(*values: Any) -> Any:
    """The first of ``values`` that is not None (None if all are)."""
    return next((v for v in values if v is not None), None)


def _key_columns() -> list[str]:
    return list(_run_keys({"config": {}, "dataset": {}, "epochs": []}))


_RUN_RESULTS = ["train_seconds", "eval_seconds", "setup_seconds", "updates_per_second", "final_test_rmse",
                "epochs_run", "interrupted", "fp32_user_groups", "fp32_item_groups", "n_users", "n_items",
                "n_train", "n_test", "realised_user_groups", "realised_item_groups", "source"]
_EPOCH_RESULTS = ["epoch", "lr", "train_seconds", "eval_seconds", "test_rmse", "fp32_user_groups",
                  "fp32_item_groups"]

# Columns of runs_frame / epochs_frame that describe a run's configuration besides dataset, method
# and k.  Rows of one table cell (one group) must agree on them: runs that differ in one are not
# repeats of one setting, and their mean would mix configurations (e.g. 1- and 3-epoch runs).
_CONFIG_COLUMNS = ("epochs", "device", "threads", "groups", "item_groups", "period", "sample_ratio",
                   "warmup", "random_fp16", "grad_stats")


def _check_one_config(frame, keys: Sequence[str], what: str, by_hint: bool = True) -> None:
    """Raises ``ValueError`` naming the configuration columns that differ between rows of one
    ``keys`` group of ``frame`` (columns absent from ``frame`` are not checked)."""
    keys = [k for k in dict.fromkeys(keys) if k in frame.columns]
    if frame.empty or not keys:
        return
    f = frame
    if "device" in f.columns and "device" not in keys:  # "cpu (2 threads, avx2)": cpu or cuda only
        f = f.assign(device=[str(d).split(" ")[0] for d in f["device"]])  # (threads: its own column)
    cols = [c for c in _CONFIG_COLUMNS if c in f.columns and c not in keys]
    if not cols:
        return
    n = f[keys + cols].astype(str).groupby(keys, dropna=False)[cols].nunique()
    bad = [c for c in cols if (n[c] > 1).any()]
    if bad:
        vals = "; ".join(f"{c} = {', '.join(sorted(set(f[c].astype(str))))}" for c in bad)
        hint = f" or add {', '.join(repr(c) for c in bad)} to by" if by_hint else ""
        raise ValueError(f"{what}: the runs mix configurations that differ in {', '.join(bad)} ({vals}); "
                         f"select one configuration first (e.g. runs[runs[{bad[0]!r}] == ...]){hint}")


def runs_frame(sources: Any):
    """One row per run: identifying columns (experiment, cell_id, dataset, method, k, repeat,
    seed, device, threads, epochs, groups, period, sample_ratio, gamma_percent, warmup,
    random_fp16 (-1 = off), grad_stats) and results (train_seconds, eval_seconds, setup_seconds, updates_per_second,
    final_test_rmse, epochs_run, interrupted, fp32_user_groups, fp32_item_groups, n_users,
    n_items, n_train, n_test, realised user/item groups, source).  No reports (an empty
    directory) give an empty frame with these columns."""
    import pandas as pd
    rows = []
    for rep in load_reports(sources):
        tot, ds, eps = rep["totals"], rep["dataset"], rep["epochs"]
        last = eps[-1] if eps else {}
        rows.append({
            **_run_keys(rep),
            "train_seconds": tot.get("train_seconds"), "eval_seconds": tot.get("eval_seconds"),
            "setup_seconds": tot.get("setup_seconds"), "updates_per_second": tot.get("updates_per_second"),
            "final_test_rmse": tot.get("final_test_rmse"), "epochs_run": tot.get("epochs_run"),
            "interrupted": tot.get("interrupted"),
            "fp32_user_groups": last.get("fp32_user_groups"), "fp32_item_groups": last.get("fp32_item_groups"),
            "n_users": ds.get("n_users"), "n_items": ds.get("n_items"), "n_train": ds.get("n_train"),
            "n_test": ds.get("n_test"), "realised_user_groups": ds.get("user_groups"),
            "realised_item_groups": ds.get("item_groups"), "source": rep["_source"],
        })
    return pd.DataFrame(rows, columns=_key_columns() + _RUN_RESULTS)


def epochs_frame(sources: Any):
    """One row per run and epoch: the run's identifying columns plus epoch, lr, train_seconds,
    eval_seconds, test_rmse, fp32_user_groups, fp32_item_groups (empty, with these columns, when
    there are no reports)."""
    import pandas as pd
    rows = []
    for rep in load_reports(sources):
        keys = _run_keys(rep)
        for e in rep["epochs"]:
            rows.append({**keys, "epoch": e.get("epoch"), "lr": e.get("lr"),
                         "train_seconds": e.get("train_seconds"), "eval_seconds": e.get("eval_seconds"),
                         "test_rmse": e.get("test_rmse"), "fp32_user_groups": e.get("fp32_user_groups"),
                         "fp32_item_groups": e.get("fp32_item_groups")})
    return pd.DataFrame(rows, columns=_key_columns() + _EPOCH_RESULTS)


def grad_norms_frame(sources: Any):
    """One row per run, epoch, side (user/item) and group: the mean L2 gradient norm the core
    reports with ``grad_stats=True`` (``user_grad_norm`` / ``item_grad_norm`` per epoch; group 0
    holds the most-rated entities).  Runs without gradient statistics contribute no rows."""
    import pandas as pd
    rows = []
    for rep in load_reports(sources):
        keys = _run_keys(rep)
        for e in rep["epochs"]:
            for side in ("user", "item"):
                norms = e.get(f"{side}_grad_norm")
                if norms is None:
                    continue
                for g, v in enumerate(norms):
                    rows.append({**keys, "epoch": e.get("epoch"), "side": side, "group": g,
                                 "grad_norm": None if v is None or v < 0 else float(v)})
    cols = _key_columns() + ["epoch", "side", "group", "grad_norm"]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- tables
def relative_time_table(runs, baseline: str = "fp32", by: Sequence[str] = ("dataset", "k"),
                        time: str = "train_seconds"):
    """Mean training time per method relative to ``baseline``'s mean in the same ``by`` cell
    (Fig. 1/7/9): columns by..., method, mean_seconds, std_seconds, repeats, relative_time,
    mean_rmse.  Methods in a cell without a baseline run get a NaN relative time.  Runs of one
    (by..., method) cell must share their configuration (epochs, device kind, threads, groups,
    period, sample_ratio, warmup, random_fp16, grad_stats): a ``ValueError`` names the fields
    that differ otherwise (select one configuration, or add them to ``by``)."""
    import numpy as np
    by = list(by)
    _check_one_config(runs, by + ["method"], "relative_time_table")
    g = runs.groupby(by + ["method"], dropna=False)
    t = g.agg(mean_seconds=(time, "mean"), std_seconds=(time, "std"), repeats=(time, "size"),
              mean_rmse=("final_test_rmse", "mean")).reset_index()
    order = {m: i for i, m in enumerate(dict.fromkeys(runs["method"]))}  # methods as run, not A-Z
    t = t.sort_values(by + ["method"], key=lambda c: c.map(order) if c.name == "method" else c,
                      kind="stable").reset_index(drop=True)
    base = t[t["method"] == baseline].set_index(by)["mean_seconds"]
    key = list(zip(*(t[c] for c in by))) if len(by) > 1 else list(t[by[0]])
    t["relative_time"] = [float(t["mean_seconds"].iloc[i] / base[k_]) if k_ in base.index else np.nan
                          for i, k_ in enumerate(key)]
    return t


def rmse_curves(epochs, by: Sequence[str] = ("dataset", "k", "method")):
    """Mean test RMSE per epoch over repeats (Fig. 8): columns by..., epoch, test_rmse.  Like
    :func:`relative_time_table`, refuses (``ValueError``) to average runs of different
    configurations."""
    _check_one_config(epochs, list(by) + ["epoch"], "rmse_curves")
    t = epochs.groupby(list(by) + ["epoch"], dropna=False)["test_rmse"].mean().reset_index()
    if "method" in by:  # methods in run order, not A-Z (the plot's legend follows it)
        order = {m: i for i, m in enumerate(dict.fromkeys(epochs["method"]))}
        t = t.sort_values(list(by) + ["epoch"], key=lambda c: c.map(order) if c.name == "method" else c,
                          kind="stable").reset_index(drop=True)
    return t


def sweep_table(runs, x: str, by: Sequence[str] = ("dataset", "method")):
    """Mean time and RMSE against one swept parameter ``x`` (Fig. 10/11; Table II rows).  Like
    :func:`relative_time_table`, refuses (``ValueError``) to average runs of different
    configurations."""
    _check_one_config(runs, list(by) + [x], "sweep_table")
    return (runs.groupby(list(by) + [x], dropna=False)
            .agg(mean_seconds=("train_seconds", "mean"), std_seconds=("train_seconds", "std"),
                 mean_rmse=("final_test_rmse", "mean"), repeats=("train_seconds", "size"))
            .reset_index())


def sensitivity_table(runs):
    """Table II shaped: one row per (dataset, period pi), columns ``rmse@G%`` and ``time@G%``
    for every sampling ratio gamma present (means over repeats)."""
    import pandas as pd
    t = sweep_table(runs, "gamma_percent", by=("dataset", "period"))
    rows = []
    for (ds, pi), part in t.groupby(["dataset", "period"]):
        row: dict[str, Any] = {"dataset": ds, "pi": int(pi)}
        for _, r in part.sort_values("gamma_percent").iterrows():
            gp = f"{r['gamma_percent']:g}"
            row[f"rmse@{gp}%"] = r["mean_rmse"]
            row[f"time@{gp}%"] = r["mean_seconds"]
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["dataset", "pi"])


def sensitivity_ttest(runs, chosen: tuple[int, float] = (2, 5), reference: tuple[int, float] = (1, 100)):
    """Welch t-tests (95 %) of the chosen (pi, gamma %) against the reference, per dataset, on
    training time and on final RMSE: columns dataset, metric, mean_chosen, mean_reference, t, df,
    p, significant, n.  Rows with fewer than 2 repeats on either side get NaN statistics."""
    import pandas as pd
    _check_one_config(runs, ["dataset", "period", "gamma_percent"], "sensitivity_ttest")
    rows = []
    for ds, part in runs.groupby("dataset"):
        a, b = _setting(part, *chosen), _setting(part, *reference)
        for metric, col in (("time", "train_seconds"), ("rmse", "final_test_rmse")):
            xa, xb = list(a[col].dropna()), list(b[col].dropna())
            if len(xa) >= 2 and len(xb) >= 2:
                r = welch_ttest(xa, xb)
            else:
                r = {"t": math.nan, "df": math.nan, "p": math.nan,
                     "mean_a": _mean(xa), "mean_b": _mean(xb)}
            rows.append({"dataset": ds, "metric": metric, "mean_chosen": r["mean_a"],
                         "mean_reference": r["mean_b"], "t": r["t"], "df": r["df"], "p": r["p"],
                         "significant": bool(r["p"] < 0.05) if not math.isnan(r["p"]) else False,
                         "n": f"{len(xa)}/{len(xb)}"})
    return pd.DataFrame(rows, columns=["dataset", "metric", "mean_chosen", "mean_reference", "t", "df",
                                       "p", "significant", "n"])


def _setting(part, pi: int, gamma_percent: float):
    """The rows of ``part`` with period ``pi`` and sample ratio ``gamma_percent`` %."""
    return part[(part["period"] == pi) & ((part["gamma_percent"] - gamma_percent).abs() < 1e-9)]


def _mean(x: list) -> float:
    return sum(x) / len(x) if x else math.nan


def grad_norm_summary(norms):
    """Fig. 5b in numbers: from :func:`grad_norms_frame`, per (dataset, side, group) the mean
    gradient norm of the first and the last epoch that has samples and their ratio (groups named
    ``G1`` = most-rated first).  Returns (summary, empty): a group without a single sampled
    gradient (every entity of it lacks training ratings, which the count grouping allows because
    ties are not split) keeps its row with NaN, and ``empty`` names those groups
    (``"DATASET: user G4"``) so a report can say so rather than drop them."""
    import pandas as pd
    cols = ["dataset", "side", "group", "first_epoch", "last_epoch", "last / first"]
    if norms.empty:
        return pd.DataFrame(columns=cols), []
    s = (norms.groupby(["dataset", "side", "group", "epoch"], sort=False)["grad_norm"].mean()
         .reset_index().sort_values(["dataset", "side", "group", "epoch"], kind="stable"))
    summ = s.groupby(["dataset", "side", "group"]).agg(
        first_epoch=("grad_norm", "first"), last_epoch=("grad_norm", "last")).reset_index()
    summ["last / first"] = summ["last_epoch"] / summ["first_epoch"]
    empty = [f"{r.dataset}: {r.side} G{int(r.group) + 1}" for r in summ.itertuples(index=False)
             if math.isnan(r.first_epoch)]
    summ["group"] = [f"G{int(g) + 1}" for g in summ["group"]]
    return summ[cols], empty


def rating_count_distribution(users: Any, items: Any):
    """Fig. 5a: for users and items, how many entities have each number of ratings
    (columns side, n_ratings, n_entities; entities with 0 ratings are left out)."""
    import numpy as np
    import pandas as pd
    parts = []
    for side, ids in (("user", users), ("item", items)):
        counts = np.bincount(np.asarray(ids, dtype=np.int64))
        counts = counts[counts > 0]
        n, freq = np.unique(counts, return_counts=True)
        parts.append(pd.DataFrame({"side": side, "n_ratings": n, "n_entities": freq}))
    return pd.concat(parts, ignore_index=True)


def paper_comparison(runs, experiment: str):
    """This project's figures next to the paper's for the same settings: columns quantity,
    setting, dataset, paper_dataset, ours, paper, paper_source, device (ours; the paper's device
    is ``PAPER["device"]``).  Rows only for numbers the paper prints (Table II, and the relative
    times stated in §IV's text).  Runs of one setting must share their configuration (else
    ``ValueError``, as in :func:`relative_time_table`)."""
    import pandas as pd
    _check_one_config(runs, ["dataset", "k", "method", "groups", "period", "gamma_percent", "random_fp16"],
                      "paper_comparison", by_hint=False)
    rows: list[dict] = []
    device = ", ".join(sorted({str(d) for d in runs["device"].dropna()})) if "device" in runs else ""
    if experiment == "sensitivity":
        t = sweep_table(runs, "gamma_percent", by=("dataset", "period"))
        for _, r in t.iterrows():
            pds = paper_dataset(str(r["dataset"]))
            key = (int(r["period"]), int(round(r["gamma_percent"])))
            ref = PAPER["table2"].get(pds, {}).get(key) if pds else None
            for q, ours, paper in (("RMSE", r["mean_rmse"], ref[0] if ref else None),
                                   ("time (s)", r["mean_seconds"], ref[1] if ref else None)):
                rows.append({"quantity": q, "setting": f"pi={key[0]}, gamma={key[1]}%",
                             "dataset": r["dataset"], "paper_dataset": pds, "ours": ours,
                             "paper": paper, "paper_source": PAPER["table2_source"] if ref else "",
                             "device": device})
    else:
        wanted = any(r["experiment"] == experiment and "/" not in r["method"] for r in PAPER["relative_time"])
        rel = relative_time_table(runs, by=("dataset", "k")) if wanted and "fp32" in set(runs["method"]) else None
        for ref in PAPER["relative_time"]:
            if ref["experiment"] != experiment:
                continue
            m = ref["method"]
            for ds in sorted(set(runs["dataset"])):
                ours = _our_relative(runs, rel, m, ds, ref["k"])
                if ours is None:
                    continue
                pds = paper_dataset(ds)
                if ref["dataset"] not in ("average of 4", "ideal") and ref["dataset"] != pds:
                    continue
                rows.append({"quantity": f"relative time {m}" + ("" if "/" in m else " / fp32"),
                             "setting": f"k={ours[1]}" + ("" if experiment != "lookup" else ", g=100"),
                             "dataset": ds, "paper_dataset": ref["dataset"], "ours": ours[0],
                             "paper": ref["value"], "paper_source": ref["source"], "device": device})
    return pd.DataFrame(rows, columns=["quantity", "setting", "dataset", "paper_dataset", "ours",
                                       "paper", "paper_source", "device"])


def _our_relative(runs, rel, method: str, dataset: str, k: int | None):
    """(our value, k) for one of PAPER's relative-time entries, or None if not measured."""
    ks = sorted(set(runs[runs["dataset"] == dataset]["k"]))
    if not ks:
        return None
    kk = k if k in ks else max(ks)  # quick runs use a smaller k: compare with the largest one
    part = runs[(runs["dataset"] == dataset) & (runs["k"] == kk)]
    mean = lambda meth, **f: part[(part["method"] == meth) & _matches(part, f)]["train_seconds"].mean()  # noqa: E731
    if "/" in method:
        a, b = [s.strip() for s in method.split("/")]
        if 100 not in set(part["groups"]):  # the paper's ratios are at g = 100
            return None
        va, vb = mean(a, groups=100), mean(b, groups=100)
        return None if math.isnan(va) or math.isnan(vb) else (float(va / vb), kk)
    if rel is None:
        return None
    r = rel[(rel["dataset"] == dataset) & (rel["k"] == kk) & (rel["method"] == method)]
    return None if r.empty or math.isnan(r["relative_time"].iloc[0]) else (float(r["relative_time"].iloc[0]), kk)


def _matches(df, f: dict):
    """The rows of ``df`` whose columns equal ``f``'s values (all rows for an empty ``f``)."""
    m = df["method"] == df["method"]
    for c, v in f.items():
        m &= df[c] == v
    return m


# --------------------------------------------------------------------------- output helpers
def markdown_table(df, floatfmt: str = ".4g") -> str:
    """A DataFrame as a GitHub Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` whole or not at all (``mascot._files``: a temp file beside it,
    published over it; inside ``_files.all_or_none()`` together with the block's other outputs);
    makes the missing directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _files.atomic_write(path, text)


def write_csv(df, path: str | os.PathLike) -> None:
    """A DataFrame as CSV, atomically."""
    atomic_write_text(path, df.to_csv(index=False))


def _figure(figsize=(6.4, 4.0)):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt, plt.figure(figsize=figsize)


def _save(plt, fig, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _files.staged_file(path) as tmp:
            with warnings.catch_warnings():  # labels too long for the margins: saved as they are
                warnings.simplefilter("ignore", UserWarning)
                fig.tight_layout()
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- plots
def plot_relative_time(rel, path: str | os.PathLike, title: str = "Training time relative to FP32",
                       ideal: float | None = 0.5) -> None:
    """Bar chart (Fig. 1/7/9): one group of bars per (dataset, k), one bar per method, with the
    FP32 line at 1 and the ideal FP16 line at ``ideal``."""
    plt, fig = _figure((max(6.4, 1.2 * rel[["dataset", "k"]].drop_duplicates().shape[0] + 3), 4.0))
    ax = fig.add_subplot(111)
    groups = list(rel[["dataset", "k"]].drop_duplicates().itertuples(index=False, name=None))
    methods = list(dict.fromkeys(rel["method"]))
    w = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        ys = []
        for ds, k in groups:
            r = rel[(rel["dataset"] == ds) & (rel["k"] == k) & (rel["method"] == m)]
            ys.append(float(r["relative_time"].iloc[0]) if len(r) else float("nan"))
        ax.bar([i + (j - (len(methods) - 1) / 2) * w for i in range(len(groups))], ys, w, label=m)
    ax.axhline(1.0, color="black", lw=0.8)
    if ideal is not None:
        ax.axhline(ideal, color="red", ls="--", lw=1.0, label=f"ideal FP16 ({ideal})")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{ds}\nk={k}" for ds, k in groups], fontsize=8)
    ax.set_ylabel("time / fp32 time")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    _save(plt, fig, path)


def plot_rmse_curves(curves, path: str | os.PathLike, title: str = "Test RMSE per epoch") -> None:
    """Line plot (Fig. 8): one panel per (dataset, k), one line per method."""
    panels = list(curves[["dataset", "k"]].drop_duplicates().itertuples(index=False, name=None))
    plt, fig = _figure((4.2 * max(1, len(panels)), 3.6))
    for p, (ds, k) in enumerate(panels):
        ax = fig.add_subplot(1, max(1, len(panels)), p + 1)
        part = curves[(curves["dataset"] == ds) & (curves["k"] == k)]
        for m, line in part.groupby("method", sort=False):
            ax.plot(line["epoch"] + 1, line["test_rmse"], label=m, lw=1.2)
        ax.set_title(f"{ds}, k={k}", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test RMSE")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(plt, fig, path)


def plot_sweep(table, x: str, path: str | os.PathLike, title: str, xlabel: str,
               logx: bool = False, point_labels: str | None = None, label_note: str = "") -> None:
    """Time (left) and RMSE (right) against a swept parameter, one line per (dataset, method)
    (Fig. 10, 11; Fig. 4 with x = share of FP16 rows).  ``point_labels``: a column of ``table``
    whose value labels each point of the time plot (e.g. the realised number of groups, which
    may be below g); ``label_note`` says what the labels are (added to the x label)."""
    plt, fig = _figure((9.0, 3.6))
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    for (ds, m), part in table.groupby(["dataset", "method"], sort=False):
        part = part.sort_values(x)
        axes[0].plot(part[x], part["mean_seconds"], marker="o", label=f"{ds} {m}")
        axes[1].plot(part[x], part["mean_rmse"], marker="o", label=f"{ds} {m}")
        if point_labels is not None:
            for xv, yv, lv in zip(part[x], part["mean_seconds"], part[point_labels]):
                if lv is None or (isinstance(lv, float) and math.isnan(lv)):
                    continue
                text = f"{lv:g}" if isinstance(lv, float) else str(lv)
                axes[0].annotate(text, (xv, yv), textcoords="offset points", xytext=(0, 5),
                                 ha="center", fontsize=6)
    for ax, yl in zip(axes, ("training time (s)", "test RMSE")):
        ax.set_xlabel(xlabel + (f"\n(point labels: {label_note})" if label_note and ax is axes[0] else ""))
        ax.set_ylabel(yl)
        if logx:
            ax.set_xscale("symlog", linthresh=1)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(plt, fig, path)


def plot_sensitivity(table, path: str | os.PathLike) -> None:
    """Table II as heat maps: time and RMSE over (pi, gamma) for each dataset."""
    datasets = list(dict.fromkeys(table["dataset"]))
    plt, fig = _figure((8.0, 3.2 * max(1, len(datasets))))
    for d, ds in enumerate(datasets):
        part = table[table["dataset"] == ds].sort_values("pi")
        for c, what in enumerate(("time", "rmse")):
            cols = [col for col in part.columns if col.startswith(what + "@")]
            ax = fig.add_subplot(len(datasets), 2, 2 * d + c + 1)
            vals = part[cols].to_numpy(dtype=float)
            im = ax.imshow(vals, aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(cols)))
            ax.set_xticklabels([col.split("@")[1] for col in cols], fontsize=7)
            ax.set_yticks(range(len(part)))
            ax.set_yticklabels([str(p) for p in part["pi"]], fontsize=7)
            ax.set_xlabel("gamma")
            ax.set_ylabel("pi")
            ax.set_title(f"{ds}: {'time (s)' if what == 'time' else 'RMSE'}", fontsize=9)
            fig.colorbar(im, ax=ax)
    _save(plt, fig, path)


def plot_rating_counts(dist, path: str | os.PathLike, title: str = "Rating-count distribution") -> None:
    """Fig. 5a: number of users/items against their number of ratings, log-log."""
    plt, fig = _figure((6.4, 4.0))
    ax = fig.add_subplot(111)
    for (ds, side), part in dist.groupby(["dataset", "side"], sort=False):
        ax.loglog(part["n_ratings"], part["n_entities"], ".", ms=3, label=f"{ds} {side}s")
    ax.set_xlabel("# ratings")
    ax.set_ylabel("# users / items")
    ax.set_title(title)
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_grad_norms(norms, path: str | os.PathLike, side: str = "user") -> None:
    """Fig. 5b: mean gradient norm per epoch of each group (G1 = most-rated quartile)."""
    part = norms[norms["side"] == side]
    panels = list(dict.fromkeys(part["dataset"]))
    plt, fig = _figure((4.6 * max(1, len(panels)), 3.6))
    for p, ds in enumerate(panels):
        ax = fig.add_subplot(1, max(1, len(panels)), p + 1)
        sub = part[part["dataset"] == ds].groupby(["group", "epoch"])["grad_norm"].mean().reset_index()
        for g, line in sub.groupby("group"):
            ax.plot(line["epoch"] + 1, line["grad_norm"], label=f"G{int(g) + 1}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"mean ||grad {'p_u' if side == 'user' else 'q_i'}||")
        ax.set_title(f"{ds}: {side} groups", fontsize=9)
        ax.legend(fontsize=7)
    _save(plt, fig, path)


# --------------------------------------------------------------------------- ranking metrics
# Ranking metrics live in mascot.metrics (another part of the project); re-export them here
# when that module exists so analysis code has one import.
try:
    _metrics = importlib.import_module(f"{__package__}.metrics")
except ModuleNotFoundError as _e:  # only a missing mascot.metrics is tolerated
    if _e.name != f"{__package__}.metrics":
        raise
    _metrics = None
for _name in getattr(_metrics, "__all__", ()):
    globals()[_name] = getattr(_metrics, _name)
