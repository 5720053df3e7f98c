"""Large-C constants of the hidden-* and output-* blocks for inputs with a mean or class
structure: the limits of :mod:`rmthess.theory.offset_limits` as ``C -> infinity`` (ReLU, normal
init; issue 19, docs/theory.md section 9.4).

Setting of :mod:`rmthess.theory.offset_limits`: components ``k`` (weights ``pi_k``) with
``v_k = tau_1k + |mu_k|^2/d``, ``G_kl = mu_k . mu_l / d``, ``R_kl = E (x . x')^2 / d``. Over
networks the pre-activation of one hidden unit for a sample of component ``k`` is ``g_k =
b_k + sigma sqrt(tau_1k) Z`` with the offsets ``(b_k)_k ~ N(0, sigma^2 G)`` shared by every
sample and ``Z`` fresh per sample: two samples of components ``k, l`` give a pair ``(g, g')``
with variances ``a = sigma^2 v_k``, ``b = sigma^2 v_l`` and covariance ``c = sigma^2 G_kl``
(for ``k = l`` too: the two samples draw independent ``Z``). Given the offsets, the ``m``
hidden units are independent and identically distributed, so every network average below
factorises over units into one- and two-dimensional integrals over such pairs. With ``u =
relu(g)``, ``u' = relu(g')``:

- ``P_kl = P(g > 0, g' > 0) = 1/4 + arcsin(rho_kl)/(2 pi)``, ``rho_kl = G_kl / sqrt(v_k v_l)``;
- ``phi_kl(t) = E[e^{t u u'}]``, ``phi1 = E[u u' e^{t u u'}]``, ``phi2 = E[(u u')^2 e^{t u u'}]``,
  ``phi_+ = E[e^{t u u'} 1(u u' > 0)]``;
- ``kappa1_kl = E[u u']``, ``kappa2_kl = E[u^2 u'^2]`` (arc-cosine kernels of degree 1 and 2).

The constants (``t = sigma^2/m``; ``(phi^m)'' = m phi^(m-1) phi2 + m(m-1) phi^(m-2) phi1^2``):

- hidden-mse: ``A_diag = (sigma^2/m)^2 [gamma sum_k pi_k v_k^2/2 + sum_kl pi_k pi_l R_kl
  P_kl]``, ``p_diag = -2``; ``A_off = (sigma^2/m)^2 [gamma sum_k pi_k v_k^2/4 + sum_kl pi_k
  pi_l R_kl P_kl^2]``, ``p_off = -1`` (``|v_i|^2 ~ C sigma^2/m``, ``(v_i . v_j)^2 ~ C
  sigma^4/m^2``);
- hidden-ce: ``A_diag`` as hidden-mse's, ``p_diag = 0`` (``(V^T A V)_ii`` tends to the
  variance ``sigma^2/m`` of an exponentially tilted normal row of V); ``A_off = gamma sum_k
  pi_k v_k^2 K1_k + sum_kl pi_k pi_l R_kl K2_kl``, ``p_off = 1``, with ``K1_k = (sigma^2/m)^2
  ((1 + q)/2)^(m-2) ((q/2)(1 + t a_k q^2))^2``, ``q = (1 - 2 t a_k)^(-1/2)``, ``a_k = sigma^2
  v_k``, and ``K2_kl = (sigma^2/m)^2 phi^(m-2) (phi_+ + t phi1)^2`` at ``t``;
- output-mse: ``A_diag = m sum_kl pi_k pi_l kappa2_kl + m(m-1) sum_kl pi_k pi_l
  kappa1_kl^2``, ``p_diag = 0`` (exact at every C: the output-mse blocks do not depend on C);
  ``A_off = 0``, ``p_off = inf``;
- output-ce: ``A_diag = sum_kl pi_k pi_l (phi_kl^m)''(t)``, ``p_diag = 2``; ``A_off = sum_kl
  pi_k pi_l (phi_kl^m)''(2t)``, ``p_off = 4`` (``p_c -> e^{z_c} / (C e^{sigma^2 |h|^2/(2m)})``).

With ``G = 0`` (centred inputs) these are the isotropic ``K1..K4`` of
:mod:`rmthess.theory.asymptotics` at the rescaled setting of :mod:`rmthess.theory.aniso_scaled`
(tested). They are finite iff ``t (sqrt(a b) + c) < 1`` for every pair at the ``t`` used
(``2 t`` for output-ce's ``A_off``) and ``2 t a_k < 1`` (hidden-ce's ``K1``), i.e. ``m`` above
``2 sigma^4 max_k v_k`` (hidden-ce) or ``2 sigma^4 max_kl (sqrt(v_k v_l) + G_kl)``
(output-ce); ``m`` is accepted up to ``OFFSET_M_MAX`` = 10**6.

Numerics: ``phi_kl`` and its derivatives are one-dimensional integrals over ``g > 0`` of closed
forms in ``g'`` given ``g`` (``E[e^{lam g'} 1(g' > 0) | g] = e^{lam M0 + lam^2 s^2/2} Phi(M/s)``
with ``M0 = c g / a``, ``s^2 = b - c^2/a``, ``M = M0 + lam s^2``, and its ``lam``-derivatives),
computed in the log domain (``scipy.special.log_ndtr``) by ``NODES``-point Gauss-Legendre on
``[0, 14 sqrt(a / D)]``, ``D = (1 - t(sqrt(ab) + c))(1 + t(sqrt(ab) - c))`` the integrand's
Gaussian decay rate; relative accuracy ~1e-13 (held against mpmath in
tests/theory/test_offset_asymptotics.py), and ``m`` times that for ``phi^m``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import log_ndtr

if TYPE_CHECKING:
    from rmthess.theory.inputs import InputStats

__all__ = ["OFFSET_M_MAX", "offset_constants", "pair_mgf"]

OFFSET_M_MAX = 10**6
NODES = 100
_GL = np.polynomial.legendre.leggauss(NODES)


def pair_mgf(a, b, c, t) -> np.ndarray:
    """``(phi, phi_+, phi1, phi2)`` of ReLU'd Gaussian pairs (module docstring), vectorised.

    ``a, b > 0`` variances, ``c`` covariance (``c^2 < a b``), ``t >= 0`` with ``t (sqrt(a b) +
    c) < 1`` (arrays broadcast together). Returns shape ``(4,) + broadcast shape``.

    >>> phi, plus, phi1, phi2 = pair_mgf(1.0, 1.0, 0.0, 0.0)   # independent: E[u u'] = 1/(2 pi)
    >>> [round(float(x), 12) for x in (phi, plus, phi1 * 2 * math.pi)]
    [1.0, 0.25, 1.0]
    """
    a, b, c, t = np.broadcast_arrays(*(np.asarray(z, dtype=float) for z in (a, b, c, t)))
    root = np.sqrt(a * b)
    decay = (1.0 - t * (root + c)) * (1.0 + t * (root - c))
    if np.any(decay <= 0):
        raise ValueError("pair_mgf diverges: t (sqrt(a b) + c) must be < 1")
    upper = 14.0 * np.sqrt(a / decay)
    x, w = _GL
    g = (0.5 * (x + 1.0)) * upper[..., None]  # nodes on [0, upper]
    wg = (0.5 * w) * upper[..., None]
    a_, b_, c_, t_ = (z[..., None] for z in (a, b, c, t))
    s2 = np.maximum(b_ - c_ * c_ / a_, 1e-300 * b_)
    s = np.sqrt(s2)
    lam = t_ * g
    M0 = c_ * g / a_
    M = M0 + lam * s2
    log_dens = -0.5 * g * g / a_ - 0.5 * math.log(2.0 * math.pi) - 0.5 * np.log(a_)
    A = lam * M0 + 0.5 * lam * lam * s2
    e_cdf = np.exp(log_dens + A + log_ndtr(M / s))  # density * e^A * Phi(M/s)
    e_pdf = np.exp(log_dens - 0.5 * M0 * M0 / s2) * (s / math.sqrt(2.0 * math.pi))
    plus = np.sum(wg * e_cdf, axis=-1)
    phi1 = np.sum(wg * g * (M * e_cdf + e_pdf), axis=-1)
    phi2 = np.sum(wg * g * g * ((M * M + s2) * e_cdf + M * e_pdf), axis=-1)
    rho = np.clip(c / root, -1.0, 1.0)
    both = 0.25 + np.arcsin(rho) / (2.0 * math.pi)
    return np.stack([1.0 - both + plus, plus, phi1, phi2])


def _arccos_kernels(a, b, c) -> tuple[np.ndarray, np.ndarray]:
    """``(E[u u'], E[u^2 u'^2])`` for ReLU'd Gaussians (Cho & Saul's arc-cosine kernels)."""
    root = np.sqrt(a * b)
    cos = np.clip(c / root, -1.0, 1.0)
    th = np.arccos(cos)
    sin = np.sqrt(1.0 - cos * cos)
    k1 = root / (2.0 * math.pi) * (sin + (math.pi - th) * cos)
    k2 = a * b / (2.0 * math.pi) * (3.0 * sin * cos + (math.pi - th) * (1.0 + 2.0 * cos * cos))
    return k1, k2


def _power_dd(phi, phi1, phi2, m: int) -> np.ndarray:
    """``(phi^m)'' = m phi^(m-1) phi2 + m (m-1) phi^(m-2) phi1^2``."""
    lp = np.log(phi)
    return m * np.exp((m - 1) * lp) * phi2 + m * (m - 1.0) * np.exp((m - 2) * lp) * phi1**2


def offset_constants(
    case: str, gamma: float, m: int, stats: InputStats, sigma: float
) -> tuple[float, float, float, float]:
    """``(A_diag, p_diag, A_off, p_off)`` (module docstring) for ReLU at a normal init of scale
    ``sigma``; arguments are checked by :func:`rmthess.theory.asymptotic_constants`, except the
    range of ``m`` (``ValueError`` naming ``m``)."""
    from rmthess.theory.offset_limits import _components

    w, tau1, G, R, _ = _components(stats)
    v = tau1 + np.diag(G)
    s2 = sigma * sigma
    a = np.broadcast_to(s2 * v[:, None], G.shape)  # variance of sample k's pre-activation
    b = a.T  # ... of sample l's
    c = s2 * G
    ww = w[:, None] * w[None, :]
    t = s2 / m
    layer, loss = case.split("-")
    if m > OFFSET_M_MAX:
        raise ValueError(
            f"m must be <= {OFFSET_M_MAX} for large-C constants with offsets (quadrature "
            f"accuracy ~1e-13 m), got m={m}"
        )
    need = 0.0  # m must exceed it: where the exponential tilt of a row of V diverges
    if case == "hidden-ce":
        need = 2.0 * s2 * s2 * float(np.max(v))
    elif case == "output-ce":
        need = 2.0 * s2 * float(np.max(np.sqrt(a * b) + c))
    if m <= need:
        raise ValueError(
            f"m must be > {need:.6g} for the large-C constants of {case!r} with these inputs "
            f"(2 sigma^4 times the largest pre-activation scale v_k = tau_1k + |mu_k|^2/d, "
            f"or sqrt(v_k v_l) + G_kl: the exponential tilt of a row of V diverges), got "
            f"m={m}; standardise the inputs or compare with frobenius_limits at fixed C"
        )
    both = 0.25 + np.arcsin(np.clip(G / np.sqrt(v[:, None] * v[None, :]), -1, 1)) / (2 * math.pi)
    scale = (s2 / m) ** 2
    self_w = float(np.sum(w * v * v))
    if layer == "hidden":
        A_d = scale * (gamma * self_w / 2.0 + float(np.sum(ww * R * both)))
        if loss == "mse":
            A_o = scale * (gamma * self_w / 4.0 + float(np.sum(ww * R * both * both)))
            return A_d, -2.0, A_o, -1.0
        q = (1.0 - 2.0 * t * s2 * v) ** -0.5
        K1 = scale * ((1.0 + q) / 2.0) ** (m - 2) * ((q / 2.0) * (1.0 + t * s2 * v * q * q)) ** 2
        phi, plus, phi1, _ = pair_mgf(a, b, c, t)
        K2 = scale * np.exp((m - 2) * np.log(phi)) * (plus + t * phi1) ** 2
        A_o = gamma * float(np.sum(w * v * v * K1)) + float(np.sum(ww * R * K2))
        return A_d, 0.0, A_o, 1.0
    if loss == "mse":
        k1, k2 = _arccos_kernels(a, b, c)
        A_d = m * float(np.sum(ww * k2)) + m * (m - 1.0) * float(np.sum(ww * k1 * k1))
        return A_d, 0.0, 0.0, math.inf
    out = []
    for tt in (t, 2.0 * t):
        phi, _, phi1, phi2 = pair_mgf(a, b, c, tt)
        out.append(float(np.sum(ww * _power_dd(phi, phi1, phi2, m))))
    return out[0], 2.0, out[1], 4.0
