"""Exact fixed-C limits of output-ce by deterministic quadrature (docs/theory.md section 4).

``F_off = E[(h.h')^2 p_k p_l p'_k p'_l]`` (``k != l``) and ``F_diag = E[(h.h')^2 p_k (1 -
p_k) p'_k (1 - p'_k)]``, where ``g, g'`` are independent (``E_V[||E_g[a h h^T | V]||^2] =
E[a(V, g) a(V, g') (h.h')^2]`` with ``g'`` an independent copy: no nested expectation).
Given ``(h, h')`` the conditional expectations depend on the Gram matrix only, through the
logit scales ``a = s |h|``, ``b = s |h'|`` (``s^2 = sigma^2/m``, the variance of an entry of
V) and the correlation ``rho = h.h' / (|h| |h'|)``; writing ``p_k (1 - p_k) = sum_{c != k}
p_k p_c``,

    E[p_k p_l p'_k p'_l | Gram] = I2,
    E[p_k(1-p_k) p'_k(1-p'_k) | Gram] = (C-1) I2 + (C-1)(C-2) I3

with ``I2, I3`` of :func:`rmthess.theory.ce_inner.output_inner`. The outer expectation is
over the Gram law of two ReLU vectors (:mod:`rmthess.theory.relu_gram`): the sign pattern
``(K, K', J)``, ``|h| = sigma chi_K``, ``|h'| = sigma chi_K'`` and ``rho = tau tau' c``, all
independent given the pattern. ``I2, I3`` are interpolated on a tensor Chebyshev grid in
``a, b`` on ``[0, a_max]`` and in ``sqrt(1 - rho)`` on [0, 1] (they are analytic in ``a``;
in ``rho`` they are smooth but not analytic at ``rho = 1``, and the variable
``sqrt(1 - rho)`` restores fast convergence). The expectation of a product of Chebyshev
polynomials then factorizes: ``sum_ijk c_ijk E[chi^2 T_i | K] E[chi'^2 T_j | K']
E[rho^2 T_k | pattern]``.

Interpolation nodes: the Gauss nodes of the marginal law of ``chi`` (weighted by
``chi^2``) and of ``sqrt(1 - rho)`` (weighted by ``rho^2``, over all patterns), so that
they sit where the mass is; the expectations of the Lagrange basis polynomials under each
pattern's law come from Gauss-Legendre nodes in ``chi`` on ``[0, chi_max]`` (``chi_max``:
the ``chi^2_{m+4}`` quantile of the level's tail probability) and the product rules in
``(tau, tau', c)``.

Error control: every step converges geometrically in its resolution parameter (the
angular rules sub-geometrically near ``rho = 1``, where the integrand is smooth but not
analytic). The value is computed on a ladder of resolutions (:data:`LEVELS`) until two
successive levels agree to ``tol``; the error estimate is their difference and the finer
value is returned. Cost: ``n_a (n_a + 1) / 2 * n_s`` inner integrals per level (about
1 ms each at m >= 8, up to 10 ms for the wide logit scales of m = 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import gammaln, roots_legendre
from scipy.stats import chi2

from rmthess.theory.ce_inner import output_inner
from rmthess.theory.relu_gram import (
    cosine_rule,
    discrete_gauss,
    lagrange_basis,
    patterns,
    tau_rule,
)

__all__ = ["Resolution", "LEVELS", "FLOOR", "QuadratureResult", "output_ce_quadrature"]


@dataclass(frozen=True)
class Resolution:
    """Resolution of one evaluation (see the module docstring)."""

    n_a: int  # Chebyshev nodes in each logit scale
    n_s: int  # Chebyshev nodes in sqrt(1 - rho)
    n_w: int  # Gauss nodes in each of tau, tau', c
    tail: float  # chi-square tail probability left out (sets a_max)
    hu: float = 0.35  # trapezoid step of the (u, v) integrals
    xstep: float = 0.4  # trapezoid step (times the scale) of the Gaussian averages


LEVELS = (
    Resolution(8, 8, 8, 1e-10, 0.45, 0.5),
    Resolution(10, 10, 10, 1e-12, 0.4, 0.45),
    Resolution(12, 12, 12, 1e-13, 0.35, 0.4),
    Resolution(16, 14, 14, 1e-15, 0.3, 0.35),
    Resolution(20, 18, 18, 1e-16, 0.28, 0.3),
)
"""The resolution ladder: :func:`output_ce_quadrature` climbs it until two successive
levels agree to ``tol``."""
FLOOR = 3e-8
"""Smallest relative error estimate reported. The levels share fixed parts (Gaussian
nodes on [-9, 9], the u-range cut at 1e-17 of the peak, 240 radial nodes) whose error is
near 1e-8 relative: below that, the change between two levels is not a bound (measured:
m = 3, C = 5, F_diag changed by 5.4e-9 while its error was 8.2e-9)."""


def _chi_max(m: int, tail: float) -> float:
    return float(math.sqrt(chi2.isf(tail, m + 4)))


def _radial(m: int, x_max: float, n_q: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes ``x`` on ``[0, x_max]`` and ``R[K, q]``: weights of
    ``E[chi_K^2 F(chi_K)] ~ sum_q R[K, q] F(x_q)`` for K = 0..m (row 0 unused)."""
    y, w = roots_legendre(n_q)
    x = (y + 1.0) * (x_max / 2.0)
    w = w * (x_max / 2.0)
    R = np.zeros((m + 1, n_q))
    for K in range(1, m + 1):
        logd = (K + 1) * np.log(x) - 0.5 * x * x - (K / 2 - 1) * math.log(2) - gammaln(K / 2)
        R[K] = w * np.exp(logd)
    return x, R


def _padded_tau(K: int, J: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tau_rule` padded to ``n`` nodes (the one-node rule of ``K == J`` repeated)."""
    t, w = tau_rule(K, J, n)
    if t.size == n:
        return t, w
    return np.full(n, t[0]), np.full(n, w[0] / n)


def _pattern_atoms(m: int, n_w: int):
    """Per value of J: ``(K, K', P, rho, weight)`` arrays of the product rules in
    ``(tau, tau', c)`` of its patterns (``rho``, ``weight``: shape (patterns, atoms))."""
    KKJ, P = patterns(m)
    out = []
    for J in np.unique(KKJ[:, 2]):
        sel = KKJ[:, 2] == J
        K, Kp = KKJ[sel, 0], KKJ[sel, 1]
        c, wc = cosine_rule(int(J), n_w)
        t1 = np.array([_padded_tau(int(k), int(J), n_w) for k in K])  # (p, 2, n_w)
        t2 = np.array([_padded_tau(int(k), int(J), n_w) for k in Kp])
        rho = t1[:, 0, :, None, None] * t2[:, 0, None, :, None] * c[None, None, None, :]
        wt = t1[:, 1, :, None, None] * t2[:, 1, None, :, None] * wc[None, None, None, :]
        n = rho[0].size
        out.append((K, Kp, P[sel], rho.reshape(-1, n), wt.reshape(-1, n)))
    return out


def _s_nodes(atoms, n_s: int, bins: int = 4000) -> np.ndarray:
    """Interpolation nodes in ``s = sqrt(1 - rho)``: the Gauss nodes of the law of s
    weighted by ``rho^2``, binned on a fine grid with each bin's mass at its mean (only
    the node positions matter, and a law with few atoms keeps them exactly)."""
    hist, first = np.zeros(bins), np.zeros(bins)
    for _, _, p, rho, wt in atoms:
        s = np.sqrt(np.maximum(1.0 - rho, 0.0))
        idx = np.minimum((s * bins).astype(int), bins - 1)
        mass = p[:, None] * wt * rho * rho
        np.add.at(hist, idx, mass)
        np.add.at(first, idx, mass * s)
    used = hist > 0
    centers = first[used] / hist[used]  # each bin's mass at its mean (exact for one atom)
    return discrete_gauss(centers, hist[used], n_s)[0]


def _inner_table(C: float, a: np.ndarray, rho: np.ndarray, res: Resolution):
    """``I2, I3`` on the grid ``a x a x rho``, symmetric in the two scales."""
    n_a, n_s = a.size, rho.size
    I2 = np.empty((n_a, n_a, n_s))
    I3 = np.empty_like(I2)
    for i in range(n_a):
        for j in range(i, n_a):
            for k in range(n_s):
                v = output_inner(a[i], a[j], rho[k], C, hu=res.hu, xstep=res.xstep)
                I2[i, j, k] = I2[j, i, k] = v[0]
                I3[i, j, k] = I3[j, i, k] = v[1]
    return I2, I3


@lru_cache(maxsize=32)
def _radial_table(m: int, tail: float, n_a: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation nodes in ``chi`` and ``alpha[K, i] = E[chi_K^2 l_i(chi_K)]`` (cached:
    they depend on ``(m, tail, n_a)`` only, not on C or sigma)."""
    x_max = _chi_max(m, tail)
    xq, R = _radial(m, x_max)
    k = np.arange(m + 1.0)
    # Bin(m, 1/2)
    pK = np.exp(gammaln(m + 1.0) - gammaln(k + 1.0) - gammaln(m + 1.0 - k) - m * math.log(2))
    chi_nodes = discrete_gauss(xq, pK @ R, n_a)[0]
    alpha = R @ lagrange_basis(chi_nodes, xq)  # (m+1, n_a)
    chi_nodes.flags.writeable = alpha.flags.writeable = False
    return chi_nodes, alpha


@lru_cache(maxsize=32)
def _angular_table(m: int, n_s: int, n_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation nodes in ``s = sqrt(1 - rho)`` and ``B[K, K', k] = sum_J P(K, K', J)
    E[rho^2 l_k(s) | K, K', J]`` (cached: they depend on ``(m, n_s, n_w)`` only)."""
    atoms = _pattern_atoms(m, n_w)
    s_nodes = _s_nodes(atoms, n_s)
    B = np.zeros((m + 1, m + 1, s_nodes.size))
    for K, Kp, p, rho, wt in atoms:
        L = lagrange_basis(s_nodes, np.sqrt(np.maximum(1.0 - rho, 0.0)))  # (p, atoms, n_s)
        np.add.at(B, (K, Kp), p[:, None] * np.einsum("pa,pak->pk", wt * rho * rho, L))
    s_nodes.flags.writeable = B.flags.writeable = False
    return s_nodes, B


def _output_ce_once(C: float, m: int, sigma: float, res: Resolution) -> tuple[float, float]:
    chi_nodes, alpha = _radial_table(m, res.tail, res.n_a)
    s_nodes, B = _angular_table(m, res.n_s, res.n_w)
    G = np.einsum("Ki,Lj,KLk->ijk", alpha, alpha, B)
    a = sigma * sigma * chi_nodes / math.sqrt(m)
    I2, I3 = _inner_table(C, a, 1.0 - s_nodes**2, res)
    s4 = sigma**4
    off = s4 * float(np.sum(I2 * G))
    diag = s4 * float(np.sum(((C - 1.0) * I2 + (C - 1.0) * (C - 2.0) * I3) * G))
    return diag, off


@dataclass(frozen=True)
class QuadratureResult:
    """``F_diag, F_off`` with error estimates (the change between the last two levels of
    the ladder, at least :data:`FLOOR` relative; checked against a reference two levels
    finer in tests/theory/test_ce_quadrature.py and validation/output_ce_quadrature.py),
    the level reached (index into :data:`LEVELS`) and whether ``tol`` was met."""

    F_diag: float
    F_off: float
    F_diag_err: float
    F_off_err: float
    level: int
    converged: bool


def output_ce_quadrature(
    C: float, m: int, sigma: float = 1.0, tol: float = 1e-6, levels=LEVELS
) -> QuadratureResult:
    """``F_diag, F_off`` of output-ce at fixed C (arguments validated by the caller).

    Climbs ``levels`` from the first two until the relative change of both values is at
    most ``tol`` (or the ladder ends: then ``converged`` is False). Runs with one BLAS
    thread (many small products).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        prev = _output_ce_once(C, m, sigma, levels[0])
        for k in range(1, len(levels)):
            cur = _output_ce_once(C, m, sigma, levels[k])
            errs = [max(abs(c - p), FLOOR * abs(c)) for c, p in zip(cur, prev, strict=True)]
            ok = all(e <= tol * abs(c) for e, c in zip(errs, cur, strict=True))
            if ok or k == len(levels) - 1:
                return QuadratureResult(cur[0], cur[1], errs[0], errs[1], k, ok)
            prev = cur
    raise AssertionError("unreachable")
