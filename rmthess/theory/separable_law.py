"""``SeparableGMPLaw``: the separable GMP law (:mod:`rmthess.theory.separable_gmp`) as a
:class:`~rmthess.theory.law.GMPLaw`-like object, with a checked support."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_int
from rmthess.theory.gmp import _as_array
from rmthess.theory.law import GMPLaw, _x_of_theta
from rmthess.theory.separable_gmp import (
    _density,
    _Problem,
    _scan_points,
    _stieltjes,
    _support_scaled,
    separable_gmp_moments,
)

__all__ = ["MASS_TOL", "SeparableGMPLaw"]

MASS_TOL = 1e-7
""":class:`SeparableGMPLaw` checks ``zero_mass + ac_mass`` and the quadrature ``M1``, ``M2``
against the exact values to this (relative) tolerance; on a shortfall the scan is refined."""
_MAX_REFINE = 3


class SeparableGMPLaw(GMPLaw):
    """Limiting spectral law of ``(1/N) sum_i a_i x_i x_i^T`` with ``x = Sigma^{1/2} g``.

    The :class:`~rmthess.theory.law.GMPLaw` interface (``pdf``, ``cdf``, ``stieltjes``,
    ``moment``, ``mean``, ``var``, ``std``, ``support``, ``zero_mass``, ``ac_mass``; the cdf
    machinery is GMPLaw's). ``sigma_eigs``/``sigma_weights``: the spectrum of ``Sigma``.
    The support is found by a scan (:func:`separable_gmp_support`) and **checked**: the
    continuous mass and quadrature moments ``M1``, ``M2`` against the exact ones to
    :data:`MASS_TOL`, the scan refined (``n_scan`` doubled, up to 3 times) on a shortfall,
    then a ``RuntimeWarning`` with the errors (``check`` holds them).

    >>> law = SeparableGMPLaw([1.0], [1.0], 0.5, [1.0, 3.0])
    >>> round(law.moment(1), 12), round(law.moment(2), 12)   # tau_1 m_1, g tau_1^2 + tau_2
    (2.0, 7.0)
    """

    def __init__(
        self,
        atoms: ArrayLike,
        weights: ArrayLike,
        gamma: float,
        sigma_eigs: ArrayLike,
        sigma_weights: ArrayLike | None = None,
        *,
        n_scan: int = 2048,
    ) -> None:
        self._pb = _Problem(atoms, weights, gamma, sigma_eigs, sigma_weights)
        pb = self._pb
        self.atoms, self.weights, self.gamma = pb.atoms, pb.weights, pb.gamma
        self.sigma_eigs, self.sigma_weights = pb.eigs, pb.eig_weights
        self.zero_mass = pb.zero_mass
        self.n_scan = check_int("n_scan", n_scan, 16, 10**7)
        self._scale = pb.scale
        self._sup: Any = None  # support in rescaled units, found once
        self._cdf_parts = None
        self._check: dict = {}

    def __repr__(self) -> str:
        return (
            f"SeparableGMPLaw(<{self.atoms.size} atoms>, <{self.sigma_eigs.size} sigma "
            f"eigenvalues>, gamma={self.gamma:g})"
        )

    @property
    def check(self) -> dict:
        """The support check (computes the support): ``mass_error``, ``M1_error``,
        ``M2_error`` (class docstring), ``rounds`` of refinement, ``n_scan``, ``tol``."""
        self._support_rescaled()
        return dict(self._check)

    def stieltjes(self, z: ArrayLike) -> np.ndarray:
        """``s(z)``; see :func:`separable_gmp_stieltjes`."""
        zz = _as_array("z", z, np.complex128, "complex")
        if not (np.all(np.isfinite(zz.real)) and np.all(np.isfinite(zz.imag))):
            raise ValueError("z must be finite complex numbers (no NaN or inf)")
        return _stieltjes(self._pb, zz.ravel())[0].reshape(zz.shape)

    def _pdf(self, xx):
        return _density(self._pb, xx)[0]

    def _support_rescaled(self):
        if self._sup is None:
            self._find_support()
        return self._sup

    def _find_support(self) -> None:
        pb = self._pb
        if pb.tau.size == 0:
            self._sup = np.empty((0, 2))
            self._check = {"mass_error": 0.0, "M1_error": 0.0, "M2_error": 0.0, "rounds": 0}
            return
        M = separable_gmp_moments(
            self.atoms, self.weights, self.gamma, self.sigma_eigs, self.sigma_weights, 2
        )
        n = self.n_scan
        for rnd in range(_MAX_REFINE + 1):
            sup, _ins = _support_scaled(pb, _scan_points(pb, n))
            self._sup = np.array(sup, dtype=np.float64).reshape(-1, 2)
            self._cdf_parts = None
            err = self._errors(M)
            self._check = dict(err, rounds=rnd, n_scan=n, tol=MASS_TOL)
            if max(err.values()) <= MASS_TOL:
                return
            n *= 2
        warnings.warn(
            f"SeparableGMPLaw: the support found carries mass error {err['mass_error']:.2g} "
            f"and moment errors {err['M1_error']:.2g} (M1), {err['M2_error']:.2g} (M2) after "
            f"{_MAX_REFINE} refinements (n_scan {n // 2}): a piece of the spectrum may be "
            "narrower than the scan",
            RuntimeWarning,
            stacklevel=3,
        )

    def _errors(self, M: np.ndarray) -> dict:
        """Mass and quadrature moments of the found law against the exact ones: ``x^k``
        times the derivative of each cdf panel (a polynomial in ``theta``), Gauss-Legendre."""
        gx, gw = np.polynomial.legendre.leggauss(48)
        mass = m1 = m2 = 0.0
        for a, b, breaks, polys, offsets in self._parts():
            mass += offsets[-1]
            for p0, p1, poly in zip(breaks[:-1], breaks[1:], polys, strict=True):
                th = 0.5 * (p0 + p1) + 0.5 * (p1 - p0) * gx
                dm = poly.deriv()(th) * gw * 0.5 * (p1 - p0)
                xs = _x_of_theta(a, b, th)
                m1 += float(np.dot(dm, xs))
                m2 += float(np.dot(dm, xs * xs))
        s2 = max(M[2], 1e-300)
        return {
            "mass_error": abs(self.zero_mass + mass - 1.0),
            "M1_error": abs(m1 - M[1]) / math.sqrt(s2),
            "M2_error": abs(m2 - M[2]) / s2,
        }

    def support(self) -> list[tuple[float, float]]:
        """Support intervals of the continuous part (checked, class docstring)."""
        sc = self._scale
        return [(float(lo * sc), float(hi * sc)) for lo, hi in self._support_rescaled()]

    def moment(self, k: int) -> float:
        """Exact ``int x^k dmu`` (:func:`separable_gmp_moments`)."""
        k = check_int("k", k, 0, 60)
        return float(
            separable_gmp_moments(
                self.atoms, self.weights, self.gamma, self.sigma_eigs, self.sigma_weights, k
            )[k]
        )

    def var(self) -> float:
        """``M_2 - M_1^2 = gamma tau_1^2 m_2 + tau_2 m_1^2 - tau_1^2 m_1^2``."""
        return self.moment(2) - self.moment(1) ** 2
