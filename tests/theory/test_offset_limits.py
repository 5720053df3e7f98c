"""offset_frobenius: the hidden-* and output-* limits for inputs with a mean or class structure
(rmthess.theory.offset_limits), against independent routes: the centred rescaled limits
(aniso_scaled, quadrature and closed forms) at mu = 0, the exact conditional route at d = 600
(hidden), a numpy simulation of the output blocks with a mean and with two classes (output),
and a brute-force check that ignoring the offsets fails."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import rmthess.theory.offset_limits as ol
from rmthess.theory import (
    InputStats,
    asymptotic_constants,
    conditional_frobenius,
    frobenius_limits,
    offset_frobenius,
)

D = 600
TWO_LEVEL = np.r_[np.full(D // 2, 1.6), np.full(D // 2, 0.4)]  # tau_1 = 1, d_eff = 441


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **k)


def _mean(scale: float, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D) * math.sqrt(scale)


def _close(got, ref, q, k=4.0, rel=0.0):
    se = math.hypot(getattr(got, f"{q}_se"), getattr(ref, f"{q}_se"))
    return abs(getattr(got, q) - getattr(ref, q)) <= k * se + rel * abs(getattr(ref, q))


@pytest.mark.parametrize("case", ["hidden-mse", "hidden-ce", "output-mse", "output-ce"])
def test_centred_inputs_give_the_rescaled_limits(case):
    """mu = 0: no offsets; the Monte Carlo over g at scale sigma sqrt(tau_1) against the
    rescaled isotropic limit (closed form / quadrature; a different route)."""
    st = InputStats.from_spectrum(TWO_LEVEL)
    got = offset_frobenius(case, 6, 0.5, 6, st, samples=600, seed=1)
    ref = frobenius_limits(case, 6, 0.5, 6, inputs=st)
    for q in ("F_diag", "F_off"):
        if q == "F_off" and case == "output-mse":
            assert got.F_off == 0.0
            continue
        assert _close(got, ref, q), (q, got, ref)


@pytest.mark.parametrize("case", ["hidden-mse", "hidden-ce"])
def test_hidden_with_a_mean_matches_the_exact_route(case):
    """|mu|^2/d = 0.6 on the two-level spectrum: the limit against the conditional route
    (exact at d = 600, m/d_eff = 1.4 %) within 4 SE + 2 %; the same limit without the offsets
    (the mean taken as extra variance only) is 20-36 % off, far outside."""
    st = InputStats.from_spectrum(TWO_LEVEL, mean=_mean(0.6))
    N, m, C = 2 * D, 6, 5
    got = offset_frobenius(case, C, D / N, m, st, samples=2000, seed=0)
    ref = conditional_frobenius(case, C, st, N, m=m, networks=1500, draws=256, seed=1)
    for q in ("F_diag", "F_off"):
        assert _close(got, ref, q, rel=0.02), (q, got, ref)
    assert not _close(_without_offsets(case, C, D / N, m, st), ref, "F_off", rel=0.02)


def _without_offsets(case, C, gamma, m, st):
    """The route with the offsets B set to 0 (the mean counted as extra variance only)."""
    real = ol._offset_factor
    try:
        ol._offset_factor = lambda G: 0.0 * real(G)
        return _quiet(offset_frobenius, case, C, gamma, m, st, samples=2000, seed=0)
    finally:
        ol._offset_factor = real


def _simulate_output(comps, m, C, N, nets, loss, gen):
    """(F_diag, F_off) means and SEs over networks of the output blocks' N -> inf part (the
    U-statistic over distinct samples), numpy; ``comps``: list of (count, mean, sqrt_lam)."""
    d = comps[0][1].size
    out = []
    for _ in range(nets):
        W = gen.standard_normal((m, d)) / np.sqrt(d)
        V = gen.standard_normal((C, m)) / np.sqrt(m)
        X = np.vstack([mu + gen.standard_normal((n, d)) * s for n, mu, s in comps])
        h = np.maximum(X @ W.T, 0)
        if loss == "mse":
            a = np.broadcast_to(np.eye(C), (len(X), C, C)).reshape(len(X), C * C)
        else:
            z = h @ V.T
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            a = (np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]).reshape(
                len(X), C * C
            )
        K = (h @ h.T) ** 2
        F = (np.sum(a * (K @ a), 0) - np.sum(a * a * np.diag(K)[:, None], 0)) / (
            len(X) * (len(X) - 1)
        )
        F = F.reshape(C, C)
        out.append((np.mean(np.diag(F)), np.mean(F[~np.eye(C, dtype=bool)])))
    out = np.array(out)
    return out.mean(0), out.std(0, ddof=1) / np.sqrt(nets)


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("kind", ["mean", pytest.param("classes", marks=pytest.mark.slow)])
def test_output_limit_matches_simulation(loss, kind):
    """Output blocks with a mean (|mu|^2/d = 0.5) and with two classes of opposite means and
    different covariances: the limit against simulated networks within 4 SE + 3 %
    (m/d_eff = 1 %); the same route with the offsets ignored is outside."""
    gen = np.random.default_rng(5)
    m, C, N = 4, 3, 1200
    s = np.sqrt(TWO_LEVEL)
    mu = _mean(0.5, seed=7)
    if kind == "mean":
        st = InputStats.from_spectrum(TWO_LEVEL, mean=mu)
        comps = [(N, mu, s)]
    else:
        st = InputStats.from_mixture(
            [0.5, 0.5], [mu, -0.5 * mu], [np.diag(TWO_LEVEL), np.diag(TWO_LEVEL[::-1] * 0.5)]
        )
        comps = [(N // 2, mu, s), (N // 2, -0.5 * mu, s[::-1] * math.sqrt(0.5))]
    lim = _quiet(offset_frobenius, f"output-{loss}", C, 0.5, m, st, samples=1500, seed=2)
    mean, se = _simulate_output(comps, m, C, N, 250, loss, gen)
    tol = 4 * math.hypot(se[0], lim.F_diag_se) + 0.03 * lim.F_diag
    assert abs(mean[0] - lim.F_diag) <= tol, (mean, se, lim)
    assert abs(mean[0] - _without_offsets(f"output-{loss}", C, 0.5, m, st).F_diag) > tol
    if loss == "ce":
        tol = 4 * math.hypot(se[1], lim.F_off_se) + 0.03 * lim.F_off
        assert abs(mean[1] - lim.F_off) <= tol, (mean, se, lim)


def test_frobenius_limits_routes_offsets_here():
    st = InputStats.from_spectrum(np.ones(200), mean=np.full(200, 0.4))
    a = frobenius_limits("hidden-mse", 4, 0.5, 4, inputs=st, samples=40, seed=3)
    b = offset_frobenius("hidden-mse", 4, 0.5, 4, st, samples=40, seed=3)
    assert (a.F_diag, a.F_off) == (b.F_diag, b.F_off)
    assert (a.method, a.inputs) == ("monte-carlo", "mean-aware")
    with pytest.raises(ValueError, match="method"):
        frobenius_limits("hidden-ce", 4, 0.5, 4, inputs=st, method="quadrature")
    with pytest.raises(ValueError, match="tol"):
        frobenius_limits("output-ce", 4, 0.5, 4, inputs=st, tol=1e-6)
    assert asymptotic_constants("output-mse", 0.5, 4, inputs=st).inputs == "mean-aware"


def test_refusals():
    st = InputStats.from_spectrum(np.ones(200), mean=np.full(200, 0.4))
    with pytest.raises(ValueError, match="case"):
        offset_frobenius("linear-ce", 4, 0.5, 4, st)
    with pytest.raises(ValueError, match="inner"):
        offset_frobenius("hidden-ce", 4, 0.5, 4, st, inner=7)
    with pytest.raises(ValueError, match="init"):
        offset_frobenius("hidden-ce", 4, 0.5, 4, st, init="torch-default")
    with pytest.raises(TypeError, match="inputs"):
        offset_frobenius("hidden-ce", 4, 0.5, 4, np.ones(3))
    mix = InputStats.from_mixture([0.5, 0.5], np.zeros((2, 50)), np.stack([np.eye(50)] * 2))
    three = InputStats.from_mixture([1 / 3] * 3, np.zeros((3, 50)), np.stack([np.eye(50)] * 3))
    with pytest.raises(ValueError, match="classes"):
        offset_frobenius("hidden-ce", 2, 0.5, 4, three, activation="tanh")
    with pytest.warns(RuntimeWarning, match="m / d_eff"):
        offset_frobenius("hidden-mse", 4, 0.5, 8, mix, samples=20)
