"""Activation functions, their derivatives and their Gaussian moments (ground floor).

One table (:data:`ACTIVATIONS`) for the theory of networks with any activation (issue 20):
each :class:`Activation` holds ``phi``, ``phi'``, ``phi''`` (vectorised numpy functions)
and the Gaussian moments ``E[f(s g)^k]``, ``g ~ N(0, 1)``, ``f`` one of the three, that
the hidden-layer block weights need (``a_jl = phi'(g_j) phi'(g_l) v_j^T A v_l + delta_jl
phi''(g_j) v_j^T (p - e_y)``; for ReLU the indicators of today's formulas are ``phi'``).

Conventions.

- ``relu``, ``leaky-relu`` (negative slope 0.01, PyTorch's default) and ``linear`` are
  piecewise linear: ``phi''`` is 0 away from the kink (its delta at 0 carries no Gaussian
  mass in the Hessian of a sample, which is evaluated off the kink almost surely) and
  ``phi'`` at 0 is taken as 0 (ReLU) / the negative slope (leaky), like PyTorch's autograd.
  They are positively homogeneous, ``phi(c x) = c phi(x)`` for ``c > 0``: the pre-activation
  scale only scales the moments, and their moments are closed forms (``E|g|^k`` halves).
- ``tanh``, ``sigmoid``, ``softplus`` (``log(1 + e^x)``) and ``gelu`` (exact, ``x Phi(x)``)
  are analytic in a strip around the real axis (``tanh``, ``sigmoid``, ``softplus``: poles
  or branch points at distance ``pi/2``, ``pi`` and ``pi`` from it; ``gelu`` is entire). Their
  moments use the trapezoidal rule in ``t`` for ``int f(s t)^k phi(t) dt`` with step
  ``h = min(0.05, 0.1/s)`` on ``|t| <= 38``: for an integrand analytic in a strip of
  half-width ``w`` the error is ``~ exp(-2 pi w / h)``, here at most ``exp(-pi^2 / 0.2)``
  (~1e-21) relative to the integrand's scale, i.e. double precision (checked against
  ``mpmath.quad`` to 1e-12 in tests/test_activations.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln, ndtr

from rmthess._checks import check_choice, check_float, check_int

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "LEAKY_SLOPE"]

LEAKY_SLOPE = 0.01
"""Negative slope of ``leaky-relu`` (PyTorch's default)."""

_KINDS = ("phi", "dphi", "d2phi")
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _abs_moment(k: int) -> float:
    """``E|g|^k`` for ``g ~ N(0, 1)``."""
    return math.exp(k / 2 * math.log(2.0) + gammaln((k + 1) / 2)) / math.sqrt(math.pi)


def _pdf(x: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _tanh_d1(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    return 1.0 - t * t


def _tanh_d2(x: np.ndarray) -> np.ndarray:
    t = np.tanh(x)
    return -2.0 * t * (1.0 - t * t)


def _sig_d1(x: np.ndarray) -> np.ndarray:
    s = expit(x)
    return s * (1.0 - s)


def _sig_d2(x: np.ndarray) -> np.ndarray:
    s = expit(x)
    return s * (1.0 - s) * (1.0 - 2.0 * s)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _step(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x) > 0).astype(float)


def _zero(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(np.asarray(x, dtype=float))


def _leaky(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(x > 0, x, LEAKY_SLOPE * x)


def _leaky_d1(x: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(x) > 0, 1.0, LEAKY_SLOPE)


def _identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _one(x: np.ndarray) -> np.ndarray:
    return np.ones_like(np.asarray(x, dtype=float))


def _softplus(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.logaddexp(0.0, x)


def _gelu(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x * ndtr(x)


def _gelu_d1(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return ndtr(x) + x * _pdf(x)


def _gelu_d2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return _pdf(x) * (2.0 - x * x)


@dataclass(frozen=True)
class Activation:
    """An activation ``phi`` with ``phi'`` (``dphi``) and ``phi''`` (``d2phi``).

    ``homogeneous``: piecewise linear and positively homogeneous (relu, leaky-relu,
    linear), whose Gaussian moments are closed forms; ``neg_slope``: the slope for
    ``x < 0`` of those (0, 0.01, 1).
    """

    name: str
    phi: Callable
    dphi: Callable
    d2phi: Callable
    homogeneous: bool = False
    neg_slope: float = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.phi(x)

    def gaussian_moment(self, kind: str = "phi", k: int = 1, scale: float = 1.0) -> float:
        """``E[f(scale g)^k]``, ``g ~ N(0, 1)``, ``f`` = ``phi``, ``phi'`` or ``phi''``
        (``kind`` = ``"phi"``, ``"dphi"``, ``"d2phi"``), ``k >= 0``, ``scale > 0``.

        Closed forms for the piecewise-linear activations (``E[g^k; g > 0] = E|g|^k / 2``);
        the trapezoidal rule of the module docstring for the smooth ones (relative accuracy
        ~1e-13 or better, absolute where the moment vanishes by symmetry).
        """
        kind = check_choice("kind", kind, _KINDS)
        k = check_int("k", k, 0)
        scale = check_float("scale", scale, 0.0, 1e3, closed="right")
        if k == 0:
            return 1.0
        if self.homogeneous:
            return self._closed_moment(kind, k, scale)
        return self._quadrature_moment(kind, k, scale)

    def _closed_moment(self, kind: str, k: int, scale: float) -> float:
        a = self.neg_slope
        if kind == "d2phi":
            return 0.0
        if kind == "dphi":
            return 0.5 * (1.0 + a**k)
        half = 0.5 * _abs_moment(k) * scale**k  # E[(s g)^k; g > 0]
        return half * (1.0 + (a * (-1.0)) ** k)

    def _quadrature_moment(self, kind: str, k: int, scale: float) -> float:
        f = {"phi": self.phi, "dphi": self.dphi, "d2phi": self.d2phi}[kind]
        h = min(0.05, 0.1 / scale)
        n = int(math.ceil(38.0 / h))
        t = np.arange(-n, n + 1) * h
        return float(h * np.sum(f(scale * t) ** k * _pdf(t)))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", _relu, _step, _zero, homogeneous=True, neg_slope=0.0),
        Activation("leaky-relu", _leaky, _leaky_d1, _zero, homogeneous=True, neg_slope=LEAKY_SLOPE),
        Activation("linear", _identity, _one, _zero, homogeneous=True, neg_slope=1.0),
        Activation("tanh", np.tanh, _tanh_d1, _tanh_d2),
        Activation("sigmoid", expit, _sig_d1, _sig_d2),
        Activation("softplus", _softplus, expit, _sig_d1),
        Activation("gelu", _gelu, _gelu_d1, _gelu_d2),
    )
}
"""Every activation the theory knows, keyed by name."""


def get_activation(name: object) -> Activation:
    """The :class:`Activation` named ``name`` (one of :data:`ACTIVATIONS`), or ``name``
    itself if it already is one; a ``ValueError`` naming the choices otherwise.

    >>> get_activation("relu").gaussian_moment("dphi", 2)
    0.5
    >>> round(get_activation("relu").gaussian_moment("phi", 2, scale=2.0), 12)  # s^2 / 2
    2.0
    """
    if isinstance(name, Activation):
        return name
    return ACTIVATIONS[check_choice("activation", name, tuple(ACTIVATIONS))]
