"""Frobenius limits of the Hessian blocks at fixed C (Theorems 1 and 2; THEORY.md section 4).

``F_diag = lim (1/d) ||H_kk||_F^2`` and ``F_off = lim (1/d) ||H_kl||_F^2`` (k != l) for the
d x d blocks (linear-*, hidden-*); ``F = lim ||H_kl||_F^2`` with NO 1/d for the m x m
output-layer blocks (output-*). For the one-hidden-layer cases the limit is also averaged
over the output weights ``V`` and over the equivalent blocks. ``ratio = sqrt(F_off/F_diag)``.

Methods:

- ``linear-mse``: ``F_diag = 1 + gamma``, ``F_off = 0`` (exact).
- ``linear-ce``: exact quadrature of the softmax moments
  (:mod:`rmthess.theory.softmax_moments`), relative error ~1e-12 for 2 <= C <= 1e20.
- ``hidden-mse``: ``F_diag = (C/m)^2 (1 + 2/C)(gamma/2 + 1/4)``,
  ``F_off = (C/m^2)(gamma/4 + 1/16)`` (exact; needs m >= 2).
- ``output-mse``: ``F_diag = m/4 + m(m-1)/(4 pi^2)``, ``F_off = 0`` (exact).
- ``hidden-ce``, ``output-ce``: nested Monte Carlo over V and g with unbiased per-draw
  estimates and honest standard errors (:mod:`rmthess.theory.hidden_integrals`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rmthess._checks import check_case, check_int, check_positive_float
from rmthess._stats import json_safe, ratio_stderr
from rmthess.cases import get_case

__all__ = ["FrobeniusLimits", "frobenius_limits", "ratio_stderr", "DEFAULT_INNER", "MC_MAX_C"]

DEFAULT_INNER = 64
"""Default number of g draws per V draw for the Monte-Carlo cases (the V noise dominates)."""
MC_MAX_C = 100_000
"""Largest C accepted by the Monte-Carlo cases (cost grows linearly in C)."""


@dataclass(frozen=True)
class FrobeniusLimits:
    """Limiting Frobenius norms of one case at fixed ``(C, gamma, m)``.

    Attributes
    ----------
    F_diag, F_off : float
        The limits (see the module docstring for the normalization).
    F_diag_se, F_off_se : float
        Their standard errors (0.0 where the value is exact).
    ratio : float
        ``sqrt(F_off / F_diag)`` (0.0 where ``F_off == 0``).
    ratio_se : float
        Standard error of ``ratio`` (delta method with the covariance of the two
        estimates over independent V draws); 0.0 where the value is exact.
    method : str
        ``"closed-form"``, ``"quadrature"`` or ``"monte-carlo"``.
    n_samples : int
        Number of independent V draws (0 where exact).
    n_inner : int
        Number of g draws per V draw (0 where exact).
    seed : int or None
        Seed of the Monte-Carlo estimate (None where exact).
    """

    case: str
    C: int
    gamma: float
    m: int | None
    F_diag: float
    F_off: float
    ratio: float
    ratio_se: float
    method: str
    F_diag_se: float = 0.0
    F_off_se: float = 0.0
    n_samples: int = 0
    n_inner: int = 0
    seed: int | None = None

    def to_dict(self) -> dict:
        """A flat, JSON-safe dict (non-finite floats become None): the CLI's record."""
        return json_safe(asdict(self))

    def to_frame(self):
        """A one-row tidy ``pandas.DataFrame`` of :meth:`to_dict`."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def _ratio(F_diag, F_off):
    return math.sqrt(F_off / F_diag) if F_off > 0 else 0.0


def check_m(case: str, m) -> int | None:
    """Validate the hidden width ``m`` for ``case``: :meth:`rmthess.cases.Case.check_m`."""
    return get_case(case).check_m(m)


def frobenius_limits(
    case,
    C,
    gamma,
    m=None,
    *,
    samples: int | None = None,
    inner: int | None = None,
    seed: int = 0,
) -> FrobeniusLimits:
    """Limits ``F_diag``, ``F_off`` and ``ratio = sqrt(F_off/F_diag)`` at fixed C.

    Parameters
    ----------
    case : str
        One of ``linear-mse, linear-ce, hidden-mse, hidden-ce, output-mse, output-ce``.
    C : int
        Number of classes, an integer >= 2 (``1e7`` accepted); at most 1e20 for linear-ce
        and ``MC_MAX_C`` for the Monte-Carlo cases.
    gamma : float
        ``d/N``, finite and > 0 (unused by output-*, whose blocks have fixed size m).
    m : int, optional
        Hidden width: required for hidden-* (``m >= 2``) and output-* (``m >= 1``);
        ignored (recorded as None) for linear-*.
    samples, inner : int, optional
        Monte-Carlo cases only: independent V draws (>= 2; default: as many as a budget of
        ~1.5e10 flops allows, between 200 and 10000, see
        :func:`rmthess.theory.hidden_integrals.default_sizes`) and g draws per V (>= 2,
        default ``DEFAULT_INNER`` = 64).
    seed : int
        Seed of the Monte-Carlo cases (results are deterministic given it).

    Returns
    -------
    FrobeniusLimits
    """
    case = check_case(case)
    C = check_int("C", C, 2)
    gamma = check_positive_float("gamma", gamma)
    m = check_m(case, m)
    seed = check_int("seed", seed, 0)
    if case == "linear-mse":
        return FrobeniusLimits(case, C, gamma, m, 1.0 + gamma, 0.0, 0.0, 0.0, "closed-form")
    if case == "linear-ce":
        from rmthess.theory.softmax_moments import linear_ce_frobenius

        Fd, Fo = (float(x) for x in linear_ce_frobenius(C, gamma))
        return FrobeniusLimits(case, C, gamma, m, Fd, Fo, _ratio(Fd, Fo), 0.0, "quadrature")
    if case == "hidden-mse":
        Fd = (C / m) ** 2 * (1.0 + 2.0 / C) * (gamma / 2 + 0.25)
        Fo = C / m**2 * (gamma / 4 + 1 / 16)
        return FrobeniusLimits(case, C, gamma, m, Fd, Fo, _ratio(Fd, Fo), 0.0, "closed-form")
    if case == "output-mse":
        Fd = m / 4 + m * (m - 1) / (4 * math.pi**2)
        return FrobeniusLimits(case, C, gamma, m, Fd, 0.0, 0.0, 0.0, "closed-form")
    # Monte-Carlo cases
    if C > MC_MAX_C:
        raise ValueError(
            f"C must be <= {MC_MAX_C} for the Monte-Carlo case {case!r} (got {C}); "
            "use rmthess.theory.asymptotic_constants for larger C"
        )
    from rmthess.theory import hidden_integrals as hi

    if samples is not None:
        samples = check_int("samples", samples, 2)
    if inner is not None:
        inner = check_int("inner", inner, 2)
    n_V, n_g = hi.default_sizes(case, C, m, samples, inner)

    fn = hi.hidden_ce_mc if case == "hidden-ce" else hi.output_ce_mc
    est = fn(C, m, n_V, n_g, seed)
    Fd, Fo, sd, so, cov = est.summary(gamma)
    ratio = _ratio(Fd, Fo)
    ratio_se = ratio_stderr(Fd, Fo, sd**2, so**2, cov)
    return FrobeniusLimits(
        case, C, gamma, m, Fd, Fo, ratio, ratio_se, "monte-carlo", sd, so, n_V, n_g, seed
    )
