"""The competing methods (mpt, muppet, afp): their number formats against NumPy references,
their decision rules on crafted sequences, and each method end to end against fp32."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import mascot
from mascot import _core

from backends import host_has_avx2
from reference import dot_lanes, half, hash3, lr_at, sr_half

WORD_LENGTHS = (8, 12, 14, 16)


def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


# ----------------------------------------------------------------------------- fixed point

@pytest.mark.parametrize("wl", WORD_LENGTHS + (2, 24))
def test_frac_bits_is_the_largest_scale_that_fits(wl):
    rng = np.random.default_rng(wl)
    maxes = np.concatenate([10.0 ** rng.uniform(-20, 20, 400), [1.0, 0.5, 2 ** (wl - 1) - 0.5, 3.0, 1e-30]])
    maxes = maxes.astype(np.float32)
    for m in maxes:
        m = float(m)
        f = _core.fixed_point_frac_bits(m, wl)
        bound = 2.0 ** (wl - 1) - 0.5  # MuPPET: max * 2^f <= 2^(WL-1) - 0.5, f as large as possible
        if -100 < f < 100:
            assert m * 2.0 ** f <= bound < m * 2.0 ** (f + 1), (m, wl, f)
            # the log formula of MuPPET's quantize.py gives the same (away from exact ties)
            assert f == math.floor(math.log2(bound / m)) or abs(math.log2(bound / m) - round(math.log2(bound / m))) < 1e-9
        # AFP: s = ceil(log2(max / (2^(WL-1) - 1))), frac bits = -s
        s = -_core.fixed_point_frac_bits(m, wl, "afp")
        assert s == _core.afp_point_position(m, wl)
        top = 2.0 ** (wl - 1) - 1
        if -100 < s < 100:
            assert top * 2.0 ** (s - 1) < m <= top * 2.0 ** s, (m, wl, s)
    assert _core.fixed_point_frac_bits(0.0, wl) == 0  # all-zero tensor: MuPPET's convention
    assert _core.afp_point_position(0.0, wl) == 0
    # extreme ranges clamp to the fixed-point guards (2^-s must stay a normal float), as MuPPET's do
    assert _core.afp_point_position(1e-38, wl) == -100 and _core.afp_point_position(3e37, wl) == 100


def _np_quantize(x, wl, f):
    lo, hi = -(2.0 ** (wl - 1)), 2.0 ** (wl - 1) - 1
    y = np.clip(x.astype(np.float64) * 2.0 ** f, lo, hi)
    return np.rint(y), (np.rint(y) * 2.0 ** -f).astype(np.float32)


@pytest.mark.parametrize("wl", WORD_LENGTHS)
def test_quantize_nearest_matches_numpy(wl):
    rng = np.random.default_rng(100 + wl)
    x = (rng.standard_normal(20000) * 0.3).astype(np.float32)
    f = _core.fixed_point_frac_bits(float(np.abs(x).max()), wl)
    codes_ref, vals_ref = _np_quantize(x, wl, f)
    vals = _core.fixed_point_quantize(x, wl)  # scale from max |x| by default
    codes = _core.fixed_point_quantize(x, wl, codes=True)
    assert vals.dtype == np.float32
    assert np.array_equal(codes, codes_ref)
    assert np.array_equal(vals, vals_ref)
    assert codes.max() <= 2 ** (wl - 1) - 1 and codes.min() >= -(2 ** (wl - 1))
    # the scale uses the word length: at most half a step of error, the step is 2^-f
    assert np.abs(vals.astype(np.float64) - x).max() <= 0.5 * 2.0 ** -f
    # given max_abs or frac_bits explicitly
    assert np.array_equal(_core.fixed_point_quantize(x, wl, max_abs=float(np.abs(x).max())), vals)
    assert np.array_equal(_core.fixed_point_quantize(x, wl, frac_bits=f), vals)


def test_quantize_ties_go_to_even_and_values_clamp():
    wl, f = 8, 2  # step 0.25, codes in [-128, 127]
    x = np.array([0.125, 0.375, -0.125, -0.375, 0.625, 100.0, -100.0, 31.75, 31.9, -32.0, -32.2], np.float32)
    codes = _core.fixed_point_quantize(x, wl, frac_bits=f, codes=True)
    assert codes.tolist() == [0, 2, -0, -2, 2, 127, -128, 127, 127, -128, -128]
    vals = _core.fixed_point_quantize(x, wl, frac_bits=f)
    assert vals.tolist() == [0.0, 0.5, -0.0, -0.5, 0.5, 31.75, -32.0, 31.75, 31.75, -32.0, -32.0]
    # stochastic rounding saturates the same way
    s = _core.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=3)
    assert s[5] == 31.75 and s[6] == -32.0


@pytest.mark.parametrize("wl", (8, 12))
def test_quantize_stochastic_neighbours_and_unbiased(wl):
    n = 200_000
    f = wl - 4  # step 2^-f
    step = 2.0 ** -f
    for value in (0.3 * step, 5.37 * step, -2.71 * step, -0.5 * step, 7.0 * step):
        x = np.full(n, value, np.float32)
        v = float(x[0])
        out = _core.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=11).astype(np.float64)
        lo = math.floor(v / step) * step
        assert set(np.unique(out)) <= {lo, lo + step}  # one of the two neighbours
        p = (v - lo) / step
        tol = 5 * math.sqrt(max(p * (1 - p), 1e-12) / n) * step + 1e-7 * step
        assert abs(out.mean() - v) <= tol, (value, out.mean(), v)
        if p == 0:
            assert np.all(out == v)  # representable values never move
    # different seeds draw differently, the same seed reproduces
    x = np.full(1000, 0.5 * step, np.float32)
    a = _core.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=1)
    assert np.array_equal(a, _core.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=1))
    assert not np.array_equal(a, _core.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=2))


def test_quantize_rejects_bad_arguments():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="word_length"):
        _core.fixed_point_quantize(x, 1)
    with pytest.raises(ValueError, match="word_length"):
        _core.fixed_point_quantize(x, 25)
    with pytest.raises(ValueError, match="mode"):
        _core.fixed_point_quantize(x, 8, mode="up")
    with pytest.raises(ValueError, match="frac_bits"):
        _core.fixed_point_quantize(x, 8, frac_bits=1000)


# ----------------------------------------------------------------------------- FP16 values (MPT)

def _half_test_values():
    rng = np.random.default_rng(5)
    mags = 10.0 ** rng.uniform(-9, 5.2, 60000)
    x = (mags * rng.choice([-1, 1], mags.size)).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.99, 65520, 65536, 1e30, -1e30,
                        2 ** -14, 2 ** -15, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 6.1e-5, 1 + 2 ** -11,
                        1 + 3 * 2 ** -11, 0.1, 1 / 3], np.float32)
    # exact ties of the FP16 mantissa
    ties = (np.arange(1, 2000, dtype=np.float32) * 2 ** -10 + 2 ** -11 + 1).astype(np.float32)
    return np.concatenate([x, special, -special, ties])


def _same_floats(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(_bits(a[~nan]), _bits(b[~nan]))


def test_branchless_half_rounding_matches_half_h():
    x = _half_test_values()
    assert _same_floats(_core.half_round_fast(x, "nearest"), _core.half_round(x, "nearest"))
    for seed in (0, 7):
        assert _same_floats(_core.half_round_fast(x, "stochastic", seed), _core.half_round(x, "stochastic", seed))


# ----------------------------------------------------------------------------- MPT loss scale

def test_mpt_static_loss_scale_never_changes_and_skips_overflows():
    ovf = [False] * 5 + [True] + [False] * 3000
    scale, applied = _core.mpt_loss_scale(ovf, loss_scale=1000.0, dynamic=False, window=2000)
    assert np.all(scale == 1000.0)
    assert applied == [not o for o in ovf]


def test_mpt_dynamic_loss_scale_halves_on_overflow_and_doubles_after_window():
    ovf = [False, False, False, False, True, False, False, False, True, True]
    scale, applied = _core.mpt_loss_scale(ovf, loss_scale=1000.0, dynamic=True, window=3)
    assert scale.tolist() == [1000, 1000, 1000, 2000, 2000, 1000, 1000, 1000, 2000, 1000]
    assert applied == [True, True, True, True, False, True, True, True, False, False]
    # the default window: 2000 clean updates per doubling
    scale, applied = _core.mpt_loss_scale([False] * 4001, loss_scale=1.0, dynamic=True)
    assert scale[1999] == 1 and scale[2000] == 2 and scale[3999] == 2 and scale[4000] == 4
    assert all(applied)
    # a clean run resets after an overflow: the window restarts
    scale, _ = _core.mpt_loss_scale([False] * 2 + [True] + [False] * 3, loss_scale=8.0, dynamic=True, window=3)
    assert scale.tolist() == [8, 8, 8, 4, 4, 4]


# ----------------------------------------------------------------------------- MuPPET policy

def _muppet_threshold(e, a=1.0, b=1.5, d=0.1):
    return a + b * math.exp(-d * e)


def test_muppet_diversity_matches_numpy():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 2, 16))
    ref = np.mean([(g[:, l] ** 2).sum() / (g[:, l].sum(axis=0) ** 2).sum() for l in range(2)])
    assert _core.muppet_diversity(g) == pytest.approx(ref, rel=1e-12)
    same = np.repeat(rng.standard_normal((1, 2, 8)), 3, axis=0)  # identical gradients: 1 / r
    assert _core.muppet_diversity(same) == pytest.approx(1 / 3)
    assert math.isnan(_core.muppet_diversity(np.zeros((3, 2, 4))))


def test_muppet_policy_switches_after_patience_violations_at_evaluation_epochs():
    # evaluations at epochs 2, 5, 8, ... ((e + 1) % 3 == 0); other epochs' values are ignored
    d = np.full(30, 1e-9)  # would be violations if they were read
    d[2], d[5], d[8] = 1.0, 0.1, 0.1          # max 1; ratio 10 > T twice -> switch after epoch 8
    d[11], d[14], d[17], d[20] = 1.0, 0.1, 0.9, 0.1  # new level: max reset; 1.11 < T(17); switch after 20
    d[23], d[26], d[29] = 2.0, 1.9, 1.95
    r = _core.muppet_policy(d.tolist())
    assert r["switch_epochs"] == [8, 20]
    wl = r["word_length"].tolist()
    assert wl[:9] == [8] * 9 and wl[9:21] == [12] * 12 and wl[21:] == [14] * 9
    assert r["evaluated"] == [(e + 1) % 3 == 0 for e in range(30)]
    assert r["violations"].tolist()[:9] == [0] * 5 + [1] * 3 + [0]
    assert r["ratio"][5] == pytest.approx(10.0) and r["ratio"][17] == pytest.approx(1 / 0.9)
    assert np.allclose(r["threshold"], [_muppet_threshold(e) for e in range(30)])
    assert all(np.isnan(r["ratio"][e]) for e in range(30) if (e + 1) % 3)


def test_muppet_policy_patience_and_parameters():
    d = [1.0 if e == 2 else 0.05 for e in range(40)]
    p = _core.CompetingParams()
    p.muppet_patience = 3
    r3 = _core.muppet_policy(d, p)
    assert r3["switch_epochs"][0] == 11  # violations at 5, 8, 11
    r2 = _core.muppet_policy(d)
    assert r2["switch_epochs"][0] == 8
    p = _core.CompetingParams()
    p.muppet_resolution = 2  # evaluations at 1, 3, 5, ...
    d = [1.0 if e == 1 else 0.05 for e in range(12)]
    assert _core.muppet_policy(d, p)["switch_epochs"][0] == 5
    # a ratio below the decaying threshold is no violation: T(5) = 1.91
    d = [1.0 if e == 2 else 0.55 for e in range(12)]  # ratio 1.82: below T(5), T(8) = 1.67 is not
    r = _core.muppet_policy(d)
    assert r["violations"][5] == 0 and r["violations"][8] == 1


def test_muppet_policy_climbs_to_fp32_and_never_switches_back():
    d = [1.0 if e % 9 == 2 else 0.01 for e in range(60)]
    r = _core.muppet_policy(d)
    wl = r["word_length"].tolist()
    assert wl[0] == 8 and wl[-1] == 32
    assert all(a <= b for a, b in zip(wl, wl[1:]))  # one-way
    assert sorted(set(wl)) == [8, 12, 14, 16, 32]
    assert len(r["switch_epochs"]) == 4
    last = r["switch_epochs"][-1]
    assert not any(r["evaluated"][last + 1:])  # FP32 makes no more decisions
    # no data (nan) makes no decision
    r = _core.muppet_policy([math.nan] * 30)
    assert r["switch_epochs"] == [] and not any(r["evaluated"])


# ----------------------------------------------------------------------------- AFP rule

def _np_afp_error(x, bits, s):
    top = 2.0 ** (bits - 1) - 1
    q = np.clip(np.rint(x.astype(np.float64) / 2.0 ** s), -top - 1, top) * 2.0 ** s
    sa, sq = np.abs(x.astype(np.float64)).sum(), np.abs(q).sum()
    return math.log2(abs(sa - sq) / sa + 1)


def test_afp_quantization_error_matches_numpy():
    rng = np.random.default_rng(9)
    for bits in (8, 16):
        for scale in (1e-3, 0.7, 40.0):
            x = (rng.standard_normal(5000) * scale).astype(np.float32)
            s = _core.afp_point_position(float(np.abs(x).max()), bits)
            err = _core.afp_quant_error(x, bits)
            assert err == pytest.approx(_np_afp_error(x, bits, s), rel=1e-6, abs=1e-12)
    x = (rng.standard_normal(5000)).astype(np.float32)
    assert _core.afp_quant_error(x, 16) < _core.afp_quant_error(x, 8)
    assert _core.afp_quant_error(np.zeros(4, np.float32), 8) == 0.0


def _py_afp_rule(err_low, err_high, ranges, T=0.0005, a=0.04, b=0.1, g=2.0, d=100.0, low=8, high=16):
    """AFP at each re-evaluation: the low width unless its error exceeds T (then the high one),
    decided afresh; the moving average m follows the range's point position at the low width."""
    m, it = None, 0
    out = []
    for e8, e16, rg in zip(err_low, err_high, ranges):
        bits, err = (high, e16) if e8 > T else (low, e8)
        s = _core.afp_point_position(rg, bits)
        s_low = _core.afp_point_position(rg, low)
        prev = s_low if m is None else m
        m = a * s_low + (1 - a) * prev
        den = max(abs(m - prev), d * err * err)
        itv = b / den - g if den > 0 else 2.0 ** 40
        itv = int(min(max(itv, 1.0), 2.0 ** 40))
        out.append((it, bits, s, itv, err))
        it += itv
    return out


def test_afp_rule_bit_width_and_interval():
    # constant range: the point position is stable, the interval is beta / (delta diff^2) - gamma
    e8 = [1e-4, 2e-4, 4e-4, 6e-4, 1e-5, 1e-5]
    e16 = [1e-7, 1e-7, 1e-7, 2e-6, 2e-6, 3e-6]
    r = _core.afp_rule(e8, e16, [1.0] * 6)
    # 16 bits only where the 8-bit error is above T = 0.0005, decided afresh each time
    assert r["bits"].tolist() == [8, 8, 8, 16, 8, 8]
    itv = r["interval"].tolist()
    assert abs(itv[0] - (0.1 / (100 * 1e-4 ** 2) - 2)) < 1.5  # ~99998 (floor of a rounded quotient)
    assert abs(itv[1] - (0.1 / (100 * 2e-4 ** 2) - 2)) < 1.5
    assert r["iteration"].tolist() == [0] + list(np.cumsum(itv[:-1]))
    # the width change moves the point position by 8 bits, but m follows the range (the 8-bit
    # position), so the interval comes from the 16-bit error: beta / (delta 2e-6^2) - gamma
    assert r["point_position"].tolist()[2:5] == [-6, -14, -6]
    assert abs(itv[3] - (0.1 / (100 * 2e-6 ** 2) - 2)) < 1e3
    ref = _py_afp_rule(e8, e16, [1.0] * 6)
    assert [tuple(x) for x in zip(r["iteration"], r["bits"], r["point_position"], r["interval"])] == \
           [x[:4] for x in ref]


def test_afp_rule_matches_reference_on_random_sequences():
    rng = np.random.default_rng(4)
    for trial in range(20):
        n = 50
        e8 = (10.0 ** rng.uniform(-5, -2.5, n)).tolist()
        e16 = (10.0 ** rng.uniform(-9, -6, n)).tolist()
        ranges = np.cumprod(1 + rng.uniform(-0.05, 0.3, n)).astype(np.float32).tolist()
        r = _core.afp_rule(e8, e16, ranges)
        ref = _py_afp_rule(e8, e16, ranges)
        assert r["bits"].tolist() == [x[1] for x in ref]
        assert r["point_position"].tolist() == [x[2] for x in ref]
        assert r["interval"].tolist() == [x[3] for x in ref]
        assert r["iteration"].tolist() == [x[0] for x in ref]
        assert r["bits"].tolist() == [16 if x > 0.0005 else 8 for x in e8] and min(r["interval"]) >= 1
    # custom threshold and bit widths
    p = _core.CompetingParams()
    p.afp_error_threshold = 0.01
    p.afp_low_bits, p.afp_high_bits = 6, 12
    r = _core.afp_rule([0.005, 0.02, 0.001], [1e-4, 1e-4, 1e-4], [1.0] * 3, p)
    assert r["bits"].tolist() == [6, 12, 6] and r["error"].tolist() == [0.005, 1e-4, 0.001]


# ----------------------------------------------------------------------------- parameters

def test_competing_params_defaults_are_the_papers():
    p = _core.CompetingParams()
    assert p.loss_scale == 1000 and p.dynamic_loss_scale is False and p.loss_scale_window == 2000
    assert p.muppet_word_lengths == [8, 12, 14, 16]
    assert (p.muppet_resolution, p.muppet_patience, p.muppet_batch) == (3, 2, 128)
    assert (p.muppet_threshold_alpha, p.muppet_threshold_beta, p.muppet_threshold_decay) == (1.0, 1.5, 0.1)
    assert (p.afp_low_bits, p.afp_high_bits, p.afp_error_threshold) == (8, 16, 0.0005)
    assert (p.afp_alpha, p.afp_beta, p.afp_gamma, p.afp_delta) == (0.04, 0.1, 2.0, 100.0)
    p.validate()


@pytest.mark.parametrize("field,value,message", [
    ("loss_scale", -1.0, r"loss_scale must be a finite number > 0 \(got -1\)"),
    ("loss_scale", 0.0, r"loss_scale must be a finite number > 0 \(got 0\)"),
    ("loss_scale", math.inf, r"loss_scale must be a finite number > 0 \(got inf\)"),
    ("loss_scale_window", 0, r"loss_scale_window must be >= 1 \(got 0\)"),
    ("muppet_word_lengths", [], r"muppet_word_lengths must list 1 to 8 word lengths \(got 0\)"),
    ("muppet_word_lengths", [8, 8], r"muppet_word_lengths must be strictly increasing \(got 8 then 8\)"),
    ("muppet_word_lengths", [8, 30], r"muppet_word_lengths must be between 2 and 24 bits \(got 30\)"),
    ("muppet_resolution", 0, r"muppet_resolution must be >= 1 \(got 0\)"),
    ("muppet_patience", 0, r"muppet_patience must be >= 1 \(got 0\)"),
    ("muppet_threshold_alpha", 0.0, r"muppet_threshold_alpha must be a finite number > 0 \(got 0\)"),
    ("muppet_threshold_beta", -1.0, r"muppet_threshold_beta must be a finite number >= 0 \(got -1\)"),
    ("muppet_threshold_decay", math.nan, r"muppet_threshold_decay must be a finite number >= 0 \(got nan\)"),
    ("muppet_batch", 0, r"muppet_batch must be >= 1 \(got 0\)"),
    ("afp_low_bits", 1, r"afp_low_bits must be between 2 and 24 \(got 1\)"),
    ("afp_high_bits", 8, r"afp_high_bits must be > afp_low_bits and <= 24 \(got 8\)"),
    ("afp_error_threshold", 0.0, r"afp_error_threshold must be a finite number > 0 \(got 0\)"),
    ("afp_alpha", 1.5, r"afp_alpha must be in \(0, 1\] \(got 1.5\)"),
    ("afp_beta", 0.0, r"afp_beta must be a finite number > 0 \(got 0\)"),
    ("afp_gamma", -1.0, r"afp_gamma must be a finite number >= 0 \(got -1\)"),
    ("afp_delta", -2.0, r"afp_delta must be a finite number > 0 \(got -2\)"),
])
def test_competing_params_validation_names_the_field(field, value, message):
    p = _core.CompetingParams()
    setattr(p, field, value)
    with pytest.raises(ValueError, match=message):
        p.validate()
    # the rule hooks validate the parameters they are given
    with pytest.raises(ValueError, match=field):
        _core.muppet_policy([1.0], p)


# ----------------------------------------------------------------------------- end to end

COMPETING = ("mpt", "muppet", "afp")
E2E = dict(k=16, epochs=20, groups=4, threads=2)


@pytest.fixture(scope="module")
def synth():
    return mascot.data.synthetic("synthetic-ml10m", scale=0.01, seed=1)


@pytest.fixture(scope="module")
def fp32_rmse(synth):
    return mascot.MF(method="fp32", **E2E).fit(synth.train, synth.test).report_["totals"]["final_test_rmse"]


@pytest.fixture(scope="module")
def runs(synth):
    return {m: mascot.MF(method=m, **E2E).fit(synth.train, synth.test) for m in COMPETING}


def test_competing_methods_are_listed():
    assert set(COMPETING) <= set(_core.method_names())


@pytest.mark.parametrize("method", COMPETING)
def test_method_reaches_fp32_accuracy(method, runs, fp32_rmse):
    rep = runs[method].report_
    rmse = rep["totals"]["final_test_rmse"]
    assert rep["config"]["method"] == method
    assert math.isfinite(rmse) and abs(rmse / fp32_rmse - 1) < 0.02, (method, rmse, fp32_rmse)
    rmses = [e["test_rmse"] for e in rep["epochs"]]
    assert rmses[-1] < 0.5 * rmses[0]  # it learned
    assert rep["totals"]["updates_per_second"] > 0


@pytest.mark.parametrize("method", COMPETING)
def test_method_with_stochastic_rounding_reaches_fp32_accuracy(method, synth, fp32_rmse):
    m = mascot.MF(method=method, rounding="stochastic", **E2E).fit(synth.train, synth.test)
    rmse = m.report_["totals"]["final_test_rmse"]
    assert abs(rmse / fp32_rmse - 1) < 0.02, (method, rmse, fp32_rmse)


def test_mpt_report(runs):
    for e in runs["mpt"].report_["epochs"]:
        m = e["method"]
        assert m["name"] == "mpt" and m["dynamic_loss_scale"] is False
        assert m["loss_scale_min"] == m["loss_scale_max"] == 1000 and m["loss_scales"] == [1000, 1000]
        assert m["updates"] == runs["mpt"].report_["dataset"]["n_train"]
        assert m["skipped_updates"] == 0  # S = 1000 never overflows FP16 on ratings in [1, 5]


def test_muppet_report(runs):
    rep = runs["muppet"].report_
    prev_wl = 8
    switches = []
    for e in rep["epochs"]:
        m = e["method"]
        assert m["name"] == "muppet"
        assert m["word_length"] in (8, 12, 14, 16, 32) and m["word_length"] >= prev_wl
        assert m["evaluated"] == (m["fixed_point"] and (e["epoch"] + 1) % 3 == 0)
        if m["fixed_point"]:
            assert isinstance(m["frac_bits_p"], int) and m["frac_bits_p_end"] <= m["frac_bits_p"]
            # the scale of P fits its max |p| at the start of the epoch (MuPPET's rule, 8..16 bits)
            wl = m["word_length"]
            assert m["max_abs_p"] * 2.0 ** m["frac_bits_p"] <= 2 ** (wl - 1) - 0.5
            # the epoch's last mini-batch: 64 from each worker that ran a chunk this epoch
            # (2 workers here; on a loaded machine one of them may get no chunk at all)
            assert m["batch_ratings"] in (64, 128)
        if m["evaluated"]:
            assert m["diversity"] > 0 and m["ratio"] >= 1
            assert m["threshold"] == pytest.approx(_muppet_threshold(e["epoch"]))
        if m["switched"]:
            switches.append(e["epoch"])
        assert m["switch_epochs"] == switches
        prev_wl = m["word_length"]
    assert rep["epochs"][0]["method"]["word_length"] == 8
    assert rep["epochs"][0]["method"]["frac_bits_p"] == _core.fixed_point_frac_bits(
        rep["epochs"][0]["method"]["max_abs_p"], 8)


def test_afp_report(runs):
    rep = runs["afp"].report_
    first = rep["epochs"][0]["method"]
    assert first["name"] == "afp" and set(first["tensors"]) == {"P", "Q", "G"}
    for name, t in first["tensors"].items():
        assert t["evaluations"] >= 2 and t["bits"] in (8, 16)  # every worker evaluates at its start
        assert t["threads"] == 2 and 0 <= t["threads_high"] <= 2
        assert t["interval_max"] >= 1 and t["error_mean"] >= 0
    evals = {n: 0 for n in ("P", "Q", "G")}
    high = dict(evals)
    for e in rep["epochs"]:
        for name, t in e["method"]["tensors"].items():
            assert 0 <= t["high_evaluations"] <= t["evaluations"]
            assert (t["bits"] == 16) == (t["threads_high"] > 0)  # the widest width in use at the end
            evals[name] += t["evaluations"]
            high[name] += t["high_evaluations"]
            if t["evaluations"] > 0:
                assert t["point_position_min"] <= t["point_position_max"]
    # the width is decided afresh at every re-evaluation from the 8-bit error: both widths are
    # used by every tensor (before, one row's error sent each tensor to 16 bits for good)
    for name in evals:
        assert 0 < high[name] < evals[name], (name, high[name], evals[name])


def test_single_thread_runs_are_reproducible_and_isa_independent(synth, tmp_path):
    """With one thread Hogwild is deterministic: the same seed gives the same factors, and the
    generic (SSE2) and AVX2 paths of the competing methods perform the same operations."""
    script = (
        "import sys, numpy as np, mascot\n"
        "d = mascot.data.synthetic('synthetic-ml10m', scale=0.005, seed=2)\n"
        "out = {}\n"
        "for m in ('mpt', 'muppet', 'afp'):\n"
        "    for r in ('nearest', 'stochastic'):\n"
        "        f = mascot.MF(method=m, k=24, epochs=4, groups=2, threads=1, rounding=r).fit(d.train)\n"
        "        out[m + r] = f.P\n"
        "np.savez(sys.argv[1], **out)\n"
        "print(mascot._core.kernel_isa())\n")
    outs, isas = [], []
    for isa in ("generic", None, None):
        env = dict(os.environ)
        env.pop("MASCOT_ISA", None)
        if isa:
            env["MASCOT_ISA"] = isa
        path = tmp_path / f"{isa}{len(outs)}.npz"
        res = subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env, capture_output=True,
                             text=True)
        outs.append(np.load(path))
        isas.append(res.stdout.strip())
    # the first child ran the generic kernels, the others this host's default (the competing
    # methods' AVX2 path wherever the default is avx2 or avx512)
    assert isas[0] == "generic" and isas[2] == isas[1]
    for key in outs[0].files:
        assert np.isfinite(outs[0][key]).all()
        assert np.array_equal(outs[1][key], outs[2][key]), key
    if not host_has_avx2():
        pytest.skip("this host has no AVX2: only the generic kernels exist here (reproducibility checked)")
    assert isas[1] in ("avx2", "avx512")
    for key in outs[0].files:
        assert np.array_equal(outs[0][key], outs[1][key]), key


# ----------------------------------------------------------------------------- per-rating references
# Serial NumPy references of one rating's update of mpt and muppet (cpu/competing.cc), in the
# style of reference.py: the visiting order and the initial factors come from the core
# (visit_order, init_factors), every float32 operation is done in the kernels' order (the dot
# product over reference.py's 16 lanes; the build has -ffp-contract=off, so no fused
# multiply-adds), and the stochastic-rounding words are derived as competing.cc does:
#   epoch key   hash3(seed, kStreamRound = 5, (method tag << 40) + epoch)   (mpt 1, muppet 2)
#   rating key  mix64(epoch key ^ (u << 32 | i))   on the relabelled ids (group reconstruction)
#   words       fill_words: mix64(rating key + (tag << 24) + j) >> 32, element j of operand `tag`
#   one word    one_word:   mix64(rating key + (tag << 24) + 0xFFFFFF) >> 32
# With one thread (deterministic=True) the trainer must agree with them bit for bit: a method
# that stopped rounding a single operand (the FP16 copies of MPT, MuPPET's fixed-point weights)
# gives other bits within a few ratings.  The end-to-end RMSE tests above cannot see that.

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
    P = _core.init_factors(data.n_users, k, init_std, seed, "P").astype(_F32)
    Q = _core.init_factors(data.n_items, k, init_std, seed, "Q").astype(_F32)
    visit = _core.visit_order(u, i, data.n_users, data.n_items, order, epochs, 1, k, False, seed)
    ro = _core.reorder(u, i, data.n_users, data.n_items, groups, groups)
    u_new, i_new = np.asarray(ro["user_new"])[u], np.asarray(ro["item_new"])[i]
    return u, i, r, P, Q, np.asarray(visit).reshape(epochs, len(r)), u_new, i_new


def mpt_reference(data, *, k, epochs, lr=0.01, decay=0.1, lambda_p=0.01, lambda_q=0.015, init_std=0.01,
                  seed=42, order="shuffle", rounding="nearest", groups=4, loss_scale=1000.0, dynamic=False,
                  window=2000):
    """Serial MPT (competing.cc class Mpt).  Per rating: FP16 copies of p, q; FP16 products
    accumulated in FP32 (16 lanes), the prediction stored as FP16; e = r - r_hat in FP32; the
    FP16 scaled loss gradient se = fp16(S e); FP16 gradients fp16(se q16), fp16(se p16); an
    overflow skips the update (dynamic S: S halves; after `window` clean updates S doubles);
    else p += lr (g_p / S - lambda_P p) on the FP32 master, with the S the gradient was scaled
    with.  Returns (P, Q, per epoch (skipped updates, S at the epoch's end, doublings of S))."""
    u, i, r, P, Q, visit, u_new, i_new = _serial_setup(data, k, epochs, seed, init_std, order, groups)
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    S, clean = _F32(loss_scale), 0
    top = _F32(65504.0)
    stats = []
    for e in range(epochs):
        lr_e = lr_at(lr, decay, e)
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
            P[u[t]] = p + lr_e * (g[:k] * inv - lp * p)
            Q[i[t]] = q + lr_e * (g[k:] * inv - lq * q)
        stats.append((skipped, float(S), doubled))
    return P, Q, stats


def muppet_reference(data, *, k, epochs, lr=0.01, decay=0.1, lambda_p=0.01, lambda_q=0.015, init_std=0.01,
                     seed=42, order="shuffle", rounding="nearest", groups=4, method_params=None):
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
    _core.muppet_policy hook of MuppetPolicy, checked on its own above) turns into the next
    epoch's word length.  FP32 level: p += lr (e q - lambda_P p) literally.
    Returns (P, Q, per-epoch facts named as the report names them)."""
    params = _core.CompetingParams()
    for name, value in (method_params or {}).items():
        setattr(params, name, value)
    levels, batch = list(params.muppet_word_lengths), params.muppet_batch
    u, i, r, P, Q, visit, u_new, i_new = _serial_setup(data, k, epochs, seed, init_std, order, groups)
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    nnz = len(r)
    facts, diversity = [], []
    win_p, win_q, norm_p, norm_q = [0.0] * k, [0.0] * k, 0.0, 0.0
    wl = levels[0]
    for e in range(epochs):
        lr_e = lr_at(lr, decay, e)
        if wl == 32:
            for t in visit[e]:
                p, q = P[u[t]], Q[i[t]]
                err = _F32(r[t] - dot_lanes(p, q))
                P[u[t]], Q[i[t]] = p + lr_e * (err * q - lp * p), q + lr_e * (err * p - lq * q)
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
                P[u[t]], Q[i[t]] = p + lr_e * gp, q + lr_e * gq
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
        policy = _core.muppet_policy(diversity + [math.nan], params)  # word length of the next epoch
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


def afp_reference(data, *, k, epochs, lr=0.01, decay=0.1, lambda_p=0.01, lambda_q=0.015, init_std=0.01,
                  seed=42, order="shuffle", rounding="nearest", groups=4, method_params=None):
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
    sr = rounding == "stochastic"
    lp, lq = _F32(lambda_p), _F32(lambda_q)
    tp, tq, tg = (_AfpTensor(params) for _ in range(3))
    recent_u, recent_i = np.zeros(_AFP_RECENT, np.int64), np.zeros(_AFP_RECENT, np.int64)
    it = 0
    facts = []
    for e in range(epochs):
        lr_e = lr_at(lr, decay, e)
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
            P[u[rt]], Q[i[rt]] = p + lr_e * gp, q + lr_e * gq
            it += 1
        facts.append({"max_abs_p": float(max_p), "max_abs_q": float(max_q),
                      "tensors": {"P": tp.report(), "Q": tq.report(), "G": tg.report()}})
    return P, Q, facts, {"P": (tp.up, tp.down), "Q": (tq.up, tq.down), "G": (tg.up, tg.down)}


@pytest.fixture(scope="module")
def tiny_synth():
    return mascot.data.synthetic("synthetic-ml10m:0.002").train  # 15,903 ratings, 3 chunks


def _serial_fit(data, method, k, epochs, rounding, params, lr=0.01):
    return mascot.MF(method=method, k=k, epochs=epochs, lr=lr, groups=4, threads=1, deterministic=True,
                     rounding=rounding, method_params=params).fit(data)


def _assert_same_bits(got, want, what):
    assert got.shape == want.shape
    bad = np.flatnonzero(_bits(got).ravel() != _bits(want).ravel())
    assert bad.size == 0, f"{what}: {bad.size} of {want.size} values differ, e.g. index {bad[:5]}: " \
                          f"{got.ravel()[bad[:3]]} vs reference {want.ravel()[bad[:3]]}"


MPT_CASES = [
    # rounding, k, epochs, method_params: static S = 1000 (the default, never overflows here);
    # a static S that overflows (|e| > 3.3) and skips; dynamic S from 2^16 with a short window
    # (halvings and doublings both happen in the first epoch)
    ("nearest", 16, 2, {}),
    ("nearest", 20, 2, {"loss_scale": 20000.0}),
    ("nearest", 32, 2, {"loss_scale": 65536.0, "dynamic_loss_scale": True, "loss_scale_window": 50}),
    ("stochastic", 16, 2, {}),
    ("stochastic", 16, 1, {"loss_scale": 65536.0, "dynamic_loss_scale": True, "loss_scale_window": 50}),
]


@pytest.mark.parametrize("rounding,k,epochs,params", MPT_CASES,
                         ids=["rn-static", "rn-static-skips", "rn-dynamic", "sr-static", "sr-dynamic"])
def test_mpt_matches_serial_reference_bitwise(tiny_synth, rounding, k, epochs, params):
    m = _serial_fit(tiny_synth, "mpt", k, epochs, rounding, params)
    P, Q, stats = mpt_reference(tiny_synth, k=k, epochs=epochs, rounding=rounding,
                                loss_scale=params.get("loss_scale", 1000.0),
                                dynamic=params.get("dynamic_loss_scale", False),
                                window=params.get("loss_scale_window", 2000))
    _assert_same_bits(m.P, P, "P")
    _assert_same_bits(m.Q, Q, "Q")
    for rec, (skipped, scale, _) in zip(m.report_["epochs"], stats):
        meth = rec["method"]
        assert meth["updates"] == len(tiny_synth.ratings)
        assert meth["skipped_updates"] == skipped
        assert meth["loss_scales"] == [scale]
    # the case exercises what it says: training moved the factors; skips where S overflows
    assert np.abs(m.P - _core.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
    assert (sum(s[0] for s in stats) > 0) == (params.get("loss_scale", 1000.0) > 1000.0)
    if params.get("dynamic_loss_scale"):  # S halved on overflows and doubled after clean windows
        assert sum(s[2] for s in stats) > 0


MUPPET_CASES = [
    # rounding, k, epochs, word length of the first level (MuPPET's 8 bits; 12 and 16 as the first
    # level of a shortened schedule), lr (0.05 makes the rows outgrow the epoch's scales)
    ("nearest", 16, 2, 8, 0.05),
    ("stochastic", 16, 2, 8, 0.05),
    ("nearest", 20, 1, 12, 0.01),
    ("stochastic", 32, 1, 16, 0.05),
]


@pytest.mark.parametrize("rounding,k,epochs,wl,lr", MUPPET_CASES, ids=["rn-8", "sr-8", "rn-12", "sr-16"])
def test_muppet_matches_serial_reference_bitwise(tiny_synth, rounding, k, epochs, wl, lr):
    params = {} if wl == 8 else {"muppet_word_lengths": [wl]}
    m = _serial_fit(tiny_synth, "muppet", k, epochs, rounding, params, lr=lr)
    P, Q, facts = muppet_reference(tiny_synth, k=k, epochs=epochs, rounding=rounding, lr=lr, method_params=params)
    _assert_same_bits(m.P, P, "P")
    _assert_same_bits(m.Q, Q, "Q")
    for rec, f in zip(m.report_["epochs"], facts):
        meth = rec["method"]
        assert not meth["switched"]
        for key in ("word_length", "frac_bits_p", "frac_bits_q", "frac_bits_p_end", "frac_bits_q_end", "rescales",
                    "max_abs_p", "max_abs_q", "batch_ratings", "batch_grad_norm2_p", "batch_grad_norm2_q"):
            assert meth[key] == f[key], key  # exact: the report's doubles round-trip
    assert np.abs(m.P - _core.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
    if lr == 0.05:
        assert sum(f["rescales"] for f in facts) > 0  # the row-driven rescaling was exercised


def test_muppet_switch_and_fp32_level_match_serial_reference_bitwise():
    """A run through a precision switch: the epochs' last mini-batch gradients (128 ratings,
    summed) feed the diversity window, the policy switches 8 bits -> FP32 after the evaluation of
    epoch 3 (resolution 2, patience 1, threshold ~0), and epoch 4 trains at the FP32 level."""
    data = mascot.data.synthetic("synthetic-ml10m:0.001").train  # 7,980 ratings: one chunk
    params = {"muppet_word_lengths": [8], "muppet_resolution": 2, "muppet_patience": 1,
              "muppet_threshold_alpha": 1e-9, "muppet_threshold_beta": 0.0}
    m = _serial_fit(data, "muppet", 16, 5, "nearest", params, lr=0.02)
    P, Q, facts = muppet_reference(data, k=16, epochs=5, lr=0.02, method_params=params)
    _assert_same_bits(m.P, P, "P")
    _assert_same_bits(m.Q, Q, "Q")
    keys = ("word_length", "frac_bits_p", "frac_bits_q", "frac_bits_p_end", "frac_bits_q_end", "rescales",
            "max_abs_p", "max_abs_q", "batch_ratings", "batch_grad_norm2_p", "batch_grad_norm2_q", "evaluated",
            "diversity_p", "diversity_q", "diversity", "switch_epochs")
    for rec, f in zip(m.report_["epochs"], facts):
        meth = rec["method"]
        for key in keys:
            if key in f:
                assert meth[key] == f[key], (rec["epoch"], key)
    assert [f["word_length"] for f in facts] == [8, 8, 8, 8, 32]  # the case switches where it says


def test_muppet_report_of_a_switching_epoch_shows_what_the_evaluation_saw():
    """The epoch that switches reports the max diversity it compared with and the violations that
    triggered the switch (the policy resets both when it switches; the report used to show 0, 0)."""
    ds = mascot.data.synthetic("synthetic-ml10m:0.002")
    params = {"muppet_resolution": 2, "muppet_patience": 2, "muppet_threshold_alpha": 0.01,
              "muppet_threshold_beta": 0.0}
    rep = mascot.MF(k=16, epochs=10, method="muppet", deterministic=True, method_params=params).fit(
        ds.train, ds.test).report_
    switched = [e["method"] for e in rep["epochs"] if e["method"]["switched"]]
    assert switched, "the crafted threshold makes the policy switch"
    for m in switched:
        assert m["evaluated"] and m["violations"] == 2 and m["max_diversity"] > 0
        assert m["ratio"] > m["threshold"]
        assert m["max_diversity"] == pytest.approx(m["ratio"] * m["diversity"], rel=1e-9)


AFP_CASES = [
    # rounding, k, epochs, lr, method_params: the papers' defaults (every tensor starts at 8 bits;
    # G is re-evaluated thousands of times per epoch, over a quarter of them forced by saturation); at
    # lr 0.07 the tensors' maxima fall between epochs 1 and 2 (a running max carried over from
    # the last epoch would keep the point positions up); a threshold of 0.001 with a shorter
    # interval (beta 0.01): P and Q re-evaluated every few dozen iterations in the second epoch,
    # switching 8 <-> 16 bits both ways; 6/12 bits with a fast moving average, no gamma and a
    # smaller delta (k = 20: the lanes' tail)
    ("nearest", 16, 2, 0.01, {}),
    ("stochastic", 16, 2, 0.01, {}),
    ("nearest", 32, 3, 0.07, {}),
    ("nearest", 16, 2, 0.01, {"afp_error_threshold": 0.001, "afp_beta": 0.01}),
    ("stochastic", 32, 2, 0.01, {"afp_error_threshold": 0.001, "afp_beta": 0.01}),
    ("nearest", 20, 1, 0.01, {"afp_low_bits": 6, "afp_high_bits": 12, "afp_alpha": 0.3, "afp_gamma": 0.0,
                              "afp_delta": 10.0}),
]


@pytest.mark.parametrize("rounding,k,epochs,lr,params", AFP_CASES,
                         ids=["rn-default", "sr-default", "rn-k32-falling", "rn-frequent", "sr-frequent-k32",
                              "rn-6-12"])
def test_afp_matches_serial_reference_bitwise(tiny_synth, rounding, k, epochs, lr, params):
    m = _serial_fit(tiny_synth, "afp", k, epochs, rounding, params, lr=lr)
    P, Q, facts, switches = afp_reference(tiny_synth, k=k, epochs=epochs, lr=lr, rounding=rounding,
                                          method_params=params)
    _assert_same_bits(m.P, P, "P")
    _assert_same_bits(m.Q, Q, "Q")
    for rec, f in zip(m.report_["epochs"], facts):
        meth = rec["method"]
        assert (meth["max_abs_p"], meth["max_abs_q"]) == (f["max_abs_p"], f["max_abs_q"])
        for name, want in f["tensors"].items():
            got = meth["tensors"][name]
            for key, value in want.items():
                # exact: one worker's sums are the same doubles, and the report's doubles round-trip
                assert got[key] == value, (rec["epoch"], name, key, got[key], value)
    # the case exercises what it says: training moved the factors; both widths chosen, and the
    # saturation guard fired
    assert np.abs(m.P - _core.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
    tensors = [t for f in facts for t in f["tensors"].values()]
    assert any(0 < t["high_evaluations"] < t["evaluations"] for t in tensors)
    assert sum(t["saturation_evaluations"] for t in tensors) > 0
    assert any(up > 0 and down > 0 for up, down in switches.values())
    if lr == 0.07:
        assert facts[2]["max_abs_p"] < facts[1]["max_abs_p"]
    if "afp_error_threshold" in params:  # P and Q re-evaluated often, switching widths both ways
        for name in ("P", "Q"):
            assert facts[-1]["tensors"][name]["evaluations"] > 100, name
            assert min(switches[name]) > 0, (name, switches[name])
