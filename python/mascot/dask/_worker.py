"""The tasks that run on the Dask workers (mascot.dask): reading partitions, counting, splitting
into blocks, one DSGD block, the test SSE.  Each is a pure function of its arguments (factor
blocks are copied before the in-place kernel runs), so a future of a completed epoch stays valid
while the next epoch runs.  Ratings never leave the workers: what a task returns to the client
is a few numbers (counts, timings, sums); ratings move only worker to worker (the split)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import _core


def part_arrays(df: Any, cols: tuple[str, str, str], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users int32, items int32, ratings float32) of one DataFrame partition, checked."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)} (have {', '.join(map(str, df.columns))})")
    u = np.asarray(df[cols[0]].to_numpy())
    i = np.asarray(df[cols[1]].to_numpy())
    r = np.asarray(df[cols[2]].to_numpy(), dtype=np.float32)
    for a, name in ((u, cols[0]), (i, cols[1])):
        if a.size and (not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{where}: column {name} must hold integer ids (got {a.dtype})")
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int32).max):
            bad = int(np.flatnonzero((a < 0) | (a > np.iinfo(np.int32).max))[0])
            raise ValueError(f"{where}: {name} id {int(a[bad])} at row {bad} is out of range [0, 2^31)")
    if r.size and not np.isfinite(r).all():
        bad = int(np.flatnonzero(~np.isfinite(r))[0])
        raise ValueError(f"{where}: {cols[2]} at row {bad} is not finite ({r[bad]})")
    return u.astype(np.int32, copy=False), i.astype(np.int32, copy=False), r


def part_max(df: Any, cols: tuple[str, str, str], where: str) -> tuple[int, int, int]:
    u, i, _ = part_arrays(df, cols, where)
    return (int(u.max()) if u.size else -1, int(i.max()) if i.size else -1, int(u.size))


def part_counts(df: Any, cols: tuple[str, str, str], where: str, n_users: int, n_items: int) -> tuple:
    """Per-user and per-item rating counts of one partition, and the sum of its ratings."""
    u, i, r = part_arrays(df, cols, where)
    if u.size and (u.max() >= n_users or i.max() >= n_items):
        raise ValueError(f"{where}: ids beyond n_users = {n_users} / n_items = {n_items}")
    return (np.bincount(u, minlength=n_users).astype(np.int64), np.bincount(i, minlength=n_items).astype(np.int64),
            float(r.sum(dtype=np.float64)))


def add_counts(*parts: tuple) -> tuple:
    """Sum of part_counts results, in the given (partition) order."""
    cu = np.zeros_like(parts[0][0])
    ci = np.zeros_like(parts[0][1])
    s = 0.0
    for a, b, t in parts:
        cu += a
        ci += b
        s += t
    return cu, ci, s


def split_part(df: Any, cols: tuple[str, str, str], where: str, tables: dict, p: int, test: bool) -> list:
    """One partition split by user block: for user block w, (local user, local item, rating, item
    block) arrays.  Test partitions drop ratings of users or items without training ratings
    (as MF.fit does) and count them."""
    u, i, r = part_arrays(df, cols, where)
    if test:
        nu, ni = len(tables["user_block"]), len(tables["item_block"])
        ok = (u < nu) & (i < ni)
        ok[ok] &= (tables["user_count"][u[ok]] > 0) & (tables["item_count"][i[ok]] > 0)
        dropped = int((~ok).sum())
        u, i, r = u[ok], i[ok], r[ok]
    else:
        dropped = 0
    ub = tables["user_block"][u]
    ib = tables["item_block"][i]
    ul = tables["user_local"][u]
    il = tables["item_local"][i]
    out = []
    for w in range(p):
        m = ub == w
        out.append((ul[m], il[m], r[m], ib[m]))
    return [out, dropped]


def pick(x: list, w: int) -> Any:
    return x[0][w]


def assemble(p: int, seed: int, w: int, *pieces: tuple) -> list:
    """A worker's ratings from the pieces of every partition (partition order): per item block b
    the (local users, local items, ratings) arrays, in a seeded random order of (seed, w, b) so
    that the chunks of the sub-epoch rounds (contiguous slices) are random samples of the block."""
    ul = np.concatenate([x[0] for x in pieces]) if pieces else np.zeros(0, np.int32)
    il = np.concatenate([x[1] for x in pieces]) if pieces else np.zeros(0, np.int32)
    r = np.concatenate([x[2] for x in pieces]) if pieces else np.zeros(0, np.float32)
    ib = np.concatenate([x[3] for x in pieces]) if pieces else np.zeros(0, np.int32)
    order = np.argsort(ib, kind="stable")
    ul, il, r, ib = ul[order], il[order], r[order], ib[order]
    bounds = np.searchsorted(ib, np.arange(p + 1))
    out = []
    for b in range(p):
        perm = bounds[b] + np.random.default_rng([seed, w, b]).permutation(int(bounds[b + 1] - bounds[b]))
        out.append((ul[perm], il[perm], r[perm]))
    return out


def chunk(block: tuple, r: int, R: int) -> tuple:
    """Round r of R: the r-th contiguous slice of the block's ratings."""
    n = len(block[0])
    a, z = n * r // R, n * (r + 1) // R
    return block[0][a:z], block[1][a:z], block[2][a:z]


def p_state(P: Any) -> tuple:
    """A worker's resident P block as the train tasks pass it on: (P, unused, the epoch's stats so far)."""
    return P, None, []


def init_rows(original_ids: np.ndarray, k: int, std: float, seed: int, side: str, half: bool) -> Any:
    X = _core.dask_init_rows(original_ids, k, std, seed, side, half)
    return p_state(X) if side == "P" else X


def train_block(blocks: list, Ps: tuple, Q: np.ndarray, b: int, w: int, s: int, epoch: int, prm: dict, rnd: int,
                fresh: bool) -> tuple:
    """Sub-epoch (round rnd, s) on worker w: chunk rnd of block (w, b) on copies of the P and Q
    blocks.  Returns the new P state (P', Q', the epoch's stats with this one appended; fresh:
    the first sub-epoch of an epoch starts a new list)."""
    t0 = time.time()
    t = time.perf_counter()
    P = Ps[0].copy()
    Q = Q.copy()
    u, i, r = chunk(blocks[b], rnd, prm["rounds"])
    n = _core.dask_sgd_block(u, i, r, P, Q, prm["half"], prm["lr"], prm["lambda_p"], prm["lambda_q"],
                             prm["stochastic"], prm["seed"], epoch, (w * prm["p"] + b) * prm["rounds"] + rnd)
    dt = time.perf_counter() - t
    st = {"epoch": epoch, "round": rnd, "sub": s, "worker": w, "item_block": b, "updates": int(n),
          "compute_seconds": dt, "start": t0, "stop": time.time(), "q_bytes": int(Q.nbytes)}
    return P, Q, ([] if fresh else list(Ps[2])) + [st]


def epoch_stats(Ps: tuple) -> list:
    return Ps[2]


def block_sse(blocks: list, Ps: tuple, Q: np.ndarray, b: int, half: bool) -> float:
    u, i, r = blocks[b]
    return float(_core.dask_block_sse(u, i, r, Ps[0], Q, half)) if len(u) else 0.0


def as_float32(X: Any, state: bool = False) -> np.ndarray:
    """Factor rows in float32 (FP16 bits widened exactly); state: of a P state."""
    X = X[0] if state else X
    return X.view(np.float16).astype(np.float32) if X.dtype == np.uint16 else X


def transfer_totals(dask_worker: Any = None) -> dict:
    """This worker's incoming transfers so far (Dask's own log): count, bytes, seconds."""
    log = list(getattr(dask_worker, "transfer_incoming_log", []))
    return {"transfers": len(log), "bytes": int(sum(x.get("total", 0) for x in log)),
            "seconds": float(sum(x.get("duration", 0.0) for x in log))}


def predict_part(df: Any, cols: tuple[str, str], model: Any) -> Any:
    import pandas as pd

    u = df[cols[0]].to_numpy()
    i = df[cols[1]].to_numpy()
    return pd.Series(model.predict(u, i, unknown="skip") if len(u) else np.zeros(0, np.float32), index=df.index,
                     dtype=np.float32, name="prediction")


# ---------------------------------------------------------------------- method mascot (per-group)
# A block of a per-group side travels packed: (float32 rows of its FP32 groups, FP16 bits of the
# rows of its FP16 groups, the group flags it was packed with), so FP16 rows cost 2 bytes an
# element on the wire.  A task unpacks it into the full-size arrays the kernel indexes, widening
# the rows of groups switched since it was packed (FP16 -> FP32 is exact), and packs the result.

def _row_mask(start: np.ndarray, flags: np.ndarray) -> np.ndarray:
    return np.repeat(flags.astype(bool), np.diff(start))


def mixed_init(original_ids: np.ndarray, k: int, std: float, seed: int, side: str, start: np.ndarray,
               flags: np.ndarray) -> tuple:
    X32 = _core.dask_init_rows(original_ids, k, std, seed, side, False)
    X16 = _core.dask_init_rows(original_ids, k, std, seed, side, True)
    packed = mixed_pack(X32, X16, start, flags)
    return p_state(packed) if side == "P" else packed


def mixed_pack(X32: np.ndarray, X16: np.ndarray, start: np.ndarray, flags: np.ndarray) -> tuple:
    m = _row_mask(start, flags)
    return np.ascontiguousarray(X32[m]), np.ascontiguousarray(X16[~m]), flags.copy()


def mixed_unpack(packed: tuple, start: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p32, p16, was = packed
    rows, k = int(start[-1]), (p32.shape[1] if p32.ndim == 2 else p16.shape[1])
    X32 = np.zeros((rows, k), np.float32)
    X16 = np.zeros((rows, k), np.uint16)
    m_was = _row_mask(start, was)
    X32[m_was] = p32
    X16[~m_was] = p16
    widened = _row_mask(start, flags) & ~m_was
    X32[widened] = X16[widened].view(np.float16).astype(np.float32)
    return X32, X16


def mixed_train_block(blocks: list, Ps: tuple, Q: tuple, b: int, w: int, s: int, epoch: int, prm: dict, rnd: int,
                      fresh: bool, ustart: np.ndarray, istart: np.ndarray, uflags: np.ndarray, iflags: np.ndarray,
                      sample: bool) -> tuple:
    t0 = time.time()
    t = time.perf_counter()
    P32, P16 = mixed_unpack(Ps[0], ustart, uflags)
    Q32, Q16 = mixed_unpack(Q, istart, iflags)
    u, i, r = chunk(blocks[b], rnd, prm["rounds"])
    n, us, is_ = _core.dask_mixed_block(u, i, r, P32, P16, ustart, uflags, Q32, Q16, istart, iflags, prm["lr"],
                                        prm["lambda_p"], prm["lambda_q"], prm["stochastic"], prm["seed"], epoch,
                                        (w * prm["p"] + b) * prm["rounds"] + rnd, sample, prm["sample_ratio"])
    Pn = mixed_pack(P32, P16, ustart, uflags)
    Qn = mixed_pack(Q32, Q16, istart, iflags)
    dt = time.perf_counter() - t
    st = {"epoch": epoch, "round": rnd, "sub": s, "worker": w, "item_block": b, "updates": int(n),
          "compute_seconds": dt, "start": t0, "stop": time.time(), "q_bytes": int(Qn[0].nbytes + Qn[1].nbytes),
          "user_sums": us, "item_sums": is_}
    return Pn, Qn, ([] if fresh else list(Ps[2])) + [st]


def mixed_sse(blocks: list, Ps: tuple, Q: tuple, b: int, ustart: np.ndarray, istart: np.ndarray,
              uflags: np.ndarray, iflags: np.ndarray) -> float:
    u, i, r = blocks[b]
    if not len(u):
        return 0.0
    P32, P16 = mixed_unpack(Ps[0], ustart, uflags)
    Q32, Q16 = mixed_unpack(Q, istart, iflags)
    return float(_core.dask_mixed_sse(u, i, r, P32, P16, ustart, uflags, Q32, Q16, istart, iflags))


def mixed_float32(P: tuple, start: np.ndarray, flags: np.ndarray, state: bool = False) -> np.ndarray:
    """Float32 rows of a packed block (state: of a P state)."""
    X32, X16 = mixed_unpack(P[0] if state else P, start, flags)
    m = _row_mask(start, flags)
    X32[~m] = X16[~m].view(np.float16).astype(np.float32)
    return X32
