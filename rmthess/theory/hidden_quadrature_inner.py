"""Inner expectation over V of :mod:`rmthess.theory.hidden_quadrature` at a fixed Gram.

Symbolic expansion of ``E_V[a_jl(g) a_jl(g')]`` (and ``E_V[a_jl(g)^2]``) into monomials in
``(s^2, h_j, h'_j, h_l, h'_l)`` times Laplace-identity integrals ``I_shape(a, b, rho)``,
and the trapezoid-rule evaluation of those integrals (see the main module's docstring).
"""

from __future__ import annotations

import math
from collections import defaultdict
from functools import cache, lru_cache

import numpy as np
from scipy.special import gammaln

__all__ = ["expansion", "single_integrals", "cross_integrals", "mono_values"]


# ---------------------------------------------------------------- symbolic expansion
def _set_partitions(n: int):
    if n == 0:
        yield []
        return
    for p in _set_partitions(n - 1):
        for i in range(len(p)):
            yield p[:i] + [p[i] + [n - 1]] + p[i + 1 :]
        yield p + [[n - 1]]


def _deriv(q: int) -> list[tuple[int, float]]:
    return [(q, float(q)), (q + 1, -1.0)] if q else [(1, -1.0)]


def _bump(mono: tuple, idx: list[int]) -> tuple:
    mm = list(mono)
    for i in idx:
        mm[i] += 1
    return tuple(mm)


@cache
def _stein(i: int, k: int, q: int, q2: int, two: bool) -> dict:
    """``E[X^i Y^k psi_q(u+z) psi_q2(v+z')]`` as ``{(q, q2, mono): coef}``,
    ``mono`` = exponents of ``(s^2, h_j, h'_j, h_l, h'_l)`` (two=False: no z')."""
    out: dict = defaultdict(float)
    if i == 0 and k == 0:
        return {(q, q2, (0, 0, 0, 0, 0)): 1.0}
    if i > 0:
        i1, k1, base, rest = i - 1, k, 1, i - 1
    else:
        i1, k1, base, rest = i, k - 1, 3, k - 1
    if rest > 0:  # pair with another X (Y)
        sub = _stein(i1 - 1, k1, q, q2, two) if i > 0 else _stein(i1, k1 - 1, q, q2, two)
        for (a, b, mono), c in sub.items():
            out[(a, b, _bump(mono, [0]))] += c * rest
    for qq, cq in _deriv(q):
        for (a, b, mono), c in _stein(i1, k1, qq, q2, two).items():
            out[(a, b, _bump(mono, [0, base]))] += c * cq
    if two:
        for qq, cq in _deriv(q2):
            for (a, b, mono), c in _stein(i1, k1, q, qq, two).items():
                out[(a, b, _bump(mono, [0, base + 1]))] += c * cq
    return {key: v for key, v in out.items() if v != 0.0}


def _side(diag: bool, primed: bool) -> list:
    """``a_jl`` as ``[(coef, [slots])]``, slot = (#p, #p', #X, #Y)."""

    def sl(nx, ny):
        return (0, 1, nx, ny) if primed else (1, 0, nx, ny)

    if diag:
        return [(1.0, [sl(2, 0)]), (-1.0, [sl(1, 0), sl(1, 0)])]
    return [(1.0, [sl(1, 1)]), (-1.0, [sl(1, 0), sl(0, 1)])]


@lru_cache(maxsize=4)
def expansion(diag: bool, cross: bool) -> tuple[list, list, np.ndarray]:
    """``(shapes, monos, coef)``: ``E_V[a a'] = sum coef[s, m] mono_m I_s``.

    cross: ``a = a_jl(g)``, ``a' = a_jl(g')``; else ``a' = a``. ``shape = (n, n', blocks)``,
    ``blocks`` a sorted tuple of ``(q, q')`` (per-class factor ``E[psi_q psi_q']``).
    """
    res: dict = defaultdict(lambda: defaultdict(float))
    for ca, sa in _side(diag, False):
        for cb, sb in _side(diag, cross):
            slots = sa + sb
            n = sum(s[0] for s in slots)
            n2 = sum(s[1] for s in slots)
            for part in _set_partitions(len(slots)):
                acc = {((), (0, 0, 0, 0, 0)): ca * cb}
                for blk in part:
                    c = [sum(slots[t][r] for t in blk) for r in range(4)]
                    if not cross:
                        c = [c[0] + c[1], 0, c[2], c[3]]
                    d = _stein(c[2], c[3], c[0], c[1], cross)
                    new: dict = defaultdict(float)
                    for (bl, mono), x in acc.items():
                        for (qa, qb, m2), y in d.items():
                            new[
                                (bl + ((qa, qb),), tuple(map(sum, zip(mono, m2, strict=True))))
                            ] += x * y
                    acc = new
                for (bl, mono), x in acc.items():
                    key: tuple = (
                        (n, n2, tuple(sorted(bl))) if cross else (n + n2, 0, tuple(sorted(bl)))
                    )
                    res[key][mono] += x
    shapes = [k for k, d in res.items() if any(abs(x) > 1e-12 for x in d.values())]
    monos = sorted({mm for k in shapes for mm, x in res[k].items() if abs(x) > 1e-12})
    coef = np.zeros((len(shapes), len(monos)))
    for i, k in enumerate(shapes):
        for mm, x in res[k].items():
            if abs(x) > 1e-12:
                coef[i, monos.index(mm)] = x
    return shapes, monos, coef


# ---------------------------------------------------------------- inner integrals
_STEP = 0.4  # Gaussian trapezoid step in units of the std
_HU = 0.25  # Laplace-variable step at the peak
_STRETCH = 4.0
_T0 = -6.0


def _gauss_nodes(scale: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    if scale < 1e-12:
        return np.zeros(1), np.ones(1)
    h = min(step / scale, 0.5)
    n = int(math.ceil(9.0 / h))
    x = np.arange(-n, n + 1) * h
    w = np.exp(-x * x / 2)
    return x, w / w.sum()


def _falling(C: float, k: int) -> float:
    out = 1.0
    for i in range(k):
        out *= C - i
    return out


def _falling_table(C: float, kmax: int) -> np.ndarray:
    """``(C)_k`` for k = 0..kmax."""
    return np.concatenate([[1.0], np.cumprod(C - np.arange(kmax))])


def _laplace_grid(a: float, C: float, Q: int, hu: float, step: float):
    """Nodes and weights for a Laplace variable: ``u = c + t - S (e^{-(t-t0)/S} - e^{t0/S})``
    (local step ``hu`` near the peak ``c = -log C - a^2/2`` and to its right, growing
    exponentially to the left, where the integrand decays like ``e^{nu}``, n >= 1)."""
    A = a * a
    c = -math.log(C) - A / 2
    lo = min(c, -9.0 * a) - 36.0  # Gaussian nodes reach 9 sd; psi_q(x) <= e^{qx}
    hi = 9.0 * a + 4.0
    if C > 4:  # the integrand is below Phi_1(u)^{C-4}, Phi_1 = E f(u + z)
        x, w = _gauss_nodes(a, step)
        uu = np.arange(c, hi + 1.0, 0.5)
        g1 = (-np.expm1(-np.exp(uu[:, None] + a * x[None, :]))) @ w
        with np.errstate(divide="ignore"):
            dead = (C - 4) * np.log1p(-np.minimum(g1, 1.0)) < -90
        if dead.any():
            hi = min(hi, float(uu[np.argmax(dead)]))
    S, t0 = _STRETCH, _T0

    def u_of(t):
        return c + t - S * (np.exp(-(t - t0) / S) - math.exp(t0 / S))

    t_lo = 0.0
    while u_of(t_lo) > lo:
        t_lo -= 1.0
    t = np.arange(t_lo, hi - c + hu, hu)
    return u_of(t), hu * (1 + np.exp(-(t - t0) / S))


@lru_cache(maxsize=4)
def _unique_blocks(cross: bool) -> tuple[list, np.ndarray, np.ndarray]:
    """Sorted unique block tuples of the shapes (diag then off), the index of each shape's
    tuple, and the scalar factor exponent data ``(k, n, n')`` per shape."""
    shapes = expansion(True, cross)[0] + expansion(False, cross)[0]
    blocks = sorted({sh[2] for sh in shapes})
    pos = {bl: t for t, bl in enumerate(blocks)}
    idx = np.array([pos[sh[2]] for sh in shapes])
    data = np.array([(len(sh[2]), sh[0], max(sh[1], 1)) for sh in shapes])
    return blocks, idx, data


@lru_cache(maxsize=2)
def _max_q(cross: bool) -> int:
    """Largest softmax power ``q`` in the shapes (both q's for the cross term)."""
    shapes = expansion(True, cross)[0] + expansion(False, cross)[0]
    return max(max(bl) if cross else bl[0] for s in shapes for bl in s[2])


def _products(Psi, cross, L, C, W):
    """``sum_{u,v} prod_B Psi[B] Phi^{C-k} W`` for every shape; Psi[B] and L have a leading
    batch axis; depth-first over the sorted block tuples (at most 4 partial products live)."""
    blocks, idx, data = _unique_blocks(cross)
    batch = L.shape[0]
    sums = np.zeros((len(blocks), batch))
    ek: dict = {}
    stack: list = []  # (prefix, product)
    for t, bl in enumerate(blocks):
        k = len(bl)
        if k > C:
            continue
        while stack and stack[-1][0] != bl[: len(stack[-1][0])]:
            stack.pop()
        if stack and len(stack[-1][0]) > k:
            stack = [e for e in stack if len(e[0]) <= k and e[0] == bl[: len(e[0])]]
        r = len(stack[-1][0]) if stack else 0
        prod = stack[-1][1] if stack else None
        for j in range(r, k):
            prod = Psi[bl[j]] if prod is None else prod * Psi[bl[j]]
            stack.append((bl[: j + 1], prod))
        if k not in ek:
            ek[k] = np.broadcast_to((np.exp((C - k) * L) if C > k else 1.0) * W, L.shape)
        sums[t] = np.einsum("bi,bi->b", prod.reshape(batch, -1), ek[k].reshape(batch, -1))
    k, n, n2 = data[:, 0], data[:, 1], data[:, 2]
    fall = _falling_table(C, int(k.max()))[k]
    fac = fall * np.exp(-gammaln(n) - gammaln(n2))
    return (sums[idx] * fac[:, None]).T  # (batch, n_shapes)


def _default_hu(C: float) -> float:
    """Laplace-variable step: C <= 4 has no Phi^{C-k} damping and needs a finer grid."""
    return 0.2 if C <= 4 else 0.25


def single_integrals(a: float, C: float, hu: float | None = None, step: float = _STEP):
    """``I_shape(a)`` of the gamma term (one Laplace variable); shapes of
    ``expansion(True, False)`` then ``expansion(False, False)``."""
    Q = _max_q(False)
    hu = _default_hu(C) if hu is None else hu
    x, w = _gauss_nodes(a, step)
    u, wu = _laplace_grid(a, C, Q, hu, step)
    U = u[:, None] + a * x[None, :]
    EU = np.exp(U)
    Psi = {(q, 0): (np.exp(q * U - EU) @ w)[None] for q in range(Q + 1)}
    with np.errstate(divide="ignore"):
        L = np.log1p(-np.minimum(-np.expm1(-EU) @ w, 1.0))[None]
    return _products(Psi, False, L, C, wu[None])[0]


def cross_integrals(
    a: float, b: float, rho, C: float, hu: float | None = None, step: float = _STEP
) -> np.ndarray:
    """``I_shape(a, b, rho)`` of the cross term for an array of ``rho`` (rows), shapes of
    ``expansion(True, True)`` then ``expansion(False, True)`` (columns)."""
    rhos = np.atleast_1d(np.asarray(rho, dtype=float))
    hu = _default_hu(C) if hu is None else hu
    Q = _max_q(True)
    x1, w1 = _gauss_nodes(max(a, b * rhos.max()), step)
    u, wu = _laplace_grid(a, C, Q, hu, step)
    v, wv = _laplace_grid(b, C, Q, hu, step)
    U = u[:, None] + a * x1[None, :]
    EU = np.exp(U)
    F = np.stack([np.exp(q * U - EU) for q in range(Q + 1)] + [-np.expm1(-EU)])
    F *= w1[None, None, :]
    nu, nv, n1, nr = u.size, v.size, x1.size, rhos.size
    Psi = {(p, q): np.empty((nr, nu, nv)) for p in range(Q + 1) for q in range(Q + 1)}
    L = np.empty((nr, nu, nv))
    for r, rho_r in enumerate(rhos):
        s = math.sqrt(max(0.0, 1.0 - rho_r * rho_r))
        x2, w2 = _gauss_nodes(b * s, step)
        Y = (v[None, :] + b * rho_r * x1[:, None])[:, :, None] + (b * s * x2)[None, None, :]
        EY = np.exp(np.minimum(Y, 40.0))  # f(40) = 0 exactly; keeps EY^q finite
        G = np.empty((Q + 2, n1, nv))
        psi = np.exp(-EY)
        for q in range(Q + 1):
            if q:
                psi *= EY
            G[q] = psi @ w2
        G[Q + 1] = -np.expm1(-EY) @ w2  # (Q+2, n1, nv)
        P = F.reshape(-1, n1) @ G.transpose(1, 0, 2).reshape(n1, -1)
        P = P.reshape(Q + 2, nu, Q + 2, nv)
        D = F[Q + 1].sum(axis=1)[:, None] + (w1 @ G[Q + 1])[None, :] - P[Q + 1, :, Q + 1, :]
        with np.errstate(divide="ignore"):
            L[r] = np.log1p(-np.minimum(D, 1.0))
        for (p, q), arr in Psi.items():
            arr[r] = P[p, :, q, :]
    W = (wu[:, None] * wv[None, :])[None]
    out = _products(Psi, True, L, C, W)
    return out if np.ndim(rho) else out[0]


def mono_values(monos: list, s2: float, hj: float, hj2: float, hl: float, hl2: float) -> np.ndarray:
    base = np.array([s2, hj, hj2, hl, hl2])
    return np.array([np.prod(base ** np.array(mm)) for mm in monos])
