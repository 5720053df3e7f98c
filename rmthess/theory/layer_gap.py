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
The derivation of the linear-ce rates is in docs/theory.md 9.1.4. Duplicate ``C`` are
refused (a log-log slope needs distinct ``C``), and ``laws=`` given to
:func:`block_diagonal_gap` must have been built for the same arguments (their ``spec``).

:func:`layer_spectrum` gathers everything ``rmthess theory --layer-spectrum`` prints at one
``C`` in a :class:`LayerSpectrum` (``to_dict``: the record; ``to_frame``: both densities;
``plot``: one figure panel).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
from numpy.typing import ArrayLike

from rmthess._checks import check_float, check_int, check_positive_float, want_progress
from rmthess._stats import json_safe, ols_slope
from rmthess.inits import Init, InitLike
from rmthess.theory.law import Law
from rmthess.theory.layer_laws import (
    _Spec,
    _spec,
    block_diagonal_law,
    layer_law,
    matrix_law_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from matplotlib.axes import Axes
    from tqdm.auto import tqdm

__all__ = [
    "BlockDiagonalGap",
    "GapCurve",
    "block_diagonal_gap",
    "LayerSpectrum",
    "gap_vs_C",
    "layer_spectrum",
    "predicted_seconds",
    "quantile",
]

_METRICS = ("W1_rel", "KS", "edge_gap_rel", "q_gap_rel", "zero_mass_diff")


class _Draws(TypedDict):
    """The keyword arguments that fix the weight draws of a layer law."""

    init: Init
    n_atoms: int
    seed: int


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


def _cdf_distances(law: Law, bd: Law, n_grid: int) -> tuple[float, float]:
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


def quantile(law: Law, q: float) -> float:
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


def _check_laws(laws: Sequence[Law], want: dict[str, Any]) -> Sequence[Law]:
    """``laws`` must be ``(layer_law(...), block_diagonal_law(...))`` of the same arguments
    (their ``spec``): a law built for another C, gamma, m, init, n_atoms or seed is refused."""
    if not (isinstance(laws, (tuple, list)) and len(laws) == 2):
        raise TypeError("laws must be a pair (layer_law(...), block_diagonal_law(...))")
    for what, law in zip(("layer law", "block-diagonal law"), laws, strict=True):
        spec = getattr(law, "spec", None)
        if spec is None:
            raise TypeError(
                f"laws: the {what} must come from layer_law/block_diagonal_law (it has no spec)"
            )
        diff = [f"{k}={spec.get(k)!r} (want {v!r})" for k, v in want.items() if spec.get(k) != v]
        if diff:
            raise ValueError(f"laws: the {what} was built for other arguments: " + ", ".join(diff))
    return laws


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
    laws: tuple[Law, Law] | None = None,
) -> BlockDiagonalGap:
    """Whole-layer law vs block-diagonal law at one ``(C, gamma, m)``: W1, KS, top edges
    and zero masses (module docstring). ``n_grid`` grid points for the cdf integrals
    (trapezoid error ``~ (range / n_grid)^2 max|F'|``). Arguments as in
    :func:`rmthess.theory.layer_laws.layer_law`. ``laws``: ``(layer_law(...),
    block_diagonal_law(...))`` of these same arguments if already built (skips building
    them again; a hidden-layer law costs seconds)."""
    s = _spec(case, C, gamma, m, V, init, n_atoms, seed, solve=laws is None)
    assert s.gamma is not None  # _spec was given a gamma: it returns it validated
    c, C, gamma, m, V, ini, n_atoms, seed = (
        s.case, s.C, s.gamma, s.m, s.V, s.init, s.n_atoms, s.seed
    )  # fmt: skip
    n_grid = check_int("n_grid", n_grid, 101, 10**6)
    q = check_float("q", q, 0.5, 1.0, closed="left")
    if laws is not None:
        law, bd = _check_laws(laws, s.key())
    else:
        law = layer_law(c.name, C, gamma, m, V=V, init=ini, n_atoms=n_atoms, seed=seed)
        if V is None:
            V = getattr(law, "V", None)  # the block-diagonal law conditional on the same V
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
    """:class:`BlockDiagonalGap` over ``C`` with power-law fits ``metric ~ c C^slope``.

    ``slope`` and ``slope_se`` map each metric (``W1_rel``, ``KS``, ...) to its log-log
    slope and standard error; ``to_dict()`` flattens them to ``slope_<metric>`` and
    ``slope_<metric>_se``; the gaps (one per ``C``) are ``to_frame()``'s rows."""

    gaps: list
    slope: dict = field(default_factory=dict)
    slope_se: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row per ``C``: the :meth:`BlockDiagonalGap.to_dict` of each."""
        import pandas as pd

        return pd.DataFrame([g.to_dict() for g in self.gaps])

    def to_dict(self) -> dict:
        """JSON-safe scalars: the common settings (``case``, ``gamma``, ``m``, ``init``,
        ``n_atoms``), ``n_C``, ``C_min``, ``C_max`` and ``slope_<metric>``,
        ``slope_<metric>_se`` for each fitted metric (None where a fit had < 3 points)."""
        rec: dict = {}
        if self.gaps:
            g0 = self.gaps[0]
            rec.update(case=g0.case, gamma=g0.gamma, m=g0.m, init=g0.init, n_atoms=g0.n_atoms)
            Cs = [g.C for g in self.gaps]
            rec.update(n_C=len(Cs), C_min=min(Cs), C_max=max(Cs))
        for k, v in self.slope.items():
            rec[f"slope_{k}"] = v
            rec[f"slope_{k}_se"] = self.slope_se.get(k, math.nan)
        return json_safe(rec)


def predicted_seconds(spec: _Spec) -> float:
    """Rough seconds for one :func:`block_diagonal_gap` (the hidden layer's matrix law
    dominates; the linear laws take about a second)."""
    if spec.case.model == "hidden":
        assert spec.m is not None  # the hidden cases need m (_spec refuses None)
        return matrix_law_seconds(spec.n_atoms, spec.m)
    return 1.0 + 1e-6 * spec.n_atoms * spec.C**2


def _bar(total: int, desc: str, show: bool) -> tqdm:
    """A tqdm bar on stderr over ``total`` steps (disabled unless ``show``)."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="C", file=sys.stderr, disable=not show)


def _fit(Cs: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Log-log least-squares slope of ``|y|`` against ``C`` and its standard error
    ``sqrt(s^2 / sum (log C - mean)^2)`` (``s^2`` the residual variance; needs 3 points)."""
    c, a = np.asarray(Cs, float), np.abs(np.asarray(y, float))
    ok = np.isfinite(a) & (a > 0)
    if ok.sum() < 3:
        return math.nan, math.nan
    x, ly = np.log(c[ok]), np.log(a[ok])
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
    progress: bool | None = None,
) -> GapCurve:
    """:func:`block_diagonal_gap` for every ``C`` in ``Cs`` (distinct ints >= 2) and log-log
    slopes of ``W1_rel``, ``KS``, ``edge_gap_rel``, ``q_gap_rel`` and ``zero_mass_diff``
    against ``C``. Every ``C`` is validated (and its cost bounded) before the first is
    computed. ``progress``: a tqdm bar over the Cs on stderr (``None``: when stderr is a
    terminal and the run is predicted to take over 5 s)."""
    gamma = check_positive_float("gamma", gamma)
    want_progress(progress, 0.0)  # validated before any work
    Cs = [check_int("C", C, 2) for C in np.atleast_1d(Cs).tolist()]
    if not Cs:
        raise ValueError("Cs must contain at least one C >= 2")
    dup = sorted({C for C in Cs if Cs.count(C) > 1})
    if dup:
        raise ValueError(f"Cs must be distinct (a log-log slope needs distinct C), got {dup} twice")
    specs = [_spec(case, C, gamma, m, None, init, n_atoms, seed) for C in Cs]
    secs = sum(predicted_seconds(s) for s in specs)
    gaps = []
    with _bar(len(Cs), f"gap_vs_C {specs[0].case.name}", want_progress(progress, secs)) as bar:
        for s in specs:
            kw = _Draws(init=s.init, n_atoms=s.n_atoms, seed=s.seed)
            gaps.append(block_diagonal_gap(s.case.name, s.C, gamma, s.m, **kw))
            bar.set_postfix_str(f"C={s.C}")
            bar.update(1)
    slope, se = {}, {}
    for k in _METRICS:
        slope[k], se[k] = _fit(Cs, [getattr(g, k) for g in gaps])
    return GapCurve(gaps, slope, se)


# ------------------------------------------------------------------ one C, all facts
_M2_REPLICATES = 8  # independent scrambles of the QMC atoms for the SE of M2 (linear-*)


@dataclass
class LayerSpectrum:
    """The whole-layer law at one ``C`` with its block-diagonal law, their gap and, for
    linear-*, the identity ``M2 = F_diag + (C - 1) F_off`` (:func:`layer_spectrum`).

    ``M2`` is the second moment of the law built from ``n_atoms`` QMC draws of ``A``;
    ``M2_frobenius`` the exact ``F_diag + (C - 1) F_off`` (quadrature). The identity is
    exact; their difference is the QMC error of the draws, whose standard error
    ``M2_se`` is the spread of ``M2`` over 8 independent scrambles of the draws."""

    law: Law
    bd: Law
    gap: BlockDiagonalGap
    M2_frobenius: float | None = None
    F_diag: float | None = None
    F_off: float | None = None
    M2_se: float | None = None

    @property
    def support(self) -> list[list[float]]:
        return [[float(a), float(b)] for a, b in self.law.support()]

    def to_dict(self) -> dict:
        """Flat JSON-safe record: law facts, moments, the identity (linear-*), the gap, and
        the support check of a matrix law (``mass``: atom + continuous part found)."""
        g = self.gap
        law = self.law
        rec: dict[str, Any] = dict(
            case=g.case,
            C=g.C,
            gamma=g.gamma,
            m=g.m,
            init=g.init,
            n_atoms=g.n_atoms,
            zero_mass=float(law.zero_mass),
            mass=float(law.zero_mass + law.ac_mass()),
            top_edge=float(law.edges()[1]),
            M1=float(law.moment(1)),
            M2=float(law.moment(2)),
        )
        if self.M2_frobenius is not None:
            ref = self.M2_frobenius
            rec.update(F_diag=self.F_diag, F_off=self.F_off, M2_frobenius=ref)
            rec.update(M2_rel_diff=rec["M2"] / ref - 1.0 if ref else math.nan)
            se = self.M2_se
            rec.update(M2_rel_se=se / ref if ref and se is not None else math.nan)
        for k in ("W1", "W1_rel", "KS", "top_edge_bd", "edge_gap_rel", "zero_mass_bd"):
            rec[k] = getattr(g, k)
        return json_safe(rec)

    def to_frame(self, n: int = 1000) -> pd.DataFrame:
        """Both densities on ``n`` points of ``(0, 1.05 max top edge]`` (tidy: ``x``,
        ``part`` = ``"layer"`` / ``"blocks"``, ``density``)."""
        import pandas as pd

        x = np.linspace(0.0, 1.05 * max(self.gap.top_edge, self.gap.top_edge_bd), n + 1)[1:]
        frames = [
            pd.DataFrame({"x": x, "part": name, "density": np.asarray(law.pdf(x), float)})
            for name, law in (("layer", self.law), ("blocks", self.bd))
        ]
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax: Axes) -> None:
        """Draw both densities (and the layer's atom at 0) into a matplotlib ``ax``."""
        df = self.to_frame()
        y, y_bd = (df[df.part == p] for p in ("layer", "blocks"))
        ax.plot(y.x, y.density, "-", lw=1.6, label="whole layer")
        ax.plot(y_bd.x, y_bd.density, "--", lw=1.4, label="block-diagonal part")
        top = 1.1 * float(np.nanmax(df.density))
        zm = self.law.zero_mass
        if zm > 0:
            ax.vlines(0.0, 0.0, 0.9 * top, lw=2.2, color="tab:blue")
            ax.annotate(
                f"atom {zm:.4g} at 0",
                (0.0, 0.9 * top),
                xytext=(6, -4),
                textcoords="offset points",
                fontsize=8,
                va="top",
            )
        ax.set_ylim(0.0, top)
        ax.set_title(f"{self.gap.case}, C={self.gap.C}, gamma={self.gap.gamma:g}", fontsize=10)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)


def _m2_se(s: _Spec) -> float:
    """Standard error of the QMC ``M2`` of a linear layer law: the spread of ``M2`` over
    independent scrambles of the weight draws (linear-mse: one exact atom, 0)."""
    from rmthess._random import seed_int
    from rmthess.theory.layer_laws import _LAYER
    from rmthess.theory.matrix_law import matrix_gmp_moments

    if s.case.name == "linear-mse":
        return 0.0
    assert s.gamma is not None  # the spec of a law (layer_spectrum): gamma given
    m2 = []
    for r in range(_M2_REPLICATES):
        sr = replace(s, seed=seed_int(s.seed, "layer-M2-se", r) % 2**32)
        A, w, _ = _LAYER[s.case.name].weight_law(sr)
        m2.append(matrix_gmp_moments(A, w, s.gamma, 2)[2])
    return float(np.std(m2, ddof=1))


def layer_spectrum(
    case: str,
    C: int,
    gamma: float,
    m: int | None = None,
    *,
    init: InitLike = "lecun",
    n_atoms: int | None = None,
    seed: int = 0,
) -> LayerSpectrum:
    """Whole-layer law, block-diagonal law (same draws, same V) and their gap at one ``C``;
    for linear-* also ``F_diag + (C - 1) F_off`` (:func:`rmthess.theory.frobenius_limits`)
    and the QMC standard error of ``M2`` (:class:`LayerSpectrum`). Arguments as in
    :func:`rmthess.theory.layer_laws.layer_law`."""
    from rmthess.theory.frobenius import frobenius_limits

    s = _spec(case, C, gamma, m, None, init, n_atoms, seed)
    kw = _Draws(init=s.init, n_atoms=s.n_atoms, seed=s.seed)
    law = layer_law(s.case.name, s.C, gamma, s.m, **kw)
    V = getattr(law, "V", None)  # the block-diagonal law conditional on the same V
    bd = block_diagonal_law(s.case.name, s.C, gamma, s.m, V=V, **kw)
    gap = block_diagonal_gap(s.case.name, s.C, gamma, s.m, V=V, laws=(law, bd), **kw)
    out = LayerSpectrum(law, bd, gap)
    if s.case.model == "linear":  # the hidden laws are conditional on V: no identity
        fro = frobenius_limits(s.case.name, s.C, gamma, init=s.init)
        out.F_diag, out.F_off = fro.F_diag, fro.F_off
        out.M2_frobenius = fro.F_diag + (s.C - 1) * fro.F_off
        out.M2_se = _m2_se(s)
    return out
