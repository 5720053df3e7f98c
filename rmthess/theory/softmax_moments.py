"""Exact moments of the softmax of i.i.d. Gaussian logits (linear-ce, Theorem 1).

Let ``z ~ N(0, sigma^2 I_C)`` and ``p = softmax(z)`` (``sigma = 1``: LeCun init, the paper's;
``sigma^2 = 1/3``: PyTorch's default ``nn.Linear`` init; see :mod:`rmthess.inits`). With
``S = sum_k e^{z_k}`` and the Laplace representation
``y^{-n} = (1/Gamma(n)) int_0^inf t^{n-1} e^{-t y} dt``,

.. math::

    E[p_1^n]       = \\frac{1}{\\Gamma(n)}  \\int_0^\\infty t^{n-1} A_n(t)   L(t)^{C-1} dt,
    E[(p_1 p_2)^n] = \\frac{1}{\\Gamma(2n)} \\int_0^\\infty t^{2n-1} A_n(t)^2 L(t)^{C-2} dt,

with ``L(t) = E[exp(-t e^Z)]`` and ``A_n(t) = E[e^{nZ} exp(-t e^Z)]``, ``Z ~ N(0, sigma^2)``.

Numerics. Substituting ``t = e^u`` turns both integrals into integrals over the whole real
line of functions analytic in the strip ``|Im u| < pi/2`` that decay at both ends (like
``e^{n u}`` as ``u -> -inf`` and at least like ``e^{-u^2/(2 sigma^2)}`` as ``u -> +inf``).
The inner Gaussian integrals are taken over ``Z = sigma Y``, ``Y ~ N(0, 1)``: as functions
of ``y`` they are analytic in ``|Im y| < pi/(2 sigma)``, so the ``y`` step is
``h / max(1, sigma)``. The trapezoidal rule on such integrands converges geometrically,
with error about ``exp(-pi^2 / h)`` for step ``h``; ``h = 0.1`` gives an error far below
double precision. The inner quantities ``log L(e^u)`` and ``log A_n(e^u)`` do not depend on
C: they are tabulated once per sigma on a fixed ``u`` grid
``[-78 - 2 s^2, 16 s]``, ``s = max(1, sigma)`` (``y`` in ``[-40, 16 + 4 s]``: the tilt
``e^{n sigma y}`` moves the mass to ``y ~ n sigma``; ``1 - L`` is computed with ``expm1``
so that ``(C-1) log L`` stays accurate when ``L`` is close to 1), and each C costs a few
vector operations on that grid. Everything is done in log space, so nothing overflows or
underflows for C up to about 1e20 (the integrand peaks near ``u = -log C - sigma^2/2``).
``sigma`` is accepted in ``(0, SIGMA_MAX]`` = ``(0, 5]`` (the tables grow like sigma^2).
Verified against an independent sigmoid quadrature at C = 2, a 2-D/3-D quadrature at
C = 3, mpmath adaptive quadrature at C = 10, 1e3, 1e7, and Monte Carlo, at sigma = 1 and
at ``sigma^2 = 1/3`` and ``sigma = 2`` (and 0.3, 5 for the identities); the relative
accuracy is about 1e-13 or better (see ``tests/theory/test_softmax_moments.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from rmthess._checks import check_float, check_int

__all__ = ["SoftmaxMoments", "softmax_moments", "linear_ce_frobenius", "SIGMA_MAX"]

_H = 0.1
_NMAX = 4
SIGMA_MAX = 5.0
"""Largest logit scale ``sigma`` accepted (the tables have ~``4e5 sigma^2`` entries)."""
# log C must stay well inside the u grid: the integrand peaks near u = -log C and
# decays like e^{n (u + log C)} to the left.
_C_MAX = 1e20


@lru_cache(maxsize=8)
def _tables(sigma: float = 1.0) -> tuple:
    """Tabulate ``u``, ``log L(e^u)`` and ``log A_n(e^u)`` (n = 1..4) on the fixed grid
    of this ``sigma`` (module docstring)."""
    s = max(1.0, sigma)
    u = np.arange(-78.0 - 2.0 * s * s, 16.0 * s + _H / 2, _H)
    hy = _H / s
    y = np.arange(-40.0, 16.0 + 4.0 * s + hy / 2, hy)
    z = sigma * y
    logphi = -0.5 * y**2 - 0.5 * math.log(2 * math.pi) + math.log(hy)  # trapezoid weight
    ez = np.exp(u[:, None] + z[None, :])  # t e^z, shape (nu, ny)
    # 1 - L(t) = E[1 - exp(-t e^Z)] (no cancellation), then log L = log1p(-(1 - L)).
    one_minus_L = -np.expm1(-ez) @ np.exp(logphi)
    with np.errstate(divide="ignore"):
        logL_small = np.log1p(-np.minimum(one_minus_L, 0.5))
        logL_big = logsumexp(logphi[None, :] - ez, axis=1)
    logL = np.where(one_minus_L < 0.5, logL_small, logL_big)
    logA = np.empty((_NMAX + 1, u.size))
    logA[0] = logL
    for n in range(1, _NMAX + 1):
        logA[n] = logsumexp(logphi[None, :] + n * z[None, :] - ez, axis=1)
    return u, logL, logA


@dataclass(frozen=True)
class SoftmaxMoments:
    """Moments of ``p = softmax(z)``, ``z ~ N(0, sigma^2 I_C)`` (arrays broadcast like ``C``).

    ``p[n]`` is ``E[p_1^n]`` (n = 1..4, ``p[0] = 1``) and ``pp[n]`` is ``E[(p_1 p_2)^n]``
    (n = 1, 2; ``pp[0] = 1``).
    """

    C: np.ndarray
    p: np.ndarray
    pp: np.ndarray
    sigma: float = 1.0


def _check_sigma(sigma: float) -> float:
    return check_float("sigma (logit scale)", sigma, 0.0, SIGMA_MAX, closed="right")


def _check_C(C):
    arr = np.asarray(C)
    flat = [check_int("C", c, 2) for c in np.atleast_1d(arr).ravel().tolist()]
    Cf = np.asarray(flat, dtype=np.float64).reshape(arr.shape)
    if np.any(Cf > _C_MAX):
        raise ValueError(f"C must be an integer >= 2 and <= {_C_MAX:g}, got {C!r}")
    return Cf


def softmax_moments(C: ArrayLike, *, sigma: float = 1.0) -> SoftmaxMoments:
    """Exact ``E[p_1^n]`` (n <= 4) and ``E[(p_1 p_2)^n]`` (n <= 2) for Gaussian logits.

    Parameters
    ----------
    C : int or array_like of int
        Number of classes, ``2 <= C <= 1e20``.
    sigma : float
        Standard deviation of the logits, ``0 < sigma <= SIGMA_MAX`` = 5 (default 1: LeCun
        init; ``1/sqrt(3)``: PyTorch's default init).

    Returns
    -------
    SoftmaxMoments
        ``p`` has shape ``(5,) + shape(C)``, ``pp`` has shape ``(3,) + shape(C)``.
        Relative accuracy ~1e-13 (trapezoidal rule on the Laplace representation, see the
        module docstring). ``E[p_1] = 1/C`` holds to round-off.
    """
    Cf = _check_C(C)
    sigma = _check_sigma(sigma)
    u, logL, logA = _tables(sigma)
    c = Cf.reshape(-1, 1)
    p = np.ones((_NMAX + 1, c.shape[0]))
    pp = np.ones((3, c.shape[0]))
    for n in range(1, _NMAX + 1):
        expo = n * u + logA[n] + (c - 1.0) * logL
        p[n] = _H * np.exp(logsumexp(expo, axis=1)) / math.gamma(n)
    for n in (1, 2):
        expo = 2 * n * u + 2 * logA[n] + (c - 2.0) * logL
        pp[n] = _H * np.exp(logsumexp(expo, axis=1)) / math.gamma(2 * n)
    shape = Cf.shape
    return SoftmaxMoments(
        C=Cf,
        p=p.reshape((_NMAX + 1,) + shape),
        pp=pp.reshape((3,) + shape),
        sigma=sigma,
    )


def linear_ce_frobenius(
    C: ArrayLike, gamma: ArrayLike, *, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Theorem-1 limits ``(F_diag, F_off)`` of the linear model with CE loss.

    ``sigma``: scale of the logits ``z ~ N(0, sigma^2 I_C)``, i.e. the ``sigma`` of the
    weight init (entries of variance ``sigma^2/d``; only the variance matters as
    ``d -> inf``, whatever the entry law, :mod:`rmthess.inits`).

    .. math::

        F_{diag} = \\gamma E[(p_1(1-p_1))^2] + (E[p_1(1-p_1)])^2, \\quad
        F_{off}  = \\gamma E[(p_1 p_2)^2] + (E[p_1 p_2])^2,

    with ``E[(p(1-p))^2] = E p^2 - 2 E p^3 + E p^4`` and ``E[p(1-p)] = 1/C - E p^2`` (using
    ``E p_1 = 1/C`` exactly). Both are computed without cancellation problems for every
    ``2 <= C <= 1e20`` (relative accuracy ~1e-12). ``C`` and ``gamma`` broadcast.
    """
    mom = softmax_moments(C, sigma=sigma)
    gamma = np.asarray(gamma, dtype=np.float64)
    Cf = mom.C
    e2, e3, e4 = mom.p[2], mom.p[3], mom.p[4]
    var_term = e2 - 2.0 * e3 + e4
    mean_term = 1.0 / Cf - e2
    F_diag = gamma * var_term + mean_term**2
    F_off = gamma * mom.pp[2] + mom.pp[1] ** 2
    return F_diag, F_off
