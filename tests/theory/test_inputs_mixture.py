"""Linear model under Gaussian-mixture inputs whose components are the classes (issue 19
item 4): the exact finite-d conditional route and the d_eff -> inf limit against
independent routes (the one-Gaussian routes at one component, brute-force Hessian blocks
built in numpy, direct Monte Carlo, label shuffling and permutation laws)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _gram import blocks, diag_off, quiet
from hypothesis import given, settings
from hypothesis import strategies as st

from rmthess.theory import (
    InputStats,
    asymptotic_constants,
    conditional_frobenius,
    frobenius_limits,
    input_stats,
)
from rmthess.theory.aniso_linear import block_expectations
from rmthess.theory.mixture_linear import mixture_block_expectations


def mixture(K, d, rg, mean=0.7, counts=None):
    """Weights, means, covariances (each a random PSD matrix of its own scale)."""
    w = np.ones(K) / K if counts is None else np.asarray(counts) / np.sum(counts)
    mus = mean * rg.standard_normal((K, d))
    covs = []
    for k in range(K):
        A = 0.3 * rg.standard_normal((d, d)) + (0.6 + 0.4 * k) * np.eye(d)
        covs.append(A @ A.T / d * 2)
    return w, mus, np.array(covs)


def sample(counts, mus, covs, rg):
    d = mus.shape[1]
    Ls = [np.linalg.cholesky(c) for c in covs]
    return np.vstack([mus[k] + rg.standard_normal((n, d)) @ Ls[k].T for k, n in enumerate(counts)])


# ------------------------------------------------------------- one component is today
def test_one_component_given_W_is_the_one_gaussian_route():
    """Same W, same draws: the mixture route with K = 1 equals block_expectations, also in
    rotated input coordinates."""
    rg = np.random.default_rng(0)
    d, C, N = 12, 4, 30
    lam, m0 = np.linspace(0.3, 2, d), 0.4 * rg.standard_normal(d)
    W = rg.standard_normal((C, d)) / math.sqrt(d)
    a = block_expectations(W, lam, m0, N, 512, np.random.default_rng(3))
    U, _ = np.linalg.qr(rg.standard_normal((d, d)))
    for Wb, mu, S in ((W, m0, np.diag(lam)), (W @ U.T, U @ m0, U @ np.diag(lam) @ U.T)):
        b = mixture_block_expectations(
            Wb, np.ones(1), mu[None], S[None], N, 512, np.random.default_rng(3)
        )
        np.testing.assert_allclose(b, a, rtol=1e-10)


@pytest.mark.parametrize("case", ["linear-ce", "linear-mse"])
def test_one_component_reproduces_every_route(case):
    """InputStats.from_mixture with K = 1 (diagonal covariance, descending: its eigenbasis
    is the identity) gives the one-Gaussian conditional route (same seed: identical W and
    draws), limit and large-C constants."""
    rg = np.random.default_rng(1)
    d, N, C = 16, 40, 3
    lam, mu = np.linspace(2.5, 0.3, d), 0.5 * rg.standard_normal(d)
    one = quiet(InputStats.from_spectrum, lam, mu)
    mix = quiet(InputStats.from_mixture, [1.0], mu[None], np.diag(lam)[None])
    assert mix.level == "mixture" and one.level == "mean-aware"
    assert mix.pooled().level == "mean-aware"
    a = conditional_frobenius(case, C, one, N, networks=4, draws=256, seed=2)
    b = conditional_frobenius(case, C, mix, N, networks=4, draws=256, seed=2)
    for q in ("F_diag", "F_off"):
        assert getattr(b, q) == pytest.approx(getattr(a, q), rel=1e-9, abs=1e-300), q
    assert b.inputs == "mixture"
    for g in (0.2, 3.0):
        la = quiet(frobenius_limits, case, C, g, inputs=one)
        lb = quiet(frobenius_limits, case, C, g, inputs=mix)
        for q in ("F_diag", "F_off"):
            assert getattr(lb, q) == pytest.approx(getattr(la, q), rel=1e-10, abs=1e-300), q
    aa = asymptotic_constants(case, gamma=0.5, inputs=one)
    ab = asymptotic_constants(case, gamma=0.5, inputs=mix)
    assert ab.A_diag == pytest.approx(aa.A_diag, rel=1e-12)


# ------------------------------------------------------------- exact route vs brute force
def test_given_W_matches_brute_force():
    rg = np.random.default_rng(2)
    d, C, counts = 10, 3, np.array([9, 6, 3])
    w, mus, covs = mixture(3, d, rg, counts=counts)
    W = rg.standard_normal((C, d)) / math.sqrt(d)
    Fc = mixture_block_expectations(W, w, mus, covs, counts.sum(), 200_000, rg)
    acc = np.array([blocks(sample(counts, mus, covs, rg), W) for _ in range(4000)])
    se = acc.std(0) / math.sqrt(len(acc))
    assert np.all(np.abs(acc.mean(0) - Fc) < 4.5 * se + 2e-3 * Fc)


@pytest.mark.parametrize("case", ["linear-ce", "linear-mse"])
def test_conditional_frobenius_vs_brute_force_over_networks(case):
    rg = np.random.default_rng(3)
    d, C, counts = 12, 3, np.array([10, 14, 6])
    w, mus, covs = mixture(3, d, rg, counts=counts)
    s = quiet(InputStats.from_mixture, w, mus, covs)
    th = conditional_frobenius(case, C, s, counts.sum(), networks=300, draws=2048, seed=0)
    vals = np.array(
        [
            diag_off(
                blocks(
                    sample(counts, mus, covs, rg),
                    rg.standard_normal((C, d)) / math.sqrt(d),
                    case,
                )
            )
            for _ in range(3000)
        ]
    )
    for j, q in enumerate(("F_diag", "F_off")):
        se = getattr(th, f"{q}_se") or 0.0
        bse = vals[:, j].std() / math.sqrt(len(vals))
        assert abs(vals[:, j].mean() - getattr(th, q)) < 4 * math.hypot(se, bse) + 1e-12, q


def test_sampled_blocks_above_C11():
    """C = 13: 32 + 32 random blocks per network, unbiased against brute force."""
    rg = np.random.default_rng(4)
    d, C, counts = 30, 13, np.array([20, 20])
    w, mus, covs = mixture(2, d, rg, mean=0.5, counts=counts)
    s = quiet(InputStats.from_mixture, w, mus, covs)
    th = conditional_frobenius("linear-ce", C, s, 40, networks=150, draws=512, seed=0)
    vals = np.array(
        [
            diag_off(blocks(sample(counts, mus, covs, rg), rg.standard_normal((C, d)) / d**0.5))
            for _ in range(800)
        ]
    )
    for j, q in enumerate(("F_diag", "F_off")):
        bse = vals[:, j].std() / math.sqrt(len(vals))
        assert abs(vals[:, j].mean() - getattr(th, q)) < 4 * math.hypot(getattr(th, f"{q}_se"), bse)


# ------------------------------------------------------------- the limit
def test_limit_pair_factor_against_monte_carlo():
    """E_kl[a a'] of the limit (correlated, unequal scales, also negative correlation) by
    sampling the logits directly: F_off at gamma -> 0 over R is sum pi pi E[p_k p_l p'_k p'_l]."""
    rg = np.random.default_rng(5)
    d, C = 400, 4
    mus = np.array([np.full(d, 0.6), np.full(d, -0.3)])  # mu_0 . mu_1 < 0
    covs = np.array([np.eye(d) * 0.5, np.eye(d) * 1.5])
    s = quiet(InputStats.from_mixture, [0.5, 0.5], mus, covs)
    lim = quiet(frobenius_limits, "linear-ce", C, 1e-12, inputs=s)
    v = np.array([0.5 + 0.36, 1.5 + 0.09])
    G = mus @ mus.T / d
    n = 400_000
    tot = 0.0
    for k in range(2):
        for j in range(2):
            L = np.linalg.cholesky(np.array([[v[k], G[k, j]], [G[k, j], v[j]]]))
            g = rg.standard_normal((n, C, 2)) @ L.T
            p = np.exp(g[..., 0])
            p /= p.sum(1, keepdims=True)
            q = np.exp(g[..., 1])
            q /= q.sum(1, keepdims=True)
            R = np.sum((covs[k] + np.outer(mus[k], mus[k])) * (covs[j] + np.outer(mus[j], mus[j])))
            tot += 0.25 * R / d * np.mean(p[:, 0] * p[:, 1] * q[:, 0] * q[:, 1])
    assert lim.F_off == pytest.approx(tot, rel=5e-3)


def test_limit_against_exact_route_at_large_d():
    """d = 1000, within-class d_eff ~ 700: the exact route is within O(C / d_eff) of the limit."""
    rg = np.random.default_rng(6)
    d, C, N = 1000, 3, 2000
    lam = [np.linspace(0.5, 1.5, d), np.linspace(0.2, 2.0, d), np.full(d, 1.0)]
    mus = 0.5 * rg.standard_normal((3, d))
    s = quiet(InputStats.from_mixture, [0.5, 0.3, 0.2], mus, np.array([np.diag(v) for v in lam]))
    lim = frobenius_limits("linear-ce", C, d / N, inputs=s)
    ex = conditional_frobenius("linear-ce", C, s, N, networks=30, draws=2048, seed=1)
    d_eff = float(np.min(s.class_d_eff))
    for q in ("F_diag", "F_off"):
        a, se = getattr(ex, q), getattr(ex, f"{q}_se")
        assert abs(a - getattr(lim, q)) < 4 * se + 3 * C / d_eff * getattr(lim, q), q


@settings(max_examples=15, deadline=None)
@given(
    K=st.integers(1, 4),
    gamma=st.floats(0.05, 5.0),
    scale=st.floats(0.0, 1.0),
    seed=st.integers(0, 10**6),
)
def test_mse_limit_and_permutation_invariance(K, gamma, scale, seed):
    """linear-mse: F_diag = gamma sum pi_k v_k^2 + pooled pair moment (E(x.x')^2 / d of the
    mixture is the pooled one); every limit is invariant under relabelling the components."""
    rg = np.random.default_rng(seed)
    d = 40
    w, mus, covs = mixture(K, d, rg, mean=scale, counts=rg.integers(1, 10, K))
    s = quiet(InputStats.from_mixture, w, mus, covs)
    v = np.einsum("kii->k", covs) / d + np.sum(mus**2, 1) / d
    want = gamma * float(w @ v**2) + s.pair_moment
    got = quiet(frobenius_limits, "linear-mse", 3, gamma, inputs=s).F_diag
    assert got == pytest.approx(want, rel=1e-10)
    perm = rg.permutation(K)
    t = quiet(InputStats.from_mixture, w[perm], mus[perm], covs[perm])
    a, b = (quiet(frobenius_limits, "linear-ce", 3, gamma, inputs=x) for x in (s, t))
    for q in ("F_diag", "F_off"):
        assert getattr(b, q) == pytest.approx(getattr(a, q), rel=1e-12)


def test_asymptotic_constants_against_large_C_limit():
    rg = np.random.default_rng(7)
    d = 200
    w, mus, covs = mixture(3, d, rg, mean=0.4)
    s = quiet(InputStats.from_mixture, w, mus, covs)
    a = quiet(asymptotic_constants, "linear-ce", gamma=0.4, init=0.9, inputs=s)
    C = 10**7
    f = quiet(frobenius_limits, "linear-ce", C, 0.4, init=0.9, inputs=s)
    assert C**2 * f.F_diag == pytest.approx(a.A_diag, rel=1e-4)
    assert C**4 * f.F_off == pytest.approx(a.A_off, rel=1e-4)


# ------------------------------------------------------------- labels and statistics
def test_labels_enter_only_as_the_partition():
    """At init A(z) does not see y: the blocks of a data set are unchanged by shuffling its
    labels (Gram route below uses no label), and the mixture built from shuffled labels is,
    up to sampling error, the pooled Gaussian (its limit approaches the mean-aware one)."""
    rg = np.random.default_rng(8)
    d, C, n = 60, 3, 4000
    w, mus, covs = mixture(3, d, rg, mean=0.8)
    counts = np.full(3, n)
    X = sample(counts, mus, covs, rg)
    y = np.repeat(np.arange(3), n)
    mix = quiet(input_stats, X, y)
    shuf = quiet(input_stats, X, rg.permutation(y))
    pooled = quiet(input_stats, X)
    lim = {
        k: quiet(frobenius_limits, "linear-ce", C, 0.5, inputs=s)
        for k, s in (("mix", mix), ("shuf", shuf), ("pooled", pooled))
    }
    assert lim["shuf"].F_off == pytest.approx(lim["pooled"].F_off, rel=0.02)
    assert abs(lim["mix"].F_off / lim["pooled"].F_off - 1) > 0.1  # the clusters matter
    np.testing.assert_array_equal(mix.pooled().eigenvalues, pooled.eigenvalues)


@pytest.mark.parametrize("centred", [False, True])
def test_class_covariances_and_from_mixture_pooling(centred):
    rg = np.random.default_rng(9)
    X = rg.standard_normal((300, 8)) @ (np.eye(8) + 0.2 * rg.standard_normal((8, 8)))
    y = rg.integers(0, 3, 300)
    X += 2.0 * y[:, None] * rg.standard_normal(8)[None]
    s = quiet(input_stats, X, y, centred=centred)
    assert s.level == "mixture"
    assert s.pooled().level == ("anisotropic" if centred else "mean-aware")
    mu = X.mean(0)
    for k in range(3):
        Z = X[y == k] - X[y == k].mean(0)
        np.testing.assert_allclose(s.class_covariances[k], Z.T @ Z / len(Z), rtol=1e-10)
        want = X[y == k].mean(0) - (mu if centred else 0)
        np.testing.assert_allclose(s.class_means[k], want, rtol=1e-10, atol=1e-12)
    t = quiet(InputStats.from_mixture, s.class_weights, s.class_means, s.class_covariances)
    for q in ("tau1", "tau2", "tau3", "d_eff", "mean_sq", "mean_cov", "pair_moment"):
        assert getattr(t, q) == pytest.approx(getattr(s, q), rel=1e-9, abs=1e-12), q
    assert t.source == "mixture"


def test_bad_input():
    rg = np.random.default_rng(10)
    w, mus, covs = mixture(2, 6, rg)
    for args, name in (
        ((w[:1], mus, covs), "weights"),
        ((w, mus[:, :5], covs), "covariances"),
        ((-w, mus, covs), "weights"),
        ((w, mus, -covs), "covariances"),
        ((w, mus * np.nan, covs), "means"),
    ):
        with pytest.raises(ValueError, match=name):
            quiet(InputStats.from_mixture, *args)
    with pytest.raises(ValueError, match="covariances"):
        quiet(
            InputStats.from_mixture, w, mus, covs + np.triu(np.ones((6, 6)))[None]
        )  # not symmetric


def test_point_masses_give_the_data_sets_own_blocks():
    """One point mass per sample (Sigma_k = 0, n_k = 1): given W the route is exactly the
    Gram-route blocks of that fixed data set (no Monte Carlo left: the logits are W x_i); a
    rank-1 component (rank < C: singular logit covariance) is also allowed."""
    rg = np.random.default_rng(15)
    N, d, C = 8, 10, 4
    X = rg.standard_normal((N, d)) * 1.3
    for _ in range(3):
        W = rg.standard_normal((C, d)) / math.sqrt(d)
        F = mixture_block_expectations(W, np.ones(N) / N, X, np.zeros((N, d, d)), N, 16, rg)
        np.testing.assert_allclose(F, blocks(X, W), rtol=1e-10)
    s = quiet(InputStats.from_mixture, np.ones(N), X, np.zeros((N, d, d)))
    assert conditional_frobenius("linear-ce", C, s, N, networks=4, draws=16).F_off > 0
    with pytest.warns(RuntimeWarning, match="d_eff"):  # within-class d_eff = 0: no limit
        assert frobenius_limits("linear-ce", C, 0.5, inputs=s).F_off > 0
    # rank-1 components are allowed (singular logit covariance)
    low = np.array([np.outer(v, v) / d for v in rg.standard_normal((2, d))])
    t = quiet(InputStats.from_mixture, [0.5, 0.5], rg.standard_normal((2, d)), low)
    r = conditional_frobenius("linear-ce", C, t, 10, networks=4, draws=64, seed=0)
    assert np.isfinite(r.F_diag) and np.isfinite(r.F_off) and r.F_off > 0


# ------------------------------------------------------------- the data's own self term
def heavy_data(rg, N=60, d=20):
    """Non-Gaussian inputs with heavy-tailed norms (Student-t rows): logit scales up to ~6."""
    g = rg.standard_normal((N, d))
    return g / np.sqrt(rg.chisquare(2.5, (N, 1)) / 2.5)


@pytest.mark.parametrize("case", ["linear-ce", "linear-mse"])
def test_data_self_term_against_monte_carlo_over_networks(case):
    """i = j part of the blocks of one fixed data set, averaged over many W by brute force,
    vs the exact per-sample formula."""
    from rmthess.theory.mixture_linear import data_self_term

    rg = np.random.default_rng(11)
    X = heavy_data(rg)
    N, d = X.shape
    C = 4
    q = np.sum(X**2, 1) / d
    assert math.sqrt(q.max()) > 5.0  # beyond the softmax_moments tables
    Fd, Fo = data_self_term(case, C, q, N, d, 1.0)
    acc = []
    for _ in range(20_000):
        W = rg.standard_normal((C, d)) / math.sqrt(d)
        z = X @ W.T
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        if case == "linear-mse":
            A = np.broadcast_to(np.eye(C), (N, C, C))
        else:
            A = np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]
        F = np.einsum("ikl,i->kl", A * A, np.sum(X**2, 1) ** 2) / (d * N * N)
        acc.append(diag_off(F))
    acc = np.array(acc)
    for j, v in enumerate((Fd, Fo)):
        se = acc[:, j].std() / math.sqrt(len(acc))
        assert abs(acc[:, j].mean() - v) <= 4 * se + 1e-12 * abs(v), j


def test_data_self_term_spline_against_direct():
    from rmthess.theory.ce_inner import output_inner
    from rmthess.theory.mixture_linear import data_self_term

    rg = np.random.default_rng(12)
    q = np.sum(heavy_data(rg, N=25) ** 2, 1) / 20
    C = 7
    direct = np.array([output_inner(math.sqrt(v), math.sqrt(v), 1.0, C) for v in q])
    want_d = np.mean(q * q * ((C - 1) * direct[:, 0] + (C - 1) * (C - 2) * direct[:, 1]))
    want_o = np.mean(q * q * direct[:, 0])
    Fd, Fo = data_self_term("linear-ce", C, q, 25, 20, 1.0)
    assert Fd == pytest.approx(20 / 25 * want_d, rel=1e-6)
    assert Fo == pytest.approx(20 / 25 * want_o, rel=1e-6)


@pytest.mark.parametrize("mix", [False, True])
def test_self_term_data_equals_model_for_gaussian_data(mix):
    """Data drawn from the model: the empirical norm law gives the model's self term."""
    rg = np.random.default_rng(13)
    d, C, counts = 40, 3, np.array([1500, 1500])
    w, mus, covs = mixture(2, d, rg, mean=0.5, counts=counts)
    X = sample(counts, mus, covs, rg)
    y = np.repeat([0, 1], counts)
    s = quiet(input_stats, X, y) if mix else quiet(input_stats, X)
    kw = dict(networks=40, draws=1024, seed=3)
    a = conditional_frobenius("linear-ce", C, s, 200, **kw)
    b = conditional_frobenius("linear-ce", C, s, 200, self_term="data", **kw)
    assert b.inputs == s.level + "+norms"
    for q in ("F_diag", "F_off"):
        assert getattr(b, q) == pytest.approx(getattr(a, q), rel=0.01), q
    m = conditional_frobenius("linear-mse", C, s, 200)
    n = conditional_frobenius("linear-mse", C, s, 200, self_term="data")
    assert n.F_diag == pytest.approx(m.F_diag, rel=0.01)


def test_self_term_errors():
    s = InputStats.from_spectrum(np.ones(20))
    with pytest.raises(ValueError, match="self_term"):
        conditional_frobenius("linear-ce", 3, s, 40, self_term="data")
    with pytest.raises(ValueError, match="self_term"):
        conditional_frobenius("linear-ce", 3, s, 40, self_term="nope")


def test_class_covariances_dropped_beyond_the_ram_share(monkeypatch):
    """Too many classes for the RAM: a warning, no class covariances, the one-Gaussian level."""
    import rmthess.theory.inputs as inputs_mod

    rg = np.random.default_rng(14)
    X, y = rg.standard_normal((60, 12)), rg.integers(0, 3, 60)
    monkeypatch.setattr(inputs_mod, "physical_memory", lambda: 1000)
    with pytest.warns(RuntimeWarning, match="class covariances"):
        s = input_stats(X, y)
    assert s.class_covariances is None and s.level == "mean-aware"
    monkeypatch.undo()
    t = input_stats(X, y, n_classes=4)
    assert t.level == "mixture"
    np.testing.assert_allclose(s.class_tau, t.class_tau[:3], rtol=1e-12)
    np.testing.assert_allclose(s.class_d_eff, t.class_d_eff[:3], rtol=1e-12)
    assert np.isnan(t.class_d_eff[3])
