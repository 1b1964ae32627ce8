"""mascot.ALS: alternating least squares (issue 21, the cuMF_ALS paper) for explicit ratings and
implicit feedback, with the conventions of the `implicit` package and scikit-learn.

Data flow: ``fit(user_items)`` (a scipy.sparse CSR matrix users x items, or the triplet forms
``MF.fit`` takes) -> dense int32 / float32 triplets -> ``_core.train`` with method "als" (the
core's driver; its ALS backend builds the CSR views, the initial factors and runs the solves, on
the CPU or the CUDA device) -> one iteration per epoch -> ``user_factors`` / ``item_factors``
(float32, the dense ids of the input) -> ``recommend`` / ``similar_items`` (batched top-N,
mascot._inference.top_n) and ``save`` / ``load`` (the model directory of MF: P.npy, Q.npy, model.json).

The model (mascot/detail/als.h, tests/python/reference_als.py): explicit ratings minimise
sum (r - p.q)^2 + lambda-terms; implicit feedback is Hu, Koren and Volinsky's: every
(user, item) pair has preference 1 if observed and 0 otherwise, with confidence
c = 1 + alpha r.  (The `implicit` package's alpha multiplies instead: its confidence is alpha r,
so for 0/1 data its alpha equals 1 + ours; benchmarks/implicit_compare.py passes them so.)
Regularisation: "weighted" lambda n_u (Zhou et al., the paper's) or "plain" lambda; "auto" is
weighted for explicit and plain for implicit data, as each literature does.

Training runs in the core's epoch driver (cpp/src/trainer.cc) with the ALS backend as its plug-in
(cpp/src/als/als_backend.cc): ``fit`` builds a TrainConfig with method "als" (its settings are
the als rows of the core's parameter table) and calls ``_core.train``, as ``MF.fit`` does; the
per-iteration records come from the driver's epoch callback.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import _core
from . import _inference as _use
from ._ratings import Ratings, as_ratings

__all__ = ["ALS", "sparse_to_ratings"]

_SOLVERS = ("cg", "cholesky")
_DTYPES = ("float32", "float16")
_REG_MODES = ("auto", "weighted", "plain")
_CG_FORMS = ("auto", "hermitian", "matrix_free")


def _is_sparse(x: Any) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # scipy is optional: without it nothing is a sparse matrix
        return False
    return sp.issparse(x)


def sparse_to_ratings(m: Any, what: str = "user_items") -> Ratings:
    """A scipy.sparse CSR matrix (rows x columns) as dense-id triplets (duplicates summed, shape
    kept as n_users x n_items).  Any other sparse format is a ValueError: convert it with
    ``.tocsr()`` (as `implicit` asks too).  NaN or infinite values are a ValueError."""
    if not _is_sparse(m):
        raise TypeError(f"{what} must be a scipy.sparse CSR matrix (got {type(m).__name__})")
    if m.format != "csr":
        raise ValueError(f"{what} must be a scipy.sparse CSR matrix (users x items), got format {m.format!r}: "
                         "convert it with .tocsr()")
    if m.ndim != 2:
        raise ValueError(f"{what} must be two-dimensional (got shape {m.shape})")
    m = m.copy()
    m.sum_duplicates()
    coo = m.tocoo()
    vals = np.asarray(coo.data)
    if vals.dtype.kind not in "fiub":
        raise ValueError(f"{what} must hold numbers (got dtype {vals.dtype})")
    vals = vals.astype(np.float32)
    bad = ~np.isfinite(vals)
    if bad.any():
        j = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{what} has a non-finite value {vals[j]} at ({int(coo.row[j])}, {int(coo.col[j])})")
    return Ratings(coo.row.astype(np.int32), coo.col.astype(np.int32), vals, int(m.shape[0]), int(m.shape[1]))


def _as_train(obj: Any) -> Ratings:
    return sparse_to_ratings(obj) if _is_sparse(obj) else as_ratings(obj)


def _check_int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}] (got {v!r})")
    return int(v)


def _check_float(v: Any, name: str, positive: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
            or (positive and v <= 0) or (not positive and v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'} (got {v!r})")
    return float(v)


def _check_choice(v: Any, name: str, choices: tuple) -> str:
    if isinstance(v, type) or (hasattr(v, "name") and not isinstance(v, str)):  # np.float16 / np.dtype
        v = np.dtype(v).name
    if v not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))} (got {v!r})")
    return str(v)


class ALS:
    """Alternating least squares on the CPU (multithreaded, vectorised) or the CUDA device.

    Parameters (checked here; each bad value is a one-line ValueError naming it):
      factors          latent dimension k
      regularization   lambda of users and items (> 0)
      alpha            implicit confidence c = 1 + alpha r (> 0)
      iterations       ALS iterations (users then items each)
      solver           "cg" (the paper's approximate conjugate gradient, ``cg_steps`` steps
                       warm-started from the previous value) or "cholesky" (exact)
      dtype            factor storage: "float32" or "float16" (rounded to nearest; computed in
                       float32)
      implicit         implicit feedback (True, the default) or explicit ratings
      threads          CPU threads (0: all cores)
      device           "auto", "cpu" or "cuda"
      hermitian_dtype  "float16" stores the CG solver's matrices A_u in FP16 (the paper's
                       Solution 4); "float32" (default)
      regularization_mode  "auto", "weighted" (lambda n_u) or "plain" (lambda)
      init_std         initial factors N(0, init_std^2) (> 0)
      random_state     seed of the initial factors
      cg_form          "auto", "hermitian" or "matrix_free" (the CPU's two forms of CG's
                       products; the CUDA device always builds A_u)
    """

    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0, iterations: int = 15,
                 solver: str = "cg", cg_steps: int = 3, dtype: Any = "float32", implicit: bool = True,
                 threads: int = 0, device: str = "auto", *, hermitian_dtype: Any = "float32",
                 regularization_mode: str = "auto", init_std: float = 0.01, random_state: int = 42,
                 cg_form: str = "auto", verbose: bool = False):
        self.factors = _check_int(factors, "factors", 1, 4096)
        self.regularization = _check_float(regularization, "regularization")
        self.alpha = _check_float(alpha, "alpha")
        self.iterations = _check_int(iterations, "iterations", 0, 1_000_000)
        self.solver = _check_choice(solver, "solver", _SOLVERS)
        self.cg_steps = _check_int(cg_steps, "cg_steps", 1, 1024)
        self.dtype = _check_choice(dtype, "dtype", _DTYPES)
        if not isinstance(implicit, (bool, np.bool_)):
            raise ValueError(f"implicit must be True or False (got {implicit!r})")
        self.implicit = bool(implicit)
        self.threads = _check_int(threads, "threads", 0, 1024)
        self.device = _check_choice(device, "device", ("auto", "cpu", "cuda"))
        self.hermitian_dtype = _check_choice(hermitian_dtype, "hermitian_dtype", _DTYPES)
        self.regularization_mode = _check_choice(regularization_mode, "regularization_mode", _REG_MODES)
        self.init_std = _check_float(init_std, "init_std")
        self.random_state = _check_int(random_state, "random_state", 0, 2 ** 63 - 1)
        self.cg_form = _check_choice(cg_form, "cg_form", _CG_FORMS)
        if not isinstance(verbose, (bool, np.bool_)):
            raise ValueError(f"verbose must be True or False (got {verbose!r})")
        self.verbose = bool(verbose)
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self.report_: dict | None = None
        self.seen_: _use.SeenPairs | None = None

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict:
        keys = ("factors", "regularization", "alpha", "iterations", "solver", "cg_steps", "dtype", "implicit",
                "threads", "device", "hermitian_dtype", "regularization_mode", "init_std", "random_state",
                "cg_form", "verbose")
        return {k: getattr(self, k) for k in keys}

    @property
    def weighted(self) -> bool:
        """Whether lambda is weighted by the row's count (regularization_mode, "auto" resolved)."""
        return self.regularization_mode == "weighted" or (self.regularization_mode == "auto" and not self.implicit)

    # ------------------------------------------------------------------ training
    def _core_config(self) -> tuple[_core.TrainConfig, _core.Context]:
        """The core's training configuration of these parameters (method als: k, epochs =
        iterations, lambda_p = lambda_q = regularization, init_std, and the als_* settings of
        the parameter table) and its context (device, threads, seed = random_state)."""
        c = _core.TrainConfig()
        c.method, c.k, c.epochs = "als", self.factors, max(self.iterations, 1)
        c.lambda_p = c.lambda_q = self.regularization
        c.init_std = self.init_std
        a = _core.CompetingParams()
        a.implicit, a.alpha, a.als_solver, a.cg_steps = self.implicit, self.alpha, self.solver, self.cg_steps
        a.als_regularization, a.cg_form = self.regularization_mode, self.cg_form
        a.als_factors = "fp16" if self.dtype == "float16" else "fp32"
        a.als_hermitian = "fp16" if self.hermitian_dtype == "float16" else "fp32"
        c.competing = a
        c.validate()
        ctx = _core.Context()
        ctx.device, ctx.threads, ctx.seed = self.device, self.threads, self.random_state
        ctx.validate()
        return c, ctx

    def fit(self, user_items: Any, test: Any = None, *, callback: Callable[[dict], Any] | None = None) -> ALS:
        """Trains on ``user_items``: a scipy.sparse CSR matrix (users x items; values are the
        ratings, or the implicit strengths r of c = 1 + alpha r), or (users, items, values)
        arrays, a DataFrame, a Ratings or a path as ``MF.fit`` takes.  Users and items without
        interactions get zero factors.  ``test`` (the same forms) adds the test RMSE of every
        iteration for explicit ratings.  ``callback(record)`` is called after every iteration
        with {"iteration", "seconds", "test_rmse"}; returning False stops training.

        The iterations run in the core's training driver (method als, the same loop as
        ``mascot_train --method als`` and ``MF(method="als")``); ``report_["run"]`` is the
        driver's run report."""
        tr = _as_train(user_items)
        te = None if test is None or self.implicit else _as_train(test)  # implicit: no test RMSE
        cfg, ctx = self._core_config()
        records: list[dict] = []

        def on_epoch(rec: dict) -> bool:
            r = {"iteration": rec["epoch"], "seconds": rec["train_seconds"], "test_rmse": rec["test_rmse"]}
            records.append(r)
            if self.verbose:
                t = "-" if r["test_rmse"] is None else f"{r['test_rmse']:.6f}"
                print(f"iteration {r['iteration'] + 1:4d}  {r['seconds']:.3f}s  test_rmse {t}", file=sys.stderr,
                      flush=True)
            return not (callback is not None and callback(dict(r)) is False)

        if self.iterations == 0:  # the initial factors only: prepared, no iteration
            P, Q, run = self._initial(tr, cfg)
        else:
            try:
                P, Q, report = _core.train(cfg, ctx, tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                                           None if te is None else te.users, None if te is None else te.items,
                                           None if te is None else te.ratings, "", on_epoch)
            except RuntimeError as e:  # the driver's Diverged: a non-finite test RMSE or factors
                if "diverged" in str(e):  # in this API's words
                    raise RuntimeError(str(e).split("; raise")[0] + "; raise regularization") from None
                raise
            run = json.loads(report)
        self.user_factors, self.item_factors = P, Q
        self.seen_ = _use.SeenPairs.from_pairs(tr.users, tr.items, tr.n_users, tr.n_items)
        data = run["dataset"] if "dataset" in run else {}
        self.report_ = {"solver": "als", "device": run["device"], "params": self.get_params(),
                        "data": {"n_users": tr.n_users, "n_items": tr.n_items, "n_train": len(tr),
                                 "n_test": int(data.get("n_test", 0))},
                        "iterations": records,
                        "total_seconds": float(sum(r["seconds"] for r in records)),
                        "final_test_rmse": records[-1]["test_rmse"] if records else None,
                        "run": run}
        return self

    def _initial(self, tr: Ratings, cfg: _core.TrainConfig) -> tuple[np.ndarray, np.ndarray, dict]:
        """iterations = 0: the prepared initial factors (the driver runs at least one epoch)."""
        run = _core.AlsRun()
        mode = self.regularization_mode
        run.prepare(tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items, None, None, None, k=self.factors,
                    lambda_p=self.regularization, lambda_q=self.regularization, implicit=self.implicit,
                    alpha=self.alpha, weighted=self.weighted if mode != "plain" else False, solver=self.solver,
                    cg_steps=self.cg_steps, hermitian_half=self.hermitian_dtype == "float16",
                    factors_half=self.dtype == "float16", cg_form=self.cg_form, init_std=self.init_std,
                    device=self.device, threads=self.threads, seed=self.random_state)
        P, Q = run.factors()
        return P, Q, {"device": run.describe(), "dataset": {"n_test": 0}}

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if self.user_factors is None:
            raise ValueError("this ALS model is not fitted yet: call fit() first")

    def recommend(self, userid: Any, user_items: Any = None, N: int = 10, filter_already_liked_items: bool = True,
                  filter_items: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items by p_u . q_i for ``userid`` (an id, or an array of ids: batched).
        Returns (item ids, scores): 1-D for one id, [len(userid), N] for an array; best first,
        ties by smaller item id.  ``user_items`` holds one CSR row per user id (users x items,
        as `implicit` takes it): with ``filter_already_liked_items`` its items are left out;
        None uses the training pairs of ``fit``.  ``filter_items``: item ids never returned.
        Slots with no eligible item hold -1 / -inf."""
        self._check_fitted()
        single = np.ndim(userid) == 0
        users = np.atleast_1d(np.asarray(userid))
        if users.dtype.kind not in "iu":
            raise ValueError(f"userid must be integer ids (got dtype {users.dtype})")
        nu, ni = self.user_factors.shape[0], self.item_factors.shape[0]
        if len(users) and (users.min() < 0 or users.max() >= nu):
            raise ValueError(f"userid out of range [0, {nu}) (got {int(users.min())}..{int(users.max())})")
        N = _use.check_n(N, ni, "items")
        ex_r, ex_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        if filter_already_liked_items:
            if user_items is None:
                if self.seen_ is None:
                    raise ValueError("filter_already_liked_items needs user_items (this model carries no "
                                     "training pairs)")
                rr, cc = self.seen_.rows(users.astype(np.int64))
            else:
                if not _is_sparse(user_items) or user_items.format != "csr":
                    raise ValueError("user_items must be a scipy.sparse CSR matrix with one row per userid")
                if user_items.shape[0] != len(users) or user_items.shape[1] != ni:
                    raise ValueError(f"user_items has shape {user_items.shape}; expected ({len(users)}, {ni}): "
                                     "one row per userid, one column per item")
                coo = user_items.tocoo()
                rr, cc = coo.row.astype(np.int64), coo.col.astype(np.int64)
            ex_r.append(rr)
            ex_c.append(cc)
        if filter_items is not None:
            f = np.unique(np.asarray(filter_items, np.int64).ravel())
            if len(f) and (f.min() < 0 or f.max() >= ni):
                raise ValueError(f"filter_items out of range [0, {ni})")
            ex_r.append(np.repeat(np.arange(len(users)), len(f)))
            ex_c.append(np.tile(f, len(users)))
        ids, scores = _use.top_n(self.user_factors[users], self.item_factors, N,
                                 (np.concatenate(ex_r), np.concatenate(ex_c)))
        return (ids[0], scores[0]) if single else (ids, scores)

    def similar_items(self, itemid: Any, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``N`` items most similar to ``itemid`` (an id or an array: batched) by cosine of
        the item factors, the item itself included (first, similarity 1, as in `implicit`);
        zero vectors have similarity 0.  Same shapes as :meth:`recommend`."""
        self._check_fitted()
        single = np.ndim(itemid) == 0
        items = np.atleast_1d(np.asarray(itemid))
        Q = self.item_factors
        if items.dtype.kind not in "iu":
            raise ValueError(f"itemid must be integer ids (got dtype {items.dtype})")
        if len(items) and (items.min() < 0 or items.max() >= Q.shape[0]):
            raise ValueError(f"itemid out of range [0, {Q.shape[0]})")
        N = _use.check_n(N, Q.shape[0], "items")
        norm = np.sqrt(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))
        scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1), 0.0).astype(np.float32)
        ids, scores = _use.top_n(Q[items] * scale[items][:, None], Q, N, None, col_scale=scale)
        return (ids[0], scores[0]) if single else (ids, scores)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path/{P.npy,Q.npy,model.json}`` atomically (MF's model directory: P.npy and
        Q.npy are the user and item factors; model.json says "method": "als" and holds the
        parameters and the report)."""
        self._check_fitted()
        P, Q = self.user_factors, self.item_factors
        meta = {"format": "mascot-model", "version": 1, "mascot_version": _core.__version__,
                "n_users": int(P.shape[0]), "n_items": int(Q.shape[0]), "k": int(P.shape[1]), "method": "als",
                "id_order": "original", "als_params": self.get_params(), "report": self.report_,
                "has_seen": self.seen_ is not None}
        extra = []
        if self.seen_ is not None:  # the training pairs, as MF saves them (recommend's filter)
            for name, a in (("seen_indptr.npy", self.seen_.indptr), ("seen_indices.npy", self.seen_.indices)):
                buf = io.BytesIO()
                np.save(buf, np.asarray(a), allow_pickle=False)
                extra.append((name, buf.getvalue()))
        _core.save_model(os.fspath(path), np.ascontiguousarray(P), np.ascontiguousarray(Q), json.dumps(meta), extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ALS:
        """Reads a directory written by :meth:`save` (or any MASCOT model directory: its P and Q
        become the user and item factors)."""
        path = Path(path)
        P, Q = _core.load_model(os.fspath(path))
        try:
            meta = json.loads((path / "model.json").read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path / 'model.json'}: not readable ({e})") from None
        params = meta.get("als_params") if isinstance(meta, dict) else None
        try:
            m = cls(**params) if isinstance(params, dict) else cls(factors=int(P.shape[1]))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path / 'model.json'}: invalid 'als_params' ({e})") from None
        if m.factors != P.shape[1]:
            raise ValueError(f"{path / 'model.json'}: factors = {m.factors} but P.npy has k={P.shape[1]}")
        m.user_factors, m.item_factors = P, Q
        m.report_ = meta.get("report") if isinstance(meta, dict) else None
        ip, ix = path / "seen_indptr.npy", path / "seen_indices.npy"
        if ip.exists() and ix.exists():
            try:
                m.seen_ = _use.SeenPairs(np.load(ip, allow_pickle=False), np.load(ix, allow_pickle=False),
                                         P.shape[0], Q.shape[0], str(path), ("seen_indptr.npy", "seen_indices.npy"))
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: the training pairs are not readable ({e})") from None
        return m

    def export_libmf(self, path: str | os.PathLike) -> None:
        """The factors in LIBMF's text model format (b = 0, every row "T")."""
        self._check_fitted()
        _core.export_libmf(os.fspath(path), np.ascontiguousarray(self.user_factors),
                           np.ascontiguousarray(self.item_factors), 0.0, None, None)
