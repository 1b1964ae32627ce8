"""The estimator API: ``mascot.MF``.

``fit`` converts its input to :class:`mascot.data.Ratings`, builds the core's validated
``TrainConfig`` and calls ``_core.train`` (GIL released while training); the core returns P and
Q in original id order plus the JSON run report, parsed into ``report_``.  ``fit`` also keeps
the training pairs (``seen_``, CSR per user) and optional raw-id maps (``user_ids_``,
``item_ids_``); ``predict`` / ``recommend`` / ``similar_items`` translate ids through those maps
and score with NumPy in bounded blocks (``mascot._use``); ``save`` / ``load`` carry all of it.
"""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import _core, _use
from .data import Ratings, as_ratings, _ids

_PARAMS = ("k", "method", "epochs", "lr", "decay", "lambda_p", "lambda_q", "init_std",
           "user_groups", "item_groups", "period", "sample_ratio", "threshold", "warmup",
           "order", "rounding", "threads", "seed", "device", "method_params", "random_fp16",
           "grad_stats", "deterministic")


class MF:
    """Matrix factorization trained by SGD with low-precision latent vectors.

    Parameters mirror ``mascot_train`` (see ``mascot_train --help``); ``groups`` sets both
    ``user_groups`` and ``item_groups``; ``period``, ``sample_ratio``, ``threshold`` and
    ``warmup`` are g-switching's pi, gamma, theta and w (DESIGN.md §3); ``method_params`` sets
    the competing methods' settings by name (``mascot._core.CompetingParams``), e.g.
    ``{"loss_scale": "dynamic"}`` for mpt or ``{"muppet_resolution": 3}``.  Two study options:
    ``random_fp16=f`` stores a random share f of the rows in FP16 and the rest in FP32, without
    switching (paper Fig. 4; methods mascot, mascot-naive, mascot-n1), and ``grad_stats=True``
    adds each group's mean sampled-gradient norm to every epoch record (``user_grad_norm``,
    ``item_grad_norm``; paper Fig. 5).  Invalid values raise ``ValueError`` here, before any
    data is touched.
    """

    def __init__(self, k: int = 128, method: str = "fp32", epochs: int = 50, lr: float = 0.01,
                 decay: float = 0.1, lambda_p: float = 0.01, lambda_q: float = 0.015,
                 init_std: float = 0.01, groups: int = 100, user_groups: int | None = None,
                 item_groups: int | None = None, period: int = 2, sample_ratio: float = 0.05,
                 threshold: float = 20.0, warmup: int = 5, order: str = "shuffle", rounding: str = "nearest",
                 threads: int = 0, seed: int = 42, device: str = "auto", verbose: bool = False,
                 method_params: dict | None = None, random_fp16: float | None = None,
                 grad_stats: bool = False, deterministic: bool = False):
        self.k, self.method, self.epochs, self.lr, self.decay = k, method, epochs, lr, decay
        self.lambda_p, self.lambda_q, self.init_std = lambda_p, lambda_q, init_std
        self.user_groups = groups if user_groups is None else user_groups
        self.item_groups = groups if item_groups is None else item_groups
        self.period, self.sample_ratio, self.threshold, self.warmup = period, sample_ratio, threshold, warmup
        self.order, self.rounding = order, rounding
        self.threads, self.seed, self.device, self.verbose = threads, seed, device, verbose
        self.method_params = dict(method_params or {})
        self.random_fp16, self.grad_stats = random_fp16, grad_stats
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
        self.user_ids_: np.ndarray | None = None   # raw id of each dense user (None: ids are dense)
        self.item_ids_: np.ndarray | None = None
        self.seen_: _use.SeenPairs | None = None   # training pairs, for recommend(exclude_seen=True)
        self.train_mean_: float | None = None      # mean training rating (LIBMF's b)

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
        if self.random_fp16 is not None:
            try:
                c.random_fp16 = float(self.random_fp16)
            except (TypeError, ValueError):
                raise ValueError(f"random_fp16 must be a number in [0, 1] or None (got {self.random_fp16!r})") from None
        if not isinstance(self.grad_stats, bool):
            raise ValueError(f"grad_stats must be True or False (got {self.grad_stats!r})")
        c.grad_stats = self.grad_stats
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
    def fit(self, train: Any, test: Any = None, name: str = "", user_ids: Any = None,
            item_ids: Any = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 1) -> "MF":
        """Trains on ``train`` ((users, items, ratings) arrays, a DataFrame, a Ratings or a
        path), evaluating test RMSE after every epoch when ``test`` is given.  Test ratings
        whose user or item never occurs in training are dropped and counted in the report.

        Rating data is always in dense 0-based ids.  ``user_ids`` / ``item_ids`` (the raw id of
        each dense id, e.g. from :func:`dataset_id_maps`) make predict / recommend /
        similar_items take and return raw ids; they also fix n_users / n_items.  The training
        pairs are kept (``seen_``) for ``recommend(exclude_seen=True)`` and saved with the model.

        ``checkpoint=DIR`` writes the full training state to DIR after every
        ``checkpoint_every`` epochs and after the last (docs/checkpoint.md); a Ctrl-C then stops
        at the end of the epoch, writes a final checkpoint and raises KeyboardInterrupt saying
        how to continue: ``MF.resume(DIR, train, test)``."""
        tr = as_ratings(train)
        te = as_ratings(test) if test is not None else None
        cfg = self._config()
        tr, umap, imap = self._with_id_maps(tr, user_ids, item_ids)
        if checkpoint is not None:
            self._fit_checkpointed(tr, te, name, os.fspath(checkpoint), checkpoint_every)
            self._keep_training_data(tr, umap, imap)
            return self

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
        self._keep_training_data(tr, umap, imap)
        return self

    def _keep_training_data(self, tr: Ratings, umap: Any, imap: Any) -> None:
        """After a fit: the id maps, the training pairs (exclude_seen) and the mean rating."""
        self.user_ids_, self.item_ids_ = umap.raw, imap.raw
        self.seen_ = _use.SeenPairs.from_pairs(tr.users, tr.items, tr.n_users, tr.n_items)
        self.train_mean_ = float(np.mean(tr.ratings, dtype=np.float64)) if len(tr) else 0.0

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
        tr, umap, imap = m._with_id_maps(tr, None, None)
        m._keep_training_data(tr, umap, imap)
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

    def predict(self, users: Any, items: Any, unknown: str = "raise") -> np.ndarray:
        """Predicted ratings p_u . q_i (float32) for parallel arrays of ids: raw ids when the
        model carries id maps, else dense ids.  An id not in the model is a ValueError naming
        it; with ``unknown="skip"`` its prediction is NaN and an ``UnknownIdWarning`` lists it."""
        self._check_fitted()
        u, uk = self._map("user").to_dense(users, "users", unknown)
        i, ik = self._map("item").to_dense(items, "items", unknown)
        if u.shape != i.shape:
            raise ValueError(f"users and items must have the same length (got {len(u)} and {len(i)})")
        out = np.einsum("ij,ij->i", self.P_[u], self.Q_[i], dtype=np.float32)
        out[~(uk & ik)] = np.nan
        return out

    def _predict_dense(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
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
        """Root-mean-square error on a rating set in dense ids (all ids must be in the model)."""
        self._check_fitted()
        r = as_ratings(data)
        if len(r) == 0:
            raise ValueError("rmse needs at least one rating")
        e = self._predict_dense(r.users, r.items).astype(np.float64) - r.ratings
        return float(np.sqrt(np.mean(e * e)))

    def recommend(self, users: Any, n: int = 10, exclude_seen: bool = True, seen: Any = None,
                  unknown: str = "raise", block_users: int = 512, block_items: int = 16384
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items by p_u . q_i for each of ``users``: (item ids [len(users), n], scores
        [len(users), n] float32), best first, equal scores ordered by smaller dense item id.

        ``exclude_seen`` leaves out each user's training items: the pairs kept by ``fit`` (and
        saved with the model), or ``seen`` = (users, items) pairs in the model's public ids
        (arrays, a DataFrame, a Ratings or a path; unknown ids in them are ignored).  Slots left
        without an item (a user who has seen nearly everything) hold item id -1 ("" for string
        ids) and score -inf.  Scores are computed ``block_users`` x ``block_items`` at a time,
        so memory stays bounded for millions of items.  Unknown users: ValueError, or with
        ``unknown="skip"`` a row of -1 / -inf and an ``UnknownIdWarning``."""
        self._check_fitted()
        n = _use.check_n(n, self.Q_.shape[0], "items")
        bu = _use.check_block(block_users, "block_users")
        bi = _use.check_block(block_items, "block_items")
        u, known = self._map("user").to_dense(users, "users", unknown)
        exclude = None
        if exclude_seen:
            pairs = self._seen_pairs(seen)
            rr, cc = pairs.rows(u)
            keep = known[rr]
            exclude = (rr[keep], cc[keep])
        elif seen is not None:
            raise ValueError("seen= is only used with exclude_seen=True")
        ids, scores = _use.top_n(self.P_[u], self.Q_, n, exclude, bu, bi)
        ids[~known] = -1
        scores[~known] = -np.inf
        return self._map("item").to_public(ids), scores

    def similar_items(self, items: Any, n: int = 10, metric: str = "cosine", unknown: str = "raise",
                      block_items: int = 16384) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to each of ``items`` by ``metric``: "cosine" (default;
        q_i . q_j / (|q_i| |q_j|), 0 for a zero vector) or "dot".  The item itself is excluded.
        Returns (item ids [len(items), n], similarities float32), best first, ties by smaller
        dense id; unknown ids as in :meth:`recommend`."""
        self._check_fitted()
        if metric not in ("cosine", "dot"):
            raise ValueError(f"metric must be 'cosine' or 'dot' (got {metric!r})")
        n = _use.check_n(n, self.Q_.shape[0] - 1, "other items")
        bi = _use.check_block(block_items, "block_items")
        i, known = self._map("item").to_dense(items, "items", unknown)
        Q, scale = self.Q_, None
        if metric == "cosine":  # 1/|q| per item, applied block by block: no normalised copy of Q
            norm = np.sqrt(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))
            scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1), 0.0).astype(np.float32)
        A = Q[i] if scale is None else Q[i] * scale[i][:, None]
        ids, scores = _use.top_n(A, Q, n, (np.arange(len(i)), i), 512, bi, col_scale=scale)
        ids[~known] = -1
        scores[~known] = -np.inf
        return self._map("item").to_public(ids), scores

    def set_id_maps(self, user_ids: Any = None, item_ids: Any = None) -> "MF":
        """Attaches raw ids (one per dense user / item; None leaves that side dense), e.g. to a
        model trained by ``mascot_train`` on a prepared dataset: see :func:`dataset_id_maps`."""
        self._check_fitted()
        um = _use.IdMap(user_ids, self.P_.shape[0], "user")
        im = _use.IdMap(item_ids, self.Q_.shape[0], "item")
        self.user_ids_, self.item_ids_ = um.raw, im.raw
        return self

    def export_libmf(self, path: str | os.PathLike) -> None:
        """Writes the model in LIBMF's text format (``mf-predict`` reads it), atomically.  Ids
        in the file are the dense ids.  With the training pairs known, LIBMF's ``b`` is the mean
        training rating and entities without training ratings are written as LIBMF's "F" rows
        (mf-predict answers b for them); otherwise b = 0 and every row is "T"."""
        self._check_fitted()
        ur = ir = None
        if self.seen_ is not None:
            ur = (np.diff(self.seen_.indptr) > 0).astype(np.uint8)
            ir = np.zeros(self.Q_.shape[0], np.uint8)
            ir[self.seen_.indices] = 1
        _core.export_libmf(os.fspath(path), np.ascontiguousarray(self.P_), np.ascontiguousarray(self.Q_),
                           float(self.train_mean_ or 0.0), ur, ir)

    # ------------------------------------------------------------------ id maps, seen pairs
    def _map(self, which: str) -> "_use.IdMap":
        raw = self.user_ids_ if which == "user" else self.item_ids_
        n = (self.P_ if which == "user" else self.Q_).shape[0]
        cache = self.__dict__.setdefault("_maps", {})
        hit = cache.get(which)
        if hit is None or hit[0] is not raw or hit[1].n != n:
            hit = (raw, _use.IdMap(raw, n, which))
            cache[which] = hit
        return hit[1]

    def _with_id_maps(self, tr: Ratings, user_ids: Any, item_ids: Any):
        nu, ni = tr.n_users, tr.n_items
        if user_ids is not None:
            lu = len(np.atleast_1d(np.asarray(user_ids)))
            if lu < tr.n_users:
                raise ValueError(f"user_ids has {lu} ids but the training data has {tr.n_users} users")
            nu = lu
        if item_ids is not None:
            li = len(np.atleast_1d(np.asarray(item_ids)))
            if li < tr.n_items:
                raise ValueError(f"item_ids has {li} ids but the training data has {tr.n_items} items")
            ni = li
        if (nu, ni) != (tr.n_users, tr.n_items):
            tr = Ratings(tr.users, tr.items, tr.ratings, nu, ni)
        return tr, _use.IdMap(user_ids, nu, "user"), _use.IdMap(item_ids, ni, "item")

    def _seen_pairs(self, seen: Any) -> "_use.SeenPairs":
        if seen is None:
            if self.seen_ is None:
                raise ValueError("exclude_seen=True needs the training pairs, which this model does not "
                                 "carry (trained by mascot_train, or saved without them): pass seen=(users, "
                                 "items) or exclude_seen=False")
            return self.seen_
        if isinstance(seen, tuple) and len(seen) == 2:
            su, si = seen
        else:
            r = as_ratings(seen)
            su, si = r.users, r.items
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _use.UnknownIdWarning)
            du, uk = self._map("user").to_dense(su, "seen users", "skip")
            di, ik = self._map("item").to_dense(si, "seen items", "skip")
        if du.shape != di.shape:
            raise ValueError(f"seen users and items must have the same length (got {len(du)} and {len(di)})")
        k = uk & ik
        return _use.SeenPairs.from_pairs(du[k], di[k], self.P_.shape[0], self.Q_.shape[0])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path/{P.npy,Q.npy,model.json}`` atomically (whole directory renamed in)."""
        self._check_fitted()
        meta = {"format": "mascot-model", "version": 1, "mascot_version": _core.__version__,
                "n_users": int(self.P_.shape[0]), "n_items": int(self.Q_.shape[0]),
                "k": int(self.P_.shape[1]), "method": self.method, "id_order": "original",
                "params": self.get_params(), "report": self.report_}
        meta.update(self._use_meta())
        _core.save_model(os.fspath(path), np.ascontiguousarray(self.P_), np.ascontiguousarray(self.Q_),
                         json.dumps(meta), self._use_files())

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
        m._load_use_files(path, meta)
        return m

    # Extra files of a model directory (all optional, each readable by numpy.load):
    # user_ids.npy / item_ids.npy (raw id of each dense id), seen_indptr.npy + seen_indices.npy
    # (training pairs, CSR per user); model.json's "train_mean" is LIBMF's b.
    _USE_FILES = ("user_ids.npy", "item_ids.npy", "seen_indptr.npy", "seen_indices.npy")

    def _use_meta(self) -> dict:
        return {"train_mean": self.train_mean_, "has_user_ids": self.user_ids_ is not None,
                "has_item_ids": self.item_ids_ is not None, "has_seen": self.seen_ is not None}

    def _use_files(self) -> list:
        arrays = {"user_ids.npy": self.user_ids_, "item_ids.npy": self.item_ids_}
        if self.seen_ is not None:
            arrays["seen_indptr.npy"] = self.seen_.indptr
            arrays["seen_indices.npy"] = self.seen_.indices
        out = []
        for name, a in arrays.items():
            if a is not None:
                buf = io.BytesIO()
                np.save(buf, np.asarray(a), allow_pickle=False)
                out.append((name, buf.getvalue()))
        return out

    def _load_use_files(self, path: Path, meta: dict) -> None:
        def arr(name: str) -> np.ndarray | None:
            f = path / name
            if not f.exists():
                return None
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise ValueError(f"{f}: not a readable .npy file ({e})") from None

        def check(flag: str, present: bool, name: str) -> None:
            if meta.get(flag) and not present:
                raise ValueError(f"{path}: model.json says {name} is saved but it is missing")

        try:
            a_u, a_i = arr("user_ids.npy"), arr("item_ids.npy")
            check("has_user_ids", a_u is not None, "user_ids.npy")
            check("has_item_ids", a_i is not None, "item_ids.npy")
            self.set_id_maps(a_u, a_i)
            ip, ix = arr("seen_indptr.npy"), arr("seen_indices.npy")
            check("has_seen", ip is not None and ix is not None, "the training pairs (seen_indptr.npy, seen_indices.npy)")
            if (ip is None) != (ix is None):
                raise ValueError(f"{path}: seen_indptr.npy and seen_indices.npy must be saved together")
            if ip is not None:
                self.seen_ = _use.SeenPairs(ip, ix, self.P_.shape[0], self.Q_.shape[0], str(path / "seen_indptr.npy"))
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
        tm = meta.get("train_mean")
        self.train_mean_ = float(tm) if isinstance(tm, (int, float)) and not isinstance(tm, bool) else None

    def _check_fitted(self) -> None:
        if self.P_ is None:
            raise RuntimeError("this MF model is not fitted yet: call fit() or MF.load()")

    def __repr__(self) -> str:
        return f"MF(k={self.k}, method={self.method!r}, epochs={self.epochs}, device={self.device!r})"


def _as_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (got {v!r})")
    return int(v)


def dataset_id_maps(name: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The raw ids of a prepared dataset: ``user_ids`` / ``item_ids`` of
    ``$MASCOT_DATA/<name>/meta.json`` (the raw id of each dense id), each None when absent."""
    from .data import data_root

    f = data_root() / name / "meta.json"
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{f} does not exist (dataset {name!r} is not prepared)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{f}: expected a JSON object")

    def get(key: str) -> np.ndarray | None:
        v = meta.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise ValueError(f"{f}: {key} must be a list")
        return np.asarray(v) if v else np.zeros(0, np.int64)

    return get("user_ids"), get("item_ids")


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
                                         "threshold", "warmup", "order", "rounding", "grad_stats")}
    if c.get("random_fp16") is not None:
        params["random_fp16"] = c["random_fp16"]
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
