"""``GMPLaw``: the limiting spectral law of ``H = (1/N) sum_i a_i x_i x_i^T`` as an object.

In the spirit of ``scipy.stats`` (no sampling): ``pdf``, ``cdf``, ``stieltjes``, ``moment``,
``mean``, ``var``, ``support``, ``zero_mass``; all numerics come from
:mod:`rmthess.theory.gmp`. Conventions (docs/theory.md section 3): ``gamma = d/N``, ``H`` is
``d x d``, ``a_i ~ nu = sum_j w_j delta_{tau_j}``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from numpy.polynomial import chebyshev as _cheb
from numpy.typing import ArrayLike

from rmthess._checks import check_int
from rmthess.theory.gmp import (
    _as_array,
    _density,
    _prepare,
    _stieltjes,
    _support_scaled,
    check_law,
    gmp_zero_mass,
)

__all__ = ["GMPLaw", "gmp_moments"]


class Law(Protocol):
    """What the whole-layer laws share (a static type only):
    :class:`~rmthess.theory.matrix_law.MixtureLaw` and
    :class:`~rmthess.theory.matrix_law.MatrixGMPLaw`, the laws of
    :func:`~rmthess.theory.layer_laws.layer_law` and
    :func:`~rmthess.theory.layer_laws.block_diagonal_law` (:class:`GMPLaw` has no
    ``edges``)."""

    @property
    def zero_mass(self) -> float: ...

    def ac_mass(self) -> float: ...

    def edges(self) -> tuple[float, float]: ...

    def moment(self, k: int) -> float: ...

    def pdf(self, x: ArrayLike) -> np.ndarray: ...

    def cdf(self, x: ArrayLike) -> np.ndarray: ...

    def support(self) -> list[tuple[float, float]]: ...


def gmp_moments(atoms: ArrayLike, weights: ArrayLike, gamma: float, kmax: int) -> np.ndarray:
    """Exact moments ``M_0..M_kmax`` of the limiting law (atom at 0 included).

    With ``s(z) = -sum_k M_k z^{-k-1}`` and ``u = 1/z``, (GMP) becomes the power-series
    fixed point ``M(u) = 1 + u sum_{n>=0} m_{n+1} gamma^n u^n M(u)^{n+1}`` where
    ``m_k = E_nu[tau^k]``; each pass fixes one more coefficient. In particular
    ``M_1 = m_1``, ``M_2 = gamma m_2 + m_1^2``, ``M_3 = gamma^2 m_3 + 3 gamma m_1 m_2 + m_1^3``.
    Exact up to floating-point round-off in the sums (cost ``O(kmax^4)``).
    """
    a, w, gamma = check_law(atoms, weights, gamma)
    kmax = check_int("kmax", kmax, 0, 200)
    K = kmax + 1
    m = np.array([float(np.dot(w, a**k)) for k in range(K + 1)])
    M = np.zeros(K)
    M[0] = 1.0
    for _ in range(kmax):
        new = np.zeros(K)
        new[0] = 1.0
        P = M.copy()  # M^{n+1}, truncated
        for n in range(kmax):  # term u^{n+1} * m_{n+1} gamma^n M^{n+1}
            coef = m[n + 1] * gamma**n
            new[n + 1 :] += coef * P[: K - n - 1]
            P = np.convolve(P, M)[:K]
        M = new
    return M


def _x_of_theta(a, b, th):
    """``x = a + (b-a) sin^2(th/2)``, evaluated from the nearer end so that ``x - a`` and
    ``b - x`` carry full relative precision (the density may be singular at either edge)."""
    L = b - a
    return np.where(th <= 0.5 * np.pi, a + L * np.sin(0.5 * th) ** 2, b - L * np.cos(0.5 * th) ** 2)


def _theta_of_x(a, b, x):
    """Inverse of :func:`_x_of_theta` on ``[a, b]``."""
    L = b - a
    lo = 2.0 * np.arcsin(np.sqrt(np.clip((x - a) / L, 0.0, 1.0)))
    hi = 2.0 * np.arccos(np.sqrt(np.clip((b - x) / L, 0.0, 1.0)))
    return np.where(x - a <= b - x, lo, hi)


class GMPLaw:
    """Limiting spectral law ``mu`` of ``(1/N) sum_i a_i x_i x_i^T`` with ``a ~ nu``.

    ``mu = zero_mass * delta_0 + rho(x) dx`` where ``rho`` solves the GMP equation
    ``s = 1/(-z + E_nu[tau/(1 + gamma tau s)])`` (docs/theory.md section 3).

    Parameters
    ----------
    atoms, weights : array_like
        ``nu = sum_j weights_j delta_{atoms_j}``; atoms real (any sign), weights >= 0, sum 1.
    gamma : float
        ``d/N``, in ``rmthess.theory.gmp.GAMMA_RANGE = [1e-12, 1e12]`` (``ValueError``
        otherwise, see Notes).

    Notes
    -----
    Small ``gamma``: the law does *not* tend to ``nu``. The moment recursion gives
    ``M_1 = E[tau]`` and ``M_2 - M_1^2 = gamma E[tau^2]``, so ``mu`` concentrates at the
    single point ``E[tau]`` (law of large numbers: ``H -> E[a] I`` as ``N/d -> inf``) with
    standard deviation ``sqrt(gamma E[tau^2]) >= sqrt(gamma) |E[tau]|``. Below
    ``gamma ~ 1e-12`` that width is under ~1e6 ulps of its position and float64 ``x`` cannot
    resolve the density (at ``gamma = 1e-17`` the old code lost ``6e-9`` of the mass
    silently): the constructor refuses ``gamma`` outside ``[1e-12, 1e12]`` (the large-gamma
    end mirrors it: the nonzero eigenvalues are ``~ gamma tau`` with relative width
    ``~ 1/sqrt(gamma)``). :meth:`moment` is exact at any ``gamma``
    (:func:`gmp_moments` accepts any ``gamma > 0``).

    The support, the reduced atoms and the cdf interpolant are computed once per law and
    cached (the support costs ``O(n_atoms^2)`` at worst: seconds for thousands of atoms).

    Examples
    --------
    >>> import numpy as np
    >>> law = GMPLaw([1.0], [1.0], 0.5)          # Marchenko-Pastur, ratio 1/2
    >>> round(law.moment(2), 12)                  # gamma + 1
    1.5
    >>> x = np.array([0.1, 1.0, 2.0])             # MP density sqrt((b-x)(x-a)) / (2 pi g x)
    >>> a, b = (1 - np.sqrt(0.5)) ** 2, (1 + np.sqrt(0.5)) ** 2
    >>> mp = np.sqrt((b - x) * (x - a)) / (2 * np.pi * 0.5 * x)
    >>> bool(np.allclose(law.pdf(x), mp, rtol=1e-12, atol=0))
    True
    >>> round(float(law.cdf(np.inf)), 12), law.zero_mass
    (1.0, 0.0)
    """

    def __init__(self, atoms: ArrayLike, weights: ArrayLike, gamma: float) -> None:
        # from the raw input, as gmp_density does (normalising the weights twice could move
        # them by an ulp): pdf/support then agree with gmp_density/gmp_support bit for bit
        self._tau, self._w, self._w0, _, self._scale = _prepare(atoms, weights, gamma)
        a, w, g = check_law(atoms, weights, gamma)
        self.atoms = a
        self.weights = w
        self.gamma = g
        self.zero_mass = gmp_zero_mass(a, w, g)
        self._sup = None  # support in rescaled units (max|tau| = 1), computed once
        self._cdf_parts = None

    def __repr__(self) -> str:
        return f"GMPLaw(<{self.atoms.size} atoms>, gamma={self.gamma:g})"

    # -- transforms and density ---------------------------------------------------------
    def _support_rescaled(self):
        if self._sup is None:
            self._sup = _support_scaled(self._tau, self._w, self.gamma)
        return self._sup

    def stieltjes(self, z: ArrayLike) -> np.ndarray:
        """``s(z)``; see :func:`rmthess.theory.gmp.gmp_stieltjes` (cached support)."""
        zz = _as_array("z", z, np.complex128, "complex")
        if not (np.all(np.isfinite(zz.real)) and np.all(np.isfinite(zz.imag))):
            raise ValueError("z must be finite complex numbers (no NaN or inf)")
        sup = self._support_rescaled()
        s, _ = _stieltjes(zz.ravel(), self._tau, self._w, self._w0, self.gamma, self._scale, sup)
        return s.reshape(zz.shape)

    def pdf(self, x: ArrayLike) -> np.ndarray:
        """Density of the absolutely continuous part (the atom at 0 excluded); see
        :func:`rmthess.theory.gmp.gmp_density` (same values, cached support)."""
        xx = _as_array("x", x, np.float64, "real")
        if not np.all(np.isfinite(xx)):
            raise ValueError("x must be finite real numbers (no NaN or inf)")
        return self._pdf(xx)

    def _pdf(self, xx):
        sup = self._support_rescaled()
        return _density(xx, self._tau, self._w, self._w0, self.gamma, self._scale, sup)

    # -- support -------------------------------------------------------------------------
    def support(self) -> list[tuple[float, float]]:
        """Support of the absolutely continuous part: sorted disjoint intervals (exact edges,
        see :func:`rmthess.theory.gmp.gmp_support`). The atom at 0 is not an interval."""
        sc = self._scale
        return [(float(lo * sc), float(hi * sc)) for lo, hi in self._support_rescaled()]

    # -- distribution function -----------------------------------------------------------
    def _parts(self):
        """Per interval ``[a, b]``, ``x = a + (b-a)(1 - cos theta)/2`` (smooth at
        square-root edges) and an adaptive piecewise Chebyshev interpolant (degree 32 per
        panel, panels halved until the last coefficients are below ``1e-13``) of the mass
        density in ``theta``; returns ``(a, b, breaks, polys, offsets)`` per interval.

        The intervals are the support intervals, split at ``x = 0`` where 0 is inside: the
        density can vary on every scale down to 0 there (atoms spread over decades put bulks
        at all scales near 0; near the hard edge ``gamma ~ 1 - nu({0})`` a peak
        ``~ |x|^(-1/2)`` down to ``|x| ~ (1 - nu({0}) - gamma)^2 min|tau|``), and the map
        ``x ~ theta^2`` at an end of an interval resolves it, where a panel in the middle of
        an interval stops at ``theta``-width ``1e-10``, i.e. ``1e-10 (b - a)`` in ``x``."""
        if self._cdf_parts is None:
            pieces = []
            for a, b in self.support():
                pieces += [(a, 0.0), (0.0, b)] if a < 0.0 < b else [(a, b)]
            self._cdf_parts = self._build_parts(pieces)
        return self._cdf_parts

    def _build_parts(
        self, intervals: list[tuple[float, float]], deg: int = 32, tol: float = 1e-13
    ) -> list:
        k = np.arange(deg + 1)
        cheb_t = np.cos(np.pi * (k + 0.5) / (deg + 1))  # Chebyshev points of the first kind
        todo = [
            (i, j * np.pi / 2, (j + 1) * np.pi / 2) for i in range(len(intervals)) for j in (0, 1)
        ]
        done: list[list[tuple]] = [[] for _ in intervals]
        ab = np.array(intervals, dtype=float).reshape(-1, 2)
        for _level in range(40):
            if not todo:
                break
            idx = np.array([p[0] for p in todo])
            lo = np.array([p[1] for p in todo])
            hi = np.array([p[2] for p in todo])
            th = 0.5 * (lo + hi)[:, None] + 0.5 * (hi - lo)[:, None] * cheb_t[None, :]
            a = ab[idx, 0][:, None]
            half = 0.5 * (ab[idx, 1] - ab[idx, 0])[:, None]
            vals = self._pdf(_x_of_theta(a, a + 2.0 * half, th)) * half * np.sin(th)
            coefs = _cheb.chebfit(cheb_t, vals.T, deg).T  # interpolation (deg+1 points)
            nxt = []
            for r, (i, p0, p1) in enumerate(todo):
                c = coefs[r]
                # also stop where the panel is below ~500 ulps wide in x (support width
                # ~sqrt(gamma) at tiny gamma): the density cannot be resolved there, and
                # halving further would never converge (exponential panel count)
                x_width = (p1 - p0) * (ab[i, 1] - ab[i, 0])
                unresolved = x_width <= 1e-13 * np.abs(ab[i]).max()
                if np.abs(c[-3:]).max() * (p1 - p0) <= tol or p1 - p0 < 1e-10 or unresolved:
                    poly = _cheb.Chebyshev(c, domain=[p0, p1]).integ(lbnd=p0)
                    done[i].append((p0, p1, poly))
                else:
                    pm = 0.5 * (p0 + p1)
                    nxt += [(i, p0, pm), (i, pm, p1)]
            todo = nxt
        parts = []
        for (a, b), d in zip(ab, done, strict=True):
            d.sort(key=lambda p: p[0])
            breaks = np.array([p[0] for p in d] + [np.pi])
            polys = [p[2] for p in d]
            seg = np.array([P(p1) for (p0, p1, P) in d])
            parts.append(
                (float(a), float(b), breaks, polys, np.concatenate([[0.0], np.cumsum(seg)]))
            )
        return parts

    def ac_mass(self) -> float:
        """Total mass of the absolutely continuous part (``1 - zero_mass`` in exact arithmetic;
        computed by adaptive Chebyshev quadrature of ``pdf``, so it doubles as a check)."""
        return float(sum(part[4][-1] for part in self._parts()))

    def cdf(self, x: ArrayLike) -> np.ndarray:
        """``mu((-inf, x])`` including the atom at 0, by quadrature of ``pdf``.

        Adaptive piecewise Chebyshev quadrature in ``theta`` (see ``_parts``); accuracy
        ~1e-12 (checked against scipy's adaptive quadrature in the tests; total mass within
        ~1e-13 of 1 for 5000 signed atoms over 6 decades); exactly 0 below the support,
        exactly 1 above it, and monotone up to ~1e-13."""
        x0 = _as_array("x", x, np.float64, "real")
        if np.any(np.isnan(x0)):
            raise ValueError("x must not contain NaN (+-inf are allowed: cdf 0 and 1)")
        x = np.atleast_1d(x0).ravel()
        out = np.where(x >= 0.0, self.zero_mass, 0.0)
        for a, b, breaks, polys, offsets in self._parts():
            xc = np.clip(x, a, b)
            th = _theta_of_x(a, b, xc)
            idx = np.clip(np.searchsorted(breaks, th, side="right") - 1, 0, len(polys) - 1)
            val = offsets[idx].copy()
            for j in np.unique(idx):
                sel = idx == j
                val[sel] += polys[j](th[sel])
            val = np.where(x <= a, 0.0, np.where(x >= b, offsets[-1], val))
            out = out + val
        # above the support (and the atom at 0) the mass is 1 exactly, not 1 -+ round-off
        top = max([0.0] + [b for _a, b in self.support()])
        out = np.where(x >= top, 1.0, out)
        return np.clip(out, 0.0, 1.0).reshape(x0.shape)

    # -- moments -------------------------------------------------------------------------
    def moment(self, k: int) -> float:
        """Exact ``int x^k dmu`` from the moment recursion (:func:`gmp_moments`)."""
        k = check_int("k", k, 0, 200)
        return float(gmp_moments(self.atoms, self.weights, self.gamma, k)[k])

    def mean(self) -> float:
        """``E_nu[tau]``."""
        return self.moment(1)

    def var(self) -> float:
        """``M_2 - M_1^2 = gamma E_nu[tau^2]``."""
        return self.moment(2) - self.moment(1) ** 2

    def std(self) -> float:
        """``sqrt(var()) = sqrt(gamma E_nu[tau^2])``."""
        return math.sqrt(max(self.var(), 0.0))
