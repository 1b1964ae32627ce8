"""The parameter table (cpp/include/mascot/params.h, _core.param_table()) and what is derived from
it: the bound fields and their defaults, mascot_train's options and --help, mascot.MF's keyword
arguments and ranges, the run report's config; and the data-source policy both front ends share."""
import inspect
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mascot
from mascot import _core, data

TABLE = _core.param_table()
BY_NAME = {p["name"]: p for p in TABLE}
STRUCTS = {"config": _core.TrainConfig, "competing": _core.CompetingParams, "context": _core.Context}


def _fields(obj):
    return {n for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n))} - {"competing"}


def test_table_rows_are_the_bound_fields_with_their_defaults():
    assert len(BY_NAME) == len(TABLE)  # names are unique across the three structs
    for scope, cls in STRUCTS.items():
        obj = cls()
        rows = [p for p in TABLE if p["scope"] == scope]
        assert {p["name"] for p in rows} == _fields(obj), scope
        for p in rows:
            v = getattr(obj, p["name"])
            if p["type"] == "float":  # a float32 field: the default is its shortest decimal
                assert np.float32(p["default"]) == np.float32(v) and str(p["default"]) == str(np.float32(v)), p
            else:
                assert p["default"] == v and type(p["default"]) is type(v), p
    assert BY_NAME["k"]["min"] == 1 and BY_NAME["k"]["max"] == 4096 and BY_NAME["seed"]["max"] == 2**64 - 1
    assert BY_NAME["order"]["choices"] == ["auto", "grid", "shuffle", "chunk"]
    assert BY_NAME["loss_scale"]["methods"] == ["mpt"] and len(BY_NAME["k"]["methods"]) == len(_core.method_names())



def test_methods_column_agrees_with_the_method_traits():
    """The table's methods column (which --help shows and the CLI enforces) says what the
    method-traits table (mascot/methods.h) says, which validation asks: a study option's methods,
    the switching settings' methods, and a method's own settings exactly for the competing methods."""
    traits = _core.method_traits()
    for option in ("random_fp16", "grad_stats"):
        assert set(BY_NAME[option]["methods"]) == {m for m, t in traits.items() if t[option]}, option
    switching = {m for m, t in traits.items() if t["switching"] in ("per-group", "global")}
    for name in ("period", "sample_ratio", "threshold", "warmup"):
        assert set(BY_NAME[name]["methods"]) == switching, name
    owners = {m for p in TABLE if p["scope"] == "competing" for m in p["methods"]}
    assert owners == {m for m, t in traits.items() if t["storage"] == "fp32-master"} | {"als"}
    # ALS's settings are its own (section als); the SGD rows say they are not als's
    als_rows = {p["name"] for p in TABLE if p["section"] == "als"}
    assert als_rows == {p["name"] for p in TABLE if p["methods"] == ["als"]} and "cg_steps" in als_rows
    for name in ("lr", "decay", "rounding", "order", "user_groups", "item_groups"):
        assert set(BY_NAME[name]["methods"]) == set(traits) - {"als"}, name

def test_every_option_and_enum_name_is_in_help(trainer_exe):
    r = subprocess.run([trainer_exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for p in TABLE:
        if p["flag"]:
            assert f"  {p['flag']} " in r.stdout or f"  {p['flag']}\n" in r.stdout, p["flag"]
        for name in p["choices"] or []:
            assert name in r.stdout, name
    for flag in ("--groups G", "--loss-scale X|dynamic", "--afp-bits LOW,HIGH"):  # options that set two
        assert flag in r.stdout
    assert "(default mascot)" in r.stdout and "(mpt; default 1000)" in r.stdout


def test_python_keywords_are_the_table():
    sig = inspect.signature(mascot.MF)
    names = [p["name"] for p in TABLE if p["scope"] != "competing" and p["section"] != "internal"]
    assert sorted(sig.parameters) == sorted(names + ["groups", "verbose", "method_params", "preset"])
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
    assert sig.parameters["k"].default == 128 and sig.parameters["lr"].default == 0.03
    assert sig.parameters["random_fp16"].default is None  # off
    assert set(mascot.MF().get_params()) == set(names) | {"method_params"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        mascot.MF(nope=1)
    with pytest.raises(TypeError):
        mascot.MF(64)  # keyword-only
    # method_params: the settings of the method, by the table
    assert mascot.model._METHOD_PARAMS["mpt"] == ("loss_scale", "dynamic_loss_scale", "loss_scale_window")


@pytest.mark.parametrize("name", [p["name"] for p in TABLE if p["type"] in ("int", "uint64")
                                  and p["scope"] != "competing"])
def test_python_integer_ranges_are_the_tables(name):
    p = BY_NAME[name]
    for bad in (p["min"] - 1, p["max"] + 1):
        with pytest.raises(ValueError) as e:
            mascot.MF(**{name: bad})
        msg = str(e.value)
        assert msg.startswith(f"{name} must be ") and f"(got {bad})" in msg and "\n" not in msg, msg


def test_report_config_is_the_table(tiny):
    u, i, r, nu, ni = tiny
    front = [p["name"] for p in TABLE if p["scope"] == "config" and p["section"] != "internal"]
    settings = [p["name"] for p in TABLE if p["scope"] == "competing" and p["methods"] != ["als"]]
    als = [p["name"] for p in TABLE if p["methods"] == ["als"]]
    for method in ("fp32", "mpt", "als"):
        c = mascot.MF(k=4, epochs=1, groups=2, method=method).fit((u, i, r)).report_["config"]
        assert list(c) == front + ({"mpt": ["competing"], "als": ["als"]}.get(method, []))
        if method == "mpt":
            assert list(c["competing"]) == settings
        if method == "als":
            assert list(c["als"]) == als


def test_cli_takes_every_64_bit_seed(trainer_exe, tmp_path, tiny):
    """--seed 2^64-1 (Python accepts it) trains the very model Python trains with that seed."""
    u, i, r, nu, ni = tiny
    train = tmp_path / "train.mrat"
    data.write_mrat(train, data.Ratings.from_arrays(u, i, r))
    seed = 2**64 - 1
    res = subprocess.run([trainer_exe, "--train", str(train), "--method", "fp32", "--k", "8", "--epochs", "2",
                          "--groups", "2", "--seed", str(seed), "--deterministic", "--quiet", "--save",
                          str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    m = mascot.MF(method="fp32", k=8, epochs=2, groups=2, seed=seed, deterministic=True).fit(
        data.read(train))
    assert np.load(tmp_path / "m" / "P.npy").tobytes() == m.P.tobytes()
    assert json.loads((tmp_path / "m" / "model.json").read_text())["report"]["seed"] == seed


def test_deterministic_is_decided_by_the_core():
    ctx = _core.Context()
    ctx.deterministic, ctx.threads = True, 0
    run = ctx.for_run()
    assert (run.threads, run.device) == (1, "cpu")
    ctx.threads = 4
    with pytest.raises(ValueError, match=r"deterministic=True runs one thread \(got threads=4\)"):
        ctx.for_run()
    with pytest.raises(ValueError, match="deterministic=True runs on the CPU"):
        mascot.MF(deterministic=True, device="cuda")


# ---------------------------------------------------------------- data sources
def test_data_root_is_the_cores(monkeypatch, tmp_path):
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path / "d"))
    assert data.data_root() == tmp_path / "d" and _core.data_root() == str(tmp_path / "d")
    monkeypatch.delenv("MASCOT_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_root() == tmp_path / "home" / ".cache" / "mascot"


def test_dataset_names_resolve_in_the_core(monkeypatch, tmp_path):
    monkeypatch.setenv("MASCOT_DATA", str(tmp_path))
    src = _core.resolve_dataset("synthetic-netflix:0.1")
    assert (src["kind"], src["synthetic"], src["scale"]) == ("synthetic", "synthetic-netflix", 0.1)
    src = _core.resolve_dataset("mine")
    assert src["kind"] == "prepared" and "mascot data prepare mine" in src["unavailable"]
    with pytest.raises(FileNotFoundError, match="dataset 'mine' is not prepared"):
        data.load("mine")
    (tmp_path / "mine").mkdir()
    data.write_mrat(tmp_path / "mine" / "train.mrat", data.Ratings.from_arrays([0, 1], [1, 0], [3.0, 4.0]))
    src = _core.resolve_dataset("mine")
    assert src["unavailable"] == "" and src["train"] == str(tmp_path / "mine" / "train.mrat") and src["test"] is None
    assert len(data.load("mine").train) == 2 and len(data.load("mine").test) == 0
    with pytest.raises(ValueError, match="unknown synthetic dataset"):
        _core.resolve_dataset("synthetic-nope")


@pytest.mark.parametrize("spec", ["synthetic-ml10m:0.01", "synthetic-netflix:0.003", "synthetic-yahoo:0.0005",
                                  "synthetic-ml10m-heavy:0.01", "synthetic-netflix-heavy:0.003"])
def test_planned_shape_is_the_generated_one(spec, trainer_exe):
    """The memory plan of a synthetic set is made before generating it, from the generator's own
    rounded and clamped sizes (both front ends used to truncate: 6987 users planned, 6988 made)."""
    d = data.load(spec)
    nu, ni, ntr, nte = _core.planned_shape(spec)
    assert (nu, ni, ntr + nte) == (d.train.n_users, d.train.n_items, len(d.train) + len(d.test))
    assert abs(nte - len(d.test)) <= 0.05 * nte + 10  # the expected share of a seeded hash split
    plan = mascot.MF(k=8, method="mascot").memory_plan(dataset=spec)  # mascot_train's default method
    assert (plan["n_users"], plan["n_items"]) == (nu, ni)
    r = subprocess.run([trainer_exe, "--dataset", spec, "--k", "8", "--dry-run"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == plan["text"], r.stderr
    assert _core.planned_shape("somewhere-else") is None


def test_cli_resolves_prepared_datasets_like_python(trainer_exe, tmp_path, tiny):
    u, i, r, nu, ni = tiny
    env = dict(os.environ, MASCOT_DATA=str(tmp_path))
    (tmp_path / "mini").mkdir()
    data.write_mrat(tmp_path / "mini" / "train.mrat", data.Ratings.from_arrays(u, i, r))
    res = subprocess.run([trainer_exe, "--dataset", "mini", "--k", "4", "--epochs", "1", "--groups", "2", "--quiet",
                          "--report", str(tmp_path / "r.json")], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    rep = json.loads(Path(tmp_path / "r.json").read_text())
    assert rep["dataset"]["name"] == "mini" and rep["dataset"]["n_test"] == 0
