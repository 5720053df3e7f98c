"""``activation=`` through the theory's faces (issue 20): frobenius_limits for hidden-* and
output-*, the block weight laws and limiting laws, output_block_limit, the registry.

Independent routes: the Gram quadrature (ReLU output-ce), plain pseudo-random Monte Carlo
against the quasi-Monte-Carlo laws, sample averages of ``phi(g) phi(g)^T`` against the
closed form of the Gaussian moments, and depth_frobenius' own Monte Carlo (another loop,
another stream) against output-mse's closed form. The simulated blocks are compared in
tests/simulate/test_activation_sim.py.
"""

import numpy as np
import pytest

from rmthess.activations import ACTIVATIONS
from rmthess.cases import REGISTRY, cases_where, get_case
from rmthess.theory import (
    InputStats,
    block_weight_law,
    depth_frobenius,
    frobenius_limits,
    limiting_law,
    output_block_limit,
)
from rmthess.theory.activation_hidden import activation_weights


def test_registry_says_which_cases_take_an_activation():
    assert cases_where(has_activation=True) == (
        "hidden-mse", "hidden-ce", "output-mse", "output-ce",
    )  # fmt: skip
    for c in REGISTRY.values():
        assert c.to_dict()["has_activation"] == (c.model == "hidden")
        assert c.check_activation("relu") == "relu"
    assert get_case("output-mse").activation_method == "closed-form"
    with pytest.raises(ValueError, match="activation does not apply"):
        get_case("linear-mse").check_activation("tanh")
    with pytest.raises(ValueError, match="activation"):
        get_case("hidden-ce").check_activation("swish")


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "softplus"])
def test_output_mse_closed_form(name):
    """F_diag = m M2^2 + m(m-1) M1^4 (sigma = 1.3) against depth_frobenius' Monte Carlo of the
    output layer (4 SE); ReLU's equals the paper's closed form (1e-12)."""
    m, C = 5, 4
    r = frobenius_limits("output-mse", C, 0.5, m, init=1.3, activation=name)
    assert r.method == "closed-form" and r.F_off == 0.0
    mc = depth_frobenius("mse", C, 0.5, (m,), name, init=1.3, samples=300, inner=256, seed=4)
    assert abs(mc.F_diag[1] - r.F_diag) <= 4 * mc.F_diag_se[1]
    if name == "relu":
        s4 = 1.3**4
        ref = s4 * (m / 4 + m * (m - 1) / (4 * np.pi**2))
        assert r.F_diag == pytest.approx(ref, rel=1e-12)


def test_output_ce_relu_route_matches_quadrature():
    """activation_frobenius' output-ce Monte Carlo at ReLU vs the Gram quadrature (4 SE)."""
    from rmthess.theory import activation_frobenius

    mc = activation_frobenius("output-ce", 6, 0.5, 5, "relu", samples=600, seed=2)
    q = frobenius_limits("output-ce", 6, 0.5, 5)
    for k in ("F_diag", "F_off"):
        assert abs(getattr(mc, k) - getattr(q, k)) <= 4 * getattr(mc, k + "_se"), k


def test_relu_is_the_default_bit_for_bit_and_options_are_refused():
    a = frobenius_limits("hidden-mse", 5, 0.5, 4)
    b = frobenius_limits("hidden-mse", 5, 0.5, 4, activation="relu")
    assert a.to_dict() == b.to_dict()
    assert frobenius_limits("hidden-mse", 5, 0.5, 4, activation="tanh", samples=40).activation == (
        "tanh"
    )
    stats = InputStats.from_spectrum(np.ones(64))
    for kw in ({"method": "quadrature"}, {"tol": 1e-5}, {"inputs": stats}):
        with pytest.raises(ValueError, match="does not apply with activation"):
            frobenius_limits("hidden-ce", 5, 0.5, 4, activation="tanh", **kw)
    with pytest.raises(ValueError, match="activation does not apply"):
        frobenius_limits("linear-ce", 5, 0.5, activation="tanh")
    x1, w1 = block_weight_law("hidden-ce", "off", 5, 0.5, 4)
    x2, w2 = block_weight_law("hidden-ce", "off", 5, 0.5, 4, activation="relu")
    assert np.array_equal(x1, x2) and np.array_equal(w1, w2)


@pytest.mark.parametrize("case", ["hidden-ce", "hidden-mse"])
@pytest.mark.parametrize(("name", "block"), [("tanh", "diag"), ("sigmoid", "off")])
def test_weight_law_moments_match_plain_monte_carlo(case, name, block):
    """The QMC law's E[a], E[a^2] given V vs 400 000 pseudo-random draws of (g, y) (4 SE)."""
    C, m = 5, 6
    V = np.random.default_rng(1).standard_normal((C, m)) / np.sqrt(m)
    atoms, w = block_weight_law(case, block, C, 0.5, m, V=V, n_atoms=2**14, activation=name)
    assert w.sum() == pytest.approx(1.0)
    gen = np.random.default_rng(9)
    n = 400_000
    cols = np.array([0 if block == "diag" else 1])
    a = activation_weights(
        gen.standard_normal((n, m)), gen.integers(0, C, n), V, case.split("-")[1],
        ACTIVATIONS[name], np.array([0]), cols,
    )[:, 0]  # fmt: skip
    for k in (1, 2):
        se = np.std(a**k) / np.sqrt(n)
        assert abs(np.sum(w * atoms**k) - np.mean(a**k)) <= 4 * se + 1e-12, k
    if block == "diag":
        assert atoms.min() < 0 < atoms.max()  # the phi'' term: a signed law
    law = limiting_law(case, block, C, 0.5, m, V=V, n_atoms=2**12, activation=name)
    assert law.moment(1) == pytest.approx(np.sum(w * atoms), rel=0.05, abs=1e-6)


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_output_block_limit(name):
    """output-mse's exact M = M2 I + M1^2 (1 - I) and output-ce's QMC block vs sample means
    of phi(g) phi(g)^T (times the CE weight) over 400 000 draws (4 SE)."""
    from scipy.special import softmax

    C, m, sigma = 4, 3, 1.2
    act = ACTIVATIONS[name]
    gen = np.random.default_rng(3)
    g = gen.standard_normal((400_000, m)) * sigma
    h = act.phi(g)
    M = output_block_limit("output-mse", "diag", C, m, init=sigma, activation=name)
    hh = h[:, :, None] * h[:, None, :]
    se = hh.std(axis=0) / np.sqrt(len(h))
    assert np.all(np.abs(M - hh.mean(axis=0)) <= 4 * se + 1e-12)
    V = gen.standard_normal((C, m)) / np.sqrt(m) * sigma
    B = output_block_limit("output-ce", "off", C, m, V=V, init=sigma, n_samples=2**15,
                           activation=name)  # fmt: skip
    p = softmax(h @ V.T, axis=1)
    x = -(p[:, 0] * p[:, 1])[:, None, None] * hh
    assert np.all(np.abs(B - x.mean(axis=0)) <= 4 * x.std(axis=0) / np.sqrt(len(h)) + 1e-12)
    with pytest.raises(ValueError, match="activation"):
        output_block_limit("output-ce", "off", C, m, activation="swish")
