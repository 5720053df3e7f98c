"""Large-C constants of the one-hidden-layer cases for any activation (issue 20; docs/theory.md
section 9.5): ``F_diag ~ A_diag C^-p_diag``, ``F_off ~ A_off C^-p_off``.

Setting of :mod:`rmthess.theory.activation_hidden`: ``f = V phi(W x)``, ``g ~ N(0, sigma^2)``
per hidden unit, ``h = phi(g)``, ``V`` entries ``N(0, s)`` with ``s = sigma^2/m``, labels
uniform. As ``C -> inf`` the softmax over ``C`` i.i.d. logits ``z_c = v_c . h`` is the
exponential tilt of one row of ``V`` (section 5): ``sum_c p_c f(v_c) -> E[e^z f(v)] / E[e^z]``,
under which ``v ~ N(s h, s I)``; its fluctuations are ``O(C^-1/2)``. Hence, with
``d1 = phi'(g)``, ``d2 = phi''(g)`` and ``g, g'`` independent (two samples of one network):

- **hidden-ce**: ``v_j^T A v_j -> s`` and ``v_j^T r -> s h_j - v_yj`` (``v_y`` an untilted row),
  so ``a_jj -> s d1^2 + d2 (s h - sqrt(s) xi)``, ``xi ~ N(0, 1)``:
  ``A_diag = gamma (s^2 E[(d1^2 + h d2)^2] + s E[d2^2]) + s^2 E[d1^2 + h d2]^2``, ``p_diag = 0``;
  ``C F_off -> gamma K1 + K2`` (``p_off = 1``) with
  ``K1 = M0^(m-2) M1^2``, ``M0 = E[e^{s h^2}]``, ``M1 = E[e^{s h^2} (s + s^2 h^2) d1^2]`` and
  ``K2 = N0^(m-2) N1^2``, ``N0 = E[e^{s h h'}]``, ``N1 = E[e^{s h h'} (s + s^2 h h') d1 d1']``.
- **output-ce**: ``C^2 F_diag -> K3 = (Phi^m)''(s)``, ``C^4 F_off -> K4 = (Phi^m)''(2 s)``
  with ``Phi(t) = E[e^{t h h'}]`` (``(Phi^m)'' = m Phi^(m-1) Phi'' + m (m-1) Phi^(m-2)
  Phi'^2``).
- **hidden-mse** (``F`` grows with C): ``v_j . v_l -> C s delta_jl``, ``v_j^T V h -> C s h_j``:
  ``A_diag = s^2 (gamma E[(d1^2 + h d2)^2] + E[d1^2 + h d2]^2)``, ``p_diag = -2``;
  ``A_off = s^2 (gamma E[d1^2]^2 + E[d1]^4)``, ``p_off = -1``.
- **output-mse**: exact at every C (:func:`rmthess.theory.activation_frobenius`).

ReLU gives the paper's constants (:func:`rmthess.theory.asymptotics.hidden_ce_K`,
``output_ce_K``; tests/theory/test_activation_asymptotics.py, 1e-10). Existence: for an
activation that grows linearly (relu, leaky-relu, linear, gelu, softplus) the CE constants'
``E[e^{s h^2}]`` and ``Phi(2 s)`` need ``2 s sigma^2 < 1``, i.e. ``m > 2 sigma^4`` (as for
ReLU); bounded ones (tanh, sigmoid) have every constant for every ``m``; hidden-mse has no
tilt and no condition.

Quadrature: the Gaussian expectations are integrals over ``g`` split at 0 (the kinks) into two
half-lines truncated at ``L = 40 sigma / sqrt(1 - 2 s sigma^2)`` (the tilted width; ``40
sigma`` for bounded activations), each with 400 Gauss-Legendre nodes; two-sample expectations
are the tensor product. Relative accuracy ~1e-12 (against mpmath's ReLU closed forms).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from rmthess.activations import Activation, get_activation

__all__ = ["activation_constants"]

UNBOUNDED = ("relu", "leaky-relu", "linear", "gelu", "softplus")
"""Activations that grow linearly at infinity: their tilted moments need ``m > 2 sigma^4``."""

_NODES = 400


@lru_cache(maxsize=64)
def _gl(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _rule(sigma: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``g`` and LOG weights of ``E[f(g)]``, ``g ~ N(0, sigma^2)``: Gauss-Legendre on
    ``[-L, 0]`` and ``[0, L]``, ``L = 40 width`` (log weights: the tilts ``e^{s h^2}`` are
    combined with the Gaussian density before exponentiating, no overflow)."""
    x, w = _gl(_NODES)
    L = 40.0 * width
    g = np.concatenate([(x - 1.0) * L / 2, (x + 1.0) * L / 2])
    logw = np.log(np.concatenate([w, w]) * L / 2)
    logw += -0.5 * (g / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))
    return g, logw


def _check(act: Activation, m: int, sigma: float, case: str) -> float:
    s = sigma * sigma / m
    if act.name in UNBOUNDED and 2 * s * sigma * sigma >= 1.0:
        raise ValueError(
            f"m must be > 2 sigma^4 = {2 * sigma**4:g} for the large-C constants of {case!r} "
            f"with activation {act.name!r} (E[exp(s phi(g)^2)] diverges), got m={m}"
        )
    return s


def activation_constants(
    case: str, gamma: float, m: int, activation: str | Activation, sigma: float = 1.0
) -> tuple[float, float, float, float]:
    """``(A_diag, p_diag, A_off, p_off)`` of hidden-ce, hidden-mse, output-ce or output-mse
    for ``activation`` (module docstring); arguments validated by the caller
    (:func:`rmthess.theory.asymptotic_constants` with ``activation=``)."""
    act = get_activation(activation)
    if case == "output-mse":
        M1 = act.gaussian_moment("phi", 1, sigma)
        M2 = act.gaussian_moment("phi", 2, sigma)
        return m * M2 * M2 + m * (m - 1) * M1**4, 0.0, 0.0, math.inf
    s = sigma * sigma / m if case == "hidden-mse" else _check(act, m, sigma, case)
    ce_tilt = case != "hidden-mse" and act.name in UNBOUNDED
    tilt = 1.0 - 2.0 * s * sigma * sigma if ce_tilt else 1.0
    g, lw = _rule(sigma, sigma / math.sqrt(tilt))
    h, d1, d2 = act.phi(g), act.dphi(g), act.d2phi(g)
    w = np.exp(lw)

    def E(f: np.ndarray, tilt: np.ndarray | float = 0.0) -> float:
        """``E[e^{tilt} f]`` over one sample (``tilt`` per node) or two (matrices)."""
        if np.ndim(f) == 2:
            return float(np.sum(np.exp(lw[:, None] + lw[None, :] + tilt) * f))
        return float(np.sum(np.exp(lw + tilt) * f))

    if case == "hidden-ce":
        A_diag = gamma * (s * s * E((d1 * d1 + h * d2) ** 2) + s * E(d2 * d2))
        A_diag += s * s * E(d1 * d1 + h * d2) ** 2
        M0, M1 = E(np.ones_like(h), s * h * h), E((s + s * s * h * h) * d1 * d1, s * h * h)
        hh = np.outer(h, h)
        N0 = E(np.ones_like(hh), s * hh)
        N1 = E((s + s * s * hh) * np.outer(d1, d1), s * hh)
        K1, K2 = M0 ** (m - 2) * M1 * M1, N0 ** (m - 2) * N1 * N1
        return A_diag, 0.0, gamma * K1 + K2, 1.0
    if case == "hidden-mse":
        u = d1 * d1 + h * d2
        A_diag = s * s * (gamma * float(w @ (u * u)) + float(w @ u) ** 2)
        A_off = s * s * (gamma * float(w @ (d1 * d1)) ** 2 + float(w @ d1) ** 4)
        return A_diag, -2.0, A_off, -1.0
    # output-ce
    hh = np.outer(h, h)
    out = []
    for t in (s, 2 * s):
        P0, P1, P2 = (E(hh**k, t * hh) for k in (0, 1, 2))
        out.append(m * P0 ** (m - 1) * P2 + m * (m - 1) * P0 ** (m - 2) * P1 * P1)
    return out[0], 2.0, out[1], 4.0
