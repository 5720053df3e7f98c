"""Laws of whole-layer spectra as objects: :class:`MatrixGMPLaw` and :class:`MixtureLaw`.

Both follow the :class:`rmthess.theory.law.GMPLaw` interface (``pdf``, ``cdf``,
``stieltjes``, ``moment``, ``mean``, ``var``, ``support``, ``zero_mass``, ``ac_mass``):

* :class:`MatrixGMPLaw`: the law of ``(1/N) sum_i A_i (x) x_i x_i^T`` for a law of
  symmetric ``K x K`` matrices given by atoms, from the matrix GMP solver
  (:mod:`rmthess.theory.matrix_gmp`); support and cdf are numerical (grid scan, edges
  refined by bisection on the inside/outside classification, Chebyshev quadrature in
  the edge-regularising variable ``x = a + (b - a) sin^2(theta/2)``).
* :class:`MixtureLaw`: ``zero * delta_0 + sum_c w_c mu_c`` with scalar :class:`GMPLaw`
  components: the law of a block-diagonal matrix (its blocks' laws mixed), and the exact
  reduction of an exchangeable layer law (docs/theory.md 9.1.3).

Moments are exact in both: :func:`matrix_gmp_moments` solves (MGMP) as a power series.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as _cheb
from numpy.typing import ArrayLike

from rmthess._checks import check_int
from rmthess.theory.law import _theta_of_x, _x_of_theta
from rmthess.theory.matrix_gmp import (
    _Factored,
    _solve,
    check_matrix_law,
    matrix_gmp_zero_mass,
)

__all__ = ["MatrixGMPLaw", "MixtureLaw", "matrix_gmp_moments"]


def matrix_gmp_moments(atoms: ArrayLike, weights: ArrayLike, gamma: float, kmax: int) -> np.ndarray:
    """Exact moments ``M_0..M_kmax`` of the layer law (``tr`` of the matrix moments / K).

    With ``G(z) = -sum_k M_k z^{-k-1}`` (matrix moments, ``M_0 = I``) and ``u = 1/z``,
    (MGMP) becomes ``M(u) = (I - u R(u))^{-1}`` with
    ``R(u) = sum_{n>=0} gamma^n u^n E[A (M(u) A)^n]`` (expand ``(I + gamma G A)^{-1}`` in
    powers of ``u``); each pass fixes one more coefficient. ``M_1 = E A``,
    ``M_2 = gamma E[A^2] + (E A)^2``: ``tr M_2 / K = F_diag + (K - 1) F_off`` when all
    diagonal (off-diagonal) entries are exchangeable. Cost ``O(kmax^4 n K^3)``.
    """
    a, w, gamma = check_matrix_law(atoms, weights, gamma)
    kmax = check_int("kmax", kmax, 0, 12)
    K = a.shape[1]
    L = kmax + 1
    eye = np.eye(K)
    M = np.zeros((L, K, K))
    M[0] = eye

    def mul(P, Q):  # truncated series product, P: (L, n, K, K), Q: (L, n, K, K)
        out = np.zeros_like(P)
        for i in range(L):
            for j in range(L - i):
                out[i + j] += P[i] @ Q[j]
        return out

    for _ in range(kmax):
        MA = M[:, None] @ a[None]  # (L, n, K, K)
        P = np.zeros((L,) + a.shape)
        P[0] = a
        R = np.zeros((L, K, K))
        for nn in range(kmax):
            R[nn:] += gamma**nn * np.einsum("n,lnij->lij", w, P[: L - nn])
            P = mul(P, MA)
        new = np.zeros_like(M)
        new[0] = eye
        for k in range(1, L):
            new[k] = sum(R[j - 1] @ new[k - j] for j in range(1, k + 1))
        M = new
    return np.trace(M, axis1=1, axis2=2) / K


class MixtureLaw:
    """``zero * delta_0 + sum_c w_c mu_c`` with scalar GMP laws ``mu_c`` (weights sum to
    ``1 - zero``). ``zero_mass`` also counts the components' own atoms at 0."""

    def __init__(
        self, components: list, weights: ArrayLike, zero: float = 0.0, name: str = "mixture"
    ) -> None:
        self.components = list(components)
        self.weights = np.asarray(weights, float)
        self.zero = float(zero)
        self.name = name
        if not math.isclose(self.weights.sum() + self.zero, 1.0, abs_tol=1e-12):
            raise ValueError("mixture weights and zero must sum to 1")
        self.zero_mass = self.zero + float(
            sum(w * c.zero_mass for w, c in zip(self.weights, self.components, strict=True))
        )

    def __repr__(self) -> str:
        return f"MixtureLaw({self.name}, {len(self.components)} components, zero={self.zero:g})"

    def _sum(self, f):
        return sum(w * f(c) for w, c in zip(self.weights, self.components, strict=True))

    def pdf(self, x: ArrayLike) -> np.ndarray:
        return self._sum(lambda c: c.pdf(x))

    def stieltjes(self, z: ArrayLike) -> np.ndarray:
        z = np.asarray(z, complex)
        out = self._sum(lambda c: c.stieltjes(z))
        if self.zero:
            with np.errstate(divide="ignore", invalid="ignore"):
                out = out - self.zero / z
        return out

    def cdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, float)
        return np.clip(self._sum(lambda c: c.cdf(x)) + self.zero * (x >= 0), 0.0, 1.0)

    def moment(self, k: int) -> float:
        k = check_int("k", k, 0, 200)
        return float(self._sum(lambda c: c.moment(k))) + (self.zero if k == 0 else 0.0)

    def mean(self) -> float:
        return self.moment(1)

    def var(self) -> float:
        return self.moment(2) - self.moment(1) ** 2

    def ac_mass(self) -> float:
        return float(self._sum(lambda c: c.ac_mass()))

    def support(self) -> list[tuple[float, float]]:
        """Union of the components' support intervals (merged where they overlap)."""
        iv = sorted(i for c in self.components for i in c.support())
        out: list[list[float]] = []
        for lo, hi in iv:
            if out and lo <= out[-1][1]:
                out[-1][1] = max(out[-1][1], hi)
            else:
                out.append([lo, hi])
        return [(a, b) for a, b in out]

    def edges(self) -> tuple[float, float]:
        sup = self.support()
        return (sup[0][0], sup[-1][1]) if sup else (0.0, 0.0)


class MatrixGMPLaw:
    """Limiting spectral law of ``(1/N) sum_i A_i (x) x_i x_i^T``, ``A ~ nu`` (K x K).

    ``atoms`` (n, K, K) symmetric, ``weights`` (n,), ``gamma = d/N``. Numerical support
    (``n_grid`` scan points over a proven bound, each edge refined by bisection to
    ``edge_rtol``) and cdf (``n_quad`` Chebyshev nodes per support interval in ``theta``);
    ``moment`` exact (:func:`matrix_gmp_moments`); ``zero_mass`` from the rank formula
    (:func:`rmthess.theory.matrix_gmp.matrix_gmp_zero_mass`).
    """

    def __init__(
        self,
        atoms: ArrayLike,
        weights: ArrayLike,
        gamma: float,
        *,
        n_grid: int = 256,
        n_quad: int = 96,
    ) -> None:
        a, w, g = check_matrix_law(atoms, weights, gamma)
        self.atoms, self.weights, self.gamma = a, w, g
        self.K = a.shape[1]
        self._fac = _Factored(a, w, g)
        self.zero_mass = matrix_gmp_zero_mass(a, w, g)
        self.n_grid = check_int("n_grid", n_grid, 16)
        self.n_quad = check_int("n_quad", n_quad, 8)
        self._sup: list[tuple[float, float]] | None = None
        self._quad = None

    def __repr__(self) -> str:
        return f"MatrixGMPLaw(<{self.atoms.shape[0]} atoms, K={self.K}>, gamma={self.gamma:g})"

    def bound(self) -> tuple[float, float]:
        """``[lo, hi]`` containing the support: ``A >= l I`` and ``A <= u I`` give
        ``l (x) S <= H <= u (x) S`` with ``lambda_max(S) -> (1 + sqrt gamma)^2``."""
        ev = np.linalg.eigvalsh(self.atoms)
        c = (1.0 + math.sqrt(self.gamma)) ** 2
        return min(0.0, ev.min()) * c, max(0.0, ev.max()) * c

    def stieltjes(self, z: ArrayLike) -> np.ndarray:
        z = np.asarray(z, complex)
        G, _ = _solve(self._fac, z.ravel())
        return (np.trace(G, axis1=1, axis2=2) / self.K).reshape(z.shape)

    def pdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, float)
        return np.maximum(self.stieltjes(x.astype(complex)).imag, 0.0) / math.pi

    def _inside(self, x: float) -> bool:
        return bool(self.pdf(np.array([x]))[0] > 1e-9 / max(self._fac.scale, 1e-300))

    def support(self, edge_rtol: float = 1e-9) -> list[tuple[float, float]]:
        """Support intervals of the continuous part (grid scan + bisection of each edge)."""
        if self._sup is None:
            lo, hi = self.bound()
            pad = 1e-3 * (hi - lo)
            x = np.linspace(lo - pad, hi + pad, self.n_grid)
            ins = self.pdf(x) > 1e-9 / max(self._fac.scale, 1e-300)
            sup = []
            i = 0
            while i < x.size:
                if not ins[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < x.size and ins[j + 1]:
                    j += 1
                a = self._bisect(x[i - 1], x[i], edge_rtol) if i > 0 else x[i]
                b = self._bisect(x[j + 1], x[j], edge_rtol) if j + 1 < x.size else x[j]
                sup.append((float(max(a, lo)), float(min(b, hi))))  # within the proven bound
                i = j + 1
            self._sup = sup
        return list(self._sup)

    def _bisect(self, out, inn, rtol):
        """Edge between an outside point ``out`` and an inside point ``inn``."""
        width = abs(inn - out)
        while abs(inn - out) > rtol * max(width, abs(inn)):
            mid = 0.5 * (out + inn)
            if self._inside(mid):
                inn = mid
            else:
                out = mid
        return 0.5 * (out + inn)

    def edges(self) -> tuple[float, float]:
        sup = self.support()
        return (sup[0][0], sup[-1][1]) if sup else (0.0, 0.0)

    def _parts(self):
        """Per support interval ``[a, b]``: a Chebyshev interpolant (``n_quad`` points of the
        first kind on ``theta`` in ``[0, pi]``) of the mass density ``pdf(x) dx/dtheta`` with
        ``x = a + (b - a) sin^2(theta/2)`` (smooth at square-root edges), integrated exactly."""
        if self._quad is None:
            k = np.arange(self.n_quad)
            t = np.cos(np.pi * (k + 0.5) / self.n_quad)
            th = 0.5 * np.pi * (t + 1.0)
            parts = []
            for a, b in self.support():
                vals = self.pdf(_x_of_theta(a, b, th)) * 0.5 * (b - a) * np.sin(th)
                c = _cheb.chebfit(t, vals, self.n_quad - 1)
                poly = _cheb.Chebyshev(c, domain=[0.0, np.pi]).integ(lbnd=0.0)
                parts.append((a, b, poly))
            self._quad = parts
        return self._quad

    def ac_mass(self) -> float:
        """Mass of the continuous part by quadrature (``1 - zero_mass`` up to its error)."""
        return float(sum(poly(np.pi) for *_, poly in self._parts()))

    def cdf(self, x: ArrayLike) -> np.ndarray:
        """``mu((-inf, x])`` (atom at 0 included) by the Chebyshev quadrature of ``pdf``
        (spectral accuracy in ``n_quad`` for square-root edges; checked against the exact
        mixture reduction of the softmax layer law in the tests)."""
        x = np.asarray(x, float)
        out = np.where(x >= 0.0, self.zero_mass, 0.0)
        for a, b, poly in self._parts():
            val = poly(_theta_of_x(a, b, np.clip(x, a, b)))
            out = out + np.where(x <= a, 0.0, np.where(x >= b, poly(np.pi), val))
        return np.clip(out, 0.0, 1.0)

    def moment(self, k: int) -> float:
        k = check_int("k", k, 0, 12)
        return float(matrix_gmp_moments(self.atoms, self.weights, self.gamma, k)[k])

    def mean(self) -> float:
        return self.moment(1)

    def var(self) -> float:
        return self.moment(2) - self.moment(1) ** 2
