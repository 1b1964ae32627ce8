"""Presets (cpp/include/mascot/preset.h, mascot.presets): the built-in paper preset holds the paper's
values written out; preset files round-trip; the core's reader refuses bad files with one line naming
the file and the field, for Python and mascot_train alike; explicit keywords / options override."""
import json
import os
import subprocess

import pytest

import mascot
from mascot import _core, presets

PAPER = {"k": 128, "epochs": 50, "lr": 0.01, "decay": 0.1, "lambda_p": 0.01, "lambda_q": 0.015, "init_std": 0.01,
         "user_groups": 100, "item_groups": 100, "period": 2, "sample_ratio": 0.05, "threshold": 20.0, "warmup": 5}
TABLE = {p["name"]: p for p in _core.param_table()}


def test_paper_preset_is_the_papers_values_written_out():
    p = presets.read_preset("paper")
    want = dict(PAPER)
    if "schedule" in TABLE:  # the adaptive-rate row: the paper decays its rate
        want["schedule"] = "decay"
    assert p["params"] == want and p["name"] == "paper"
    assert presets.preset_names() == ["paper"]
    m = mascot.MF(preset="paper")
    assert {n: getattr(m, n) for n in PAPER} == PAPER


def test_keywords_override_a_preset_and_groups_overrides_both_sides():
    m = mascot.MF(preset="paper", lr=0.05, epochs=3)
    assert (m.lr, m.epochs, m.lambda_q) == (0.05, 3, 0.015)
    m = mascot.MF(preset="paper", groups=7)
    assert (m.user_groups, m.item_groups) == (7, 7)
    assert "preset" not in m.get_params()  # the resolved values reproduce the model (clone)
    assert mascot.MF(**m.get_params()).get_params() == m.get_params()


def test_round_trip(tmp_path):
    values = {"lr": 0.0234, "lambda_p": 0.07, "lambda_q": 0.031, "init_std": 0.05, "decay": 0.3, "k": 16,
              "epochs": 7, "method": "muppet", "random_fp16": None, "seed": 2**64 - 1, "deterministic": True,
              "muppet_word_lengths": [8, 12, 16]}
    path = tmp_path / "p.json"
    presets.write_preset(path, values, valid_rmse=0.91234, source="test")
    back = presets.read_preset(path)
    assert back["params"] == values and back["valid_rmse"] == 0.91234 and back["source"] == "test"
    assert back["name"] == str(path)
    doc = json.loads(path.read_text())
    assert doc["mascot_preset"] == 1 and list(doc["params"]) == list(values)
    m = mascot.MF(preset=str(path), epochs=2)
    assert (m.lr, m.k, m.epochs, m.method, m.deterministic) == (0.0234, 16, 2, "muppet", True)
    assert m.method_params == {"muppet_word_lengths": [8, 12, 16]}


@pytest.mark.parametrize("text, msg", [
    ('{"mascot_preset": 1, "params": {"lr": "x"}}', "params.lr must be a number (got a string x)"),
    ('{"mascot_preset": 1, "params": {"k": 0}}', "params.k must be between 1 and 4096 (got 0)"),
    ('{"mascot_preset": 1, "params": {"k": 1.5}}', "params.k must be an integer"),
    ('{"mascot_preset": 1, "params": {"nope": 1}}', "params.nope: unknown parameter"),
    ('{"mascot_preset": 1, "params": {"eval_every_epoch": true}}', "params.eval_every_epoch: unknown parameter"),
    ('{"mascot_preset": 1, "params": {"method": "nope"}}', "params.method: unknown method 'nope'"),
    ('{"mascot_preset": 1, "params": {"lr": -1}}', "params.lr must be a finite number > 0 (got -1)"),
    ('{"mascot_preset": 1, "params": {"lr": 1e99}}', "params.lr is outside the float32 range"),
    ('{"mascot_preset": 1, "params": {"grad_stats": 1}}', "params.grad_stats must be true or false"),
    ('{"mascot_preset": 1, "params": {"k": 4}, "extra": 1}', "unknown field 'extra'"),
    ('{"mascot_preset": 2, "params": {}}', "mascot_preset must be 1 (got 2)"),
    ('{"params": {}}', 'not a MASCOT preset (no "mascot_preset": 1)'),
    ('{"mascot_preset": 1}', 'no "params" object'),
    ('{"mascot_preset": 1,\n "params": {"k": 4,}}', "line 2: invalid JSON"),
    ('{"mascot_preset": 1, "mascot_preset": 1, "params": {}}', "appears twice"),
    ("[]", "expected a JSON object"),
    ("", "invalid JSON"),
])
def test_bad_files_give_one_line_naming_file_and_field(tmp_path, trainer_exe, text, msg):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        presets.read_preset(path)
    assert str(e.value).startswith(f"preset {path}: ") and msg in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        mascot.MF(preset=path)
    r = subprocess.run([trainer_exe, "--preset", str(path), "--dataset", "synthetic-ml10m:0.001", "--epochs", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_missing_preset_and_bad_names(tmp_path):
    with pytest.raises(OSError, match="no such file"):
        presets.read_preset(tmp_path / "none.json")
    with pytest.raises(OSError, match="is a directory"):
        presets.read_preset(tmp_path)
    with pytest.raises(ValueError, match="preset must be"):
        mascot.MF(preset=3)


def test_write_preset_refuses_what_cannot_be_read_back_and_leaves_nothing(tmp_path):
    path = tmp_path / "p.json"
    for bad in ({"k": 0}, {"nope": 1}, {"lr": float("nan")}):
        with pytest.raises(ValueError):
            presets.write_preset(path, bad)
        assert not path.exists()
    presets.write_preset(path, {"k": 4})
    with pytest.raises(ValueError):
        presets.write_preset(path, {"k": 0})
    assert json.loads(path.read_text())["params"] == {"k": 4}  # the old file stays whole
    assert [p for p in os.listdir(tmp_path)] == ["p.json"]  # no temps left


def test_mascot_train_preset_then_options(tmp_path, trainer_exe):
    path = tmp_path / "p.json"
    presets.write_preset(path, {"lr": 0.02, "lambda_p": 0.03, "k": 8, "epochs": 3, "method": "fp32"})
    rep = tmp_path / "r.json"
    r = subprocess.run([trainer_exe, "--lambda-p", "0.05", "--preset", str(path), "--dataset", "synthetic-ml10m:0.001",
                        "--epochs", "2", "--report", str(rep), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    c = json.loads(rep.read_text())["config"]
    assert (c["lr"], c["lambda_p"], c["k"], c["epochs"], c["method"]) == (0.02, 0.05, 8, 2, "fp32")
    r = subprocess.run([trainer_exe, "--preset", "paper", "--dataset", "synthetic-ml10m:0.001", "--epochs", "1",
                        "--k", "4", "--report", str(rep), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    c = json.loads(rep.read_text())["config"]
    assert all(c[n] == v for n, v in PAPER.items() if n not in ("k", "epochs")) and c["method"] == "mascot"
    r = subprocess.run([trainer_exe, "--preset", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "preset nope: no such file (built-in presets: paper)" in r.stderr


def test_experiment_cells_use_the_paper_preset():
    from mascot.experiments.grid import Cell
    cell = Cell("x", "synthetic-ml10m:0.001", "mascot", 16, 3, 0, params=(("lr", 0.02),))
    kw = cell.mf_kwargs(2)
    assert kw["preset"] == "paper"
    m = mascot.MF(**kw)
    assert (m.lr, m.k, m.epochs, m.lambda_q, m.decay) == (0.02, 16, 3, 0.015, 0.1)
