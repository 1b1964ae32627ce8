"""mascot.analysis: the t-test against reference values, loaders on real run reports, tables."""
import importlib.util
import json
import math
from collections import Counter

import numpy as np
import pytest

# the analysis extras (pandas) may be absent, e.g. on an offline GPU machine: skip, not error
pd = pytest.importorskip("pandas")
# Welch's t-test needs SciPy (the experiments and test extras install it)
needs_scipy = pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="SciPy is not installed")

import mascot
from mascot import analysis as an

# Welch's t-test is SciPy's (scipy.stats.ttest_ind with equal_var=False); these reference values
# (computed with SciPy 1.17, and equal to the hand-written test this package had before) pin what
# welch_ttest returns: the sign convention, the degrees of freedom and the two-sided p.
WELCH = [
    ([0.69, 0.70, 0.68, 0.71, 0.69], [0.93, 0.95, 0.92, 0.94, 0.96],
     -28.218135266079145, 7.27455919395466, 1.0617378243973906e-08),
    ([1.0, 2.0, 3.0, 4.0], [2.5, 3.5, 4.5, 5.5, 6.5, 7.5], -2.5000000000000004, 7.941176470588236,
     0.03714965699125097),
    ([10.2, 9.8, 10.1], [10.0, 10.3, 9.9, 10.4], -0.6897304947150091, 4.780982424515555,
     0.5224008058403382),
    # one sample without variance (SciPy warns about precision here; welch_ttest silences that)
    ([1.0, 1.1, 0.9], [2.0, 2.0, 2.0], -17.320508075688767, 2.0, 0.003316758722356864),
]


@needs_scipy
@pytest.mark.parametrize("a,b,t,df,p", WELCH)
def test_welch_ttest_matches_reference(a, b, t, df, p):
    r = an.welch_ttest(a, b)
    assert r["t"] == pytest.approx(t, rel=1e-12)
    assert r["df"] == pytest.approx(df, rel=1e-12)
    assert r["p"] == pytest.approx(p, rel=1e-9)
    assert r["mean_a"] == pytest.approx(np.mean(a)) and r["n_b"] == len(b)


def test_welch_ttest_degenerate():
    with pytest.raises(ValueError, match="at least 2"):
        an.welch_ttest([1.0], [1.0, 2.0])
    r = an.welch_ttest([1.0, 1.0], [1.0, 1.0])
    assert math.isnan(r["t"]) and math.isnan(r["p"])


# ----------------------------------------------------------------------------- real reports
@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    d = mascot.data.load("synthetic-ml10m:0.002")
    out = tmp_path_factory.mktemp("reports")
    reps = []
    for method, extra in (("fp32", {"grad_stats": True, "groups": 4, "sample_ratio": 1.0}),
                          ("mascot", {"warmup": 1, "period": 1})):
        m = mascot.MF(k=16, method=method, epochs=3, threads=2, device="cpu", **extra)
        rep = m.fit(d.train, d.test, d.name).report_
        (out / f"{method}.json").write_text(json.dumps(rep))
        reps.append(rep)
    return out, reps


def test_load_reports_files_dirs_dicts(reports):
    out, reps = reports
    assert [r["config"]["method"] for r in an.load_reports(out)] == ["fp32", "mascot"]  # sorted
    one = an.load_reports(out / "mascot.json")
    assert len(one) == 1 and one[0]["_source"] == str(out / "mascot.json")
    mixed = an.load_reports([reps[0], out / "mascot.json"])
    assert [r["config"]["method"] for r in mixed] == ["fp32", "mascot"]


def test_load_reports_bad_input(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"x\.json: not valid JSON"):
        an.load_reports(tmp_path / "x.json")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a MASCOT run report"):
        an.load_reports(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run report"):
        an.load_reports(tmp_path / "missing.json")


def test_runs_and_epochs_frames_match_reports(reports):
    out, reps = reports
    runs = an.runs_frame(out)
    assert len(runs) == 2
    for rep in reps:
        row = runs[runs["method"] == rep["config"]["method"]].iloc[0]
        assert row["train_seconds"] == rep["totals"]["train_seconds"]
        assert row["final_test_rmse"] == rep["totals"]["final_test_rmse"]
        assert row["n_train"] == rep["dataset"]["n_train"] and row["k"] == 16
        assert row["fp32_user_groups"] == rep["epochs"][-1]["fp32_user_groups"]
    assert runs.set_index("method").loc["fp32", "groups"] == 4
    ep = an.epochs_frame(out)
    assert len(ep) == 6 and list(ep[ep["method"] == "mascot"]["epoch"]) == [0, 1, 2]
    rm = ep[ep["method"] == "mascot"]["test_rmse"].tolist()
    assert rm == [e["test_rmse"] for e in reps[1]["epochs"]]


def test_grad_norms_frame(reports):
    out, reps = reports
    g = an.grad_norms_frame(out)
    assert set(g["method"]) == {"fp32"}  # the mascot run has no gradient statistics
    users = g[(g["side"] == "user") & (g["epoch"] == 0)]
    raw = reps[0]["epochs"][0]["user_grad_norm"]  # -1 = a group without samples -> NaN
    got = list(users["grad_norm"])
    assert [v for v in got if not math.isnan(v)] == pytest.approx([v for v in raw if v >= 0])
    assert [math.isnan(v) for v in got] == [v < 0 for v in raw]
    assert len(users) == len(reps[0]["epochs"][0]["user_grad_norm"]) <= 4
    assert (g["grad_norm"].dropna() > 0).all()


# ----------------------------------------------------------------------------- tables
def _frame(rows):
    base = {"device": "cpu", "groups": 100, "final_test_rmse": 0.8}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_relative_time_table():
    runs = _frame([
        {"dataset": "a", "k": 64, "method": "fp32", "train_seconds": 2.0},
        {"dataset": "a", "k": 64, "method": "fp32", "train_seconds": 4.0},
        {"dataset": "a", "k": 64, "method": "mascot", "train_seconds": 1.5},
        {"dataset": "b", "k": 64, "method": "mascot", "train_seconds": 1.0},  # no baseline
    ])
    t = an.relative_time_table(runs).set_index(["dataset", "method"])
    assert t.loc[("a", "fp32"), "relative_time"] == 1.0
    assert t.loc[("a", "mascot"), "relative_time"] == pytest.approx(0.5)
    assert t.loc[("a", "fp32"), "repeats"] == 2
    assert math.isnan(t.loc[("b", "mascot"), "relative_time"])


@needs_scipy
def test_sensitivity_table_and_ttest():
    rows = []
    for pi, g, times in ((2, 0.05, [1.0, 1.1, 0.9]), (1, 1.0, [2.0, 2.2, 1.8]), (2, 1.0, [1.5, 1.5, 1.6])):
        for t in times:
            rows.append({"dataset": "synthetic-ml10m", "k": 128, "method": "mascot", "period": pi,
                         "sample_ratio": g, "gamma_percent": 100 * g, "train_seconds": t})
    runs = _frame(rows)
    tab = an.sensitivity_table(runs).set_index("pi")
    assert tab.loc[2, "time@5%"] == pytest.approx(1.0) and tab.loc[1, "time@100%"] == pytest.approx(2.0)
    assert math.isnan(tab.loc[1, "time@5%"])
    tt = an.sensitivity_ttest(runs).set_index("metric")
    ref = an.welch_ttest([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert tt.loc["time", "t"] == pytest.approx(ref["t"]) and tt.loc["time", "p"] == pytest.approx(ref["p"])
    assert bool(tt.loc["time", "significant"]) is True
    # the same RMSE on both sides: no difference (p = 1, or undefined when the variance is 0)
    assert not bool(tt.loc["rmse", "significant"])
    assert tt.loc["rmse", "mean_chosen"] == pytest.approx(tt.loc["rmse", "mean_reference"])
    cmp = an.paper_comparison(runs, "sensitivity")
    row = cmp[(cmp["setting"] == "pi=2, gamma=5%") & (cmp["quantity"] == "time (s)")].iloc[0]
    assert row["paper"] == 0.68 and row["paper_dataset"] == "ML10M" and row["ours"] == pytest.approx(1.0)
    assert row["device"] == "cpu"


def test_paper_values():
    t2 = an.PAPER["table2"]
    assert set(t2) == {"ML10M", "ML25M", "Netflix", "Yahoo!Music"}
    assert all(len(v) == 24 for v in t2.values())
    assert t2["ML10M"][(2, 5)] == (0.7853, 0.68)
    assert t2["Yahoo!Music"][(8, 100)] == (0.9008, 39.68)
    assert t2["Netflix"][(1, 100)] == (0.9150, 15.97)
    assert all(r["source"] for r in an.PAPER["relative_time"])
    assert an.paper_dataset("synthetic-netflix:0.1") == "Netflix" and an.paper_dataset("ml100k") is None
    # Fig. 3 (paper §III-B): 7.84 and 24.10 for the CNN examples, 0.5 for MF
    assert round(an.cnn_compute_memory_ratio(32, 3), 2) == 7.84
    assert round(an.cnn_compute_memory_ratio(224, 5), 2) == 24.10
    assert an.mf_compute_memory_ratio(64, 1000) == 0.5


def test_rating_count_distribution_matches_counter():
    rng = np.random.default_rng(0)
    u = rng.zipf(1.8, 500) % 60
    i = rng.integers(0, 30, 500)
    d = an.rating_count_distribution(u, i)
    for side, ids in (("user", u), ("item", i)):
        ref = Counter(Counter(ids.tolist()).values())
        got = d[d["side"] == side]
        assert dict(zip(got["n_ratings"], got["n_entities"])) == dict(ref)
        assert (got["n_ratings"] * got["n_entities"]).sum() == len(ids)


def test_markdown_table_and_atomic_write(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [0.123456, float("nan")], "c": ["x|y", None]})
    md = an.markdown_table(df).splitlines()
    assert md[0] == "| a | b | c |" and md[1] == "|---|---|---|"
    assert md[2] == "| 1 | 0.1235 | x\\|y |" and md[3] == "| 2 | – | – |"
    an.atomic_write_text(tmp_path / "sub" / "f.txt", "hello")
    assert (tmp_path / "sub" / "f.txt").read_text() == "hello"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.txt"]


def test_plots_write_png(tmp_path, reports):
    out, _ = reports
    runs = an.runs_frame(out)
    rel = an.relative_time_table(runs)
    an.plot_relative_time(rel, tmp_path / "rel.png")
    an.plot_rmse_curves(an.rmse_curves(an.epochs_frame(out)), tmp_path / "rmse.png")
    g = an.grad_norms_frame(out)
    g["dataset"] = g["dataset"].astype(str)
    an.plot_grad_norms(g, tmp_path / "g.png")
    for name in ("rel.png", "rmse.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "rel.png", "rmse.png"]


def test_ranking_metrics_reexported_when_present():
    import importlib.util
    if importlib.util.find_spec("mascot.metrics") is None:
        assert an._metrics is None
    else:
        from mascot import metrics
        assert metrics.__all__
        for name in metrics.__all__:
            assert getattr(an, name) is getattr(metrics, name)


def test_paper_comparison_relative_times():
    rows = []
    for g, tm, tn in ((10, 1.0, 1.0), (100, 0.9, 1.0)):
        rows += [{"dataset": "synthetic-ml10m", "k": 128, "method": "mascot", "groups": g, "train_seconds": tm},
                 {"dataset": "synthetic-ml10m", "k": 128, "method": "mascot-naive", "groups": g, "train_seconds": tn}]
    cmp = an.paper_comparison(_frame(rows), "lookup")
    assert list(cmp["paper"]) == [0.86, 0.90]  # ML10M's 14 % and the 10 % average, at g = 100
    assert list(cmp["ours"]) == pytest.approx([0.9, 0.9]) and set(cmp["setting"]) == {"k=128, g=100"}
    assert an.paper_comparison(_frame(rows[:2]), "lookup").empty  # no g = 100 run: no row
    runs = _frame([{"dataset": "ml100k", "k": 128, "method": m, "groups": 100, "train_seconds": t}
                   for m, t in (("fp32", 2.0), ("mascot-n1", 1.0), ("mascot-n2", 1.5), ("mascot", 1.2))])
    cmp = an.paper_comparison(runs, "ablation").set_index("quantity")
    assert cmp.loc["relative time mascot / fp32", "ours"] == pytest.approx(0.6)
    assert cmp.loc["relative time mascot / fp32", "paper"] == 0.55
    assert cmp.loc["relative time mascot-n2 / mascot-n1", "ours"] == pytest.approx(1.5)
    assert cmp.loc["relative time mascot-n2 / mascot-n1", "paper"] == 1.34


# ----------------------------------------------------------------------------- audit regressions
def test_tables_refuse_to_mix_configurations():
    rows = [{"dataset": "a", "k": 32, "method": m, "epochs": e, "train_seconds": t, "period": 2,
             "gamma_percent": 5.0, "epoch": 0, "test_rmse": 1.0}
            for e, t in ((1, 1.0), (3, 3.0)) for m in ("fp32", "mascot")]
    runs = _frame(rows)
    for f in (lambda: an.relative_time_table(runs), lambda: an.sweep_table(runs, "groups"),
              lambda: an.rmse_curves(runs), lambda: an.sensitivity_table(runs),
              lambda: an.sensitivity_ttest(runs), lambda: an.paper_comparison(runs, "compare")):
        with pytest.raises(ValueError, match=r"differ in epochs \(epochs = 1, 3\)"):
            f()
    t = an.relative_time_table(runs, by=("dataset", "k", "epochs"))
    assert list(t["repeats"]) == [1, 1, 1, 1] and list(t["relative_time"]) == [1.0, 1.0, 1.0, 1.0]
    one = an.relative_time_table(runs[runs["epochs"] == 3])
    assert list(one["mean_seconds"]) == [3.0, 3.0]
    cuda = _frame([{**rows[0], "device": "cuda"}, {**rows[0], "device": "cpu (2 threads, avx2)"}])
    with pytest.raises(ValueError, match="differ in device"):
        an.relative_time_table(cuda)
    threads = _frame([{**rows[0], "device": f"cpu ({n} threads, avx2)"} for n in (1, 2)])
    # same device kind: the thread count is compared through the threads column (below), not the label
    assert an.relative_time_table(threads)["repeats"].tolist() == [2]


def test_empty_results_give_empty_tables(tmp_path):
    runs = an.runs_frame(tmp_path)
    assert runs.empty and {"dataset", "method", "k", "epochs", "train_seconds", "source"} <= set(runs.columns)
    epochs = an.epochs_frame(tmp_path)
    assert epochs.empty and {"dataset", "method", "epoch", "test_rmse"} <= set(epochs.columns)
    assert list(an.runs_frame([]).columns) == list(runs.columns)
    for t in (an.relative_time_table(runs), an.sweep_table(runs, "groups"), an.sensitivity_table(runs),
              an.sensitivity_ttest(runs), an.rmse_curves(epochs), an.paper_comparison(runs, "compare"),
              an.paper_comparison(runs, "sensitivity")):
        assert t.empty and "dataset" in t.columns
    assert "relative_time" in an.relative_time_table(runs).columns


def test_atomic_write_long_names_and_mode(tmp_path):
    import os
    import stat
    name = "d" * 250 + ".json"  # 255 bytes: the longest name a file may have
    an.atomic_write_text(tmp_path / name, "{}")
    assert (tmp_path / name).read_text() == "{}" and len(list(tmp_path.iterdir())) == 1
    old = os.umask(0o027)
    try:
        an.atomic_write_text(tmp_path / "a.csv", "x")
        assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o640
        os.umask(0o022)
        an.atomic_write_text(tmp_path / "b.csv", "y")
        assert stat.S_IMODE((tmp_path / "b.csv").stat().st_mode) == 0o644
        an.atomic_write_text(tmp_path / "a.csv", "y")  # a replaced file keeps its bits, as open() would
        assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o640
        import matplotlib.pyplot as plt
        an._save(plt, plt.figure(), tmp_path / ("p" * 251 + ".png"))
        assert stat.S_IMODE((tmp_path / ("p" * 251 + ".png")).stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp*"))


# ----------------------------------------------------------------------------- second audit
def test_tables_refuse_to_mix_thread_counts():
    rows = [{"dataset": "a", "k": 32, "method": "fp32", "epochs": 3, "train_seconds": t, "threads": n}
            for n, t in ((1, 2.0), (2, 1.0))]
    with pytest.raises(ValueError, match=r"differ in threads \(threads = 1, 2\)"):
        an.relative_time_table(_frame(rows))
    assert an.relative_time_table(_frame(rows), by=("dataset", "k", "threads"))["repeats"].tolist() == [1, 1]
    assert "threads" in an._CONFIG_COLUMNS


def test_paper_dataset_of_folds_and_merged_folds():
    assert an.paper_dataset("ml10m-fold2") == "ML10M" and an.paper_dataset("ml25m-fold5") == "ML25M"
    assert an.paper_dataset("/data/ml10m-fold3") == "ML10M" and an.paper_dataset("ml100k-fold2") is None
    assert an.fold_of("ml10m-fold4") == ("ml10m", 4) and an.fold_of("ml10m") == ("ml10m", 1)
    assert an.fold_of("synthetic-ml10m:0.1") == ("synthetic-ml10m:0.1", 1)
    runs = _frame([{"dataset": ds, "k": 64, "method": m, "repeat": 0, "train_seconds": t}
                   for ds, f in (("ml10m", 1.0), ("ml10m-fold2", 2.0), ("ml100k", 1.0))
                   for m, t in (("fp32", 2.0 * f), ("mascot", 1.0 * f))])
    merged = an.merge_folds(runs)
    assert list(merged["fold"]) == [1, 1, 2, 2, 1, 1] and set(merged["dataset"]) == {"ml10m", "ml100k"}
    assert list(runs["dataset"]).count("ml10m-fold2") == 2  # the input is left alone
    t = an.relative_time_table(merged).set_index(["dataset", "method"])
    assert t.loc[("ml10m", "fp32"), "repeats"] == 2 and t.loc[("ml10m", "fp32"), "mean_seconds"] == 3.0
    assert t.loc[("ml10m", "mascot"), "relative_time"] == pytest.approx(0.5)


def test_compare_claim_is_what_the_paper_says():
    claim = an.PAPER["claims"]["compare"]
    assert "FP16's is worse" not in claim and "tracks FP32" in claim


def test_plot_sweep_labels_points(tmp_path, monkeypatch):
    import matplotlib.axes
    texts = []
    real = matplotlib.axes.Axes.annotate
    monkeypatch.setattr(matplotlib.axes.Axes, "annotate",
                        lambda self, text, *a, **k: texts.append(text) or real(self, text, *a, **k))
    t = pd.DataFrame({"dataset": "d", "method": "mascot", "groups": [1, 10, 100],
                      "mean_seconds": [1.0, 0.9, 0.8], "mean_rmse": [0.9, 0.9, 0.9],
                      "realised_user_groups": [1, 9, 47]})
    an.plot_sweep(t, "groups", tmp_path / "s.png", "t", "g", logx=True, point_labels="realised_user_groups",
                  label_note="realised user groups")
    assert texts == ["1", "9", "47"]
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grad_norm_summary_names_groups_without_samples():
    nan = float("nan")
    norms = pd.DataFrame([{"dataset": "d", "side": s, "group": g, "epoch": e, "grad_norm": v}
                          for s in ("user", "item") for g in range(2) for e in range(2)
                          for v in [nan if (s, g) == ("user", 1) else 1.0 + e]])
    summ, empty = an.grad_norm_summary(norms)
    assert empty == ["d: user G2"]
    assert len(summ) == 4  # the group without samples keeps its row (NaN)
    row = summ[(summ["side"] == "user") & (summ["group"] == "G2")].iloc[0]
    assert math.isnan(row["first_epoch"])
    row = summ[(summ["side"] == "item") & (summ["group"] == "G1")].iloc[0]
    assert row["first_epoch"] == 1.0 and row["last_epoch"] == 2.0 and row["last / first"] == 2.0
