"""ALS numerics (issue 21): the CPU solver and the CUDA kernels against the NumPy reference
(reference_als.py), through the _core._testing hooks of one side's solve.

Tolerances.  FP32: 1e-5 relative (max |difference| / max |reference|) to the float64
reference with one thread.  The data have more items than k, as real data do: on a tiny
square problem the conjugate-gradient recurrences of float32 and float64 drift apart once the
residual has fallen a few orders (measured: 4e-3 apart after 8 steps on a system of condition
24, NumPy float32 against float64 alike), which says nothing about the kernels.  FP16: the
reference rounds where the kernels store FP16, so (A) the kernels' FP16 Hermitian is checked
bit for bit against the rounding of their own FP32 Hermitian, and the solve from it to 1e-5;
(factors) every stored half equals the reference's rounding but for rare one-ulp ties of the
float32 and float64 values.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import reference_als as ref
from mascot import _core

F32 = np.float32
SOLVERS = [("cholesky", 3), ("cg", 1), ("cg", 3), ("cg", 6)]
# CG forms its products from the built A_u ("hermitian", the paper) or from the rows
# ("matrix_free", Takacs et al.): both are checked wherever CG runs
FORMS = ["hermitian", "matrix_free"]
CASES = [("cholesky", 3, "hermitian")] + [("cg", n, f) for n in (1, 3, 6) for f in FORMS]
CASE_IDS = ["cholesky"] + [f"cg{n}-{f}" for n in (1, 3, 6) for f in FORMS]


def make_data(seed=0, nu=60, ni=150, k=16, density=0.1, scale=0.3):
    """Ratings 1..5 on a random pattern, user 3 and item 5 without ratings; factors N(0, scale^2)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((nu, ni)) < density
    mask[3] = False
    mask[:, 5] = False
    u, i = np.nonzero(mask)
    r = rng.integers(1, 6, len(u)).astype(F32)
    P = (rng.standard_normal((nu, k)) * scale).astype(F32)
    Q = (rng.standard_normal((ni, k)) * scale).astype(F32)
    return u.astype(np.int32), i.astype(np.int32), r, P, Q


def user_csr(u, i, r, nu):
    p, c, v = ref.csr(nu, u, i, r)
    return p.astype(np.int64), c.astype(np.int32), v.astype(F32)


def relerr(x, want):
    return float(np.abs(np.asarray(x, np.float64) - want).max() / np.abs(want).max())


def kw_of(implicit, solver="cg", steps=3):
    return dict(lam=0.1 if implicit else 0.05, implicit=implicit, alpha=2.0, solver=solver, cg_steps=steps)


def herm(csr, Q, device="cpu", **kw):
    return _core._testing.als_hermitian(*csr, Q, device=device, **kw)


def hook(csr, Q, P, device="cpu", threads=1, **kw):
    kw = dict(kw)
    kw.setdefault("weighted", not kw.get("implicit", False))
    fp16 = kw.pop("factors_fp16", False)
    hh = kw.pop("hermitian_fp16", False)
    return _core._testing.als_solve_side(*csr, Q, P, hermitian_half=hh, factors_half=fp16, threads=threads,
                                         device=device, **kw)


# ------------------------------------------------------------------ FP32 against the reference

@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("solver,steps,form", CASES, ids=CASE_IDS)
def test_matches_reference_fp32(backend, implicit, solver, steps, form):
    for seed in range(3):
        u, i, r, P, Q = make_data(seed)
        csr = user_csr(u, i, r, len(P))
        kw = kw_of(implicit, solver, steps)
        want = ref.solve_side(*csr, Q, P, **kw)
        got = hook(csr, Q, P, device=backend, cg_form=form, **kw)
        assert got.dtype == F32 and got.shape == P.shape
        assert relerr(got, want) < 1e-5, (seed, relerr(got, want))
        assert not np.isnan(got).any()
        assert np.all(got[3] == 0)  # no interactions: zero


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_a_full_iteration_matches_reference(backend, implicit, form):
    """Users, then items from the new users (the item side from the kernels' own user output:
    its solve would otherwise also measure how it amplifies a 1e-7 difference of its input)."""
    u, i, r, P, Q = make_data(7, nu=300)  # ~30 ratings per item: explicit item systems of moderate condition
    nu, ni = len(P), len(Q)
    kw = dict(kw_of(implicit, "cg", 3), cg_form=form)
    P1k = hook(user_csr(u, i, r, nu), Q, P, device=backend, **kw)
    Q1k = hook(user_csr(i, u, r, ni), P1k, Q, device=backend, **kw)
    kw.pop("cg_form")
    P1, _ = ref.iteration(u, i, r, nu, ni, P, Q, **kw)
    assert relerr(P1k, P1) < 1e-5
    assert relerr(Q1k, ref.solve_side(*ref.csr(ni, i, u, r), P1k, Q, **kw)) < 1e-5
    assert np.all(Q1k[5] == 0)


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "plain"])
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_hermitian_matches_reference(backend, implicit, weighted):
    u, i, r, P, Q = make_data(1)
    csr = user_csr(u, i, r, len(P))
    A, b = herm(csr, Q, backend, lam=0.1, implicit=implicit, alpha=2.0, weighted=weighted)
    YtY = Q.astype(np.float64).T @ Q
    for row in range(len(P)):
        Aw, bw, n = ref.system(*csr, Q.astype(np.float64), row, lam=0.1, implicit=implicit, alpha=2.0,
                               weighted=weighted, YtY=YtY)
        if n == 0:
            assert np.all(A[row] == 0) and np.all(b[row] == 0)
            continue
        assert relerr(A[row], Aw) < 1e-6 and relerr(b[row], bw) < 1e-6
        assert np.array_equal(A[row], A[row].T)


def test_regularisation_choice_is_what_it_says():
    """weighted: lambda n_u on the diagonal (explicit default); plain: lambda."""
    u, i, r, P, Q = make_data(2)
    csr = user_csr(u, i, r, len(P))
    Aw, _ = _core._testing.als_hermitian(*csr, Q, lam=0.5, weighted=True)
    Ap, _ = _core._testing.als_hermitian(*csr, Q, lam=0.5, weighted=False)
    n = np.diff(csr[0])
    for row in np.nonzero(n)[0][:10]:
        d = np.diag(Aw[row]) - np.diag(Ap[row])
        np.testing.assert_allclose(d, 0.5 * (n[row] - 1), rtol=1e-5)


# ------------------------------------------------------------------ FP16 storage

@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_hermitian_fp16_is_the_rounding_of_the_fp32_hermitian(backend, implicit):
    """The stored A is half(s A) read back as half(s A) / s, s the power of two of
    reference_als.hermitian_scale: bit for bit against the kernels' own FP32 A."""
    u, i, r, P, Q = make_data(3)
    csr = user_csr(u, i, r, len(P))
    kw = dict(lam=0.1, implicit=implicit, alpha=2.0, weighted=not implicit)
    A32, b32 = herm(csr, Q, backend, **kw)
    A16, b16 = herm(csr, Q, backend, hermitian_half=True, **kw)
    assert np.array_equal(b16, b32)
    rounded = 0
    for row in range(len(P)):
        if not A32[row].any():
            assert not A16[row].any()
            continue
        s = F32(ref.hermitian_scale(A32[row].astype(np.float64)))
        assert 2.0 ** 14 <= np.diag(A32[row]).max() * s < 2.0 ** 15
        want = ((A32[row] * s).astype(np.float16).astype(F32) / s).astype(F32)
        assert np.array_equal(A16[row], want), row
        rounded += int(np.count_nonzero(A16[row] != A32[row]))
    assert rounded > 0.9 * A32[np.abs(A32).sum(axis=(1, 2)) > 0].size  # it really rounds


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("solver,steps", SOLVERS, ids=[f"{s}{n}" if s == "cg" else s for s, n in SOLVERS])
def test_hermitian_fp16_solve_matches_reference_on_the_rounded_matrix(backend, implicit, solver, steps):
    u, i, r, P, Q = make_data(4)
    csr = user_csr(u, i, r, len(P))
    kw = kw_of(implicit, solver, steps)
    A16, b = herm(csr, Q, backend, lam=kw["lam"], implicit=implicit, alpha=2.0, weighted=not implicit,
                  hermitian_half=True)
    got = hook(csr, Q, P, device=backend, hermitian_fp16=True, **kw)
    fp32 = hook(csr, Q, P, device=backend, **kw)
    want = np.zeros_like(got, dtype=np.float64)
    for row in range(len(P)):
        if not A16[row].any():
            continue
        A, bb = A16[row].astype(np.float64), b[row].astype(np.float64)
        want[row] = np.linalg.solve(A, bb) if solver == "cholesky" else ref.cg(A, bb, P[row], steps)
    assert relerr(got, want) < 1e-5
    assert relerr(fp32, want) > 1e-4  # the FP16 matrix changes the answer: the test can tell


@pytest.mark.parametrize("variant", ["A32", "A32-matrix_free", "A16"])
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("solver,steps", [("cholesky", 3), ("cg", 3)])
def test_fp16_factors_match_reference_rounding(backend, implicit, solver, steps, variant):
    if solver == "cholesky" and variant == "A32-matrix_free":
        return  # the same as A32: cholesky has one form
    hermitian_fp16 = variant == "A16"
    u, i, r, P, Q = make_data(5)
    P, Q = (ref.half(M).astype(F32) for M in (P, Q))  # stored factors are halves
    csr = user_csr(u, i, r, len(P))
    kw = kw_of(implicit, solver, steps)
    form = "matrix_free" if variant.endswith("matrix_free") else "hermitian"
    got = hook(csr, Q, P, device=backend, factors_fp16=True, hermitian_fp16=hermitian_fp16, cg_form=form, **kw)
    assert np.array_equal(ref.half(got), got)  # every value is a half
    if hermitian_fp16:  # the reference solve from the kernels' rounded A, then the store's rounding
        A16, b = herm(csr, Q, backend, lam=kw["lam"], implicit=implicit, alpha=2.0, weighted=not implicit,
                      hermitian_half=True, factors_half=True)
        exact = np.zeros(got.shape)
        for row in np.nonzero(np.abs(A16).sum(axis=(1, 2)))[0]:
            A, bb = A16[row].astype(np.float64), b[row].astype(np.float64)
            exact[row] = np.linalg.solve(A, bb) if solver == "cholesky" else ref.cg(A, bb, P[row], steps)
    else:
        exact = ref.solve_side(*csr, Q, P, **kw)
    want = ref.half(exact)
    # one ulp of the half, or where the half's ulp is below float32's error of the solve (small
    # entries of a row), that error (1e-5 of the largest): the kernels round their float32 x
    ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(got - want) <= np.maximum(ulp, 1e-5 * np.abs(exact).max()))
    assert np.mean(got == want) > 0.99
    assert np.mean(exact.astype(F32) == got) < 0.1  # unrounded values would not match


def test_factors_fp16_round_the_inputs():
    """FP16 storage reads the inputs as their nearest halves (factors_half rounds them)."""
    u, i, r, P, Q = make_data(6)
    csr = user_csr(u, i, r, len(P))
    kw = kw_of(False, "cholesky")
    a = hook(csr, Q, P, factors_fp16=True, **kw)
    b = hook(csr, ref.half(Q).astype(F32), ref.half(P).astype(F32), factors_fp16=True, **kw)
    assert np.array_equal(a, b)


# ------------------------------------------------------------------ implicit: the Y^T Y trick

def test_reference_implicit_equals_the_dense_brute_force():
    rng = np.random.default_rng(0)
    R = (rng.random((12, 9)) < 0.35) * rng.integers(1, 4, (12, 9))
    R[2] = 0
    Y = rng.standard_normal((9, 5)) * 0.5
    u, i = np.nonzero(R)
    csr = ref.csr(12, u, i, R[u, i])
    got = ref.solve_side(*csr, Y, np.zeros((12, 5)), lam=0.3, implicit=True, alpha=1.5, solver="cholesky")
    np.testing.assert_allclose(got, ref.implicit_dense(R, Y, lam=0.3, alpha=1.5), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver,steps,form", [("cholesky", 3, "hermitian"), ("cg", 20, "hermitian"),
                                               ("cg", 20, "matrix_free")])
def test_implicit_equals_the_dense_brute_force(backend, solver, steps, form):
    """The kernels' Y^T Y trick solves the dense problem (every unobserved pair a zero
    preference with confidence 1); CG with as many steps as it needs reaches the same x."""
    rng = np.random.default_rng(1)
    nu, ni, k = 14, 40, 6
    R = ((rng.random((nu, ni)) < 0.3) * rng.integers(1, 4, (nu, ni))).astype(F32)
    R[2] = 0
    Y = (rng.standard_normal((ni, k)) * 0.5).astype(F32)
    u, i = np.nonzero(R)
    csr = user_csr(u.astype(np.int32), i.astype(np.int32), R[u, i], nu)
    got = hook(csr, Y, np.zeros((nu, k), F32), device=backend, lam=0.3, implicit=True, alpha=1.5, solver=solver,
               cg_steps=steps, cg_form=form)
    assert relerr(got, ref.implicit_dense(R, Y, lam=0.3, alpha=1.5)) < 2e-5
    assert np.all(got[2] == 0)


def test_gram_matches_numpy_and_ignores_threads():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((20000, 24)).astype(F32)
    g1 = _core._testing.als_gram(Y, threads=1)
    assert relerr(g1, Y.astype(np.float64).T @ Y) < 1e-5
    assert np.array_equal(g1, _core._testing.als_gram(Y, threads=3))
    assert np.array_equal(g1, g1.T)
    gh = _core._testing.als_gram(Y, half=True)
    assert relerr(gh, ref.half(Y).T @ ref.half(Y)) < 1e-5


# ------------------------------------------------------------------ structure and robustness

@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_threads_do_not_change_results(implicit, fp16, form):
    u, i, r, P, Q = make_data(8, nu=300, ni=200, k=20)
    csr = user_csr(u, i, r, len(P))
    kw = dict(kw_of(implicit, "cg", 3), cg_form=form)
    one = hook(csr, Q, P, factors_fp16=fp16, threads=1, **kw)
    for t in (2, 5):
        assert np.array_equal(one, hook(csr, Q, P, factors_fp16=fp16, threads=t, **kw))


def test_rows_without_interactions_are_zero_in_every_variant(backend):
    u, i, r, P, Q = make_data(9)
    P[:] = 7.0  # the warm start of a row without interactions must not survive
    csr = user_csr(u, i, r, len(P))
    for implicit in (False, True):
        for solver in ("cholesky", "cg"):
            for fp16 in (False, True):
                for hh, form in ((False, "hermitian"), (False, "matrix_free"), (True, "hermitian")):
                    X = hook(csr, Q, P, device=backend, factors_fp16=fp16, hermitian_fp16=hh, cg_form=form,
                             **kw_of(implicit, solver))
                    assert np.all(np.isfinite(X)) and np.all(X[3] == 0)


def test_implicit_zero_strengths_are_no_interaction():
    """A stored 0 in implicit data is dropped by the CSR builder: the row is empty, so zero."""
    p, c, v = _core._testing.als_csr(3, 4, np.array([0, 0, 1, 2], np.int32), np.array([3, 1, 2, 0], np.int32),
                            np.array([1, 2, 0, 5], F32), drop_zeros=True)
    assert list(p) == [0, 2, 2, 3] and list(c) == [1, 3, 0] and list(v) == [2, 1, 5]
    p, c, v = _core._testing.als_csr(3, 4, np.array([0, 0, 1, 2], np.int32), np.array([3, 1, 2, 0], np.int32),
                            np.array([1, 2, 0, 5], F32))
    assert list(p) == [0, 2, 3, 4] and list(c) == [1, 3, 2, 0]
    with pytest.raises(ValueError, match="out of range"):
        _core._testing.als_csr(3, 4, np.array([0, 3], np.int32), np.array([0, 0], np.int32), np.ones(2, F32))


@pytest.mark.parametrize("bad,match", [
    (dict(lam=0.0), "lambda"), (dict(lam=float("nan")), "lambda"), (dict(alpha=0.0), "alpha"),
    (dict(alpha=-1.0), "alpha"), (dict(cg_steps=0), "cg_steps"), (dict(solver="lu"), "solver"),
])
def test_bad_options_are_one_line_errors(bad, match):
    u, i, r, P, Q = make_data(0)
    kw = dict(kw_of(True), **bad)
    with pytest.raises(ValueError, match=match) as e:
        hook(user_csr(u, i, r, len(P)), Q, P, **kw)
    assert "\n" not in str(e.value)


def test_cholesky_failure_names_the_row():
    """A row with one rating and a regularisation too small to count in float32 has a singular A."""
    Q = np.ones((3, 4), F32)
    csr = (np.array([0, 1], np.int64), np.array([0], np.int32), np.array([3.0], F32))
    with pytest.raises(ValueError, match="Cholesky factorisation failed on row 0.*increase the regularization"):
        hook(csr, Q, np.zeros((1, 4), F32), lam=1e-30, solver="cholesky")


def test_cg_form_choice():
    """auto: matrix-free CG where it does fewer operations (k > 6 (steps + 1)), the Hermitian
    under FP16 A (what it stores) and for Cholesky; an explicit choice is kept."""
    assert _core.als_cg_form(64, cg_steps=3) == "matrix_free"
    assert _core.als_cg_form(16, cg_steps=3) == "hermitian"
    assert _core.als_cg_form(64, cg_steps=12) == "hermitian"
    assert _core.als_cg_form(64, hermitian_half=True) == "hermitian"
    assert _core.als_cg_form(64, solver="cholesky") == "hermitian"
    assert _core.als_cg_form(16, cg_form="matrix_free") == "matrix_free"
    assert _core.als_cg_form(128, cg_form="hermitian") == "hermitian"


def test_rows_too_long_to_keep_give_the_same_bits():
    """The matrix-free CG gathers a row too long to keep (MASCOT_ALS_RESIDENT_BYTES) again in
    every pass: the same arithmetic in the same order as the kept panel."""
    code = ("import sys, numpy as np; sys.path.insert(0, %r); import test_als as t;"
            "u,i,r,P,Q=t.make_data(13, nu=40, ni=400, k=24, density=0.5); c=t.user_csr(u,i,r,len(P));"
            "np.save(sys.argv[1], np.concatenate([t.hook(c,Q,P,cg_form='matrix_free',threads=2,**t.kw_of(imp,'cg',3))"
            " for imp in (False, True)]))").replace("%r", repr(os.path.dirname(__file__)))
    got = []
    for cap in ("", "4096"):  # 4 KB: rows of more than 32 entries (k = 24 -> kp = 32) are gathered again
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"als_resident_{os.getpid()}_{cap or 'default'}.npy")
        subprocess.run([sys.executable, "-c", code, path], env=dict(os.environ, MASCOT_ALS_RESIDENT_BYTES=cap),
                       check=True)
        got.append(np.load(path))
        os.remove(path)
    assert np.array_equal(got[0], got[1])


def test_every_kernel_variant_agrees():
    """The generic and AVX2 builds of the kernels (MASCOT_ISA, read once per process) against
    the one this host picks, to 1e-5."""
    code = ("import sys, numpy as np; sys.path.insert(0, %r); import test_als as t; from mascot import _core;"
            "u,i,r,P,Q=t.make_data(11, k=40); c=t.user_csr(u,i,r,len(P));"
            "x=t.hook(c,Q,P,**t.kw_of(True,'cg',3)); y=t.hook(c,Q,P,**t.kw_of(False,'cholesky'));"
            "z=t.hook(c,Q,P,cg_form='hermitian',**t.kw_of(True,'cg',3));"
            "np.save(sys.argv[1], np.concatenate([x,y,z])); print(_core.als_kernel_isa())"
            ).replace("%r", repr(os.path.dirname(__file__)))
    out = {}
    for isa in ("generic", "avx2", ""):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"als_isa_{os.getpid()}_{isa or 'best'}.npy")
        env = dict(os.environ, MASCOT_ISA=isa)
        picked = subprocess.run([sys.executable, "-c", code, path], env=env, check=True, capture_output=True,
                                text=True).stdout.strip()
        out[picked] = np.load(path)
        os.remove(path)
    assert "generic" in out
    base = out.pop("generic")
    for isa, x in out.items():
        assert relerr(x, base) < 1e-5, isa


# ------------------------------------------------------------------ the CUDA kernels

@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_matches_cpu(backend, implicit, precision):
    """Besides the reference tests above (each also run on the device): the device's solve of a
    larger problem against the CPU's, k = 64, every solver."""
    if backend == "cpu":
        return  # the cpu is the reference here
    u, i, r, P, Q = make_data(12, nu=200, ni=300, k=64, density=0.05)
    fp16 = precision == "fp16"
    if fp16:
        P, Q = (ref.half(M).astype(F32) for M in (P, Q))
    csr = user_csr(u, i, r, len(P))
    for solver, steps, form in CASES:
        kw = dict(kw_of(implicit, solver, steps), factors_fp16=fp16, cg_form=form)
        cpu = hook(csr, Q, P, **kw)
        gpu = hook(csr, Q, P, device="cuda", **kw)
        assert np.all(gpu[3] == 0) and np.all(np.isfinite(gpu))
        if fp16:  # one-ulp ties of the stores apart
            assert np.mean(gpu == cpu) > 0.98 and relerr(gpu, cpu) < 2e-3
        else:
            assert relerr(gpu, cpu) < 1e-5, (solver, steps)
