"""Outer-expectation machinery of :mod:`rmthess.theory.hidden_quadrature`.

Given the sign pattern of ``(g, g')`` (``K = |S|``, ``K' = |S'|``, ``J = |S and S'|``), with
``h = sigma a`` (``a`` half-normal on its support): ``|a| = chi ~ chi_K``, the share of
``|a|`` on ``J`` is ``tau = sqrt(t)``, ``t ~ Beta(J/2, (K-J)/2)``, and the directions of
``a_J, a'_J`` are independent, uniform on the positive orthant of ``S^{J-1}``, with cosine
``c``; all independent. The Gram of ``(h, h')`` is then ``sigma^2 (chi^2, chi'^2, chi chi'
rho)`` with ``rho = tau tau' c``.

Functions of ``rho`` are integrated exactly when polynomial of degree <= N: each of the
three factors gets an interpolatory quadrature on N+1 Chebyshev-Lobatto points of [0, 1]
built from its exact shifted-Chebyshev moments (``c``: monomial moments from the
half-normal generating function ``E[(a.b)^n a_0^al b_0^be] = n! [x^n] S_al,be(x)
S(x)^{J-1}``, ``S_al,be(x) = sum_k mu_{k+al} mu_{k+be} x^k/k!``, converted in mpmath;
``tau``: Gauss-Jacobi), and the product is composed through Chebyshev coefficients
(``lambda -> E_c[T*_n(lambda c)]`` is a polynomial of degree n in ``lambda``).
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import mpmath as mp
import numpy as np
from scipy.special import gammaln, roots_jacobi

from rmthess.theory.relu_gram import (
    abs_moment,
    chi_moment,
    lagrange_basis,
    orthant_series,
    series_mul,
)

__all__ = [
    "lobatto",
    "cheb_to_lagrange",
    "chi_weights",
    "c_moments",
    "tau_moments",
    "compose",
    "cheb_T",
]


def lobatto(n: int, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """``n + 1`` Chebyshev-Lobatto points of ``[lo, hi]``, increasing."""
    x = -np.cos(np.pi * np.arange(n + 1) / n) if n > 0 else np.zeros(1)
    return lo + (hi - lo) * (x + 1) / 2


def cheb_T(n: int, x: np.ndarray) -> np.ndarray:
    """``T*_k(x) = T_k(2x - 1)`` for k = 0..n at ``x`` in [0, 1]: shape (len(x), n+1)."""
    y = 2 * np.asarray(x, dtype=float) - 1
    out = np.empty((y.size, n + 1))
    out[:, 0] = 1.0
    if n >= 1:
        out[:, 1] = y
    for k in range(2, n + 1):
        out[:, k] = 2 * y * out[:, k - 1] - out[:, k - 2]
    return out


@lru_cache(maxsize=32)
def cheb_to_lagrange(n: int) -> np.ndarray:
    """``B[i, k]``: the Lagrange basis ``l_i`` on the Lobatto points is ``sum_k B[i,k] T*_k``.

    Also: interpolatory quadrature weights from Chebyshev moments ``chi`` are ``B @ chi``.
    """
    x = lobatto(n)
    T = cheb_T(n, x)  # T[i, k] = T*_k(x_i)
    ck = np.ones(n + 1)
    ck[0] = ck[-1] = 2.0
    return (2.0 / n) * T / ck[None, :] / ck[:, None]


@lru_cache(maxsize=8)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def chi_weights(
    K: int,
    e: int,
    kappa: float,
    nodes: np.ndarray,
    interval=None,
    n_quad: int = 600,
    log_var: bool = False,
) -> np.ndarray:
    """``E[chi^e l_i(kappa chi); kappa chi in interval]``, ``chi ~ chi_K``, ``l_i`` the
    Lagrange basis on ``nodes`` (``interval`` defaults to ``[nodes[0], nodes[-1]]``), in
    the variable ``a`` or, with ``log_var``, in ``t = log(1 + a/kappa)``. Cached (the
    weights do not depend on C)."""
    nodes = np.asarray(nodes, dtype=float)
    lo_a, hi_a = (nodes[0], nodes[-1]) if interval is None else interval
    key = (float(kappa), nodes.tobytes(), float(lo_a), float(hi_a), int(n_quad), bool(log_var))
    return _chi_weights(int(K), int(e), key)


@lru_cache(maxsize=256)
def _chi_basis(key: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kappa, nb, lo_a, hi_a, n_quad, log_var = key
    nodes = np.frombuffer(nb, dtype=float)
    lo, top = lo_a / kappa, hi_a / kappa
    x, w = _leggauss(n_quad)
    r = lo + (top - lo) * (x + 1) / 2
    if log_var:
        L = lagrange_basis(np.log1p(nodes / kappa), np.log1p(r))
    else:
        L = lagrange_basis(nodes, kappa * r)
    return r, w * (top - lo) / 2, L


@lru_cache(maxsize=16384)
def _chi_weights(K: int, e: int, key: tuple) -> np.ndarray:
    kappa, nb, lo_a, hi_a, n_quad, log_var = key
    nodes = np.frombuffer(nb, dtype=float)
    if K == 0:
        if lo_a > 0:
            out = np.zeros(nodes.size)
        else:
            x = np.log1p(nodes / kappa) if log_var else nodes
            out = lagrange_basis(x, np.zeros(1))[0] * (1.0 if e == 0 else 0.0)
    else:
        r, ww, L = _chi_basis(key)
        logpdf = (K - 1 + e) * np.log(r) - r * r / 2 - (K / 2 - 1) * math.log(2) - gammaln(K / 2)
        out = (ww * np.exp(logpdf)) @ L
    out.setflags(write=False)
    return out


@lru_cache(maxsize=65536)
def _echi_at(J: int, n, dps: int):
    with mp.workdps(dps):
        return chi_moment(J, n)


def _echi(J: int, n):
    return _echi_at(J, n, mp.mp.dps)


@lru_cache(maxsize=1024)
def _series_at(al: int, be: int, N: int, dps: int) -> tuple:
    with mp.workdps(dps):
        mu = [abs_moment(k) for k in range(N + 1 + max(al, be))]
        return tuple(mu[k + al] * mu[k + be] / mp.factorial(k) for k in range(N + 1))


def _series(al: int, be: int, N: int):
    return list(_series_at(al, be, N, mp.mp.dps))


@cache
def _T_coeffs(N: int, dps: int):
    """Monomial coefficients of T*_k(c), k <= N (exact integers as mpf)."""
    with mp.workdps(dps):
        rows = [[mp.mpf(1)] + [mp.mpf(0)] * N]
        if N >= 1:
            rows.append([mp.mpf(-1), mp.mpf(2)] + [mp.mpf(0)] * (N - 1))
        for k in range(2, N + 1):
            p, q = rows[k - 1], rows[k - 2]
            rows.append([2 * ((2 * p[i - 1] if i else 0) - p[i]) - q[i] for i in range(N + 1)])
        return rows


N_CAP = 12
"""Moments are computed (and cached) up to degree ``max(N, N_CAP)`` and sliced: the
moment of degree n does not depend on N, so every level of the ladder shares them."""


def c_moments(J: int, tilt: tuple, N: int) -> np.ndarray:
    """Shifted-Chebyshev moments ``E[prod u_k^{al_k} u'_k^{be_k} T*_n(c)]``, n <= N.

    ``tilt = ((al_0, be_0), (al_1, be_1), ...)``: powers of distinguished coordinates of the
    two directions (``len(tilt) <= J``); ``c = u . u'``.
    """
    return _c_moments_at(J, tilt, max(N, N_CAP))[: N + 1]


@lru_cache(maxsize=16384)
def _c_moments_at(J: int, tilt: tuple, N: int) -> np.ndarray:
    dps = 30 + int(0.8 * N)
    with mp.workdps(dps):
        ser = list(orthant_series(J - len(tilt), N, dps))
        ea = sum(t[0] for t in tilt)
        eb = sum(t[1] for t in tilt)
        for al, be in tilt:
            ser = series_mul(ser, _series(al, be, N), N)
        mono = [
            ser[n] * mp.factorial(n) / (_echi(J, n + ea) * _echi(J, n + eb)) for n in range(N + 1)
        ]
        T = _T_coeffs(N, dps)
        out = np.array(
            [float(mp.fsum(T[k][n] * mono[n] for n in range(k + 1))) for k in range(N + 1)]
        )
    out.setflags(write=False)
    return out


def tau_moments(K: int, J: int, e: int, N: int) -> np.ndarray:
    """``E[tau^e T*_n(tau)]``, ``tau^2 ~ Beta(J/2, (K-J)/2)`` (``tau = 1`` if K = J)."""
    return _tau_moments_at(K, J, e, max(N, N_CAP))[: N + 1]


@lru_cache(maxsize=65536)
def _tau_moments_at(K: int, J: int, e: int, N: int) -> np.ndarray:
    if K == J:
        one = np.ones(N + 1)
        one.setflags(write=False)
        return one
    b1 = (K - J) / 2
    n = N // 2 + 40
    x, w = roots_jacobi(n, b1 - 1, J - 1 + e)  # weight (1-x)^(b1-1) (1+x)^(J-1+e)
    tau = (1 + x) / 2
    # density 2 tau^(J-1) (1 - tau^2)^(b1-1) / B(J/2, b1); (1-tau^2) = (1-tau)(1+tau)
    lognorm = math.log(2) - (gammaln(J / 2) + gammaln(b1) - gammaln(J / 2 + b1))
    lognorm -= (b1 - 1 + J - 1 + e + 1) * math.log(2)
    ww = w * np.exp(lognorm) * (1 + tau) ** (b1 - 1)
    out = ww @ cheb_T(N, tau)
    out.setflags(write=False)
    return out


def compose(N: int, outer_moments: np.ndarray) -> np.ndarray:
    """``Z[n, p]``: ``E[T*_n(lambda X)] = sum_p Z[n, p] T*_p(lambda)`` for X with the given
    Chebyshev moments (exact for degree <= N)."""
    B = cheb_to_lagrange(N)
    w = B @ outer_moments  # quadrature weights on the Lobatto points
    x = lobatto(N)
    lam = lobatto(N)
    vals = np.einsum(
        "q,rqn->nr", w, cheb_T(N, np.outer(lam, x).ravel()).reshape(N + 1, N + 1, N + 1)
    )
    # values at the lambda Lobatto points -> Chebyshev coefficients
    return vals @ cheb_to_lagrange(N)


def gauss_from_cheb_moments(nu: np.ndarray, n: int) -> np.ndarray:
    """Nodes of the n-point Gauss rule on [0, 1] from the shifted-Chebyshev moments
    ``nu[k] = int T*_k dmu`` (k < 2n), by Gautschi's modified Chebyshev algorithm."""
    scale = np.array([1.0] + [2.0 ** (1 - 2 * k) for k in range(1, 2 * n)])
    mom = nu[: 2 * n] * scale  # moments of the monic shifted Chebyshev polynomials
    a = np.full(2 * n, 0.5)
    b = np.array([0.0, 1 / 8] + [1 / 16] * (2 * n - 2))
    alpha = np.zeros(n)
    beta = np.zeros(n)
    prev = np.zeros(2 * n)
    cur = mom.copy()
    alpha[0] = a[0] + mom[1] / mom[0]
    beta[0] = mom[0]
    for k in range(1, n):
        new = np.zeros(2 * n)
        for l in range(k, 2 * n - k):
            new[l] = (
                cur[l + 1]
                - (alpha[k - 1] - a[l]) * cur[l]
                - beta[k - 1] * prev[l]
                + b[l] * cur[l - 1]
            )
        alpha[k] = a[k] + new[k + 1] / new[k] - cur[k] / cur[k - 1]
        beta[k] = new[k] / cur[k - 1]
        prev, cur = cur, new
    Jm = np.diag(alpha) + np.diag(np.sqrt(beta[1:]), 1) + np.diag(np.sqrt(beta[1:]), -1)
    return np.sort(np.linalg.eigvalsh(Jm))


def lagrange_to_cheb(nodes: np.ndarray) -> np.ndarray:
    """``beta[i, p]``: the Lagrange basis on ``nodes`` (degree n = len - 1) is
    ``l_i = sum_p beta[i, p] T*_p``."""
    n = nodes.size - 1
    L = lagrange_basis(nodes, lobatto(n))  # L[q, i] = l_i(x_q)
    return L.T @ cheb_to_lagrange(n)
