"""A short fuzzing run of every reader, as part of the test suite (issue 6, hardening).

C++ readers (.mrat, text, model directory, checkpoint): ``scripts/fuzz.sh`` builds the fuzz targets with
AddressSanitizer + UndefinedBehaviorSanitizer and runs them -- coverage-guided libFuzzer for a
few seconds each where clang's libFuzzer exists, else the seeded replay driver (corpus + 2000
random mutations each, deterministic).  Either way real inputs hit the readers under the
sanitizers; which one ran is printed and asserted.  The Python model.json layer runs in-process:
corpus + seeded mutations through the same TestOneInput that atheris uses.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPP_TARGETS = ["mrat", "text", "model_dir", "checkpoint"]


def _compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")


def test_fuzz_targets_and_corpus_are_paired():
    cpp = {p.stem for p in (ROOT / "fuzz" / "targets").glob("*.cc")}
    py = {p.stem for p in (ROOT / "fuzz" / "python").glob("*.py")}
    corpora = {p.name for p in (ROOT / "fuzz" / "corpus").iterdir() if p.is_dir()}
    assert cpp == set(CPP_TARGETS) and py == {"model_json"}
    assert corpora == cpp | py
    for c in corpora:  # each corpus holds at least one valid and one bad input
        names = [p.name for p in (ROOT / "fuzz" / "corpus" / c).iterdir()]
        assert any(n.startswith("valid") for n in names) and any(n.startswith("bad") for n in names), c


@pytest.mark.slow
def test_cpp_readers_short_fuzz_run(tmp_path):
    if _compiler() is None:
        pytest.fail("no C++ compiler found: the fuzz build needs g++ or clang++")
    env = dict(os.environ, FUZZ_BUILD=str(ROOT / "build-fuzz"), FUZZ_MUTATIONS="2000", FUZZ_SEED="1")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "fuzz.sh"), ",".join(CPP_TARGETS), "3"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    mode = "libfuzzer" if "mode libfuzzer" in out else "replay"
    assert f"mode {mode}" in out
    clean = [ln for ln in out.splitlines() if ln.strip().startswith("clean:")]
    assert len(clean) == len(CPP_TARGETS), out
    for line in clean:  # the targets really executed inputs
        n = int(line.split()[1]) if mode == "libfuzzer" else int(line.split("+")[1].split()[0])
        assert n >= (100 if mode == "libfuzzer" else 2000), line
    # the checkpoint target's own summary: inputs got past the re-stamped checksums and resumed
    # (0 would mean its checksum mirror drifted from cpp/src/checkpoint.cc)
    summary = [ln for ln in out.splitlines() if "checkpoint target:" in ln]
    assert len(summary) == 1 and int(summary[0].split(",")[2].split()[0]) > 0, out
    print(out)


def _model_json_target():
    spec = importlib.util.spec_from_file_location("fuzz_model_json", ROOT / "fuzz" / "python" / "model_json.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_json_short_fuzz_run():
    mj = _model_json_target()
    corpus = mj.load_corpus(ROOT / "fuzz" / "corpus" / "model_json")
    assert len(corpus) >= 10
    assert mj.replay(corpus, mutations=600, seed=1) == 600


def test_fuzz_contract_is_enforced():
    """The harness itself must fail on a contract breach, else a clean run proves nothing."""
    mj = _model_json_target()
    import mascot

    orig = mascot.MF.load
    try:
        mascot.MF.load = classmethod(lambda cls, p: (_ for _ in ()).throw(KeyError("boom")))
        with pytest.raises(KeyError):
            mj.TestOneInput(b"{}")
        mascot.MF.load = classmethod(lambda cls, p: (_ for _ in ()).throw(ValueError("model\nsecond line")))
        with pytest.raises(AssertionError, match="unclear"):
            mj.TestOneInput(b"{}")
    finally:
        mascot.MF.load = orig
    assert sys.modules.get("fuzz_model_json") is None
