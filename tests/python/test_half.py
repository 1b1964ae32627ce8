"""FP16 rounding helpers of the core against NumPy."""
import numpy as np

from mascot import _core
from reference import trunc_half


def _values():
    rng = np.random.default_rng(1)
    x = np.concatenate([
        rng.normal(scale=0.01, size=20000),
        rng.normal(scale=100, size=5000),
        rng.uniform(-6.2e-5, 6.2e-5, size=5000),          # half subnormals
        np.array([0.0, -0.0, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -25, 2 ** -24, 3 * 2 ** -26]),
    ]).astype(np.float32)
    return x


def test_round_to_nearest_matches_numpy():
    x = _values()
    got = _core._testing.half_round(x, "nearest")
    with np.errstate(over="ignore"):  # 65520 and up round to inf, as intended
        want = x.astype(np.float16).astype(np.float32)
    assert np.array_equal(got, want)


def test_round_toward_zero_matches_reference():
    x = _values()
    x = x[np.abs(x) < 65504]
    z = _core._testing.half_round(x, "zero")
    # the NumPy reference, not only properties the identity would also have
    assert np.array_equal(z, trunc_half(x))
    assert np.array_equal(z.astype(np.float16).astype(np.float32), z)  # a half value
    assert np.all(np.abs(z) <= np.abs(x))
    assert not np.array_equal(z, x)  # the values include ones that are not halves
    assert np.array_equal(_core._testing.half_round(z, "zero"), z)


def _neighbours(x):
    h = x.astype(np.float16)
    lo = np.where(h.astype(np.float32) <= x, h, np.nextafter(h, np.float16(-np.inf)))
    hi = np.where(h.astype(np.float32) >= x, h, np.nextafter(h, np.float16(np.inf)))
    return lo.astype(np.float32), hi.astype(np.float32)


def test_stochastic_rounding_stays_between_neighbours():
    x = _values()
    x = x[np.abs(x) < 60000]
    lo, hi = _neighbours(x)
    for seed in range(5):
        s = _core._testing.half_round(x, "stochastic", seed)
        assert np.all((s == lo) | (s == hi))


def test_stochastic_rounding_is_unbiased():
    for v in [0.0123456, -3.3333, 1e-5, 7.77e-7, 0.1]:
        x = np.full(200000, v, dtype=np.float32)
        s = _core._testing.half_round(x, "stochastic", 3).astype(np.float64)
        lo, hi = _neighbours(x[:1])
        spacing = float(hi[0] - lo[0])
        # mean of n Bernoulli roundings: std = spacing * sqrt(p(1-p)/n) <= spacing / (2 sqrt(n))
        assert abs(s.mean() - float(x[0])) < 5 * spacing / (2 * np.sqrt(len(x))) + 1e-12
        if spacing > 0 and lo[0] != x[0]:
            assert 0 < (s == hi[0]).mean() < 1
