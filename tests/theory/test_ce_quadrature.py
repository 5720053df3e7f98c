"""Exact output-ce limits by the Gram quadrature (rmthess.theory.ce_quadrature), each
checked by an independent route: brute-force sampling of the softmax at a fixed Gram
matrix, a sigmoid quadrature at C = 2, m = 1, nested Monte Carlo, and the large-C
constants K3, K4 (mpmath, one-dimensional integrals)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, roots_genlaguerre

from rmthess.theory import frobenius_limits
from rmthess.theory.asymptotics import output_ce_K
from rmthess.theory.ce_inner import output_inner
from rmthess.theory.ce_quadrature import LEVELS, _output_ce_once, output_ce_quadrature
from rmthess.theory.hidden_integrals import output_ce_mc


def _softmax_moments(a, b, rho, C, n, seed):
    """Sampled E[p_0 p_1 p'_0 p'_1] and E[p_0 p_1 p'_0 p'_2] with their standard errors."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C))
    y = rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal((n, C))
    p = np.exp(a * x - (a * x).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(b * y - (b * y).max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    s2 = p[:, 0] * p[:, 1] * q[:, 0] * q[:, 1]
    s3 = p[:, 0] * p[:, 1] * q[:, 0] * q[:, 2]
    return [(v.mean(), v.std() / math.sqrt(n)) for v in (s2, s3)]


@pytest.mark.parametrize(
    ("a", "b", "rho", "C"),
    [(0.7, 0.8, 0.3, 5), (1.4, 1.0, 0.8, 10), (2.2, 2.2, 0.95, 3), (1.0, 0.5, 1.0, 4)],
)
def test_inner_matches_sampling_at_a_fixed_gram(a, b, rho, C):
    I2, I3 = output_inner(a, b, rho, C)
    (m2, se2), (m3, se3) = _softmax_moments(a, b, rho, C, 400_000, seed=C)
    assert abs(I2 - m2) < 4 * se2
    assert abs(I3 - m3) < 4 * se3


@pytest.mark.parametrize(("a", "b", "rho"), [(0.5, 0.9, 0.2), (3.0, 2.0, 0.9), (6.0, 6.0, 1.0)])
def test_inner_at_C2_matches_the_sigmoid(a, b, rho):
    # C = 2: p_0 p_1 = s(X) s(-X), X = z_0 - z_1 ~ N(0, 2 a^2); a 2-D trapezoid rule in
    # two independent standard normals (a Hermite rule of 160 nodes is 3 % off at a = 6)
    x = np.arange(-500, 501) * 0.02
    w = np.exp(-x * x / 2)
    w /= w.sum()
    X = math.sqrt(2) * a * x[:, None]
    Y = math.sqrt(2) * b * (rho * x[:, None] + math.sqrt(1 - rho * rho) * x[None, :])
    S = expit(X) * expit(-X) * expit(Y) * expit(-Y)
    want = w @ S @ w
    assert output_inner(a, b, rho, 2)[0] == pytest.approx(want, rel=1e-9)


def test_m1_C2_matches_a_sigmoid_quadrature():
    # m = 1: h = relu(g) scalar, F = P(g>0, g'>0) E[g^2 g'^2 E_xi[S(g xi) S(g' xi)]] with
    # S(x) = s(x) s(-x) at X = sqrt(2) xi g (z_0 - z_1 = (V_0 - V_1) h); g half-normal
    # by generalized Gauss-Laguerre in y = g^2 / 2 (the integrand is even in g)
    h = 0.0075
    x = np.arange(-1600, 1601) * h
    w = np.exp(-x * x / 2)
    w /= w.sum()
    y, wy = roots_genlaguerre(200, 0.5)
    g, wg = np.sqrt(2 * y), wy * 2 / math.sqrt(math.pi)
    S = expit(math.sqrt(2) * x[None, :] * g[:, None])
    S = S * (1 - S)
    want = 0.25 * np.einsum("a,b,ab->", wg, wg, np.einsum("ax,bx,x->ab", S, S, w))
    q = output_ce_quadrature(2, 1, tol=1e-7)
    assert q.converged
    assert q.F_off == q.F_diag  # C = 2: p_k (1 - p_k) = p_k p_l
    assert q.F_off == pytest.approx(want, rel=1e-8)  # measured 1e-11 (level 4: 3e-12)


@pytest.mark.parametrize(("C", "m"), [(5, 3), (10, 8), (3, 2)])
def test_matches_nested_monte_carlo(C, m):
    q = output_ce_quadrature(C, m)
    est = output_ce_mc(C, m, n_V=600, n_g=64, seed=11)
    Fd, Fo, sd, so, _ = est.summary(0.5)
    assert abs(q.F_diag - Fd) < 4 * sd
    assert abs(q.F_off - Fo) < 4 * so


def test_large_C_approaches_K3_K4_like_1_over_C():
    K3, K4 = output_ce_K(8)
    dev = {}
    for C in (1e6, 1e7):
        q = output_ce_quadrature(C, 8)
        dev[C] = (q.F_diag * C**2 / K3 - 1, q.F_off * C**4 / K4 - 1)
    for k in range(2):
        assert abs(dev[1e7][k]) < 1e-5
        assert 0.08 < dev[1e7][k] / dev[1e6][k] < 0.12  # the O(1/C) correction


@pytest.mark.parametrize(
    ("C", "m"), [(10, 8), pytest.param(100, 3, marks=pytest.mark.slow), (1e4, 32)]
)
def test_error_estimate_covers_the_error(C, m):
    # the reference is two levels above the one returned (the estimate compares that
    # level with the one below it)
    q = output_ce_quadrature(C, m, tol=1e-6)
    finest = _output_ce_once(C, m, 1.0, LEVELS[min(q.level + 2, len(LEVELS) - 1)])
    assert q.converged
    assert abs(q.F_diag - finest[0]) <= q.F_diag_err + 1e-13 * finest[0]
    assert abs(q.F_off - finest[1]) <= q.F_off_err + 1e-13 * finest[1]
    assert q.F_diag_err <= 1e-6 * q.F_diag and q.F_off_err <= 1e-6 * q.F_off


def test_init_scale_sigma():
    # sigma enters as logit scale sigma^2 |h| / sqrt(m) and the factor sigma^4 of (h.h')^2;
    # against Monte Carlo at the same init
    q = output_ce_quadrature(6, 8, sigma=1.3)
    est = output_ce_mc(6, 8, n_V=600, n_g=64, seed=5, init=1.3)
    Fd, Fo, sd, so, _ = est.summary(0.5)
    assert abs(q.F_diag - Fd) < 4 * sd and abs(q.F_off - Fo) < 4 * so


def test_frobenius_limits_routes():
    r = frobenius_limits("output-ce", 10, 0.5, 8)
    assert r.method == "quadrature" and r.tol == 1e-6 and r.n_samples == 0
    assert r.F_off_se <= 1e-6 * r.F_off and r.ratio == pytest.approx(math.sqrt(r.F_off / r.F_diag))
    mc = frobenius_limits("output-ce", 10, 0.5, 8, samples=40, seed=2)
    assert mc.method == "monte-carlo" and mc.tol is None
    assert frobenius_limits("output-ce", 10, 0.5, 8, init="torch-default", samples=30).method == (
        "monte-carlo"
    )


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        (dict(method="quadrature", init="torch-default"), "needs a normal init"),
        (dict(method="quadrature", samples=40), "apply only to method='mc'"),
        (dict(method="mc", tol=1e-4), "tol applies only"),
        (dict(tol=0.5), "tol must be"),
        (dict(method="exact"), "unknown method"),
        (dict(C=10**13), "C must be <= 1e"),
    ],
)
def test_bad_arguments(kwargs, word):
    args = dict(case="output-ce", C=10, gamma=0.5, m=8) | kwargs
    with pytest.raises(ValueError, match=word):
        frobenius_limits(**args)


@pytest.mark.slow
@pytest.mark.parametrize("m", [3, 8, 32])
@pytest.mark.parametrize("C", [2, 5, 10, 100, 1000, 10_000, 10**7])
def test_full_grid_meets_1e6(C, m):
    q = output_ce_quadrature(C, m, tol=1e-6)
    assert q.converged
    assert q.F_diag_err <= 1e-6 * q.F_diag and q.F_off_err <= 1e-6 * q.F_off


@pytest.mark.slow
def test_hidden_ce_quadrature_route():
    # hidden-ce by the Gram quadrature through frobenius_limits (a few seconds at m = 32)
    # against its nested Monte Carlo
    q = frobenius_limits("hidden-ce", 10, 0.5, 32, method="quadrature")
    mc = frobenius_limits("hidden-ce", 10, 0.5, 32, samples=2000, seed=4)
    assert q.method == "quadrature" and mc.method == "monte-carlo"
    assert abs(q.F_diag - mc.F_diag) < 4 * mc.F_diag_se
    assert abs(q.F_off - mc.F_off) < 4 * mc.F_off_se
    assert q.F_off_se <= 1e-6 * q.F_off


def test_wide_m_defaults_to_monte_carlo_and_refuses_quadrature():
    # the sign patterns grow like m^3 / 6: above QUADRATURE_MAX_M the default is Monte Carlo
    from rmthess.theory.frobenius import QUADRATURE_MAX_M

    r = frobenius_limits("output-ce", 10, 0.5, QUADRATURE_MAX_M + 1, samples=30)
    assert r.method == "monte-carlo"
    with pytest.raises(ValueError, match="m must be <= 64 for method='quadrature'"):
        frobenius_limits("output-ce", 10, 0.5, 65, method="quadrature")
    with pytest.raises(ValueError, match="m must be <= 64"):
        frobenius_limits("hidden-ce", 10, 0.5, 100, method="quadrature")
