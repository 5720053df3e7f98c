"""Large-C constants: closed forms vs independent quadrature vs Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import integrate

from rmthess.theory.asymptotics import (
    asymptotic_constants,
    hidden_ce_K,
    output_ce_K,
    relu_product_mgf,
)
from rmthess.theory.frobenius import frobenius_limits


def _plus_moment(t, k):
    """E[(g g')^k e^{t g g'} 1[g>0] 1[g'>0]] by 2-D adaptive quadrature (scipy dblquad)."""

    def f(y, x):
        return (x * y) ** k * math.exp(t * x * y - (x * x + y * y) / 2) / (2 * math.pi)

    # t <= 0.4: the integrand decays like exp(-(1 - t)(x^2 + y^2)/2); cut at 30
    return integrate.dblquad(f, 0, 30, 0, 30, epsabs=0, epsrel=1e-11)[0]


@pytest.mark.parametrize("t", [0.125, 0.4])
def test_relu_product_mgf_against_2d_quadrature(t):
    assert float(relu_product_mgf(t, 0)) == pytest.approx(0.75 + _plus_moment(t, 0), rel=1e-9)
    for k in (1, 2):
        assert float(relu_product_mgf(t, k)) == pytest.approx(_plus_moment(t, k), rel=1e-9)


def test_relu_product_mgf_derivatives_by_finite_differences():
    t, h = 0.3, 1e-4
    d0 = [float(relu_product_mgf(t + s * h, 0)) for s in (-1, 1)]
    d1 = [float(relu_product_mgf(t + s * h, 1)) for s in (-1, 1)]
    assert (d0[1] - d0[0]) / (2 * h) == pytest.approx(float(relu_product_mgf(t, 1)), rel=1e-7)
    assert (d1[1] - d1[0]) / (2 * h) == pytest.approx(float(relu_product_mgf(t, 2)), rel=1e-7)


@pytest.mark.parametrize("m", [3, 8, 20])
def test_K1_closed_form_against_factorized_quadrature(m):
    # K1 factorizes over coordinates: (m-2) factors E[e^{h^2/m}] and two factors
    # E[e^{g^2/m} (1/m + g^2/m^2) 1[g>0]], each a 1-D adaptive integral.
    def w(x):  # e^{x^2/m} phi(x)
        return math.exp(x * x * (1 / m - 0.5)) / math.sqrt(2 * math.pi)

    e0 = 0.5 + integrate.quad(w, 0, np.inf, epsabs=0, epsrel=1e-12)[0]
    e1 = integrate.quad(lambda x: w(x) * (1 / m + x * x / m**2), 0, np.inf, epsabs=0, epsrel=1e-12)
    K1, _ = hidden_ce_K(m)
    assert K1 == pytest.approx(e0 ** (m - 2) * e1[0] ** 2, rel=1e-9)


@pytest.mark.parametrize("m", [3, 8])
def test_K2_against_factorized_2d_quadrature(m):
    t = 1 / m
    psi0 = 0.75 + _plus_moment(t, 0)
    psi1 = _plus_moment(t, 0) / m + _plus_moment(t, 1) / m**2
    _, K2 = hidden_ce_K(m)
    assert K2 == pytest.approx(psi0 ** (m - 2) * psi1**2, rel=1e-9)


def test_K3_K4_against_phi_power_derivative_by_finite_differences():
    m = 8
    K3, K4 = output_ce_K(m)
    h = 1e-3
    for t, K in ((1 / m, K3), (2 / m, K4)):
        f = [float(relu_product_mgf(t + s * h, 0)) ** m for s in (-1, 0, 1)]
        # central second difference: truncation error ~ h^2 f''''/12 ~ 1e-6 relative
        assert (f[0] - 2 * f[1] + f[2]) / h**2 == pytest.approx(K, rel=1e-5)


def test_K_constants_against_monte_carlo():
    m = 8
    rng = np.random.default_rng(7)
    n = 400_000
    g, gp = rng.standard_normal((n, m)), rng.standard_normal((n, m))
    h, hp = np.maximum(g, 0), np.maximum(gp, 0)
    hh = np.sum(h * hp, axis=1)
    both = (g[:, 0] > 0) & (g[:, 1] > 0)
    both2 = both & (gp[:, 0] > 0) & (gp[:, 1] > 0)
    K1, K2 = hidden_ce_K(m)
    K3, K4 = output_ce_K(m)
    samples = {
        "K1": (
            np.exp(np.sum(h * h, 1) / m)
            * (1 / m + h[:, 0] ** 2 / m**2)
            * (1 / m + h[:, 1] ** 2 / m**2)
            * both,
            K1,
        ),
        "K2": (
            np.exp(hh / m)
            * (1 / m + h[:, 0] * hp[:, 0] / m**2)
            * (1 / m + h[:, 1] * hp[:, 1] / m**2)
            * both2,
            K2,
        ),
        "K3": (np.exp(hh / m) * hh**2, K3),
        "K4": (np.exp(2 * hh / m) * hh**2, K4),
    }
    # at m = 8 every sample has finite variance (needs m > 4 for K1 and K4)
    for name, (x, K) in samples.items():
        se = x.std() / math.sqrt(n)
        assert abs(x.mean() - K) < 4.5 * se, (name, x.mean(), K, se)


def test_theory_md_quoted_value():
    # THEORY.md quotes gamma K1 + K2 ~ 0.00712 at m = 8, gamma = 0.5 (3 digits);
    # the exact value is 0.0071096.
    c = asymptotic_constants("hidden-ce", 0.5, 8)
    assert c.A_off == pytest.approx(0.00712, abs=2e-5)
    assert c.A_diag == pytest.approx((0.25 + 0.25) / 64)


def test_linear_constants():
    c = asymptotic_constants("linear-ce", 0.5)
    assert (c.A_diag, c.p_diag, c.A_off, c.p_off) == (1 + math.e / 2, 2, 1 + math.e**2 / 2, 4)
    c = asymptotic_constants("linear-mse", 0.5)
    assert c.m is None and c.A_diag == 1.5 and c.A_off == 0.0 and c.p_off == math.inf
    assert c.F_off_at(100.0) == 0.0
    # m does not apply to the linear model: refused (registry rule), as in frobenius_limits
    with pytest.raises(ValueError, match="does not apply"):
        asymptotic_constants("linear-mse", 0.5, m=3)


def test_linear_ce_exact_approaches_asymptote():
    c = asymptotic_constants("linear-ce", 1.3)
    errs = []
    for C in (100, 10**4, 10**6):
        r = frobenius_limits("linear-ce", C, 1.3)
        errs.append((abs(r.F_diag / c.F_diag_at(C) - 1), abs(r.F_off / c.F_off_at(C) - 1)))
    assert errs[0][0] > errs[1][0] > errs[2][0] and errs[2][0] < 1e-4
    assert errs[0][1] > errs[1][1] > errs[2][1] and errs[2][1] < 1e-4


@pytest.mark.parametrize("m", [2, 5])
def test_hidden_mse_constants_match_closed_form(m):
    c = asymptotic_constants("hidden-mse", 0.5, m)
    assert c.p_diag == -2 and c.p_off == -1
    for C in (10**6, 10**8):
        r = frobenius_limits("hidden-mse", C, 0.5, m)
        assert r.F_diag == pytest.approx(c.F_diag_at(C), rel=3 / C)  # exact factor 1 + 2/C
        assert r.F_off == pytest.approx(c.F_off_at(C), rel=1e-12)


def test_output_mse_constants():
    c = asymptotic_constants("output-mse", 0.5, 4)
    assert c.A_diag == pytest.approx(frobenius_limits("output-mse", 10, 0.5, 4).F_diag)
    assert c.p_diag == 0 and c.A_off == 0 and c.p_off == math.inf


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("case", ["hidden-ce", "output-ce"])
def test_small_m_diverges(case, m):
    with pytest.raises(ValueError, match=r"diverge.*m >= 3|m >= 3.*diverge|m must be"):
        asymptotic_constants(case, 0.5, m)
    with pytest.raises(ValueError, match="diverges"):
        asymptotic_constants(case, 0.5, 2)


@pytest.mark.parametrize(
    "kwargs, err, word",
    [
        (dict(case="linear-cee", gamma=0.5), ValueError, "linear-mse, linear-ce"),
        (dict(case="linear-ce", gamma=0.0), ValueError, "gamma"),
        (dict(case="linear-ce", gamma=float("inf")), ValueError, "gamma"),
        (dict(case="linear-ce", gamma="x"), TypeError, "gamma"),
        (dict(case="hidden-ce", gamma=0.5), ValueError, "m"),
        (dict(case="output-ce", gamma=0.5, m=0), ValueError, "m"),
        (dict(case="hidden-mse", gamma=0.5, m=1), ValueError, "m"),
    ],
)
def test_bad_input(kwargs, err, word):
    with pytest.raises(err, match=word):
        asymptotic_constants(**kwargs)


def _series(t, nu0, deriv=0, terms=30):
    """``sum_k t^(k-deriv) nu_k^2 / (k-deriv)!`` with ``nu_k = E[relu(g)^k]`` (k >= 1) and
    ``nu_0 = nu0``: the deriv-th derivative of ``E[e^(t x x') ...]`` by its power series
    (radius 1), an evaluation independent of the quadrature in the module."""
    import mpmath as mp

    def nu(k):
        return (
            nu0
            if k == 0
            else 2 ** (mp.mpf(k) / 2) * mp.gamma((k + 1) / mp.mpf(2)) / (2 * mp.sqrt(mp.pi))
        )

    return mp.fsum(
        t ** (k - deriv) * nu(k) ** 2 / mp.factorial(k - deriv) for k in range(deriv, terms)
    )


@pytest.mark.parametrize("m", [10**20, 10**30])
def test_K_constants_at_huge_m_against_series(m):
    # Old code (30 fixed digits) lost log10(m) digits in phi(1/m)^m: at m = 1e30 K1 came
    # out as 1/(4 m^2) instead of e^(1/2)/(4 m^2). Reference: power series at 120 digits.
    import mpmath as mp

    with mp.workdps(120):
        M = mp.mpf(m)
        t = 1 / M

        # K1: factorized 1-D moments, E[e^(g^2/m) g^(2j) 1[g>0]] = sum_k m^-k (2k+2j-1)!!/(2 k!)
        def half_moment(j):
            return mp.fsum(
                t**k * mp.fac2(2 * k + 2 * j - 1) / (2 * mp.factorial(k)) for k in range(30)
            )

        e0 = mp.mpf(1) / 2 + half_moment(0)
        e1 = half_moment(0) / M + half_moment(1) / M**2
        K1 = e0 ** (m - 2) * e1**2
        psi = _series(t, mp.mpf(1) / 2) / M + _series(t, mp.mpf(1) / 2, 1) / M**2
        K2 = _series(t, 1) ** (m - 2) * psi**2
        K34 = []
        for tt in (t, 2 * t):
            f0, f1, f2 = (_series(tt, 1, k) for k in (0, 1, 2))
            K34.append(M * f0 ** (m - 1) * f2 + M * (M - 1) * f0 ** (m - 2) * f1**2)
    got = (*hidden_ce_K(m), *output_ce_K(m))
    for g, ref in zip(got, (K1, K2, *K34), strict=True):
        assert g == pytest.approx(float(ref), rel=1e-13)
    # and the leading large-m terms (relative corrections O(1/m))
    lead = (
        math.exp(0.5) / (4 * m * m),
        math.exp(1 / (2 * math.pi)) / (16 * m * m),
        math.exp(1 / (2 * math.pi)) * m * m / (4 * math.pi**2),
        math.exp(1 / math.pi) * m * m / (4 * math.pi**2),
    )
    for g, ref in zip(got, lead, strict=True):
        assert g == pytest.approx(ref, rel=1e-13)


def test_m_above_bound_refused():
    from rmthess.theory.asymptotics import ASYMPTOTIC_M_MAX

    for case in ("hidden-ce", "output-ce", "hidden-mse", "output-mse"):
        with pytest.raises(ValueError, match=r"m must be <= 1e\+30"):
            asymptotic_constants(case, 0.5, ASYMPTOTIC_M_MAX + 1)


def test_m_minimum_from_registry():
    from rmthess.cases import get_case

    for case in ("hidden-ce", "output-ce", "hidden-mse", "output-mse"):
        lo = get_case(case).asymptotic_m_min
        asymptotic_constants(case, 0.5, lo)
        if lo > 1:
            with pytest.raises(ValueError, match=f"m must be an integer >= {lo}"):
                asymptotic_constants(case, 0.5, lo - 1)
        with pytest.raises(TypeError, match="m must be"):
            asymptotic_constants(case, 0.5, "8")


@pytest.mark.parametrize("gamma", [1e-300, 1e300])
@pytest.mark.parametrize(
    "case", ["linear-mse", "linear-ce", "hidden-mse", "hidden-ce", "output-mse", "output-ce"]
)
def test_extreme_gamma(case, gamma):
    m = None if case.startswith("linear") else 8
    c = asymptotic_constants(case, gamma, m)
    ref = asymptotic_constants(case, 1.0, m)
    assert math.isfinite(c.A_diag) and math.isfinite(c.A_off)
    # linear in gamma: A(gamma) = gamma a + b, with b = A at gamma -> 0 (checked at 1e-300)
    for name in ("A_diag", "A_off"):
        A, A1 = getattr(c, name), getattr(ref, name)
        A0 = getattr(asymptotic_constants(case, 1e-300, m), name)
        assert A == pytest.approx(gamma * (A1 - A0) + A0, rel=1e-12)
