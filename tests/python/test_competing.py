"""The competing methods (mpt, muppet, afp): their number formats against NumPy references,
their decision rules on crafted sequences, and each method end to end against fp32."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import mascot
from backends import host_has_avx2
from mascot import _core
from reference_competing import (
    afp_quant_error,
    afp_reference,
    afp_rule,
    mpt_reference,
    muppet_reference,
    muppet_threshold,
    quantize,
)

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
        f = _core._testing.fixed_point_frac_bits(m, wl)
        bound = 2.0 ** (wl - 1) - 0.5  # MuPPET: max * 2^f <= 2^(WL-1) - 0.5, f as large as possible
        if -100 < f < 100:
            assert m * 2.0 ** f <= bound < m * 2.0 ** (f + 1), (m, wl, f)
            # the log formula of MuPPET's quantize.py gives the same (away from exact ties)
            exact = math.log2(bound / m)
            assert f == math.floor(exact) or abs(exact - round(exact)) < 1e-9
        # AFP: s = ceil(log2(max / (2^(WL-1) - 1))), frac bits = -s
        s = -_core._testing.fixed_point_frac_bits(m, wl, "afp")
        assert s == _core._testing.afp_point_position(m, wl)
        top = 2.0 ** (wl - 1) - 1
        if -100 < s < 100:
            assert top * 2.0 ** (s - 1) < m <= top * 2.0 ** s, (m, wl, s)
    assert _core._testing.fixed_point_frac_bits(0.0, wl) == 0  # all-zero tensor: MuPPET's convention
    assert _core._testing.afp_point_position(0.0, wl) == 0
    # extreme ranges clamp to the fixed-point guards (2^-s must stay a normal float), as MuPPET's do
    assert _core._testing.afp_point_position(1e-38, wl) == -100 and _core._testing.afp_point_position(3e37, wl) == 100


@pytest.mark.parametrize("wl", WORD_LENGTHS)
def test_quantize_nearest_matches_numpy(wl):
    rng = np.random.default_rng(100 + wl)
    x = (rng.standard_normal(20000) * 0.3).astype(np.float32)
    f = _core._testing.fixed_point_frac_bits(float(np.abs(x).max()), wl)
    codes_ref, vals_ref = quantize(x, wl, f)
    vals = _core._testing.fixed_point_quantize(x, wl)  # scale from max |x| by default
    codes = _core._testing.fixed_point_quantize(x, wl, codes=True)
    assert vals.dtype == np.float32
    assert np.array_equal(codes, codes_ref)
    assert np.array_equal(vals, vals_ref)
    assert codes.max() <= 2 ** (wl - 1) - 1 and codes.min() >= -(2 ** (wl - 1))
    # the scale uses the word length: at most half a step of error, the step is 2^-f
    assert np.abs(vals.astype(np.float64) - x).max() <= 0.5 * 2.0 ** -f
    # given max_abs or frac_bits explicitly
    assert np.array_equal(_core._testing.fixed_point_quantize(x, wl, max_abs=float(np.abs(x).max())), vals)
    assert np.array_equal(_core._testing.fixed_point_quantize(x, wl, frac_bits=f), vals)


def test_quantize_ties_go_to_even_and_values_clamp():
    wl, f = 8, 2  # step 0.25, codes in [-128, 127]
    x = np.array([0.125, 0.375, -0.125, -0.375, 0.625, 100.0, -100.0, 31.75, 31.9, -32.0, -32.2], np.float32)
    codes = _core._testing.fixed_point_quantize(x, wl, frac_bits=f, codes=True)
    assert codes.tolist() == [0, 2, -0, -2, 2, 127, -128, 127, 127, -128, -128]
    vals = _core._testing.fixed_point_quantize(x, wl, frac_bits=f)
    assert vals.tolist() == [0.0, 0.5, -0.0, -0.5, 0.5, 31.75, -32.0, 31.75, 31.75, -32.0, -32.0]
    # stochastic rounding saturates the same way
    s = _core._testing.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=3)
    assert s[5] == 31.75 and s[6] == -32.0


@pytest.mark.parametrize("wl", (8, 12))
def test_quantize_stochastic_neighbours_and_unbiased(wl):
    n = 200_000
    f = wl - 4  # step 2^-f
    step = 2.0 ** -f
    for value in (0.3 * step, 5.37 * step, -2.71 * step, -0.5 * step, 7.0 * step):
        x = np.full(n, value, np.float32)
        v = float(x[0])
        out = _core._testing.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=11).astype(np.float64)
        lo = math.floor(v / step) * step
        assert set(np.unique(out)) <= {lo, lo + step}  # one of the two neighbours
        p = (v - lo) / step
        tol = 5 * math.sqrt(max(p * (1 - p), 1e-12) / n) * step + 1e-7 * step
        assert abs(out.mean() - v) <= tol, (value, out.mean(), v)
        if p == 0:
            assert np.all(out == v)  # representable values never move
    # different seeds draw differently, the same seed reproduces
    x = np.full(1000, 0.5 * step, np.float32)
    a = _core._testing.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=1)
    assert np.array_equal(a, _core._testing.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=1))
    assert not np.array_equal(a, _core._testing.fixed_point_quantize(x, wl, frac_bits=f, mode="stochastic", seed=2))


def test_quantize_rejects_bad_arguments():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="word_length"):
        _core._testing.fixed_point_quantize(x, 1)
    with pytest.raises(ValueError, match="word_length"):
        _core._testing.fixed_point_quantize(x, 25)
    with pytest.raises(ValueError, match="mode"):
        _core._testing.fixed_point_quantize(x, 8, mode="up")
    with pytest.raises(ValueError, match="frac_bits"):
        _core._testing.fixed_point_quantize(x, 8, frac_bits=1000)


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
    assert _same_floats(_core._testing.half_round_fast(x, "nearest"), _core._testing.half_round(x, "nearest"))
    for seed in (0, 7):
        assert _same_floats(_core._testing.half_round_fast(x, "stochastic", seed),
                            _core._testing.half_round(x, "stochastic", seed))


# ----------------------------------------------------------------------------- MPT loss scale

def test_mpt_static_loss_scale_never_changes_and_skips_overflows():
    ovf = [False] * 5 + [True] + [False] * 3000
    scale, applied = _core._testing.mpt_loss_scale(ovf, loss_scale=1000.0, dynamic=False, window=2000)
    assert np.all(scale == 1000.0)
    assert applied == [not o for o in ovf]


def test_mpt_dynamic_loss_scale_halves_on_overflow_and_doubles_after_window():
    ovf = [False, False, False, False, True, False, False, False, True, True]
    scale, applied = _core._testing.mpt_loss_scale(ovf, loss_scale=1000.0, dynamic=True, window=3)
    assert scale.tolist() == [1000, 1000, 1000, 2000, 2000, 1000, 1000, 1000, 2000, 1000]
    assert applied == [True, True, True, True, False, True, True, True, False, False]
    # the default window: 2000 clean updates per doubling
    scale, applied = _core._testing.mpt_loss_scale([False] * 4001, loss_scale=1.0, dynamic=True)
    assert scale[1999] == 1 and scale[2000] == 2 and scale[3999] == 2 and scale[4000] == 4
    assert all(applied)
    # a clean run resets after an overflow: the window restarts
    scale, _ = _core._testing.mpt_loss_scale([False] * 2 + [True] + [False] * 3, loss_scale=8.0, dynamic=True, window=3)
    assert scale.tolist() == [8, 8, 8, 4, 4, 4]


# ----------------------------------------------------------------------------- MuPPET policy

def test_muppet_diversity_matches_numpy():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 2, 16))
    ref = np.mean([(g[:, j] ** 2).sum() / (g[:, j].sum(axis=0) ** 2).sum() for j in range(2)])
    assert _core._testing.muppet_diversity(g) == pytest.approx(ref, rel=1e-12)
    same = np.repeat(rng.standard_normal((1, 2, 8)), 3, axis=0)  # identical gradients: 1 / r
    assert _core._testing.muppet_diversity(same) == pytest.approx(1 / 3)
    assert math.isnan(_core._testing.muppet_diversity(np.zeros((3, 2, 4))))


def test_muppet_policy_switches_after_patience_violations_at_evaluation_epochs():
    # evaluations at epochs 2, 5, 8, ... ((e + 1) % 3 == 0); other epochs' values are ignored
    d = np.full(30, 1e-9)  # would be violations if they were read
    d[2], d[5], d[8] = 1.0, 0.1, 0.1          # max 1; ratio 10 > T twice -> switch after epoch 8
    d[11], d[14], d[17], d[20] = 1.0, 0.1, 0.9, 0.1  # new level: max reset; 1.11 < T(17); switch after 20
    d[23], d[26], d[29] = 2.0, 1.9, 1.95
    r = _core._testing.muppet_policy(d.tolist())
    assert r["switch_epochs"] == [8, 20]
    wl = r["word_length"].tolist()
    assert wl[:9] == [8] * 9 and wl[9:21] == [12] * 12 and wl[21:] == [14] * 9
    assert r["evaluated"] == [(e + 1) % 3 == 0 for e in range(30)]
    assert r["violations"].tolist()[:9] == [0] * 5 + [1] * 3 + [0]
    assert r["ratio"][5] == pytest.approx(10.0) and r["ratio"][17] == pytest.approx(1 / 0.9)
    assert np.allclose(r["threshold"], [muppet_threshold(e) for e in range(30)])
    assert all(np.isnan(r["ratio"][e]) for e in range(30) if (e + 1) % 3)


def test_muppet_policy_patience_and_parameters():
    d = [1.0 if e == 2 else 0.05 for e in range(40)]
    p = _core.CompetingParams()
    p.muppet_patience = 3
    r3 = _core._testing.muppet_policy(d, p)
    assert r3["switch_epochs"][0] == 11  # violations at 5, 8, 11
    r2 = _core._testing.muppet_policy(d)
    assert r2["switch_epochs"][0] == 8
    p = _core.CompetingParams()
    p.muppet_resolution = 2  # evaluations at 1, 3, 5, ...
    d = [1.0 if e == 1 else 0.05 for e in range(12)]
    assert _core._testing.muppet_policy(d, p)["switch_epochs"][0] == 5
    # a ratio below the decaying threshold is no violation: T(5) = 1.91
    d = [1.0 if e == 2 else 0.55 for e in range(12)]  # ratio 1.82: below T(5), T(8) = 1.67 is not
    r = _core._testing.muppet_policy(d)
    assert r["violations"][5] == 0 and r["violations"][8] == 1


def test_muppet_policy_climbs_to_fp32_and_never_switches_back():
    d = [1.0 if e % 9 == 2 else 0.01 for e in range(60)]
    r = _core._testing.muppet_policy(d)
    wl = r["word_length"].tolist()
    assert wl[0] == 8 and wl[-1] == 32
    assert all(a <= b for a, b in zip(wl, wl[1:]))  # one-way
    assert sorted(set(wl)) == [8, 12, 14, 16, 32]
    assert len(r["switch_epochs"]) == 4
    last = r["switch_epochs"][-1]
    assert not any(r["evaluated"][last + 1:])  # FP32 makes no more decisions
    # no data (nan) makes no decision
    r = _core._testing.muppet_policy([math.nan] * 30)
    assert r["switch_epochs"] == [] and not any(r["evaluated"])


# ----------------------------------------------------------------------------- AFP rule

def test_afp_quantization_error_matches_numpy():
    rng = np.random.default_rng(9)
    for bits in (8, 16):
        for scale in (1e-3, 0.7, 40.0):
            x = (rng.standard_normal(5000) * scale).astype(np.float32)
            s = _core._testing.afp_point_position(float(np.abs(x).max()), bits)
            err = _core._testing.afp_quant_error(x, bits)
            assert err == pytest.approx(afp_quant_error(x, bits, s), rel=1e-6, abs=1e-12)
    x = (rng.standard_normal(5000)).astype(np.float32)
    assert _core._testing.afp_quant_error(x, 16) < _core._testing.afp_quant_error(x, 8)
    assert _core._testing.afp_quant_error(np.zeros(4, np.float32), 8) == 0.0


def test_afp_rule_bit_width_and_interval():
    # constant range: the point position is stable, the interval is beta / (delta diff^2) - gamma
    e8 = [1e-4, 2e-4, 4e-4, 6e-4, 1e-5, 1e-5]
    e16 = [1e-7, 1e-7, 1e-7, 2e-6, 2e-6, 3e-6]
    r = _core._testing.afp_rule(e8, e16, [1.0] * 6)
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
    ref = afp_rule(e8, e16, [1.0] * 6)
    assert [tuple(x) for x in zip(r["iteration"], r["bits"], r["point_position"], r["interval"])] == \
           [x[:4] for x in ref]


def test_afp_rule_matches_reference_on_random_sequences():
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = 50
        e8 = (10.0 ** rng.uniform(-5, -2.5, n)).tolist()
        e16 = (10.0 ** rng.uniform(-9, -6, n)).tolist()
        ranges = np.cumprod(1 + rng.uniform(-0.05, 0.3, n)).astype(np.float32).tolist()
        r = _core._testing.afp_rule(e8, e16, ranges)
        ref = afp_rule(e8, e16, ranges)
        assert r["bits"].tolist() == [x[1] for x in ref]
        assert r["point_position"].tolist() == [x[2] for x in ref]
        assert r["interval"].tolist() == [x[3] for x in ref]
        assert r["iteration"].tolist() == [x[0] for x in ref]
        assert r["bits"].tolist() == [16 if x > 0.0005 else 8 for x in e8] and min(r["interval"]) >= 1
    # custom threshold and bit widths
    p = _core.CompetingParams()
    p.afp_error_threshold = 0.01
    p.afp_low_bits, p.afp_high_bits = 6, 12
    r = _core._testing.afp_rule([0.005, 0.02, 0.001], [1e-4, 1e-4, 1e-4], [1.0] * 3, p)
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
        _core._testing.muppet_policy([1.0], p)


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
    assert rmses[-1] < 0.6 * rmses[0]  # it learned (after its first epoch, which already halves the initial 3.7)
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
            assert m["threshold"] == pytest.approx(muppet_threshold(e["epoch"]))
        if m["switched"]:
            switches.append(e["epoch"])
        assert m["switch_epochs"] == switches
        prev_wl = m["word_length"]
    assert rep["epochs"][0]["method"]["word_length"] == 8
    assert rep["epochs"][0]["method"]["frac_bits_p"] == _core._testing.fixed_point_frac_bits(
        rep["epochs"][0]["method"]["max_abs_p"], 8)


def test_afp_report(runs):
    rep = runs["afp"].report_
    first = rep["epochs"][0]["method"]
    assert first["name"] == "afp" and set(first["tensors"]) == {"P", "Q", "G"}
    for t in first["tensors"].values():
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
# The trainer against serial NumPy references of mpt, muppet and afp (reference_competing.py, which
# says how they mirror cpu/competing.cc).  With one thread (deterministic=True) the trainer must
# agree with them bit for bit: a method that stopped rounding a single operand (the FP16 copies of
# MPT, MuPPET's fixed-point weights) gives other bits within a few ratings.  The end-to-end RMSE
# tests above cannot see that.


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
    P, Q, stats = mpt_reference(tiny_synth, k=k, epochs=epochs, rounding=rounding, lr=0.01,
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
    assert np.abs(m.P - _core._testing.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
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
    assert np.abs(m.P - _core._testing.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
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
    assert np.abs(m.P - _core._testing.init_factors(tiny_synth.n_users, k, 0.01, 42, "P")).max() > 0.005
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
