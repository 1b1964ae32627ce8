"""The CUDA backend when CUDA itself is unusable: no driver, a driver older than the build's
CUDA runtime, and a device fault in a kernel (a sticky error: the process's CUDA context stays
unusable, every later CUDA call fails with it).  Each must be one clear line naming the cause,
`--device cuda` must say why later requests fail, `auto` must train on the CPU, and the device
memory must be freed on the way out.

These states cannot be produced on demand on a real GPU or on a machine without one; the CUDA
emulator build (MASCOT_CUDA=EMU) injects them (MASCOT_CUDA_EMU_DRIVER,
MASCOT_CUDA_EMU_FAULT_LAUNCH).  scripts/cuda_emu_check.sh runs this file against that build and
fails if anything here is skipped; in other builds these tests are skipped."""
import os
import re
import subprocess
import sys

import pytest

import mascot
from mascot import _core


def _emulator_build():
    if not mascot.HAS_CUDA:
        return False
    try:
        return "emulator" in _core.cuda_device_name()
    except RuntimeError:
        return False


pytestmark = pytest.mark.skipif(not _emulator_build(),
                                reason="needs the CUDA emulator build (scripts/cuda_emu_check.sh runs these)")


def _env(**kw):
    env = dict(os.environ)
    for k in ("MASCOT_CUDA_EMU_DRIVER", "MASCOT_CUDA_EMU_FAULT_LAUNCH", "CUDA_VISIBLE_DEVICES"):
        env.pop(k, None)
    env.update({k: str(v) for k, v in kw.items()})
    return env


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], env=_env(**env), capture_output=True, text=True, timeout=300)


def _trainer():
    exe = os.environ.get("MASCOT_TRAIN")
    if not exe:
        pytest.fail("MASCOT_TRAIN must name the emulator build's mascot_train")
    return exe


TRAIN = ["--dataset", "synthetic-ml10m:0.001", "--k", "32", "--epochs", "2", "--quiet"]


@pytest.mark.parametrize("driver,want", [
    (12040, r"the NVIDIA driver supports CUDA 12\.4, older than the CUDA \d+\.\d+ runtime this build uses: "
            r"update the driver"),
    (0, r"no CUDA device is visible \(no NVIDIA driver is installed\)"),
])
def test_missing_or_old_driver_is_named(driver, want, tmp_path):
    r = _python("import mascot; print(mascot.cuda_device_count()); print(mascot.cuda_unavailable_reason())",
                MASCOT_CUDA_EMU_DRIVER=driver)
    assert r.returncode == 0, r.stderr
    count, why = r.stdout.splitlines()
    assert count == "0" and re.fullmatch(want, why), r.stdout
    # --device cuda: one line with the cause, status 1, nothing written
    rep = tmp_path / "r.json"
    r = subprocess.run([_trainer(), *TRAIN, "--device", "cuda", "--report", str(rep)],
                       env=_env(MASCOT_CUDA_EMU_DRIVER=driver), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("mascot_train: error: device 'cuda' requested, but ")
    assert re.search(want, err) and err.endswith("use --device cpu or auto"), err
    assert not rep.exists()
    # auto trains on the CPU
    r = _python("import mascot\n"
                "d = mascot.data.synthetic('synthetic-ml10m', scale=0.001, seed=1)\n"
                "print(mascot.MF(k=32, epochs=1, device='auto').fit(d.train).report_['device'])",
                MASCOT_CUDA_EMU_DRIVER=driver)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cpu"), r.stdout


def test_device_fault_is_named_and_sticky():
    # launches 1 and 2 initialise P and Q; launch 3, the first SGD pass, faults
    r = _python(
        "import mascot\n"
        "d = mascot.data.synthetic('synthetic-ml10m', scale=0.001, seed=1)\n"
        "print('BEFORE', repr(mascot.cuda_unavailable_reason()))\n"
        "try:\n"
        "    mascot.MF(k=32, epochs=2, device='cuda').fit(d.train)\n"
        "except RuntimeError as e:\n"
        "    print('FIRST', e)\n"
        "print('REASON', mascot.cuda_unavailable_reason())\n"
        "try:\n"
        "    mascot.MF(k=32, epochs=1, device='cuda').fit(d.train)\n"
        "except RuntimeError as e:\n"
        "    print('SECOND', e)\n"
        "print('AUTO', mascot.MF(k=32, epochs=1, device='auto').fit(d.train).report_['device'])\n",
        MASCOT_CUDA_EMU_FAULT_LAUNCH=3)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["BEFORE"] == "''"
    assert "an illegal memory access was encountered" in out["FIRST"]
    assert "a device fault: the GPU is unusable in this process until it restarts" in out["FIRST"]
    assert out["REASON"] == ("the GPU is unusable in this process after an earlier device fault (an illegal "
                             "memory access was encountered): restart the process")
    assert out["SECOND"].startswith("device 'cuda' requested, but the GPU is unusable in this process")
    assert out["AUTO"].startswith("cpu")


@pytest.mark.parametrize("launch", [1, 3, 5])
def test_device_fault_frees_device_memory_and_writes_nothing(launch, tmp_path):
    # the emulator's leak check: device memory still allocated at exit -> status 99
    rep, save = tmp_path / "r.json", tmp_path / "model"
    r = subprocess.run([_trainer(), *TRAIN, "--device", "cuda", "--method", "mascot", "--groups", "4",
                        "--report", str(rep), "--save", str(save)],
                       env=_env(MASCOT_CUDA_EMU_FAULT_LAUNCH=launch, MASCOT_CUDA_EMU_LEAK_CHECK=1),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "an illegal memory access was encountered" in err[0], r.stderr
    assert "restarts" in err[0]
    assert not rep.exists() and not save.exists()
