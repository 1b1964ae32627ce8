"""The estimator API: ``mascot.MF``.

``fit`` converts its input to :class:`mascot.data.Ratings`, builds the core's validated
``TrainConfig`` and calls ``_core.train`` (GIL released while training); the core returns P and
Q in original id order plus the JSON run report, parsed into ``report_``.  ``fit`` also keeps
the training pairs (``seen_``, CSR per user) and optional raw-id maps (``user_ids_``,
``item_ids_``); ``predict`` / ``recommend`` / ``similar_items`` translate ids through those maps
and score with NumPy in bounded blocks (``mascot._inference``); ``save`` / ``load`` carry all of
it in a model directory (the formats: ``mascot._persist``, which also keeps a checkpointed fit's
id maps next to the core's checkpoint).  ``verbose=True`` logs every epoch (``mascot._progress``).
"""
from __future__ import annotations

import inspect
import json
import os
import re
import signal
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import _core, _inference, _persist, _progress
from ._inference import UNKNOWN_CHOICES, UnknownIdWarning
from ._ratings import Ratings, as_ratings, check_ids, fs_path

# The parameters, from the core's table (mascot/params.h via _core.param_table()): names, types,
# defaults, integer ranges, enum names and the methods a setting belongs to are the core's.
_TABLE = {p["name"]: p for p in _core.param_table()}
# MF's keyword arguments of the table: TrainConfig's and Context's front-end parameters (the
# competing methods' settings go in method_params)
_ARGS = tuple(p for p in _TABLE.values() if p["scope"] != "competing" and p["section"] != "internal")
# method_params: the settings of each method that has some (mpt, muppet, afp)
_METHOD_PARAMS = {m: tuple(p["name"] for p in _TABLE.values() if p["scope"] == "competing" and m in p["methods"])
                  for m in _core.method_names()}
_METHOD_PARAMS = {m: names for m, names in _METHOD_PARAMS.items() if names}
# what get_params() returns and MF.save keeps
_PARAMS = tuple(p["name"] for p in _ARGS) + ("method_params",)
_INT32_MAX = 2**31 - 1
_INT32 = (-_INT32_MAX - 1, _INT32_MAX)  # the C++ int of a method setting (its range is the core's validate())
_TYPES = {"int": int, "uint64": int, "float": float, "double": float, "bool": bool, "enum": str}


def _signature() -> inspect.Signature:
    """MF's keyword arguments: the table's, plus groups (before user_groups; sets both sides),
    verbose and method_params.  random_fp16 None is "off" (the core's -1); user_groups /
    item_groups None take groups."""
    kw = inspect.Parameter.KEYWORD_ONLY
    out = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p in _ARGS:
        default, annotation = p["default"], _TYPES[p["type"]]
        if p["name"] == "user_groups":
            out.append(inspect.Parameter("groups", kw, default=default, annotation=int))
        if p["name"] in ("user_groups", "item_groups") or p["check"] == "share_or_off":
            default, annotation = None, Optional[annotation]
        out.append(inspect.Parameter(p["name"], kw, default=default, annotation=annotation))
    out.append(inspect.Parameter("verbose", kw, default=False, annotation=bool))
    out.append(inspect.Parameter("method_params", kw, default=None, annotation=Optional[dict]))
    out.append(inspect.Parameter("preset", kw, default=None, annotation=Optional[str]))
    return inspect.Signature(out)


_SIGNATURE = _signature()


class MF:
    """Matrix factorization trained by SGD with low-precision latent vectors.

    Parameters mirror ``mascot_train`` (see ``mascot_train --help``): they are the core's
    parameter table (``mascot._core.param_table()``: types, defaults, ranges, help), all
    keyword-only (``inspect.signature(MF)`` lists them); ``groups`` sets both
    ``user_groups`` and ``item_groups``; ``period``, ``sample_ratio``, ``threshold`` and
    ``warmup`` are g-switching's pi, gamma, theta and w (docs/design.md §3); ``method_params`` sets
    the competing methods' settings by name (the fields of ``mascot._core.CompetingParams`` that
    belong to ``method``), e.g. ``{"loss_scale": "dynamic"}`` for mpt or
    ``{"muppet_resolution": 3}``.  Integers take int or NumPy integers, numbers also floats,
    flags bool (never bool for a number nor str for either).  Two study options:
    ``random_fp16=f`` stores a random share f of the rows in FP16 and the rest in FP32, without
    switching (paper Fig. 4; methods mascot, mascot-naive, mascot-n1), and ``grad_stats=True``
    adds each group's mean sampled-gradient norm to every epoch record (``user_grad_norm``,
    ``item_grad_norm``; paper Fig. 5).  ``preset="paper"`` (the paper's settings) or a preset
    file's path (``mascot tune`` writes one; :mod:`mascot.presets`) supplies values first, and
    the keyword arguments given override them; ``get_params()`` holds the resolved values.
    Invalid values raise ``ValueError`` here, before any data is touched.
    """

    def __init__(self, **params: Any):  # the keyword arguments: _SIGNATURE (inspect.signature(MF) shows them)
        preset = params.pop("preset", None)
        if preset is not None:  # its values first; the keyword arguments given override them
            params = _with_preset(preset, params)
        args = _SIGNATURE.bind(self, **params)
        args.apply_defaults()
        args = {name: v for name, v in args.arguments.items() if name != "self"}
        groups, method_params = args.pop("groups"), args.pop("method_params")
        args.pop("preset")
        if groups is not None:
            _as_int(groups, "groups")
        for name, v in args.items():
            setattr(self, name, v)
        for side in ("user_groups", "item_groups"):
            if getattr(self, side) is None:
                setattr(self, side, groups)
        if method_params is not None and not isinstance(method_params, Mapping):
            raise ValueError(f"method_params must be a dict of parameter names and values "
                             f"(got {_short_repr(method_params)})")
        self.method_params = dict(method_params or {})
        self._config()  # validate (and normalise the attributes) now
        self.P_: np.ndarray | None = None
        self.Q_: np.ndarray | None = None
        self.report_: dict | None = None
        self.user_ids_: np.ndarray | None = None   # raw id of each dense user (None: ids are dense)
        self.item_ids_: np.ndarray | None = None
        self.seen_: _inference.SeenPairs | None = None   # training pairs, for recommend(exclude_seen=True)
        self.train_mean_: float | None = None      # mean training rating (LIBMF's b)

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in _PARAMS}

    def _check_params(self) -> None:
        """Checks the types and ranges Python must settle before the core sees a value (one
        rule for all: integers are int or NumPy integers, numbers also float / NumPy floats,
        flags bool / NumPy bool, never bool for a number nor str for either; integer ranges and
        enum names are the table's) and normalises the attributes to plain Python values.  The
        other semantic rules are the core's validate()."""
        for p in _ARGS:
            name, t = p["name"], p["type"]
            v = getattr(self, name)
            if t in ("int", "uint64"):
                v = _as_int(v, name, p["min"], p["max"])
            elif t in ("float", "double"):
                if p["check"] != "share_or_off":
                    v = _as_float(v, name)
                elif v is not None:  # None: off
                    v = _as_float(v, name, "a number in [0, 1] or None")
            elif t == "bool":
                v = _as_bool(v, name)
            elif not isinstance(v, str):  # an enum, by name
                raise ValueError(f"{name} must be a string (got {_short_repr(v)})")
            elif v not in p["choices"]:
                raise ValueError(f"unknown {name} {v!r} (valid: {', '.join(p['choices'])})")
            setattr(self, name, v)
        self.verbose = _as_bool(self.verbose, "verbose")
        if not isinstance(self.method_params, dict):
            raise ValueError(f"method_params must be a dict of parameter names and values "
                             f"(got {_short_repr(self.method_params)})")
        self._context()  # deterministic=True with other threads or the cuda device: refused now

    def _config(self) -> _core.TrainConfig:
        self._check_params()
        c = _core.TrainConfig()
        for p in _ARGS:
            v = getattr(self, p["name"])
            if p["scope"] == "config" and v is not None:  # random_fp16=None: the core's off
                setattr(c, p["name"], v)
        c.competing = _competing_params(self.method, self.method_params)
        c.validate()
        return c

    def _context(self) -> _core.Context:
        """Where and how the run goes: the core decides what deterministic=True means (one CPU
        thread on the CPU device) and refuses conflicting settings."""
        ctx = _core.Context()
        for p in _ARGS:
            if p["scope"] == "context":
                setattr(ctx, p["name"], getattr(self, p["name"]))
        ctx = ctx.for_run()
        ctx.validate()
        return ctx

    # ------------------------------------------------------------------ training
    def fit(self, train: Any, test: Any = None, name: str = "", user_ids: Any = None,
            item_ids: Any = None, checkpoint: str | os.PathLike | None = None,
            checkpoint_every: int = 1, unknown: str = "skip", warm_start: bool = False) -> MF:
        """Trains on ``train`` ((users, items, ratings) arrays, a DataFrame, a Ratings or a
        path), evaluating test RMSE after every epoch when ``test`` is given.  Test ratings
        whose user or item never occurs in training are dropped and counted in the report
        (``unknown="raise"``: a ValueError naming the first, before training; see
        :data:`mascot.UNKNOWN_POLICY`).

        Rating data is always in dense 0-based ids.  ``user_ids`` / ``item_ids`` (the raw id of
        each dense id, e.g. from :func:`dataset_id_maps`) make predict / recommend /
        similar_items take and return raw ids; they also fix n_users / n_items.  The training
        pairs are kept (``seen_``) for ``recommend(exclude_seen=True)`` and saved with the model.

        ``checkpoint=DIR`` writes the full training state to DIR after every
        ``checkpoint_every`` epochs and after the last (docs/checkpoint.md), and the id maps
        and data shape next to it (``DIR/python_ids.npz``, for :meth:`resume`); a Ctrl-C then
        stops at the end of the epoch, writes a final checkpoint and raises KeyboardInterrupt
        saying how to continue: ``MF.resume(DIR, train, test)``.  The model then holds the
        partial run (factors, report, id maps and training pairs all of this fit).  Without a
        checkpoint an interrupted fit leaves the model as it was.

        ``warm_start=True`` continues this model's last checkpointed run (a ``fit(...,
        checkpoint=DIR)`` or :meth:`resume`) to ``self.epochs`` epochs in total, as
        :meth:`resume` with ``epochs=`` does (scikit-learn's sense, with ``epochs`` counted like
        an ensemble's ``n_estimators``: the total, not the number of further epochs): the same
        data, the run's parameters (only ``epochs`` and ``verbose`` may differ) and the schedule
        continuing, so with ``deterministic=True`` 3 epochs then a warm start to 6 give the
        6-epoch model bit for bit.  Its further checkpoints go to the same DIR."""
        if _as_bool(warm_start, "warm_start"):
            return self._warm_start(train, test, checkpoint_every if checkpoint_every != 1 else None)
        tr = as_ratings(train)
        te = _test_ratings(test)
        cfg = self._config()
        if not isinstance(name, str):
            raise ValueError(f"name must be a string (got {_short_repr(name)})")
        tr, user_map, item_map = self._with_id_maps(tr, user_ids, item_ids)
        if te is not None:
            _check_test_ids(tr, te, unknown)
        if checkpoint is not None:
            self._fit_checkpointed(tr, te, name, _path(checkpoint, "checkpoint"), checkpoint_every, user_map,
                                   item_map)
            self._checkpoint = _path(checkpoint, "checkpoint")
            return self

        with _progress.EpochProgress(self.verbose, self.epochs) as log:
            def on_epoch(rec: dict) -> bool:
                log.epoch(rec)
                return True  # a pending Ctrl-C raises KeyboardInterrupt inside this callback

            with _core_errors():
                P, Q, report = _core.train(
                    cfg, self._context(), tr.users, tr.items, tr.ratings,
                    tr.n_users, tr.n_items,
                    None if te is None else te.users, None if te is None else te.items,
                    None if te is None else te.ratings, name, on_epoch)
        self.P_, self.Q_, self.report_ = P, Q, json.loads(report)
        self._keep_training_data(tr, user_map, item_map)
        return self

    def _keep_training_data(self, tr: Ratings, user_map: _inference.IdMap, item_map: _inference.IdMap) -> None:
        """After a fit: the id maps, the training pairs (exclude_seen) and the mean rating."""
        self.user_ids_, self.item_ids_ = user_map.raw, item_map.raw
        self.seen_ = _inference.SeenPairs.from_pairs(tr.users, tr.items, tr.n_users, tr.n_items)
        self.train_mean_ = float(np.mean(tr.ratings, dtype=np.float64)) if len(tr) else 0.0

    def _fit_checkpointed(self, tr: Ratings, te: Ratings | None, name: str, ckpt: str, every: Any,
                          user_map: _inference.IdMap, item_map: _inference.IdMap) -> MF:
        every = _as_int(every, "checkpoint_every", 1, _INT32_MAX)
        cfg, ctx = self._config(), self._context()
        existed, written = os.path.exists(ckpt), [False]

        with _progress.EpochProgress(self.verbose, self.epochs) as log, _interruptible(log) as intr:
            def on_epoch(rec: dict) -> bool:  # the core made DIR; its first checkpoint comes after this
                if not written[0]:
                    _persist.write_ids_file(ckpt, tr.n_users, tr.n_items, len(tr), user_map.raw, item_map.raw)
                    written[0] = True
                return intr.on_epoch(rec)

            try:
                with _core_errors():
                    P, Q, report = _core.train_checkpointed(
                        cfg, ctx, tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                        None if te is None else te.users, None if te is None else te.items,
                        None if te is None else te.ratings, name, on_epoch, ckpt, every)
            except BaseException:
                if written[0] and not os.path.exists(os.path.join(ckpt, "checkpoint.json")):
                    _persist.remove_ids_file(ckpt, not existed)  # no checkpoint was written: leave nothing behind
                raise
        # interrupted or not, the model is the run's (P, Q, report, id maps, pairs all consistent)
        self.P_, self.Q_, self.report_ = P, Q, json.loads(report)
        self._keep_training_data(tr, user_map, item_map)
        _raise_if_stopped(self.report_, ckpt)
        return self

    def _warm_start(self, train: Any, test: Any, every: int | None) -> MF:
        ckpt = getattr(self, "_checkpoint", None)
        if ckpt is None:
            raise ValueError("warm_start continues a checkpointed fit: fit(..., checkpoint=DIR) (or MF.resume) first")
        info = _core.read_checkpoint(ckpt, verify=False)
        saved = _params_from_report(json.loads(info["report"]), info)
        mine = self.get_params()
        for k, v in saved.items():  # the run continues with its own parameters (device, threads: the run's)
            if k in ("epochs", "verbose", "device", "threads") or k not in mine or _same_value(mine[k], v):
                continue
            if not (k == "method_params" and not v and not mine[k]):
                raise ValueError(f"warm_start continues the run of checkpoint {ckpt} with its parameters: {k} is "
                                 f"{v!r} there, {mine[k]!r} here (only epochs may change)")
        m = MF.resume(ckpt, train, test, checkpoint_every=every, verbose=self.verbose, epochs=self.epochs)
        self.P_, self.Q_, self.report_ = m.P_, m.Q_, m.report_
        self.user_ids_, self.item_ids_, self.seen_, self.train_mean_ = m.user_ids_, m.item_ids_, m.seen_, m.train_mean_
        return self

    @classmethod
    def resume(cls, checkpoint: str | os.PathLike, train: Any, test: Any = None, checkpoint_every: int | None = None,
               verbose: bool = False, epochs: int | None = None) -> MF:
        """Continues the run saved in ``checkpoint`` (by ``fit(..., checkpoint=DIR)`` or
        ``mascot_train --checkpoint DIR``) on the same ``train`` / ``test`` data (checked against
        the checkpoint's fingerprint) and returns the fitted model.  ``epochs=N`` trains to N epochs
        in total (at least the epochs done; the learning-rate schedule continues), which extends a
        finished run; by default the run's own count.  The parameters come from the
        checkpoint, and so do the id maps and the user / item counts of a ``fit`` (its
        ``python_ids.npz``); further checkpoints go to the same directory.  With
        ``deterministic=True`` the result equals the uninterrupted run bit for bit."""
        ckpt = _path(checkpoint, "checkpoint")
        verbose = _as_bool(verbose, "verbose")
        every = 0 if checkpoint_every is None else _as_int(checkpoint_every, "checkpoint_every", 1, _INT32_MAX)
        total = 0 if epochs is None else _as_int(epochs, "epochs", 1, _INT32_MAX)
        info = _core.read_checkpoint(ckpt, verify=False)  # checksums are verified while loading
        tr = as_ratings(train)
        te = _test_ratings(test)
        ids = _persist.read_ids_file(ckpt, info)
        if ids and (tr.n_users <= ids["n_users"] and tr.n_items <= ids["n_items"]):
            tr = Ratings(tr.users, tr.items, tr.ratings, ids["n_users"], ids["n_items"])  # fit's padding
        try:  # the side file's id maps, checked before the remaining epochs are trained
            tr, user_map, item_map = cls._with_id_maps(tr, ids.get("user_ids"), ids.get("item_ids"))
        except ValueError as e:
            raise ValueError(f"checkpoint {os.path.join(ckpt, _persist.IDS_FILE)}: {e}") from None
        with _progress.EpochProgress(verbose, total or _planned_epochs(info), info["epochs_done"]) as log, \
                _interruptible(log) as intr:
            P, Q, report = _core.resume(
                ckpt, tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                None if te is None else te.users, None if te is None else te.items,
                None if te is None else te.ratings, intr.on_epoch, every, total)
        rep = json.loads(report)
        m = cls(**_params_from_report(rep, info), verbose=verbose)
        m.P_, m.Q_, m.report_ = P, Q, rep
        m._keep_training_data(tr, user_map, item_map)
        m._checkpoint = ckpt  # fit(..., warm_start=True) continues from here
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
            if not isinstance(dataset, str):
                raise ValueError(f"dataset must be a synthetic dataset name (got {_short_repr(dataset)})")
            if _core.parse_synthetic_spec(dataset) is None:
                raise ValueError(f"unknown synthetic dataset {dataset!r} (valid: {', '.join(_core.synthetic_names())})")
            shape, loaded = _core.planned_shape(dataset), False  # the generator's own sizes
        else:
            tr = as_ratings(train)
            te = _test_ratings(test)
            shape = (tr.n_users, tr.n_items, len(tr), 0 if te is None else len(te))
            loaded = True
        js, text = _core.memory_plan(self._config(), self._context(), *shape, loaded)
        plan = json.loads(js)
        plan["text"] = text
        return plan

    # ------------------------------------------------------------------ use
    @property
    def best_epoch_(self) -> int | None:
        """The fit's best epoch (0-based, as ``history_``'s ``epoch``) by the monitored RMSE (the
        validation hold-out's, else the test set's), when early_stop or valid_fraction is set;
        with early_stop the model is that epoch's.  None otherwise."""
        self._check_fitted()
        b = self.report_["totals"].get("best_epoch")
        return None if b is None or b < 0 else b

    @property
    def history_(self) -> list[dict]:
        """The fit's epochs, one dict each: ``epoch`` (0-based), ``lr``, ``train_seconds``,
        ``eval_seconds``, ``test_rmse`` and ``valid_rmse`` (None where the run had no test set or
        no validation hold-out, ``valid_fraction``); the full records are ``report_["epochs"]``."""
        self._check_fitted()
        keys = ("epoch", "lr", "train_seconds", "eval_seconds", "test_rmse", "valid_rmse")
        return [{k: e.get(k) for k in keys} for e in self.report_["epochs"]]

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
        u = check_ids(np.atleast_1d(users), "users")
        i = check_ids(np.atleast_1d(items), "items")
        if u.shape != i.shape:
            raise ValueError(f"users and items must have the same length (got {len(u)} and {len(i)})")
        if len(u) and u.max() >= self.P_.shape[0]:
            raise ValueError(f"user id {int(u.max())} is not in the model (n_users={self.P_.shape[0]})")
        if len(i) and i.max() >= self.Q_.shape[0]:
            raise ValueError(f"item id {int(i.max())} is not in the model (n_items={self.Q_.shape[0]})")
        return np.einsum("ij,ij->i", self.P_[u], self.Q_[i], dtype=np.float32)

    def rmse(self, data: Any, unknown: str = "skip") -> float:
        """Root-mean-square error on a rating set in dense ids.  Ratings whose user or item is
        unknown to the model are left out and counted in an ``UnknownIdWarning`` (as ``fit``
        drops them from its test set, so ``rmse(test)`` matches the fit's test RMSE); with
        ``unknown="raise"`` the first is a ValueError (:data:`mascot.UNKNOWN_POLICY`)."""
        self._check_fitted()
        r = as_ratings(data)
        if len(r) == 0:
            raise ValueError("rmse needs at least one rating")
        known = self._known_ratings(r, unknown, "rmse")
        if not known.all():
            if not known.any():
                raise ValueError(f"rmse: none of the {len(r)} ratings has a user and an item known to the model")
            warnings.warn(f"rmse: left out {int((~known).sum())} of {len(r)} ratings whose user or item is unknown "
                          f"to the model (see mascot.UNKNOWN_POLICY)", UnknownIdWarning, stacklevel=2)
        e = self._predict_dense(r.users[known], r.items[known]).astype(np.float64) - r.ratings[known]
        return float(np.sqrt(np.mean(e * e)))

    def _trained(self, which: str) -> np.ndarray | None:
        """Per dense user (item): whether it had a training rating; None when the model does not
        carry its training pairs (then every id in range counts as trained)."""
        if self.seen_ is None:
            return None
        cache = self.__dict__.setdefault("_trained_cache", {})
        hit = cache.get(which)
        if hit is None or hit[0] is not self.seen_:
            if which == "user":
                mask = np.diff(self.seen_.indptr) > 0
            else:
                mask = np.bincount(self.seen_.indices, minlength=self.Q_.shape[0]) > 0
            hit = (self.seen_, mask)
            cache[which] = hit
        return hit[1]

    def _known_ratings(self, r: Ratings, unknown: str, what: str) -> np.ndarray:
        """Per rating of ``r`` (dense ids): whether its user and item are known to the model
        (:data:`mascot.UNKNOWN_POLICY`); with ``unknown="raise"`` the first unknown one is a
        ValueError."""
        if unknown not in UNKNOWN_CHOICES:
            raise ValueError(f"unknown must be one of {UNKNOWN_CHOICES} (got {unknown!r})")
        known = np.ones(len(r), bool)
        for ids, n, trained in ((r.users, self.P_.shape[0], self._trained("user")),
                                (r.items, self.Q_.shape[0], self._trained("item"))):
            ok = ids < n
            if trained is not None:
                ok[ok] = trained[ids[ok]]
            known &= ok
        if unknown == "raise" and not known.all():
            j = int(np.argmin(known))
            raise ValueError(f"{what}: rating {j} (user {int(r.users[j])}, item {int(r.items[j])}) has a user or item "
                             f"unknown to the model ({int((~known).sum())} such ratings; see mascot.UNKNOWN_POLICY)")
        return known

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
        n = _inference.check_n(n, self.Q_.shape[0], "items")
        bu = _inference.check_block(block_users, "block_users")
        bi = _inference.check_block(block_items, "block_items")
        u, known = self._map("user").to_dense(users, "users", unknown)
        exclude = None
        if exclude_seen:
            pairs = self._seen_pairs(seen)
            rr, cc = pairs.rows(u)
            keep = known[rr]
            exclude = (rr[keep], cc[keep])
        elif seen is not None:
            raise ValueError("seen= is only used with exclude_seen=True")
        ids, scores = _inference.top_n(self.P_[u], self.Q_, n, exclude, bu, bi)
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
        n = _inference.check_n(n, self.Q_.shape[0] - 1, "other items")
        bi = _inference.check_block(block_items, "block_items")
        i, known = self._map("item").to_dense(items, "items", unknown)
        Q, scale = self.Q_, None
        if metric == "cosine":  # 1/|q| per item, applied block by block: no normalised copy of Q
            norm = np.sqrt(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))
            scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1), 0.0).astype(np.float32)
        A = Q[i] if scale is None else Q[i] * scale[i][:, None]
        ids, scores = _inference.top_n(A, Q, n, (np.arange(len(i)), i), 512, bi, col_scale=scale)
        ids[~known] = -1
        scores[~known] = -np.inf
        return self._map("item").to_public(ids), scores

    def set_id_maps(self, user_ids: Any = None, item_ids: Any = None) -> MF:
        """Attaches raw ids (one per dense user / item; None leaves that side dense), e.g. to a
        model trained by ``mascot_train`` on a prepared dataset: see :func:`dataset_id_maps`."""
        self._check_fitted()
        um = _inference.IdMap(user_ids, self.P_.shape[0], "user")
        im = _inference.IdMap(item_ids, self.Q_.shape[0], "item")
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
        _core.export_libmf(_path(path, "path"), np.ascontiguousarray(self.P_), np.ascontiguousarray(self.Q_),
                           float(self.train_mean_ or 0.0), ur, ir)

    # ------------------------------------------------------------------ id maps, seen pairs
    def _map(self, which: str) -> _inference.IdMap:
        raw = self.user_ids_ if which == "user" else self.item_ids_
        n = (self.P_ if which == "user" else self.Q_).shape[0]
        cache = self.__dict__.setdefault("_maps", {})
        hit = cache.get(which)
        if hit is None or hit[0] is not raw or hit[1].n != n:
            hit = (raw, _inference.IdMap(raw, n, which))
            cache[which] = hit
        return hit[1]

    @staticmethod
    def _with_id_maps(tr: Ratings, user_ids: Any, item_ids: Any):
        n = {"user": tr.n_users, "item": tr.n_items}
        for what, ids in (("user", user_ids), ("item", item_ids)):
            if ids is None:
                continue
            shape = np.shape(ids)
            if len(shape) != 1:
                raise ValueError(f"{what}_ids must be one-dimensional (got shape {shape})")
            if shape[0] < n[what]:
                raise ValueError(f"{what}_ids has {shape[0]} ids but the training data has {n[what]} {what}s")
            n[what] = shape[0]
        if (n["user"], n["item"]) != (tr.n_users, tr.n_items):
            tr = Ratings(tr.users, tr.items, tr.ratings, n["user"], n["item"])
        return tr, _inference.IdMap(user_ids, n["user"], "user"), _inference.IdMap(item_ids, n["item"], "item")

    def _seen_pairs(self, seen: Any) -> _inference.SeenPairs:
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
            warnings.simplefilter("ignore", _inference.UnknownIdWarning)
            du, uk = self._map("user").to_dense(su, "seen users", "skip")
            di, ik = self._map("item").to_dense(si, "seen items", "skip")
        if du.shape != di.shape:
            raise ValueError(f"seen users and items must have the same length (got {len(du)} and {len(di)})")
        k = uk & ik
        return _inference.SeenPairs.from_pairs(du[k], di[k], self.P_.shape[0], self.Q_.shape[0])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path/{P.npy,Q.npy,model.json}`` and the id maps and training pairs it has
        (``mascot._persist``) atomically (whole directory renamed in)."""
        self._check_fitted()
        seen = None if self.seen_ is None else (self.seen_.indptr, self.seen_.indices)
        _persist.write_model(_path(path, "path"), self.P_, self.Q_, method=self.method, params=self.get_params(),
                             report=self.report_, user_ids=self.user_ids_, item_ids=self.item_ids_, seen=seen,
                             train_mean=self.train_mean_)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MF:
        """Loads a model saved by ``MF.save`` or ``mascot_train --save`` (whose model.json has
        no "params": the parameters then come from its run report's config, threads and seed)."""
        path = Path(_path(path, "path"))
        P, Q, meta = _persist.read_model(path)
        if "params" in meta:
            what, params = "params", {p: v for p, v in meta["params"].items() if p in _PARAMS}
        else:
            what, params = "report", _params_from_saved_report(meta.get("report"))
        params.setdefault("k", int(P.shape[1]))
        params.setdefault("method", meta.get("method", "fp32"))
        try:
            m = cls(**params)
        except (TypeError, ValueError) as e:  # a hand-edited or foreign model.json
            raise ValueError(f"{path / 'model.json'}: invalid '{what}' ({_persist.first_line(e)})") from None
        if m.k != P.shape[1]:
            raise ValueError(f"{path / 'model.json'}: {what}.k = {m.k} but P.npy has k={P.shape[1]}")
        m.P_, m.Q_, m.report_ = P, Q, meta.get("report")
        try:
            extras = _persist.read_extras(path, meta)
            m.set_id_maps(extras.user_ids, extras.item_ids)
            if extras.seen is not None:
                m.seen_ = _inference.SeenPairs(*extras.seen, P.shape[0], Q.shape[0], str(path),
                                               ("seen_indptr.npy", "seen_indices.npy"))
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
        m.train_mean_ = extras.train_mean
        return m

    def _check_fitted(self) -> None:
        if self.P_ is None:
            raise RuntimeError("this MF model is not fitted yet: call fit() or MF.load()")

    def __repr__(self) -> str:
        return f"MF(k={self.k}, method={self.method!r}, epochs={self.epochs}, device={self.device!r})"


MF.__init__.__signature__ = _SIGNATURE  # help(MF), inspect.signature(MF): the table's keyword arguments


def _with_preset(preset: Any, given: dict) -> dict:
    """MF's keyword arguments from a preset (mascot.presets) under those given: a method's
    settings go to method_params, and an explicit ``groups`` overrides the preset's two sides."""
    from .presets import read_preset
    values = read_preset(preset)["params"]
    out, settings = {}, {}
    for name, v in values.items():
        if _TABLE[name]["scope"] == "competing":
            settings[name] = v
        elif not (name in ("user_groups", "item_groups") and "groups" in given):
            out[name] = v
    out.update(given)
    if settings:
        mp = given.get("method_params")
        out["method_params"] = {**settings, **(dict(mp) if isinstance(mp, Mapping) else {})} if mp is None or \
            isinstance(mp, Mapping) else mp
    return out


def _short_repr(v: Any) -> str:
    s = repr(v).replace("\n", " ")
    return s if len(s) <= 60 else s[:60] + "..."


def _as_int(v: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer parameter: Python or NumPy integer (not bool) within [lo, hi]."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name} must be an integer (got {_short_repr(v)})")
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        span = f">= {lo}" if hi is None or (hi == _INT32_MAX and v < lo) else \
            f"<= {hi}" if lo is None else f"between {lo} and {hi}"
        raise ValueError(f"{name} must be {span} (got {v})")
    return v


def _as_float(v: Any, name: str, what: str = "a number") -> float:
    """A real parameter: int, float or a NumPy integer / float (not bool, not str)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be {what} (got {_short_repr(v)})")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number (got {v})") from None


def _as_bool(v: Any, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False (got {_short_repr(v)})")
    return bool(v)


def _competing_params(method: str, params: dict) -> _core.CompetingParams:
    """``method_params`` as a CompetingParams: known fields of ``method`` only, each of the
    field's type (checked here, so every error is one line naming the key)."""
    p = _core.CompetingParams()
    valid = [n for names in _METHOD_PARAMS.values() for n in names]
    for name, value in params.items():
        if name not in valid:
            raise ValueError(f"unknown method parameter {_short_repr(name)} (valid: {', '.join(valid)})")
        row = _TABLE[name]
        if method not in row["methods"]:
            raise ValueError(f"method parameter {name!r} applies to method {', '.join(row['methods'])}, "
                             f"not {method!r}")
        key, t = f"method_params[{name!r}]", row["type"]
        if name == "loss_scale" and isinstance(value, str):  # the word mascot_train's --loss-scale takes too
            if value != "dynamic":
                raise ValueError(f"{key} must be a number or 'dynamic' (got {_short_repr(value)})")
            p.dynamic_loss_scale = True
            continue
        if t == "bool":
            value = _as_bool(value, key)
        elif t == "int":
            value = _as_int(value, key, *_INT32)
        elif t in ("float", "double"):
            value = _as_float(value, key, "a number" + (" or 'dynamic'" if name == "loss_scale" else ""))
            limit = float(np.finfo(np.float32).max) if t == "float" else float("inf")  # a C++ float
            if not (np.isfinite(value) and abs(value) <= limit):
                raise ValueError(f"{key} must be a finite number (got {value})")
        elif t == "enum":  # ALS's choices (als_solver, ...), by name
            if not isinstance(value, str) or value not in row["choices"]:
                raise ValueError(f"{key} must be one of {', '.join(row['choices'])} (got {_short_repr(value)})")
        else:  # int_list (muppet_word_lengths)
            if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__") or np.ndim(value) != 1:
                raise ValueError(f"{key} must be a list of integers (got {_short_repr(value)})")
            value = [_as_int(w, key, *_INT32) for w in value]
        setattr(p, name, value)
    return p


class _interruptible:
    """Context manager giving the on_epoch callback of a checkpointed run.  While it is active,
    the first Ctrl-C (SIGINT, main thread only) just asks the core to stop after the current
    epoch, so the final checkpoint gets written; the previous handler is back for a second one.
    ``log`` (an ``EpochProgress``) shows each epoch."""

    def __init__(self, log: _progress.EpochProgress):
        self.log = log
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
        self.log.epoch(rec)
        return not self.stopped[0]


def _same_value(a: Any, b: Any) -> bool:
    """Parameter values equal, numbers as the core stores them (float32 fields read back from JSON)."""
    num = (int, float, np.integer, np.floating)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(np.isclose(float(a), float(b), rtol=1e-6, atol=0.0))
    return a == b


def _planned_epochs(info: dict) -> int | None:
    """The epochs a checkpointed run was started for (its report's config), for the progress bar."""
    try:
        return int(json.loads(info["report"])["config"]["epochs"])
    except (KeyError, TypeError, ValueError):
        return None


def _raise_if_stopped(report: dict, ckpt: str) -> None:
    if report.get("totals", {}).get("interrupted"):
        n = report.get("totals", {}).get("epochs_run")
        raise KeyboardInterrupt(f"training interrupted after epoch {n}; checkpoint saved in {ckpt}; "
                                f"continue with MF.resume({ckpt!r}, train, test)")


def _params_from_report(rep: dict, info: dict) -> dict:
    """MF constructor parameters of a checkpointed run (its report's config)."""
    params = _config_params(rep["config"])
    params.update(threads=info["threads"], seed=info["seed"], device=info["device"],
                  deterministic=bool(info["deterministic"]))
    if params["deterministic"]:
        params["threads"] = 1
    return params


def _params_from_saved_report(rep: Any) -> dict:
    """MF constructor parameters of a model written by ``mascot_train --save`` (its run
    report's config, threads and seed; {} when the report has no config)."""
    if not isinstance(rep, dict) or not isinstance(rep.get("config"), dict):
        return {}
    params = _config_params(rep["config"])
    for key in ("threads", "seed"):
        if key in rep:
            params[key] = rep[key]
    return params


def _config_params(c: dict) -> dict:
    """A run report's "config" as MF parameters (the fields it has)."""
    params = {p["name"]: c[p["name"]] for p in _ARGS
              if p["scope"] == "config" and c.get(p["name"]) is not None}  # random_fp16 null: off
    mp = c.get("competing")
    if isinstance(mp, dict) and isinstance(c.get("method"), str):
        mp = {k: v for k, v in mp.items() if k in _METHOD_PARAMS.get(c["method"], ())}  # the method's own
        if mp.get("dynamic_loss_scale") is False:
            del mp["dynamic_loss_scale"]  # the default
        params["method_params"] = mp
    return params


def _path(p: Any, name: str) -> str:
    """A path parameter (str, bytes or os.PathLike) as str (a name that is not UTF-8 as surrogate
    escapes, which the core turns back into its bytes); anything else is a one-line error."""
    return os.fsdecode(fs_path(p, name))


def _check_test_ids(tr: Ratings, te: Ratings, unknown: str) -> None:
    """fit's ``unknown`` for its test set: "skip" leaves it to the core (which drops and counts the
    ratings of users or items without training ratings); "raise" refuses such a rating now."""
    if unknown not in UNKNOWN_CHOICES:
        raise ValueError(f"unknown must be one of {UNKNOWN_CHOICES} (got {unknown!r})")
    if unknown == "skip" or len(te) == 0:
        return
    has_u = np.bincount(tr.users, minlength=tr.n_users) > 0
    has_i = np.bincount(tr.items, minlength=tr.n_items) > 0
    ok_u = te.users < tr.n_users
    ok_u[ok_u] = has_u[te.users[ok_u]]
    ok_i = te.items < tr.n_items
    ok_i[ok_i] = has_i[te.items[ok_i]]
    known = ok_u & ok_i
    if not known.all():
        j = int(np.argmin(known))
        raise ValueError(f"test rating {j} (user {int(te.users[j])}, item {int(te.items[j])}) has a user or item "
                         f"without training ratings ({int((~known).sum())} such ratings; unknown='skip' drops and "
                         f"counts them)")


def _test_ratings(test: Any) -> Ratings | None:
    """The test set of fit / resume / memory_plan; its errors say that it is the test set."""
    if test is None:
        return None
    try:
        return as_ratings(test)
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise type(e)(msg if msg.startswith("test") else f"test set: {msg}") from None


class _core_errors:
    """Rewrites the core's command-line advice in its messages for Python: "lower user_groups
    (--groups, --user-groups)" names groups= / user_groups= instead (config.cc validate_for)."""

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if isinstance(e, ValueError) and "--groups" in str(e):
            raise type(e)(re.sub(r"\(--groups, --(user|item)-groups\)", r"(groups= or \1_groups=)", str(e))) from None
        return False
