"""Fixed-C Frobenius limits of hidden-ce by deterministic quadrature (normal init).

Replaces the nested Monte Carlo of :func:`rmthess.theory.hidden_integrals.hidden_ce_mc`
(same definitions: ``V`` entries N(0, s^2), ``s^2 = sigma^2/m``, ``g ~ N(0, sigma^2 I_m)``,
``h = relu(g)``, ``p = softmax(V h)``, ``a_jl = [V^T (diag p - p p^T) V]_jl M_j M_l``):
``F_jl = gamma E[a_jl^2] + E[a_jl(g) a_jl(g')]``, ``F_diag = F_00``, ``F_off = F_01``.

Method.

1. Inner expectation over V at fixed ``(h, h')``. ``a`` is a sum over classes of products
   of softmax factors and of ``X_c = V_cj``, ``Y_c = V_cl``. Expanding the products of
   sums over set partitions of the class indices (distinct classes, counted by the falling
   factorial ``(C)_k``), and using ``1/S^n = Gamma(n)^{-1} int e^{nu} prod_c f(u + z_c) du``
   (``S = sum_c e^{z_c}``, ``f(x) = exp(-e^x)``), every term is
   ``(C)_k / (Gamma(n) Gamma(n')) int int prod_B E[X^i Y^k psi_q(u+z) psi_q'(v+z')]
   Phi(u, v)^{C-k} du dv`` with ``psi_q(x) = e^{qx} f(x)``, ``Phi = E[f(u+z) f(v+z')]``
   and per-class tuples ``(X, Y, z, z')`` i.i.d. Gaussian (``Cov(z, z') = s^2 Gram``,
   ``Cov(X, z) = s^2 h_j``, ``Cov(X, z') = s^2 h'_j``, ``Var X = s^2``, ``Cov(X, Y) = 0``).
   Gaussian integration by parts removes X and Y (``psi_q' = q psi_q - psi_{q+1}``): the
   result is a sum of monomials in ``(s^2, h_j, h'_j, h_l, h'_l)`` times integrals
   ``I_shape(a, b, rho)`` depending only on the Gram (``a^2 = s^2|h|^2``, ``b^2 =
   s^2|h'|^2``, ``rho`` = cosine), computed by the trapezoid rule: Gaussian expectations
   on grids of step ``0.4/scale``, (u, v) on a smoothly stretched grid (local step 0.25,
   0.2 for C <= 4, at the peak, growing exponentially to the left where the integrand
   decays like e^{nu}), ``Phi^{C-k} = exp((C-k) log1p(-(1-Phi)))`` with
   ``1 - f = -expm1(-e^x)`` (module :mod:`.hidden_quadrature_inner`). At large C the
   terms cancel to O(1/C) of their size, hence the small steps (1e-13 per term).

2. Outer expectation over ``(h, h')`` (module :mod:`.hidden_quadrature_moments`): the
   integrals are interpolated (Lagrange) on a tensor grid: in ``a`` and ``b`` on the Gauss
   nodes, in the variable ``t = log(1 + chi)``, of the law of ``chi = |h|/sigma`` (a chi
   mixture; interpolating in ``t`` rather than ``a`` needs 7 nodes where ``a`` needs 9
   at m = 8, C = 10), in ``rho`` on the Gauss nodes of the law of the cosine (from its
   exact Chebyshev moments, modified Chebyshev algorithm). The weights are exact
   expectations of the Lagrange basis times the coordinate monomials (``tau``, ``c``
   moments), summed over the sign patterns ``(K, K', J)``; they do not depend on C and
   are cached per m (the first call at a new m pays for them: about 3 s at m = 32).

The gamma term needs one Laplace variable and a 1-D grid in ``a``.
Accuracy: the resolution ladder :data:`LEVELS` (nodes in each direction and the two
steps refined together) is climbed until two successive levels agree to ``tol``; their
difference (at least ``FLOOR`` relative) is the error estimate of the finer one, checked
against references computed at much finer resolution in ``a`` (not ``t``) and against
the large-C constants (tests/theory/test_hidden_quadrature.py).
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import gammaln
from scipy.stats import chi as chi_dist

from rmthess._checks import check_float, check_int
from rmthess.theory import hidden_quadrature_moments as hm
from rmthess.theory.ce_quadrature import FLOOR
from rmthess.theory.hidden_quadrature_inner import (
    cross_integrals,
    expansion,
    mono_values,
    single_integrals,
)
from rmthess.theory.relu_gram import discrete_gauss

__all__ = ["hidden_ce_quadrature", "hidden_ce_conditional", "expansion", "Level", "LEVELS"]


def hidden_ce_conditional(C: float, h: np.ndarray, h2: np.ndarray, sigma: float = 1.0) -> dict:
    """``E_V[.]`` at fixed ``(h, h')`` for blocks (0, 0) and (0, 1), indicators taken as 1:
    keys ``diag_sq, off_sq`` (``E[a^2]`` at h) and ``diag_cross, off_cross`` (``E[a a']``)."""
    h = np.asarray(h, dtype=float)
    h2 = np.asarray(h2, dtype=float)
    m = h.size
    s2 = sigma**2 / m
    a = math.sqrt(s2 * (h @ h))
    b = math.sqrt(s2 * (h2 @ h2))
    nh = math.sqrt((h @ h) * (h2 @ h2))
    rho = min(1.0, float(h @ h2) / nh) if nh > 0 else 0.0
    Is = single_integrals(a, C)
    Ic = cross_integrals(a, b, rho, C)
    out = {}
    for name, diag, I, off in (
        ("diag_sq", True, Is, 0),
        ("off_sq", False, Is, len(expansion(True, False)[0])),
        ("diag_cross", True, Ic, 0),
        ("off_cross", False, Ic, len(expansion(True, True)[0])),
    ):
        cross = name.endswith("cross")
        shapes, monos, coef = expansion(diag, cross)
        l = 0 if diag else 1
        mv = mono_values(monos, s2, h[0], h2[0], h[l], h2[l])
        out[name] = float(I[off : off + len(shapes)] @ coef @ mv)
    return out


# ---------------------------------------------------------------- outer expectations
def _mu(k: int) -> float:
    """``E|N(0,1)|^k``."""
    return math.exp(k / 2 * math.log(2) + gammaln((k + 1) / 2)) / math.sqrt(math.pi)


def _echi(K: int, d: int) -> float:
    return math.exp(d / 2 * math.log(2) + gammaln((K + d) / 2) - gammaln(K / 2))


@lru_cache(maxsize=256)
def _a_nodes(m: int, sigma: float, n_a: int, eps: float = 1e-13, log_var: bool = False):
    """``(nodes, kappa, interval)``: ``n_a + 1`` Gauss nodes in ``a = kappa chi``
    (``kappa = sigma^2/sqrt(m)``) of the law of ``chi`` given one coordinate positive
    (mixture of ``chi_K``, K - 1 ~ Bin(m-1, 1/2)) weighted by ``1 + chi^2``, on the interval
    holding all but ``eps`` of it. Interpolation on these nodes integrates like a Gauss
    rule where the mass is, unlike Chebyshev points spread over the whole interval. With
    ``log_var`` the nodes are Gauss nodes in ``t = log(1 + chi)`` (the variable the
    ladder interpolates in: at m = 8, C = 10 it needs 7 nodes where ``a`` needs 9)."""
    kappa = sigma**2 / math.sqrt(m)
    K = np.arange(1, m + 1)
    wK = np.exp(gammaln(m) - gammaln(K) - gammaln(m - K + 1) - (m - 1) * math.log(2))
    x = np.linspace(0.0, float(chi_dist.isf(eps, m)) + 1.0, 4000)
    head = (wK[None, :] * chi_dist.cdf(x[:, None], K[None, :])).sum(axis=1)
    tail = (wK[None, :] * chi_dist.sf(x[:, None], K[None, :])).sum(axis=1)
    lo = x[max(0, int(np.argmax(head > eps)) - 1)]
    hi = x[min(x.size - 1, np.nonzero(tail > eps)[0].max() + 1)] + 0.5
    t, w = hm._leggauss(1500)
    r = lo + (hi - lo) * (t + 1) / 2
    dens = (wK[None, :] * chi_dist.pdf(r[:, None], K[None, :])).sum(axis=1) * (1 + r * r)
    if log_var:
        tn, _ = discrete_gauss(np.log1p(r), w * dens, n_a + 1)
        nodes = np.expm1(tn)
    else:
        nodes, _ = discrete_gauss(r, w * dens, n_a + 1)
    nodes = np.sort(kappa * nodes)
    nodes.setflags(write=False)
    return nodes, kappa, (kappa * lo, kappa * hi)


def _log_multinomial(n: int, ks: list[int]) -> float:
    return float(gammaln(n + 1) - sum(gammaln(k + 1) for k in ks))


def _gamma_part(C, m, sigma, n_a, hu, step, log_var=True) -> tuple[float, float]:
    """``(E[a_00^2], E[a_01^2])`` (sign indicators included)."""
    nodes, kappa, iv = _a_nodes(m, sigma, n_a, log_var=log_var)
    s2 = sigma**2 / m
    I = np.array([single_integrals(a, C, hu, step) for a in nodes])
    n_diag = len(expansion(True, False)[0])
    out = []
    for diag in (True, False):
        shapes, monos, coef = expansion(diag, False)
        Ik = I[:, :n_diag] if diag else I[:, n_diag:]
        Jm = Ik @ coef  # (n_a, n_mono)
        total = 0.0
        first = 1 if diag else 2
        for K in range(first, m + 1):
            pK = math.exp(_log_multinomial(m - first, [K - first, m - K]) - m * math.log(2))
            for t, mm in enumerate(monos):
                es, ej, _, el, _ = mm
                d = ej + el
                mom = _mu(d) if diag else _mu(ej) * _mu(el)
                w = hm.chi_weights(K, d, kappa, nodes, iv, log_var=log_var) / _echi(K, d)
                total += pK * s2**es * sigma**d * mom * float(w @ Jm[:, t])
        out.append(total)
    return out[0], out[1]


def _tilt(mm: tuple, diag: bool) -> tuple:
    _, ej, ej2, el, el2 = mm
    return ((ej + el, ej2 + el2),) if diag else ((ej, ej2), (el, el2))


def _cross_weights(
    m: int, diag: bool, tilt: tuple, nodes, kappa, N: int, iv=None, rhos=None, log_var=False
):
    """``W[i, k, n] = E[M tilt(h, h') l_i(a) l_k(b) l_n(rho)] / sigma^deg`` over patterns."""
    e = sum(t[0] for t in tilt)
    e2 = sum(t[1] for t in tilt)
    first = len(tilt)  # distinguished coordinates, all in J
    n_a = nodes.size
    R = {K: hm.chi_weights(K, e, kappa, nodes, iv, log_var=log_var) for K in range(first, m + 1)}
    R2 = {K: hm.chi_weights(K, e2, kappa, nodes, iv, log_var=log_var) for K in range(first, m + 1)}
    Y = _pattern_sum(m, tilt, N)
    B = hm.cheb_to_lagrange(N) if rhos is None else hm.lagrange_to_cheb(rhos)
    Y = Y @ B.T  # Chebyshev -> Lagrange basis in rho
    RK = np.zeros((m + 1, n_a))
    RK2 = np.zeros((m + 1, n_a))
    for K in range(first, m + 1):
        RK[K] = R[K]
        RK2[K] = R2[K]
    return np.einsum("Ki,KLn,Lk->ikn", RK, Y, RK2)


@lru_cache(maxsize=65536)
def _composed_tau(K: int, J: int, e: int, N: int) -> np.ndarray:
    return hm.compose(N, hm.tau_moments(K, J, e, N))


@lru_cache(maxsize=1024)
def _pattern_sum(m: int, tilt: tuple, N: int) -> np.ndarray:
    """``Y[K, K', n]``: sum over the sign patterns with ``|S| = K``, ``|S'| = K'`` (the
    distinguished coordinates in ``J``) of their probability times the Chebyshev moments
    of ``rho = tau tau' c`` tilted by the coordinate monomials (independent of C and of
    the a-nodes, hence cached)."""
    e = sum(t[0] for t in tilt)
    e2 = sum(t[1] for t in tilt)
    first = len(tilt)
    rest = m - first
    Y = np.zeros((m + 1, m + 1, N + 1))
    for J in range(first, m + 1):
        eta = hm.compose(N, hm.c_moments(J, tilt, N))
        Ks = np.arange(J, m + 1)
        mus = np.stack([hm.tau_moments(int(K), J, e, N) for K in Ks])  # (nK, N+1)
        zetas = np.stack([_composed_tau(int(K), J, e2, N) for K in Ks])  # (nK2, N+1, N+1)
        T = np.einsum("np,bpq,aq->abn", eta, zetas, mus)  # (K, K2, n)
        kk = Ks[:, None] - J
        kk2 = Ks[None, :] - J
        other = rest - (J - first) - kk - kk2
        ok = other >= 0
        lp = (
            gammaln(rest + 1)
            - gammaln(J - first + 1)
            - gammaln(kk + 1)
            - gammaln(kk2 + 1)
            - gammaln(np.maximum(other, 0) + 1)
            - m * math.log(4)
        )
        Y[J:, J:] += np.where(ok, np.exp(np.where(ok, lp, 0.0)), 0.0)[:, :, None] * T
    Y.setflags(write=False)
    return Y


def _swap_index() -> np.ndarray:
    """Permutation of the cross shapes under g <-> g' (``I(b, a) = I(a, b)[swap]``)."""
    out = []
    for diag in (True, False):
        shapes = expansion(diag, True)[0]
        pos = {sh: t for t, sh in enumerate(shapes)}
        base = 0 if diag else len(expansion(True, True)[0])
        for n, n2, bl in shapes:
            out.append(base + pos[(n2, n, tuple(sorted((q2, q) for q, q2 in bl)))])
    return np.array(out)


@lru_cache(maxsize=64)
def _rho_nodes(m: int, n: int) -> np.ndarray:
    """``n + 1`` Gauss nodes of the law of ``rho`` given coordinate 0 in J (all patterns)."""
    N = 2 * n + 1
    nu = np.zeros(N + 1)
    rest = m - 1
    for J in range(1, m + 1):
        eta = hm.compose(N, hm.c_moments(J, ((0, 0),), N))
        for K2 in range(J, m + 1):
            zm = eta @ hm.compose(N, hm.tau_moments(K2, J, 0, N))
            for K in range(J, m + 1 - (K2 - J)):
                ks = [J - 1, K - J, K2 - J, rest - (J - 1) - (K - J) - (K2 - J)]
                p = math.exp(_log_multinomial(rest, ks) - rest * math.log(4))
                nu += p * (zm @ hm.tau_moments(K, J, 0, N))
    return hm.gauss_from_cheb_moments(nu, n + 1)


def _cross_part(C, m, sigma, n_a, n_rho, hu, step, log_var=True) -> tuple[float, float]:
    """``(E[a_00(g) a_00(g')], E[a_01(g) a_01(g')])`` (sign indicators included)."""
    nodes, kappa, iv = _a_nodes(m, sigma, n_a, log_var=log_var)
    rhos = _rho_nodes(m, n_rho)
    s2 = sigma**2 / m
    n_sh = len(expansion(True, True)[0]) + len(expansion(False, True)[0])
    I = np.empty((n_a + 1, n_a + 1, n_rho + 1, n_sh))
    swap = _swap_index()
    for i, a in enumerate(nodes):
        for k in range(i + 1):
            I[i, k] = cross_integrals(a, nodes[k], rhos, C, hu, step)
            I[k, i] = I[i, k][:, swap]  # g <-> g'
    n_diag = len(expansion(True, True)[0])
    out = []
    for diag in (True, False):
        shapes, monos, coef = expansion(diag, True)
        Ik = I[..., :n_diag] if diag else I[..., n_diag:]
        Jm = Ik @ coef
        groups: dict = defaultdict(lambda: 0.0)
        for t, mm in enumerate(monos):
            deg = sum(mm[1:])
            groups[_tilt(mm, diag)] = (
                groups[_tilt(mm, diag)] + s2 ** mm[0] * sigma**deg * Jm[..., t]
            )
        total = 0.0
        for tilt, vals in groups.items():
            W = _cross_weights(m, diag, tilt, nodes, kappa, n_rho, iv, rhos, log_var)
            total += float(np.sum(W * vals))
        out.append(total)
    return out[0], out[1]


@dataclass(frozen=True)
class Level:
    """One resolution of :func:`hidden_ce_quadrature` (see the module docstring)."""

    n_a: int  # n_a + 1 Gauss nodes in each of t(a), t(b), t = log(1 + a/kappa)
    n_rho: int  # n_rho + 1 Gauss nodes in rho
    hu: float  # Laplace-variable step at the peak (x 0.8 when C <= 4)
    step: float  # Gaussian trapezoid step (in units of the argument)


LEVELS = (
    Level(6, 3, 0.38, 0.5),
    Level(8, 4, 0.33, 0.45),
    Level(10, 5, 0.29, 0.4),
    Level(12, 7, 0.25, 0.36),
    Level(14, 8, 0.22, 0.33),
    Level(16, 10, 0.2, 0.3),
)
"""The resolution ladder: :func:`hidden_ce_quadrature` climbs it until two successive
levels agree to ``tol``. The gamma term (one Laplace variable, cheap) runs at
``2 n_a + 4`` nodes and 0.7 of the steps."""

SMALL_M = 4
"""At ``m <= SMALL_M`` the ladder starts at its second level and the error estimate is at
least :data:`SMALL_M_FLOOR`: there two levels can agree better than the finer is accurate
(measured at m = 3: C = 5, change 4.1e-7, error 5.9e-7 of F_off from the first two
levels; C = 2, change below 3e-9, error 1.0e-7 of F_diag from the second and third), as
the (u, v) step error is not monotone in the step."""
SMALL_M_FLOOR = 3e-7


def _evaluate(C: float, m: int, sigma: float, lv: Level) -> dict:
    hu = lv.hu * (0.8 if C <= 4 else 1.0)  # no Phi^(C-k) damping at C <= 4
    dsq, osq = _gamma_part(C, m, sigma, 2 * lv.n_a + 4, 0.7 * hu, 0.7 * lv.step)
    dcr, ocr = _cross_part(C, m, sigma, lv.n_a, lv.n_rho, hu, lv.step)
    return {"diag_sq": dsq, "off_sq": osq, "diag_cross": dcr, "off_cross": ocr}


def _F(v: dict, gamma: float) -> tuple[float, float]:
    return gamma * v["diag_sq"] + v["diag_cross"], gamma * v["off_sq"] + v["off_cross"]


def hidden_ce_quadrature(
    C: float,
    gamma: float,
    m: int,
    sigma: float = 1.0,
    tol: float = 1e-6,
    *,
    levels: tuple = LEVELS,
) -> dict:
    """Fixed-C limits ``F_diag``, ``F_off`` of hidden-ce (normal init of scale ``sigma``).

    Climbs ``levels`` from the first two until the relative change of both ``F`` values
    is at most ``tol``. Returns a dict with ``F_diag``, ``F_off``, their error estimates
    ``F_diag_err``, ``F_off_err`` (the change between the last two levels, at least
    ``FLOOR`` = 3e-8 relative, ``SMALL_M_FLOOR`` = 3e-7 at ``m <= SMALL_M``; the last level
    is reported), the four components ``diag_sq,
    off_sq`` (``E[a^2]``) and ``diag_cross, off_cross`` (``E[a(g) a(g')]``) with ``F =
    gamma * sq + cross``, ``level`` (index into ``levels``), ``converged`` and
    ``seconds``. A ``RuntimeWarning`` is issued when the ladder ends above ``tol``.
    """
    from threadpoolctl import threadpool_limits

    C = float(check_int("C", C, minimum=2))
    gamma = check_float("gamma", gamma, 0.0, None, closed="left")
    m = check_int("m", m, minimum=1)
    sigma = check_float("sigma", sigma, 0.0, None, closed="neither")
    tol = check_float("tol", tol, 0.0, None, closed="neither")
    if len(levels) < 2:
        raise ValueError(f"levels: need at least 2 resolutions, got {len(levels)}")
    t0 = time.perf_counter()
    start = 1 if m <= SMALL_M and len(levels) > 2 else 0
    floor = SMALL_M_FLOOR if m <= SMALL_M else FLOOR
    with threadpool_limits(limits=1, user_api="blas"):
        prev = _evaluate(C, m, sigma, levels[start])
        for k in range(start + 1, len(levels)):
            cur = _evaluate(C, m, sigma, levels[k])
            F, Fp = _F(cur, gamma), _F(prev, gamma)
            errs = [max(abs(f - g), floor * abs(f)) for f, g in zip(F, Fp, strict=True)]
            ok = all(e <= tol * abs(f) for e, f in zip(errs, F, strict=True))
            if ok or k == len(levels) - 1:
                break
            prev = cur
    out = dict(cur, F_diag=F[0], F_off=F[1], F_diag_err=errs[0], F_off_err=errs[1])
    out.update(level=k, converged=ok, seconds=time.perf_counter() - t0)
    if not ok:
        worst = max(e / abs(f) for e, f in zip(errs, F, strict=True))
        warnings.warn(
            f"hidden_ce_quadrature: relative error estimate {worst:.2g} exceeds tol={tol:g} "
            f"at the last level (C={C:g}, m={m})",
            RuntimeWarning,
            stacklevel=2,
        )
    return out
