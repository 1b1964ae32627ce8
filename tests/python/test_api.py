"""The Python API: mascot.MF, mascot.data, CUDA queries."""
import numpy as np
import pytest

import mascot
from mascot import data

from backends import backend_k


def test_module_surface():
    assert isinstance(mascot.HAS_CUDA, bool)
    assert mascot.cuda_device_count() >= 0
    assert mascot.__version__
    assert "mascot-n1" in mascot._core.method_names()


def test_cuda_device_without_gpu_is_a_clear_error(tiny):
    if mascot.cuda_device_count() > 0:
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(RuntimeError, match="cuda"):
        mascot.MF(groups=4, k=32, epochs=1, device="cuda").fit(tiny[:3])


def test_fit_from_arrays_dataframe_and_path(tiny, tmp_path):
    pd = pytest.importorskip("pandas")
    u, i, r, nu, ni = tiny
    m1 = mascot.MF(groups=4, k=8, epochs=3, threads=1).fit((u, i, r))
    df = pd.DataFrame({"user": u, "item": i, "rating": r})
    m2 = mascot.MF(groups=4, k=8, epochs=3, threads=1).fit(df)
    p = tmp_path / "t.mrat"
    data.write_mrat(p, data.Ratings.from_arrays(u, i, r))
    m3 = mascot.MF(groups=4, k=8, epochs=3, threads=1).fit(str(p))
    assert np.array_equal(m1.P, m2.P) and np.array_equal(m1.P, m3.P)
    assert m1.P.shape == (nu, 8) and m1.Q.shape == (ni, 8) and m1.P.dtype == np.float32


def test_training_learns_and_reports(tiny, backend):
    u, i, r, nu, ni = tiny
    n = len(r)
    tr = (u[: n * 4 // 5], i[: n * 4 // 5], r[: n * 4 // 5])
    te = (u[n * 4 // 5:], i[n * 4 // 5:], r[n * 4 // 5:])
    m = mascot.MF(groups=4, k=backend_k(backend, 8), epochs=40, lr=0.05, method="mascot-n1", threads=2,
                  device=backend).fit(tr, te)
    rep = m.report_
    assert rep["format"] == "mascot-run-report"
    assert len(rep["epochs"]) == 40
    rmses = [e["test_rmse"] for e in rep["epochs"]]
    assert rmses[-1] < rmses[0] * 0.7
    assert rep["totals"]["final_test_rmse"] == pytest.approx(rmses[-1])
    assert rep["dataset"]["n_test"] + rep["dataset"]["test_dropped"] == len(te[0])
    assert rep["config"]["method"] == "mascot-n1" and rep["threads"] == 2
    assert rep["device"].startswith(backend)
    for e in rep["epochs"]:
        assert e["train_seconds"] >= 0 and e["eval_seconds"] >= 0
    # the report's RMSE is the model's RMSE on the kept test ratings
    keep = np.isin(te[0], tr[0]) & np.isin(te[1], tr[1])
    assert m.rmse((te[0][keep], te[1][keep], te[2][keep])) == pytest.approx(rmses[-1], rel=1e-4)


def test_test_ids_unknown_to_training_are_dropped_and_counted(tiny):
    u, i, r, nu, ni = tiny
    te = (np.array([0, nu + 5, 1], np.int32), np.array([0, 0, ni + 100], np.int32), np.array([3, 3, 3], np.float32))
    m = mascot.MF(groups=4, k=4, epochs=2).fit((u, i, r), te)
    assert m.report_["dataset"]["test_dropped"] == 2 and m.report_["dataset"]["n_test"] == 1


def test_predict(tiny, backend):
    u, i, r, nu, ni = tiny
    m = mascot.MF(groups=4, k=backend_k(backend, 8), epochs=2, device=backend).fit((u, i, r))
    p = m.predict(u[:10], i[:10])
    assert p.shape == (10,) and p.dtype == np.float32
    np.testing.assert_allclose(p, (m.P[u[:10]] * m.Q[i[:10]]).sum(1), rtol=1e-5)
    with pytest.raises(ValueError, match="not in the model"):
        m.predict([nu], [0])
    with pytest.raises(ValueError, match=">= 0"):
        m.predict([-1], [0])
    with pytest.raises(RuntimeError, match="not fitted"):
        mascot.MF().predict([0], [0])


def test_verbose_progress(tiny, capsys):
    mascot.MF(groups=4, k=4, epochs=2, verbose=True).fit(tiny[:3], tiny[:3])
    err = capsys.readouterr().err
    assert err.count("epoch") == 2 and "test_rmse" in err


def test_callback_exception_stops_training(tiny, monkeypatch):
    calls = []

    def boom(rec):
        calls.append(rec)
        raise KeyboardInterrupt

    from mascot import _core
    real = _core.train

    def patched(*a):
        return real(*a[:-1], boom)
    monkeypatch.setattr(_core, "train", patched)
    with pytest.raises(KeyboardInterrupt):
        mascot.MF(groups=4, k=4, epochs=5).fit(tiny[:3])
    assert len(calls) == 1


def test_synthetic_api():
    d = data.synthetic("synthetic-ml10m", scale=0.01, seed=3)
    assert len(d.train) > 0 and len(d.test) > 0
    d2 = data.synthetic("synthetic-ml10m:0.01", seed=3)
    assert np.array_equal(d.train.users, d2.train.users)
    with pytest.raises(ValueError, match="synthetic-"):
        data.synthetic("synthetic-nope")


def test_type_stub_covers_the_extension():
    """_core.pyi (nanobind stubgen) names every public function and class of the extension."""
    import pathlib
    stub = (pathlib.Path(mascot.__file__).parent / "_core.pyi").read_text()
    public = [n for n in dir(mascot._core) if not n.startswith("_")]
    missing = [n for n in public if f"def {n}(" not in stub and f"class {n}" not in stub and f"{n}:" not in stub]
    assert not missing, f"regenerate the stub (python -m nanobind.stubgen -m mascot._core): {missing}"
