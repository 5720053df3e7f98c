"""Separable GMP (anisotropic inputs): Sigma = I, scaling, closed-form moments, free
probability, mpmath, simulation, mass, branch and input checks."""

import math

import mpmath
import numpy as np
import pytest
from _quadrature import adaptive_gauss
from hypothesis import given, settings
from hypothesis import strategies as st

from rmthess.theory import (
    InputStats,
    SeparableGMPLaw,
    gmp_moments,
    limiting_law,
    separable_gmp_density,
    separable_gmp_moments,
    separable_gmp_stieltjes,
    separable_gmp_support,
    separable_gmp_zero_mass,
)
from rmthess.theory.gmp import gmp_density, gmp_stieltjes, gmp_support, gmp_zero_mass

NU_LAWS = [
    ([1.0], [1.0], 0.5),  # Marchenko-Pastur
    ([1.0], [1.0], 2.5),  # MP with an atom at 0
    ([0.0, 1.0, 3.0], [0.2, 0.5, 0.3], 0.7),  # nu has an atom at 0
    ([-1.0, 0.3, 2.0], [0.3, 0.4, 0.3], 0.4),  # signed
    (list(np.linspace(-0.5, 2.0, 40)), list(np.full(40, 1 / 40)), 1.3),
]


def two_level(n=100):
    return np.r_[np.ones(n // 2), 4.0 * np.ones(n - n // 2)]


def power_law(n=200, p=0.8):
    lam = np.arange(1, n + 1) ** -p
    return lam / lam.mean()


# ----------------------------------------------------------------------------- Sigma = I
@pytest.mark.parametrize("atoms, weights, gamma", NU_LAWS)
def test_sigma_identity_reproduces_gmp(atoms, weights, gamma):
    lo, hi = gmp_support(atoms, weights, gamma)[0][0], gmp_support(atoms, weights, gamma)[-1][1]
    x = np.linspace(lo - 0.1, hi + 0.1, 801)
    ref = gmp_density(x, atoms, weights, gamma)
    for eigs in ([1.0], np.ones(7)):
        got = separable_gmp_density(x, atoms, weights, gamma, eigs)
        assert np.max(np.abs(got - ref)) <= 1e-10 * ref.max()
    z = x + 0.05j
    s_ref = gmp_stieltjes(z, atoms, weights, gamma)
    s = separable_gmp_stieltjes(z, atoms, weights, gamma, [1.0])
    assert np.max(np.abs(s - s_ref)) <= 1e-10 * np.abs(s_ref).max()
    assert np.allclose(
        separable_gmp_support(atoms, weights, gamma, [1.0]),
        gmp_support(atoms, weights, gamma),
        rtol=1e-10,
        atol=1e-12,
    )
    assert separable_gmp_zero_mass(atoms, weights, gamma, [1.0]) == pytest.approx(
        gmp_zero_mass(atoms, weights, gamma), abs=1e-15
    )
    law = SeparableGMPLaw(atoms, weights, gamma, [1.0])
    xs = np.linspace(lo, hi, 9)
    from rmthess.theory import GMPLaw

    assert np.allclose(law.cdf(xs), GMPLaw(atoms, weights, gamma).cdf(xs), atol=1e-10)


def test_scaling_sigma_equals_scaling_a():
    atoms, weights, gamma = [-1.0, 0.3, 2.0], [0.3, 0.4, 0.3], 0.4
    lam = power_law(60)
    c = 3.7
    x = np.linspace(-8, 20, 400)
    a = separable_gmp_density(x, atoms, weights, gamma, c * lam)
    b = separable_gmp_density(x, c * np.array(atoms), weights, gamma, lam)
    assert np.max(np.abs(a - b)) <= 1e-12 * a.max()
    M1 = separable_gmp_moments(atoms, weights, gamma, c * lam, kmax=3)
    M2 = separable_gmp_moments(c * np.array(atoms), weights, gamma, lam, kmax=3)
    assert np.allclose(M1, M2, rtol=1e-13)
    # Sigma = c I is the GMP law of c nu
    got = separable_gmp_density(x, atoms, weights, gamma, [c, c])
    ref = gmp_density(x, c * np.array(atoms), weights, gamma)
    assert np.max(np.abs(got - ref)) <= 1e-10 * ref.max()


# ----------------------------------------------------------------------------- moments
def closed_moments(atoms, weights, gamma, lam):
    """M1..M3 from the closed forms (derived by hand, docs/theory.md section 3)."""
    a, w = np.asarray(atoms, float), np.asarray(weights, float)
    m1, m2, m3 = (float(np.dot(w, a**k)) for k in (1, 2, 3))
    t1, t2, t3 = (float(np.mean(np.asarray(lam, float) ** k)) for k in (1, 2, 3))
    return (
        t1 * m1,
        gamma * t1**2 * m2 + t2 * m1**2,
        gamma**2 * t1**3 * m3 + 3 * gamma * t1 * t2 * m1 * m2 + t3 * m1**3,
    )


def free_product_moments(atoms, weights, gamma, lam):
    """M1..M3 of the free multiplicative convolution of law(Sigma) and the GMP law of
    (nu, gamma): the free-product moment formulas with gmp_moments (another route)."""
    A = [float(np.mean(np.asarray(lam, float) ** k)) for k in range(4)]
    B = gmp_moments(atoms, weights, gamma, 3)
    return (
        A[1] * B[1],
        A[2] * B[1] ** 2 + A[1] ** 2 * B[2] - A[1] ** 2 * B[1] ** 2,
        A[3] * B[1] ** 3
        + A[1] ** 3 * B[3]
        + 3 * A[1] * A[2] * B[1] * B[2]
        - 3 * A[1] * A[2] * B[1] ** 3
        - 3 * A[1] ** 3 * B[1] * B[2]
        + 2 * A[1] ** 3 * B[1] ** 3,
    )


@pytest.mark.parametrize("atoms, weights, gamma", NU_LAWS)
@pytest.mark.parametrize("lam", [two_level(), power_law()], ids=["two-level", "power"])
def test_moments_closed_forms_and_quadrature(atoms, weights, gamma, lam):
    M = separable_gmp_moments(atoms, weights, gamma, lam, kmax=3)
    assert M[0] == 1.0
    cf = closed_moments(atoms, weights, gamma, lam)
    fp = free_product_moments(atoms, weights, gamma, lam)
    scale = math.sqrt(M[2])
    for k in (1, 2, 3):
        assert M[k] == pytest.approx(cf[k - 1], rel=1e-12, abs=1e-12 * scale**k)
        assert M[k] == pytest.approx(fp[k - 1], rel=1e-10, abs=1e-10 * scale**k)
    # the density integrates to the same moments (independent adaptive quadrature)
    law = SeparableGMPLaw(atoms, weights, gamma, lam)
    sup = law.support()
    for k in (0, 1, 2):
        pdf_k = lambda x, k=k: law.pdf(x) * x**k  # noqa: E731
        q = adaptive_gauss(sup, pdf_k, tol=1e-11) + (law.zero_mass if k == 0 else 0.0)
        assert q == pytest.approx(M[k], rel=1e-8, abs=1e-8 * scale**k)
    assert law.mean() == pytest.approx(M[1], rel=1e-14, abs=1e-15)


def test_mass_and_zero_mass():
    lam = np.r_[np.zeros(30), two_level(70)]  # singular Sigma: rank 70 of 100
    for atoms, weights, gamma in NU_LAWS:
        law = SeparableGMPLaw(atoms, weights, gamma, lam)
        w0 = sum(w for a, w in zip(atoms, weights, strict=True) if a == 0.0)
        assert law.zero_mass == pytest.approx(max(0.3, 1 - (1 - w0) / gamma), abs=1e-15)
        assert law.zero_mass + law.ac_mass() == pytest.approx(1.0, abs=1e-9)
        assert law.check["mass_error"] <= 1e-9
        assert float(law.cdf(np.inf)) == 1.0


# ----------------------------------------------------------------------------- accuracy
def mp_solution(x, atoms, weights, gamma, lam, e0, dps=40):
    """Density at x from mpmath's root of (SEP) in e, started at the double solution."""
    with mpmath.workdps(dps):
        g = mpmath.mpf(gamma)
        A = [mpmath.mpf(float(a)) for a in atoms]
        W = [mpmath.mpf(float(w)) for w in weights]
        L = [mpmath.mpf(float(v)) for v in lam]
        h = mpmath.mpf(1) / len(L)
        z = mpmath.mpf(float(x))

        def t_of(e):
            return mpmath.fsum(w * a / (1 + g * a * e) for a, w in zip(A, W, strict=True))

        def f(e):
            t = t_of(e)
            return e - mpmath.fsum(h * v / (v * t - z) for v in L)

        e = mpmath.findroot(f, mpmath.mpc(e0))
        t = t_of(e)
        s = mpmath.fsum(h / (v * t - z) for v in L)
        return float(mpmath.im(s) / mpmath.pi)


def test_density_against_mpmath():
    rng = np.random.default_rng(3)
    atoms, weights, gamma = rng.exponential(size=25), np.full(25, 1 / 25), 0.6
    lam = power_law(30)
    law = SeparableGMPLaw(atoms, weights, gamma, lam)
    sup = law.support()
    x = np.concatenate([np.linspace(a, b, 6)[1:-1] for a, b in sup])[:12]
    from rmthess.theory.separable_gmp import _Problem

    pb = _Problem(atoms, weights, gamma, lam, None)
    e, _s, flags = pb.solve_real(x / pb.scale)
    assert np.all(flags < 2)
    got = law.pdf(x)
    for xi, ei, gi in zip(x, e, got, strict=True):
        # e in the rescaled units: e_orig = e * max(lam) / scale = e / max|tau|
        ref = mp_solution(xi, atoms, weights, gamma, lam, complex(ei) / np.abs(atoms).max())
        assert gi == pytest.approx(ref, rel=1e-11)


def test_branch_certificate_and_eta_limit():
    atoms, weights, gamma = [-1.0, 0.3, 2.0], [0.3, 0.4, 0.3], 0.4
    lam = two_level(40)
    x = np.linspace(-5, 12, 301)
    s0, flags = separable_gmp_stieltjes(x, atoms, weights, gamma, lam, return_flags=True)
    assert np.all(flags < 2)
    s_eta = separable_gmp_stieltjes(x + 1e-9j, atoms, weights, gamma, lam)
    assert np.all(s_eta.imag > 0)
    assert np.max(np.abs(s_eta - s0)) <= 1e-6 * np.abs(s0).max()
    # conjugate symmetry and Im s > 0 in C+
    z = x + 0.3j
    sp = separable_gmp_stieltjes(z, atoms, weights, gamma, lam)
    sm = separable_gmp_stieltjes(z.conj(), atoms, weights, gamma, lam)
    assert np.all(sp.imag > 0) and np.allclose(sm, sp.conj(), rtol=1e-14)


def test_edges_are_edges():
    atoms, weights, gamma = [0.5, 2.0], [0.5, 0.5], 0.2
    lam = two_level(50)
    sup = separable_gmp_support(atoms, weights, gamma, lam)
    assert len(sup) >= 2  # separated pieces
    for a, b in sup:
        inside = separable_gmp_density([a * (1 + 1e-9), b * (1 - 1e-9)], atoms, weights, gamma, lam)
        outside = separable_gmp_density(
            [a * (1 - 1e-9), b * (1 + 1e-9)], atoms, weights, gamma, lam
        )
        assert np.all(inside > 0) and np.all(outside == 0)


# ----------------------------------------------------------------------------- simulation
def simulated_eigs(lam, atoms, weights, gamma, d, seed):
    rng = np.random.default_rng(seed)
    N = int(round(d / gamma))
    X = rng.standard_normal((N, d)) * np.sqrt(lam)[None, :]  # x = Sigma^{1/2} g, diagonal
    # stratified weights (exact proportions): the sampling noise of the proportions of nu
    # moves the count of negative eigenvalues by ~sqrt(N w (1 - w)) (KS ~0.01 at d = 600)
    counts = np.round(np.asarray(weights) * N).astype(int)
    counts[-1] = N - counts[:-1].sum()
    a = rng.permutation(np.repeat(np.asarray(atoms, float), counts))
    return np.linalg.eigvalsh((X.T * a) @ X / N)


@pytest.mark.parametrize(
    "kind, atoms, weights",
    [
        ("two-level", [0.5, 2.0], [0.5, 0.5]),
        ("power", [-0.4, 1.0], [0.3, 0.7]),
    ],
)
def test_simulation_ks(kind, atoms, weights):
    d, gamma = 600, 0.5
    lam = two_level(d) if kind == "two-level" else power_law(d)
    ev = np.sort(simulated_eigs(lam, atoms, weights, gamma, d, seed=1))
    law = SeparableGMPLaw(atoms, weights, gamma, lam)
    F = law.cdf(ev)
    emp_hi = np.arange(1, d + 1) / d
    ks = max(np.max(np.abs(emp_hi - F)), np.max(np.abs(emp_hi - 1 / d - F)))
    assert ks < 0.01, ks  # the issue asks < 0.02; measured 0.004-0.006 (seeds 1-3)
    # tr H / d = (1/N) sum a_i |x_i|^2 / d: standard error <= tau_1 max|a| sqrt(2 / (N d))
    se = np.sqrt(np.mean(lam**2)) * max(np.abs(atoms)) * math.sqrt(2 / (d * d / gamma))
    assert np.mean(ev) == pytest.approx(law.mean(), abs=5 * se)


# ----------------------------------------------------------------------------- random spectra
spectra = st.tuples(
    st.lists(st.floats(0.05, 5.0), min_size=1, max_size=8),
    st.lists(st.floats(-2.0, 3.0).filter(lambda v: abs(v) > 0.05), min_size=1, max_size=5),
    st.floats(0.1, 3.0),
)


@settings(max_examples=15, deadline=None)
@given(spectra)
def test_random_spectra_mass_and_moments(args):
    lam, atoms, gamma = args
    weights = np.full(len(atoms), 1.0 / len(atoms))
    law = SeparableGMPLaw(atoms, weights, gamma, lam)
    assert law.check["mass_error"] <= 1e-7
    assert law.check["M2_error"] <= 1e-7
    cf = closed_moments(atoms, weights, gamma, lam)
    M = separable_gmp_moments(atoms, weights, gamma, lam, kmax=3)
    assert np.allclose(M[1:], cf, rtol=1e-11, atol=1e-11 * M[2] ** 1.5)


# ----------------------------------------------------------------------------- limiting_law
def test_limiting_law_inputs():
    iso = InputStats.from_spectrum(np.ones(40))
    for block in ("diag", "off"):
        L0 = limiting_law("linear-ce", block, 4, 0.5, n_atoms=512)
        L1 = limiting_law("linear-ce", block, 4, 0.5, n_atoms=512, inputs=iso)
        assert isinstance(L1, SeparableGMPLaw)
        (a, b), *_ = L0.support()
        x = np.linspace(a - 0.01, L0.support()[-1][1] + 0.01, 200)
        assert np.max(np.abs(L1.pdf(x) - L0.pdf(x))) <= 1e-10 * L0.pdf(x).max()
    # Sigma = c I: logits at scale sqrt(c), spectrum scaled by c
    c = 2.5
    Lc = limiting_law("linear-ce", "diag", 4, 0.5, n_atoms=512, inputs=iso_c(c))
    Lr = limiting_law("linear-ce", "diag", 4, 0.5, n_atoms=512, init=math.sqrt(c))
    x = np.linspace(0.0, 1.0, 50)
    assert np.allclose(Lc.pdf(c * x) * c, Lr.pdf(x), rtol=1e-10, atol=1e-12)
    mse = limiting_law("linear-mse", "diag", 4, 0.5, inputs=InputStats.from_spectrum(two_level()))
    assert mse.moment(2) == pytest.approx(0.5 * 2.5**2 + 8.5, rel=1e-13)


def iso_c(c):
    return InputStats.from_spectrum(np.full(40, c))


def test_limiting_law_inputs_refused():
    with pytest.raises(ValueError, match="inputs"):
        limiting_law("linear-ce", "diag", 4, 0.5, inputs=InputStats.from_spectrum(
            np.ones(40), mean=np.ones(40)))  # fmt: skip
    with pytest.raises(ValueError, match="inputs"):
        limiting_law("hidden-mse", "diag", 4, 0.5, m=3, inputs=iso_c(1.0))
    with pytest.raises(TypeError, match="inputs"):
        limiting_law("linear-ce", "diag", 4, 0.5, inputs=np.ones(3))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "eigs, sw, name",
    [
        ([1.0, -0.5], None, "sigma_eigs"),
        ([1.0, np.nan], None, "sigma_eigs"),
        ([[1.0, 2.0]], None, "sigma_eigs"),
        ([], None, "sigma_eigs"),
        ([0.0, 0.0], None, "sigma_eigs"),
        ([1.0, 2.0], [0.5], "sigma_weights"),
        ([1.0, 2.0], [0.5, 0.6], "sigma_weights"),
        ([1.0, 2.0], [1.5, -0.5], "sigma_weights"),
    ],
)
def test_bad_spectrum(eigs, sw, name):
    for fn in (separable_gmp_density, separable_gmp_support):
        args = ([0.5],) if fn is separable_gmp_density else ()
        with pytest.raises(ValueError, match=name):
            fn(*args, [1.0], [1.0], 0.5, eigs, sw)
    with pytest.raises(ValueError, match=name):
        SeparableGMPLaw([1.0], [1.0], 0.5, eigs, sw)


def test_bad_other_inputs():
    with pytest.raises(ValueError, match="x"):
        separable_gmp_density([np.nan], [1.0], [1.0], 0.5, [1.0])
    with pytest.raises(ValueError, match="gamma"):
        separable_gmp_density([0.5], [1.0], [1.0], -1.0, [1.0])
    with pytest.raises(ValueError, match="weights"):
        separable_gmp_density([0.5], [1.0, 2.0], [0.5], 0.5, [1.0])
    with pytest.raises(TypeError, match="sigma_eigs"):
        separable_gmp_density([0.5], [1.0], [1.0], 0.5, "abc")


@pytest.mark.slow
@pytest.mark.parametrize("block", ["diag", "off"])
def test_linear_ce_hessian_block_decouples(block):
    """The real linear-ce block (1/N) sum a_i x_i x_i^T, a_i = [diag p - p p^T]_{0l} with
    p = softmax(W x_i) depending on x_i, has the separable law of its realised weights (the
    decoupling of the isotropic theory survives anisotropy). Measured KS 0.004-0.007 (d =
    600, seeds 0-2; against the network-averaged weight law 0.007-0.033: the weight law of
    one network fluctuates with W)."""
    C, gamma, d = 10, 0.5, 600
    lam = power_law(d)
    N = int(d / gamma)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, d)) * np.sqrt(lam)
    W = rng.standard_normal((C, d)) / np.sqrt(d)
    z = X @ W.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    a = p[:, 0] * (1 - p[:, 0]) if block == "diag" else -p[:, 0] * p[:, 1]
    ev = np.sort(np.linalg.eigvalsh((X.T * a) @ X / N))
    law = SeparableGMPLaw(a, np.full(N, 1 / N), gamma, lam)
    F = law.cdf(ev)
    emp = np.arange(1, d + 1) / d
    assert max(np.abs(emp - F).max(), np.abs(emp - 1 / d - F).max()) < 0.01
