"""The CPU backend (1 thread) against the NumPy reference of serial SGD."""
import os
import subprocess
import sys

import numpy as np
import pytest

import mascot
from backends import host_has_avx2
from mascot import _core
from reference import dot_lanes, half, sgd_update, train_reference


def _fit(data, method, k, epochs, **kw):
    u, i, r, nu, ni = data
    m = mascot.MF(k=k, method=method, epochs=epochs, threads=1, device="cpu", groups=3, **kw)
    return m.fit((u, i, r))


@pytest.mark.parametrize("k", [32, 20])  # vector path (k % 16 == 0) and scalar path
@pytest.mark.parametrize("order", ["shuffle", "grid"])
def test_fp32_matches_reference(tiny, k, order):
    u, i, r, nu, ni = tiny
    m = _fit(tiny, "fp32", k, 3, order=order)
    P, Q = train_reference(u, i, r, nu, ni, k=k, epochs=3, method="fp32", order=order)
    # same operations in the same order: the bound is 1e-5 relative; we get exact bits
    np.testing.assert_allclose(m.P, P, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(m.Q, Q, rtol=1e-5, atol=1e-9)
    assert np.array_equal(m.P, P) and np.array_equal(m.Q, Q)
    # and training did something: far from the init
    assert np.abs(m.P - _core._testing.init_factors(nu, k, 0.01, 42, "P")).max() > 1e-3


@pytest.mark.parametrize("method", ["fp16", "mascot-n1"])
@pytest.mark.parametrize("k", [32, 20])
def test_half_storage_methods_match_reference_bitwise(tiny, method, k):
    u, i, r, nu, ni = tiny
    m = _fit(tiny, method, k, 2, lr=0.05)
    P, Q = train_reference(u, i, r, nu, ni, k=k, epochs=2, method=method, lr=0.05)
    assert np.array_equal(m.P, P)
    assert np.array_equal(m.Q, Q)
    # every stored value is a half
    assert np.array_equal(half(m.P), m.P) and np.array_equal(half(m.Q), m.Q)


def test_rounding_modes_differ(tiny):
    """fp16 (half math) and mascot-n1 (float math, half store) and fp32 are distinct methods."""
    P32 = _fit(tiny, "fp32", 32, 2, lr=0.05).P
    Pn1 = _fit(tiny, "mascot-n1", 32, 2, lr=0.05).P
    P16 = _fit(tiny, "fp16", 32, 2, lr=0.05).P
    assert not np.array_equal(P32, Pn1) and not np.array_equal(Pn1, P16)
    # but all close: half precision has ~3 decimal digits
    assert np.abs(P32 - Pn1).max() < 0.05 * np.abs(P32).max()


def test_dot_lane_order_matters_and_is_followed():
    """The reference's 16-lane dot order gives other float32 bits than a sequential sum on
    some inputs, and the core's kernel (one rating through the per-group pass, FP32 rows,
    k = 64) follows the lane order bit for bit."""
    def sequential(p, q):
        s = np.float32(0)
        for x in p * q:
            s = np.float32(s + x)
        return s

    k, lr, lp, lq = 64, 0.05, 0.01, 0.015
    rng = np.random.default_rng(0)
    for _ in range(100):  # a pair whose two sums differ (most do)
        p = rng.normal(size=k).astype(np.float32)
        q = rng.normal(size=k).astype(np.float32)
        if dot_lanes(p, q) != sequential(p, q):
            break
    else:
        raise AssertionError("no input where the summation order matters")
    assert abs(float(dot_lanes(p, q)) - float(np.dot(p.astype(np.float64), q))) < 1e-4
    r = np.float32(3.5)
    want_p, want_q = sgd_update(p, q, r, lr, lp, lq)
    # the same update with a sequential dot product
    e = np.float32(r - sequential(p, q))
    cp, ce = np.float32(1) - np.float32(lr) * np.float32(lp), np.float32(lr) * e
    seq_p = cp * p + ce * q
    assert not np.array_equal(want_p, seq_p)
    one = np.array([0], np.int32)
    start, fp32 = np.array([0, 1], np.int32), np.array([1], np.uint8)
    gotP, gotQ = _core._testing.mixed_sgd_pass(one, one, np.array([r], np.float32), p[None, :].copy(),
                                               q[None, :].copy(), start, fp32, start, fp32, lr, lp, lq, False, 1, 0)
    assert np.array_equal(gotP[0], want_p) and np.array_equal(gotQ[0], want_q)


@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_every_kernel_variant_gives_identical_bits(tiny, isa, tmp_path):
    """The ISA variants (picked at process start) compute the same bits as the default one."""
    u, i, r, nu, ni = tiny
    np.savez(tmp_path / "d.npz", u=u, i=i, r=r)
    code = (
        "import numpy as np, mascot, sys\n"
        f"d = np.load(r'{tmp_path / 'd.npz'}')\n"
        "out = []\n"
        "for meth, k, rnd in [('fp32', 32, 'nearest'), ('mascot-n1', 48, 'nearest'), ('fp16', 32, 'nearest'),\n"
        "                     ('fp32', 20, 'nearest'), ('mascot-n1', 32, 'stochastic'),\n"
        "                     ('mascot-n1', 20, 'stochastic'),\n"
        "                     ('mascot', 48, 'stochastic')]:\n"
        "    m = mascot.MF(k=k, method=meth, epochs=2, threads=1, device='cpu', groups=2, lr=0.05, rounding=rnd,\n"
        "                  warmup=0, period=1)\n"
        "    m.fit((d['u'], d['i'], d['r']))\n"
        "    out.append(np.concatenate([m.P.ravel(), m.Q.ravel()]))\n"
        "np.save(sys.argv[1], np.concatenate(out))\n"
        "print(mascot._core.kernel_isa())\n"
    )
    outs = {}
    for name, env_isa in [("default", None), (isa, isa)]:
        env = dict(os.environ)
        env.pop("MASCOT_ISA", None)
        if env_isa:
            env["MASCOT_ISA"] = env_isa
        path = tmp_path / f"{name}.npy"
        res = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        outs[name] = (np.load(path), res.stdout.strip())
    # the child really ran the variant asked for (MASCOT_ISA=avx2 falls back on a host without
    # AVX2), and a different one from the default: else the comparison would be of one variant
    if isa == "avx2" and not host_has_avx2():
        pytest.skip("this host cannot run the AVX2 kernels")
    assert outs[isa][1] == isa
    if outs["default"][1] == isa:
        pytest.skip(f"{isa} is this host's default variant: nothing to compare it with")
    assert np.array_equal(outs["default"][0], outs[isa][0])


def test_lr_schedule_matches_design():
    c = _core.TrainConfig()
    for e in range(0, 50, 7):
        assert c.lr_at(e) == pytest.approx(c.lr / (1 + 0.1 * e ** 1.5), rel=1e-6)


def test_visit_order_is_a_fresh_permutation_every_epoch(tiny):
    u, i, r, nu, ni = tiny
    n = len(r)
    for order in ("shuffle", "grid"):
        v = _core._testing.visit_order(u, i, nu, ni, order, 3, 1)
        epochs = v.reshape(3, n)
        for e in epochs:
            assert np.array_equal(np.sort(e), np.arange(n))  # every rating exactly once
        assert not np.array_equal(epochs[0], epochs[1])
        # deterministic for a seed, different for another
        assert np.array_equal(v, _core._testing.visit_order(u, i, nu, ni, order, 3, 1))
        assert not np.array_equal(v, _core._testing.visit_order(u, i, nu, ni, order, 3, 1, seed=7))
    # chunk order: nnz/128 draws of 128 consecutive ratings (with replacement)
    v = _core._testing.visit_order(u, i, nu, ni, "chunk", 1, 1)
    assert len(v) == (n // 128) * 128
    runs = v.reshape(-1, 128)
    # 128 consecutive ratings of the once-shuffled set (as the reference code's random_shuffle)
    assert not np.all(np.diff(runs, axis=1) == 1)


def test_chunk_order_runs_are_not_runs_of_the_input_file():
    """The reference code shuffles the ratings once before drawing its 128-rating runs, so a run
    of a user-sorted input (MovieLens files) is not one user's ratings."""
    rng = np.random.default_rng(5)
    nu, ni, n = 300, 200, 30000
    u = np.sort(rng.integers(0, nu, n)).astype(np.int32)  # ~100 ratings per user, sorted by user
    i = rng.integers(0, ni, n).astype(np.int32)
    v = _core._testing.visit_order(u, i, nu, ni, "chunk", 2, 1)
    runs = v.reshape(-1, 128)
    assert len(runs) == 2 * (n // 128)
    assert min(len(np.unique(u[r])) for r in runs) > 60  # ~105 distinct users in 128 random ratings
    assert np.bincount(v, minlength=n).max() > 1  # drawn with replacement
    # the arrangement depends on the seed
    assert not np.array_equal(v, _core._testing.visit_order(u, i, nu, ni, "chunk", 2, 1, seed=7))
