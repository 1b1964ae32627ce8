"""The Python API: mascot.MF, mascot.data, CUDA queries."""
import numpy as np
import pytest

import mascot
from backends import backend_k
from mascot import data


def test_module_surface():
    assert isinstance(mascot.HAS_CUDA, bool)
    if not mascot.HAS_CUDA:  # a CPU-only build sees no device, whatever the machine has
        assert mascot.cuda_device_count() == 0
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
    """_core.pyi (nanobind stubgen) names every public function and class of the extension, and
    every test hook of its submodule _core._testing (in the stub's class _testing)."""
    import pathlib
    stub = (pathlib.Path(mascot.__file__).parent / "_core.pyi").read_text()
    public = [n for n in dir(mascot._core) if not n.startswith("_")]
    missing = [n for n in public if f"def {n}(" not in stub and f"class {n}" not in stub and f"{n}:" not in stub]
    hooks = [n for n in dir(mascot._core._testing) if not n.startswith("_")]
    testing = stub[stub.index("class _testing:"):]
    missing += [f"_testing.{n}" for n in hooks if f"def {n}(" not in testing]
    assert not missing, f"regenerate the stub (python scripts/make_stub.py): {missing}"


def test_test_hooks_are_not_in_the_production_namespace():
    hooks = {n for n in dir(mascot._core._testing) if not n.startswith("_")}
    assert {"reorder", "init_factors", "visit_order", "mixed_sgd_pass", "afp_rule", "mpt_loss_scale"} <= hooks
    assert not hooks & set(dir(mascot._core))


# ---------------------------------------------------------------- audit regressions
U3, I3, R3 = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), np.array([4.0, 3, 5, 2])


def _tiny_mf(**kw):
    return mascot.MF(k=4, epochs=1, groups=1, **kw)


def _one_line_error(fn, *words, exc=ValueError):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and "incompatible function arguments" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def test_dataframe_columns_are_taken_by_name():
    """audit 2: a frame whose columns are not user/item/rating in that order is never read by
    position when names say otherwise."""
    pd = pytest.importorskip("pandas")
    r = data.as_ratings(pd.DataFrame({"item": I3, "user": U3, "score": R3}))
    assert r.users.tolist() == U3.tolist() and r.items.tolist() == I3.tolist() and r.ratings.tolist() == R3.tolist()
    r = data.as_ratings(pd.DataFrame({"rating": R3, "item": I3, "user": U3}))
    assert r.users.tolist() == U3.tolist() and r.ratings.tolist() == R3.tolist()
    r = data.as_ratings(pd.DataFrame({"ts": [9, 9, 9, 9], "user": U3, "item": I3, "rating": R3}))
    assert r.users.tolist() == U3.tolist() and r.ratings.tolist() == R3.tolist()
    assert data.as_ratings(pd.DataFrame({"u": U3, "i": I3, "r": R3})).users.tolist() == U3.tolist()  # positional
    _one_line_error(lambda: data.as_ratings(pd.DataFrame({"timestamp": [1, 2, 3, 4], "user": U3, "item": I3,
                                                          "score": R3})), "user, item, rating", "'rating'")
    _one_line_error(lambda: data.as_ratings(pd.DataFrame({"rating": R3, "a": I3, "b": U3})), "user, item, rating")
    _one_line_error(lambda: data.as_ratings(pd.DataFrame({"a": U3, "b": I3, "c": R3, "d": R3})), "user, item, rating")
    _one_line_error(lambda: mascot.MF(k=4).fit(pd.DataFrame(np.c_[U3, U3, R3], columns=["user", "user", "rating"])),
                    "'user' appears more than once")


def test_flags_must_be_bools():
    """audit 5: deterministic (like grad_stats and verbose) is a real bool; a model.json
    "deterministic": "false" is refused, not loaded as deterministic."""
    _one_line_error(lambda: mascot.MF(deterministic="no"), "deterministic", "'no'")
    _one_line_error(lambda: mascot.MF(deterministic=1), "deterministic")
    _one_line_error(lambda: mascot.MF(verbose="x"), "verbose")
    m = mascot.MF(deterministic=np.bool_(True), grad_stats=np.bool_(False))
    assert m.deterministic is True and m.grad_stats is False
    assert mascot.MF(deterministic=False).deterministic is False


def test_parameter_types_follow_one_rule(tmp_path):
    """audit 12 and 17: ints are int / NumPy integers (never bool), numbers also floats (never bool
    or str), ranges the core cannot hold are refused in the constructor, one line naming the
    parameter, never nanobind's "incompatible function arguments"."""
    import os
    assert mascot.MF(threads=np.int64(2), k=np.int32(8), lr=np.float32(0.05), epochs=np.uint8(3)).threads == 2
    assert type(mascot.MF(k=np.int64(8)).k) is int and mascot.MF(lr=1).lr == 1.0
    for kw, words in [({"threads": True}, ["threads", "integer"]), ({"k": True}, ["k"]), ({"k": "32"}, ["k"]),
                      ({"lr": "0.1"}, ["lr", "number"]), ({"lr": True}, ["lr"]), ({"lr": None}, ["lr"]),
                      ({"threads": 10**6}, ["threads", "1024"]), ({"k": 2**40}, ["k", "4096"]),
                      ({"epochs": 2**40}, ["epochs"]), ({"seed": 2**64}, ["seed"]), ({"seed": -1}, ["seed"]),
                      ({"method": None}, ["method", "string"]), ({"order": 3}, ["order"]),
                      ({"groups": "4"}, ["groups"]), ({"random_fp16": [1]}, ["random_fp16"]),
                      ({"method": "mpt", "method_params": {"loss_scale": "x"}}, ["loss_scale", "'x'"]),
                      ({"method": "mpt", "method_params": {"loss_scale_window": 2**40}}, ["loss_scale_window"]),
                      ({"method": "muppet", "method_params": {"muppet_word_lengths": "abc"}}, ["muppet_word_lengths"]),
                      ({"method_params": [("a", 1)]}, ["method_params"])]:
        _one_line_error(lambda kw=kw: mascot.MF(**kw), *words)
    m = _tiny_mf().fit((U3, I3, R3))
    m.threads = 2.0  # changed after construction: checked again by fit
    _one_line_error(lambda: m.fit((U3, I3, R3)), "threads")
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), name=5), "name")
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), checkpoint=5), "checkpoint")
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), checkpoint=tmp_path / "c", checkpoint_every=2**40),
                    "checkpoint_every")
    _one_line_error(lambda: _tiny_mf().memory_plan(dataset=5), "dataset")
    _one_line_error(lambda: data.synthetic("synthetic-ml10m", scale=0.001, seed=-1), "seed")
    _one_line_error(lambda: data.synthetic("synthetic-ml10m", scale=0.001, threads=-1), "threads")
    _one_line_error(lambda: data.synthetic("synthetic-ml10m", scale="0.1"), "scale")
    _one_line_error(lambda: data.synthetic(None), "name")
    fitted = _tiny_mf().fit((U3, I3, R3))
    _one_line_error(lambda: fitted.save(5), "path")
    _one_line_error(lambda: fitted.export_libmf(3), "path")
    fitted.export_libmf(os.fsencode(tmp_path / "m.libmf"))
    data.write_mrat(os.fsencode(tmp_path / "r.mrat"), data.Ratings.from_arrays(U3, I3, R3))
    assert data.read(os.fsencode(tmp_path / "r.mrat")).users.tolist() == U3.tolist()
    fitted.save(os.fsencode(tmp_path / "bytes"))  # a bytes path is a path
    assert mascot.MF.load(os.fsencode(tmp_path / "bytes")).P.shape == (3, 4)
    m = _tiny_mf(method="mpt", method_params={"loss_scale": np.float32(512), "loss_scale_window": np.int64(10)})
    m.fit((U3, I3, R3)).save(tmp_path / "np")  # NumPy values in method_params are saved as JSON numbers
    assert mascot.MF.load(tmp_path / "np").method_params == {"loss_scale": 512.0, "loss_scale_window": 10}


def test_method_params_are_the_methods_known_fields():
    """audit 11 and 17: only CompetingParams' fields (no methods such as validate), and only
    those of the chosen method."""
    msg = _one_line_error(lambda: mascot.MF(method="mpt", method_params={"validate": 1}), "'validate'", "loss_scale")
    assert "unknown method parameter" in msg
    _one_line_error(lambda: mascot.MF(method="mpt", method_params={"__class__": 1}), "'__class__'")
    _one_line_error(lambda: mascot.MF(method="fp32", method_params={"loss_scale": 4.0}), "loss_scale", "mpt", "fp32")
    _one_line_error(lambda: mascot.MF(method="afp", method_params={"muppet_resolution": 2}), "muppet_resolution",
                    "afp")
    m = mascot.MF(method="muppet", method_params={"muppet_word_lengths": np.array([8, 12]), "muppet_resolution": 2})
    assert list(m._config().competing.muppet_word_lengths) == [8, 12]
    # the declared list is exactly CompetingParams' fields
    valid = [n for names in mascot.model._METHOD_PARAMS.values() for n in names]
    fields = [n for n in dir(mascot._core.CompetingParams()) if not n.startswith("_")
              and not callable(getattr(mascot._core.CompetingParams(), n))]
    assert sorted(valid) == sorted(fields)


def test_messages_name_the_python_side():
    """audit 16: 1-D user_ids, finite loss_scale, the test set named, groups= not --groups."""
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), user_ids=np.arange(6).reshape(2, 3)),
                    "user_ids must be one-dimensional", "(2, 3)")
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), item_ids=5), "item_ids must be one-dimensional")
    _one_line_error(lambda: mascot.MF(method="mpt", method_params={"loss_scale": float("inf")}), "loss_scale",
                    "finite")
    _one_line_error(lambda: mascot.MF(method="mpt", method_params={"loss_scale": 1e39}), "loss_scale", "finite")
    _one_line_error(lambda: _tiny_mf().fit((U3, I3, R3), (np.array([0]), np.array([0]), np.array([np.nan]))),
                    "test set", "finite")
    msg = _one_line_error(lambda: mascot.MF(k=4, epochs=1, groups=10, method="mascot").fit((U3, I3, R3)),
                          "user_groups must be <= the number of users", "groups=")
    assert "--" not in msg
