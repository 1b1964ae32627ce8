"""CPU epoch throughput per method (pytest-benchmark; run: pytest tests/bench).

Each round trains EPOCHS epochs without evaluation.  The timed quantity is the whole fit; the
extra_info carries what the issue asks for: seconds per epoch and updates/s from the run
report (SGD passes only, no setup), and the fraction of the memory-bandwidth floor
(docs/design.md §6: nnz x (4 k bytes-per-element + 12) / copy bandwidth measured in this run), with
the bytes per element of benchmarks/benchutil.py (the one definition the benchmark scripts use:
4 for fp32 and the FP32-master methods mpt, muppet and afp, 2 for the FP16-storage methods).
"""
import os

import pytest
from benchutil import bytes_per_element  # benchmarks/, on sys.path through conftest.py

import mascot
from mascot import perf

EPOCHS = int(os.environ.get("MASCOT_BENCH_EPOCHS", "5"))
THREADS = int(os.environ.get("MASCOT_BENCH_THREADS", "2"))
K = 128


# Every method in the default order (auto: the conflict-free grid with 2 threads on these sets),
# plus Hogwild shuffle order where the schedule matters most; each on both skews (conftest.py).
METHODS = ["fp32", "fp16", "mascot-n1", "mascot-n2", "mascot", "mascot-naive", "mpt", "muppet", "afp"]
CASES = [(m, "auto") for m in METHODS] + [(m, "shuffle") for m in ("fp32", "mascot-n1", "mascot")]


def test_every_method_is_benchmarked():
    # every SGD method; ALS (one solve per row, not an SGD pass) has its own benchmarks:
    # benchmarks/implicit_compare.py (against implicit) and benchmarks/als_kernels_bench.cc
    sgd = [m for m in mascot._core.method_names() if m != "als"]
    assert "als" in mascot._core.method_names() and sorted(METHODS) == sorted(sgd)


def test_floor_bytes_per_element_follow_the_storage():
    # the FP32-master methods move FP32 rows: the same b as fp32 in every floor of this folder
    # and of benchmarks/ (an FP16 b for them halved their floor fraction)
    assert {m: bytes_per_element(m) for m in METHODS} == {
        "fp32": 4, "mpt": 4, "muppet": 4, "afp": 4,
        "fp16": 2, "mascot-n1": 2, "mascot-n2": 2, "mascot": 2, "mascot-naive": 2}


@pytest.mark.parametrize("method,order", CASES)
def test_cpu_epoch(benchmark, bench_data, copy_bandwidth, method, order):
    tr = bench_data.train
    model = mascot.MF(k=K, method=method, epochs=EPOCHS, threads=THREADS, device="cpu", order=order)
    reports = []  # every round's report: the figure is the best epoch of all rounds

    def fit():
        reports.append(model.fit(tr).report_)

    benchmark.pedantic(fit, rounds=1 if benchmark.disabled else 2, iterations=1)
    rep = reports[-1]
    per_epoch = min(e["train_seconds"] for r in reports for e in r["epochs"])
    elem = bytes_per_element(method)
    floor = perf.epoch_floor_seconds(len(tr), K, elem, copy_bandwidth)
    benchmark.extra_info.update({
        "dataset": bench_data.name, "n_train": len(tr), "threads": THREADS, "k": K, "order": order,
        "seconds_per_epoch": per_epoch, "updates_per_second": len(tr) / per_epoch,
        "copy_bandwidth_GBps": copy_bandwidth / 1e9, "bytes_per_element": elem, "floor_seconds_per_epoch": floor,
        "fraction_of_floor": floor / per_epoch, "kernel_isa": mascot._core.kernel_isa(),
    })
    assert rep["totals"]["epochs_run"] == EPOCHS
