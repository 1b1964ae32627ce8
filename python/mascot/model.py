"""The estimator API: ``mascot.MF``.

``fit`` converts its input to :class:`mascot.data.Ratings`, builds the core's validated
``TrainConfig`` and calls ``_core.train`` (GIL released while training); the core returns P and
Q in original id order plus the JSON run report, parsed into ``report_``.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .data import Ratings, as_ratings, _ids

_PARAMS = ("k", "method", "epochs", "lr", "decay", "lambda_p", "lambda_q", "init_std",
           "user_groups", "item_groups", "period", "sample_ratio", "threshold", "warmup",
           "order", "rounding", "threads", "seed", "device", "method_params", "deterministic")


class MF:
    """Matrix factorization trained by SGD with low-precision latent vectors.

    Parameters mirror ``mascot_train`` (see ``mascot_train --help``); ``groups`` sets both
    ``user_groups`` and ``item_groups``; ``period``, ``sample_ratio``, ``threshold`` and
    ``warmup`` are g-switching's pi, gamma, theta and w (DESIGN.md §3); ``method_params`` sets
    the competing methods' settings by name (``mascot._core.CompetingParams``), e.g.
    ``{"loss_scale": "dynamic"}`` for mpt or ``{"muppet_resolution": 3}``.  Invalid values raise ``ValueError`` here, before
    any data is touched.
    """

    def __init__(self, k: int = 128, method: str = "fp32", epochs: int = 50, lr: float = 0.01,
                 decay: float = 0.1, lambda_p: float = 0.01, lambda_q: float = 0.015,
                 init_std: float = 0.01, groups: int = 100, user_groups: int | None = None,
                 item_groups: int | None = None, period: int = 2, sample_ratio: float = 0.05,
                 threshold: float = 20.0, warmup: int = 5, order: str = "shuffle", rounding: str = "nearest",
                 threads: int = 0, seed: int = 42, device: str = "auto", verbose: bool = False,
                 method_params: dict | None = None, deterministic: bool = False):
        self.k, self.method, self.epochs, self.lr, self.decay = k, method, epochs, lr, decay
        self.lambda_p, self.lambda_q, self.init_std = lambda_p, lambda_q, init_std
        self.user_groups = groups if user_groups is None else user_groups
        self.item_groups = groups if item_groups is None else item_groups
        self.period, self.sample_ratio, self.threshold, self.warmup = period, sample_ratio, threshold, warmup
        self.order, self.rounding = order, rounding
        self.threads, self.seed, self.device, self.verbose = threads, seed, device, verbose
        self.method_params = dict(method_params or {})
        self.deterministic = bool(deterministic)
        if self.deterministic:  # one CPU thread, fixed order: bit-for-bit reproducible
            if threads not in (0, 1):
                raise ValueError(f"deterministic=True runs one thread (got threads={threads!r})")
            if device == "cuda":
                raise ValueError("deterministic=True runs on the CPU (got device='cuda')")
        self._config()  # validate now
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {device!r} (valid: auto, cpu, cuda)")
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (got {threads!r})")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0 (got {seed!r})")
        self.P_: np.ndarray | None = None
        self.Q_: np.ndarray | None = None
        self.report_: dict | None = None

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in _PARAMS}

    def _config(self) -> "_core.TrainConfig":
        c = _core.TrainConfig()
        try:
            for name in ("k", "epochs", "user_groups", "item_groups", "period", "warmup"):
                setattr(c, name, _as_int(getattr(self, name), name))
            for name in ("lr", "decay", "lambda_p", "lambda_q", "init_std", "sample_ratio", "threshold"):
                setattr(c, name, float(getattr(self, name)))
        except TypeError as e:  # nanobind rejects the type
            raise ValueError(str(e)) from None
        c.method = self.method
        c.order = self.order
        c.rounding = self.rounding
        p = c.competing
        for name, value in self.method_params.items():
            if name.startswith("_") or not hasattr(p, name):
                raise ValueError(f"unknown method parameter {name!r} (see mascot._core.CompetingParams)")
            if name == "loss_scale" and value == "dynamic":
                p.dynamic_loss_scale = True
                continue
            try:
                setattr(p, name, value)
            except TypeError as e:
                raise ValueError(f"method parameter {name}: {e}") from None
        c.competing = p
        c.validate()
        return c

    # ------------------------------------------------------------------ training
    def fit(self, train: Any, test: Any = None, name: str = "", checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 1) -> "MF":
        """Trains on ``train`` ((users, items, ratings) arrays, a DataFrame, a Ratings or a
        path), evaluating test RMSE after every epoch when ``test`` is given.  Test ratings
        whose user or item never occurs in training are dropped and counted in the report.

        ``checkpoint=DIR`` writes the full training state to DIR after every
        ``checkpoint_every`` epochs and after the last (docs/checkpoint.md); a Ctrl-C then stops
        at the end of the epoch, writes a final checkpoint and raises KeyboardInterrupt saying
        how to continue: ``MF.resume(DIR, train, test)``."""
        if checkpoint is not None:
            return self._fit_checkpointed(train, test, name, os.fspath(checkpoint), checkpoint_every)
        tr = as_ratings(train)
        te = as_ratings(test) if test is not None else None
        cfg = self._config()

        def on_epoch(rec: dict) -> bool:
            if self.verbose:
                rmse = "-" if rec["test_rmse"] is None else f"{rec['test_rmse']:.6f}"
                print(f"epoch {rec['epoch'] + 1:4d}  lr {rec['lr']:.6f}  train {rec['train_seconds']:.3f}s  "
                      f"eval {rec['eval_seconds']:.3f}s  test_rmse {rmse}", file=sys.stderr, flush=True)
            return True  # a pending Ctrl-C raises KeyboardInterrupt inside this callback

        threads, device = self._threads_device()
        P, Q, report = _core.train(
            cfg, device, threads, int(self.seed), tr.users, tr.items, tr.ratings,
            tr.n_users, tr.n_items,
            None if te is None else te.users, None if te is None else te.items,
            None if te is None else te.ratings, name, on_epoch)
        self.P_, self.Q_, self.report_ = P, Q, json.loads(report)
        return self

    def _threads_device(self) -> tuple[int, str]:
        return (1, "cpu") if self.deterministic else (int(self.threads), self.device)

    def _fit_checkpointed(self, train: Any, test: Any, name: str, ckpt: str, every: int) -> "MF":
        every = _as_int(every, "checkpoint_every")
        if every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 (got {every})")
        tr = as_ratings(train)
        te = as_ratings(test) if test is not None else None
        cfg = self._config()
        threads, device = self._threads_device()
        with _interruptible(self.verbose) as intr:
            P, Q, report = _core.train_checkpointed(
                cfg, device, threads, int(self.seed), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                None if te is None else te.users, None if te is None else te.items,
                None if te is None else te.ratings, name, intr.on_epoch, ckpt, every, self.deterministic)
        self.P_, self.Q_, self.report_ = P, Q, json.loads(report)
        _raise_if_stopped(self.report_, ckpt)
        return self

    @classmethod
    def resume(cls, checkpoint: str | os.PathLike, train: Any, test: Any = None, checkpoint_every: int | None = None,
               verbose: bool = False) -> "MF":
        """Continues the run saved in ``checkpoint`` (by ``fit(..., checkpoint=DIR)`` or
        ``mascot_train --checkpoint DIR``) on the same ``train`` / ``test`` data (checked against
        the checkpoint's fingerprint) and returns the fitted model.  The parameters come from the
        checkpoint; further checkpoints go to the same directory.  With ``deterministic=True``
        the result equals the uninterrupted run bit for bit."""
        ckpt = os.fspath(checkpoint)
        info = _core.read_checkpoint(ckpt, verify=False)  # checksums are verified while loading
        every = 0 if checkpoint_every is None else _as_int(checkpoint_every, "checkpoint_every")
        if checkpoint_every is not None and every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 (got {every})")
        tr = as_ratings(train)
        te = as_ratings(test) if test is not None else None
        with _interruptible(verbose) as intr:
            P, Q, report = _core.resume(
                ckpt, tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                None if te is None else te.users, None if te is None else te.items,
                None if te is None else te.ratings, intr.on_epoch, every)
        rep = json.loads(report)
        m = cls(**_params_from_report(rep, info), verbose=verbose)
        m.P_, m.Q_, m.report_ = P, Q, rep
        _raise_if_stopped(rep, ckpt)
        return m

    def memory_plan(self, train: Any = None, test: Any = None, *, dataset: str | None = None) -> dict:
        """The job's memory plan without training or allocating: a dict with ``items`` (name,
        bytes, device, phases), ``host_peak``, ``host_available``, ``device_peak``,
        ``device_available``, ``fits``, ``refusal`` (the message fit() would raise as
        MemoryError) and ``text`` (the table ``mascot_train --dry-run`` prints).  Give the data
        (``train``, ``test``: anything ``fit`` accepts) or a synthetic ``dataset`` name
        ("synthetic-netflix:0.1"), which is planned from its shape without generating it."""
        if (train is None) == (dataset is None):
            raise ValueError("memory_plan needs either train data or dataset=NAME")
        if dataset is not None:
            spec = _core.parse_synthetic_spec(dataset)
            if spec is None:
                raise ValueError(f"unknown synthetic dataset {dataset!r} (valid: {', '.join(_core.synthetic_names())})")
            name, scale = spec
            sh = _core.synthetic_shape(name)
            n_ratings = int(sh["n_ratings"] * scale)
            n_test = int(n_ratings * sh["test_fraction"])
            shape = (int(sh["n_users"] * scale ** 0.5), int(sh["n_items"] * scale ** 0.5), n_ratings - n_test, n_test)
            loaded = False
        else:
            tr = as_ratings(train)
            te = as_ratings(test) if test is not None else None
            shape = (tr.n_users, tr.n_items, len(tr), 0 if te is None else len(te))
            loaded = True
        threads, device = self._threads_device()
        js, text = _core.memory_plan(self._config(), device, threads, *shape, loaded)
        plan = json.loads(js)
        plan["text"] = text
        return plan

    # ------------------------------------------------------------------ use
    @property
    def P(self) -> np.ndarray:
        """User factors (n_users x k, float32, original ids)."""
        self._check_fitted()
        return self.P_

    @property
    def Q(self) -> np.ndarray:
        """Item factors (n_items x k, float32, original ids)."""
        self._check_fitted()
        return self.Q_

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted ratings p_u . q_i for parallel arrays of original ids."""
        self._check_fitted()
        u = _ids(np.atleast_1d(users), "users")
        i = _ids(np.atleast_1d(items), "items")
        if u.shape != i.shape:
            raise ValueError(f"users and items must have the same length (got {len(u)} and {len(i)})")
        if len(u) and u.max() >= self.P_.shape[0]:
            raise ValueError(f"user id {int(u.max())} is not in the model (n_users={self.P_.shape[0]})")
        if len(i) and i.max() >= self.Q_.shape[0]:
            raise ValueError(f"item id {int(i.max())} is not in the model (n_items={self.Q_.shape[0]})")
        return np.einsum("ij,ij->i", self.P_[u], self.Q_[i], dtype=np.float32)

    def rmse(self, data: Any) -> float:
        """Root-mean-square error on a rating set (all ids must be in the model)."""
        r = as_ratings(data)
        if len(r) == 0:
            raise ValueError("rmse needs at least one rating")
        e = self.predict(r.users, r.items).astype(np.float64) - r.ratings
        return float(np.sqrt(np.mean(e * e)))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path/{P.npy,Q.npy,model.json}`` atomically (whole directory renamed in)."""
        self._check_fitted()
        meta = {"format": "mascot-model", "version": 1, "mascot_version": _core.__version__,
                "n_users": int(self.P_.shape[0]), "n_items": int(self.Q_.shape[0]),
                "k": int(self.P_.shape[1]), "method": self.method, "id_order": "original",
                "params": self.get_params(), "report": self.report_}
        _core.save_model(os.fspath(path), np.ascontiguousarray(self.P_), np.ascontiguousarray(self.Q_),
                         json.dumps(meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MF":
        """Loads a model saved by ``MF.save`` or ``mascot_train --save``."""
        path = Path(path)
        P, Q = _core.load_model(os.fspath(path))
        try:
            meta = json.loads((path / "model.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: model.json is missing") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path / 'model.json'}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != "mascot-model":
            raise ValueError(f"{path / 'model.json'}: not a MASCOT model (format tag missing)")
        if meta.get("k") != P.shape[1] or meta.get("n_users") != P.shape[0] or meta.get("n_items") != Q.shape[0]:
            raise ValueError(f"{path}: model.json shapes do not match P.npy/Q.npy")
        params = dict(meta.get("params") or {})
        params.setdefault("k", int(P.shape[1]))
        params.setdefault("method", meta.get("method", "fp32"))
        params = {p: v for p, v in params.items() if p in _PARAMS}
        m = cls(**params)
        m.P_, m.Q_, m.report_ = P, Q, meta.get("report")
        return m

    def _check_fitted(self) -> None:
        if self.P_ is None:
            raise RuntimeError("this MF model is not fitted yet: call fit() or MF.load()")

    def __repr__(self) -> str:
        return f"MF(k={self.k}, method={self.method!r}, epochs={self.epochs}, device={self.device!r})"


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (got {v!r})")
    return int(v)


class _interruptible:
    """Context manager giving the on_epoch callback of a checkpointed run.  While it is active,
    the first Ctrl-C (SIGINT, main thread only) just asks the core to stop after the current
    epoch, so the final checkpoint gets written; the previous handler is back for a second one."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.stopped = [False]
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                self.stopped[0] = True
                signal.signal(signal.SIGINT, self._old)
            self._old = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None and signal.getsignal(signal.SIGINT) is not self._old:
            signal.signal(signal.SIGINT, self._old)
        return False

    def on_epoch(self, rec: dict) -> bool:
        if self.verbose:
            rmse = "-" if rec["test_rmse"] is None else f"{rec['test_rmse']:.6f}"
            print(f"epoch {rec['epoch'] + 1:4d}  lr {rec['lr']:.6f}  train {rec['train_seconds']:.3f}s  "
                  f"eval {rec['eval_seconds']:.3f}s  test_rmse {rmse}", file=sys.stderr, flush=True)
        return not self.stopped[0]


def _raise_if_stopped(report: dict, ckpt: str) -> None:
    if report.get("totals", {}).get("interrupted"):
        n = report.get("totals", {}).get("epochs_run")
        raise KeyboardInterrupt(f"training interrupted after epoch {n}; checkpoint saved in {ckpt}; "
                                f"continue with MF.resume({ckpt!r}, train, test)")


def _params_from_report(rep: dict, info: dict) -> dict:
    """MF constructor parameters of a checkpointed run (its report's config)."""
    c = rep["config"]
    params = {name: c[name] for name in ("k", "method", "epochs", "lr", "decay", "lambda_p", "lambda_q",
                                         "init_std", "user_groups", "item_groups", "period", "sample_ratio",
                                         "threshold", "warmup", "order", "rounding")}
    if "competing" in c:
        mp = dict(c["competing"])
        if mp.pop("dynamic_loss_scale", False):
            mp["loss_scale"] = "dynamic"
        params["method_params"] = mp
    params.update(threads=int(info["threads"]), seed=int(info["seed"]), device="cpu",
                  deterministic=bool(info["deterministic"]))
    if params["deterministic"]:
        params["threads"] = 1
    return params
