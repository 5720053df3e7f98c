"""How far is a layer's Hessian spectrum from that of its block-diagonal part? (issue 11)

:func:`block_diagonal_gap` compares the whole-layer law ``mu`` (:func:`layer_law`) with the
block-diagonal law ``mu_bd`` (:func:`block_diagonal_law`), both from the same weight draws:

* ``W1 = int |F(x) - F_bd(x)| dx`` (Wasserstein-1; also ``W1_rel = W1 / E_bd[x]``, free of
  the overall scale, which falls like ``1/C`` for CE);
* ``KS = sup_x |F(x) - F_bd(x)|`` (the jump at 0 included: at least the difference of the
  zero masses);
* ``top_edge``, ``top_edge_bd`` and ``edge_gap_rel = (top_edge - top_edge_bd) / top_edge_bd``
  (support edges of the atom laws: for CE they sit in a thin tail, the weights reach 1/4
  with exponentially small probability, so they grow slowly with ``n_atoms``: 0.1570,
  0.1593, 0.1603 at 1k, 4k, 16k atoms for the linear-ce layer at C = 20, gamma = 0.25,
  where the mass above 0.155 is 5e-4);
* ``top_q``, ``top_q_bd`` and ``q_gap_rel``: the same with the ``q``-quantile (default
  0.999), a top-of-bulk measure that is stable in ``n_atoms``;
* ``zero_mass``, ``zero_mass_bd`` and their difference.

:func:`gap_vs_C` tabulates these over ``C`` and fits the power law ``metric ~ c C^slope``
(least squares in log-log over the given ``C``; the fit's standard error from the residuals).
The derivation of the linear-ce rates is in docs/theory.md 9.1.4.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_int, check_positive_float
from rmthess._stats import json_safe, ols_slope
from rmthess.inits import InitLike
from rmthess.theory.layer_laws import _check, block_diagonal_law, layer_law

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BlockDiagonalGap", "GapCurve", "block_diagonal_gap", "gap_vs_C", "quantile"]

_METRICS = ("W1_rel", "KS", "edge_gap_rel", "q_gap_rel", "zero_mass_diff")


@dataclass(frozen=True)
class BlockDiagonalGap:
    """Distances between the whole-layer law and its block-diagonal part at one ``C``."""

    case: str
    C: int
    gamma: float
    m: int | None
    init: str
    W1: float
    W1_rel: float
    KS: float
    top_edge: float
    top_edge_bd: float
    edge_gap_rel: float
    top_q: float
    top_q_bd: float
    q_gap_rel: float
    q: float
    zero_mass: float
    zero_mass_bd: float
    zero_mass_diff: float
    mean: float
    M2: float
    M2_bd: float
    n_atoms: int

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([self.to_dict()])


def _cdf_distances(law, bd, n_grid):
    """``(W1, KS)`` from both cdfs on a grid over the union of the supports (0 and 0-
    included so that the atoms at 0 are seen; trapezoid rule for W1)."""
    lo = min(law.edges()[0], bd.edges()[0], 0.0)
    hi = max(law.edges()[1], bd.edges()[1], 0.0)
    x = np.linspace(lo, hi, n_grid)
    x = np.unique(np.concatenate([x, [0.0, -1e-300 if lo < 0 else 0.0]]))
    d = np.abs(np.asarray(law.cdf(x)) - np.asarray(bd.cdf(x)))
    ks = float(d.max())
    left = float(np.abs(law.zero_mass - bd.zero_mass)) if lo >= 0 else 0.0
    ks = max(ks, left)  # F(0-) = 0 for both when the support is >= 0
    return float(np.trapezoid(d, x)), ks


def quantile(law: Any, q: float) -> float:
    """The ``q``-quantile ``inf{x : F(x) >= q}`` of a law by bisection on its cdf (to
    ``1e-12`` of the support's width)."""
    lo, hi = min(law.edges()[0], 0.0), max(law.edges()[1], 0.0)
    if float(law.cdf(np.array([lo]))[0]) >= q:
        return lo
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(law.cdf(np.array([mid]))[0]) >= q:
            hi = mid
        else:
            lo = mid
    return hi


def block_diagonal_gap(
    case: str,
    C: int,
    gamma: float,
    m: int | None = None,
    *,
    V: np.ndarray | None = None,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
    n_grid: int = 4001,
    q: float = 0.999,
    laws: tuple[Any, Any] | None = None,
) -> BlockDiagonalGap:
    """Whole-layer law vs block-diagonal law at one ``(C, gamma, m)``: W1, KS, top edges
    and zero masses (module docstring). ``n_grid`` grid points for the cdf integrals
    (trapezoid error ``~ (range / n_grid)^2 max|F'|``). Arguments as in
    :func:`rmthess.theory.layer_laws.layer_law`. ``laws``: ``(layer_law(...),
    block_diagonal_law(...))`` of these same arguments if already built (skips building
    them again; a hidden-layer law costs seconds)."""
    c, C, gamma, m, V, ini, n_atoms, seed = _check(case, C, gamma, m, V, init, n_atoms, seed)
    n_grid = check_int("n_grid", n_grid, 101, 10**6)
    q = check_positive_float("q", q)
    if not 0.5 <= q < 1.0:
        raise ValueError(f"q must be in [0.5, 1), got {q!r}")
    if laws is not None:
        law, bd = laws
    else:
        law = layer_law(c.name, C, gamma, m, V=V, init=ini, n_atoms=n_atoms, seed=seed)
        if V is None and getattr(law, "V", None) is not None:
            V = law.V  # the block-diagonal law conditional on the same V
        bd = block_diagonal_law(c.name, C, gamma, m, V=V, init=ini, n_atoms=n_atoms, seed=seed)
    W1, KS = _cdf_distances(law, bd, n_grid)
    mean = bd.moment(1)
    top, top_bd = law.edges()[1], bd.edges()[1]
    tq, tq_bd = quantile(law, q), quantile(bd, q)
    return BlockDiagonalGap(
        case=c.name,
        C=C,
        gamma=gamma,
        m=m,
        init=str(ini),
        W1=W1,
        W1_rel=W1 / abs(mean) if mean else math.nan,
        KS=KS,
        top_edge=top,
        top_edge_bd=top_bd,
        edge_gap_rel=(top - top_bd) / top_bd if top_bd else math.nan,
        top_q=tq,
        top_q_bd=tq_bd,
        q_gap_rel=(tq - tq_bd) / tq_bd if tq_bd else math.nan,
        q=q,
        zero_mass=law.zero_mass,
        zero_mass_bd=bd.zero_mass,
        zero_mass_diff=law.zero_mass - bd.zero_mass,
        mean=mean,
        M2=law.moment(2),
        M2_bd=bd.moment(2),
        n_atoms=n_atoms,
    )


@dataclass(frozen=True)
class GapCurve:
    """:class:`BlockDiagonalGap` over ``C`` with power-law fits ``metric ~ c C^slope``."""

    gaps: list
    slope: dict = field(default_factory=dict)
    slope_se: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([g.to_dict() for g in self.gaps])

    def to_dict(self) -> dict:
        return json_safe(
            {
                "gaps": [g.to_dict() for g in self.gaps],
                "slope": self.slope,
                "slope_se": self.slope_se,
            }
        )


def _fit(Cs, y):
    """Log-log least-squares slope of ``|y|`` against ``C`` and its standard error
    ``sqrt(s^2 / sum (log C - mean)^2)`` (``s^2`` the residual variance; needs 3 points)."""
    Cs, y = np.asarray(Cs, float), np.abs(np.asarray(y, float))
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < 3:
        return math.nan, math.nan
    x, ly = np.log(Cs[ok]), np.log(y[ok])
    slope, intercept = ols_slope(x, ly)
    s2 = float(((ly - intercept - slope * x) ** 2).sum()) / (ok.sum() - 2)
    return float(slope), math.sqrt(s2 / float(((x - x.mean()) ** 2).sum()))


def gap_vs_C(
    case: str,
    Cs: ArrayLike,
    gamma: float,
    m: int | None = None,
    *,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
) -> GapCurve:
    """:func:`block_diagonal_gap` for every ``C`` in ``Cs`` (ints >= 2) and log-log slopes of
    ``W1_rel``, ``KS``, ``edge_gap_rel``, ``q_gap_rel`` and ``zero_mass_diff`` against ``C``."""
    gamma = check_positive_float("gamma", gamma)
    Cs = [check_int("C", C, 2) for C in np.atleast_1d(Cs).tolist()]
    if not Cs:
        raise ValueError("Cs must contain at least one C >= 2")
    gaps = [
        block_diagonal_gap(case, C, gamma, m, init=init, n_atoms=n_atoms, seed=seed) for C in Cs
    ]
    slope, se = {}, {}
    for k in _METRICS:
        slope[k], se[k] = _fit(Cs, [getattr(g, k) for g in gaps])
    return GapCurve(gaps, slope, se)
