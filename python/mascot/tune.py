"""Hyper-parameter search with Optuna (the optional extra ``mascot[tune]``): :func:`tune` and
``mascot tune``.

Data flow: :func:`tune` gets a training and a validation set (``mascot tune`` carves the
validation set out of a dataset's training ratings: :func:`valid_split`; the test set is never
looked at).  Each Optuna trial builds an :class:`mascot.MF` from the fixed parameters and the
trial's suggestions (its validation is MF's), trains it through the core's ``train`` with an
``on_epoch`` callback that reports the validation RMSE of every epoch to the trial
(``trial.report``); when Optuna's pruner says so (``trial.should_prune``, a median rule over the
trials before) the callback stops the run and the trial ends as pruned (``TrialPruned``).  A run
whose validation RMSE is not finite (divergence; the core stops it) ends pruned too.  A completed
trial's value is the validation RMSE after its last epoch: what a run of the preset reproduces.

The search space (:data:`SPACE`): the learning rate eta0 (``lr``), ``lambda_p``, ``lambda_q``,
``init_std`` and the schedule's ``decay``, all log-uniform; and ``schedule`` when the parameter
table has that row (read at run time: ``_core.param_table()``), in which case ``decay`` is
suggested only for the decayed schedule.  A parameter given as fixed is not searched.

The sampler is TPE seeded by ``seed``, so a run is reproducible when training is
(``deterministic=True``; Hogwild with several threads is not bit-reproducible, and the sampler
follows the values it sees).  ``timeout`` (``--time-budget``) stops starting new trials after that
many seconds; the running trial finishes.

``mascot tune`` writes the best parameters as a preset file (mascot.presets: the fixed training
parameters and the searched ones) that ``mascot_train --preset FILE`` and ``MF(preset=FILE)``
read; the output is prepared before the search (a path that cannot be written fails at once) and
published only when the search has a result, so a failed or interrupted search leaves no file.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _core
from ._ratings import Ratings, as_ratings

# name: (low, high) of a log-uniform search
SPACE = {"lr": (1e-3, 0.2), "lambda_p": (1e-3, 0.3), "lambda_q": (1e-3, 0.3), "init_std": (1e-3, 0.3),
         "decay": (1e-3, 1.0)}
_TABLE = {p["name"]: p for p in _core.param_table()}
_TRAIN_METHOD = "mascot"  # what mascot_train trains unless told (apps/mascot_train/main.cc cli_defaults)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("mascot tune needs Optuna: pip install 'mascot[tune]' (or pip install optuna)") from None
    return optuna


def search_names(fixed: dict | None = None) -> list[str]:
    """What :func:`tune` searches given the fixed parameters: :data:`SPACE` and ``schedule``
    (when the table has it), less the fixed ones."""
    fixed = fixed or {}
    names = [n for n in SPACE if n not in fixed]
    if "schedule" in _TABLE and "schedule" not in fixed:
        names.append("schedule")
    return names


@dataclass
class TuneResult:
    """The outcome of :func:`tune`.  ``params``: the fixed training parameters and the best trial's
    searched ones (MF keyword arguments); ``rmse``: its validation RMSE after its last epoch."""

    params: dict
    rmse: float
    best_trial: int
    best_epoch: int  # 1-based epoch of the best trial's lowest validation RMSE
    n_trials: int
    n_complete: int
    n_pruned: int
    seconds: float
    searched: list = field(default_factory=list)
    study: Any = None

    def preset(self) -> dict:
        """The parameters a preset file keeps: the table's training rows of ``params`` (not the
        run's device, threads, seed)."""
        return {n: v for n, v in self.params.items() if n in _TABLE and _TABLE[n]["scope"] != "context"}

    def write_preset(self, path: str | os.PathLike, source: str = "") -> None:
        """Writes :meth:`preset` as a preset file (mascot.presets.write_preset: checked, atomic)."""
        from .presets import write_preset
        write_preset(path, self.preset(), self.rmse, source or "mascot.tune", self.metadata())

    def metadata(self) -> dict:
        return {"trials": self.n_trials, "complete": self.n_complete, "pruned": self.n_pruned,
                "best_trial": self.best_trial, "best_epoch": self.best_epoch, "seconds": round(self.seconds, 3),
                "searched": list(self.searched)}


def _check_count(v: Any, name: str, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo or v > 2**31 - 1:
        raise ValueError(f"{name} must be an integer >= {lo} (got {v!r})")
    return int(v)


def _check_timeout(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) or \
            not math.isfinite(v) or v <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, or None (got {v!r})")
    return float(v)


def tune(train: Any, valid: Any, n_trials: int = 30, timeout: float | None = None, *, seed: int = 0,
         prune: bool = True, verbose: bool = False, log: Callable[[str], None] | None = None,
         start: list | None = None, **fixed: Any) -> TuneResult:
    """Searches the learning rate, the regularisation, the init scale and the schedule on
    ``valid`` (module docstring), training on ``train`` (anything :func:`mascot.data.as_ratings`
    takes) with the fixed ``MF`` keyword arguments ``fixed`` (``k``, ``epochs``, ``method``,
    ``threads``, ...).  Returns a :class:`TuneResult`; ``result.write_preset(path)`` keeps it.
    ``n_trials`` trials at most, and none started after ``timeout`` seconds.  ``verbose=True``
    prints a line per trial (``log`` receives them instead when given).  Bad arguments raise
    ValueError before any training; ``RuntimeError`` when no trial completed.

    The first trial is MF's defaults for the searched parameters (where they lie in
    :data:`SPACE`), so the result is never worse on ``valid`` than the defaults; ``start`` (a list
    of dicts of searched values) puts further trials first."""
    from .model import MF, _core_errors

    optuna = _optuna()
    n_trials = _check_count(n_trials, "n_trials", 1)
    timeout = _check_timeout(timeout)
    seed = _check_count(seed, "seed", 0)
    for name, v in (("prune", prune), ("verbose", verbose)):
        if not isinstance(v, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False (got {v!r})")
    for bad in ("preset", "verbose"):
        if bad in fixed:
            raise ValueError(f"{bad} is not a parameter tune fixes (give the values themselves)")
    base = MF(**fixed)  # the fixed values' checks: ValueError naming the keyword, before any data is read
    tr = as_ratings(train)
    try:
        va = as_ratings(valid)
    except (ValueError, TypeError) as e:
        raise type(e)(f"valid set: {e}") from None
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"tune needs training and validation ratings (got {len(tr)} and {len(va)})")
    names = search_names(fixed)
    if not names:
        raise ValueError("nothing to search: every searched parameter is fixed (" + ", ".join(SPACE) + ")")
    say = log if log is not None else (print if verbose else None)
    epochs = base.epochs

    def suggest(trial) -> dict:
        p = {}
        if "schedule" in names:
            p["schedule"] = trial.suggest_categorical("schedule", list(_TABLE["schedule"]["choices"]))
        schedule = p.get("schedule", fixed.get("schedule", "decay"))
        for n in names:
            if n == "schedule" or (n == "decay" and schedule != "decay"):
                continue
            lo, hi = SPACE[n]
            p[n] = trial.suggest_float(n, lo, hi, log=True)
        return p

    def objective(trial) -> float:
        params = {**fixed, **suggest(trial)}
        m = MF(**params)
        curve: list[float] = []
        stopped = [None]

        def on_epoch(rec: dict) -> bool:
            r = rec["test_rmse"]
            if r is None or not math.isfinite(r):
                stopped[0] = "diverged"
                return False
            curve.append(r)
            trial.report(r, len(curve) - 1)
            if prune and trial.should_prune():
                stopped[0] = "pruned"
                return False
            return True

        try:
            with _core_errors():
                _core.train(m._config(), m._context(), tr.users, tr.items, tr.ratings, tr.n_users, tr.n_items,
                            va.users, va.items, va.ratings, "tune", on_epoch)
        except RuntimeError as e:  # the core's Diverged: a poor trial, not a failed search
            if not str(e).startswith("training diverged"):
                raise
            stopped[0] = "diverged"
        trial.set_user_attr("curve", curve)
        if stopped[0] or not curve:
            trial.set_user_attr("stopped", stopped[0] or "diverged")
            raise optuna.TrialPruned()
        return curve[-1]

    def progress(study, trial) -> None:
        if say is None:
            return
        curve = trial.user_attrs.get("curve", [])
        state = trial.state.name.lower()
        head = f"trial {trial.number + 1}/{n_trials}"
        if state == "complete":
            what = f"valid RMSE {trial.value:.5f} after {len(curve)} epochs"
        elif trial.user_attrs.get("stopped") == "diverged":
            what = f"diverged at epoch {len(curve) + 1}"
        elif state == "pruned":
            what = f"pruned after epoch {len(curve)} (valid RMSE {curve[-1]:.5f})" if curve else "pruned"
        else:
            what = state
        try:
            best = f"  best {study.best_value:.5f} (trial {study.best_trial.number + 1})"
        except ValueError:
            best = ""
        ps = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        dur = trial.duration.total_seconds() if trial.duration else 0.0
        say(f"{head}: {what}{best}  [{ps}]  {dur:.1f} s")

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    # successive halving: a trial goes on past epochs r, 3r, 9r, ... (r = epochs / 10) only while its
    # validation RMSE there is in the best third of the trials that reached it; a median rule let
    # about half of the trials run to the end, which made 30 trials cost more than a 3 x 3 grid
    # (docs/benchmarks.md)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 10), reduction_factor=3) \
        if prune else optuna.pruners.NopPruner()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    first = {n: getattr(base, n) for n in names if n not in SPACE or SPACE[n][0] <= getattr(base, n) <= SPACE[n][1]}
    if first.get("schedule", "decay") != "decay":
        first.pop("decay", None)
    for params in [first, *(start or [])]:
        if not isinstance(params, dict) or not set(params) <= set(names):
            raise ValueError(f"start must be a list of dicts of searched parameters ({', '.join(names)}); "
                             f"got {params!r}")
        study.enqueue_trial(params, skip_if_exists=True)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[progress], catch=())
    seconds = time.perf_counter() - t0
    states = [t.state.name for t in study.trials]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        raise RuntimeError(f"no trial completed ({len(study.trials)} run, {states.count('PRUNED')} pruned or "
                           f"diverged): widen the search with more trials, or fix lr lower")
    best = study.best_trial
    curve = best.user_attrs["curve"]
    # the method is kept even when it was MF's default: the values found suit it
    params = {"method": base.method, **fixed, **{n: _as_trained(n, v) for n, v in best.params.items()}}
    return TuneResult(params=params, rmse=float(best.value), best_trial=best.number + 1,
                      best_epoch=int(np.argmin(curve)) + 1, n_trials=len(study.trials), n_complete=len(done),
                      n_pruned=states.count("PRUNED"), seconds=seconds, searched=names, study=study)


def _as_trained(name: str, v: Any) -> Any:
    """A float32 parameter as the core holds it (its shortest decimal): the preset then reads
    back equal to the result, and trains the same model."""
    return float(str(np.float32(v))) if _TABLE[name]["type"] == "float" else v


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def valid_split(ratings: Any, fraction: float, seed: int = 42) -> tuple[Ratings, Ratings]:
    """A seeded per-user hold-out: of each user's n ratings, floor(fraction * n) go to the
    validation set (users with one rating keep it for training).  ``mascot.data.valid_split``
    is used instead where it exists (the early-stopping work adds it)."""
    from . import data
    shared = getattr(data, "valid_split", None)
    if shared is not None:
        return shared(ratings, fraction, seed)
    if isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < fraction < 1:
        raise ValueError(f"valid fraction must be a number in (0, 1) (got {fraction!r})")
    r = as_ratings(ratings)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(r))
    order = perm[np.argsort(r.users[perm], kind="stable")]  # each user's ratings, in a seeded order
    counts = np.bincount(r.users, minlength=r.n_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(r)) - np.repeat(starts, counts)  # position within its user
    hold = np.zeros(len(r), dtype=bool)
    hold[order] = rank < np.floor(fraction * counts[r.users[order]])
    pick = lambda m: Ratings.from_arrays(r.users[m], r.items[m], r.ratings[m], n_users=r.n_users,  # noqa: E731
                                         n_items=r.n_items)
    return pick(~hold), pick(hold)


# ---------------------------------------------------------------- mascot tune
class _ArgError(Exception):
    pass


_INT = re.compile(r"[+-]?[0-9]+")


def _parser() -> argparse.ArgumentParser:
    class P(argparse.ArgumentParser):
        def error(self, message: str):  # one line, exit 2
            raise _ArgError(message)

    ap = P(prog="mascot tune", description="Hyper-parameter search with Optuna on a validation split of the "
           "training ratings (the test set is not used): " + ", ".join(SPACE) +
           (" and schedule" if "schedule" in _TABLE else "") + "; pruning by the per-epoch validation RMSE. "
           "Prints a line per trial and the best parameters, and writes them as a preset file "
           "(mascot_train --preset FILE, MF(preset=FILE)).")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME", help="a synthetic name or a prepared dataset (its training ratings)")
    src.add_argument("--train", metavar="PATH", help="training ratings (.mrat or text)")
    ap.add_argument("--valid", metavar="PATH", help="validation ratings (default: a split of the training ratings)")
    ap.add_argument("--valid-fraction", metavar="F", type=_fraction, default=0.1,
                    help="share of each user's ratings held out for validation (default 0.1)")
    ap.add_argument("--trials", metavar="N", type=_positive_int, default=30, help="trials at most (default 30)")
    ap.add_argument("--time-budget", metavar="S", type=_seconds, default=None,
                    help="start no trial after S seconds (the running one finishes)")
    ap.add_argument("--out", metavar="FILE", default=None,
                    help="the preset file to write (default tuned-NAME.json in the current directory)")
    ap.add_argument("--sampler-seed", metavar="N", type=_nonneg_int, default=0,
                    help="seed of Optuna's TPE sampler (default 0); --seed seeds training and the split")
    ap.add_argument("--no-prune", action="store_true", help="run every trial to its last epoch")
    ap.add_argument("--quiet", "-q", action="store_true", help="no line per trial")
    fixed = ap.add_argument_group("fixed training parameters (mascot_train's options; see mascot_train --help)")
    own = {a for act in ap._actions for a in act.option_strings}  # --valid-fraction is tune's split, not a row
    for p in _core.param_table():
        if not p["flag"] or p["scope"] == "competing" or p["section"] == "internal" or p["flag"] in own:
            continue
        dest = "fixed_" + p["name"]
        if p["type"] == "bool":
            fixed.add_argument(p["flag"], dest=dest, action="store_const", const=True, default=None, help=p["help"])
        elif p["type"] == "enum":
            fixed.add_argument(p["flag"], dest=dest, metavar="NAME", choices=p["choices"], default=None,
                               help=p["help"])
        else:
            conv = _table_int(p) if p["type"] in ("int", "uint64") else _finite
            fixed.add_argument(p["flag"], dest=dest, metavar="X", type=conv, default=None, help=p["help"])
    return ap


def _positive_int(t: str) -> int:
    if not _INT.fullmatch(t) or int(t) < 1 or int(t) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"expects an integer >= 1 (got {t!r})")
    return int(t)


def _nonneg_int(t: str) -> int:
    if not _INT.fullmatch(t) or int(t) < 0 or int(t) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expects an integer >= 0 (got {t!r})")
    return int(t)


def _finite(t: str) -> float:
    from .cli import _finite_float  # the CLI's number rule (cli imports this module lazily)

    return _finite_float(t)


def _fraction(t: str) -> float:
    v = _finite(t)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expects a number in (0, 1) (got {t!r})")
    return v


def _seconds(t: str) -> float:
    v = _finite(t)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expects a number of seconds > 0 (got {t!r})")
    return v


def _table_int(p: dict):
    def conv(t: str) -> int:
        if not _INT.fullmatch(t):
            raise argparse.ArgumentTypeError(f"expects an integer (got {t!r})")
        return int(t)  # the range: MF's check, naming the keyword
    return conv


def main(argv: list[str]) -> int:
    """``mascot tune``: 0 on success, 2 for bad arguments or data, 1 for I/O errors and a search
    without result."""
    try:
        return _main(argv)
    except _ArgError as e:
        print(f"mascot tune: error: {e} (see mascot tune --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mascot tune: interrupted; no preset written", file=sys.stderr)
        return 130
    except ImportError as e:
        print(f"mascot tune: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        print(f"mascot tune: error: {_flag_names(str(e))}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print(f"mascot tune: error: {e}", file=sys.stderr)
        return 1


def _flag_names(msg: str) -> str:
    return msg.splitlines()[0] if msg else msg


def _main(argv: list[str]) -> int:
    from . import data
    from ._files import Outputs

    a = _parser().parse_args(argv)
    _optuna()
    fixed = {k[len("fixed_"):]: v for k, v in vars(a).items() if k.startswith("fixed_") and v is not None}
    fixed.setdefault("method", _TRAIN_METHOD)  # mascot_train's method (MF's default is fp32)
    if a.valid and not a.train:
        raise _ArgError("--valid goes with --train (a dataset's validation set is a split of its training ratings)")
    seed = fixed.get("seed", _TABLE["seed"]["default"])
    name = a.dataset or os.path.basename(a.train)
    out_path = a.out or "tuned-" + re.sub(r"[^A-Za-z0-9._-]", "_", name.rsplit(".", 1)[0] if a.train else name) + \
        ".json"
    from .model import MF
    MF(**fixed)  # bad fixed values: one line naming the keyword, before any data is read
    with Outputs() as out:
        h = out.file(out_path, "--out")
        out.prepare()  # an unwritable --out fails now, before the search; nothing is written on failure
        if a.dataset:
            train = data.load(a.dataset).train
        else:
            train = data.read(a.train)
        if a.valid:
            valid = data.read(a.valid)
        else:
            train, valid = valid_split(train, a.valid_fraction, seed)
        print(f"mascot tune: {name}: {len(train)} training and {len(valid)} validation ratings; "
              f"{a.trials} trials" + (f", time budget {a.time_budget:g} s" if a.time_budget else "") +
              f"; searching {', '.join(search_names(fixed))}", flush=True)
        res = tune(train, valid, a.trials, a.time_budget, seed=a.sampler_seed, prune=not a.no_prune,
                   log=None if a.quiet else (lambda s: print(s, flush=True)), **fixed)
        from .presets import preset_text
        source = "mascot tune " + " ".join(argv)
        out.write(h, preset_text(res.preset(), res.rmse, source, res.metadata(), what=out_path))
    print(f"best: valid RMSE {res.rmse:.5f} (trial {res.best_trial}; lowest at epoch {res.best_epoch}); "
          f"{res.n_complete} complete, {res.n_pruned} pruned of {res.n_trials} trials in {res.seconds:.1f} s")
    print("best parameters: " + " ".join(f"{k}={_fmt(v)}" for k, v in res.preset().items()))
    print(f"preset written: {out_path} (mascot_train --preset {out_path}; MF(preset={out_path!r}))")
    return 0
