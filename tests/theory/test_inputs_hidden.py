"""The hidden layer's blocks on Gaussian and Gaussian-mixture inputs (rmthess.theory.aniso_hidden,
conditional_frobenius(case="hidden-*")) against independent routes: brute-force averages over
sampled data sets of the blocks built in numpy from docs/theory.md section 2.1, and the
isotropic limit at large d."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rmthess.theory import InputStats, conditional_frobenius, frobenius_limits
from rmthess.theory.aniso_hidden import hidden_weights, pooled_component
from rmthess.theory.aniso_linear import block_expectations
from rmthess.theory.mixture_linear import mixture_block_expectations


def _oracle_weights(V, g, loss):
    """a^{kl} written out: v_k^T A v_l M_k M_l with A = I (mse) or diag p - p p^T (ce)."""
    C, m = V.shape
    on = (g > 0).astype(float)
    if loss == "mse":
        A = np.broadcast_to(np.eye(C), (g.shape[0], C, C))
    else:
        z = np.maximum(g, 0) @ V.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        A = np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]
    return np.einsum("ck,ncd,dl->nkl", V, A, V) * on[:, :, None] * on[:, None, :]


def _brute(sample, W, V, loss, reps, gen):
    """Mean and SE over data sets of (1/d)||H_kl||^2 for the upper-triangle blocks."""
    m = W.shape[0]
    iu, ju = np.triu_indices(m)
    vals = []
    for _ in range(reps):
        X = sample(gen)
        N, d = X.shape
        a = _oracle_weights(V, X @ W.T, loss)[:, iu, ju]
        vals.append(np.sum(a * (((X @ X.T) ** 2) @ a), 0) / (d * N * N))
    vals = np.array(vals)
    return vals.mean(0), vals.std(0, ddof=1) / np.sqrt(reps), (iu, ju)


def test_weights_match_the_written_out_definition():
    gen = np.random.default_rng(0)
    V, g = gen.standard_normal((4, 5)), gen.standard_normal((50, 5))
    iu, ju = np.triu_indices(5)
    for loss in ("ce", "mse"):
        got = hidden_weights(V, loss)(g, iu, ju)
        np.testing.assert_allclose(got, _oracle_weights(V, g, loss)[:, iu, ju], atol=1e-14)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_one_gaussian_matches_brute_force_at_fixed_network(loss):
    gen = np.random.default_rng(1)
    d, N, m, C = 14, 18, 3, 3
    lam = np.linspace(0.3, 2.0, d)
    mu = gen.normal(0, 0.4, d)
    W = gen.standard_normal((m, d)) / np.sqrt(d)
    V = gen.standard_normal((C, m)) / np.sqrt(m)
    mean, se, pairs = _brute(
        lambda g: mu + g.standard_normal((N, d)) * np.sqrt(lam), W, V, loss, 1500, gen
    )
    fn = hidden_weights(V, loss)
    reps = [block_expectations(W, lam, mu, N, 20000, gen, pairs, weight_fn=fn) for _ in range(8)]
    got, got_se = np.mean(reps, 0), np.std(reps, 0, ddof=1) / np.sqrt(8)
    z = (got - mean) / np.hypot(se, got_se)
    assert np.max(np.abs(z)) < 4.0, z


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_mixture_matches_brute_force_at_fixed_network(loss):
    gen = np.random.default_rng(2)
    d, m, C = 12, 3, 3
    n = np.array([6, 10])
    w = n / n.sum()
    means = gen.normal(0, 0.5, (2, d))
    A = gen.standard_normal((2, d, d)) / np.sqrt(d)
    covs = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    Ls = np.linalg.cholesky(covs)
    W = gen.standard_normal((m, d)) / np.sqrt(d)
    V = gen.standard_normal((C, m)) / np.sqrt(m)

    def sample(g):
        return np.vstack([means[k] + g.standard_normal((n[k], d)) @ Ls[k].T for k in range(2)])

    mean, se, pairs = _brute(sample, W, V, loss, 1500, gen)
    fn = hidden_weights(V, loss)
    N = int(n.sum())
    reps = [
        mixture_block_expectations(W, w, means, covs, N, 20000, gen, pairs, True, fn)
        for _ in range(8)
    ]
    got, got_se = np.mean(reps, 0), np.std(reps, 0, ddof=1) / np.sqrt(8)
    z = (got - mean) / np.hypot(se, got_se)
    assert np.max(np.abs(z)) < 4.0, z


@pytest.mark.parametrize("case", ["hidden-mse", "hidden-ce"])
def test_identity_covariance_approaches_the_isotropic_limit(case):
    d, N, m, C = 800, 1600, 6, 3
    lim = frobenius_limits(case, C, d / N, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = conditional_frobenius(
            case, C, InputStats.from_spectrum(np.ones(d)), N, m=m, networks=200, draws=1024
        )
    # 4 SE over networks plus the O(m/d) finite-size part (0.5 %) of the exact route
    for q in ("F_diag", "F_off"):
        tol = 4 * getattr(got, f"{q}_se") + 0.005 * getattr(lim, q)
        assert abs(getattr(got, q) - getattr(lim, q)) <= tol, (q, getattr(got, q), getattr(lim, q))
    assert got.m == m and got.method == "conditional" and got.inputs == "isotropic"


def test_hidden_mse_scales_as_sigma_squared():
    """Scaling the inputs by sqrt(c) leaves the (scale-free) weights alone: F -> c^2 F, the
    same draws; the Monte Carlo is the same stream, so the identity holds to round-off."""
    lam = np.linspace(0.5, 3.0, 20)
    mu = np.linspace(-0.2, 0.3, 20)
    kw = dict(m=3, networks=3, draws=64, seed=4)
    base = conditional_frobenius("hidden-mse", 3, InputStats.from_spectrum(lam, mu), 30, **kw)
    big = InputStats.from_spectrum(2.5 * lam, np.sqrt(2.5) * mu)
    scaled = conditional_frobenius("hidden-mse", 3, big, 30, **kw)
    assert scaled.F_diag == pytest.approx(6.25 * base.F_diag, rel=1e-9)
    assert scaled.F_off == pytest.approx(6.25 * base.F_off, rel=1e-9)


@pytest.mark.filterwarnings("ignore:effective dimension")
def test_pooled_component_is_the_data_moments():
    from rmthess.theory import input_stats

    gen = np.random.default_rng(5)
    X = gen.standard_normal((60, 7)) + np.repeat(np.eye(3, 7) * 2, 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    w, mu, cov = pooled_component(input_stats(X, y))
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(mu[0], X.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov[0], np.cov(X, rowvar=False, bias=True), atol=1e-12)


def test_arguments():
    st = InputStats.from_spectrum(np.ones(16))
    with pytest.raises(ValueError, match="m \\(hidden width.*required"):
        conditional_frobenius("hidden-ce", 3, st, 32, networks=2, draws=16)
    with pytest.raises(ValueError, match="m \\(hidden width\\)"):
        conditional_frobenius("linear-ce", 3, st, 32, m=4, networks=2, draws=16)
    with pytest.raises(ValueError, match="self_term"):
        conditional_frobenius("hidden-ce", 3, st, 32, m=4, networks=2, draws=16, self_term="data")
    low = InputStats.from_spectrum(np.r_[np.ones(3), np.zeros(13)])
    with pytest.raises(ValueError, match="rank"):
        conditional_frobenius("hidden-mse", 3, low, 32, m=4, networks=2, draws=16)
