"""Conditional softmax moments given the Gram matrix: the inner integrals of the exact
fixed-C limits of output-ce (docs/theory.md section 4, "Deterministic quadrature").

Given ``(h, h')`` the rows of ``V`` give i.i.d. logit pairs ``(z_c, z'_c)``, bivariate
normal with standard deviations ``a, b`` and correlation ``rho``. With the Laplace
identity ``1/S^n = (1/Gamma(n)) int e^{n u} prod_c f(u + z_c) du``, ``f(x) = exp(-e^x)``,
``S = sum_c e^{z_c}``, applied to both softmax normalisers, and
``e^{u+z} f(u+z) = -f'(u+z)``:

    I2 = E[p_k p_l p'_k p'_l]       = int int Phi_uv^2 Phi^{C-2} du dv      (k != l)
    I3 = E[p_k p_c p'_k p'_c']      = int int Phi_uv Phi_u Phi_v Phi^{C-3} du dv
                                      (k, c, c' distinct)

with ``Phi(u, v) = E[f(u + z) f(v + z')]`` and its partial derivatives (``Phi_uv =
E[f'(u+z) f'(v+z')]``, ...). Numerics: the bivariate Gaussian expectations by trapezoid
rules in ``x = z/a`` and in the independent part of ``z'`` (steps ``xstep / scale``, at
most 0.5; the integrand is analytic in a strip of half-width ``pi / (2 scale)``), the
``(u, v)`` integrals by the trapezoid rule with step ``hu`` on the range where a bound of
the integrand exceeds 1e-17 of its peak; both converge geometrically (measured: the
error falls from 1e-6 at ``hu = 0.5`` to below 1e-10 at ``hu = 0.35``). ``Phi^{C-2}`` is
``exp((C-2) log1p(-(1 - Phi)))`` with ``1 - Phi`` formed from ``-expm1(-e^x)``, so
C up to 1e12 loses no digits.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["output_inner", "gauss_nodes"]

_K_MAX = 48  # finest sub-grid for the shifted x2-averages
_L = 9.0  # Gaussian nodes on [-L, L]: the weight beyond is below 1e-18


def _f(x):
    return np.exp(-np.exp(x))


def _fp(x):
    e = np.exp(x)
    return -e * np.exp(-e)


def _g(x):  # 1 - f, accurate where f is close to 1
    return -np.expm1(-np.exp(x))


def gauss_nodes(scale: float, xstep: float) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes and weights (summing to 1) for ``E[F(scale * x)]``, ``x ~ N(0, 1)``,
    with ``F`` analytic in the strip ``|Im| < pi/2`` (step ``xstep / scale``, at most 0.5)."""
    if scale <= 0.0:
        return np.zeros(1), np.ones(1)
    h = min(xstep / scale, 0.5)
    n = int(math.ceil(_L / h))
    x = np.arange(-n, n + 1) * h
    w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


def _range(a: float, C: float, hu: float, xstep: float) -> np.ndarray:
    """Trapezoid nodes in u covering the support of the integrand (see module docstring):
    ``q(u)^2 = E[f'(u + a x)^2] (1 - D(u))^{C-2}`` bounds the u-marginal, where
    ``D(u) = 1 - E f(u + a x)``; keep where ``q^2 >= 1e-17 max q^2``."""
    x, w = gauss_nodes(a, xstep)
    lo, hi = -math.log(C) - 0.5 * a * a - 40.0 - 10 * a, 12.0 + 10.0 * a
    u = np.arange(lo, hi + hu, hu)
    U = u[:, None] + a * x[None, :]
    fp2 = (_fp(U) ** 2) @ w
    D = _g(U) @ w
    with np.errstate(divide="ignore"):
        q2 = np.log(fp2 + 1e-300)
        if C > 2:
            q2 = q2 + (C - 2.0) * np.log1p(-np.minimum(D, 1.0))
    keep = np.nonzero(q2 >= q2.max() - math.log(1e17))[0]
    i0, i1 = max(keep[0] - 1, 0), min(keep[-1] + 1, u.size - 1)
    return u[i0 : i1 + 1]


def output_inner(
    a: float, b: float, rho: float, C: float, *, hu: float = 0.35, xstep: float = 0.4
) -> tuple[float, float]:
    """``(I2, I3)`` of the module docstring for logit scales ``a, b >= 0``, correlation
    ``rho`` in [0, 1] and ``C >= 2`` classes (``I3 = 0`` for ``C = 2``)."""
    s = math.sqrt(max(0.0, 1.0 - rho * rho))
    u = _range(a, C, hu, xstep)
    v = _range(b, C, hu, xstep)
    x2, w2 = gauss_nodes(b * s, xstep)
    c = b * rho
    scale = max(a, c)
    h1 = min(xstep / scale, 0.5) if scale > 0 else 0.5
    k = math.ceil(hu / (c * h1)) if c > 0 else 0
    if 0 < k <= _K_MAX:
        # x1 on a grid with c * step = hu / k: the shifted v + c x1 fall on a grid of step
        # hu / k, where the x2-average G(t) = E[f(t + b s x2)] is computed once.
        h1 = hu / (k * c)
        n = int(math.ceil(_L / h1))
        x1 = np.arange(-n, n + 1) * h1
        t = v[0] + (np.arange(-n, k * (v.size - 1) + n + 1)) * (hu / k)
        T = t[:, None] + (b * s) * x2[None, :]
        idx = (np.arange(v.size) * k)[None, :] + (np.arange(2 * n + 1) + 0)[:, None]
        Gf, Gp, Gg = ((fn(T) @ w2)[idx] for fn in (_f, _fp, _g))
    else:
        n = int(math.ceil(_L / h1))
        x1 = np.arange(-n, n + 1) * h1
        Y = v[None, None, :] + c * x1[:, None, None] + (b * s) * x2[None, :, None]
        Gf, Gp, Gg = (np.tensordot(w2, fn(Y), axes=([0], [1])) for fn in (_f, _fp, _g))
    w1 = np.exp(-0.5 * x1 * x1)
    w1 /= w1.sum()
    U = u[None, :] + a * x1[:, None]  # (n1, nu)
    Fp = _fp(U) * w1[:, None]
    Phi_uv = Fp.T @ Gp
    if C == 2:
        return float(hu * hu * np.sum(Phi_uv * Phi_uv)), 0.0
    Fg = _g(U) * w1[:, None]
    D = Fg.sum(0)[:, None] + (w1 @ Gg)[None, :] - Fg.T @ Gg  # 1 - Phi
    with np.errstate(divide="ignore"):  # D = 1 (Phi = 0): log 0 = -inf, exp(-inf) = 0
        L = np.log1p(-np.minimum(D, 1.0))
    E2 = np.exp((C - 2.0) * L)
    I2 = hu * hu * np.sum(Phi_uv * Phi_uv * E2)
    Phi_u = Fp.T @ Gf
    Phi_v = (_f(U) * w1[:, None]).T @ Gp
    E3 = np.exp((C - 3.0) * L) if C > 3 else 1.0
    I3 = hu * hu * np.sum(Phi_uv * Phi_u * Phi_v * E3)
    return float(I2), float(I3)
