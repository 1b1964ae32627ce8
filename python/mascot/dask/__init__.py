"""Distributed training on Dask: DSGD (Gemulla et al., KDD 2011) with the C++ core on every worker.

Usage (``pip install "mascot[dask]"``)::

    from distributed import Client
    import dask.dataframe as dd, mascot.dask
    client = Client("tcp://scheduler:8786")            # or Client(LocalCluster(...))
    model = mascot.dask.fit(client, dd.read_parquet("ratings/"), method="mascot-n1", epochs=20)
    model.predict(users, items); model.save("model")   # an ordinary mascot.MF

Data flow and ownership (docs/design.md §12).  The CLIENT runs the epoch loop with small
metadata only: per-user and per-item rating counts (summed on the workers), the relabelling
tables derived from them (rows sorted by count, dealt to p blocks in snake order so that blocks
hold about equal rating counts), the per-epoch plan (lr = TrainConfig.lr_at(epoch), seed), and
what tasks report (timings, updates, test SSE).  The WORKERS own the data: each input partition
is split by user block where it lives, worker w assembles its user block's ratings (split by
item block, in block-local ids) and keeps them with its P block for the whole run.  An epoch is
p sub-epochs; in sub-epoch s worker w trains block (w, (w + s) mod p) with
``_core.dask_sgd_block`` (the CPU kernels), so no two workers touch the same row; item blocks
then move one step around the ring (worker w + 1 -> w), in their storage precision (FP16 bits
for mascot-n1: half the bytes of fp32).  Test RMSE: each worker sums its test ratings' squared
errors against every item block after the epoch (p x p small tasks, added in (worker, block)
order on the client).  At the end the client gathers the factor blocks (the model) and undoes
the relabelling.

What is not built (see docs/design.md §12): the methods with per-group switching (mascot,
mascot-naive) and the competing methods, distributed ALS, recovery from a lost worker (a lost
worker stops the run with an error naming it), CUDA workers.
"""
from __future__ import annotations

import json
import operator
import time
from typing import Any

import numpy as np

from .. import _core, _progress
from ..model import MF
from . import _worker as W

__all__ = ["fit", "predict", "DaskMF", "WorkerLostError", "SUPPORTED_METHODS"]

#: Methods mascot.dask trains: float32 rows, FP16 rows, per-group precision with g-switching.
SUPPORTED_METHODS = ("fp32", "mascot-n1", "mascot")


class WorkerLostError(RuntimeError):
    """A worker holding blocks of the run disappeared; no model is returned."""


def _cols(columns: Any) -> tuple[str, str, str]:
    if not (isinstance(columns, (tuple, list)) and len(columns) == 3 and all(isinstance(c, str) for c in columns)):
        raise ValueError(f"columns must be three column names (user, item, rating), got {columns!r}")
    return tuple(columns)


class _Run:
    """One distributed fit: the client-side state (futures of blocks, metadata, the report)."""

    def __init__(self, client: Any, model: MF, workers: list[str] | None, cols: tuple[str, str, str]):
        from distributed import Client

        if not isinstance(client, Client):
            raise ValueError(f"client must be a distributed.Client (got {type(client).__name__})")
        self.client = client
        self.model = model
        self.cols = cols
        info = client.scheduler_info()
        known = sorted(info["workers"])
        if workers is None:
            workers = known
        workers = list(workers)
        unknown = [w for w in workers if w not in info["workers"]]
        if unknown:
            raise ValueError(f"unknown worker(s) {', '.join(unknown)} (the cluster has {', '.join(known)})")
        if not workers:
            raise ValueError("the Dask cluster has no workers")
        self.workers = workers
        self.p = len(workers)
        self.memory_limit = {w: int(info["workers"][w].get("memory_limit") or 0) for w in workers}
        self.bytes_to_client = 0
        self.live: list = []  # futures in flight, cancelled on an error or Ctrl-C

    # ------------------------------------------------------------------ plumbing
    def submit(self, fn, *args, w: int | None = None, **kw):
        extra = {} if w is None else {"workers": [self.workers[w]], "allow_other_workers": False}
        f = self.client.submit(fn, *args, pure=False, **extra, **kw)
        self.live.append(f)
        return f

    def gather(self, futs, what: str):
        """Waits for `futs` watching the cluster: a worker of the run that disappears stops the run
        with an error naming it (pinned tasks would otherwise wait for it forever)."""
        from dask.sizeof import sizeof
        from distributed import wait

        single = not isinstance(futs, list)
        fl = [futs] if single else futs
        while True:
            try:
                wait(fl, timeout=0.5)
                break
            except TimeoutError:
                self.check_workers(what)
        self.check_workers(what)
        try:
            out = self.client.gather(fl)
        except Exception:
            # a task that failed because its worker died (lost data, cancelled): name the worker
            # once the scheduler has noticed, else the task's own error stands
            for _ in range(20):
                self.check_workers(what)
                time.sleep(0.25)
            raise
        self.bytes_to_client += sum(int(sizeof(x)) for x in out)
        return out[0] if single else out

    def transfer_totals(self) -> dict:
        """Each worker's incoming-transfer totals (Dask's log); a worker that does not answer is
        checked for being lost, else left out of the report."""
        try:
            out = self.client.run(W.transfer_totals, workers=self.workers, on_error="return")
        except Exception:
            out = {}
        self.check_workers("the run")
        return {a: v for a, v in out.items() if isinstance(v, dict)}

    def check_workers(self, what: str) -> None:
        alive = set(self.client.scheduler_info()["workers"])
        for w, addr in enumerate(self.workers):
            if addr not in alive:
                raise WorkerLostError(f"dask worker {addr} (block {w} of {self.p}) was lost during {what}; "
                                      f"the run is stopped and no model is returned")

    def cancel(self) -> None:
        """Cancels the run's unfinished tasks (an error or Ctrl-C); finished ones are released
        with their last reference."""
        pending = list({f.key: f for f in self.live if not f.done()}.values())
        self.live = []
        if pending:
            self.client.cancel(pending)


def _relabel(count: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Rows sorted by rating count (most first, ties by id), dealt to p blocks in snake order
    (0..p-1, p-1..0, ...): each block gets rows of every popularity, so the p x p blocks hold
    about equal rating counts.  Returns (block of each id, local index of each id, original ids
    of each block in local order)."""
    order = np.argsort(-count, kind="stable").astype(np.int32)
    pos = np.arange(len(order)) % (2 * p)
    blk_sorted = np.where(pos < p, pos, 2 * p - 1 - pos).astype(np.int32)
    block = np.empty(len(order), np.int32)
    block[order] = blk_sorted
    local = np.empty(len(order), np.int32)
    members = []
    for b in range(p):
        ids = order[blk_sorted == b]
        local[ids] = np.arange(len(ids), dtype=np.int32)
        members.append(ids)
    return block, local, members


def _memory_check(run: _Run, block_ratings: np.ndarray, test_ratings: np.ndarray, rows_u: list, rows_i: list,
                  k: int, elem: int) -> list[int]:
    """Bytes each worker holds (its ratings twice while they are split and assembled, its test
    ratings, its P block twice, two item blocks twice: the one trained and the next), refused
    up front when a worker's memory_limit is lower."""
    need = []
    qmax = max(len(x) for x in rows_i) * k * elem
    for w, addr in enumerate(run.workers):
        b = 2 * 12 * int(block_ratings[w].sum()) + 12 * int(test_ratings[w]) + 2 * len(rows_u[w]) * k * elem + 4 * qmax
        need.append(b)
        lim = run.memory_limit[addr]
        if lim and b > lim:
            raise MemoryError(f"dask worker {addr} (block {w} of {run.p}) needs about {b / 2**20:.1f} MiB for its "
                              f"blocks but its memory_limit is {lim / 2**20:.1f} MiB: add workers or memory")
    return need


def fit(client: Any, ratings: Any, test: Any = None, *, columns: Any = ("user", "item", "rating"),
        n_users: int | None = None, n_items: int | None = None, workers: list[str] | None = None,
        rounds: int = 1, eval_every_epoch: bool = True, **params: Any) -> MF:
    """Trains an :class:`mascot.MF` by DSGD on the Dask cluster of ``client``.

    ``ratings`` (and ``test``) are Dask DataFrames with user, item and rating columns (dense
    0-based ids; ``columns`` names them); they are persisted on the workers and never collected
    on the client.  ``params`` are MF's (``method`` one of :data:`SUPPORTED_METHODS`, both
    roundings; ``threads`` does not apply: each task trains one block on one thread of its
    worker).  ``workers`` (addresses) picks the p workers, default all.  ``rounds`` = R splits
    each block into R chunks and an epoch into R x p sub-epochs (round r, sub-epoch s: chunk r
    of block (w, (w + s) mod p)): every rating still once per epoch, item blocks move R times as
    often, and the model gets closer to the single-process run (one stratum at a time for a
    whole 1/p of the epoch biases SGD towards the last strata; docs/benchmarks.md measures it).
    ``eval_every_epoch=False`` computes the test RMSE after the last epoch only.  Returns an
    ordinary fitted MF (predict, recommend with ``seen=``, save) whose ``report_`` is the
    distributed run's report: per epoch lr, times, test RMSE, updates and bytes moved; per
    worker compute and transfer times; bytes gathered to the client."""
    import dask.dataframe as dd

    verbose = params.get("verbose", False)
    model = MF(**params)
    if model.method not in SUPPORTED_METHODS:
        raise ValueError(f"mascot.dask trains methods {', '.join(SUPPORTED_METHODS)} (got {model.method!r}; "
                         f"mascot-naive, fp16, the competing methods and als are not distributed yet)")
    cols = _cols(columns)
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or not 1 <= rounds <= 1024:
        raise ValueError(f"rounds must be an integer in [1, 1024] (got {rounds!r})")
    for what, d in (("ratings", ratings), ("test", test)):
        if d is not None and not isinstance(d, dd.DataFrame):
            raise ValueError(f"{what} must be a dask.dataframe.DataFrame (got {type(d).__name__})")
    cfg = model._config()
    run = _Run(client, model, workers, cols)
    try:
        return _fit(run, cfg, ratings, test, n_users, n_items, verbose, int(rounds), bool(eval_every_epoch))
    except BaseException:
        run.cancel()  # an error or Ctrl-C: nothing of this run keeps running on the cluster
        raise


def _fit(run: _Run, cfg: Any, ratings: Any, test: Any, n_users: Any, n_items: Any, verbose: bool,
         rounds: int, eval_every_epoch: bool) -> MF:
    from distributed import futures_of

    t_start = time.perf_counter()
    m, p, cols = run.model, run.p, run.cols
    half = m.method == "mascot-n1"
    mixed = m.method == "mascot"
    elem = 2 if half else (6 if mixed else 4)  # mascot: a task unpacks into float32 and FP16 arrays
    k = m.k
    ratings = ratings.persist()
    parts = futures_of(ratings)
    tparts = []
    if test is not None:
        test = test.persist()
        tparts = futures_of(test)
    # 1. shape and counts, reduced on the workers
    if n_users is None or n_items is None:
        mx = run.gather([run.submit(W.part_max, f, cols, f"ratings partition {j}") for j, f in enumerate(parts)],
                        "counting")
        n_users = max(x[0] for x in mx) + 1 if n_users is None else n_users
        n_items = max(x[1] for x in mx) + 1 if n_items is None else n_items
    cnt = [run.submit(W.part_counts, f, cols, f"ratings partition {j}", n_users, n_items) for j, f in enumerate(parts)]
    ucount, icount, rsum = run.gather(run.submit(W.add_counts, *cnt), "counting")
    nnz = int(ucount.sum())
    if nnz == 0:
        raise ValueError("ratings is empty")
    # 2. relabelling tables (metadata) and the memory plan per worker
    ublock, ulocal, umembers = _relabel(ucount, p)
    iblock, ilocal, imembers = _relabel(icount, p)
    block_ratings = np.zeros((p, p), np.int64)  # exact, from the counts: ratings of (user block, item block)
    tables = {"user_block": ublock, "user_local": ulocal, "item_block": iblock, "item_local": ilocal,
              "user_count": ucount, "item_count": icount}
    [tables_f] = run.client.scatter([tables], broadcast=True)
    # 3. split every partition where it lives; worker w assembles its user block
    def distribute(prts: list, is_test: bool, name: str):
        sp = [run.submit(W.split_part, f, cols, f"{name} partition {j}", tables_f, p, is_test)
              for j, f in enumerate(prts)]
        blocks = [run.submit(W.assemble, p, m.seed, w, *[run.submit(W.pick, x, w) for x in sp], w=w)
                  for w in range(p)]
        dropped = sum(run.gather([run.submit(operator.getitem, x, 1) for x in sp], "splitting")) if is_test else 0
        return blocks, dropped

    # refused before any rating moves: each worker's training ratings are exact from the counts
    early = np.bincount(ublock, weights=ucount, minlength=p).astype(np.int64)[:, None]
    _memory_check(run, early, np.zeros(p, np.int64), umembers, imembers, k, elem)
    blocks, _ = distribute(parts, False, "ratings")
    test_blocks, dropped = distribute(tparts, True, "test") if test is not None else (None, 0)
    sizes = run.gather([run.submit(lambda bl: [len(x[0]) for x in bl], bw, w=w) for w, bw in enumerate(blocks)],
                       "splitting")
    block_ratings[:] = np.array(sizes, np.int64)
    tsizes = np.zeros(p, np.int64)
    if test_blocks is not None:
        tsizes[:] = [sum(x) for x in run.gather(
            [run.submit(lambda bl: [len(x[0]) for x in bl], bw, w=w) for w, bw in enumerate(test_blocks)], "splitting")]
    n_test = int(tsizes.sum())
    del ratings, parts, tparts, test  # the input partitions: each worker now holds its blocks
    need = _memory_check(run, block_ratings, tsizes, umembers, imembers, k, elem)  # again, with the test ratings
    # 4. initial factors on the workers that hold them first (item block w starts on worker w)
    if mixed:
        # groups of the global relabelling (rows sorted by count, split_groups); a block's local
        # rows keep that order, so each group is a contiguous local range: block-local tables
        gs = {}
        for side, count, members, ng in (("P", ucount, umembers, cfg.user_groups),
                                          ("Q", icount, imembers, cfg.item_groups)):
            order = np.argsort(-count, kind="stable")
            rank = np.empty(len(order), np.int64)
            rank[order] = np.arange(len(order))
            start = np.asarray(_core.dask_split_groups(count[order].astype(np.int64), int(ng)))
            local = [np.searchsorted(rank[x], start).astype(np.int32) for x in members]
            gs[side] = (local, np.zeros(len(start) - 1, np.uint8), _core.GroupSwitcher(len(start) - 1, m.threshold))
        (ust, uflags, usw), (ist, iflags, isw) = gs["P"], gs["Q"]
        P = [run.submit(W.mixed_init, umembers[w], k, cfg.init_std, m.seed, "P", ust[w], uflags, w=w)
             for w in range(p)]
        Q = [run.submit(W.mixed_init, imembers[b], k, cfg.init_std, m.seed, "Q", ist[b], iflags, w=b)
             for b in range(p)]
    else:
        P = [run.submit(W.init_rows, umembers[w], k, cfg.init_std, m.seed, "P", half, w=w) for w in range(p)]
        Q = [run.submit(W.init_rows, imembers[b], k, cfg.init_std, m.seed, "Q", half, w=b) for b in range(p)]
    switches = []
    base = run.transfer_totals()
    prm = {"half": half, "lambda_p": cfg.lambda_p, "lambda_q": cfg.lambda_q,
           "stochastic": m.rounding == "stochastic", "seed": m.seed, "p": p, "sample_ratio": m.sample_ratio,
           "rounds": rounds}
    epochs, stats_all = [], []
    q_bytes_epoch = 0
    with _progress.EpochProgress(verbose, m.epochs) as log:
        for e in range(m.epochs):
            t0 = time.perf_counter()
            prm_e = dict(prm, lr=float(cfg.lr_at(e)))
            measured = mixed and _core.dask_measured_epoch(e, m.warmup, m.period)
            for rnd in range(rounds):
                for s in range(p):
                    nQ = [None] * p
                    fresh = rnd == 0 and s == 0
                    for w in range(p):
                        b = (w + s) % p
                        # the P state stays on worker w (the next task there takes it whole); only
                        # the Q block, picked out of it, moves to worker w - 1
                        if mixed:
                            P[w] = run.submit(W.mixed_train_block, blocks[w], P[w], Q[b], b, w, s, e, prm_e, rnd,
                                              fresh, ust[w], ist[b], uflags, iflags, measured, w=w)
                        else:
                            P[w] = run.submit(W.train_block, blocks[w], P[w], Q[b], b, w, s, e, prm_e, rnd, fresh,
                                              w=w)
                        nQ[b] = run.submit(operator.getitem, P[w], 1, w=w)
                    Q = nQ
            stats = [x for y in run.gather([run.submit(W.epoch_stats, P[w], w=w) for w in range(p)],
                                           f"epoch {e + 1}") for x in y]
            stats.sort(key=lambda x: (x["round"], x["sub"], x["worker"]))
            if measured:  # g-switching on the workers' summed samples: one reduction, in (sub, worker) order
                new = []
                for side, key, flags, sw in (("u", "user_sums", uflags, usw), ("i", "item_sums", iflags, isw)):
                    tot = None
                    for x in stats:
                        tot = [a.copy() for a in x[key]] if tot is None else [a + c for a, c in zip(tot, x[key])]
                    flags = flags.copy()  # a new array: submitted tasks keep the one they were given
                    for g in sw.update(_core.dask_qerror(tot[0], tot[1], tot[2]), flags):
                        flags[g] = 1
                        switches.append({"side": side, "group": int(g), "epoch": e})
                    new.append(flags)
                uflags, iflags = new
            for x in stats:
                x.pop("user_sums", None)
                x.pop("item_sums", None)
            run.live = [*blocks, *(test_blocks or []), *P, *Q]  # the completed epoch's blocks
            t1 = time.perf_counter()
            rmse = None
            if test_blocks is not None and n_test and (eval_every_epoch or e == m.epochs - 1):
                sse = run.gather([run.submit(W.mixed_sse, test_blocks[w], P[w], Q[b], b, ust[w], ist[b], uflags,
                                             iflags, w=w) if mixed else
                                  run.submit(W.block_sse, test_blocks[w], P[w], Q[b], b, half, w=w)
                                  for w in range(p) for b in range(p)], f"evaluation of epoch {e + 1}")
                rmse = float(np.sqrt(sum(sse) / n_test))
                run.live = [*blocks, *test_blocks, *P, *Q]
            t2 = time.perf_counter()
            # every item block moved in from the next worker before each sub-epoch but the run's first
            q_bytes_epoch = sum(x["q_bytes"] for x in stats if e > 0 or x["sub"] > 0 or x["round"] > 0) if p > 1 else 0
            rec = {"epoch": e, "lr": prm_e["lr"], "train_seconds": t1 - t0, "eval_seconds": t2 - t1,
                   "test_rmse": rmse, "updates": int(sum(x["updates"] for x in stats)),
                   "compute_seconds": [float(sum(x["compute_seconds"] for x in stats if x["worker"] == w))
                                       for w in range(p)],
                   "item_block_bytes_moved": int(q_bytes_epoch)}
            if mixed:
                rec.update(measured=bool(measured), fp32_user_groups=int(uflags.sum()),
                           fp32_item_groups=int(iflags.sum()))
            epochs.append(rec)
            stats_all.extend(stats)
            log.epoch(rec)
    after = run.transfer_totals()
    # 5. the model: factor blocks gathered as float32, relabelling undone
    if mixed:
        Pf = run.gather([run.submit(W.mixed_float32, x, ust[w], uflags, True, w=w) for w, x in enumerate(P)],
                        "gathering the model")
        Qf = run.gather([run.submit(W.mixed_float32, x, ist[b], iflags) for b, x in enumerate(Q)],
                        "gathering the model")
    else:
        Pf = run.gather([run.submit(W.as_float32, x, True, w=w) for w, x in enumerate(P)], "gathering the model")
        Qf = run.gather([run.submit(W.as_float32, x) for x in Q], "gathering the model")  # where each block is
    run.live = []
    Pm = np.zeros((n_users, k), np.float32)
    Qm = np.zeros((n_items, k), np.float32)
    for w in range(p):
        Pm[umembers[w]] = Pf[w]
        Qm[imembers[w]] = Qf[w]
    if not (np.isfinite(Pm).all() and np.isfinite(Qm).all()):
        raise FloatingPointError("the distributed run diverged (non-finite factors); lower lr")
    per_worker = []
    for w, addr in enumerate(run.workers):
        a, b0 = after.get(addr, {}), base.get(addr, {})
        per_worker.append({"address": addr, "ratings": int(block_ratings[w].sum()), "test_ratings": int(tsizes[w]),
                           "user_rows": len(umembers[w]), "item_rows_block": len(imembers[w]),
                           "planned_bytes": need[w],
                           "compute_seconds": float(sum(x["compute_seconds"] for x in stats_all if x["worker"] == w)),
                           "transfer_seconds": float(a.get("seconds", 0) - b0.get("seconds", 0)),
                           "transfer_bytes_in": int(a.get("bytes", 0) - b0.get("bytes", 0)),
                           "transfers_in": int(a.get("transfers", 0) - b0.get("transfers", 0))})
    train_s = sum(e["train_seconds"] for e in epochs)
    eval_s = sum(e["eval_seconds"] for e in epochs)
    report = {"format": "mascot-run-report", "version": 1, "mascot_version": _core.__version__,
              "config": json.loads(json.dumps(m.get_params(), default=str)),
              "device": f"dask ({p} workers, 1 thread each, cpu)", "threads": 1, "seed": m.seed,
              "dataset": {"name": "", "n_users": int(n_users), "n_items": int(n_items), "n_train": nnz,
                          "n_test": n_test, "test_dropped": int(dropped)},
              "epochs": epochs, "switches": switches,
              "totals": {"train_seconds": train_s, "eval_seconds": eval_s,
                         "setup_seconds": time.perf_counter() - t_start - train_s - eval_s,
                         "updates_per_second": sum(e["updates"] for e in epochs) / train_s if train_s else 0.0,
                         "final_test_rmse": epochs[-1]["test_rmse"] if epochs else None,
                         "epochs_run": len(epochs), "interrupted": False},
              "dask": {"workers": p, "rounds": rounds, "per_worker": per_worker,
                       "block_ratings": block_ratings.tolist(),
                       "bytes_to_client": int(run.bytes_to_client), "schedule": stats_all}}
    m.P_, m.Q_, m.report_ = Pm, Qm, report
    m.train_mean_ = rsum / nnz
    return m


class DaskMF(MF):
    """:class:`mascot.MF` whose ``fit`` trains on a Dask cluster (:func:`fit`), in the shape of
    ``lightgbm.DaskLGBMRegressor``: ``DaskMF(client=client, method="mascot-n1").fit(ddf)``."""

    def __init__(self, client: Any = None, **params: Any):
        super().__init__(**params)
        self.client = client

    def __getstate__(self) -> dict:  # pickled without its client (predict broadcasts the model)
        return {k: v for k, v in self.__dict__.items() if k != "client"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.client = None

    def fit(self, ratings: Any, test: Any = None, **kw: Any) -> DaskMF:  # type: ignore[override]
        if self.client is None:
            from distributed import default_client

            self.client = default_client()
        params = dict(self.get_params(), method_params=self.method_params or None, verbose=self.verbose)
        fitted = fit(self.client, ratings, test, **kw, **params)
        self.P_, self.Q_, self.report_, self.train_mean_ = fitted.P_, fitted.Q_, fitted.report_, fitted.train_mean_
        return self


def predict(client: Any, model: MF, ratings: Any, columns: Any = ("user", "item")) -> Any:
    """Predictions of ``model`` for the (user, item) rows of the Dask DataFrame ``ratings``, as a
    Dask Series (float32; NaN where an id is not in the model), computed on the workers (the
    model is broadcast once)."""
    import dask.dataframe as dd

    if not isinstance(ratings, dd.DataFrame):
        raise ValueError(f"ratings must be a dask.dataframe.DataFrame (got {type(ratings).__name__})")
    if not (isinstance(columns, (tuple, list)) and len(columns) == 2):
        raise ValueError(f"columns must be two column names (user, item), got {columns!r}")
    model._check_fitted()
    [mf] = client.scatter([model], broadcast=True)
    return ratings.map_partitions(W.predict_part, tuple(columns), mf, meta=("prediction", np.float32))
