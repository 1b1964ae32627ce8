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
