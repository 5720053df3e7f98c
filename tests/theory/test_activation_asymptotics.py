"""Large-C constants for any activation (rmthess.theory.activation_asymptotics, issue 20).

Independent routes: the paper's ReLU constants (mpmath closed forms of
rmthess.theory.asymptotics), brute-force sampling of the defining m-dimensional expectations
(no factorisation over coordinates, no quadrature), and the fixed-C Monte Carlo of
frobenius_limits(..., activation=) at large C.
"""

import numpy as np
import pytest

from rmthess.activations import ACTIVATIONS
from rmthess.theory import asymptotic_constants, frobenius_limits, input_stats
from rmthess.theory.activation_asymptotics import activation_constants


@pytest.mark.parametrize("case", ["hidden-ce", "hidden-mse", "output-ce", "output-mse"])
@pytest.mark.parametrize(("m", "sigma"), [(3, 1.0), (8, 1.0), (16, 1.3), (50, 0.8)])
def test_relu_gives_the_papers_constants(case, m, sigma):
    a = activation_constants(case, 0.5, m, "relu", sigma)
    b = asymptotic_constants(case, 0.5, m, init=sigma)
    assert a[1] == b.p_diag and a[3] == b.p_off
    assert a[0] == pytest.approx(b.A_diag, rel=1e-10)
    assert a[2] == pytest.approx(b.A_off, rel=1e-10, abs=0.0)


@pytest.mark.parametrize("name", ["tanh", "gelu", "softplus"])
def test_hidden_ce_constants_match_brute_force_sampling(name):
    """A_diag's expectations and K1, K2 (m = 6, sigma = 1) against 400 000 draws of the
    m-dimensional g (and g') without factorising: within 4 SE."""
    m, gamma, n = 6, 0.5, 400_000
    act = ACTIVATIONS[name]
    s = 1.0 / m
    gen = np.random.default_rng(0)
    g, g2, xi = gen.standard_normal((n, m)), gen.standard_normal((n, m)), gen.standard_normal(n)
    h, h2, d1, d1b, d2 = act.phi(g), act.phi(g2), act.dphi(g), act.dphi(g2), act.d2phi(g)
    a = s * d1[:, 0] ** 2 + d2[:, 0] * (s * h[:, 0] - np.sqrt(s) * xi)  # a_jj as C -> inf
    k1 = np.exp(s * (h * h).sum(1)) * (s + s * s * h[:, 0] ** 2) * (s + s * s * h[:, 1] ** 2)
    k1 *= (d1[:, 0] * d1[:, 1]) ** 2
    hh = h * h2
    k2 = np.exp(s * hh.sum(1)) * (s + s * s * hh[:, 0]) * (s + s * s * hh[:, 1])
    k2 *= d1[:, 0] * d1b[:, 0] * d1[:, 1] * d1b[:, 1]
    A_d, _, A_o, _ = activation_constants("hidden-ce", gamma, m, name)
    # A_diag = gamma E[a^2] + (E a)^2: sampled with the delta method's SE
    est_d = gamma * np.mean(a * a) + np.mean(a) ** 2
    se_d = np.std(gamma * a * a + 2 * np.mean(a) * a) / np.sqrt(n)
    assert abs(est_d - A_d) <= 4 * se_d
    x = gamma * k1 + k2
    assert abs(np.mean(x) - A_o) <= 4 * np.std(x) / np.sqrt(n)


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_output_ce_constants_match_brute_force_sampling(name):
    """K3 = E[e^{s h.h'} (h.h')^2] (m = 5) against 400 000 draws (4 SE)."""
    m, n = 5, 400_000
    act = ACTIVATIONS[name]
    gen = np.random.default_rng(1)
    hh = (act.phi(gen.standard_normal((n, m))) * act.phi(gen.standard_normal((n, m)))).sum(1)
    x = np.exp(hh / m) * hh**2
    K3 = activation_constants("output-ce", 0.5, m, name)[0]
    assert abs(np.mean(x) - K3) <= 4 * np.std(x) / np.sqrt(n)


@pytest.mark.parametrize(("case", "name"), [("hidden-ce", "tanh"), ("hidden-mse", "gelu")])
def test_fixed_C_limits_approach_the_constants(case, name):
    """frobenius_limits(..., activation=) at C = 2000 (m = 8) against A C^-p: F_diag within 4 SE
    + 2 %, F_off within 4 SE + 5 % (the O(C^-1/2) approach, measured 1-3 % at C = 1000)."""
    C, m = 2000, 8
    lim = frobenius_limits(case, C, 0.5, m, activation=name, samples=200, inner=128, seed=1)
    c = asymptotic_constants(case, 0.5, m, activation=name)
    assert c.activation == name
    for q, A, p, rel in (("F_diag", c.A_diag, c.p_diag, 0.02), ("F_off", c.A_off, c.p_off, 0.05)):
        pred = A * C ** (-p)
        assert abs(getattr(lim, q) - pred) <= 4 * getattr(lim, q + "_se") + rel * pred, q


def test_refusals():
    with pytest.raises(ValueError, match="m must be > 2 sigma"):
        asymptotic_constants("hidden-ce", 0.5, 2, activation="gelu")
    assert asymptotic_constants("hidden-ce", 0.5, 2, activation="tanh").A_off > 0  # bounded
    assert asymptotic_constants("hidden-mse", 0.5, 2, activation="gelu").p_diag == -2.0
    with pytest.raises(ValueError, match="inputs does not apply"):
        stats = input_stats(np.random.default_rng(0).standard_normal((200, 40)))
        asymptotic_constants("hidden-ce", 0.5, 8, activation="tanh", inputs=stats)
    with pytest.raises(ValueError, match="normal init"):
        asymptotic_constants("hidden-ce", 0.5, 8, activation="tanh", init="torch-default")
    with pytest.raises(ValueError, match="activation does not apply"):
        asymptotic_constants("linear-ce", 0.5, activation="tanh")
