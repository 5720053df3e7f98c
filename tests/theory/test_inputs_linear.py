"""Linear model under anisotropic / non-centred Gaussian inputs (issue 19): the limit of
``frobenius_limits(..., inputs=)`` and the exact finite-d ``conditional_frobenius`` against
independent routes (today's isotropic numbers, brute-force Hessian blocks built in numpy,
direct Monte Carlo of the weight moments, scaling and invariance laws)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _gram import blocks, diag_off, quiet
from hypothesis import given, settings
from hypothesis import strategies as st

from rmthess.theory import InputStats, conditional_frobenius, frobenius_limits
from rmthess.theory.aniso_linear import block_expectations


def two_level(d):
    return np.r_[np.full(d // 2, 0.5), np.full(d - d // 2, 2.0)]


def power_law(d, alpha=0.5):
    lam = np.arange(1, d + 1) ** -alpha
    return lam / lam.mean()


# ---------------------------------------------------------------- Sigma = I is today
@pytest.mark.parametrize("case", ["linear-mse", "linear-ce"])
@pytest.mark.parametrize("C", [2, 3, 10, 1000])
@pytest.mark.parametrize("init", ["lecun", "torch-default", 0.6])
def test_identity_reproduces_isotropic(case, C, init):
    iso = InputStats.from_spectrum(np.ones(50_000))
    for gamma in (0.1, 2.0):
        a = frobenius_limits(case, C, gamma, init=init)
        b = frobenius_limits(case, C, gamma, init=init, inputs=iso)
        assert b.inputs == "isotropic" and a.inputs == "isotropic"
        for q in ("F_diag", "F_off", "ratio"):
            assert getattr(b, q) == pytest.approx(getattr(a, q), rel=1e-12, abs=0), q


# ---------------------------------------------------------------- the limit formula
def test_centred_limit_is_isotropic_at_rescaled_logits():
    """F = gamma tau_1^2 E a^2 + tau_2 (E a)^2 with E a^2, (E a)^2 read off two isotropic
    limits at init sigma sqrt(tau_1) (linear in gamma: two gammas give both pieces)."""
    s = InputStats.from_spectrum(two_level(10_000))  # tau1 = 1.25, tau2 = 2.125
    C, sig = 5, math.sqrt(s.tau1)
    lo, hi = (frobenius_limits("linear-ce", C, g, init=sig) for g in (1.0, 2.0))
    for q in ("F_diag", "F_off"):
        a2 = getattr(hi, q) - getattr(lo, q)
        ea2 = getattr(lo, q) - a2
        want = 0.7 * s.tau1**2 * a2 + s.tau2 * ea2
        assert getattr(frobenius_limits("linear-ce", C, 0.7, inputs=s), q) == pytest.approx(
            want, rel=1e-10
        )


def test_mean_aware_pair_factor_against_monte_carlo():
    """E[a a'] with a shared logit offset b ~ N(0, sigma^2 |mu|^2/d), sampled directly."""
    C, tau1, msq = 4, 0.5, 0.8
    s = InputStats.from_spectrum(np.full(20_000, tau1), np.full(20_000, math.sqrt(msq)))
    th = frobenius_limits("linear-ce", C, 1e-300, inputs=s)  # gamma -> 0: pair term only
    rg = np.random.default_rng(0)
    nb, nz = 20_000, 64
    b = rg.standard_normal((nb, 1, C)) * math.sqrt(msq)
    z = b + rg.standard_normal((nb, nz, C)) * math.sqrt(tau1)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ad, ao = (p * (1 - p)).mean(1)[:, 0], (-p[..., 0] * p[..., 1]).mean(1)
    # unbiased (E[a|b])^2: split the nz draws in halves
    h = nz // 2
    ad2 = (p[:, :h, 0] * (1 - p[:, :h, 0])).mean(1) * (p[:, h:, 0] * (1 - p[:, h:, 0])).mean(1)
    ao2 = (p[:, :h, 0] * p[:, :h, 1]).mean(1) * (p[:, h:, 0] * p[:, h:, 1]).mean(1)
    P = s.pair_moment
    for got, x in ((th.F_diag, ad2), (th.F_off, ao2)):
        assert abs(got / P - x.mean()) < 4 * x.std() / math.sqrt(nb)
    assert ad.mean() > 0 > ao.mean()


def test_mean_aware_continuous_at_zero_mean_and_jensen():
    d = 20_000
    base = InputStats.from_spectrum(two_level(d))
    tiny = InputStats.from_spectrum(two_level(d), np.full(d, 1e-7))
    a = frobenius_limits("linear-ce", 6, 0.5, inputs=base)
    b = frobenius_limits("linear-ce", 6, 0.5, inputs=tiny)
    assert b.inputs == "mean-aware"
    assert b.F_off == pytest.approx(a.F_off, rel=1e-8) and b.F_diag == pytest.approx(
        a.F_diag, rel=1e-8
    )


# ---------------------------------------------------------------- scaling Sigma -> c Sigma
@pytest.mark.parametrize("with_mean", [False, True])
def test_scaling_sigma(with_mean):
    """Scaling x -> sqrt(c) x: F(c Sigma, c^(1/2) mu; init s) = c^2 F(Sigma, mu; init s sqrt(c))."""
    d, c = 5000, 2.5
    lam = power_law(d)
    mu = np.full(d, 0.3) if with_mean else None
    s1 = InputStats.from_spectrum(lam, mu)
    s2 = InputStats.from_spectrum(c * lam, None if mu is None else math.sqrt(c) * mu)
    for case in ("linear-mse", "linear-ce"):
        a = quiet(frobenius_limits, case, 7, 0.3, init=0.8, inputs=s2)
        b = quiet(frobenius_limits, case, 7, 0.3, init=0.8 * math.sqrt(c), inputs=s1)
        assert a.F_diag == pytest.approx(c**2 * b.F_diag, rel=1e-9)
        assert a.F_off == pytest.approx(c**2 * b.F_off, rel=1e-9, abs=0)


@settings(max_examples=25, deadline=None)
@given(
    lam=st.lists(st.floats(0.05, 5.0), min_size=30, max_size=60),
    m=st.floats(0.0, 1.0),
    C=st.integers(2, 40),
    gamma=st.floats(0.01, 4.0),
)
def test_invariants_over_random_spectra(lam, m, C, gamma):
    lam = np.asarray(lam * 100)  # d = 3000..6000, d_eff >= ~ d/10
    mu = np.full(lam.size, m) if m > 0 else None
    s = quiet(InputStats.from_spectrum, lam, mu)
    perm = quiet(InputStats.from_spectrum, lam[::-1], None if mu is None else mu[::-1])
    r = quiet(frobenius_limits, "linear-ce", C, gamma, inputs=s)
    q = quiet(frobenius_limits, "linear-ce", C, gamma, inputs=perm)
    assert r.F_diag == pytest.approx(q.F_diag, rel=1e-12) and r.F_off == pytest.approx(
        q.F_off, rel=1e-12
    )
    assert r.F_diag > 0 and r.F_off > 0 and 0 < r.ratio <= 1 + 1e-12
    mse = quiet(frobenius_limits, "linear-mse", C, gamma, inputs=s)
    # E|x|^4/d^2 >= tau_1^2 and E(x.x')^2/d >= tau_2 >= tau_1^2
    assert mse.F_diag >= gamma * s.tau1**2 + s.tau1**2 - 1e-12
    # the shared offset can only raise E[a a'] above (E a)^2 (Jensen over b)
    if mu is not None:
        cen = quiet(InputStats.from_spectrum, lam + m * m)  # same tau_1 + |mu|^2/d scale
        c = quiet(frobenius_limits, "linear-ce", C, 1e-300, inputs=cen)
        r0 = quiet(frobenius_limits, "linear-ce", C, 1e-300, inputs=s)
        assert r0.F_off / s.pair_moment >= c.F_off / cen.pair_moment * (1 - 1e-9)


# ---------------------------------------------------------------- large C
@pytest.mark.parametrize("init", ["lecun", "torch-default", 0.6])
def test_asymptotic_identity_reproduces_isotropic(init):
    from rmthess.theory import asymptotic_constants

    iso = InputStats.from_spectrum(np.ones(1000))
    for case in ("linear-mse", "linear-ce"):
        a = asymptotic_constants(case, 0.7, init=init)
        b = asymptotic_constants(case, 0.7, init=init, inputs=iso)
        assert (b.A_diag, b.p_diag, b.p_off) == pytest.approx(
            (a.A_diag, a.p_diag, a.p_off), rel=1e-14
        )
        assert b.A_off == pytest.approx(a.A_off, rel=1e-14, abs=0)


@pytest.mark.parametrize("m", [0.0, 0.3])
def test_asymptotic_constants_against_large_C_limits(m):
    """C^2 F_diag and C^4 F_off of the fixed-C limit at C = 1e7 vs the constants."""
    from rmthess.theory import asymptotic_constants

    d = 20_000
    s = InputStats.from_spectrum(power_law(d), np.full(d, m) if m else None)
    a = asymptotic_constants("linear-ce", 0.4, init=0.9, inputs=s)
    C = 10**7
    f = quiet(frobenius_limits, "linear-ce", C, 0.4, init=0.9, inputs=s)
    assert C**2 * f.F_diag == pytest.approx(a.A_diag, rel=1e-5)  # O(1/C): 7e-7 measured
    assert C**4 * f.F_off == pytest.approx(a.A_off, rel=1e-5)
    assert a.inputs == s.level


# ---------------------------------------------------------------- the conditional route
def test_conditional_given_W_matches_brute_force():
    """E_X[(1/d)||H_kl||^2 | W] exactly (up to its logit Monte Carlo) vs sampled data sets."""
    rg = np.random.default_rng(1)
    d, N, C = 10, 24, 3
    lam = np.linspace(0.2, 3, d)
    m0 = 0.5 * rg.standard_normal(d)
    W = rg.standard_normal((C, d)) / math.sqrt(d)
    Fc = block_expectations(W, lam, m0, N, 400_000, np.random.default_rng(2))
    acc = np.array([blocks(m0 + rg.standard_normal((N, d)) * np.sqrt(lam), W) for _ in range(6000)])
    se = acc.std(0) / math.sqrt(len(acc))
    assert np.all(np.abs(acc.mean(0) - Fc) < 4.5 * se + 2e-3 * Fc)


@pytest.mark.parametrize("with_mean", [False, True])
def test_conditional_frobenius_vs_brute_force_over_networks(with_mean):
    rg = np.random.default_rng(3)
    d, N, C = 12, 30, 3
    lam = np.linspace(0.3, 2.5, d)
    m0 = 0.6 * rg.standard_normal(d) if with_mean else None
    s = quiet(InputStats.from_spectrum, lam, m0)
    th = conditional_frobenius("linear-ce", C, s, N, networks=400, draws=2048, seed=0)
    mu = np.zeros(d) if m0 is None else m0
    vals = np.array(
        [
            diag_off(
                blocks(
                    mu + rg.standard_normal((N, d)) * np.sqrt(lam),
                    rg.standard_normal((C, d)) / math.sqrt(d),
                )
            )
            for _ in range(4000)
        ]
    )
    for j, (q, se) in enumerate(((th.F_diag, th.F_diag_se), (th.F_off, th.F_off_se))):
        bse = vals[:, j].std() / math.sqrt(len(vals))
        assert abs(vals[:, j].mean() - q) < 4 * math.hypot(se, bse)
    assert th.method == "conditional" and th.inputs == (
        "mean-aware" if with_mean else "anisotropic"
    )


def test_conditional_routes_agree():
    """The per-block Q route and the shared-kernel route are the same sum."""
    rg = np.random.default_rng(5)
    d, C = 30, 5
    lam, m0 = np.linspace(0.3, 2, d), 0.3 * rg.standard_normal(d)
    W = rg.standard_normal((C, d)) / math.sqrt(d)
    q, k = (
        block_expectations(W, lam, m0, 50, 512, np.random.default_rng(9), route=r)
        for r in ("q", "kernel")
    )
    np.testing.assert_allclose(q, k, rtol=1e-10)
    pairs = (np.array([0, 2, 1]), np.array([0, 4, 3]))
    v = block_expectations(W, lam, m0, 50, 512, np.random.default_rng(9), pairs=pairs)
    # the draws are the same; only the block set differs
    np.testing.assert_allclose(v, q[pairs], rtol=1e-10)


def test_conditional_sampled_blocks_vs_brute_force():
    """C = 16 > ALL_BLOCKS_MAX_C: 32 + 32 random blocks per network, still unbiased."""
    rg = np.random.default_rng(6)
    d, N, C = 40, 60, 16
    lam = np.linspace(0.3, 2.5, d)
    s = InputStats.from_spectrum(lam)
    th = conditional_frobenius("linear-ce", C, s, N, networks=300, draws=1024, seed=0)
    vals = np.array(
        [
            diag_off(
                blocks(
                    rg.standard_normal((N, d)) * np.sqrt(lam),
                    rg.standard_normal((C, d)) / math.sqrt(d),
                )
            )
            for _ in range(1500)
        ]
    )
    for j, (q, se) in enumerate(((th.F_diag, th.F_diag_se), (th.F_off, th.F_off_se))):
        bse = vals[:, j].std() / math.sqrt(len(vals))
        assert abs(vals[:, j].mean() - q) < 4 * math.hypot(se, bse)


def test_conditional_mse_is_exact():
    rg = np.random.default_rng(4)
    d, N = 8, 20
    lam, m0 = np.linspace(0.5, 2, d), rg.standard_normal(d)
    th = conditional_frobenius("linear-mse", 3, quiet(InputStats.from_spectrum, lam, m0), N)
    W = np.zeros((3, d))
    acc = [
        blocks(m0 + rg.standard_normal((N, d)) * np.sqrt(lam), W, "linear-mse")[0, 0]
        for _ in range(20_000)
    ]
    assert abs(np.mean(acc) - th.F_diag) < 4 * np.std(acc) / math.sqrt(len(acc))
    assert th.F_off == 0 and th.n_samples == 0


def test_conditional_approaches_limit():
    """Centred two-level spectrum at d = 4000: the exact route is within O(C/d_eff) of the limit."""
    d, N, C = 4000, 8000, 4
    s = InputStats.from_spectrum(two_level(d))
    lim = frobenius_limits("linear-ce", C, d / N, inputs=s)
    ex = conditional_frobenius("linear-ce", C, s, N, networks=40, draws=4096, seed=1)
    for q in ("F_diag", "F_off"):
        a, se = getattr(ex, q), getattr(ex, f"{q}_se")
        assert abs(a - getattr(lim, q)) < 4 * se + 3 * C / s.d_eff * getattr(lim, q)


def test_argument_errors():
    s = InputStats.from_spectrum(np.ones(100))
    with pytest.raises(ValueError, match="method"):  # hidden-* with a mean: Monte Carlo only
        frobenius_limits(
            "hidden-mse",
            3,
            0.5,
            m=4,
            inputs=InputStats.from_spectrum(np.ones(100), np.ones(100)),
            method="quadrature",
        )
    with pytest.raises(TypeError, match="inputs"):
        frobenius_limits("linear-ce", 3, 0.5, inputs=np.ones(3))
    with pytest.raises(ValueError, match="init"):
        conditional_frobenius("linear-ce", 3, s, 50, init="torch-default")
    low = quiet(InputStats.from_spectrum, np.r_[1.0, 1.0, np.zeros(98)])
    with pytest.raises(ValueError, match="rank"):
        conditional_frobenius("linear-ce", 3, low, 50)
    with pytest.raises(ValueError, match="draws"):
        conditional_frobenius("linear-ce", 3, s, 50, draws=101)
    big = InputStats.from_spectrum(np.full(100, 40.0))
    with pytest.raises(ValueError, match="inputs"):
        quiet(frobenius_limits, "linear-ce", 3, 0.5, inputs=big)
    with pytest.warns(RuntimeWarning, match="C / d_eff"):
        frobenius_limits("linear-ce", 30, 0.5, inputs=s)


def test_label_shuffling_leaves_blocks_unchanged():
    """At init the CE Hessian in the logits, diag(p) - p p^T, does not see the labels:
    the measured block map (rmthess.curvature.block_norms) is identical after shuffling."""
    torch = pytest.importorskip("torch")
    from rmthess.curvature import block_norms, mlp

    rg = np.random.default_rng(0)
    X = torch.tensor(rg.standard_normal((40, 6)) * np.linspace(0.3, 2, 6))
    y = torch.tensor(rg.integers(0, 3, 40))
    model = mlp(6, 3, hidden=(), bias=False, seed=0)
    loss = torch.nn.CrossEntropyLoss()
    a = block_norms(model, loss, (X, y), blocks="output-rows", exact=True)
    b = block_norms(model, loss, (X, y[torch.randperm(40)]), blocks="output-rows", exact=True)
    np.testing.assert_allclose(a.sq_norm, b.sq_norm, rtol=1e-12)
    # and it equals the numpy Gram route of this file (1/d normalisation aside)
    W = model.output.weight.detach().numpy()
    np.testing.assert_allclose(a.sq_norm / 6, blocks(X.numpy(), W), rtol=1e-10)


# ---------------------------------------------------------------- simulation vs the limit
def _simulate(lam, mu, C, d, N, trials, seed):
    rg = np.random.default_rng(seed)
    mu = np.zeros(d) if mu is None else mu
    vals = []
    for _ in range(trials):
        X = mu + rg.standard_normal((N, d)) * np.sqrt(lam)
        W = rg.standard_normal((C, d)) / math.sqrt(d)
        vals.append(diag_off(blocks(X, W)))
    v = np.array(vals)
    return v.mean(0), v.std(0, ddof=1) / math.sqrt(trials)


@pytest.mark.parametrize("spectrum", [two_level, power_law])
def test_simulation_vs_limit_small(spectrum):
    d, N, C = 200, 400, 3
    s = InputStats.from_spectrum(spectrum(d))
    th = frobenius_limits("linear-ce", C, d / N, inputs=s)
    (fd, fo), (sd, so) = _simulate(s.eigenvalues, None, C, d, N, 12, 0)
    for got, se, want in ((fd, sd, th.F_diag), (fo, so, th.F_off)):
        assert abs(got - want) < 3 * se + 3 * C / s.d_eff * want


@pytest.mark.slow
@pytest.mark.parametrize("spectrum", [two_level, power_law])
@pytest.mark.parametrize("d", [400, 1000])
def test_simulation_vs_limit(spectrum, d):
    N, C = 2 * d, 4
    s = InputStats.from_spectrum(spectrum(d))
    th = frobenius_limits("linear-ce", C, d / N, inputs=s)
    (fd, fo), (sd, so) = _simulate(s.eigenvalues, None, C, d, N, 24, 1)
    for got, se, want in ((fd, sd, th.F_diag), (fo, so, th.F_off)):
        assert abs(got - want) < 3 * se + C / s.d_eff * want
    # the isotropic theory with the same tau_1 misses them (the check has teeth)
    iso = frobenius_limits("linear-ce", C, d / N, init=math.sqrt(s.tau1))
    assert abs(fo - iso.F_off) > 3 * so + C / s.d_eff * th.F_off
