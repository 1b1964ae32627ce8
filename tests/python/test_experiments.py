"""mascot.experiments end to end in --quick form: outputs, consistency with the raw reports,
skipping finished cells, resuming after an interruption, bad input."""
import json
import re

import pytest

# the experiments extras (pandas) may be absent, e.g. on an offline GPU machine: skip, not error
pd = pytest.importorskip("pandas")
pytest.importorskip("scipy")  # the experiments extra: mascot experiment checks for it up front

import mascot
import mascot.experiments
from mascot import cli
from mascot.experiments import definitions
from mascot.experiments import harness as ex  # the runner: what the tests call and patch

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
    # the package re-exports the harness's public names
    for name in ("main", "run_experiment", "fit_cell", "Options", "Cell", "Progress", "MAX_REPEATS", "QUICK_DATASET"):
        assert getattr(mascot.experiments, name) is getattr(ex, name), name


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
    assert sorted(pot["fp16_share"]) == [0.0, 0.0, 0.2, 0.4, 0.6, 1.0]  # fp32 and the 0 % control
    runs = pd.read_csv(quick_all / "potential" / "runs.csv")
    assert sorted(runs["random_fp16"]) == [-1.0, 0.0, 0.2, 0.4, 0.6, 1.0]
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
    if mascot.cuda_device_count() == 0:  # checked up front: one line, exit 2, no outputs
        assert ex.main(_argv("groups", tmp_path, "--device", "cuda")) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mascot experiment: error: device 'cuda' requested") and "\n" not in err
        assert not (tmp_path / "groups").exists()


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


# ----------------------------------------------------------------------------- audit regressions
def _no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a cell was trained")
    monkeypatch.setattr(ex, "fit_cell", boom)
    monkeypatch.setattr(ex, "warm_up", boom)


def _one_line(capsys, start):
    err = capsys.readouterr().err.strip()
    assert err.startswith(start) and "\n" not in err, err
    return err


def test_finished_grid_of_every_experiment_is_not_rerun(quick_all, monkeypatch):
    # the stricter check of stored reports accepts every report the harness itself wrote
    _no_training(monkeypatch)
    assert ex.main(_argv("all", quick_all)) == 0


def test_runs_of_another_configuration_stay_out_of_the_report(tmp_path):
    from mascot import analysis as an
    # (quick: warm-up 1, so g-switching needs at least 2 epochs)
    assert ex.main(_argv("ablation", tmp_path, "--epochs", "2")) == 0
    assert ex.main(_argv("ablation", tmp_path, "--epochs", "3")) == 0
    root = tmp_path / "ablation"
    assert len(list((root / "runs").glob("*.json"))) == 8  # both configurations are kept
    runs = pd.read_csv(root / "runs.csv")
    assert len(runs) == 4 and set(runs["epochs"]) == {3}  # the report: this configuration only
    assert set(pd.read_csv(root / "relative_time.csv")["repeats"]) == {1}
    everything = an.runs_frame(root / "runs")
    with pytest.raises(ValueError, match=r"differ in epochs \(epochs = 2, 3\)"):
        an.relative_time_table(everything)
    with pytest.raises(ValueError, match="differ in epochs"):
        an.rmse_curves(an.epochs_frame(root / "runs"))
    t = an.relative_time_table(everything, by=("dataset", "k", "epochs"))
    assert len(t) == 8 and set(t["repeats"]) == {1}


def test_device_auto_names_the_device_that_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(mascot, "HAS_CUDA", True)
    monkeypatch.setattr(mascot, "cuda_unavailable_reason", lambda: "")
    assert ex._resolve_device("auto") == "cuda" and ex._resolve_device("cpu") == "cpu"
    monkeypatch.setattr(mascot, "cuda_unavailable_reason", lambda: "no CUDA device is visible")
    assert ex._resolve_device("auto") == "cpu"
    assert ex.main(_argv("groups", tmp_path, "--device", "auto")) == 0
    names = [p.stem for p in (tmp_path / "groups" / "runs").glob("*.json")]
    assert len(names) == 2 and all(n.endswith("__cpu__r0") for n in names)
    _no_training(monkeypatch)  # the same cells as --device cpu
    assert ex.main(_argv("groups", tmp_path, "--device", "cpu")) == 0


def test_cuda_without_a_device_fails_before_any_output(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    monkeypatch.setattr(mascot, "HAS_CUDA", True)
    monkeypatch.setattr(mascot, "cuda_unavailable_reason", lambda: "no CUDA device is visible (no GPU)")
    assert ex.main(["groups", "--quick", "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    _one_line(capsys, "mascot experiment: error: device 'cuda' requested, but no CUDA device is visible (no GPU); "
              "use --device cpu or auto")
    monkeypatch.setattr(mascot, "HAS_CUDA", False)
    assert ex.main(["groups", "--quick", "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    _one_line(capsys, "mascot experiment: error: device 'cuda' requested, but this build")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("damage", ["empty", "totals_list", "no_epochs", "short", "bad_time", "dataset_null"])
def test_damaged_report_fields_are_rerun_with_a_note(tmp_path, monkeypatch, capsys, damage):
    assert ex.main(_argv("groups", tmp_path)) == 0
    f = sorted((tmp_path / "groups" / "runs").glob("*.json"))[0]
    rep = json.loads(f.read_text())
    if damage == "empty":
        rep["totals"], rep["epochs"] = {}, []
    elif damage == "totals_list":
        rep["totals"] = [1]
    elif damage == "no_epochs":
        del rep["epochs"]
    elif damage == "short":
        rep["epochs"] = rep["epochs"][:2]
    elif damage == "bad_time":
        rep["totals"]["train_seconds"] = "fast"
    else:
        rep["dataset"] = None
    f.write_text(json.dumps(rep))
    capsys.readouterr()
    real, calls = ex.fit_cell, []
    monkeypatch.setattr(ex, "fit_cell", lambda c, d, t: calls.append(c.cell_id) or real(c, d, t))
    assert ex.main(_argv("groups", tmp_path)) == 0
    assert calls == [f.stem]
    _one_line(capsys, f"mascot experiment groups: note: runs/{f.stem}.json: ")
    assert len(pd.read_csv(tmp_path / "groups" / "runs.csv")["train_seconds"].dropna()) == 2
    assert json.loads(f.read_text())["totals"]["epochs_run"] == 3


def test_bad_output_paths_fail_before_training(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    (tmp_path / "afile").write_text("x")
    for out in ("afile", "afile/sub"):
        assert ex.main(_argv("groups", tmp_path / out)) == 2
        _one_line(capsys, "mascot experiment groups: error: cannot write outputs under")
    (tmp_path / "r" / "groups").mkdir(parents=True)
    (tmp_path / "r" / "groups" / "runs").write_text("x")
    assert ex.main(_argv("groups", tmp_path / "r")) == 2
    _one_line(capsys, "mascot experiment groups: error: cannot write outputs under")
    cells = definitions.EXPERIMENTS["groups"].grid(ex.Options(name="groups", quick=True))
    for i, name in enumerate(("report.md", "groups.png", f"runs/{cells[0].cell_id}.json")):
        (tmp_path / f"d{i}" / "groups" / name).mkdir(parents=True)
        assert ex.main(_argv("groups", tmp_path / f"d{i}")) == 2
        _one_line(capsys, "mascot experiment groups: error: cannot write ")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["afile", "runs"]  # nothing written


def test_declared_output_files_match_what_is_written(quick_all):
    for name, e in definitions.EXPERIMENTS.items():
        written = {p.name for p in (quick_all / name).iterdir() if p.is_file()}
        assert written - {"runs.csv", "epochs.csv", "report.md"} == set(e.files), name


def test_repeated_dataset_runs_once(tmp_path, monkeypatch, capsys):
    assert ex.main(_argv("groups", tmp_path, "--datasets", ex.QUICK_DATASET, ex.QUICK_DATASET)) == 0
    assert len(pd.read_csv(tmp_path / "groups" / "runs.csv")) == 2
    _no_training(monkeypatch)
    assert ex.main(_argv("groups", tmp_path, "--datasets", ex.QUICK_DATASET,
                         ex.QUICK_DATASET.replace(":", "_"))) == 2
    _one_line(capsys, "mascot experiment groups: error: datasets 'synthetic-ml10m:0.002' and 'synthetic-ml10m_0.002'")


def test_repeats_has_an_upper_bound(tmp_path, capsys):
    assert ex.MAX_REPEATS == 1000
    assert ex.main(_argv("compare", tmp_path, "--repeats", "100000000")) == 2
    _one_line(capsys, "mascot experiment: error: --repeats must be <= 1000 (got 100000000)")
    assert not tmp_path.joinpath("compare").exists()


def _main_catching_ctrl_c(argv):
    try:
        return ex.main(argv)
    except KeyboardInterrupt:  # would end the whole pytest session
        pytest.fail("KeyboardInterrupt escaped mascot.experiments.main")


def test_interrupt_outside_training_is_one_line(tmp_path, monkeypatch, capsys):
    import matplotlib.figure

    from mascot import data

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:  # while the dataset is generated
        m.setattr(data, "load", ctrl_c)
        assert _main_catching_ctrl_c(_argv("groups", tmp_path)) == 130
        _one_line(capsys, "mascot experiment groups: interrupted")
        assert not (tmp_path / "groups").exists()

    def half_png(self, fname, *a, **k):
        with open(fname, "wb") as f:
            f.write(PNG)
        raise KeyboardInterrupt
    with monkeypatch.context() as m:  # while a plot is saved
        m.setattr(matplotlib.figure.Figure, "savefig", half_png)
        assert _main_catching_ctrl_c(_argv("groups", tmp_path)) == 130
        _one_line(capsys, "mascot experiment groups: interrupted")
    root = tmp_path / "groups"
    assert not (root / "groups.png").exists() and not (root / "report.md").exists()
    assert not list(root.rglob(".*.tmp"))
    _no_training(monkeypatch)  # the runs are kept: the next run only writes the outputs
    assert ex.main(_argv("groups", tmp_path)) == 0
    assert (root / "groups.png").read_bytes()[:8] == PNG


def test_cell_file_names_within_the_name_limit(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    long = "synthetic-ml10m:0.002" + "0" * 240  # a valid name, too long for a cell's file name
    assert ex.main(_argv("groups", tmp_path, "--datasets", long)) == 2
    _one_line(capsys, "mascot experiment groups: error: cell synthetic-ml10m_0.002")
    assert not (tmp_path / "groups").exists()


def test_outputs_have_the_umask_mode(quick_all):
    import os
    import stat
    mask = os.umask(0o022)
    os.umask(mask)
    files = [p for p in (quick_all / "compare").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".json", ".csv", ".png", ".md"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p


def test_progress_eta_counts_only_cells_run():
    import io
    p = ex.Progress(10, stream=io.StringIO())
    p.done = 8  # found finished: they took no time in this process
    p.t0 -= 10.0
    p.step()  # one cell run in 10 s, one left
    p.show("x")
    assert "9/10" in p.stream.getvalue() and "eta 0m10s" in p.stream.getvalue()


# ----------------------------------------------------------------------------- second audit
def test_report_of_another_thread_count_is_rerun(tmp_path, monkeypatch, capsys):
    import os
    assert ex.main(_argv("groups", tmp_path)) == 0
    files = sorted((tmp_path / "groups" / "runs").glob("*.json"))
    assert all(json.loads(f.read_text())["threads"] == 2 for f in files)
    rep = json.loads(files[0].read_text())
    rep["threads"] = 1  # trained with --threads 1
    files[0].write_text(json.dumps(rep))
    capsys.readouterr()
    real, calls = ex.fit_cell, []
    monkeypatch.setattr(ex, "fit_cell", lambda c, d, t: calls.append(c.cell_id) or real(c, d, t))
    assert ex.main(_argv("groups", tmp_path)) == 0
    assert calls == [files[0].stem]  # ids do not change; only the other thread count is rerun
    _one_line(capsys, f"mascot experiment groups: note: runs/{files[0].stem}.json: trained with 1 "
              "thread(s), this run uses 2; running the cell again")
    assert set(pd.read_csv(tmp_path / "groups" / "runs.csv")["threads"]) == {2}
    # --threads 0 means all cores, resolved as the core does: the same cells when that is 2
    calls.clear()
    with monkeypatch.context() as m:
        m.setattr(ex, "_resolved_threads", lambda t: t or 2)
        assert ex.main([*_argv("groups", tmp_path)[:-3], "--threads", "0", "--quiet"]) == 0
    assert calls == []
    assert ex._resolved_threads(3) == 3
    assert ex._resolved_threads(0) == max(1, os.cpu_count() or 1)  # as the core resolves 0
    with pytest.raises(ValueError, match="threads must be between 0"):
        ex._resolved_threads(-1)


def _fake_gpu(monkeypatch):
    monkeypatch.setattr(mascot, "HAS_CUDA", True)
    monkeypatch.setattr(mascot, "cuda_unavailable_reason", lambda: "")


def test_cuda_cells_the_backend_does_not_take_fail_up_front(tmp_path, monkeypatch, capsys):
    _fake_gpu(monkeypatch)
    _no_training(monkeypatch)
    for name in ("potential", "observations", "all"):
        assert ex.main(["--quiet", name, "--quick", "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
        err = _one_line(capsys, f"mascot experiment {'potential' if name == 'all' else name}: error: cell ")
        assert "__cuda__r0: " in err and "CPU backend only" in err, err
    assert not (tmp_path / "o").exists()
    # the cells CUDA takes stay on cuda
    _, _, cells, _, _ = ex._prepare(ex.Options(name="compare", quick=True, device="cuda", out=tmp_path / "o"))
    assert {c.device for c in cells} == {"cuda"}


def test_device_auto_runs_what_cuda_does_not_take_on_cpu(tmp_path, monkeypatch, capsys):
    _fake_gpu(monkeypatch)
    assert ex.main(_argv("potential", tmp_path, "--device", "auto")) == 0  # no GPU here: it ran on cpu
    err = capsys.readouterr().err
    assert "mascot experiment potential: note: --device auto runs all 6 cells on cpu" in err
    names = [p.stem for p in (tmp_path / "potential" / "runs").glob("*.json")]
    assert len(names) == 6 and all(n.endswith("__cpu__r0") for n in names)
    _, opts, cells, _, notes = ex._prepare(ex.Options(name="compare", quick=True, device="auto", out=tmp_path))
    assert opts.device == "auto" and {c.device for c in cells} == {"cuda"} and notes == []
    for name in ("potential", "observations"):
        _, _, cells, _, notes = ex._prepare(ex.Options(name=name, quick=True, device="auto", out=tmp_path))
        assert {c.device for c in cells} == {"cpu"}, name  # the whole experiment: like with like
        assert len(notes) == 1 and "CPU backend only" in notes[0] and "\n" not in notes[0]


def test_epochs_within_the_warmup_is_a_usage_error(tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    assert ex.main(["sensitivity", "--epochs", "5", "--out", str(tmp_path), "--quiet"]) == 2
    err = _one_line(capsys, "mascot experiment sensitivity: error: cell ")
    assert "g-switching would never measure" in err and "--epochs >= 6" in err and "--quick" in err
    assert ex.main(_argv("ablation", tmp_path, "--epochs", "1")) == 2  # quick: warm-up 1
    err = _one_line(capsys, "mascot experiment ablation: error: cell ")
    assert "__mascot-n2__" in err and "--epochs >= 2" in err
    assert ex.main(_argv("all", tmp_path, "--epochs", "1")) == 2  # before anything trains
    assert not list(tmp_path.iterdir())
    for name in ("potential", "observations"):  # no g-switching: any epoch count is fine
        ex._prepare(ex.Options(name=name, quick=True, epochs=1, out=tmp_path))


@pytest.mark.parametrize("argv", [["nosuch"], ["groups", "--bogus"], ["groups", "--repeats", "abc"],
                                  ["groups", "--device", "gpu"], []])
def test_argument_errors_are_one_line(argv, capsys):
    assert ex.main(argv) == 2
    err = _one_line(capsys, "mascot experiment: error: ")
    assert err.endswith("(see --help)")


def test_sweeps_report_the_realised_groups(quick_all):
    for name in ("groups", "lookup"):
        t = pd.read_csv(quick_all / name / f"{name}.csv")
        runs = pd.read_csv(quick_all / name / "runs.csv")
        assert {"realised_user_groups", "realised_item_groups"} <= set(t.columns), name
        for _, r in t.iterrows():
            sel = runs[(runs["groups"] == r["groups"]) & (runs["method"] == r["method"])]
            assert r["realised_user_groups"] == sel["realised_user_groups"].mean()
            assert r["realised_item_groups"] == sel["realised_item_groups"].mean()
        assert "realised_user_groups" in (quick_all / name / "report.md").read_text()
    t = pd.read_csv(quick_all / "groups" / "groups.csv")
    assert {"fp32_user_groups", "fp32_item_groups"} <= set(t.columns)
    report = (quick_all / "lookup" / "report.md").read_text()
    assert "per-row bit" in report and "binary-searches" in report and "cuda.md" in report


def test_potential_has_the_kernel_control_cells(quick_all):
    for quick in (True, False):
        cells = definitions.EXPERIMENTS["potential"].grid(ex.Options(name="potential", quick=quick))
        shares = {dict(c.params).get("random_fp16") for c in cells if c.method == "mascot-n1"}
        assert {0.0, 1.0} <= shares, quick
    pot = pd.read_csv(quick_all / "potential" / "potential.csv")
    assert sorted(pot["fp16_share"]) == [0.0, 0.0, 0.2, 0.4, 0.6, 1.0]
    runs = pd.read_csv(quick_all / "potential" / "runs.csv")
    assert sorted(runs["random_fp16"]) == [-1.0, 0.0, 0.2, 0.4, 0.6, 1.0]
    assert "relative_to_mixed" in pot.columns
    zero = pot[(pot["fp16_share"] == 0.0) & (pot["method"] != "fp32")]
    assert list(zero["relative_to_mixed"]) == [1.0]
    report = (quick_all / "potential" / "report.md").read_text()
    assert "kernel overhead" in report and "100 % FP16" in report


def test_observations_name_the_groups_without_gradients(quick_all):
    g = pd.read_csv(quick_all / "observations" / "grad_norms.csv")
    empty = g.groupby(["side", "group"])["grad_norm"].apply(lambda s: s.isna().all())
    assert empty.any()  # the quick data has a group of users without training ratings
    report = (quick_all / "observations" / "report.md").read_text()
    for (side, group), e in empty.items():
        if e:
            assert f"{side} G{group + 1}" in report.split("no sampled gradients")[1].split("\n")[0]


def test_help_and_docs_state_the_defaults():
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert ex.main(["--help"]) == 0
    assert "observations: 1" in " ".join(buf.getvalue().split())
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "experiments.md").read_text()
    assert "the paper's settings otherwise" not in doc
    assert "θ = 20" in doc and "docs/design.md" in doc
    assert "cross-validation" in doc and "-fold2" in doc
    assert "e^1.5" in doc and "decay factor 0.1" in doc
    assert "1 for `observations`" in doc


def test_folds_of_a_dataset_are_repeats_in_the_tables(tmp_path, monkeypatch):
    from mascot import data
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "data"))
    for name, seed in (("tiny", 1), ("tiny-fold2", 2)):  # two "folds" of one prepared set
        d = data.synthetic("synthetic-ml10m:0.001", seed=seed)
        (tmp_path / "data" / name).mkdir(parents=True)
        data.write_mrat(tmp_path / "data" / name / "train.mrat", d.train)
        data.write_mrat(tmp_path / "data" / name / "test.mrat", d.test)
    assert ex.main(_argv("groups", tmp_path / "o", "--datasets", "tiny", "tiny-fold2")) == 0
    root = tmp_path / "o" / "groups"
    assert len(list((root / "runs").glob("tiny-fold2__*.json"))) == 2  # each fold its own cells
    runs = pd.read_csv(root / "runs.csv")
    assert set(runs["dataset"]) == {"tiny"} and sorted(runs["fold"]) == [1, 1, 2, 2]
    t = pd.read_csv(root / "groups.csv")
    assert list(t["repeats"]) == [2, 2]  # g = 1 and 10, each over both folds
    for _, r in t.iterrows():
        sel = runs[runs["groups"] == r["groups"]]
        assert r["mean_seconds"] == pytest.approx(sel["train_seconds"].mean())
        assert r["realised_user_groups"] == pytest.approx(sel["realised_user_groups"].mean())
