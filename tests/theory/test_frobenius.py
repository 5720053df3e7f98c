"""Frobenius limits: closed forms, the nested Monte-Carlo estimator, finite-d simulation."""

import math

import numpy as np
import pytest
from scipy import special, stats

from rmthess.theory.asymptotics import asymptotic_constants
from rmthess.theory.frobenius import FrobeniusLimits, frobenius_limits
from rmthess.theory.hidden_integrals import (
    _hidden_ce_batch,
    _output_ce_batch,
    hidden_ce_one_V,
    output_ce_one_V,
)


def test_record_fields():
    r = frobenius_limits("linear-ce", 10, 0.5)
    assert isinstance(r, FrobeniusLimits)
    for k in ("case", "C", "gamma", "m", "F_diag", "F_off", "ratio", "ratio_se", "method"):
        assert k in r.to_dict()
    assert r.ratio == pytest.approx(math.sqrt(r.F_off / r.F_diag))
    assert r.ratio_se == 0.0 and r.method == "quadrature" and r.m is None


def test_linear_ce_C2_diag_equals_off():
    r = frobenius_limits("linear-ce", 2, 1.7)
    assert r.F_diag == pytest.approx(r.F_off, rel=1e-12) and r.ratio == pytest.approx(1.0)


def test_linear_ce_huge_C():
    r = frobenius_limits("linear-ce", 1e7, 0.5)
    assert r.C == 10**7 and 0 < r.F_off < r.F_diag and math.isfinite(r.ratio)


def test_mse_closed_forms():
    r = frobenius_limits("linear-mse", 7, 0.3)
    assert (r.F_diag, r.F_off, r.ratio, r.ratio_se) == (1.3, 0.0, 0.0, 0.0)
    r = frobenius_limits("output-mse", 7, 0.3, m=5)
    # ||E[h h^T]||_F^2 with E h_j^2 = 1/2, E h_j h_l = 1/(2 pi)
    assert r.F_diag == pytest.approx(5 * 0.25 + 20 / (4 * math.pi**2)) and r.F_off == 0.0
    r = frobenius_limits("output-mse", 7, 0.3, m=1)
    assert r.F_diag == pytest.approx(0.25)


def test_linear_mse_and_output_mse_by_simulation():
    rng = np.random.default_rng(8)
    # linear-mse diagonal block = X X^T / N: (1/d)||.||_F^2 = 1 + gamma + O(1/N)
    d, N = 200, 400
    vals = []
    for _ in range(20):
        X = rng.standard_normal((d, N))
        vals.append(np.sum((X @ X.T / N) ** 2) / d)
    # tolerance: the exact finite-N mean is 1 + (d + 1)/N (bias 1/N = 0.17% of the limit)
    # and the standard error of the 20-draw mean is ~0.18%: 1% is ~4.5 se beyond the bias
    assert np.mean(vals) == pytest.approx(frobenius_limits("linear-mse", 5, d / N).F_diag, rel=0.01)
    # output-mse diagonal block -> E[h h^T]; unbiased U-statistic for ||E[h h^T]||_F^2
    m, n = 4, 200_000
    h = np.maximum(rng.standard_normal((n, m)), 0)
    hh = (h[:, :, None] * h[:, None, :]).reshape(n, -1)
    S = hh.sum(0)
    est = (S @ S - np.sum(hh * hh)) / (n * (n - 1))
    # per-sample kernel standard error (delta method: 2 E[(h.h')^2 | h] fluctuations)
    se = 2 * np.std(hh @ (S / n)) / math.sqrt(n)
    assert abs(est - frobenius_limits("output-mse", 5, 0.5, m).F_diag) < 4.5 * se


def test_hidden_mse_V_moments_by_monte_carlo():
    # F_diag = E|v_j|^4 (gamma/2 + 1/4), F_off = E (v_j . v_l)^2 (gamma/4 + 1/16)
    C, m, gamma = 6, 3, 0.8
    rng = np.random.default_rng(3)
    V = rng.standard_normal((200_000, C, m)) / math.sqrt(m)
    x4 = np.sum(V[:, :, 0] ** 2, axis=1) ** 2 * (gamma / 2 + 0.25)
    x2 = np.sum(V[:, :, 0] * V[:, :, 1], axis=1) ** 2 * (gamma / 4 + 1 / 16)
    r = frobenius_limits("hidden-mse", C, gamma, m)
    for x, F in ((x4, r.F_diag), (x2, r.F_off)):
        assert abs(x.mean() - F) < 4.5 * x.std() / math.sqrt(x.size)


def _finite_d_simulation(case, C, m, d, N, T, seed):
    """Block norms of the exact finite-size Hessians, averaged over T instances.

    Uses (1/d)||H||_F^2 = (1/(d N^2)) sum_{i,i'} a_i a_i' (x_i . x_i')^2 (hidden) and
    ||H||_F^2 = (1/N^2) sum_{i != i'} a_i a_i' (h_i . h_i')^2 (output: the i = i' terms
    are an explicit O(1/N) finite-sample bias, a few percent at N = 200, so they are dropped).
    """
    rng = np.random.default_rng(seed)
    diag, off = [], []
    for _ in range(T):
        X = rng.standard_normal((d, N))
        W = rng.standard_normal((m, d)) / math.sqrt(d)
        V = rng.standard_normal((C, m)) / math.sqrt(m)
        G = W @ X
        H = np.maximum(G, 0)
        P = special.softmax(V @ H, axis=0)  # (C, N)
        if case.startswith("hidden"):
            S = (G > 0).astype(float)
            if case == "hidden-ce":
                mu = V.T @ P
                M = np.einsum("kj,kl,ki->jli", V, V, P) - mu[:, None, :] * mu[None, :, :]
            else:
                M = np.broadcast_to((V.T @ V)[:, :, None], (m, m, N))
            A = M * S[:, None, :] * S[None, :, :]
            vals = np.einsum("jli,ik,jlk->jl", A, (X.T @ X) ** 2, A) / (d * N * N)
            diag.append(np.diag(vals).mean())
            off.append(vals[~np.eye(m, dtype=bool)].mean())
        else:
            K = (H.T @ H) ** 2
            np.fill_diagonal(K, 0.0)
            Ad = P * (1 - P)
            diag.append(np.einsum("ki,ij,kj->", Ad, K, Ad) / (N * (N - 1) * C))
            PP, P2 = P.T @ P, P * P
            off.append(np.sum(K * (PP * PP - P2.T @ P2)) / (N * (N - 1) * C * (C - 1)))
    diag, off = np.array(diag), np.array(off)
    return diag.mean(), diag.std(ddof=1) / math.sqrt(T), off.mean(), off.std(ddof=1) / math.sqrt(T)


@pytest.mark.parametrize("case", ["hidden-ce", "output-ce", "hidden-mse"])
def test_against_finite_d_simulation(case):
    # Independent route: exact finite-size Hessian blocks (d = 100, N = 200). Finite-size
    # corrections are O(1/d) (~1%); the tolerance is 4.5 combined standard errors + 2%.
    C, m, d, N = 5, 4, 100, 200
    sd, sd_se, so, so_se = _finite_d_simulation(case, C, m, d, N, T=300, seed=11)
    mc = {"samples": 400, "inner": 128, "seed": 2} if case != "hidden-mse" else {}
    r = frobenius_limits(case, C, d / N, m, **mc)
    for sim, sim_se, th, th_se in (
        (sd, sd_se, r.F_diag, r.F_diag_se),
        (so, so_se, r.F_off, r.F_off_se),
    ):
        tol = 4.5 * math.hypot(sim_se, th_se) + 0.02 * th
        assert abs(sim - th) < tol, (case, sim, th, sim_se, th_se)


def _gauss_legendre_quadrants(m, n=60, L=9.0):
    """Nodes/weights for E_g[f(g)], g ~ N(0, I_m), m = 2: Gauss-Legendre on each quadrant.

    The integrand is smooth inside each quadrant (the indicators and relu only switch at
    the axes), so a tensor rule on [-L, 0] and [0, L] converges quickly.
    """
    assert m == 2
    x, w = np.polynomial.legendre.leggauss(n)
    x_pos = (x + 1) * L / 2
    w_pos = w * L / 2 * np.exp(-(x_pos**2) / 2) / math.sqrt(2 * math.pi)
    xs = np.concatenate([-x_pos, x_pos])
    ws = np.concatenate([w_pos, w_pos])
    g1, g2 = np.meshgrid(xs, xs, indexing="ij")
    return np.stack([g1.ravel(), g2.ravel()], axis=1), np.outer(ws, ws).ravel()


def test_hidden_ce_estimator_is_unbiased_for_fixed_V():
    # For a fixed V, the quadrature value of the block averages of E[a^2|V], (E[a|V])^2
    # is compared with the mean of many independent per-V estimates using tiny g samples
    # (n = 4): the plug-in (mean a)^2 would be biased by Var(a)/4, the U-statistic is not.
    rng = np.random.default_rng(0)
    C, m = 3, 2
    V = rng.standard_normal((C, m)) / math.sqrt(m)
    nodes, weights = _gauss_legendre_quadrants(m)
    h = np.maximum(nodes, 0)
    P = special.softmax(h @ V.T, axis=1)
    mu = P @ V
    M = np.einsum("kj,kl,ik->ijl", V, V, P) - mu[:, :, None] * mu[:, None, :]
    s = (nodes > 0).astype(float)
    a = M * s[:, :, None] * s[:, None, :]
    Ea = np.einsum("i,ijl->jl", weights, a)
    Ea2 = np.einsum("i,ijl->jl", weights, a * a)
    exact = np.array([np.diag(Ea2).mean(), (np.diag(Ea) ** 2).mean(), Ea2[0, 1], Ea[0, 1] ** 2])
    R = 40000
    reps = _hidden_ce_batch(np.broadcast_to(V, (R, C, m)), rng.standard_normal((R, 4, m))).T
    mean, se = reps.mean(0), reps.std(0, ddof=1) / math.sqrt(len(reps))
    assert np.all(np.abs(mean - exact) < 4.5 * se), (mean, exact, se)
    # and the test has power: the biased plug-in would be off by many standard errors
    assert abs(Ea2[0, 1] - Ea[0, 1] ** 2) / 4 > 6 * se[3]


def test_output_ce_estimator_is_unbiased_for_fixed_V():
    rng = np.random.default_rng(1)
    C, m = 3, 2
    V = rng.standard_normal((C, m)) / math.sqrt(m)
    nodes, weights = _gauss_legendre_quadrants(m)
    h = np.maximum(nodes, 0)
    P = special.softmax(h @ V.T, axis=1)
    hh = h[:, :, None] * h[:, None, :]
    Hd = np.einsum("i,ik,iab->kab", weights, P * (1 - P), hh)  # E[a_kk h h^T]
    Ho = np.einsum("i,ik,il,iab->klab", weights, P, P, hh)  # E[p_k p_l h h^T]
    off = [np.sum(Ho[k, l] ** 2) for k in range(C) for l in range(C) if k != l]
    exact = np.array([np.mean(np.sum(Hd**2, axis=(1, 2))), np.mean(off)])
    # R = 160000 draws of n = 4 (0.4 s): standard errors ~0.5% of the values, so the
    # 4.5-se criterion detects a bias of ~2.5% (with R = 40000 a 5% bias went unseen)
    R = 160_000
    reps = _output_ce_batch(np.broadcast_to(V, (R, C, m)), rng.standard_normal((R, 4, m))).T
    mean = reps[:, [1, 3]].mean(0)
    se = reps[:, [1, 3]].std(0, ddof=1) / math.sqrt(len(reps))
    assert np.all(np.abs(mean - exact) < 4.5 * se), (mean, exact, se)


@pytest.mark.parametrize("case", ["hidden-ce", "output-ce"])
def test_error_bars_are_honest_across_seeds(case):
    # 12 independent seeds: sum of squared standardized deviations from the pooled mean
    # ~ chi^2(11) if the error bars are right. Bounds: 0.1% and 99.9% quantiles.
    K = 12
    runs = [frobenius_limits(case, 10, 0.5, 4, samples=60, inner=32, seed=s) for s in range(K)]
    lo, hi = stats.chi2.ppf([0.001, 0.999], K - 1)
    for val, se in (("F_diag", "F_diag_se"), ("F_off", "F_off_se")):
        x = np.array([getattr(r, val) for r in runs])
        e = np.array([getattr(r, se) for r in runs])
        w = 1 / e**2
        pooled = np.sum(w * x) / np.sum(w)
        chi2 = np.sum(((x - pooled) / e) ** 2)
        assert lo < chi2 < hi, (case, val, chi2, lo, hi)


def test_one_V_matches_batch():
    rng = np.random.default_rng(5)
    V, g = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 10, 3))
    for one, batch in ((hidden_ce_one_V, _hidden_ce_batch), (output_ce_one_V, _output_ce_batch)):
        ref = batch(V, g)
        for b in range(2):
            np.testing.assert_allclose(one(V[b], g[b]), ref[:, b], rtol=1e-12)


def test_deterministic_given_seed():
    a = frobenius_limits("hidden-ce", 10, 0.5, 3, samples=30, inner=16, seed=4)
    b = frobenius_limits("hidden-ce", 10, 0.5, 3, samples=30, inner=16, seed=4)
    c = frobenius_limits("hidden-ce", 10, 0.5, 3, samples=30, inner=16, seed=5)
    assert a == b and a.F_diag != c.F_diag
    assert a.n_samples == 30 and a.n_inner == 16 and a.seed == 4 and a.ratio_se > 0


@pytest.mark.parametrize("case", ["hidden-ce", "output-ce"])
def test_mc_cases_approach_asymptote(case):
    m = 8
    c = asymptotic_constants(case, 0.5, m)
    gaps = []
    for C in (10, 300):
        r = frobenius_limits(case, C, 0.5, m, samples=60, inner=64, seed=1)
        rel_se = r.F_off_se / r.F_off
        gaps.append((abs(r.F_off / c.F_off_at(C) - 1), rel_se))
    # the gap to the asymptote shrinks by more than the error bars
    assert gaps[1][0] + 3 * gaps[1][1] < gaps[0][0] - 3 * gaps[0][1]


@pytest.mark.parametrize("case", ["hidden-ce", "output-ce"])
def test_error_bars_honest_many_seeds(case):
    # 40 independent seeds at C = 300, m = 8: the spread of the estimates must match the
    # reported standard errors (sampling error of the ratio ~ 11%; bounds ~ +-2.5 of it).
    runs = [
        frobenius_limits(case, 300, 0.5, 8, samples=100, inner=16, seed=100 + s) for s in range(40)
    ]
    for val, se in (("F_diag", "F_diag_se"), ("F_off", "F_off_se")):
        x = np.array([getattr(r, val) for r in runs])
        e = np.array([getattr(r, se) for r in runs])
        assert 0.72 < x.std(ddof=1) / np.sqrt(np.mean(e**2)) < 1.3, (case, val)


@pytest.mark.slow  # ~2 s alone, but 30+ s on a contended machine with threaded BLAS
@pytest.mark.parametrize("case", ["hidden-ce", "output-ce"])
def test_mc_cases_close_to_asymptote_at_large_C(case):
    m, C = 8, 10_000
    c = asymptotic_constants(case, 0.5, m)
    r = frobenius_limits(case, C, 0.5, m, samples=100, inner=16, seed=3)
    assert abs(r.F_diag / c.F_diag_at(C) - 1) < 0.05 + 4 * r.F_diag_se / r.F_diag
    assert abs(r.F_off / c.F_off_at(C) - 1) < 0.05 + 4 * r.F_off_se / r.F_off


@pytest.mark.parametrize(
    "args, kwargs, err, word",
    [
        (("linear-ce", 1, 0.5), {}, ValueError, "C"),
        (("linear-ce", 2.5, 0.5), {}, ValueError, "C"),
        (("linear-ce", "10", 0.5), {}, TypeError, "C"),
        (("linear-ce", 10, -0.5), {}, ValueError, "gamma"),
        (("linear-ce", 10, float("nan")), {}, ValueError, "gamma"),
        (("softmax", 10, 0.5), {}, ValueError, "linear-mse, linear-ce, hidden-mse"),
        (("hidden-ce", 10, 0.5), {}, ValueError, "m"),
        (("hidden-ce", 10, 0.5, 1), {}, ValueError, "m"),
        (("hidden-mse", 10, 0.5, 1), {}, ValueError, "off-diagonal"),
        (("output-ce", 10, 0.5, 0), {}, ValueError, "m"),
        (("output-ce", 10, 0.5, 3), {"samples": 1}, ValueError, "samples"),
        (("output-ce", 10, 0.5, 3), {"inner": 1}, ValueError, "inner"),
        (("output-ce", 10, 0.5, 3), {"seed": -1}, ValueError, "seed"),
        (("hidden-ce", 10**7, 0.5, 3), {"method": "mc"}, ValueError, "C"),
        (("hidden-ce", 10**13, 0.5, 8), {}, ValueError, "C"),
    ],
)
def test_bad_input(args, kwargs, err, word):
    with pytest.raises(err, match=word):
        frobenius_limits(*args, **kwargs)


def test_ratio_stderr_delta_method_against_simulated_spread():
    # Independent route: draw many correlated pairs of estimates (F_diag, F_off) from a
    # bivariate normal with known covariance and measure the spread of sqrt(F_off/F_diag).
    # With relative errors ~1% the delta method is exact to O(1e-2) relative; the spread of
    # 200000 draws is known to 0.16% relative, so 2% is a safe yet sharp tolerance.
    from rmthess._stats import ratio_stderr

    Fd, Fo, sd, so, rho = 2.0, 0.3, 0.02, 0.004, 0.6
    cov = rho * sd * so
    rng = np.random.default_rng(12)
    z = rng.multivariate_normal([Fd, Fo], [[sd**2, cov], [cov, so**2]], size=200_000)
    spread = np.std(np.sqrt(z[:, 1] / z[:, 0]))
    se = ratio_stderr(Fd, Fo, sd**2, so**2, cov)
    assert se == pytest.approx(spread, rel=0.02)
    # the covariance term matters here (ignoring it is ~50% off): the test has power
    assert abs(ratio_stderr(Fd, Fo, sd**2, so**2, 0.0) / spread - 1) > 0.2
    assert math.isnan(ratio_stderr(Fd, 0.0, sd**2, so**2, cov))
