"""The developer kernel benchmark (benchmarks/cpu_kernel_epochs.cc) builds and runs.

It is not part of the installed package (CMake option MASCOT_BUILD_BENCH), so this test keeps it
from rotting: a quick unoptimised CMake build of the core plus the tool, then one tiny run of
every model state, and its argument errors.  No timing is asserted (benchmarks never are).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATES = ["n1", "fp32", "shuffle", "mixed-fp16", "mixed-switched", "mixed-switched-measured", "mixed-fp16-measured"]


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    if shutil.which("cmake") is None or not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        pytest.skip("cmake or a C++ compiler is missing")
    build = tmp_path_factory.mktemp("kbench")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build), *gen, "-DCMAKE_BUILD_TYPE=Debug", "-DMASCOT_KERNEL_OPT=-O0",
           "-DMASCOT_CUDA=OFF", "-DMASCOT_BUILD_APPS=OFF", "-DMASCOT_BUILD_BENCH=ON"]
    subprocess.run(cfg, check=True, capture_output=True, text=True)
    r = subprocess.run(["cmake", "--build", str(build), "--target", "mascot_kernel_epochs", "-j", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exe = build / "mascot_kernel_epochs"
    assert exe.exists()
    return exe


def test_every_state_runs_and_ratios_are_paired(tool):
    r = subprocess.run([str(tool), "--dataset", "synthetic-ml10m:0.001", "--rounds", "2", "--fp32-user-groups", "0",
                        "--fp32-item-groups", "0-1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 user / 2 item groups FP32" in r.stdout
    rows = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in STATES:
            rows[parts[0]] = parts
    assert set(rows) == set(STATES)
    for name, parts in rows.items():
        assert float(parts[1]) > 0, name  # median epoch seconds
    # each state's time / n1 is paired with the n1 epoch of the same round: n1's own is 1
    assert rows["n1"][2] == "1.000" and rows["fp32"][4] == "1.000"


@pytest.mark.parametrize("args, message", [
    (["--states", "n1,fp32,bogus"], "unknown state 'bogus'"),
    (["--states", "n1,mixed-fp16"], "must include n1 and fp32"),
    (["--fp32-item-groups", "0-5000"], "--fp32-item-groups: '0-5000' is not within 0-"),
    (["--sample-ratio", "0"], "--sample-ratio must be in (0, 1]"),
    (["--dataset", "ml10m"], "--dataset must be a synthetic name"),
    (["--rounds"], "--rounds needs a value"),
])
def test_bad_arguments_are_one_line_errors(tool, args, message):
    tiny = ["--dataset", "synthetic-ml10m:0.001", "--fp32-user-groups", "0", "--fp32-item-groups", "0"]
    r = subprocess.run([str(tool), *tiny, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1 and r.stdout == ""
