"""The experiments: each one's grid (full and ``--quick``) and its outputs.

Grids are built from :class:`Options` only (no data is touched); outputs read the finished
runs from the :class:`Context` (DataFrames built by ``mascot.analysis`` from the raw reports),
write their CSV tables and PNG plots into ``ctx.out`` atomically and return Markdown sections
for ``report.md``.
"""
from __future__ import annotations

from .. import analysis as an
from .grid import QUICK_DATASET, SWITCHING_METHODS, Cell, Context, Experiment, Options, make_cells

FULL_EPOCHS, QUICK_EPOCHS = 50, 3
FULL_REPEATS = 5
QUICK_K = 32
_MASCOT_LIKE = SWITCHING_METHODS


def _common(o: Options, datasets: list[str], quick_repeats: int = 1, full_repeats: int = FULL_REPEATS):
    ds = o.datasets or ([QUICK_DATASET] if o.quick else datasets)
    epochs = o.epochs or (QUICK_EPOCHS if o.quick else FULL_EPOCHS)
    repeats = o.repeats or (quick_repeats if o.quick else full_repeats)
    return ds, epochs, repeats


def _quick_params(o: Options):
    """Quick runs are 3 epochs long: start g-switching's measurements after 1 epoch so the
    switching code runs at all (the full runs keep the default warm-up w = 5 of docs/design.md; the
    paper gives no warm-up)."""
    def per_method(m: str) -> dict:
        return {"warmup": 1} if o.quick and m in _MASCOT_LIKE else {}
    return per_method


def _ks(o: Options, full: list[int]) -> list[int]:
    return [QUICK_K] if o.quick else full


def _section(title: str, *parts: str) -> str:
    return "\n\n".join([f"## {title}", *[p for p in parts if p]]) + "\n"


def _img(name: str, alt: str) -> str:
    return f"![{alt}]({name})"


_GROUP_COUNTS = ("fp32_user_groups", "fp32_item_groups", "realised_user_groups", "realised_item_groups")


def _integral(df, cols=_GROUP_COUNTS):
    """The group-count columns as integers when they hold whole numbers only (means of equal
    counts; folds of a dataset may differ, and keep their fractional mean)."""
    for c in cols:
        if c not in df.columns:
            continue
        col = df[c]
        if col.dtype.kind == "f" and col.notna().all() and (col == col.round()).all():
            df[c] = col.astype("int64")
    return df


def _with_groups(t, runs, by: list[str], fp32: bool = False):
    """``t`` (a sweep table) with the realised user/item group counts (DESIGN §3: the grouping
    does not split ties, so it may give fewer than g groups) and, with ``fp32``, the groups
    switched to FP32 by the end, as means over the runs of each row (one value unless the row
    merges folds of a dataset)."""
    aggs = {"realised_user_groups": ("realised_user_groups", "mean"),
            "realised_item_groups": ("realised_item_groups", "mean")}
    if fp32:
        aggs = {"fp32_user_groups": ("fp32_user_groups", "mean"),
                "fp32_item_groups": ("fp32_item_groups", "mean"), **aggs}
    r = runs.groupby(by, dropna=False).agg(**aggs).reset_index()
    return _integral(t.merge(r, on=by, how="left"))


_REALISED_NOTE = ("realised_*_groups: the groups the grouping produced (ties in rating count are not "
                  "split, so fewer than g when many users or items share a count; docs/design.md §3); "
                  "the time plot labels each point with the realised number of user groups.")


def _paper_section(ctx: Context) -> str:
    cmp = an.paper_comparison(ctx.runs, ctx.experiment.name)
    an.write_csv(cmp, ctx.out / "paper_comparison.csv")
    if cmp.empty:
        return _section("Against the paper", "The paper prints no number for these settings; its "
                        "claim is quoted below.")
    return _section("Against the paper",
                    "Our figure next to the number printed in the paper (source column). The "
                    "paper's times are on its GPU; compare ratios, not seconds. Synthetic datasets "
                    "share only the shape of the paper's sets, so their RMSE is not comparable.",
                    an.markdown_table(cmp))


# --------------------------------------------------------------------------- compare (Fig. 1, 7, 8)
COMPARE_METHODS = ["fp32", "fp16", "mpt", "muppet", "afp", "mascot"]


def _grid_compare(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"])
    return make_cells("compare", ds, COMPARE_METHODS, _ks(o, [64, 128]), ep, rep, o.device,
                      per_method=_quick_params(o))


def _time_rmse_outputs(ctx: Context, title: str) -> list[str]:
    rel = an.relative_time_table(ctx.runs)
    an.write_csv(rel, ctx.out / "relative_time.csv")
    an.plot_relative_time(rel, ctx.out / "relative_time.png", title=title)
    curves = an.rmse_curves(ctx.epochs)
    an.write_csv(curves, ctx.out / "rmse_per_epoch.csv")
    an.plot_rmse_curves(curves, ctx.out / "rmse_per_epoch.png")
    cols = ["dataset", "k", "method", "mean_seconds", "std_seconds", "relative_time", "mean_rmse", "repeats"]
    return [
        _section("Training time relative to fp32, and final RMSE",
                 an.markdown_table(rel[cols]), _img("relative_time.png", "relative time"),
                 "Red dashed line: the ideal FP16 time (0.5)."),
        _section("Test RMSE per epoch", _img("rmse_per_epoch.png", "RMSE per epoch"),
                 "Data: `rmse_per_epoch.csv` (means over repeats)."),
        _paper_section(ctx),
    ]


def _out_compare(ctx: Context) -> list[str]:
    return _time_rmse_outputs(ctx, "Fig. 1/7: training time relative to FP32")


# --------------------------------------------------------------------------- ablation (Fig. 9)
ABLATION_METHODS = ["fp32", "mascot-n1", "mascot-n2", "mascot"]


def _grid_ablation(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"])
    return make_cells("ablation", ds, ABLATION_METHODS, _ks(o, [128]), ep, rep, o.device,
                      per_method=_quick_params(o))


def _out_ablation(ctx: Context) -> list[str]:
    return _time_rmse_outputs(ctx, "Fig. 9: m-quantization and g-switching")


# --------------------------------------------------------------------------- lookup (Fig. 10)
LOOKUP_GROUPS = [1, 10, 50, 100, 200, 300, 500]


def _grid_lookup(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"])
    gs = [1, 10] if o.quick else LOOKUP_GROUPS
    return make_cells("lookup", ds, ["mascot", "mascot-naive"], _ks(o, [128]), ep, rep, o.device,
                      variants=[{"groups": g} for g in gs], per_method=_quick_params(o))


_LOOKUP_NOTE = (
    "What the two lookups are here: on the CPU backend, `mascot` decides each row's precision from "
    "a per-row bit (one bit per user and item, O(m+n) bits, rebuilt when groups switch), while "
    "`mascot-naive` binary-searches the O(g) group table for every rating. So on the CPU this is "
    "bit against search, not the paper's optimisation (§III-D: the most-rated groups' meta "
    "information cached in registers and caches, groups searched most-rated first), whose "
    "counterpart is the CUDA backend's optimised lookup (see docs/cuda.md); compare the paper's "
    "ratios with runs on `--device cuda`.")


def _out_lookup(ctx: Context) -> list[str]:
    t = _with_groups(an.sweep_table(ctx.runs, "groups"), ctx.runs, ["dataset", "method", "groups"])
    an.write_csv(t, ctx.out / "lookup.csv")
    an.plot_sweep(t, "groups", ctx.out / "lookup.png", "Fig. 10: group lookup, mascot vs mascot-naive",
                  "number of groups g", logx=True, point_labels="realised_user_groups",
                  label_note="realised number of user groups")
    piv = t.pivot_table(index=["dataset", "groups"], columns="method", values="mean_seconds").reset_index()
    if {"mascot", "mascot-naive"} <= set(piv.columns):
        piv["mascot / mascot-naive"] = piv["mascot"] / piv["mascot-naive"]
    piv.columns.name = None
    realised = t.groupby(["dataset", "groups"], as_index=False)[["realised_user_groups",
                                                                 "realised_item_groups"]].first()
    piv = _integral(piv.merge(realised, on=["dataset", "groups"], how="left"))
    return [_section("Training time against g", an.markdown_table(piv), _img("lookup.png", "lookup"),
                     _REALISED_NOTE, _LOOKUP_NOTE),
            _paper_section(ctx)]


# --------------------------------------------------------------------------- sensitivity (Table II)
def _grid_sensitivity(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"], quick_repeats=2)
    pis, gammas = ([1, 2], [5, 100]) if o.quick else (list(an.PERIODS), list(an.GAMMAS_PERCENT))
    return make_cells("sensitivity", ds, ["mascot"], _ks(o, [128]), ep, rep, o.device,
                      variants=[{"period": p, "sample_ratio": g / 100} for p in pis for g in gammas],
                      per_method=_quick_params(o))


def _out_sensitivity(ctx: Context) -> list[str]:
    t = an.sensitivity_table(ctx.runs)
    an.write_csv(t, ctx.out / "table2.csv")
    an.plot_sensitivity(t, ctx.out / "sensitivity.png")
    tt = an.sensitivity_ttest(ctx.runs)
    an.write_csv(tt, ctx.out / "ttest.csv")
    paper_blocks = []
    for ds in dict.fromkeys(ctx.runs["dataset"]):
        pds = an.paper_dataset(str(ds))
        if pds:
            import pandas as pd
            rows = [{"dataset": pds, "pi": pi, **{f"{w}@{g}%": an.PAPER["table2"][pds][(pi, g)][i]
                                                 for g in an.GAMMAS_PERCENT for i, w in enumerate(("rmse", "time"))}}
                    for pi in an.PERIODS]
            paper_blocks.append(an.markdown_table(pd.DataFrame(rows)))
    return [
        _section("RMSE and training time over pi x gamma (this project)", an.markdown_table(t),
                 _img("sensitivity.png", "sensitivity")),
        _section("The paper's Table II for the same datasets",
                 *(paper_blocks or ["No dataset of this run has a counterpart in Table II."]),
                 f"Source: {an.PAPER['table2_source']}; device: {an.PAPER['device']}."),
        _section("Welch t-test: pi=2, gamma=5 % against pi=1, gamma=100 % (95 %)",
                 an.markdown_table(tt),
                 "t < 0 means the chosen setting has the smaller mean; significant = p < 0.05. "
                 "The paper reports p < 0.05 for the time in all four datasets (§IV-D). Needs at "
                 "least 2 repeats (NaN otherwise)."),
        _paper_section(ctx),
    ]


# --------------------------------------------------------------------------- groups (Fig. 11)
GROUPS = [1, 10, 50, 100, 200, 300, 400, 500]


def _grid_groups(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"])
    gs = [1, 10] if o.quick else GROUPS
    return make_cells("groups", ds, ["mascot"], _ks(o, [128]), ep, rep, o.device,
                      variants=[{"groups": g} for g in gs], per_method=_quick_params(o))


def _out_groups(ctx: Context) -> list[str]:
    t = _with_groups(an.sweep_table(ctx.runs, "groups"), ctx.runs, ["dataset", "method", "groups"], fp32=True)
    an.write_csv(t, ctx.out / "groups.csv")
    an.plot_sweep(t, "groups", ctx.out / "groups.png", "Fig. 11: number of groups", "number of groups g",
                  logx=True, point_labels="realised_user_groups", label_note="realised number of user groups")
    return [_section("Training time and RMSE against g", an.markdown_table(t), _img("groups.png", "groups"),
                     "fp32_*_groups: groups switched to FP32 by the end (means over repeats). " + _REALISED_NOTE),
            _paper_section(ctx)]


# --------------------------------------------------------------------------- potential (Fig. 4)
POTENTIAL_SHARES = [0.2, 0.4, 0.6]  # the paper's Fig. 4
POTENTIAL_CONTROLS = [0.0, 1.0]  # every row FP32 / FP16 through the same mixed per-row kernel


def _grid_potential(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"])
    ks = _ks(o, [128])
    return (make_cells("potential", ds, ["fp32"], ks, ep, rep, o.device)
            + make_cells("potential", ds, ["mascot-n1"], ks, ep, rep, o.device,
                         variants=[{"random_fp16": s} for s in sorted(POTENTIAL_SHARES + POTENTIAL_CONTROLS)]))


def _out_potential(ctx: Context) -> list[str]:
    import numpy as np
    runs = ctx.runs.copy()
    share = runs["random_fp16"].astype(float)
    runs["method"] = [m if s < 0 else f"{s:.0%} FP16" for m, s in zip(runs["method"], share)]
    rel = an.relative_time_table(runs)
    rel["fp16_share"] = [0.0 if m == "fp32" else float(m.split("%")[0]) / 100 for m in rel["method"]]
    # time relative to the 0 % control: the same mixed kernel, so only the storage differs
    ctrl = rel[rel["method"] == "0% FP16"].set_index(["dataset", "k"])["mean_seconds"]
    rel["relative_to_mixed"] = [np.nan if m == "fp32" or (d, k) not in ctrl.index else t / ctrl[(d, k)]
                                for d, k, m, t in zip(rel["dataset"], rel["k"], rel["method"], rel["mean_seconds"])]
    an.write_csv(rel, ctx.out / "potential.csv")
    an.plot_relative_time(rel, ctx.out / "potential.png",
                          title="Fig. 4: random share of latent vectors in FP16", ideal=None)
    cols = ["dataset", "k", "method", "fp16_share", "mean_seconds", "relative_time", "relative_to_mixed",
            "mean_rmse", "repeats"]
    return [_section("Training time relative to FP32", an.markdown_table(rel[cols]),
                     _img("potential.png", "potential"),
                     "Rows are stored FP16 at random (`random_fp16`, seeded) with no switching; "
                     "arithmetic is FP32 as in mascot-n1. The shares run mascot-n1's mixed per-row "
                     "kernel (a precision check per row), the fp32 baseline the plain FP32 kernel, so "
                     "`relative_time` mixes two effects. The control rows separate them: 0 % FP16 "
                     "(every row FP32, mixed kernel) against fp32 is the kernel overhead alone, with "
                     "no storage saving; 100 % FP16 (every row FP16) is the whole storage saving; "
                     "`relative_to_mixed` (time / the 0 % control's) is the storage effect of each "
                     "share without the kernel overhead, the quantity Fig. 4 is about."),
            _paper_section(ctx)]


# --------------------------------------------------------------------------- observations (Fig. 3, 5)
def _grid_observations(o: Options) -> list[Cell]:
    ds, ep, rep = _common(o, ["ml100k", "synthetic-ml10m"], full_repeats=1)
    # 4 groups = user (item) quartiles by rating count; on tiny data sample every rating
    params = {"groups": 4, "grad_stats": True, "sample_ratio": 1.0 if o.quick else 0.05}
    return make_cells("observations", ds, ["fp32"], _ks(o, [128]), ep, rep, o.device, variants=[params])


def _out_observations(ctx: Context) -> list[str]:
    import pandas as pd
    dists = []
    for ds in dict.fromkeys(c.dataset for c in ctx.cells):
        d = ctx.load_dataset(ds)
        dist = an.rating_count_distribution(d.train.users, d.train.items)
        dist.insert(0, "dataset", ds)
        dists.append(dist)
    dist = pd.concat(dists, ignore_index=True)
    an.write_csv(dist, ctx.out / "rating_counts.csv")
    an.plot_rating_counts(dist, ctx.out / "rating_counts.png")
    ratios = pd.DataFrame([
        {"model": "CNN layer, 32x32 image, 3x3 filter, b=1", "ours": an.cnn_compute_memory_ratio(32, 3), "paper": 7.84},
        {"model": "CNN layer, 224x224 image, 5x5 filter, b=1", "ours": an.cnn_compute_memory_ratio(224, 5),
         "paper": 24.10},
        {"model": "MF, any k and b", "ours": an.mf_compute_memory_ratio(128), "paper": 0.5},
    ])
    norms = an.merge_folds(an.grad_norms_frame(ctx.reports))
    an.write_csv(norms, ctx.out / "grad_norms.csv")
    out = [_section("Fig. 3: compute-to-memory ratio (paper §III-B formulas)", an.markdown_table(ratios)),
           _section("Fig. 5a: rating-count distribution (training set)",
                    _img("rating_counts.png", "rating counts"), "Data: `rating_counts.csv`.")]
    if norms.empty:
        out.append(_section("Fig. 5b: gradient scale per user quartile",
                            "The runs carry no gradient statistics (the core did not report "
                            "`user_grad_norm`)."))
        return out
    for side in ("user", "item"):
        an.plot_grad_norms(norms, ctx.out / f"grad_norms_{side}.png", side=side)
    summ, empty = an.grad_norm_summary(norms)
    out.append(_section("Fig. 5b: mean gradient norm per quartile group and epoch",
                        _img("grad_norms_user.png", "user gradient norms"),
                        _img("grad_norms_item.png", "item gradient norms"),
                        "G1 = the quarter of users (items) with the most ratings. Norms of the "
                        "sampled gradients e·q_i − λ_P·p_u (resp. e·p_u − λ_Q·q_i), per-group means "
                        "of the first and the last epoch with samples:",
                        an.markdown_table(summ),
                        (f"Groups with no sampled gradients in any epoch (no plot line, – above): "
                         f"{', '.join(empty)}. Ties in rating count are not split, so a group can hold "
                         "only users (items) without training ratings, e.g. those whose ratings all "
                         "fell into the test set." if empty else "")))
    return out


# The files each experiment's outputs write besides runs.csv, epochs.csv and report.md (checked
# before training: none of them may be a directory).
_TIME_RMSE_FILES = ("relative_time.csv", "relative_time.png", "rmse_per_epoch.csv", "rmse_per_epoch.png",
                    "paper_comparison.csv")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("compare", "paper Fig. 1, 7 and 8 (RQ1/RQ2)", _grid_compare, _out_compare,
               ["ml100k", "synthetic-ml10m"], "~50 min", _TIME_RMSE_FILES),
    Experiment("ablation", "paper Fig. 9 (RQ3, strategies)", _grid_ablation, _out_ablation,
               ["ml100k", "synthetic-ml10m"], "~6 min", _TIME_RMSE_FILES),
    Experiment("lookup", "paper Fig. 10 (RQ3, group lookup)", _grid_lookup, _out_lookup,
               ["ml100k", "synthetic-ml10m"], "~30 min", ("lookup.csv", "lookup.png", "paper_comparison.csv")),
    Experiment("sensitivity", "paper Table II (RQ4, pi and gamma)", _grid_sensitivity, _out_sensitivity,
               ["ml100k", "synthetic-ml10m"], "~45 min",
               ("table2.csv", "sensitivity.png", "ttest.csv", "paper_comparison.csv")),
    Experiment("groups", "paper Fig. 11 (RQ4, number of groups)", _grid_groups, _out_groups,
               ["ml100k", "synthetic-ml10m"], "~15 min", ("groups.csv", "groups.png", "paper_comparison.csv")),
    Experiment("potential", "paper Fig. 4 (potential of m-quantization)", _grid_potential, _out_potential,
               ["ml100k", "synthetic-ml10m"], "~10 min", ("potential.csv", "potential.png", "paper_comparison.csv")),
    Experiment("observations", "paper Fig. 3 and 5 (observations 1 and 2)", _grid_observations,
               _out_observations, ["ml100k", "synthetic-ml10m"], "~1 min",
               ("rating_counts.csv", "rating_counts.png", "grad_norms.csv", "grad_norms_user.png",
                "grad_norms_item.png")),
]}

__all__ = ["EXPERIMENTS"]
