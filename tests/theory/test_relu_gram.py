"""Quadrature rules of the Gram law of two ReLU vectors (rmthess.theory.relu_gram),
checked against closed forms and against sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln

from rmthess.theory.relu_gram import (
    cosine_rule,
    discrete_gauss,
    lagrange_basis,
    patterns,
    tau_rule,
)


@pytest.mark.parametrize("J", [2, 3, 5, 8, 32])
def test_cosine_rule_first_moment_closed_form(J):
    # E c = sum_j E[e_j]^2 with E e_1 = E|x_1| / E|x| (norm independent of direction)
    e_chi = math.sqrt(2) * math.exp(gammaln((J + 1) / 2) - gammaln(J / 2))
    want = J * (2 / math.pi) / e_chi**2
    x, w = cosine_rule(J, 12)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert w @ x == pytest.approx(want, rel=1e-13)


def test_cosine_rule_J2_second_moment():
    # J = 2: c = cos(alpha - alpha'), alpha ~ U[0, pi/2]: E c^2 = 1/2 + 2/pi^2
    x, w = cosine_rule(2, 10)
    assert w @ x**2 == pytest.approx(0.5 + 2 / math.pi**2, rel=1e-13)


@pytest.mark.parametrize("J", [2, 4, 16])
def test_cosine_rule_matches_sampling(J):
    rng = np.random.default_rng(J)
    a = np.abs(rng.standard_normal((400_000, J)))
    b = np.abs(rng.standard_normal((400_000, J)))
    c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    x, w = cosine_rule(J, 14)
    for k in (3, 7, 12):
        mc = c**k
        assert abs(w @ x**k - mc.mean()) < 4 * mc.std() / math.sqrt(c.size)


@pytest.mark.parametrize(("K", "J"), [(2, 1), (5, 2), (9, 4), (3, 3), (32, 16), (30, 29)])
def test_tau_rule_moments(K, J):
    # tau^2 ~ Beta(J/2, (K-J)/2): E tau^n = B((J+n)/2, (K-J)/2) / B(J/2, (K-J)/2)
    t, w = tau_rule(K, J, 12)
    for n in (1, 2, 5, 9, 23):  # exact up to degree 2 * 12 - 1
        if K == J:
            want = 1.0
        else:
            want = math.exp(
                gammaln((J + n) / 2) + gammaln(K / 2) - gammaln(J / 2) - gammaln((K + n) / 2)
            )
        assert w @ t**n == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("m", [1, 3, 8, 32])
def test_patterns_probabilities(m):
    KKJ, P = patterns(m, tiny=0.0)
    assert P.sum() == pytest.approx(1 - 0.75**m, rel=1e-12)  # P(J >= 1)
    assert np.all(KKJ[:, 2] >= 1) and np.all(KKJ[:, :2] >= KKJ[:, 2:])
    mean_J = (P * KKJ[:, 2]).sum()
    assert mean_J == pytest.approx(m / 4, rel=1e-12)  # E J = m/4 (J = 0 adds nothing)


def test_discrete_gauss_is_exact_for_polynomials():
    rng = np.random.default_rng(0)
    x, w = rng.random(500) * 3, rng.random(500)
    nodes, weights = discrete_gauss(x, w, 6)
    for k in range(12):
        assert weights @ nodes**k == pytest.approx((w @ x**k) / w.sum(), rel=1e-10)


def test_lagrange_basis_reproduces_polynomials():
    nodes = np.array([0.1, 0.5, 0.9, 1.7])
    x = np.linspace(-1, 3, 7)
    L = lagrange_basis(nodes, x)
    assert np.allclose(L @ nodes**3, x**3, atol=1e-12)
    assert np.allclose(lagrange_basis(nodes, nodes), np.eye(4))
