"""mascot.experiments end to end in --quick form: outputs, consistency with the raw reports,
skipping finished cells, resuming after an interruption, bad input."""
import json
import re

import pytest

# the experiments extras (pandas) may be absent, e.g. on an offline GPU machine: skip, not error
pd = pytest.importorskip("pandas")

import mascot
import mascot.experiments as ex
from mascot import cli
from mascot.experiments import definitions

NAMES = list(definitions.EXPERIMENTS)
PNG = b"\x89PNG\r\n\x1a\n"


def _argv(name, out, *extra):
    return [name, "--quick", "--out", str(out), "--threads", "2", "--quiet", *extra]


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    """Every experiment's quick variant, run once (one process: the data is generated once)."""
    out = tmp_path_factory.mktemp("results")
    assert ex.main(_argv("all", out)) == 0
    return out


def test_every_experiment_is_declared():
    assert NAMES == ["compare", "ablation", "lookup", "sensitivity", "groups", "potential", "observations"]


@pytest.mark.parametrize("name", NAMES)
def test_quick_outputs_consistent_with_raw_reports(quick_all, name):
    root = quick_all / name
    cells = definitions.EXPERIMENTS[name].grid(ex.Options(name=name, quick=True))
    files = sorted((root / "runs").glob("*.json"))
    assert sorted(p.stem for p in files) == sorted(c.cell_id for c in cells)
    runs = pd.read_csv(root / "runs.csv")
    epochs = pd.read_csv(root / "epochs.csv")
    assert len(runs) == len(cells)
    n_epochs = 0
    for f in files:
        rep = json.loads(f.read_text())
        assert rep["cell"]["cell_id"] == f.stem and rep["cell"]["experiment"] == name
        row = runs[runs["cell_id"] == f.stem]
        assert len(row) == 1
        row = row.iloc[0]
        assert row["method"] == rep["config"]["method"] and row["k"] == rep["config"]["k"] == 32
        assert row["train_seconds"] == pytest.approx(rep["totals"]["train_seconds"], rel=1e-12)
        assert row["final_test_rmse"] == pytest.approx(rep["totals"]["final_test_rmse"], rel=1e-12)
        assert row["seed"] == 42 + rep["cell"]["repeat"] == rep["seed"]
        assert rep["totals"]["epochs_run"] == 3 and not rep["totals"]["interrupted"]
        for n, v in rep["cell"]["params"].items():  # the cell's settings reached the core
            key = {"groups": "user_groups"}.get(n, n)
            if key in rep["config"]:
                assert rep["config"][key] == pytest.approx(v)
        ep = epochs[epochs["cell_id"] == f.stem]
        assert list(ep["test_rmse"]) == pytest.approx([e["test_rmse"] for e in rep["epochs"]])
        n_epochs += len(rep["epochs"])
    assert len(epochs) == n_epochs
    report = (root / "report.md").read_text()
    assert report.startswith(f"# Experiment `{name}`")
    assert "Device (this project): cpu" in report and "RTX 2070" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert images, "the report shows no plot"
    for img in images:
        assert (root / img).read_bytes()[:8] == PNG
    assert not list(root.rglob(".*.tmp"))  # no temp file left behind


def test_compare_tables(quick_all):
    rel = pd.read_csv(quick_all / "compare" / "relative_time.csv")
    assert set(rel["method"]) == set(definitions.COMPARE_METHODS)
    assert (rel[rel["method"] == "fp32"]["relative_time"] == 1.0).all()
    runs = pd.read_csv(quick_all / "compare" / "runs.csv")
    m = runs.groupby("method")["train_seconds"].mean()
    for _, r in rel.iterrows():
        assert r["relative_time"] == pytest.approx(m[r["method"]] / m["fp32"])
    cmp = pd.read_csv(quick_all / "compare" / "paper_comparison.csv")
    assert {0.55, 0.5, 1.5964} <= set(cmp["paper"])


def test_sensitivity_ttest(quick_all):
    from mascot import analysis as an
    runs = pd.read_csv(quick_all / "sensitivity" / "runs.csv")
    tt = pd.read_csv(quick_all / "sensitivity" / "ttest.csv").set_index("metric")
    sel = lambda pi, gp: runs[(runs["period"] == pi) & (runs["gamma_percent"] == gp)]["train_seconds"]  # noqa: E731
    ref = an.welch_ttest(list(sel(2, 5)), list(sel(1, 100)))
    assert tt.loc["time", "t"] == pytest.approx(ref["t"]) and tt.loc["time", "p"] == pytest.approx(ref["p"])
    assert tt.loc["time", "n"] == "2/2"
    t2 = pd.read_csv(quick_all / "sensitivity" / "table2.csv")
    assert list(t2["pi"]) == [1, 2] and {"rmse@5%", "time@100%"} <= set(t2.columns)
    assert "0.7853" in (quick_all / "sensitivity" / "report.md").read_text()  # the paper's Table II


def test_potential_and_observations(quick_all):
    pot = pd.read_csv(quick_all / "potential" / "potential.csv")
    assert sorted(pot["fp16_share"]) == [0.0, 0.2, 0.4, 0.6]
    runs = pd.read_csv(quick_all / "potential" / "runs.csv")
    assert sorted(runs["random_fp16"]) == [-1.0, 0.2, 0.4, 0.6]
    g = pd.read_csv(quick_all / "observations" / "grad_norms.csv")
    assert set(g["side"]) == {"user", "item"} and set(g["epoch"]) == {0, 1, 2}
    assert 2 <= g["group"].nunique() <= 4 and (g["grad_norm"].dropna() > 0).all()
    dist = pd.read_csv(quick_all / "observations" / "rating_counts.csv")
    n_train = runs["n_train"].iloc[0]
    for side in ("user", "item"):
        part = dist[dist["side"] == side]
        assert (part["n_ratings"] * part["n_entities"]).sum() == n_train
    assert "24.1" in (quick_all / "observations" / "report.md").read_text()


def test_second_run_skips_every_cell(quick_all, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a finished cell was trained again")
    before = (quick_all / "groups" / "runs.csv").read_text()
    monkeypatch.setattr(ex, "fit_cell", boom)
    assert ex.main(_argv("groups", quick_all)) == 0
    assert (quick_all / "groups" / "runs.csv").read_text() == before


def test_interrupted_run_resumes(tmp_path, monkeypatch, capsys):
    real = ex.fit_cell
    calls = []

    def flaky(cell, dataset, threads):
        calls.append(cell.cell_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cell, dataset, threads)

    monkeypatch.setattr(ex, "fit_cell", flaky)
    assert ex.main(_argv("ablation", tmp_path)) == 130
    assert "interrupted after 2 of 4 runs" in capsys.readouterr().err
    root = tmp_path / "ablation"
    assert sorted(p.stem for p in (root / "runs").iterdir()) == sorted(calls[:2])
    assert not (root / "runs.csv").exists() and not (root / "report.md").exists()

    calls.clear()
    monkeypatch.setattr(ex, "fit_cell", lambda c, d, t: calls.append(c.cell_id) or real(c, d, t))
    assert ex.main(_argv("ablation", tmp_path)) == 0
    assert len(calls) == 2  # only the two cells that were not finished
    assert len(pd.read_csv(root / "runs.csv")) == 4


def test_damaged_or_foreign_report_is_rerun(tmp_path, monkeypatch):
    assert ex.main(_argv("groups", tmp_path)) == 0
    files = sorted((tmp_path / "groups" / "runs").glob("*.json"))
    files[0].write_text("{truncated")
    rep = json.loads(files[1].read_text())
    rep["cell"]["seed"] = 7  # written for another cell
    files[1].write_text(json.dumps(rep))
    real, calls = ex.fit_cell, []
    monkeypatch.setattr(ex, "fit_cell", lambda c, d, t: calls.append(c.cell_id) or real(c, d, t))
    assert ex.main(_argv("groups", tmp_path)) == 0
    assert sorted(calls) == sorted(f.stem for f in files[:2])


def test_bad_input_is_one_line_error(tmp_path, capsys):
    assert ex.main(_argv("compare", tmp_path, "--datasets", "no-such-set")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mascot experiment compare: error: dataset 'no-such-set'") and "\n" not in err
    assert not (tmp_path / "compare" / "runs.csv").exists()
    assert ex.main(_argv("compare", tmp_path, "--repeats", "0")) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err
    assert ex.main(["nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    if mascot.cuda_device_count() == 0:  # the core's own error: one line, exit 1, no outputs
        assert ex.main(_argv("groups", tmp_path, "--device", "cuda")) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("mascot experiment groups: error: cell ") and "\n" not in err
        assert not (tmp_path / "groups" / "runs.csv").exists()


def test_cli_experiment_subcommand(tmp_path):
    assert cli.main(["experiment", *_argv("groups", tmp_path)]) == 0
    assert (tmp_path / "groups" / "report.md").exists()
    assert cli.main(["experiment", "--help"]) == 0


def test_cell_ids_are_stable_and_distinct():
    c = ex.Cell("lookup", "synthetic-ml10m:0.002", "mascot-naive", 32, 3, 1, "cpu", (("groups", 10),))
    assert c.cell_id == "synthetic-ml10m_0.002__mascot-naive__k32__e3__groups10__cpu__r1"
    assert c.seed == 43 and c.mf_kwargs(2)["groups"] == 10
    for name, e in definitions.EXPERIMENTS.items():
        for quick in (True, False):
            ids = [c.cell_id for c in e.grid(ex.Options(name=name, quick=quick))]
            assert len(ids) == len(set(ids)), name
    full = definitions.EXPERIMENTS["sensitivity"].grid(ex.Options(name="sensitivity"))
    assert len(full) == 2 * 4 * 6 * 5  # datasets x pi x gamma x repeats
