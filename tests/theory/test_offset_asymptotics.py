"""Large-C constants with a mean or classes (rmthess.theory.offset_asymptotics) against
independent routes: the isotropic mpmath constants (centred inputs, offsets zero), mpmath and
scipy double integrals of the pair moments, the arc-cosine closed forms against the pair
quadrature at t = 0, brute-force sampling of the defining expectations, exact scalings.
The Monte Carlo over networks at growing C is validation/offset_constants.py."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate

from rmthess.theory import InputStats, asymptotic_constants
from rmthess.theory.asymptotics import relu_product_mgf
from rmthess.theory.offset_asymptotics import _arccos_kernels, offset_constants, pair_mgf

SPEC = np.r_[np.full(300, 2.0), np.full(300, 0.5)]
CASES = ["hidden-mse", "hidden-ce", "output-mse", "output-ce"]


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **k)


def _mixture(scale=1.0):
    mu = np.full(600, math.sqrt(0.6))
    return InputStats.from_mixture(
        [0.5, 0.5],
        [math.sqrt(scale) * mu, -0.5 * math.sqrt(scale) * mu],
        [scale * np.diag(SPEC), scale * np.diag(SPEC[::-1] * 0.5)],
    )


@pytest.mark.parametrize("t", [0.0, 0.3, 0.9, 0.99])
def test_pair_moments_independent_are_the_isotropic_mgf(t):
    got = pair_mgf(1.0, 1.0, 0.0, t)
    for i, k in ((0, 0), (2, 1), (3, 2)):
        assert got[i] == pytest.approx(float(relu_product_mgf(t, k)), rel=1e-13)


@pytest.mark.parametrize(
    "a,b,c,t", [(2.0, 0.7, 0.6, 0.3), (1.0, 3.0, -1.2, 0.4), (1.0, 1.0, 0.95, 0.5)]
)
def test_pair_moments_against_a_double_integral(a, b, c, t):
    """scipy dblquad in the rotated coordinates u = (x + y)/sqrt 2, |v| < u (the quadrant)."""
    det = a * b - c * c

    def f(k):
        def g(v, u):
            x, y = (u + v) / math.sqrt(2), (u - v) / math.sqrt(2)
            q = (b * x * x - 2 * c * x * y + a * y * y) / (2 * det)
            return (x * y) ** k * math.exp(t * x * y - q) / (2 * math.pi * math.sqrt(det))

        opts = {"epsabs": 0, "epsrel": 1e-10, "limit": 200}
        # u up to 120: along the diagonal the rho = 0.95 integrand decays like e^{-0.006 u^2}
        return integrate.nquad(g, [lambda u: (-u, u), (0, 120)], opts=[opts, opts])[0]

    got = pair_mgf(a, b, c, t)
    for i, k in ((1, 0), (2, 1), (3, 2)):
        assert got[i] == pytest.approx(f(k), rel=1e-9)
    both = 0.25 + math.asin(c / math.sqrt(a * b)) / (2 * math.pi)
    assert got[0] == pytest.approx(1 - both + got[1], rel=1e-14)


@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.5, 0.99])
def test_arccos_kernels_are_the_pair_moments_at_zero_tilt(c):
    a, b = 1.7, 0.6
    c = c * math.sqrt(a * b)
    k1, k2 = _arccos_kernels(a, b, c)
    _, _, phi1, phi2 = pair_mgf(a, b, c, 0.0)
    assert k1 == pytest.approx(phi1, rel=1e-12)
    assert k2 == pytest.approx(phi2, rel=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("init,sigma", [("lecun", 1.0), (1.3, 1.3)])
def test_no_offsets_give_the_rescaled_isotropic_constants(case, init, sigma):
    st = InputStats.from_spectrum(SPEC)  # centred: G = 0
    for m in (12, 300):
        ref = _quiet(asymptotic_constants, case, 0.7, m, inputs=st, init=init)
        got = offset_constants(case, 0.7, m, st, sigma)
        assert got[0] == pytest.approx(ref.A_diag, rel=1e-11)
        assert got[2] == pytest.approx(ref.A_off, rel=1e-11)
        assert (got[1], got[3]) == (ref.p_diag, ref.p_off)


def test_brute_force_of_the_defining_expectations():
    """output-ce: A = sum_kl pi_k pi_l E[e^{t h.h'} (h.h')^2], h, h' ReLU pre-activations of two
    samples of one network (offsets shared); sampled within 4 SE."""
    from rmthess.theory.offset_limits import _components, _offset_factor

    st, m, n = _mixture(), 16, 400_000
    gen = np.random.default_rng(11)
    w, tau1, G, _, _ = _components(st)
    B = np.einsum("kj,sji->ski", _offset_factor(G), gen.standard_normal((n, 2, m)))
    k, l_ = gen.choice(2, n, p=w), gen.choice(2, n, p=w)
    idx = np.arange(n)
    h = np.maximum(B[idx, k] + np.sqrt(tau1[k])[:, None] * gen.standard_normal((n, m)), 0)
    hp = np.maximum(B[idx, l_] + np.sqrt(tau1[l_])[:, None] * gen.standard_normal((n, m)), 0)
    dot = np.sum(h * hp, axis=1)
    c = _quiet(asymptotic_constants, "output-ce", 0.5, m, inputs=st)
    for t, A in ((1 / m, c.A_diag), (2 / m, c.A_off)):
        x = np.exp(t * dot) * dot**2
        assert abs(x.mean() - A) <= 4 * x.std() / math.sqrt(n), (x.mean(), A)
    o = _quiet(asymptotic_constants, "output-mse", 0.5, m, inputs=st)
    # output-mse: E ||sum_k pi_k E_k[h h^T]||^2 = sum_kl pi_k pi_l E[(h.h')^2] (two samples)
    x = dot**2
    assert abs(x.mean() - o.A_diag) <= 4 * x.std() / math.sqrt(n), (x.mean(), o.A_diag)


@pytest.mark.parametrize("case", ["hidden-mse", "output-mse"])
def test_scaling_of_the_inputs(case):
    """Sigma -> c Sigma, mu -> sqrt(c) mu: v, G -> c, R -> c^2, so A -> c^2 A (ReLU is
    homogeneous; the MSE weights carry no exponential)."""
    a = _quiet(asymptotic_constants, case, 0.5, 8, inputs=_mixture())
    b = _quiet(asymptotic_constants, case, 0.5, 8, inputs=_mixture(2.5))
    assert b.A_diag == pytest.approx(2.5**2 * a.A_diag, rel=1e-10)
    assert b.A_off == pytest.approx(2.5**2 * a.A_off, rel=1e-10)


def test_routing_and_refusals():
    st = InputStats.from_spectrum(SPEC, mean=np.full(600, math.sqrt(0.6)))
    c = _quiet(asymptotic_constants, "hidden-ce", 0.5, 16, inputs=st)
    assert (c.inputs, c.p_off) == ("mean-aware", 1.0)
    assert _quiet(asymptotic_constants, "output-ce", 0.5, 16, inputs=_mixture()).inputs == (
        "mixture"
    )
    # v = tau_1 + |mu|^2/d = 1.85: hidden-ce needs m > 2 v = 3.7, output-ce m > 2 (v + G) = 4.9
    with pytest.raises(ValueError, match=r"m must be > 4\.9"):
        _quiet(asymptotic_constants, "output-ce", 0.5, 4, inputs=st)
    assert _quiet(asymptotic_constants, "output-ce", 0.5, 5, inputs=st).A_off > 0
    raw = InputStats.from_spectrum(SPEC, mean=np.full(600, 4.0))  # raw-pixel-like offsets
    with pytest.raises(ValueError, match="standardise"):
        _quiet(asymptotic_constants, "hidden-ce", 0.5, 16, inputs=raw)
    assert _quiet(asymptotic_constants, "hidden-mse", 0.5, 16, inputs=raw).A_diag > 0
    with pytest.raises(ValueError, match="m must be <="):
        _quiet(asymptotic_constants, "hidden-mse", 0.5, 10**7, inputs=st)
