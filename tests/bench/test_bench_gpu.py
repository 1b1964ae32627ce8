"""GPU epoch throughput of the storage methods (pytest-benchmark; marked gpu, skipped without
a device): fp32, fp16, mascot-n1 and mascot, the regression-tracking subset.  Every method of
docs/design.md §4, on every benchmark dataset with the DRAM-floor fractions, is
benchmarks/gpu_bench.py's job (scripts/gpu_check.sh bench).

Same measurement as test_bench_cpu.py on ``device="cuda"``: the timed quantity is the whole
fit of EPOCHS epochs without evaluation; extra_info carries seconds per epoch and updates/s
from the run report.
"""
import os

import pytest

import mascot

EPOCHS = int(os.environ.get("MASCOT_BENCH_EPOCHS", "5"))
K = 128
METHODS = ["fp32", "fp16", "mascot-n1", "mascot"]


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_gpu_epoch(benchmark, bench_data, method):
    if not mascot.HAS_CUDA or mascot.cuda_device_count() == 0:
        pytest.skip("no CUDA backend or no visible CUDA device")
    tr = bench_data.train
    model = mascot.MF(k=K, method=method, epochs=EPOCHS, device="cuda")
    reports = []  # every round's report: the figure is the best epoch of all rounds

    def fit():
        reports.append(model.fit(tr).report_)

    benchmark.pedantic(fit, rounds=1 if benchmark.disabled else 3, iterations=1)
    rep = reports[-1]
    per_epoch = min(e["train_seconds"] for r in reports for e in r["epochs"])
    benchmark.extra_info.update({
        "dataset": bench_data.name, "n_train": len(tr), "k": K, "device": rep["device"],
        "seconds_per_epoch": per_epoch, "updates_per_second": len(tr) / per_epoch,
    })
    assert rep["totals"]["epochs_run"] == EPOCHS
    assert rep["device"].startswith("cuda")
