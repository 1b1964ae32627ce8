"""The estimator API: ``mascot.MF``.

``fit`` converts its input to :class:`mascot.data.Ratings`, builds the core's validated
``TrainConfig`` and calls ``_core.train`` (GIL released while training); the core returns P and
Q in original id order plus the JSON run report, parsed into ``report_``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .data import Ratings, as_ratings, _ids

_PARAMS = ("k", "method", "epochs", "lr", "decay", "lambda_p", "lambda_q", "init_std",
           "user_groups", "item_groups", "period", "sample_ratio", "threshold", "warmup",
           "order", "rounding", "threads", "seed", "device", "method_params")


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
                 method_params: dict | None = None):
        self.k, self.method, self.epochs, self.lr, self.decay = k, method, epochs, lr, decay
        self.lambda_p, self.lambda_q, self.init_std = lambda_p, lambda_q, init_std
        self.user_groups = groups if user_groups is None else user_groups
        self.item_groups = groups if item_groups is None else item_groups
        self.period, self.sample_ratio, self.threshold, self.warmup = period, sample_ratio, threshold, warmup
        self.order, self.rounding = order, rounding
        self.threads, self.seed, self.device, self.verbose = threads, seed, device, verbose
        self.method_params = dict(method_params or {})
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
    def fit(self, train: Any, test: Any = None, name: str = "") -> "MF":
        """Trains on ``train`` ((users, items, ratings) arrays, a DataFrame, a Ratings or a
        path), evaluating test RMSE after every epoch when ``test`` is given.  Test ratings
        whose user or item never occurs in training are dropped and counted in the report."""
        tr = as_ratings(train)
        te = as_ratings(test) if test is not None else None
        cfg = self._config()

        def on_epoch(rec: dict) -> bool:
            if self.verbose:
                rmse = "-" if rec["test_rmse"] is None else f"{rec['test_rmse']:.6f}"
                print(f"epoch {rec['epoch'] + 1:4d}  lr {rec['lr']:.6f}  train {rec['train_seconds']:.3f}s  "
                      f"eval {rec['eval_seconds']:.3f}s  test_rmse {rmse}", file=sys.stderr, flush=True)
            return True  # a pending Ctrl-C raises KeyboardInterrupt inside this callback

        P, Q, report = _core.train(
            cfg, self.device, int(self.threads), int(self.seed), tr.users, tr.items, tr.ratings,
            tr.n_users, tr.n_items,
            None if te is None else te.users, None if te is None else te.items,
            None if te is None else te.ratings, name, on_epoch)
        self.P_, self.Q_, self.report_ = P, Q, json.loads(report)
        return self

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
        meta = _read_model_json(path, P, Q)
        params = {p: v for p, v in meta["params"].items() if p in _PARAMS}
        params.setdefault("k", int(P.shape[1]))
        params.setdefault("method", meta.get("method", "fp32"))
        if params["k"] != P.shape[1]:
            raise ValueError(f"{path / 'model.json'}: params.k = {_short_json(params['k'])} but P.npy has k={P.shape[1]}")
        try:
            m = cls(**params)
        except (TypeError, ValueError) as e:  # a hand-edited or foreign model.json
            raise ValueError(f"{path / 'model.json'}: invalid 'params' ({_first_line(e)})") from None
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


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _short_json(v: Any) -> str:
    try:
        s = json.dumps(v)
    except (ValueError, RecursionError):
        s = type(v).__name__
    return s if len(s) <= 40 else s[:40] + "..."


def _read_model_json(path: Path, P: np.ndarray, Q: np.ndarray) -> dict:
    """Reads and checks path/model.json against the loaded P and Q; every problem is one
    ValueError (or OSError for I/O) naming the file.  The bytes may be anything: the model
    directory is user input (fuzzed by fuzz/python/model_json.py)."""
    f = path / "model.json"
    try:
        raw = f.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: model.json is missing") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{f}: not valid JSON (not UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{f}: not valid JSON (nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != "mascot-model":
        raise ValueError(f"{f}: not a MASCOT model (format tag missing)")
    for key, n in (("n_users", P.shape[0]), ("n_items", Q.shape[0]), ("k", P.shape[1])):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v != n:
            raise ValueError(f"{path}: model.json shapes do not match P.npy/Q.npy "
                             f"({key} is {_short_json(v)} in model.json, {n} in the .npy files)")
    if not isinstance(meta.get("params", {}), dict) or not isinstance(meta.get("method", "fp32"), str):
        raise ValueError(f"{f}: invalid 'params' or 'method' (expected an object and a string)")
    meta.setdefault("params", {})
    return meta
