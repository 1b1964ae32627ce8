"""Serial NumPy references of the competing methods (mpt, muppet, afp: cpu/competing.cc) and of
their decision rules, beside reference.py (serial SGD).  test_competing.py checks the trainer
against them bit for bit (one thread) and the core's rule hooks against the rules.

The per-rating references work in the style of reference.py: the visiting order and the initial
factors come from the core (visit_order, init_factors), every float32 operation is done in the
kernels' order (the dot product over reference.py's 16 lanes; the build has -ffp-contract=off, so
no fused multiply-adds), and the stochastic-rounding words are derived as competing.cc does:
  epoch key   hash3(seed, kStreamRound = 5, (method tag << 40) + epoch)   (mpt 1, muppet 2, afp 3)
  rating key  mix64(epoch key ^ (u << 32 | i))   on the relabelled ids (group reconstruction)
  words       fill_words: mix64(rating key + (tag << 24) + j) >> 32, element j of operand `tag`
  one word    one_word:   mix64(rating key + (tag << 24) + 0xFFFFFF) >> 32
"""
from __future__ import annotations

import math

import numpy as np

from mascot import _core
from reference import DEFAULTS, adagrad_rate, dot_lanes, half, hash3, lr_at, sr_half, sum_sq_lanes

# ----------------------------------------------------------------------------- rules

class _Steps:
    """The masters' step of the three methods: p + lr_e g_p (schedule decay), or LIBMF's per-row
    adagrad (reference.adagrad_update's rule on the method's gradients g_p, g_q) with a float32
    state per user and item row, starting at 1."""

    def __init__(self, schedule, lr, decay, n_users, n_items):
        self.ada = schedule == "adagrad"
        self.lr, self.decay = lr, decay
        self.GU, self.GI = np.ones(n_users, _F32), np.ones(n_items, _F32)

    def rate(self, epoch):
        return _F32(self.lr) if self.ada else lr_at(self.lr, self.decay, epoch)

    def __call__(self, lr_e, p, q, gp, gq, uu, ii):
        if not self.ada:
            return p + lr_e * gp, q + lr_e * gq
        k = len(p)
        ep, eq = adagrad_rate(lr_e, self.GU[uu]), adagrad_rate(lr_e, self.GI[ii])
        self.GU[uu] = _F32(self.GU[uu] + sum_sq_lanes(gp) / _F32(k))
        self.GI[ii] = _F32(self.GI[ii] + sum_sq_lanes(gq) / _F32(k))
        return p + ep * gp, q + eq * gq


def quantize(x, wl, f):
    """Fixed point at word length ``wl`` with ``f`` fractional bits, nearest (ties to even) and
    saturating: (the integer codes, their float32 values)."""
    lo, hi = -(2.0 ** (wl - 1)), 2.0 ** (wl - 1) - 1
    y = np.clip(x.astype(np.float64) * 2.0 ** f, lo, hi)
    return np.rint(y), (np.rint(y) * 2.0 ** -f).astype(np.float32)


def muppet_threshold(e, a=1.0, b=1.5, d=0.1):
    """MuPPET's violation threshold at epoch ``e``: alpha + beta exp(-decay e)."""
    return a + b * math.exp(-d * e)


def afp_quant_error(x, bits, s):
    """AFP's quantization error of ``x`` at ``bits`` bits with step 2^s: log2(|sum |x| - sum |x_q|| / sum |x| + 1)."""
    top = 2.0 ** (bits - 1) - 1
    q = np.clip(np.rint(x.astype(np.float64) / 2.0 ** s), -top - 1, top) * 2.0 ** s
    sa, sq = np.abs(x.astype(np.float64)).sum(), np.abs(q).sum()
    return math.log2(abs(sa - sq) / sa + 1)


def afp_rule(err_low, err_high, ranges, T=0.0005, a=0.04, b=0.1, g=2.0, d=100.0, low=8, high=16):
    """AFP at each re-evaluation: the low width unless its error exceeds T (then the high one),
    decided afresh; the moving average m follows the range's point position at the low width."""
    m, it = None, 0
    out = []
    for e8, e16, rg in zip(err_low, err_high, ranges):
        bits, err = (high, e16) if e8 > T else (low, e8)
        s = _core._testing.afp_point_position(rg, bits)
        s_low = _core._testing.afp_point_position(rg, low)
        prev = s_low if m is None else m
        m = a * s_low + (1 - a) * prev
        den = max(abs(m - prev), d * err * err)
        itv = b / den - g if den > 0 else 2.0 ** 40
        itv = int(min(max(itv, 1.0), 2.0 ** 40))
        out.append((it, bits, s, itv, err))
        it += itv
    return out


# ----------------------------------------------------------------------------- per-rating references

_U64 = np.uint64
_F32 = np.float32


def _mix64_np(x):
    """reference.mix64 (SplitMix64's finaliser) on a uint64 array (wrapping arithmetic)."""
    x = np.asarray(x, _U64)
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _rating_keys(seed, method_tag, epoch, u_new, i_new):
    """rating_round_key of every rating of an epoch (relabelled ids u_new, i_new)."""
    epoch_key = hash3(seed, 5, (method_tag << 40) + epoch)
    ui = (u_new.astype(_U64) << _U64(32)) | i_new.astype(np.uint32).astype(_U64)
    return _mix64_np(_U64(epoch_key) ^ ui)


def _fill_words(keys, tag, k):
    """fill_words(w, k, key, tag) for every rating key: shape (ratings, k), uint32."""
    with np.errstate(over="ignore"):
        base = keys + _U64(tag << 24)
        return (_mix64_np(base[:, None] + np.arange(k, dtype=_U64)[None, :]) >> _U64(32)).astype(np.uint32)


def _one_word(keys, tag):
    with np.errstate(over="ignore"):
        return (_mix64_np(keys + _U64((tag << 24) + 0xFFFFFF)) >> _U64(32)).astype(np.uint32)


def _py_frac_bits(max_abs, wl):
    """MuPPET's scale: the largest f with max_abs * 2^f <= 2^(wl-1) - 0.5, clamped to [-100, 100]
    (0 for a zero or non-finite max); exact, from frexp."""
    m = float(_F32(max_abs))
    if not (m > 0) or not math.isfinite(m):
        return 0
    mm, e = math.frexp(m)
    b, f = math.frexp(2.0 ** (wl - 1) - 0.5)
    return min(max(f - e - (0 if b >= mm else 1), -100), 100)


_FIXED_CACHE = {}  # (frac bits, word length) -> _Fixed


class _Fixed:
    """A dynamic fixed-point format: word length wl, f fractional bits (fixed_point.h)."""

    def __init__(self, f, wl):
        self.f, self.wl = f, wl
        self.scale, self.inv = _F32(2.0 ** f), _F32(2.0 ** -f)
        self.lo, self.hi = _F32(-(2 ** (wl - 1))), _F32(2 ** (wl - 1) - 1)
        self.range = (self.hi + _F32(0.5)) * self.inv  # muppet_range: what the scale accepts

    @classmethod
    def for_max(cls, max_abs, wl):
        f = _py_frac_bits(max_abs, wl)
        if (f, wl) not in _FIXED_CACHE:
            _FIXED_CACHE[f, wl] = cls(f, wl)
        return _FIXED_CACHE[f, wl]

    def rn(self, x):
        """Nearest (ties to even) on the 2^-f grid, saturating."""
        y = np.clip(np.asarray(x, _F32) * self.scale, self.lo, self.hi)
        return (np.rint(y) * self.inv).astype(_F32)

    def sr(self, x, words):
        """floor(y) + [u < y - floor(y)], u the word's top 24 bits / 2^24."""
        y = np.clip(np.asarray(x, _F32) * self.scale, self.lo, self.hi)
        fl = np.floor(y)
        u = (np.asarray(words, np.uint32) >> np.uint32(8)).astype(_F32) * _F32(2.0 ** -24)
        return ((fl + (u < y - fl).astype(_F32)) * self.inv).astype(_F32)


def _max_abs(a):
    return _F32(np.abs(a).max())


def _serial_setup(data, k, epochs, seed, init_std, order, groups):
    u = np.ascontiguousarray(data.users, np.int32)
    i = np.ascontiguousarray(data.items, np.int32)
    r = np.ascontiguousarray(data.ratings, _F32)
    P = _core._testing.init_factors(data.n_users, k, init_std, seed, "P").astype(_F32)
    Q = _core._testing.init_factors(data.n_items, k, init_std, seed, "Q").astype(_F32)
    visit = _core._testing.visit_order(u, i, data.n_users, data.n_items, order, epochs, 1, k, False, seed)
    ro = _core._testing.reorder(u, i, data.n_users, data.n_items, groups, groups)
    u_new, i_new = np.asarray(ro["user_new"])[u], np.asarray(ro["item_new"])[i]
    return u, i, r, P, Q, np.asarray(visit).reshape(epochs, len(r)), u_new, i_new


def mpt_reference(data, *, k, epochs, lr=DEFAULTS["lr"], decay=DEFAULTS["decay"], lambda_p=DEFAULTS["lambda_p"],
                  lambda_q=DEFAULTS["lambda_q"], init_std=DEFAULTS["init_std"],
                  seed=42, order="shuffle", rounding="nearest", groups=4, loss_scale=1000.0, dynamic=False,
                  window=2000, schedule="decay"):
    """Serial MPT (competing.cc class Mpt).  Per rating: FP16 copies of p, q; FP16 products
    accumulated in FP32 (16 lanes), the prediction stored as FP16; e = r - r_hat in FP32; the
    FP16 scaled loss gradient se = fp16(S e); FP16 gradients fp16(se q16), fp16(se p16); an
    overflow skips the update (dynamic S: S halves; after `window` clean updates S doubles);
    else p += lr (g_p / S - lambda_P p) on the FP32 master, with the S the gradient was scaled
    with.  Returns (P, Q, per epoch (skipped updates, S at the epoch's end, doublings of S))."""
    u, i, r, P, Q, visit, u_new, i_new = _serial_setup(data, k, epochs, seed, init_std, order, groups)
    step = _Steps(schedule, lr, decay, len(P), len(Q))
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    S, clean = _F32(loss_scale), 0
    top = _F32(65504.0)
    stats = []
    for e in range(epochs):
        lr_e = step.rate(e)
        if sr:
            keys = _rating_keys(seed, 1, e, u_new[visit[e]], i_new[visit[e]])
            w_pq = np.concatenate([_fill_words(keys, 1, k), _fill_words(keys, 2, k)], axis=1)
            w_g = np.concatenate([_fill_words(keys, 5, k), _fill_words(keys, 6, k)], axis=1)
            w_rhat, w_se = _one_word(keys, 3), _one_word(keys, 4)
        skipped = doubled = 0
        for x, t in enumerate(visit[e]):
            p, q = P[u[t]], Q[i[t]]
            pq = np.concatenate([p, q])
            pq16 = sr_half(pq, w_pq[x]) if sr else half(pq)  # the FP16 copies
            p16, q16 = pq16[:k], pq16[k:]
            dot = dot_lanes(p16, q16)
            rhat = sr_half(dot, w_rhat[x]) if sr else half(dot)
            err = _F32(r[t] - rhat)
            with np.errstate(over="ignore", invalid="ignore"):
                se = sr_half(S * err, w_se[x]) if sr else half(S * err)
                prod = se * np.concatenate([q16, p16])
                g = sr_half(prod, w_g[x]) if sr else half(prod)
            overflow = not (abs(se) <= top) or not np.all(np.abs(g) <= top)
            if sr:  # SR saturates at 65504: an overflow is what nearest rounding would send to inf
                overflow = overflow or not (abs(S * err) < _F32(65520)) or \
                    not (abs(se) * _max_abs(q16) < _F32(65520)) or not (abs(se) * _max_abs(p16) < _F32(65520))
            if overflow:
                skipped += 1
                if dynamic:
                    S, clean = max(S * _F32(0.5), _F32(2.0 ** -24)), 0
                continue
            inv = _F32(1) / S
            if dynamic:
                clean += 1
                if clean >= window:
                    S, clean = min(S * _F32(2), _F32(2.0 ** 40)), 0
                    doubled += 1
            P[u[t]], Q[i[t]] = step(lr_e, p, q, g[:k] * inv - lp * p, g[k:] * inv - lq * q, u[t], i[t])
        stats.append((skipped, float(S), doubled))
    return P, Q, stats


def muppet_reference(data, *, k, epochs, lr=DEFAULTS["lr"], decay=DEFAULTS["decay"], lambda_p=DEFAULTS["lambda_p"],
                     lambda_q=DEFAULTS["lambda_q"], init_std=DEFAULTS["init_std"],
                     seed=42, order="shuffle", rounding="nearest", groups=4, method_params=None,
                     schedule="decay"):
    """Serial MuPPET (competing.cc class Muppet); method_params as mascot.MF takes them.
    Fixed-point epoch at word length wl: the scales of P and Q from their max |x| at the epoch's
    start, lowered when a row read has outgrown them (max |row| > (2^(wl-1) - 0.5) 2^-f); per
    rating p_hat, q_hat quantized; e = r - p_hat . q_hat (FP32, 16 lanes); e_hat quantized with
    the scale of |e|; the weight gradients Q(e_hat q_hat) - lambda_P p_hat, Q with the scale of
    max_j |e_hat q_hat_j| (likewise for q); p += lr g_p on the FP32 master.  The epoch's last
    mini-batch gradient is the float32 sum (not the mean) of the last muppet_batch ratings' g_p
    (g_q): with one thread the worker records the tail of its last call, and every call (chunk)
    holds >= 4096 ratings here.  End of epoch: MuPPET's window (policy.py, in double, in the
    core's order) and on evaluation epochs the mean diversity, which the policy (the
    _core._testing.muppet_policy hook of MuppetPolicy, checked on its own above) turns into the next
    epoch's word length.  FP32 level: p += lr (e q - lambda_P p) literally.
    Returns (P, Q, per-epoch facts named as the report names them)."""
    params = _core.CompetingParams()
    for name, value in (method_params or {}).items():
        setattr(params, name, value)
    levels, batch = list(params.muppet_word_lengths), params.muppet_batch
    u, i, r, P, Q, visit, u_new, i_new = _serial_setup(data, k, epochs, seed, init_std, order, groups)
    step = _Steps(schedule, lr, decay, len(P), len(Q))
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    nnz = len(r)
    facts, diversity = [], []
    win_p, win_q, norm_p, norm_q = [0.0] * k, [0.0] * k, 0.0, 0.0
    wl = levels[0]
    for e in range(epochs):
        lr_e = step.rate(e)
        if wl == 32:
            for t in visit[e]:
                p, q = P[u[t]], Q[i[t]]
                err = _F32(r[t] - dot_lanes(p, q))
                P[u[t]], Q[i[t]] = step(lr_e, p, q, err * q - lp * p, err * p - lq * q, u[t], i[t])
            facts.append({"word_length": 32, "evaluated": False})
            diversity.append(math.nan)
        else:
            if sr:
                keys = _rating_keys(seed, 2, e, u_new[visit[e]], i_new[visit[e]])
                w_p, w_q, w_gp, w_gq = (_fill_words(keys, tag, k) for tag in (1, 2, 4, 5))
                w_e = _one_word(keys, 3)
            max_p, max_q = _max_abs(P), _max_abs(Q)
            fp, fq = _Fixed.for_max(max_p, wl), _Fixed.for_max(max_q, wl)
            f = {"word_length": wl, "frac_bits_p": fp.f, "frac_bits_q": fq.f, "max_abs_p": float(max_p),
                 "max_abs_q": float(max_q), "rescales": 0, "batch_ratings": min(batch, nnz)}
            bp, bq = np.zeros(k, _F32), np.zeros(k, _F32)
            for x, t in enumerate(visit[e]):
                p, q = P[u[t]], Q[i[t]]
                if _max_abs(p) > fp.range:
                    fp = _Fixed.for_max(_max_abs(p), wl)
                    f["rescales"] += 1
                if _max_abs(q) > fq.range:
                    fq = _Fixed.for_max(_max_abs(q), wl)
                    f["rescales"] += 1
                ph = fp.sr(p, w_p[x]) if sr else fp.rn(p)
                qh = fq.sr(q, w_q[x]) if sr else fq.rn(q)
                err = _F32(r[t] - dot_lanes(ph, qh))
                fe = _Fixed.for_max(abs(err), wl)
                eh = (fe.sr(err, w_e[x]) if sr else fe.rn(err))[()]
                fgp, fgq = _Fixed.for_max(abs(eh) * _max_abs(qh), wl), _Fixed.for_max(abs(eh) * _max_abs(ph), wl)
                gp = (fgp.sr(eh * qh, w_gp[x]) if sr else fgp.rn(eh * qh)) - lp * ph
                gq = (fgq.sr(eh * ph, w_gq[x]) if sr else fgq.rn(eh * ph)) - lq * qh
                P[u[t]], Q[i[t]] = step(lr_e, p, q, gp, gq, u[t], i[t])
                if x >= nnz - batch:
                    bp += gp
                    bq += gq
            f.update(frac_bits_p_end=fp.f, frac_bits_q_end=fq.f)
            # MuppetWindow::add: squared norms and sums in double, in element order
            f["batch_grad_norm2_p"] = sum(float(v) * float(v) for v in bp)
            f["batch_grad_norm2_q"] = sum(float(v) * float(v) for v in bq)
            win_p = [a + float(b) for a, b in zip(win_p, bp)]
            win_q = [a + float(b) for a, b in zip(win_q, bq)]
            norm_p += f["batch_grad_norm2_p"]
            norm_q += f["batch_grad_norm2_q"]
            f["evaluated"] = (e + 1) % params.muppet_resolution == 0
            if f["evaluated"]:  # MuppetWindow::mean_diversity, then the window starts afresh
                f["diversity_p"] = norm_p / sum(a * a for a in win_p)
                f["diversity_q"] = norm_q / sum(a * a for a in win_q)
                f["diversity"] = (f["diversity_p"] + f["diversity_q"]) / 2
                win_p, win_q, norm_p, norm_q = [0.0] * k, [0.0] * k, 0.0, 0.0
            diversity.append(f["diversity"] if f["evaluated"] else math.nan)
            facts.append(f)
        policy = _core._testing.muppet_policy(diversity + [math.nan], params)  # word length of the next epoch
        wl = int(policy["word_length"][-1])
        facts[-1]["switch_epochs"] = list(policy["switch_epochs"])
    return P, Q, facts


def _afp_point_position(range_, bits):
    """afp_point_position: the smallest s with range <= (2^(bits-1) - 1) 2^s, exactly (frexp),
    clamped to [-100, 100]; 0 for a zero or non-finite range (or one >= 3e38)."""
    r = float(range_)
    if not (r > 0) or not (r < float(_F32(3.0e38))):
        return 0
    m, e = math.frexp(r)
    t, f = math.frexp(2.0 ** (bits - 1) - 1)
    return min(max(e - f + (1 if m > t else 0), -100), 100)


def _afp_format(pos, bits):
    """make_fixed_format(-pos, bits) (AFP's step 2^pos) and the largest value it holds, hi 2^-f."""
    if (-pos, bits) not in _FIXED_CACHE:
        _FIXED_CACHE[-pos, bits] = _Fixed(-pos, bits)
    fmt = _FIXED_CACHE[-pos, bits]
    return fmt, fmt.hi * fmt.inv


def _sum_abs_lanes(rows):
    """sum_abs16 of every row of `rows` (n, k): |x_j| summed into lane j % 16 in float32, element
    order, then the lanes' tree (8, 4, 2, 1), as dot_lanes does for the dot product."""
    rows = np.abs(np.asarray(rows, _F32))
    n, k = rows.shape
    s = np.zeros((n, 16), _F32)
    for c in range(0, k, 16):
        w = min(16, k - c)
        s[:, :w] = s[:, :w] + rows[:, c:c + w]
    w = 8
    while w >= 1:
        s[:, :w] = s[:, :w] + s[:, w:2 * w]
        w //= 2
    return s[:, 0]


def _afp_error(rows, fmt):
    """Afp::reevaluate's error_at(f): every row rounded to nearest at the format (the format's
    error, not one stochastic draw's); the rows' float32 sum_abs16 of x and of x_q added in
    double in row order (slot order for P and Q; at most 32 float32 values of similar size,
    so in practice exact in any order, unlike the float32 lanes within a row), then
    afp_quant_error: log2(|sum|x| - sum|x_q|| / sum|x| + 1), 0 when sum|x| is 0."""
    n = len(rows)
    sums = _sum_abs_lanes(np.concatenate([rows, fmt.rn(rows)]))  # rows' sums, then their x_q's
    sa = sq = 0.0
    for a, b in zip(sums[:n], sums[n:]):
        sa += float(a)
        sq += float(b)
    return math.log2(abs(sa - sq) / sa + 1.0) if sa > 0 else 0.0


class _AfpTensor:
    """One tensor's AFP state of the (single) worker, AfpTensorState plus its format in use and
    that epoch's statistics, with afp_reevaluate_tensor as reevaluate()."""

    def __init__(self, params):
        self.c = params
        self.bits, self.pos, self.mov_avg, self.has_avg = params.afp_low_bits, 0, 0.0, False
        self.next, self.interval = 0, 1
        self.fmt, self.fmax = None, _F32(0)  # FixedFormat{} holds nothing: the first iteration re-evaluates
        self.last_bits = None  # width chosen by the previous re-evaluation (for the switch counts)
        self.up = self.down = 0
        self.new_epoch()

    def new_epoch(self):
        self.evals = self.saturated = self.to_high = self.itv_max = 0
        self.err_sum = self.err_max = self.itv_sum = 0.0

    def due(self, iteration, range_):
        return iteration >= self.next or range_ > self.fmax

    def reevaluate(self, rows, range_, iteration, due_by):
        c = self.c
        saturated = iteration < self.next  # due only because the range outgrew the format
        self.bits = c.afp_low_bits
        self.pos = pos_low = _afp_point_position(range_, self.bits)
        fmt, fmax = _afp_format(self.pos, self.bits)
        err = _afp_error(rows, fmt)
        if err > c.afp_error_threshold:  # afp_width: the high width, measured again
            self.bits = c.afp_high_bits
            self.to_high += 1
            self.pos = _afp_point_position(range_, self.bits)
            fmt, fmax = _afp_format(self.pos, self.bits)
            err = _afp_error(rows, fmt)
        # afp_set_interval, in double: m follows the point position at the low width
        prev = self.mov_avg if self.has_avg else float(pos_low)
        self.mov_avg = c.afp_alpha * pos_low + (1.0 - c.afp_alpha) * prev
        self.has_avg = True
        d1 = abs(self.mov_avg - prev)
        d2 = c.afp_delta * err * err
        den = d1 if d1 > d2 else d2
        itv = c.afp_beta / den - c.afp_gamma if den > 0 else float(2 ** 40)
        if not (itv >= 1.0):
            itv = 1.0
        itv = min(itv, float(2 ** 40))
        self.interval = int(itv)
        self.next = iteration + self.interval
        if self.next > due_by:  # a provisional decision (fewer than 32 recent rows)
            self.next = due_by if due_by > iteration else iteration + 1
            self.interval = self.next - iteration
        self.evals += 1
        self.saturated += saturated
        self.err_sum += err
        self.err_max = max(self.err_max, err)
        self.itv_sum += float(self.interval)
        self.itv_max = max(self.itv_max, self.interval)
        if self.last_bits is not None and self.bits != self.last_bits:
            self.up += self.bits > self.last_bits
            self.down += self.bits < self.last_bits
        self.last_bits = self.bits
        self.fmt, self.fmax = fmt, fmax

    def report(self):
        """What afp_epoch_json reports for this tensor with one worker."""
        n = self.evals
        return {"bits": self.bits, "threads_high": int(self.bits >= self.c.afp_high_bits), "threads": 1,
                "point_position_min": self.pos, "point_position_max": self.pos, "evaluations": n,
                "saturation_evaluations": self.saturated, "high_evaluations": self.to_high,
                "error_mean": self.err_sum / n if n else None, "error_max": self.err_max if n else None,
                "interval_mean": self.itv_sum / n if n else None, "interval_max": self.itv_max}


_AFP_RECENT = 32  # kAfpRecentRows
_INT64_MAX = 2 ** 63 - 1


def afp_reference(data, *, k, epochs, lr=DEFAULTS["lr"], decay=DEFAULTS["decay"], lambda_p=DEFAULTS["lambda_p"],
                  lambda_q=DEFAULTS["lambda_q"], init_std=DEFAULTS["init_std"],
                  seed=42, order="shuffle", rounding="nearest", groups=4, method_params=None, schedule="decay"):
    """Serial AFP (competing.cc class Afp, one worker); method_params as mascot.MF takes them.
    Three tensors P, Q, G, each with its own AFP state (bits, point position s, moving average m
    of s, next re-evaluation), carried across epochs; the iteration counts ratings of the run.
    Epoch start: max |P|, max |Q| over the whole tensors; the running maxima of the rows read
    start at 0.  Per rating (iteration `it`, `x`-th of the epoch):
      * the running max of P (Q) takes max |p_u| (|q_i|); range_P = max(epoch max, running max);
        u (i) goes to the ring of recent rows, slot x % 32;
      * P (then Q) is re-evaluated when it >= next or range > hi 2^-f of its format (the
        saturation guard): on the first min(x + 1, 32) ring slots' rows as they are now, in slot
        order; s for the range at the low width and the low width's error, above the threshold
        the high width and its error; the interval rule; a decision on fewer than 32 rows is due
        again by the iteration the 32nd row is read (afp_due_by);
      * p_hat, q_hat: p, q at their formats (SR words: tags 1, 2); e = r - p_hat . q_hat (FP32,
        16 lanes); g_p = e q_hat - lambda_P p_hat, g_q = e p_hat - lambda_Q q_hat;
      * G re-evaluated (rows g_p, g_q, range max |g|, no deadline) when due or saturated;
        g_p, g_q at G's format (SR words: tags 3, 4); p += lr g_p, q += lr g_q on the masters.
    Returns (P, Q, per epoch {"max_abs_p", "max_abs_q", "tensors": {name: the report's fields}},
    per tensor [width switches up, down] over the run)."""
    params = _core.CompetingParams()
    for name, value in (method_params or {}).items():
        setattr(params, name, value)
    u, i, r, P, Q, visit, u_new, i_new = _serial_setup(data, k, epochs, seed, init_std, order, groups)
    step = _Steps(schedule, lr, decay, len(P), len(Q))
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    tp, tq, tg = (_AfpTensor(params) for _ in range(3))
    recent_u, recent_i = np.zeros(_AFP_RECENT, np.int64), np.zeros(_AFP_RECENT, np.int64)
    it = 0
    facts = []
    for e in range(epochs):
        lr_e = step.rate(e)
        if sr:
            keys = _rating_keys(seed, 3, e, u_new[visit[e]], i_new[visit[e]])  # epoch_round_key(seed, 3, e)
            w_p, w_q = _fill_words(keys, 1, k), _fill_words(keys, 2, k)
            w_g = np.stack([_fill_words(keys, 3, k), _fill_words(keys, 4, k)], axis=1)  # (ratings, 2, k)
        max_p, max_q = _max_abs(P), _max_abs(Q)
        run_p = run_q = _F32(0)
        for t in (tp, tq, tg):
            t.new_epoch()
        for x, rt in enumerate(visit[e]):
            p, q = P[u[rt]], Q[i[rt]]
            run_p, run_q = max(run_p, _max_abs(p)), max(run_q, _max_abs(q))
            range_p, range_q = max(max_p, run_p), max(max_q, run_q)
            recent_u[x % _AFP_RECENT], recent_i[x % _AFP_RECENT] = u[rt], i[rt]
            n = min(x + 1, _AFP_RECENT)  # afp_recent_count
            due_by = it + (_AFP_RECENT - n) if n < _AFP_RECENT else _INT64_MAX  # afp_due_by
            if tp.due(it, range_p):
                tp.reevaluate(P[recent_u[:n]], range_p, it, due_by)
            if tq.due(it, range_q):
                tq.reevaluate(Q[recent_i[:n]], range_q, it, due_by)
            ph = tp.fmt.sr(p, w_p[x]) if sr else tp.fmt.rn(p)
            qh = tq.fmt.sr(q, w_q[x]) if sr else tq.fmt.rn(q)
            err = _F32(r[rt] - dot_lanes(ph, qh))
            g = np.stack([err * qh - lp * ph, err * ph - lq * qh])  # rows: grad p_u, grad q_i
            range_g = _max_abs(g)
            if tg.due(it, range_g):
                tg.reevaluate(g, range_g, it, _INT64_MAX)
            gp, gq = tg.fmt.sr(g, w_g[x]) if sr else tg.fmt.rn(g)
            P[u[rt]], Q[i[rt]] = step(lr_e, p, q, gp, gq, u[rt], i[rt])
            it += 1
        facts.append({"max_abs_p": float(max_p), "max_abs_q": float(max_q),
                      "tensors": {"P": tp.report(), "Q": tq.report(), "G": tg.report()}})
    return P, Q, facts, {"P": (tp.up, tp.down), "Q": (tq.up, tq.down), "G": (tg.up, tg.down)}
