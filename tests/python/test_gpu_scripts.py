"""The host-side parts of the GPU benchmark scripts (tables, argument parsing), on fake runs.

A GPU session is short and rare: a crash in a script's table code after the runs would waste
it, so the code that needs no device is tested here, where CI runs it."""
import importlib.util
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


def _run(ds, k, method, groups=100, sec=0.01, rmse=0.8, device="cuda (NVIDIA H100 80GB HBM3)", warps=7752):
    return {"dataset": ds, "k": k, "method": method, "groups": groups, "epochs": 50, "n_train": 8000000,
            "device": device, "warps": warps, "writes": "add", "overlap": "default",
            "median_epoch_seconds": sec, "train_seconds": 50 * sec, "updates_per_second": 8e6 / sec,
            "final_test_rmse": rmse, "floor_epoch_seconds": 0.003, "floor_fraction": 0.003 / sec,
            "copy_bandwidth_GBps": 3000.0, "fp32_user_groups": 3, "fp32_item_groups": 1, "user_groups": 100,
            "item_groups": 100, "switches": 4, "wall_seconds": 10.0}


META = {"device": "NVIDIA H100 80GB HBM3", "copy_bandwidth_GBps": 3000.0, "date": "2026-11-22", "epochs": 50}


def test_gpu_bench_table_relative_figures_and_lookup_section():
    gb = _load("gpu_bench")
    runs = {}
    for m, sec, rmse in (("fp32", 0.010, 0.8), ("mascot", 0.005, 0.8016), ("mascot-n1", 0.004, 0.81)):
        runs[gb.run_key("synthetic-ml10m", 128, m, 100)] = _run("synthetic-ml10m", 128, m, sec=sec, rmse=rmse)
    runs[gb.run_key("synthetic-ml10m", 128, "mascot-naive", 100)] = _run("synthetic-ml10m", 128, "mascot-naive",
                                                                        sec=0.006)
    md = gb.table(runs, META, {"synthetic-yahoo|k=64|afp|g=100": "RuntimeError: out of memory"})
    rows = {line.split("|")[3].strip(): line for line in md.splitlines() if line.startswith("| synthetic-ml10m | 128")}
    assert "| 0.50 |" in rows["mascot"] and "+0.20 %" in rows["mascot"]  # vs fp32 time and RMSE
    assert "| 1.00 |" in rows["fp32"] and "| 7752 |" in rows["fp32"]
    assert "| synthetic-ml10m | 100 | 0.0050 | 0.0060 | 1.20 |" in md  # naive / optimised
    assert "- synthetic-yahoo|k=64|afp|g=100: RuntimeError: out of memory" in md


def test_gpu_bench_table_compares_runs_of_one_device_only():
    gb = _load("gpu_bench")
    runs = {gb.run_key("synthetic-ml10m", 128, "fp32", 100): _run("synthetic-ml10m", 128, "fp32"),
            gb.run_key("synthetic-ml10m", 128, "mascot", 100): _run("synthetic-ml10m", 128, "mascot", sec=0.005,
                                                                    device="cuda (NVIDIA H200)")}
    md = gb.table(runs, META)
    line = next(x for x in md.splitlines() if "| mascot |" in x)
    assert "| - |" in line  # no ratio across devices
    assert "Runs from several devices" in md


def test_gpu_bench_table_lists_datasets_outside_the_papers_four():
    # a scaled or custom dataset (--datasets synthetic-ml10m:0.01) gets its rows too, after the paper's
    gb = _load("gpu_bench")
    runs = {gb.run_key(ds, 64, m, 100): _run(ds, 64, m, sec=sec)
            for ds in ("synthetic-ml10m:0.01", "synthetic-netflix") for m, sec in (("fp32", 0.01), ("mascot", 0.006))}
    md = gb.table(runs, META)
    rows = [x for x in md.splitlines() if x.startswith("| synthetic-")]
    assert [r.split("|")[1].strip() for r in rows] == ["synthetic-netflix"] * 2 + ["synthetic-ml10m:0.01"] * 2
    assert all("| 0.60 |" in r for r in rows if "| mascot |" in r)


def test_hogwild_sweep_settings_and_table():
    hs = _load("gpu_hogwild_sweep")
    assert hs.parse_settings("add:default,store:inf,add:4") == [("add", "default"), ("store", "inf"), ("add", "4")]
    for bad in ("add", "atomic:inf", "add:", "store:0", "add:-2", "add:x"):
        with pytest.raises(ValueError, match="--settings"):
            hs.parse_settings(bad)
    rows = []
    for (w, o), sec, rmse in ((("add", "default"), 0.010, 0.80), (("store", "inf"), 0.008, 0.96)):
        r = _run("synthetic-ml10m", 128, "fp32", sec=sec, rmse=rmse)
        r.update(writes=w, overlap=o)
        rows.append(r)
    md = hs.table(rows, dict(META, dataset="synthetic-ml10m", k=128, epochs=20))
    store = next(x for x in md.splitlines() if "| store |" in x)
    assert "| 0.80 |" in store and "+20.00 %" in store


# --- the scripts' main() on the CPU: resume keys, failed runs, budget, argument checks ---------
# (gpu_bench with the CUDA calls faked: device count, bandwidth and name, and the runs either
# faked or trained on the CPU backend; no GPU needed)

import json  # noqa: E402
import os  # noqa: E402

import mascot  # noqa: E402
from mascot import _core  # noqa: E402

TINY = "synthetic-ml10m:0.002"


def _fake_device(monkeypatch):
    monkeypatch.setattr(mascot, "cuda_unavailable_reason", lambda: "")
    monkeypatch.setattr(_core, "cuda_copy_bandwidth", lambda *a: 1000.0)
    monkeypatch.setattr(_core, "cuda_device_name", lambda: "FakeGPU (sm_90)")


def _fake_runs(monkeypatch, gb, fail=lambda method, n: False):
    """gpu_bench with a fake device and fake runs (no data, no training): returns the list of
    runs made, (dataset, k, method, groups, epochs, MASCOT_CUDA_WRITES)."""
    _fake_device(monkeypatch)
    monkeypatch.setattr(mascot.data, "load", lambda name: name)
    calls = []

    def one_run(d, ds, k, m, g, epochs, bw):
        calls.append((ds, k, m, g, epochs, os.environ.get("MASCOT_CUDA_WRITES")))
        if fail(m, sum(c[2] == m for c in calls)):
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nsecond line")
        r = _run(ds, k, m, g, device="cuda (FakeGPU (sm_90))")
        r["epochs"] = epochs
        return r

    monkeypatch.setattr(gb, "one_run", one_run)
    return calls


def test_gpu_bench_reruns_runs_made_with_other_settings(tmp_path, monkeypatch, capsys):
    # audit defect 1: the resume key was dataset|k|method|g only, so a second invocation with
    # --epochs 5 skipped every run (made with 2 epochs) and its meta said 5.  Real CPU training
    # behind the fake device, as /tmp/audit-exp/fake/run_gpu_bench.py does.
    gb = _load("gpu_bench")
    _fake_device(monkeypatch)

    class CpuMF(mascot.MF):
        def __init__(self, *a, **kw):
            kw.update(device="cpu", threads=1)
            super().__init__(*a, **kw)

    monkeypatch.setattr(mascot, "MF", CpuMF)
    out = str(tmp_path / "gb")
    args = ["--datasets", TINY, "--ks", "16", "--methods", "fp32,mascot", "--naive-groups", "", "--out", out]
    assert gb.main(args + ["--epochs", "1"]) == 0
    assert gb.main(args + ["--epochs", "1"]) == 0
    assert "2 of 2 runs already done" in capsys.readouterr().err  # same settings: resumed
    assert gb.main(args + ["--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert "0 of 2 runs already done" in err and err.count("ms/epoch") == 2
    state = json.loads(pathlib.Path(os.path.join(out, "gpu_bench.json")).read_text())
    assert state["meta"]["epochs"] == 2
    assert sorted(r["epochs"] for r in state["runs"].values()) == [1, 1, 2, 2]
    md = pathlib.Path(os.path.join(out, "gpu_bench.md")).read_text()
    assert "2 epochs" in md and "2 stored run(s) made with other settings" in md
    assert md.count(f"| {TINY} | 16 |") == 2  # the table shows the current settings' runs only
    # the CUDA write mode changes a run too
    monkeypatch.setenv("MASCOT_CUDA_WRITES", "store")
    assert gb.main(args + ["--epochs", "2"]) == 0
    assert "0 of 2 runs already done" in capsys.readouterr().err
    assert len(json.loads(pathlib.Path(os.path.join(out, "runs.json")).read_text())) == 6


def test_gpu_bench_retries_failed_runs_on_the_next_invocation(tmp_path, monkeypatch, capsys):
    # audit defect 1 (second part): a failed run stayed skipped for good; now the next
    # invocation retries it (after the runs not yet tried), and one failing twice is skipped
    # so that repeating the script still ends (--retry-failed tries it again)
    gb = _load("gpu_bench")
    out = str(tmp_path / "gb")
    args = ["--datasets", TINY, "--ks", "32", "--epochs", "1", "--methods", "fp32,mascot,mpt", "--naive-groups", "",
            "--out", out]
    calls = _fake_runs(monkeypatch, gb, fail=lambda m, n: m == "mascot" and n == 1)  # fails once
    assert gb.main(args) == 1
    err = capsys.readouterr().err
    assert "failed (attempt 1): RuntimeError: CUDA error: an illegal memory access was encountered;" in err
    failed = json.loads(pathlib.Path(os.path.join(out, "failed.json")).read_text())
    assert list(failed) == [gb.run_key(TINY, 32, "mascot", 100, {"epochs": 1, "writes": "add", "overlap": "default"})]
    assert gb.main(args) == 0
    assert [c[2] for c in calls] == ["fp32", "mascot", "mpt", "mascot"]  # untried first, then the retry
    assert json.loads(pathlib.Path(os.path.join(out, "failed.json")).read_text()) == {}
    assert len(json.loads(pathlib.Path(os.path.join(out, "runs.json")).read_text())) == 3

    out2 = str(tmp_path / "gb2")
    args2 = args[:-1] + [out2]
    calls = _fake_runs(monkeypatch, gb, fail=lambda m, n: m == "mascot")  # fails every time
    assert gb.main(args2) == 1
    assert gb.main(args2) == 1  # retried once
    assert gb.main(args2) == 0  # then skipped: the loop ends
    capsys.readouterr()
    assert [c[2] for c in calls] == ["fp32", "mascot", "mpt", "mascot"]
    md = pathlib.Path(os.path.join(out2, "gpu_bench.md")).read_text()
    assert "|mascot|g=100|epochs=1|writes=add|overlap=default: RuntimeError: CUDA error" in md
    assert "(failed 2 times)" in md
    assert gb.main(args2 + ["--retry-failed"]) == 1
    assert [c[2] for c in calls][-1] == "mascot"


def test_gpu_bench_budget_below_the_guess_still_makes_a_run(tmp_path, monkeypatch, capsys):
    # audit defect 12: a budget below the guessed run time (120 s for a scaled name) exited 3
    # at once, every time, so gpu_check.sh bench's repeat-until-0 never ended; now each
    # invocation makes at least one run
    gb = _load("gpu_bench")
    calls = _fake_runs(monkeypatch, gb)
    args = ["--datasets", TINY, "--ks", "16,32", "--epochs", "1", "--methods", "fp32,mascot", "--naive-groups", "",
            "--out", str(tmp_path / "gb"), "--budget-seconds", "0.001"]
    rcs = [gb.main(args) for _ in range(5)]
    assert rcs == [3, 3, 3, 0, 0]
    assert len(calls) == 4
    assert "budget reached" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--ks", "x"], "--ks: 'x' is not an integer"),
    (["--ks", "0"], "--ks: 0 must be >= 1"),
    (["--ks", "32,"], "has an empty item"),
    (["--epochs", "0"], "epochs must be >= 1 (got 0)"),
    (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["--methods", "fp32,bogus"], "--methods: unknown method 'bogus'"),
    (["--datasets", "nosuch"], "--datasets: dataset 'nosuch' is neither synthetic"),
    (["--datasets", "synthetic-ml10m:0"], "bad scale '0'"),
    (["--naive-groups", "4", "--naive-dataset", "nosuch"], "--naive-dataset: dataset 'nosuch'"),
    (["--naive-groups", "0"], "--naive-groups: 0 must be >= 1"),
    (["--budget-seconds", "-1"], "--budget-seconds must be a finite number >= 0"),
    (["--budget-seconds", "nan"], "--budget-seconds must be a finite number >= 0"),
    (["--out", "AFILE"], "--out: 'AFILE' exists and is not a folder"),
    (["--out", "AFILE/x"], "cannot be a folder"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_gpu_bench_bad_arguments_are_one_line_usage_errors(tmp_path, monkeypatch, capsys, args, message):
    # audit defect 12: tracebacks (--ks x, --out afile) or a "failed run" stored and skipped
    # later (--epochs 0, unknown method or dataset); now exit 2 before any work, device or not
    gb = _load("gpu_bench")
    calls = _fake_runs(monkeypatch, gb)
    (tmp_path / "AFILE").write_text("")
    monkeypatch.chdir(tmp_path)
    base = ["--datasets", TINY, "--ks", "32", "--methods", "fp32", "--naive-groups", "", "--out", "gb"]
    with pytest.raises(SystemExit) as e:
        gb.main(base + args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and calls == []
    assert err.startswith("gpu_bench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "gb").exists()


@pytest.mark.parametrize("var, value", [("MASCOT_CUDA_WRITES", "atomic"), ("MASCOT_CUDA_OVERLAP", "0")])
def test_gpu_bench_bad_cuda_settings_are_usage_errors(tmp_path, monkeypatch, capsys, var, value):
    gb = _load("gpu_bench")
    calls = _fake_runs(monkeypatch, gb)
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as e:
        gb.main(["--datasets", TINY, "--ks", "32", "--methods", "fp32", "--naive-groups", "",
                 "--out", str(tmp_path / "gb")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and calls == [] and f"{var} must be" in err and err.count("\n") == 1


def test_gpu_bench_bad_arguments_without_a_device_exit_2(tmp_path):
    # the checks come before the device check: a CI machine without a GPU sees the same error
    import subprocess
    r = subprocess.run([sys.executable, str(BENCH / "gpu_bench.py"), "--ks", "x", "--out", str(tmp_path / "gb")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr == "gpu_bench: error: --ks: 'x' is not an integer\n" and r.stdout == ""


def test_gpu_bench_corrupt_state_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    gb = _load("gpu_bench")
    _fake_runs(monkeypatch, gb)
    out = tmp_path / "gb"
    out.mkdir()
    (out / "runs.json").write_text("{not json")
    with pytest.raises(SystemExit) as e:
        gb.main(["--datasets", TINY, "--ks", "32", "--methods", "fp32", "--naive-groups", "", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "runs.json" in err and "--fresh" in err and err.count("\n") == 1


def test_gpu_bench_table_without_a_test_set():
    gb = _load("gpu_bench")
    runs = {gb.run_key("ml100k", 128, m, 100): _run("ml100k", 128, m, rmse=None) for m in ("fp32", "mascot")}
    md = gb.table(runs, META)
    line = next(x for x in md.splitlines() if "| mascot |" in x)
    assert "| n/a | - |" in line


# --- benchmarks/cpu_methods.py (audit defect 11) ------------------------------------------------

def _cpu_methods(monkeypatch):
    cm = _load("cpu_methods")
    monkeypatch.setattr(cm.perf, "copy_bandwidth", lambda *a: 20e9)  # 512 MiB of copies otherwise
    return cm


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "k must be between 1 and 4096 (got 0)"),
    (["--order", "bogus"], "unknown order 'bogus'"),
    (["--dataset", "nosuch"], "--dataset: dataset 'nosuch' is neither synthetic"),
    (["--out", "AFILE/x"], "cannot be a folder"),
    (["--out", "AFILE"], "exists and is not a folder"),
    (["--methods", "fp32,bogus"], "--methods: unknown method 'bogus'"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--threads", "-1"], "threads must be between 0 and 1024"),
    (["--epochs", "0"], "epochs must be >= 1"),
])
def test_cpu_methods_bad_arguments_are_one_line_errors_before_training(tmp_path, monkeypatch, capsys, args,
                                                                        message):
    cm = _cpu_methods(monkeypatch)
    monkeypatch.setattr(mascot.MF, "fit", lambda *a, **kw: pytest.fail("trained before checking the arguments"))
    (tmp_path / "AFILE").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cm.main(["--dataset", TINY, "--k", "16", "--epochs", "1", "--out", "cm"] + args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("cpu_methods: error: ") and message in err
    assert err.count("\n") == 1 and not (tmp_path / "cm").exists()


def test_cpu_methods_dataset_without_a_test_set(tmp_path, monkeypatch, capsys):
    # a prepared dataset without test.mrat: a TypeError formatting None after the first method
    cm = _cpu_methods(monkeypatch)
    d = mascot.data.synthetic(TINY)
    (tmp_path / "data" / "notest").mkdir(parents=True)
    mascot.data.write_mrat(tmp_path / "data" / "notest" / "train.mrat", d.train)
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "data"))
    out = tmp_path / "cm"
    assert cm.main(["--dataset", "notest", "--k", "16", "--epochs", "1", "--threads", "1",
                    "--methods", "fp32,mascot-n1", "--out", str(out)]) == 0
    md = (out / "cpu_methods.md").read_text()
    assert "| mascot-n1 |" in md and "| n/a | n/a |" in md
    assert json.loads((out / "cpu_methods.json").read_text())["rows"][1]["final_test_rmse"] is None
    capsys.readouterr()


def test_cpu_methods_ctrl_c_keeps_the_finished_runs(tmp_path, monkeypatch, capsys):
    # Ctrl-C gave a traceback and lost every finished round; now the finished runs are written
    # (atomically) and the script exits 130 with one line
    cm = _cpu_methods(monkeypatch)
    fit, n = mascot.MF.fit, []

    def fit_then_interrupt(self, *a, **kw):
        n.append(1)
        if len(n) == 4:
            raise KeyboardInterrupt
        return fit(self, *a, **kw)

    monkeypatch.setattr(mascot.MF, "fit", fit_then_interrupt)
    out = tmp_path / "cm"
    rc = cm.main(["--dataset", TINY, "--k", "16", "--epochs", "1", "--threads", "1", "--methods", "fp32,mascot-n1",
                  "--rounds", "3", "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 130 and err[-1] == f"cpu_methods: interrupted after 3 of 6 runs; those are in {out}/cpu_methods.md"
    meta = json.loads((out / "cpu_methods.json").read_text())["meta"]
    assert (meta["status"], meta["runs_done"], meta["runs_planned"]) == ("interrupted", 3, 6)
    md = (out / "cpu_methods.md").read_text()
    assert "INTERRUPTED: 3 of 6 planned runs finished" in md
    fp32 = next(x for x in md.splitlines() if x.startswith("| fp32 |"))
    assert "| 1.00, 1.00 |" in fp32  # both finished fp32 rounds
    assert sorted(p.name for p in out.iterdir()) == ["cpu_methods.json", "cpu_methods.md"]  # no temporary left


def test_cpu_methods_failed_run_is_one_line_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    cm = _cpu_methods(monkeypatch)
    fit = mascot.MF.fit

    def fit_or_fail(self, *a, **kw):
        if self.method == "mascot":
            raise RuntimeError("diverged\nsecond line")
        return fit(self, *a, **kw)

    monkeypatch.setattr(mascot.MF, "fit", fit_or_fail)
    out = tmp_path / "cm"
    rc = cm.main(["--dataset", TINY, "--k", "16", "--epochs", "1", "--threads", "1", "--methods", "fp32,mascot",
                  "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 1 and err[-1].startswith("cpu_methods: error: [mascot round 1] RuntimeError: diverged; the 1 finished")
    assert json.loads((out / "cpu_methods.json").read_text())["meta"]["status"] == "failed"


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    _load("gpu_bench")  # puts benchmarks/benchutil.py in sys.modules
    import benchutil
    p = tmp_path / "t.json"
    benchutil.write_atomic(str(p), "old")
    with pytest.raises(TypeError):
        benchutil.write_atomic(str(p), 42)
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["t.json"]


# --- benchmarks/hogwild_overlap.py (audit defect 13) --------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers: 0 must be >= 1"),
    (["--workers", "1,x"], "--workers: 'x' is not an integer"),
    (["--scale", "0"], "--scale must be a number in (0, 1] (got 0)"),
    (["--scale", "nan"], "--scale must be a number in (0, 1]"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--writes", "store,bogus"], "--writes takes store and/or add"),
    (["--dataset", "nosuch"], "'nosuch' is not a synthetic dataset name"),
])
def test_hogwild_overlap_bad_arguments_are_one_line_errors(monkeypatch, capsys, args, message):
    ho = _load("hogwild_overlap")
    monkeypatch.setattr(mascot.data, "synthetic", lambda *a, **kw: pytest.fail("generated data before the checks"))
    with pytest.raises(SystemExit) as e:
        ho.main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("hogwild_overlap: error: ") and message in err
    assert err.count("\n") == 1


def test_hogwild_overlap_tiny_run(capsys):
    ho = _load("hogwild_overlap")
    assert ho.main(["--scale", "0.002", "--workers", "1,64", "--epochs", "1", "--writes", "add"]) == 0
    assert capsys.readouterr().out.count("final test RMSE") == 2


# --- column names say which way a ratio to fp32 reads (audit defect 16) -------------------------

def _header_cells(md):
    lines = md.splitlines()
    return [c.strip() for x, line in enumerate(lines[:-1]) if line.startswith("|") and lines[x + 1].startswith("|---")
            for c in line.strip("|").split("|")]


def test_ratio_columns_name_their_direction():
    # docs/benchmarks.md's first CPU table had "vs fp32" = fp32 time / method time, the
    # cpu_methods tables "time vs fp32" = method time / fp32 time: every "vs" column now says
    # what it compares (time, throughput or RMSE)
    docs = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    gb, hs, cm = _load("gpu_bench"), _load("gpu_hogwild_sweep"), _load("cpu_methods")
    row = dict(_run("synthetic-ml10m", 128, "fp32"), median_epoch_ups=1e6, round_seconds=[1.0], paired_ratios=[1.0])
    meta = dict(META, dataset="synthetic-ml10m", k=128, n_train=1, n_test=1, threads=2, order="shuffle",
                kernel_isa="avx512", rounds=1)
    tables = {"docs/benchmarks.md": docs, "gpu_bench": gb.table({"x": row}, META), "gpu_hogwild_sweep":
              hs.table([dict(row, writes="add", overlap="default")], meta), "cpu_methods": cm.table([row], meta)}
    for name, md in tables.items():
        cells = [c for c in _header_cells(md) if " vs " in c or c.startswith("vs ")]
        assert cells, name
        for c in cells:
            assert any(w in c for w in ("time", "throughput", "RMSE")), f"{name}: column '{c}'"
    assert "| throughput vs fp32 (same order) |" in docs


def test_gpu_bench_resumes_state_written_with_the_old_keys(tmp_path, monkeypatch, capsys):
    # runs.json of the earlier key format (dataset|k|method|g): re-keyed with the settings
    # each record shows, so a GPU session's finished runs are not made again (nor shown twice)
    gb = _load("gpu_bench")
    calls = _fake_runs(monkeypatch, gb)
    out = tmp_path / "gb"
    out.mkdir()
    old = {gb.run_key(TINY, 32, m, 100): dict(_run(TINY, 32, m), epochs=2) for m in ("fp32", "mascot")}
    (out / "runs.json").write_text(json.dumps(old))
    (out / "failed.json").write_text(json.dumps({gb.run_key(TINY, 32, "mpt", 100): "ValueError: epochs"}))
    args = ["--datasets", TINY, "--ks", "32", "--methods", "fp32,mascot,mpt", "--naive-groups", "", "--out", str(out)]
    assert gb.main(args + ["--epochs", "2"]) == 0
    assert [c[2] for c in calls] == ["mpt"]  # the old failure is tried again
    assert "2 of 3 runs already done" in capsys.readouterr().err
    md = (out / "gpu_bench.md").read_text()
    assert md.count(f"| {TINY} | 32 |") == 3 and "Failed runs" not in md
