"""frobenius_limits / asymptotic_constants with centred anisotropic inputs for the hidden-* and
output-* cases (rmthess.theory.aniso_scaled) against independent routes: the exact conditional
route at large d (hidden), a numpy simulation of the output blocks (output), the isotropic
numbers at Sigma = I, and the fixed-C closed forms at large C (constants)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from rmthess.inits import resolve_init
from rmthess.theory import (
    InputStats,
    asymptotic_constants,
    conditional_frobenius,
    frobenius_limits,
)
from rmthess.theory.aniso_scaled import check_scaled_inputs

TWO_LEVEL = np.r_[np.full(300, 6.0), np.full(900, 0.8)]  # d = 1200, tau_1 = 2.1, d_eff = 558


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **k)


@pytest.mark.parametrize("case", ["hidden-mse", "output-mse", "output-ce"])
def test_identity_covariance_gives_the_isotropic_numbers(case):
    st = InputStats.from_spectrum(np.ones(500))
    got = _quiet(frobenius_limits, case, 5, 0.5, 8, inputs=st)
    iso = frobenius_limits(case, 5, 0.5, 8)
    assert got.F_diag == pytest.approx(iso.F_diag, rel=1e-12)
    assert got.F_off == pytest.approx(iso.F_off, rel=1e-12, abs=1e-300)
    assert got.inputs == "isotropic" and got.gamma == 0.5


@pytest.mark.parametrize("case", ["hidden-mse", "hidden-ce"])
def test_hidden_limit_matches_the_exact_route_at_large_d(case):
    """The conditional route (exact at d = 600) on the two-level spectrum and on Sigma = I
    with the same seed: both within 4 SE of their limits, and their relative deviations
    agree (the same networks; what differs is the anisotropy the limit rescales).
    hidden-ce's limits by Monte Carlo (the rescaling is what is tested; the quadrature at
    the rescaled init costs ~20 s and is tested on its own)."""
    lam2 = TWO_LEVEL[::2]  # d = 600
    d, N, m, C = lam2.size, 2 * lam2.size, 8, 4
    nets = 1500 if case == "hidden-mse" else 150
    mc = {} if case == "hidden-mse" else {"method": "mc", "samples": 4000, "seed": 1}
    rel, rel_se = {}, {}
    for name, lam in (("two-level", lam2), ("iso", np.ones(d))):
        st = InputStats.from_spectrum(lam)
        lim = _quiet(frobenius_limits, case, C, d / N, m, inputs=st, **mc)
        got = _quiet(conditional_frobenius, case, C, st, N, m=m, networks=nets, draws=512, seed=2)
        for q in ("F_diag", "F_off"):
            se = math.hypot(getattr(got, f"{q}_se"), getattr(lim, f"{q}_se"))
            assert abs(getattr(got, q) - getattr(lim, q)) <= 4 * se + 0.01 * getattr(lim, q), (
                name,
                q,
            )
            rel[name, q] = getattr(got, q) / getattr(lim, q) - 1
            rel_se[name, q] = getattr(lim, f"{q}_se") / getattr(lim, q)
    iso = frobenius_limits(case, C, d / N, m, **mc)
    assert (
        _quiet(
            frobenius_limits, case, C, d / N, m, inputs=InputStats.from_spectrum(TWO_LEVEL), **mc
        ).F_diag
        > 1.3 * iso.F_diag
    )
    # the same networks and draws: the route's deviation from its limit is the same on both
    # spectra up to the finite-size term O(m/d_eff) (m/d_eff = 2.9 % for the two-level
    # spectrum at d = 600; measured differences 0.0-1.6 % at m = 6) and the limits' own
    # Monte-Carlo error; a wrong rescaling (tau_1 = 2.1, kappa = 2.15 here) would shift it by
    # tens of percent
    for q in ("F_diag", "F_off"):
        tol = 1.5 * m / InputStats.from_spectrum(lam2).d_eff
        tol += 4 * math.hypot(rel_se["two-level", q], rel_se["iso", q])
        assert abs(rel["two-level", q] - rel["iso", q]) < tol, rel


def _output_blocks(lam, m, C, N, nets, loss, gen):
    """Mean and SE over networks of the output blocks' (F_diag, F_off), N -> inf part: the
    U-statistic over distinct samples of ||(1/N) sum_i a_i h_i h_i^T||^2, numpy."""
    d = lam.size
    out = []
    for _ in range(nets):
        W = gen.standard_normal((m, d)) / np.sqrt(d)
        V = gen.standard_normal((C, m)) / np.sqrt(m)
        X = gen.standard_normal((N, d)) * np.sqrt(lam)
        h = np.maximum(X @ W.T, 0)
        if loss == "mse":
            a = np.broadcast_to(np.eye(C), (N, C, C)).reshape(N, C * C)
        else:
            z = h @ V.T
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            A = np.eye(C)[None] * p[:, :, None] - p[:, :, None] * p[:, None, :]
            a = A.reshape(N, C * C)
        K = (h @ h.T) ** 2
        full = np.sum(a * (K @ a), 0)
        self_ = np.sum(a * a * np.diag(K)[:, None], 0)
        F = ((full - self_) / (N * (N - 1))).reshape(C, C)
        out.append((np.mean(np.diag(F)), np.mean(F[~np.eye(C, dtype=bool)])))
    out = np.array(out)
    return out.mean(0), out.std(0, ddof=1) / np.sqrt(nets)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_output_limit_matches_simulation(loss):
    gen = np.random.default_rng(3)
    lam = TWO_LEVEL[::2]  # d = 600, the same two levels
    m, C = 4, 3
    lim = _quiet(
        frobenius_limits, f"output-{loss}", C, 0.5, m, inputs=InputStats.from_spectrum(lam)
    )
    mean, se = _output_blocks(lam, m, C, 1500, 300, loss, gen)
    iso = frobenius_limits(f"output-{loss}", C, 0.5, m)
    assert abs(mean[0] - lim.F_diag) <= 4 * se[0] + 0.02 * lim.F_diag, (mean, se, lim)
    assert abs(mean[0] - iso.F_diag) > 4 * se[0]  # the isotropic number is not it
    if loss == "ce":
        assert abs(mean[1] - lim.F_off) <= 4 * se[1] + 0.02 * lim.F_off, (mean, se, lim)


@pytest.mark.parametrize("case", ["hidden-mse", "output-mse"])
def test_constants_are_the_large_C_behaviour_of_the_limits(case):
    st = InputStats.from_spectrum(TWO_LEVEL)
    c = _quiet(asymptotic_constants, case, 0.5, 8, inputs=st)
    C = 10**6
    lim = _quiet(frobenius_limits, case, C, 0.5, 8, inputs=st)
    assert lim.F_diag * C**c.p_diag == pytest.approx(c.A_diag, rel=1e-4)
    assert c.inputs == "anisotropic"


def test_refusals_name_the_argument_and_the_route():
    mean = InputStats.from_spectrum(np.ones(50), mean=np.full(50, 0.3))
    # a mean goes to offset_frobenius and offset_asymptotics (tests/theory/test_offset_*.py)
    st = InputStats.from_spectrum(np.linspace(0.5, 2, 50))
    with pytest.raises(ValueError, match="init"):
        _quiet(frobenius_limits, "hidden-mse", 3, 0.5, 4, inputs=st, init="torch-default")
    with pytest.raises(ValueError, match="inputs.*offset_frobenius"):
        check_scaled_inputs(mean, "output-mse", 4, resolve_init("lecun"))
    with pytest.warns(RuntimeWarning, match="m / d_eff"):
        frobenius_limits("hidden-mse", 3, 0.5, 8, inputs=st)
