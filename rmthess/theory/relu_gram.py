"""Quadrature rules for the Gram matrix of two independent ReLU vectors.

For ``g, g'`` i.i.d. ``N(0, I_m)`` and ``h = relu(g)``, ``h' = relu(g')``, the Gram matrix
``(|h|^2, |h'|^2, h.h')`` has an exact product structure once the sign pattern is fixed
(docs/theory.md section 4, "Deterministic quadrature"):

- the pattern ``(K, K', J) = (|S|, |S'|, |S and S'|)``, ``S = {j: g_j > 0}``, is a
  multinomial draw (each coordinate falls in one of the four sign cells with probability
  1/4), :func:`patterns`;
- given the pattern, ``|h| = chi_K``, ``|h'| = chi_K'`` and ``w = h.h' / (|h| |h'|) =
  tau tau' c`` are independent, with ``tau^2 = |h_J|^2 / |h|^2 ~ Beta(J/2, (K-J)/2)``
  (:func:`tau_rule`), ``tau'`` likewise, and ``c`` the cosine between two independent
  uniform directions of the positive orthant of ``S^{J-1}`` (:func:`cosine_rule`).

The norm of a half-normal vector is independent of its direction, so the moments of ``c``
are closed form: ``E c^n = E[(a.b)^n] / (E chi_J^n)^2`` for i.i.d. half-normal ``a, b`` in
``R^J``, with ``E[(a.b)^n] = n! [x^n] (sum_k mu_k^2 x^k / k!)^J``, ``mu_k = E|N(0,1)|^k =
2^{k/2} Gamma((k+1)/2) / sqrt(pi)``. The Gauss rule of the law of ``c`` comes from these
moments by Gautschi's Chebyshev algorithm at high precision (mpmath; the Hankel matrix of
a law on [0, 1] loses about ``1.5 n`` digits). ``tau`` has the density
``tau^{J-1} (1 - tau^2)^{(K-J)/2 - 1}`` on [0, 1] and closed-form moments; its Gauss rule
comes from them the same way (a Gauss-Jacobi rule for the endpoint factor alone would
leave ``tau^{J-1}`` to the integrand: 1e-6 errors at J = 16 with 8 nodes).
These rules are checked against the moments in tests/theory/test_relu_gram.py.
"""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath as mp
import numpy as np
from scipy.linalg import eigh_tridiagonal
from scipy.special import gammaln

__all__ = [
    "patterns",
    "tau_rule",
    "cosine_rule",
    "cosine_moments",
    "discrete_gauss",
    "lagrange_basis",
]


def patterns(m: int, tiny: float = 1e-18) -> tuple[np.ndarray, np.ndarray]:
    """Sign patterns ``(K, K', J)`` with ``J >= 1`` and their probabilities.

    Returns ``(KKJ, P)``: an int array (n, 3) and the multinomial probabilities
    ``m! / (J! (K-J)! (K'-J)! (m-K-K'+J)!) 4^-m``. Patterns with ``J = 0`` (then
    ``h.h' = 0``) and those of probability below ``tiny`` are left out; ``P.sum()`` is
    ``1 - P(J = 0)`` up to the left-out mass.
    """
    rows, probs = [], []
    lf = gammaln(np.arange(m + 2) + 1.0)
    cut = math.log(tiny) if tiny > 0 else -math.inf
    for J in range(1, m + 1):
        for a in range(0, m - J + 1):  # K - J
            for b in range(0, m - J - a + 1):  # K' - J
                rest = m - J - a - b
                lp = lf[m] - lf[J] - lf[a] - lf[b] - lf[rest] - m * math.log(4.0)
                if lp > cut:
                    rows.append((J + a, J + b, J))
                    probs.append(math.exp(lp))
    return np.array(rows, dtype=int).reshape(-1, 3), np.array(probs)


@lru_cache(maxsize=4096)
def tau_rule(K: int, J: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule (``n`` nodes, weights summing to 1) of ``tau = sqrt(Beta(J/2, (K-J)/2))``,
    exact for polynomials in ``tau`` of degree ``2n - 1``; ``K == J`` gives the single
    node 1. From the moments ``E tau^k = Gamma((J+k)/2) Gamma(K/2) / (Gamma(J/2)
    Gamma((K+k)/2))`` by the Chebyshev algorithm at high precision.
    """
    if K == J:
        return np.ones(1), np.ones(1)
    with mp.workdps(40 + 2 * n):
        lead = mp.gamma(mp.mpf(K) / 2) / mp.gamma(mp.mpf(J) / 2)
        mom = [
            lead * mp.gamma(mp.mpf(J + k) / 2) / mp.gamma(mp.mpf(K + k) / 2) for k in range(2 * n)
        ]
        return _gauss_from_moments(mom, n)


def abs_moment(k: int) -> mp.mpf:
    """``mu_k = E|N(0,1)|^k = 2^{k/2} Gamma((k+1)/2) / sqrt(pi)`` (mpmath, current precision)."""
    return mp.power(2, mp.mpf(k) / 2) * mp.gamma(mp.mpf(k + 1) / 2) / mp.sqrt(mp.pi)


def chi_moment(J: int, n: int) -> mp.mpf:
    """``E chi_J^n = 2^{n/2} Gamma((J+n)/2) / Gamma(J/2)`` (mpmath, current precision)."""
    return mp.power(2, mp.mpf(n) / 2) * mp.gamma(mp.mpf(J + n) / 2) / mp.gamma(mp.mpf(J) / 2)


def series_mul(a, b, N: int) -> list:
    """Product of two power series truncated after the coefficient of ``x^N``."""
    return [mp.fsum(a[i] * b[k - i] for i in range(k + 1)) for k in range(N + 1)]


@lru_cache(maxsize=4096)
def orthant_series(J: int, N: int, dps: int) -> tuple:
    """Coefficients ``[x^n] S(x)^J``, ``n <= N``, ``S(x) = sum_k mu_k^2 x^k / k!``, at ``dps``
    digits: ``E[(a.b)^n] = n! [x^n] S(x)^J`` for i.i.d. half-normal ``a, b`` in ``R^J``
    (binary powering; shared by :func:`cosine_moments` and the tilted moments of
    :mod:`rmthess.theory.hidden_quadrature_moments`)."""
    with mp.workdps(dps):
        base = [abs_moment(k) ** 2 / mp.factorial(k) for k in range(N + 1)]
        poly = [mp.mpf(1)] + [mp.mpf(0)] * N
        e = J
        while e:
            if e & 1:
                poly = series_mul(poly, base, N)
            e >>= 1
            if e:
                base = series_mul(base, base, N)
        return tuple(poly)


@lru_cache(maxsize=512)
def cosine_moments(J: int, N: int) -> tuple:
    """``E c^n`` for ``n = 0..N-1`` as mpmath numbers (at the current precision)."""
    poly = orthant_series(J, N - 1, mp.mp.dps)
    return tuple(poly[n] * mp.factorial(n) / chi_moment(J, n) ** 2 for n in range(N))


def _gauss_from_moments(mom, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule of ``n`` nodes from the moments ``mom[0..2n-1]`` (Chebyshev algorithm)."""
    sig_prev = [mp.mpf(0)] * (2 * n)
    sig = list(mom[: 2 * n])
    alpha = [sig[1] / sig[0]]
    beta = [sig[0]]
    for k in range(1, n):
        new = [mp.mpf(0)] * (2 * n)
        for ell in range(k, 2 * n - k):
            new[ell] = sig[ell + 1] - alpha[k - 1] * sig[ell] - beta[k - 1] * sig_prev[ell]
        alpha.append(new[k + 1] / new[k] - sig[k] / sig[k - 1])
        beta.append(new[k] / sig[k - 1])
        sig_prev, sig = sig, new
    a = np.array([float(x) for x in alpha])
    b = np.array([float(mp.sqrt(x)) for x in beta[1:]])
    x, v = eigh_tridiagonal(a, b)
    w = v[0] ** 2
    return np.clip(x, 0.0, 1.0), w / w.sum()


@lru_cache(maxsize=512)
def cosine_rule(J: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule (``n`` nodes, weights summing to 1) of the cosine ``c`` of two
    independent uniform directions of the positive orthant of ``S^{J-1}``; ``J = 1`` gives
    the single node 1. Exact for polynomials in ``c`` of degree ``2n - 1``.
    """
    if J == 1:
        return np.ones(1), np.ones(1)
    with mp.workdps(40 + 2 * n):
        mom = cosine_moments(J, 2 * n)
        return _gauss_from_moments(mom, n)


def discrete_gauss(x: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule of ``n`` nodes of the discrete measure ``sum_i w_i delta_{x_i}`` (weights
    summing to 1): Lanczos on ``diag(x)`` from ``sqrt(w)`` with full reorthogonalization
    (stable for the few nodes used here)."""
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    keep = w > 0
    x, w = x[keep], w[keep] / w[keep].sum()
    n = min(n, np.unique(x).size)
    Q = np.zeros((n, x.size))
    q = np.sqrt(w)
    alpha, beta = np.zeros(n), np.zeros(max(n - 1, 0))
    for k in range(n):
        Q[k] = q
        r = x * q
        alpha[k] = r @ q
        r -= Q[: k + 1].T @ (Q[: k + 1] @ r)
        r -= Q[: k + 1].T @ (Q[: k + 1] @ r)
        if k + 1 < n:
            beta[k] = np.linalg.norm(r)
            q = r / beta[k]
    nodes, v = eigh_tridiagonal(alpha, beta)
    return nodes, v[0] ** 2


def lagrange_basis(nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``L[..., i] = l_i(x)``, the Lagrange basis polynomials of ``nodes`` at ``x``
    (barycentric form; exact 0/1 at the nodes)."""
    nodes = np.asarray(nodes, dtype=float)
    diff = nodes[:, None] - nodes[None, :]
    np.fill_diagonal(diff, 1.0)
    # the barycentric weights are scale-free: products of differences in units of a
    # quarter of the node span stay in range for many nodes
    scale = (nodes.max() - nodes.min()) / 4 if nodes.size > 1 else 1.0
    lam = 1.0 / np.prod(diff / scale, axis=1)
    x = np.asarray(x, dtype=float)
    d = x[..., None] - nodes
    hit = d == 0.0
    d[hit] = 1.0
    t = lam / d
    L = t / t.sum(axis=-1, keepdims=True)
    rows = hit.any(axis=-1)
    L[rows] = hit[rows].astype(float)
    return L
